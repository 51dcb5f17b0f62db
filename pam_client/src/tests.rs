//! The conversation on its own, then real libpam with a private PAM
//! configuration directory (pam_start_confdir) and the stock Linux-PAM
//! modules: no root, nothing outside a temp dir.

use super::*;

/// Calls the conversation function as a module would with `msgs`; the
/// result code and the answers (None where NULL).
fn call(conv: &mut Conversation, msgs: &[(c_int, &str)]) -> (c_int, Vec<Option<String>>) {
    let texts: Vec<CString> = msgs
        .iter()
        .map(|(_, t)| CString::new(*t).expect("no NUL"))
        .collect();
    let structs: Vec<sys::PamMessage> = msgs
        .iter()
        .zip(&texts)
        .map(|((style, _), t)| sys::PamMessage {
            msg_style: *style,
            msg: t.as_ptr(),
        })
        .collect();
    let mut ptrs: Vec<*const sys::PamMessage> = structs.iter().map(|m| m as *const _).collect();
    let mut resp: *mut sys::PamResponse = ptr::null_mut();
    let n = c_int::try_from(msgs.len()).expect("few messages");
    let rc = converse(
        n,
        ptrs.as_mut_ptr(),
        &mut resp,
        (conv as *mut Conversation).cast::<c_void>(),
    );
    if rc != PAM_SUCCESS {
        assert!(resp.is_null(), "a failed conversation handed out replies");
        return (rc, Vec::new());
    }
    assert!(!resp.is_null(), "a successful conversation gave no replies");
    let mut answers = Vec::new();
    for i in 0..msgs.len() {
        // SAFETY: converse gave an array of msgs.len() responses.
        let r = unsafe { (*resp.add(i)).resp };
        if r.is_null() {
            answers.push(None);
        } else {
            // SAFETY: a strdup'ed NUL-terminated string.
            let answer = unsafe { CStr::from_ptr(r) };
            answers.push(Some(answer.to_string_lossy().into_owned()));
        }
    }
    free_replies(resp, msgs.len());
    (rc, answers)
}

#[test]
fn answers_prompts_in_order_and_records_messages() {
    let mut conv = Conversation::new(["first", "second", "third"]);
    let (rc, answers) = call(
        &mut conv,
        &[
            (sys::PAM_TEXT_INFO, "hello"),
            (sys::PAM_PROMPT_ECHO_OFF, "Code: "),
            (sys::PAM_ERROR_MSG, "oops"),
            (sys::PAM_PROMPT_ECHO_ON, "Name: "),
        ],
    );
    assert_eq!(rc, PAM_SUCCESS);
    assert_eq!(
        answers,
        [None, Some("first".into()), None, Some("second".into())]
    );
    assert_eq!(
        conv.prompts(),
        [
            Prompt {
                text: "Code: ".into(),
                echo: Echo::Off
            },
            Prompt {
                text: "Name: ".into(),
                echo: Echo::On
            }
        ]
    );
    assert_eq!(
        conv.messages(),
        [
            Message {
                text: "hello".into(),
                kind: MessageKind::Info
            },
            Message {
                text: "oops".into(),
                kind: MessageKind::Error
            }
        ]
    );
    assert_eq!(conv.unused_answers(), 1);
}

#[test]
fn a_prompt_with_no_answer_left_fails_the_conversation() {
    let mut conv = Conversation::new(["only"]);
    let (rc, _) = call(
        &mut conv,
        &[
            (sys::PAM_PROMPT_ECHO_OFF, "one"),
            (sys::PAM_PROMPT_ECHO_OFF, "two"),
        ],
    );
    assert_eq!(rc, PAM_CONV_ERR);
    assert_eq!(conv.prompts().len(), 2, "both prompts are recorded");
}

#[test]
fn an_answer_with_a_nul_fails_the_conversation() {
    let mut conv = Conversation::new([b"12\x0034".to_vec()]);
    let (rc, _) = call(&mut conv, &[(sys::PAM_PROMPT_ECHO_OFF, "Code: ")]);
    assert_eq!(rc, PAM_CONV_ERR);
}

#[test]
fn bad_calls_fail_the_conversation() {
    let mut conv = Conversation::new(["x"]);
    let appdata = (&mut conv as *mut Conversation).cast::<c_void>();
    let mut resp: *mut sys::PamResponse = ptr::null_mut();
    let mut none: [*const sys::PamMessage; 0] = [];
    assert_eq!(
        converse(0, none.as_mut_ptr(), &mut resp, appdata),
        PAM_CONV_ERR
    );
    assert_eq!(
        converse(-1, none.as_mut_ptr(), &mut resp, appdata),
        PAM_CONV_ERR
    );
    assert_eq!(
        converse(1, ptr::null_mut(), &mut resp, appdata),
        PAM_CONV_ERR
    );
    assert!(resp.is_null());
    assert_eq!(conv.unused_answers(), 1);
}

/// A private PAM configuration directory with one service file.
struct Config {
    dir: tempfile::TempDir,
    service: CString,
}

fn config(lines: &str) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mfa-client-test"), lines).expect("write service file");
    Config {
        dir,
        service: CString::new("mfa-client-test").expect("no NUL"),
    }
}

fn user() -> CString {
    CString::new("nobody").expect("no NUL")
}

const PAM_SYSTEM_ERR: c_int = 4;
const PAM_AUTH_ERR: c_int = 7;

#[test]
fn every_call_reaches_the_modules() {
    let c = config(
        "auth required pam_permit.so\n\
         account required pam_permit.so\n\
         session required pam_permit.so\n",
    );
    let mut conv = Conversation::default();
    let mut pam = Handle::start_in(c.dir.path(), &c.service, &user(), &mut conv).expect("start");
    assert_eq!(pam.authenticate(0), PAM_SUCCESS);
    assert_eq!(pam.acct_mgmt(0), PAM_SUCCESS);
    assert_eq!(pam.setcred(PAM_ESTABLISH_CRED), PAM_SUCCESS);
    assert_eq!(pam.open_session(0), PAM_SUCCESS);
    assert_eq!(pam.close_session(0), PAM_SUCCESS);
    assert_eq!(pam.setcred(PAM_DELETE_CRED), PAM_SUCCESS);
    assert_eq!(pam.end(PAM_SUCCESS), PAM_SUCCESS);
    assert!(conv.prompts().is_empty() && conv.messages().is_empty());
}

#[test]
fn a_refusal_is_its_code_and_text() {
    let c = config("auth required pam_deny.so\nsession required pam_deny.so\n");
    let mut conv = Conversation::default();
    let mut pam = Handle::start_in(c.dir.path(), &c.service, &user(), &mut conv).expect("start");
    let rc = pam.authenticate(0);
    assert_eq!(rc, PAM_AUTH_ERR);
    assert_eq!(pam.strerror(rc), "Authentication failure");
    assert_ne!(pam.open_session(0), PAM_SUCCESS);
    // Dropped without end: pam_end runs in Drop.
}

/// pam_exec with expose_authtok prompts "Password: " (echo off) and hands
/// the answer to the command on stdin, NUL-terminated; a command that
/// fails is PAM_SYSTEM_ERR.
const ASK: &str = "auth required pam_exec.so quiet expose_authtok /bin/grep -qzx sesame\n";

#[test]
fn prompts_get_the_scripted_answers_through_libpam() {
    let c = config(&format!(
        "auth optional pam_echo.so Hello from pam_echo\n{ASK}"
    ));
    let mut conv = Conversation::new(["sesame", "wrong"]);
    for expected in [PAM_SUCCESS, PAM_SYSTEM_ERR] {
        let mut pam =
            Handle::start_in(c.dir.path(), &c.service, &user(), &mut conv).expect("start");
        let rc = pam.authenticate(0);
        pam.end(rc);
        assert_eq!(rc, expected, "{conv:?}");
    }
    let prompts: Vec<_> = conv.prompts().iter().map(|p| (&*p.text, p.echo)).collect();
    assert_eq!(
        prompts,
        [("Password: ", Echo::Off), ("Password: ", Echo::Off)]
    );
    let messages: Vec<_> = conv.messages().iter().map(|m| (&*m.text, m.kind)).collect();
    assert_eq!(
        messages,
        [
            ("Hello from pam_echo", MessageKind::Info),
            ("Hello from pam_echo", MessageKind::Info)
        ]
    );
    assert_eq!(conv.unused_answers(), 0);
}

#[test]
fn no_answer_left_fails_the_login() {
    let c = config(ASK);
    let mut conv = Conversation::default();
    let mut pam = Handle::start_in(c.dir.path(), &c.service, &user(), &mut conv).expect("start");
    let rc = pam.authenticate(0);
    pam.end(rc);
    assert_eq!(rc, PAM_CONV_ERR);
    assert_eq!(conv.prompts().len(), 1);
}

#[test]
fn bad_arguments_are_errors() {
    let mut conv = Conversation::default();
    let err = Handle::start_in(
        Path::new("/tmp/a\0b"),
        &CString::new("x").expect("no NUL"),
        &user(),
        &mut conv,
    )
    .err()
    .expect("NUL in the directory");
    assert_eq!(
        err.to_string(),
        "the PAM configuration directory contains a NUL byte"
    );
    // No configuration at all: pam_start fails, and says so.
    let empty = tempfile::tempdir().expect("temp dir");
    let err = Handle::start_in(empty.path(), c"nothing", &user(), &mut conv)
        .err()
        .expect("no configuration");
    assert!(
        matches!(err, Error::Start { code, .. } if code != PAM_SUCCESS),
        "{err}"
    );
}
