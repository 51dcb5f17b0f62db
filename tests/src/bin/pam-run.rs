//! Test helper: drives libpam in-process, like sshd or sudo do, and reports
//! what it returned plus this process's threads and file descriptors before
//! and after, so a test can prove the module leaves nothing behind.
//!
//! Usage: pam-run SERVICE USER [--repeat N] [--setcred] [--acct] [--hex HEX] [ANSWER...]
//!
//! `--hex HEX` is one answer given as hex bytes (for answers that are not
//! UTF-8, which a command line argument need not be either).
//!
//! Each round: pam_start, pam_authenticate (answers consumed in order by
//! echo-off/echo-on prompts; a prompt with no answer left fails the
//! conversation), optionally pam_acct_mgmt and pam_setcred (in that order,
//! as applications call them), pam_end.
//! Prints one JSON object on stdout; exit 0 unless the helper itself failed.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::process::ExitCode;
use std::ptr;
use std::sync::Mutex;

use nix::libc;
use serde_json::json;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_ESTABLISH_CRED: c_int = 0x0002;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
}

/// What the conversation saw and has left to say.
struct Conversation {
    answers: Vec<Vec<u8>>,
    prompts: Vec<String>,
    /// "echo_off" or "echo_on", one per prompt.
    prompt_styles: Vec<&'static str>,
    messages: Vec<String>,
    /// "error" or "info", one per message.
    message_styles: Vec<&'static str>,
}

static CONV: Mutex<Conversation> = Mutex::new(Conversation {
    answers: Vec::new(),
    prompts: Vec::new(),
    prompt_styles: Vec::new(),
    messages: Vec::new(),
    message_styles: Vec::new(),
});

extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    let mut conv = match CONV.lock() {
        Ok(c) => c,
        Err(e) => e.into_inner(),
    };
    // SAFETY: calloc of n zeroed PamResponse; libpam (the module) frees it
    // and the strings in it with free(), as the PAM conversation ABI says.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of n pointers to messages, each
        // valid for the duration of this call.
        let m = unsafe { &**msg.add(i) };
        let text = if m.msg.is_null() {
            String::new()
        } else {
            // SAFETY: msg is a NUL-terminated string owned by the caller.
            unsafe { CStr::from_ptr(m.msg) }
                .to_string_lossy()
                .into_owned()
        };
        match m.msg_style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                conv.prompts.push(text);
                conv.prompt_styles
                    .push(if m.msg_style == PAM_PROMPT_ECHO_OFF {
                        "echo_off"
                    } else {
                        "echo_on"
                    });
                if conv.answers.is_empty() {
                    free_replies(replies, n);
                    return PAM_CONV_ERR;
                }
                let answer = conv.answers.remove(0);
                let Ok(c) = CString::new(answer) else {
                    free_replies(replies, n);
                    return PAM_CONV_ERR;
                };
                // SAFETY: strdup copies into malloc'ed memory that the
                // receiver frees; replies has n elements and i < n.
                unsafe {
                    (*replies.add(i)).resp = libc::strdup(c.as_ptr());
                }
            }
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                conv.messages.push(text);
                conv.message_styles.push(if m.msg_style == PAM_ERROR_MSG {
                    "error"
                } else {
                    "info"
                });
            }
            _ => {}
        }
    }
    // SAFETY: resp is a valid out-pointer given by libpam.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: replies has n elements, zeroed or with strdup'ed strings.
        unsafe {
            let r = (*replies.add(i)).resp;
            if !r.is_null() {
                libc::free(r as *mut c_void);
            }
        }
    }
    // SAFETY: allocated with calloc above and not handed out.
    unsafe { libc::free(replies as *mut c_void) };
}

/// Thread ids of this process.
fn threads() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Open file descriptors and what they point to, except the one used to
/// list them.
fn fds() -> BTreeMap<String, String> {
    let own = format!("/proc/{}/fd", std::process::id());
    let mut m = BTreeMap::new();
    if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
        for e in d.filter_map(|e| e.ok()) {
            let target = std::fs::read_link(e.path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            if target == own {
                continue;
            }
            m.insert(e.file_name().to_string_lossy().into_owned(), target);
        }
    }
    m
}

fn snapshot() -> serde_json::Value {
    json!({"threads": threads(), "fds": fds()})
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn main() -> ExitCode {
    use std::os::unix::ffi::OsStringExt;
    let mut args = std::env::args_os().skip(1).map(OsStringExt::into_vec);
    let (Some(service), Some(user)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: pam-run SERVICE USER [--repeat N] [--setcred] [--acct] [--hex HEX] [ANSWER...]"
        );
        return ExitCode::from(2);
    };
    let mut repeat = 1usize;
    let mut setcred = false;
    let mut acct = false;
    let mut answers = Vec::new();
    let rest: Vec<Vec<u8>> = args.collect();
    let text = |i: usize| rest.get(i).and_then(|a| std::str::from_utf8(a).ok());
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_slice() {
            b"--repeat" => {
                i += 1;
                repeat = text(i).and_then(|s| s.parse().ok()).unwrap_or(1);
            }
            b"--setcred" => setcred = true,
            b"--acct" => acct = true,
            b"--hex" => {
                i += 1;
                let Some(bytes) = text(i).and_then(hex) else {
                    eprintln!("pam-run: --hex needs an even number of hex digits");
                    return ExitCode::from(2);
                };
                answers.push(bytes);
            }
            a => answers.push(a.to_vec()),
        }
        i += 1;
    }
    let (Ok(c_service), Ok(c_user)) = (CString::new(service), CString::new(user)) else {
        eprintln!("pam-run: NUL in service or user");
        return ExitCode::from(2);
    };
    match CONV.lock() {
        Ok(mut c) => c.answers = answers,
        Err(e) => e.into_inner().answers = answers,
    }
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: ptr::null_mut(),
    };

    let before = snapshot();
    let mut rounds = Vec::new();
    for _ in 0..repeat {
        let mut pamh: *mut PamHandle = ptr::null_mut();
        // SAFETY: valid NUL-terminated strings and conversation struct that
        // outlive the handle; pamh is an out-pointer.
        let rc = unsafe { pam_start(c_service.as_ptr(), c_user.as_ptr(), &conv, &mut pamh) };
        if rc != PAM_SUCCESS || pamh.is_null() {
            eprintln!("pam-run: pam_start failed with {rc}");
            return ExitCode::from(2);
        }
        // SAFETY: pamh is a live handle from pam_start.
        let auth = unsafe { pam_authenticate(pamh, 0) };
        let after_auth = snapshot();
        // pam_acct_mgmt before pam_setcred, the order of login, su, sudo
        // and sshd (and of the Linux-PAM application guide).
        let account = if acct {
            // SAFETY: as above.
            Some(unsafe { pam_acct_mgmt(pamh, 0) })
        } else {
            None
        };
        let cred = if setcred {
            // SAFETY: as above.
            Some(unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) })
        } else {
            None
        };
        // SAFETY: ends the handle; not used afterwards.
        let end = unsafe { pam_end(pamh, auth) };
        let after_end = snapshot();
        rounds.push(json!({
            "authenticate": auth,
            "setcred": cred,
            "acct_mgmt": account,
            "end": end,
            "after_authenticate": after_auth,
            "after_end": after_end,
        }));
    }
    let conv = match CONV.lock() {
        Ok(c) => c,
        Err(e) => e.into_inner(),
    };
    println!(
        "{}",
        json!({
            "before": before,
            "rounds": rounds,
            "prompts": conv.prompts,
            "prompt_styles": conv.prompt_styles,
            "messages": conv.messages,
            "message_styles": conv.message_styles,
            "unused_answers": conv.answers.len(),
        })
    );
    ExitCode::SUCCESS
}
