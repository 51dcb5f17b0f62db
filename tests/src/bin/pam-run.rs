//! Test helper: drives libpam in-process, like sshd or sudo do, and reports
//! what it returned plus this process's threads and file descriptors before
//! and after, so a test can prove the module leaves nothing behind.
//!
//! Usage: pam-run SERVICE USER [--repeat N] [--setcred] [--acct] [--session SECS] [--hex HEX] [ANSWER...]
//!
//! `--hex HEX` is one answer given as hex bytes (for answers that are not
//! UTF-8, which a command line argument need not be either).
//!
//! Each round: pam_start, pam_authenticate (answers consumed in order by
//! echo-off/echo-on prompts; a prompt with no answer left fails the
//! conversation), optionally pam_acct_mgmt and pam_setcred (in that order,
//! as applications call them), optionally pam_open_session, a wait of SECS
//! seconds (a login session, which mfad may end with a signal) and
//! pam_close_session, then pam_end.
//! Prints one JSON object on stdout; exit 0 unless the helper itself failed.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::process::ExitCode;

use mfa_pam_client::{Conversation, Handle, PAM_ESTABLISH_CRED};
use serde_json::json;

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
    // A login's processes die of the SIGHUP that ends a session; a test run
    // started under nohup would hand this one SIGHUP ignored (an ignored
    // signal stays ignored across exec).
    // SAFETY: SIG_DFL installs no handler; set before any thread starts.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGHUP,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let mut args = std::env::args_os().skip(1).map(OsStringExt::into_vec);
    let (Some(service), Some(user)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: pam-run SERVICE USER [--repeat N] [--setcred] [--acct] [--session SECS] [--hex HEX] [ANSWER...]"
        );
        return ExitCode::from(2);
    };
    let mut repeat = 1usize;
    let mut setcred = false;
    let mut acct = false;
    let mut session: Option<u64> = None;
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
            b"--session" => {
                i += 1;
                session = text(i).and_then(|s| s.parse().ok());
            }
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
    // One conversation for every round: answers are used up across rounds.
    let mut conv = Conversation::new(answers);

    let before = snapshot();
    let mut rounds = Vec::new();
    for _ in 0..repeat {
        let mut pam = match Handle::start(&c_service, &c_user, &mut conv) {
            Ok(pam) => pam,
            Err(e) => {
                eprintln!("pam-run: {e}");
                return ExitCode::from(2);
            }
        };
        let auth = pam.authenticate(0);
        let after_auth = snapshot();
        // pam_acct_mgmt before pam_setcred, the order of login, su, sudo
        // and sshd (and of the Linux-PAM application guide).
        let account = acct.then(|| pam.acct_mgmt(0));
        let cred = setcred.then(|| pam.setcred(PAM_ESTABLISH_CRED));
        let (opened, closed) = match session {
            Some(secs) => {
                let opened = pam.open_session(0);
                // For the test waiting on the session: it is open now.
                eprintln!("pam-run: open_session {opened}");
                std::thread::sleep(std::time::Duration::from_secs(secs));
                (Some(opened), Some(pam.close_session(0)))
            }
            None => (None, None),
        };
        let end = pam.end(auth);
        let after_end = snapshot();
        rounds.push(json!({
            "authenticate": auth,
            "setcred": cred,
            "acct_mgmt": account,
            "open_session": opened,
            "close_session": closed,
            "end": end,
            "after_authenticate": after_auth,
            "after_end": after_end,
        }));
    }
    let prompts: Vec<&str> = conv.prompts().iter().map(|p| p.text.as_str()).collect();
    let prompt_styles: Vec<&str> = conv.prompts().iter().map(|p| p.echo.as_str()).collect();
    let messages: Vec<&str> = conv.messages().iter().map(|m| m.text.as_str()).collect();
    let message_styles: Vec<&str> = conv.messages().iter().map(|m| m.kind.as_str()).collect();
    println!(
        "{}",
        json!({
            "before": before,
            "rounds": rounds,
            "prompts": prompts,
            "prompt_styles": prompt_styles,
            "messages": messages,
            "message_styles": message_styles,
            "unused_answers": conv.unused_answers(),
        })
    );
    ExitCode::SUCCESS
}
