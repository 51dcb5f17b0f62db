//! The state machine driven by a scripted conversation and a scripted mfad.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::client::{AnswerReply, BeginReply, EnrollReply, EnrollStart, SessionReply};
use crate::error::Refusal;
use crate::handle::Code;
use crate::log::Level;

/// A PAM handle whose user answers from a script and whose screen is a list.
#[derive(Default)]
struct ScriptedPam {
    user: Option<String>,
    rhost: String,
    tty: String,
    auth_info: String,
    /// One entry per prompt; `None` = the conversation fails (Ctrl-D).
    answers: VecDeque<Option<Vec<u8>>>,
    prompts: Vec<String>,
    errors: Vec<String>,
    infos: Vec<String>,
    /// The PAM environment.
    env: BTreeMap<String, String>,
    /// pam_putenv fails (libpam out of memory, say).
    putenv_fails: bool,
    /// PAM_AUTHTOK set by an earlier module.
    password: Option<Vec<u8>>,
    /// pam_set_data.
    data: BTreeMap<String, String>,
}

impl ScriptedPam {
    fn new(answers: &[&[u8]]) -> ScriptedPam {
        ScriptedPam {
            user: Some("alice".into()),
            rhost: "10.0.0.7".into(),
            tty: "ssh".into(),
            auth_info: "publickey ssh-ed25519 AAAA".into(),
            password: None,
            answers: answers.iter().map(|a| Some(a.to_vec())).collect(),
            ..Default::default()
        }
    }
}

impl Pam for ScriptedPam {
    fn user(&mut self) -> Result<String, Error> {
        self.user
            .clone()
            .ok_or_else(|| Error::User("PAM_SYSTEM_ERR".into()))
    }
    fn service(&self) -> String {
        "sshd".into()
    }
    fn rhost(&self) -> String {
        self.rhost.clone()
    }
    fn tty(&self) -> String {
        self.tty.clone()
    }
    fn ssh_auth_info(&self) -> String {
        self.auth_info.clone()
    }
    fn getenv(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn setenv(&mut self, name: &str, value: &str) -> Result<(), Error> {
        if self.putenv_fails {
            return Err(Error::Environment(format!("pam_putenv({name}) returned 5")));
        }
        self.env.insert(name.into(), value.into());
        Ok(())
    }
    fn unsetenv(&mut self, name: &str) -> Result<(), Error> {
        if self.putenv_fails {
            return Err(Error::Environment(format!("pam_putenv({name}) returned 5")));
        }
        // libpam: PAM_BAD_ITEM for a variable that is not set.
        match self.env.remove(name) {
            Some(_) => Ok(()),
            None => Err(Error::Environment(format!(
                "pam_putenv({name}) returned 29"
            ))),
        }
    }
    fn prompt_secret(&mut self, prompt: &str) -> Result<Code, Error> {
        self.prompts.push(prompt.to_string());
        match self.answers.pop_front().flatten() {
            Some(a) => Ok(Code::new(a)),
            None => Err(Error::Conversation("PAM_CONV_ERR".into())),
        }
    }
    fn error_msg(&mut self, message: &str) -> Result<(), Error> {
        self.errors.push(message.to_string());
        Ok(())
    }
    fn password(&self) -> Option<Code> {
        self.password.clone().map(Code::new)
    }
    fn text_info(&mut self, message: &str) -> Result<(), Error> {
        self.infos.push(message.to_string());
        Ok(())
    }
    fn keep(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.data.insert(name.into(), value.into());
        Ok(())
    }
    fn kept(&self, name: &str) -> Option<String> {
        self.data.get(name).cloned()
    }
}

/// An mfad that answers from a script and remembers what it was told.
struct ScriptedDaemon {
    begin: Option<Result<BeginReply, Error>>,
    answers: VecDeque<Result<AnswerReply, Error>>,
    account: Option<Result<AccountReply, Error>>,
    requests: Vec<BeginRequest>,
    /// (attempt, code) per Answer.
    received: Vec<(String, Vec<u8>)>,
    /// (user, service, attempt) per AccountCheck.
    checks: Vec<(String, String, String)>,
    /// EnrollKinds' answer.
    kinds: Vec<String>,
    enroll_starts: VecDeque<Result<EnrollStart, Error>>,
    resends: VecDeque<Result<String, Error>>,
    confirms: VecDeque<Result<EnrollReply, Error>>,
    /// Every enrollment call, as "Method attempt args...".
    enroll_calls: Vec<String>,
    session: Option<Result<SessionReply, Error>>,
    /// (user, service, attempt, tty, xdg_session_id) per OpenSession; ids
    /// per CloseSession.
    opened: Vec<[String; 5]>,
    closed: Vec<String>,
}

/// The attempt token every scripted Begin returns (whatever the action,
/// so that the tests see which actions keep it).
const TOKEN: &str = "tok123";

impl ScriptedDaemon {
    fn begins(action: BeginAction, message: &str) -> ScriptedDaemon {
        ScriptedDaemon {
            begin: Some(Ok(BeginReply {
                action,
                attempt: TOKEN.into(),
                message: message.into(),
            })),
            answers: VecDeque::new(),
            account: None,
            requests: Vec::new(),
            received: Vec::new(),
            checks: Vec::new(),
            kinds: vec!["totp".into()],
            enroll_starts: VecDeque::new(),
            resends: VecDeque::new(),
            confirms: VecDeque::new(),
            enroll_calls: Vec::new(),
            session: None,
            opened: Vec::new(),
            closed: Vec::new(),
        }
    }
    /// An mfad asked only OpenSession (and CloseSession).
    fn opens(reply: Result<SessionReply, Error>) -> ScriptedDaemon {
        ScriptedDaemon {
            begin: None,
            session: Some(reply),
            ..ScriptedDaemon::begins(BeginAction::Ignore, "")
        }
    }
    /// An mfad asked only AccountCheck, which answers `action`.
    fn checks(action: AccountAction, message: &str) -> ScriptedDaemon {
        ScriptedDaemon {
            begin: None,
            account: Some(Ok(AccountReply {
                action,
                message: message.into(),
            })),
            ..ScriptedDaemon::begins(BeginAction::Ignore, "")
        }
    }
    fn check_fails(e: Error) -> ScriptedDaemon {
        ScriptedDaemon {
            begin: None,
            account: Some(Err(e)),
            ..ScriptedDaemon::begins(BeginAction::Ignore, "")
        }
    }
    fn challenge() -> ScriptedDaemon {
        ScriptedDaemon::begins(BeginAction::Challenge, "Verification code: ")
    }
    fn failing(e: Error) -> ScriptedDaemon {
        ScriptedDaemon {
            begin: Some(Err(e)),
            ..ScriptedDaemon::begins(BeginAction::Ignore, "")
        }
    }
    fn then(mut self, result: AnswerResult, message: &str) -> ScriptedDaemon {
        self.answers.push_back(Ok(AnswerReply {
            result,
            message: message.into(),
        }));
        self
    }
    fn then_err(mut self, e: Error) -> ScriptedDaemon {
        self.answers.push_back(Err(e));
        self
    }
}

impl Daemon for ScriptedDaemon {
    fn begin(&mut self, request: &BeginRequest) -> Result<BeginReply, Error> {
        self.requests.push(request.clone());
        self.begin
            .take()
            .unwrap_or_else(|| panic!("Begin called twice"))
    }
    fn answer(&mut self, attempt: &str, code: &[u8]) -> Result<AnswerReply, Error> {
        self.received.push((attempt.to_string(), code.to_vec()));
        self.answers
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected Answer #{}", self.received.len()))
    }
    fn account_check(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<AccountReply, Error> {
        self.checks
            .push((user.into(), service.into(), attempt.into()));
        self.account
            .take()
            .unwrap_or_else(|| panic!("unexpected AccountCheck"))
    }
    fn enroll_kinds(&mut self, attempt: &str) -> Result<Vec<String>, Error> {
        self.enroll_calls.push(format!("EnrollKinds {attempt}"));
        Ok(self.kinds.clone())
    }
    fn enroll_begin(
        &mut self,
        attempt: &str,
        kind: &str,
        phone: &str,
    ) -> Result<EnrollStart, Error> {
        self.enroll_calls
            .push(format!("EnrollBegin {attempt} {kind} {phone}"));
        self.enroll_starts
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected EnrollBegin"))
    }
    fn enroll_resend(&mut self, attempt: &str) -> Result<String, Error> {
        self.enroll_calls.push(format!("EnrollResend {attempt}"));
        self.resends
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected EnrollResend"))
    }
    fn enroll_confirm(&mut self, attempt: &str, codes: &[&str]) -> Result<EnrollReply, Error> {
        self.enroll_calls
            .push(format!("EnrollConfirm {attempt} {}", codes.join(" ")));
        self.confirms
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected EnrollConfirm"))
    }
    fn open_session(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
        tty: &str,
        xdg_session_id: &str,
    ) -> Result<SessionReply, Error> {
        self.opened.push([
            user.into(),
            service.into(),
            attempt.into(),
            tty.into(),
            xdg_session_id.into(),
        ]);
        self.session
            .take()
            .unwrap_or_else(|| panic!("unexpected OpenSession"))
    }
    fn close_session(&mut self, id: &str) -> Result<(), Error> {
        self.closed.push(id.into());
        Ok(())
    }
}

#[derive(Default)]
struct Recorder(Vec<(Level, String)>);

impl Log for Recorder {
    fn log(&mut self, level: Level, message: &str) {
        self.0.push((level, message.to_string()));
    }
}

impl Recorder {
    fn has(&self, level: Level, needle: &str) -> bool {
        self.0
            .iter()
            .any(|(l, m)| *l == level && m.contains(needle))
    }
    /// Whether every line is a debug line (none reaches syslog without
    /// the `debug` argument).
    fn only_debug(&self) -> bool {
        self.0.iter().all(|(l, _)| *l == Level::Debug)
    }
    fn all(&self) -> String {
        self.0
            .iter()
            .map(|(l, m)| format!("{l:?}: {m}\n"))
            .collect()
    }
}

const SECURE: Options = Options {
    failmode: FailMode::Secure,
    silent: false,
};
const SAFE: Options = Options {
    failmode: FailMode::Safe,
    silent: false,
};

fn run(
    pam: &mut ScriptedPam,
    daemon: &mut ScriptedDaemon,
    options: Options,
) -> (Outcome, Recorder) {
    let mut log = Recorder::default();
    let outcome = authenticate(pam, daemon, options, &mut log);
    (outcome, log)
}

#[test]
fn ignore_is_pam_ignore_without_a_prompt() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(BeginAction::Ignore, "");
    let (o, _) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Ignore);
    assert!(pam.prompts.is_empty() && pam.errors.is_empty() && pam.infos.is_empty());
}

/// The grace-period notice comes with `ignore`: shown as info, even under
/// PAM_SILENT, and the outcome stays PAM_IGNORE.
#[test]
fn ignore_with_a_message_shows_it_as_info_even_when_silent() {
    let notice = "2-step verification is required for this account: set it up within 6 days.";
    for silent in [false, true] {
        let mut pam = ScriptedPam::new(&[]);
        let mut d = ScriptedDaemon::begins(BeginAction::Ignore, notice);
        let (o, _) = run(&mut pam, &mut d, Options { silent, ..SECURE });
        assert_eq!(o, Outcome::Ignore);
        assert_eq!(pam.infos, [notice], "silent={silent}");
        assert!(pam.prompts.is_empty() && pam.errors.is_empty());
    }
}

#[test]
fn begin_is_told_who_where_and_how() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(BeginAction::Ignore, "");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(
        d.requests,
        vec![BeginRequest {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: "10.0.0.7".into(),
            tty: "ssh".into(),
            auth_info: "publickey ssh-ed25519 AAAA".into(),
        }]
    );
}

#[test]
fn allow_is_success_with_an_info_message() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(BeginAction::Allow, "Trusted device; no code needed.");
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.infos, ["Trusted device; no code needed."]);
    assert!(pam.prompts.is_empty() && pam.errors.is_empty());
    assert!(
        log.has(Level::Debug, "allowed without a code"),
        "{}",
        log.all()
    );
    assert!(log.only_debug(), "{}", log.all());
}

#[test]
fn pam_silent_hides_info_but_not_errors() {
    let silent = Options {
        silent: true,
        ..SECURE
    };
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(BeginAction::Allow, "Trusted device.");
    assert_eq!(run(&mut pam, &mut d, silent).0, Outcome::Success);
    assert!(pam.infos.is_empty());

    let mut pam = ScriptedPam::new(&[b"1", b"2"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "Welcome.");
    assert_eq!(run(&mut pam, &mut d, silent).0, Outcome::Success);
    assert_eq!(pam.errors, ["Wrong code."]);
    assert!(pam.infos.is_empty());
}

#[test]
fn deny_is_auth_err_with_the_reason() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(
        BeginAction::Deny,
        "Too many failed attempts; try again in 15 minutes.",
    );
    let (o, log) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(
        pam.errors,
        ["Too many failed attempts; try again in 15 minutes."]
    );
    assert!(pam.prompts.is_empty());
    assert!(log.has(Level::Warning, "denied"), "{}", log.all());
}

#[test]
fn challenge_then_success() {
    let mut pam = ScriptedPam::new(&[b"123456"]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.prompts, ["Verification code: "]);
    assert_eq!(d.received, [("tok123".to_string(), b"123456".to_vec())]);
    assert!(pam.errors.is_empty() && pam.infos.is_empty());
    assert!(
        log.has(Level::Debug, "verified; user=alice"),
        "{}",
        log.all()
    );
    // Nothing to log without `debug`: no syslog connection on a good login.
    assert!(log.only_debug(), "{}", log.all());
}

#[test]
fn the_daemons_prompt_is_used_and_an_empty_one_gets_the_default() {
    let mut pam = ScriptedPam::new(&[b"1"]);
    let mut d = ScriptedDaemon::begins(BeginAction::Challenge, "Code from your app: ")
        .then(AnswerResult::Success, "");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(pam.prompts, ["Code from your app: "]);

    let mut pam = ScriptedPam::new(&[b"1"]);
    let mut d = ScriptedDaemon::begins(BeginAction::Challenge, "").then(AnswerResult::Success, "");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(pam.prompts, [DEFAULT_PROMPT]);
}

#[test]
fn the_password_as_answer_is_refused_without_asking_mfad() {
    // sshd's password method answers the code prompt with the password.
    let mut pam = ScriptedPam::new(&[b"hunter2"]);
    pam.password = Some(b"hunter2".to_vec());
    let mut d = ScriptedDaemon::challenge();
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::AuthErr);
    assert!(d.received.is_empty(), "the password went to mfad");
    assert_eq!(pam.errors, [PASSWORD_NOT_CODE]);
    assert!(!log.all().contains("hunter2"));
    assert!(pam.getenv(ATTEMPT_ENV).is_none());

    // A code that differs from the password goes through as usual.
    let mut pam = ScriptedPam::new(&[b"123456"]);
    pam.password = Some(b"hunter2".to_vec());
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
}

#[test]
fn setcred_forgets_a_token_the_account_phase_did_not_take() {
    let mut pam = ScriptedPam::new(&[]);
    pam.env.insert(ATTEMPT_ENV.into(), TOKEN.into());
    let mut log = Recorder::default();
    forget_attempt(&mut pam, &mut log);
    assert!(pam.getenv(ATTEMPT_ENV).is_none());
    assert!(!log.all().contains(TOKEN));
    // Nothing to forget is not an error.
    forget_attempt(&mut pam, &mut log);
    assert!(
        log.0.iter().all(|(l, _)| *l != Level::Error),
        "{}",
        log.all()
    );
}

#[test]
fn retry_then_success() {
    let mut pam = ScriptedPam::new(&[b"111111", b"222222"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "");
    let (o, _) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.prompts.len(), 2);
    assert_eq!(pam.errors, ["Wrong code."]);
    assert_eq!(d.received[1], ("tok123".to_string(), b"222222".to_vec()));
}

#[test]
fn an_empty_retry_message_gets_a_default() {
    let mut pam = ScriptedPam::new(&[b"1", b"2"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "")
        .then(AnswerResult::Success, "");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(pam.errors, [WRONG_CODE]);
}

#[test]
fn three_wrong_codes_are_denied() {
    let mut pam = ScriptedPam::new(&[b"1", b"2", b"3"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Deny, "Wrong code; no tries left.");
    let (o, log) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(pam.prompts.len(), 3);
    assert_eq!(
        pam.errors,
        ["Wrong code.", "Wrong code.", "Wrong code; no tries left."]
    );
    assert!(
        log.has(Level::Warning, "denied after 3 tries"),
        "{}",
        log.all()
    );
}

#[test]
fn a_daemon_that_keeps_saying_retry_gets_three_tries_only() {
    let mut pam = ScriptedPam::new(&[b"1", b"2", b"3", b"4"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong.")
        .then(AnswerResult::Retry, "Wrong.")
        .then(AnswerResult::Retry, "Wrong.");
    let (o, _) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(pam.prompts.len(), MAX_TRIES);
    assert_eq!(d.received.len(), MAX_TRIES);
}

#[test]
fn a_failed_conversation_is_never_success() {
    for failmode in [FailMode::Secure, FailMode::Safe] {
        let opts = Options {
            failmode,
            silent: false,
        };
        // Ctrl-D at the first prompt: nothing is sent to mfad.
        let mut pam = ScriptedPam::new(&[]);
        let mut d = ScriptedDaemon::challenge();
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::ConvErr);
        assert!(d.received.is_empty());
        assert!(
            log.has(Level::Warning, "conversation failed"),
            "{}",
            log.all()
        );

        // ... or at the second.
        let mut pam = ScriptedPam::new(&[b"1"]);
        pam.answers.push_back(None);
        let mut d = ScriptedDaemon::challenge().then(AnswerResult::Retry, "Wrong.");
        assert_eq!(run(&mut pam, &mut d, opts).0, Outcome::ConvErr);
        assert_eq!(d.received.len(), 1);
    }
}

#[test]
fn unreachable_daemon_with_failmode_secure_refuses() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::failing(Error::Unavailable("cannot connect".into()));
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::AuthInfoUnavail);
    assert_eq!(pam.errors, [UNAVAILABLE]);
    assert!(pam.prompts.is_empty());
    assert!(log.has(Level::Error, "failmode=secure"), "{}", log.all());
}

#[test]
fn unreachable_daemon_with_failmode_safe_steps_aside_loudly() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::failing(Error::Unavailable("no answer within 3s".into()));
    let (o, log) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::Ignore);
    assert!(pam.prompts.is_empty() && pam.errors.is_empty());
    assert!(
        log.has(Level::Warning, "NO SECOND FACTOR CHECKED")
            && log.has(Level::Warning, "user=alice"),
        "{}",
        log.all()
    );
}

#[test]
fn losing_the_daemon_after_the_challenge_refuses_in_both_failmodes() {
    for opts in [SECURE, SAFE] {
        let mut pam = ScriptedPam::new(&[b"1", b"2"]);
        let mut d = ScriptedDaemon::challenge()
            .then(AnswerResult::Retry, "Wrong.")
            .then_err(Error::Unavailable("no answer within 3s".into()));
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthInfoUnavail, "{opts:?}");
        assert_eq!(pam.errors.last().map(String::as_str), Some(LOST));
        assert!(log.has(Level::Error, "lost mfad"), "{}", log.all());
    }
}

#[test]
fn daemon_errors_are_auth_err_with_their_message() {
    for opts in [SECURE, SAFE] {
        let mut pam = ScriptedPam::new(&[]);
        let mut d = ScriptedDaemon::failing(Error::Refused(Refusal::new(
            "AccessDenied",
            "You may only verify your own account.",
        )));
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthErr);
        assert_eq!(pam.errors, ["You may only verify your own account."]);
        assert!(log.has(Level::Warning, "AccessDenied"), "{}", log.all());

        let mut pam = ScriptedPam::new(&[b"1"]);
        let mut d = ScriptedDaemon::challenge().then_err(Error::Refused(Refusal::new(
            "Expired",
            "The login took too long; start again.",
        )));
        assert_eq!(run(&mut pam, &mut d, opts).0, Outcome::AuthErr);
        assert_eq!(pam.errors, ["The login took too long; start again."]);
    }
}

#[test]
fn answers_go_to_mfad_as_raw_bytes() {
    let odd: &[u8] = b"\xff\xfe12 34\x00\x7f\xc3";
    let mut pam = ScriptedPam::new(&[odd, b""]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "That is not a code.")
        .then(AnswerResult::Deny, "No.");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(d.received[0].1, odd);
    assert_eq!(d.received[1].1, b"", "an empty answer is an answer");
}

#[test]
fn huge_answers_are_cut_before_they_reach_the_bus() {
    let huge = vec![b'7'; 10 * MAX_CODE_BYTES];
    let mut pam = ScriptedPam::new(&[&huge]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Deny, "No.");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(d.received[0].1.len(), MAX_CODE_BYTES);
    // 10,000 characters still go whole.
    let long = vec![b'1'; 10_000];
    let mut pam = ScriptedPam::new(&[&long]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Deny, "No.");
    run(&mut pam, &mut d, SECURE);
    assert_eq!(d.received[0].1, long);
}

#[test]
fn no_user_is_user_unknown_and_mfad_is_not_asked() {
    let mut pam = ScriptedPam::new(&[]);
    pam.user = None;
    let mut d = ScriptedDaemon::challenge();
    let (o, _) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::UserUnknown);
    assert!(d.requests.is_empty());
}

#[test]
fn codes_and_attempt_tokens_never_reach_the_log() {
    let mut pam = ScriptedPam::new(&[b"246810", b"135791"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "");
    let mut log = Recorder::default();
    let debug_everything = Options {
        failmode: FailMode::Safe,
        silent: false,
    };
    authenticate(&mut pam, &mut d, debug_everything, &mut log);
    let all = log.all();
    assert!(log.0.iter().any(|(l, _)| *l == Level::Debug), "{all}");
    for secret in ["246810", "135791", "tok123", "AAAA"] {
        assert!(!all.contains(secret), "{secret} in log:\n{all}");
    }
}

#[test]
fn outcomes_map_to_their_pam_codes() {
    use pam::constants::PamResultCode as C;
    assert_eq!(Outcome::Success.code(), C::PAM_SUCCESS);
    assert_eq!(Outcome::Ignore.code(), C::PAM_IGNORE);
    assert_eq!(Outcome::AuthErr.code(), C::PAM_AUTH_ERR);
    assert_eq!(Outcome::AuthInfoUnavail.code(), C::PAM_AUTHINFO_UNAVAIL);
    assert_eq!(Outcome::ConvErr.code(), C::PAM_CONV_ERR);
    assert_eq!(Outcome::UserUnknown.code(), C::PAM_USER_UNKNOWN);
    assert_eq!(Outcome::PermDenied.code(), C::PAM_PERM_DENIED);
}

// ---- The attempt token, from the auth phase to the account phase ----

fn token(pam: &ScriptedPam) -> Option<&str> {
    pam.env.get(ATTEMPT_ENV).map(String::as_str)
}

#[test]
fn the_token_is_kept_after_success() {
    let mut pam = ScriptedPam::new(&[b"1", b"2"]);
    let mut d = ScriptedDaemon::challenge()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(token(&pam), Some(TOKEN));
}

#[test]
fn the_token_is_kept_after_allow() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::begins(BeginAction::Allow, "Trusted device.");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(token(&pam), Some(TOKEN));
}

#[test]
fn the_token_is_kept_only_after_success_or_allow() {
    type Case = (&'static str, Vec<&'static [u8]>, ScriptedDaemon, Outcome);
    let cases: Vec<Case> = vec![
        (
            "ignore",
            vec![],
            ScriptedDaemon::begins(BeginAction::Ignore, ""),
            Outcome::Ignore,
        ),
        (
            "deny",
            vec![],
            ScriptedDaemon::begins(BeginAction::Deny, "Locked."),
            Outcome::AuthErr,
        ),
        (
            "answer deny",
            vec![b"1"],
            ScriptedDaemon::challenge().then(AnswerResult::Deny, "No."),
            Outcome::AuthErr,
        ),
        (
            "retries exhausted",
            vec![b"1", b"2", b"3"],
            ScriptedDaemon::challenge()
                .then(AnswerResult::Retry, "Wrong.")
                .then(AnswerResult::Retry, "Wrong.")
                .then(AnswerResult::Retry, "Wrong."),
            Outcome::AuthErr,
        ),
        (
            "conversation fails",
            vec![],
            ScriptedDaemon::challenge(),
            Outcome::ConvErr,
        ),
        (
            "mfad refuses the answer",
            vec![b"1"],
            ScriptedDaemon::challenge()
                .then_err(Error::Refused(Refusal::new("Expired", "Too slow."))),
            Outcome::AuthErr,
        ),
        (
            "mfad lost after the challenge",
            vec![b"1"],
            ScriptedDaemon::challenge().then_err(Error::Unavailable("gone".into())),
            Outcome::AuthInfoUnavail,
        ),
        (
            "mfad unavailable",
            vec![],
            ScriptedDaemon::failing(Error::Unavailable("no bus".into())),
            Outcome::Ignore,
        ),
    ];
    for (what, answers, mut d, expected) in cases {
        let mut pam = ScriptedPam::new(&answers);
        assert_eq!(run(&mut pam, &mut d, SAFE).0, expected, "{what}");
        assert_eq!(token(&pam), None, "{what}");
    }
}

#[test]
fn a_token_left_from_an_earlier_authentication_is_dropped() {
    let mut pam = ScriptedPam::new(&[b"1"]);
    pam.env.insert(ATTEMPT_ENV.into(), "stale".into());
    pam.env.insert("OTHER".into(), "kept".into());
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Deny, "No.");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::AuthErr);
    assert_eq!(token(&pam), None);
    assert_eq!(pam.env.get("OTHER").map(String::as_str), Some("kept"));

    // ... and replaced by this one's after a success.
    let mut pam = ScriptedPam::new(&[b"1"]);
    pam.env.insert(ATTEMPT_ENV.into(), "stale".into());
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(token(&pam), Some(TOKEN));
}

#[test]
fn a_token_that_cannot_be_kept_is_logged_and_changes_nothing() {
    let mut pam = ScriptedPam::new(&[b"1"]);
    pam.putenv_fails = true;
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert!(
        log.has(Level::Warning, "cannot change the PAM environment"),
        "{}",
        log.all()
    );
    assert!(!log.all().contains(TOKEN), "{}", log.all());
}

#[test]
fn an_empty_token_is_not_kept() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon {
        begin: Some(Ok(BeginReply {
            action: BeginAction::Allow,
            attempt: String::new(),
            message: String::new(),
        })),
        ..ScriptedDaemon::begins(BeginAction::Ignore, "")
    };
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(token(&pam), None);
}

// ---- The account phase ----

/// A handle after an auth phase that left `token` (None: it left nothing).
fn after_auth(token: Option<&str>) -> ScriptedPam {
    let mut pam = ScriptedPam::new(&[]);
    if let Some(t) = token {
        pam.env.insert(ATTEMPT_ENV.into(), t.into());
    }
    pam
}

fn check(
    pam: &mut ScriptedPam,
    daemon: &mut ScriptedDaemon,
    options: Options,
) -> (Outcome, Recorder) {
    let mut log = Recorder::default();
    let outcome = account(pam, daemon, options, &mut log);
    (outcome, log)
}

#[test]
fn account_allow_is_success_and_the_token_is_gone() {
    let mut pam = after_auth(Some(TOKEN));
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    let (o, log) = check(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(
        d.checks,
        [("alice".to_string(), "sshd".to_string(), TOKEN.to_string())]
    );
    assert_eq!(token(&pam), None);
    assert!(pam.errors.is_empty() && pam.infos.is_empty() && pam.prompts.is_empty());
    assert!(log.only_debug(), "{}", log.all());
}

#[test]
fn account_ignore_is_pam_ignore_and_the_token_is_gone() {
    let mut pam = after_auth(Some(TOKEN));
    let mut d = ScriptedDaemon::checks(AccountAction::Ignore, "");
    assert_eq!(check(&mut pam, &mut d, SECURE).0, Outcome::Ignore);
    assert_eq!(token(&pam), None);
    assert!(pam.errors.is_empty());
}

#[test]
fn account_deny_is_perm_denied_with_the_reason() {
    for opts in [SECURE, SAFE] {
        let mut pam = after_auth(Some(TOKEN));
        let mut d = ScriptedDaemon::checks(
            AccountAction::Deny,
            "This login did not pass two-step verification.",
        );
        let (o, log) = check(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::PermDenied);
        assert_eq!(
            pam.errors,
            ["This login did not pass two-step verification."]
        );
        assert_eq!(token(&pam), None);
        assert!(
            log.has(Level::Warning, "account denied") && log.has(Level::Warning, "user=alice"),
            "{}",
            log.all()
        );
    }
}

#[test]
fn no_token_asks_with_an_empty_attempt() {
    let mut pam = after_auth(None);
    let mut d = ScriptedDaemon::checks(AccountAction::Deny, "");
    let (o, _) = check(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::PermDenied);
    assert_eq!(d.checks[0].2, "");
    assert_eq!(
        pam.errors,
        [ACCOUNT_DENIED],
        "an empty reason gets a default"
    );
    assert!(pam.env.is_empty());
}

#[test]
fn account_unknown_is_never_a_way_in() {
    // e.g. `challenge`, or anything a newer mfad says.
    for opts in [SECURE, SAFE] {
        let mut pam = after_auth(Some(TOKEN));
        let mut d = ScriptedDaemon::checks(AccountAction::Unknown, "Verification code: ");
        let (o, log) = check(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::PermDenied, "{opts:?}");
        assert!(pam.prompts.is_empty());
        assert_eq!(pam.errors, [ACCOUNT_DENIED]);
        assert_eq!(token(&pam), None);
        assert!(log.has(Level::Error, "does not know"), "{}", log.all());
    }
}

// ---- Version skew: answers this version does not know are refusals ----

/// An error reply from a newer mfad, with a name this version has no
/// variant for.
fn newer_error() -> Error {
    Error::from_reply("Login.Begin", "org.mfad.Mfa1.Error.Bogus", "Something new.")
}

#[test]
fn an_unknown_begin_action_is_auth_err_in_both_failmodes() {
    for opts in [SECURE, SAFE] {
        let mut pam = ScriptedPam::new(&[b"123456"]);
        let mut d = ScriptedDaemon::begins(BeginAction::Unknown, "Verification code: ");
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthErr, "{opts:?}");
        assert!(pam.prompts.is_empty(), "no prompt for an unknown action");
        assert_eq!(pam.errors, [NOT_UNDERSTOOD]);
        assert_eq!(token(&pam), None);
        assert!(log.has(Level::Error, "does not know"), "{}", log.all());
    }
}

#[test]
fn an_unknown_answer_result_is_auth_err_in_both_failmodes() {
    for opts in [SECURE, SAFE] {
        let mut pam = ScriptedPam::new(&[b"123456", b"654321"]);
        let mut d = ScriptedDaemon::challenge().then(AnswerResult::Unknown, "Welcome.");
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthErr, "{opts:?}");
        assert_eq!(d.received.len(), 1, "asked again after an unknown result");
        assert_eq!(pam.errors, [NOT_UNDERSTOOD]);
        assert!(pam.infos.is_empty());
        assert_eq!(token(&pam), None);
        assert!(log.has(Level::Error, "does not know"), "{}", log.all());
    }
}

#[test]
fn an_unknown_mfad_error_is_a_refusal_in_both_failmodes() {
    for opts in [SECURE, SAFE] {
        let mut pam = ScriptedPam::new(&[]);
        let mut d = ScriptedDaemon::failing(newer_error());
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthErr, "{opts:?}");
        assert_eq!(pam.errors, ["Something new."]);
        assert!(log.has(Level::Warning, "(Bogus)"), "{}", log.all());

        let mut pam = ScriptedPam::new(&[b"1"]);
        let mut d = ScriptedDaemon::challenge().then_err(newer_error());
        assert_eq!(run(&mut pam, &mut d, opts).0, Outcome::AuthErr);
        assert_eq!(pam.errors, ["Something new."]);

        let mut pam = after_auth(Some(TOKEN));
        let mut d = ScriptedDaemon::check_fails(newer_error());
        assert_eq!(check(&mut pam, &mut d, opts).0, Outcome::PermDenied);
        assert_eq!(pam.errors, ["Something new."]);
        assert_eq!(token(&pam), None);
    }
}

// ---- The old name of the token, PAM_MFA_SESSION, for one release ----

#[test]
fn the_account_phase_reads_the_old_name_and_removes_it() {
    let mut pam = ScriptedPam::new(&[]);
    pam.env.insert(OLD_ATTEMPT_ENV.into(), TOKEN.into());
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    assert_eq!(check(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(d.checks[0].2, TOKEN);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
}

#[test]
fn the_new_name_wins_and_both_are_removed() {
    let mut pam = after_auth(Some(TOKEN));
    pam.env.insert(OLD_ATTEMPT_ENV.into(), "old".into());
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    assert_eq!(check(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(d.checks[0].2, TOKEN);
    assert!(pam.env.is_empty(), "{:?}", pam.env);

    // Also when refused.
    let mut pam = after_auth(Some(TOKEN));
    pam.env.insert(OLD_ATTEMPT_ENV.into(), "old".into());
    let mut d = ScriptedDaemon::checks(AccountAction::Deny, "No.");
    assert_eq!(check(&mut pam, &mut d, SAFE).0, Outcome::PermDenied);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
}

#[test]
fn setcred_and_a_new_authentication_drop_both_names() {
    let mut log = Recorder::default();
    let mut pam = after_auth(Some(TOKEN));
    pam.env.insert(OLD_ATTEMPT_ENV.into(), TOKEN.into());
    pam.env.insert("OTHER".into(), "kept".into());
    forget_attempt(&mut pam, &mut log);
    assert_eq!(pam.env.keys().collect::<Vec<_>>(), ["OTHER"]);

    let mut pam = ScriptedPam::new(&[b"1"]);
    pam.env.insert(OLD_ATTEMPT_ENV.into(), "stale".into());
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(token(&pam), Some(TOKEN));
    assert_eq!(pam.env.get(OLD_ATTEMPT_ENV), None);
}

#[test]
fn the_token_is_kept_under_the_new_name_only() {
    let mut pam = ScriptedPam::new(&[b"1"]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(
        pam.env,
        BTreeMap::from([("PAM_MFA_ATTEMPT".to_string(), TOKEN.to_string())])
    );
}

#[test]
fn account_mfad_errors_are_perm_denied_in_both_failmodes() {
    for opts in [SECURE, SAFE] {
        let mut pam = after_auth(Some(TOKEN));
        let mut d = ScriptedDaemon::check_fails(Error::Refused(Refusal::new(
            "AccessDenied",
            "You may only check your own account.",
        )));
        let (o, log) = check(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::PermDenied, "{opts:?}");
        assert_eq!(pam.errors, ["You may only check your own account."]);
        assert_eq!(token(&pam), None);
        assert!(log.has(Level::Warning, "AccessDenied"), "{}", log.all());
    }
}

#[test]
fn account_unreachable_daemon_with_failmode_secure_refuses() {
    let mut pam = after_auth(Some(TOKEN));
    let mut d = ScriptedDaemon::check_fails(Error::Unavailable("no answer within 3s".into()));
    let (o, log) = check(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::PermDenied);
    assert_eq!(pam.errors, [UNAVAILABLE]);
    assert_eq!(token(&pam), None);
    assert!(log.has(Level::Error, "failmode=secure"), "{}", log.all());
}

#[test]
fn account_unreachable_daemon_with_failmode_safe_steps_aside_loudly() {
    let mut pam = after_auth(Some(TOKEN));
    let mut d = ScriptedDaemon::check_fails(Error::Unavailable("cannot connect".into()));
    let (o, log) = check(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::Ignore);
    assert!(pam.errors.is_empty());
    assert_eq!(token(&pam), None);
    assert!(
        log.has(Level::Warning, "NO SECOND FACTOR CHECKED")
            && log.has(Level::Warning, "failmode=safe")
            && log.has(Level::Warning, "user=alice"),
        "{}",
        log.all()
    );
}

#[test]
fn account_without_a_user_removes_the_token_and_asks_nobody() {
    let mut pam = after_auth(Some(TOKEN));
    pam.user = None;
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    assert_eq!(check(&mut pam, &mut d, SAFE).0, Outcome::UserUnknown);
    assert!(d.checks.is_empty());
    assert_eq!(token(&pam), None);
}

#[test]
fn account_logs_a_failed_removal_and_keeps_its_answer() {
    let mut pam = after_auth(Some(TOKEN));
    pam.putenv_fails = true;
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    let (o, log) = check(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(d.checks[0].2, TOKEN);
    assert!(
        log.has(Level::Error, "cannot change the PAM environment"),
        "{}",
        log.all()
    );
}

#[test]
fn the_token_never_reaches_the_account_log() {
    for mut d in [
        ScriptedDaemon::checks(AccountAction::Allow, ""),
        ScriptedDaemon::checks(AccountAction::Deny, "No."),
        ScriptedDaemon::check_fails(Error::Unavailable("gone".into())),
    ] {
        let mut pam = after_auth(Some(TOKEN));
        let (_, log) = check(&mut pam, &mut d, SAFE);
        let all = log.all();
        assert!(log.0.iter().any(|(l, _)| *l == Level::Debug), "{all}");
        assert!(!all.contains(TOKEN), "token in log:\n{all}");
    }
}

#[test]
fn auth_then_account_on_one_handle() {
    let mut pam = ScriptedPam::new(&[b"123456"]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    d.account = Some(Ok(AccountReply {
        action: AccountAction::Allow,
        message: String::new(),
    }));
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(check(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(
        d.checks[0].2, TOKEN,
        "the account phase sends Begin's token"
    );
    assert!(pam.env.is_empty(), "nothing left for the session");
}

#[test]
fn an_attempt_mfad_forgot_reads_as_the_service_going_away() {
    let mut pam = ScriptedPam::new(&[b"123456"]);
    let mut d = ScriptedDaemon::challenge().then_err(Error::Refused(Refusal::new(
        "NotFound",
        "No such login attempt.",
    )));
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::AuthErr);
    assert_eq!(pam.errors, [LOST]);
}

// ---- `prompt`: an empty answer sent a code by SMS ----

const APP_OR_SMS: &str = "Verification code (press Enter to get a code by SMS): ";
const SMS_SENT: &str = "Code sent by SMS to +372*****345. Verification code: ";

/// A challenge for a user with an app and a phone.
fn app_and_phone() -> ScriptedDaemon {
    ScriptedDaemon::begins(BeginAction::Challenge, APP_OR_SMS)
}

#[test]
fn a_prompt_answer_becomes_the_next_prompt_and_shows_nothing_else() {
    let mut pam = ScriptedPam::new(&[b"", b"123456"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Success, "");
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.prompts, [APP_OR_SMS, SMS_SENT]);
    assert!(
        pam.errors.is_empty() && pam.infos.is_empty(),
        "errors {:?} infos {:?}",
        pam.errors,
        pam.infos
    );
    assert_eq!(
        d.received,
        [
            (TOKEN.to_string(), b"".to_vec()),
            (TOKEN.to_string(), b"123456".to_vec())
        ]
    );
    assert_eq!(token(&pam), Some(TOKEN));
    assert!(log.has(Level::Debug, "new prompt"), "{}", log.all());
}

#[test]
fn a_prompt_does_not_use_up_a_try() {
    // Wrong, Enter (a code goes out), wrong, right: the right code is the
    // third try and still counts.
    let mut pam = ScriptedPam::new(&[b"111111", b"", b"222222", b"333333"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(d.received.len(), 4);
    assert_eq!(pam.prompts, [APP_OR_SMS, APP_OR_SMS, SMS_SENT, SMS_SENT]);
    assert_eq!(pam.errors, ["Wrong code.", "Wrong code."]);

    // MAX_PROMPTS prompts first, then all MAX_TRIES tries are still there.
    let mut answers: Vec<&[u8]> = vec![b""; MAX_PROMPTS];
    answers.extend([b"1" as &[u8], b"2", b"3"]);
    let mut pam = ScriptedPam::new(&answers);
    let mut d = app_and_phone();
    for _ in 0..MAX_PROMPTS {
        d = d.then(AnswerResult::Prompt, SMS_SENT);
    }
    let mut d = d
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(d.received.len(), MAX_PROMPTS + MAX_TRIES);
}

#[test]
fn prompts_do_not_give_back_tries_either() {
    // A daemon that says retry three times ends the login, prompts between
    // the tries or not.
    let mut pam = ScriptedPam::new(&[b"1", b"", b"2", b"", b"3", b"4"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Retry, "Wrong code.")
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Retry, "Wrong code.");
    let (o, log) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(d.received.len(), MAX_TRIES + 2);
    assert_eq!(pam.answers.len(), 1, "asked once too often");
    assert_eq!(token(&pam), None);
    assert!(log.has(Level::Warning, "3 wrong codes"), "{}", log.all());
}

#[test]
fn more_than_max_prompts_is_auth_err() {
    for opts in [SECURE, SAFE] {
        let answers: Vec<&[u8]> = vec![b""; MAX_PROMPTS + 2];
        let mut pam = ScriptedPam::new(&answers);
        // A daemon that would send codes forever.
        let mut d = app_and_phone();
        for _ in 0..MAX_PROMPTS + 2 {
            d = d.then(AnswerResult::Prompt, SMS_SENT);
        }
        let (o, log) = run(&mut pam, &mut d, opts);
        assert_eq!(o, Outcome::AuthErr, "{opts:?}");
        assert_eq!(pam.prompts.len(), MAX_PROMPTS + 1);
        assert_eq!(d.received.len(), MAX_PROMPTS + 1);
        assert_eq!(d.answers.len(), 1, "Answer called after the limit");
        assert_eq!(pam.errors, [TOO_MANY_PROMPTS]);
        assert_eq!(token(&pam), None);
        assert!(
            log.has(
                Level::Warning,
                &format!("more than {MAX_PROMPTS} new prompts")
            ) && log.has(Level::Warning, "user=alice"),
            "{}",
            log.all()
        );
    }
}

#[test]
fn exactly_max_prompts_then_a_right_code_passes() {
    let mut answers: Vec<&[u8]> = vec![b""; MAX_PROMPTS];
    answers.push(b"123456");
    let mut pam = ScriptedPam::new(&answers);
    let mut d = app_and_phone();
    for _ in 0..MAX_PROMPTS {
        d = d.then(AnswerResult::Prompt, SMS_SENT);
    }
    let mut d = d.then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(pam.prompts.len(), MAX_PROMPTS + 1);
    assert_eq!(token(&pam), Some(TOKEN));
}

#[test]
fn an_empty_answer_reaches_the_daemon() {
    // Plain, and after a password module that left its password: an empty
    // answer is never mistaken for the password.
    for password in [None, Some(b"hunter2".to_vec()), Some(Vec::new())] {
        let mut pam = ScriptedPam::new(&[b"", b"654321"]);
        pam.password = password.clone();
        let mut d = ScriptedDaemon::begins(BeginAction::Challenge, SMS_SENT)
            .then(AnswerResult::Prompt, SMS_SENT)
            .then(AnswerResult::Success, "");
        assert_eq!(
            run(&mut pam, &mut d, SECURE).0,
            Outcome::Success,
            "password {password:?}"
        );
        assert_eq!(d.received[0], (TOKEN.to_string(), Vec::new()));
        assert!(pam.errors.is_empty(), "{:?}", pam.errors);
    }
}

#[test]
fn a_prompt_without_a_message_keeps_the_last_prompt() {
    let mut pam = ScriptedPam::new(&[b"", b"", b"1"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Prompt, "")
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(pam.prompts, [APP_OR_SMS, SMS_SENT, SMS_SENT]);

    // ... and an empty challenge prompt stays the default.
    let mut pam = ScriptedPam::new(&[b"", b"1"]);
    let mut d = ScriptedDaemon::begins(BeginAction::Challenge, "")
        .then(AnswerResult::Prompt, "")
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(pam.prompts, [DEFAULT_PROMPT, DEFAULT_PROMPT]);
}

#[test]
fn a_prompt_then_deny_or_lost_daemon_never_passes() {
    let mut pam = ScriptedPam::new(&[b"", b"1"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Deny, "Too many failed attempts.");
    assert_eq!(run(&mut pam, &mut d, SAFE).0, Outcome::AuthErr);
    assert_eq!(pam.errors, ["Too many failed attempts."]);
    assert_eq!(token(&pam), None);

    let mut pam = ScriptedPam::new(&[b"", b"1"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Prompt, SMS_SENT)
        .then_err(Error::Unavailable("no answer within 3s".into()));
    assert_eq!(run(&mut pam, &mut d, SAFE).0, Outcome::AuthInfoUnavail);
    assert_eq!(pam.errors, [LOST]);
    assert_eq!(token(&pam), None);

    // Ctrl-D at the new prompt.
    let mut pam = ScriptedPam::new(&[b""]);
    pam.answers.push_back(None);
    let mut d = app_and_phone().then(AnswerResult::Prompt, SMS_SENT);
    assert_eq!(run(&mut pam, &mut d, SAFE).0, Outcome::ConvErr);
    assert_eq!(pam.prompts, [APP_OR_SMS, SMS_SENT]);
    assert_eq!(token(&pam), None);
}

#[test]
fn a_send_that_failed_is_a_retry_with_the_daemons_message() {
    // Gateway down or send limit reached: mfad answers `retry` with why.
    let why = "Could not send the code by SMS; use your app or a backup code.";
    let mut pam = ScriptedPam::new(&[b"", b"123456"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Retry, why)
        .then(AnswerResult::Success, "");
    assert_eq!(run(&mut pam, &mut d, SECURE).0, Outcome::Success);
    assert_eq!(pam.errors, [why]);
    assert_eq!(pam.prompts, [APP_OR_SMS, APP_OR_SMS]);
}

#[test]
fn prompt_messages_and_sms_codes_never_reach_the_log() {
    let mut pam = ScriptedPam::new(&[b"", b"480213"]);
    let mut d = app_and_phone()
        .then(AnswerResult::Prompt, SMS_SENT)
        .then(AnswerResult::Success, "");
    let (_, log) = run(&mut pam, &mut d, SAFE);
    let all = log.all();
    for secret in ["480213", TOKEN] {
        assert!(!all.contains(secret), "{secret} in log:\n{all}");
    }
}

#[test]
fn caller_controlled_fields_cannot_forge_log_fields() {
    let user = "eve rhost=10.9.9.9 user=root";
    let rhost = "h tty=x";
    let mut pam = ScriptedPam::new(&[b"123456"]);
    pam.user = Some(user.into());
    pam.rhost = rhost.into();
    pam.tty = "pts/0 user=root".into();
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    let mut log = Recorder::default();
    let o = authenticate(&mut pam, &mut d, SECURE, &mut log);
    assert_eq!(o, Outcome::Success);
    let quoted = "user=\"eve rhost=10.9.9.9 user=root\" rhost=\"h tty=x\"";
    assert!(log.has(Level::Debug, quoted), "{}", log.all());
    assert!(
        log.has(Level::Debug, "tty=\"pts/0 user=root\""),
        "{}",
        log.all()
    );
    // Every mention of the name is the quoted one.
    for (_, m) in &log.0 {
        assert!(!m.contains("user=eve"), "{m}");
    }

    let mut pam = ScriptedPam::new(&[]);
    pam.user = Some(user.into());
    pam.rhost = rhost.into();
    let mut d = ScriptedDaemon::checks(AccountAction::Deny, "No.");
    let mut log = Recorder::default();
    assert_eq!(
        account(&mut pam, &mut d, SECURE, &mut log),
        Outcome::PermDenied
    );
    assert!(log.has(Level::Warning, quoted), "{}", log.all());
}

#[test]
fn a_bad_bus_or_an_impostor_is_refused_in_either_failmode() {
    let errors = || {
        [
            Error::Config("bus=unix:abstract=x is not a single unix:path= D-Bus address".into()),
            Error::Impostor("org.mfad.Mfa1 is owned by :1.5, running as UID 1000, not 0".into()),
        ]
    };
    for options in [SECURE, SAFE] {
        for e in errors() {
            let what = e.to_string();
            let mut pam = ScriptedPam::new(&[]);
            let mut d = ScriptedDaemon::failing(e);
            let (o, log) = run(&mut pam, &mut d, options);
            assert_eq!(o, Outcome::AuthInfoUnavail, "{options:?} {what}");
            assert_eq!(pam.errors, [UNAVAILABLE]);
            assert!(pam.prompts.is_empty());
            assert!(
                log.has(Level::Error, &what) && log.has(Level::Error, "either failmode"),
                "{}",
                log.all()
            );
        }
        for e in errors() {
            let what = e.to_string();
            let mut pam = ScriptedPam::new(&[]);
            let mut d = ScriptedDaemon::check_fails(e);
            let mut log = Recorder::default();
            let o = account(&mut pam, &mut d, options, &mut log);
            assert_eq!(o, Outcome::PermDenied, "{options:?} {what}");
            assert_eq!(pam.errors, [UNAVAILABLE]);
            assert!(log.has(Level::Error, &what), "{}", log.all());
        }
    }
}

/// Break-glass codes for `root` from a list; remembers what was tried.
struct ScriptedGlass {
    codes: Vec<Vec<u8>>,
    tried: Vec<Vec<u8>>,
    broken: bool,
    recent: bool,
}

impl ScriptedGlass {
    fn new() -> ScriptedGlass {
        ScriptedGlass {
            codes: vec![b"abcde-fghjk-mnpqr-stuvw".to_vec()],
            tried: Vec::new(),
            broken: false,
            recent: false,
        }
    }
}

impl BreakGlass for ScriptedGlass {
    fn applies(&self, user: &str) -> bool {
        user == "root"
    }
    fn consume(&mut self, _: &str, code: &[u8]) -> Result<bool, String> {
        self.tried.push(code.to_vec());
        if self.broken {
            return Err("/etc/mfad/break-glass must be root's".into());
        }
        let before = self.codes.len();
        self.codes.retain(|c| c != code);
        Ok(self.codes.len() < before)
    }
    fn used_recently(&mut self, _: &str) -> bool {
        self.recent
    }
}

fn root_pam(answers: &[&[u8]]) -> ScriptedPam {
    ScriptedPam {
        user: Some("root".into()),
        ..ScriptedPam::new(answers)
    }
}

fn glass_run(
    pam: &mut ScriptedPam,
    daemon: &mut ScriptedDaemon,
    glass: &mut ScriptedGlass,
) -> (Outcome, Recorder) {
    let mut log = Recorder::default();
    let outcome = authenticate_with(pam, daemon, glass, SECURE, &mut log);
    (outcome, log)
}

#[test]
fn a_break_glass_code_lets_root_in_once_when_mfad_cannot_be_asked() {
    let down = || ScriptedDaemon::failing(Error::Unavailable("cannot connect".into()));
    let mut glass = ScriptedGlass::new();
    let mut pam = root_pam(&[b"abcde-fghjk-mnpqr-stuvw"]);
    let (o, log) = glass_run(&mut pam, &mut down(), &mut glass);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.prompts, [BREAK_GLASS_PROMPT]);
    assert!(
        log.has(Level::Critical, "BREAK-GLASS CODE USED"),
        "{}",
        log.all()
    );
    assert!(
        !log.all().contains("abcde"),
        "never the code: {}",
        log.all()
    );
    // The same code again: refused.
    let mut pam = root_pam(&[b"abcde-fghjk-mnpqr-stuvw"]);
    assert_eq!(
        glass_run(&mut pam, &mut down(), &mut glass).0,
        Outcome::AuthErr
    );
    assert_eq!(pam.errors, [BREAK_GLASS_WRONG]);
    // Not in breakglass_users: failmode decides, no prompt.
    let mut pam = ScriptedPam::new(&[b"abcde-fghjk-mnpqr-stuvw"]);
    assert_eq!(
        glass_run(&mut pam, &mut down(), &mut ScriptedGlass::new()).0,
        Outcome::AuthInfoUnavail
    );
    assert!(pam.prompts.is_empty());
    // An unusable file: failmode decides.
    let mut broken = ScriptedGlass {
        broken: true,
        ..ScriptedGlass::new()
    };
    let mut pam = root_pam(&[b"abcde-fghjk-mnpqr-stuvw"]);
    let (o, log) = glass_run(&mut pam, &mut down(), &mut broken);
    assert_eq!(o, Outcome::AuthInfoUnavail);
    assert!(log.has(Level::Error, "must be root's"), "{}", log.all());
}

#[test]
fn a_break_glass_code_is_never_asked_for_when_mfad_answers() {
    let mut glass = ScriptedGlass::new();
    // A refusal is not "mfad cannot be asked".
    let mut pam = root_pam(&[b"abcde-fghjk-mnpqr-stuvw"]);
    let mut d = ScriptedDaemon::failing(Error::Refused(Refusal::new("LockedOut", "Locked.")));
    assert_eq!(glass_run(&mut pam, &mut d, &mut glass).0, Outcome::AuthErr);
    // A challenge: the code goes to mfad as a verification code.
    let mut pam = root_pam(&[b"abcde-fghjk-mnpqr-stuvw"]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Deny, "Wrong code.");
    assert_eq!(glass_run(&mut pam, &mut d, &mut glass).0, Outcome::AuthErr);
    assert!(glass.tried.is_empty(), "the file was never consulted");
    assert_eq!(glass.codes.len(), 1);
}

#[test]
fn the_account_phase_after_a_break_glass_login_passes_without_mfad() {
    let down = || ScriptedDaemon::check_fails(Error::Unavailable("cannot connect".into()));
    let mut log = Recorder::default();
    let mut glass = ScriptedGlass {
        recent: true,
        ..ScriptedGlass::new()
    };
    let o = account_with(
        &mut root_pam(&[]),
        &mut down(),
        &mut glass,
        SECURE,
        &mut log,
    );
    assert_eq!(o, Outcome::Success);
    assert!(log.has(Level::Critical, "break-glass"), "{}", log.all());
    let mut glass = ScriptedGlass::new();
    let o = account_with(
        &mut root_pam(&[]),
        &mut down(),
        &mut glass,
        SECURE,
        &mut log,
    );
    assert_eq!(o, Outcome::PermDenied);
}

// ----- Enrollment at login -----------------------------------------------------

const ENROLL_URI: &str =
    "otpauth://totp/host:alice?secret=JBSWY3DPEHPK3PXP&issuer=host&algorithm=SHA1&digits=6&period=30";
const MUST_ENROLL: &str = "2-step verification is required for this account: set it up now.";

fn enrolling(confirms: &[(AnswerResult, &str)]) -> ScriptedDaemon {
    let mut d = ScriptedDaemon::begins(BeginAction::Enroll, MUST_ENROLL);
    d.enroll_starts.push_back(Ok(EnrollStart {
        uri: ENROLL_URI.into(),
        secret: "JBSWY3DPEHPK3PXP".into(),
        message: String::new(),
    }));
    for (result, message) in confirms {
        d.confirms.push_back(Ok(EnrollReply {
            result: *result,
            message: message.to_string(),
            backup_codes: if *result == AnswerResult::Success {
                (0..10).map(|i| format!("1234567{i}")).collect()
            } else {
                Vec::new()
            },
        }));
    }
    d
}

#[test]
fn enroll_shows_the_app_setup_even_under_pam_silent_and_lets_the_user_in() {
    for silent in [false, true] {
        let mut pam = ScriptedPam::new(&[b"111111", b"222222", b"333333", b"444444", b""]);
        let mut d = enrolling(&[
            (AnswerResult::Retry, "The codes do not match."),
            (AnswerResult::Success, "2-step verification is set up."),
        ]);
        let (o, log) = run(&mut pam, &mut d, Options { silent, ..SECURE });
        assert_eq!(o, Outcome::Success, "{}", log.all());
        assert_eq!(
            pam.prompts,
            [
                crate::enroll::CODE1_PROMPT,
                crate::enroll::CODE2_PROMPT,
                crate::enroll::CODE1_PROMPT,
                crate::enroll::CODE2_PROMPT,
                crate::enroll::CONTINUE_PROMPT
            ]
        );
        let infos = pam.infos.join("\n");
        assert_eq!(pam.infos[0], MUST_ENROLL);
        // The same QR code as mfactl draws, the secret in groups, the URI.
        let qr = mfa_api::qr::render(ENROLL_URI).unwrap();
        assert!(infos.contains(qr.trim_end()), "{infos}");
        assert!(infos.contains("JBSW Y3DP EHPK 3PXP"), "{infos}");
        assert!(infos.contains(ENROLL_URI), "{infos}");
        // The backup codes come just before the last prompt.
        let last = pam.infos.last().unwrap();
        assert!(
            last.contains("Backup codes") && last.contains("12345670") && last.contains("12345679"),
            "{last}"
        );
        assert_eq!(pam.errors, ["The codes do not match."]);
        assert_eq!(
            d.enroll_calls,
            [
                format!("EnrollKinds {TOKEN}"),
                format!("EnrollBegin {TOKEN} totp "),
                format!("EnrollConfirm {TOKEN} 111111 222222"),
                format!("EnrollConfirm {TOKEN} 333333 444444"),
            ]
        );
        // Verified, as after a code: the account phase gets the attempt.
        assert_eq!(pam.env.get(ATTEMPT_ENV).map(String::as_str), Some(TOKEN));
    }
}

#[test]
fn enroll_fails_after_mfad_denies_the_third_wrong_pair() {
    let answers: Vec<&[u8]> = vec![b"000000"; 6];
    let mut pam = ScriptedPam::new(&answers);
    let mut d = enrolling(&[
        (AnswerResult::Retry, "Wrong."),
        (AnswerResult::Retry, "Wrong."),
        (AnswerResult::Deny, "No device was set up."),
    ]);
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::AuthErr, "{}", log.all());
    assert_eq!(pam.errors.last().unwrap(), "No device was set up.");
    assert_eq!(pam.prompts.len(), 6);
    assert!(!pam.env.contains_key(ATTEMPT_ENV));
}

#[test]
fn enroll_by_text_message_asks_the_number_again_and_sends_again_on_enter() {
    let mut pam = ScriptedPam::new(&[
        b"sms",
        b"+4915112345678",
        b"+37255512345",
        b"",
        b"123456",
        b"",
    ]);
    let mut d = ScriptedDaemon::begins(BeginAction::Enroll, MUST_ENROLL);
    d.kinds = vec!["totp".into(), "sms".into()];
    d.enroll_starts.push_back(Err(Error::Refused(Refusal::new(
        "InvalidArgument",
        "+491*****678 is not allowed.",
    ))));
    d.enroll_starts.push_back(Ok(EnrollStart {
        message: "Code sent by SMS to +372*****345.".into(),
        ..EnrollStart::default()
    }));
    d.resends
        .push_back(Ok("New code sent by SMS to +372*****345.".into()));
    d.confirms.push_back(Ok(EnrollReply {
        result: AnswerResult::Success,
        message: "Set up.".into(),
        backup_codes: vec!["11112222".into()],
    }));
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success, "{}", log.all());
    use crate::enroll::{CHOICE_PROMPT, CONTINUE_PROMPT, PHONE_PROMPT, SMS_CODE_PROMPT};
    assert_eq!(
        pam.prompts,
        [
            CHOICE_PROMPT,
            PHONE_PROMPT,
            PHONE_PROMPT,
            SMS_CODE_PROMPT,
            SMS_CODE_PROMPT,
            CONTINUE_PROMPT
        ]
    );
    assert_eq!(pam.errors, ["+491*****678 is not allowed."]);
    assert!(pam.infos.iter().any(|i| i.contains("New code sent")));
    assert_eq!(
        d.enroll_calls[1..],
        [
            format!("EnrollBegin {TOKEN} sms +4915112345678"),
            format!("EnrollBegin {TOKEN} sms +37255512345"),
            format!("EnrollResend {TOKEN}"),
            format!("EnrollConfirm {TOKEN} 123456"),
        ]
    );
}

#[test]
fn enroll_choice_enter_means_the_app() {
    let mut pam = ScriptedPam::new(&[b"", b"111111", b"222222", b""]);
    let mut d = enrolling(&[(AnswerResult::Success, "")]);
    d.kinds = vec!["totp".into(), "sms".into()];
    let (o, log) = run(&mut pam, &mut d, SECURE);
    assert_eq!(o, Outcome::Success, "{}", log.all());
    assert_eq!(pam.prompts[0], crate::enroll::CHOICE_PROMPT);
    assert_eq!(d.enroll_calls[1], format!("EnrollBegin {TOKEN} totp "));
}

#[test]
fn enroll_never_sends_the_password_and_fails_closed_when_mfad_goes() {
    let mut pam = ScriptedPam::new(&[b"hunter2"]);
    pam.password = Some(b"hunter2".to_vec());
    let mut d = enrolling(&[]);
    let (o, _) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthErr);
    assert!(!d.enroll_calls.iter().any(|c| c.contains("hunter2")));
    assert_eq!(pam.errors, [PASSWORD_NOT_CODE]);

    let mut pam = ScriptedPam::new(&[b"111111", b"222222"]);
    let mut d = enrolling(&[]);
    d.confirms
        .push_back(Err(Error::Unavailable("no answer".into())));
    let (o, _) = run(&mut pam, &mut d, SAFE);
    assert_eq!(o, Outcome::AuthInfoUnavail, "failmode=safe does not apply");
    assert_eq!(pam.errors, [LOST]);
    assert!(!pam.env.contains_key(ATTEMPT_ENV));
}

// ----- the session phase ---------------------------------------------------

fn limited(id: &str) -> Result<SessionReply, Error> {
    Ok(SessionReply {
        id: id.into(),
        ends: 2000,
        message: "This session lasts 4h (session duration).".into(),
    })
}

#[test]
fn a_login_that_passed_is_limited_and_closed() {
    let mut pam = ScriptedPam::new(&[b"123456"]);
    let mut d = ScriptedDaemon::challenge().then(AnswerResult::Success, "");
    let mut log = Recorder::default();
    assert_eq!(
        authenticate(&mut pam, &mut d, SECURE, &mut log),
        Outcome::Success
    );
    let mut d = ScriptedDaemon::opens(limited("s1"));
    pam.env.insert("XDG_SESSION_ID".into(), "c3".into());
    assert_eq!(
        open_session(&mut pam, &mut d, SECURE, &mut log),
        Outcome::Success
    );
    assert_eq!(
        d.opened,
        [["alice", "sshd", TOKEN, "ssh", "c3"].map(String::from)]
    );
    assert_eq!(
        pam.infos.last().unwrap(),
        "This session lasts 4h (session duration)."
    );
    assert_eq!(close_session(&mut pam, &mut d, &mut log), Outcome::Success);
    assert_eq!(d.closed, ["s1"]);
}

#[test]
fn the_account_phase_keeps_the_attempt_for_the_session() {
    let mut pam = ScriptedPam::new(&[]);
    pam.env.insert(ATTEMPT_ENV.into(), "tok9".into());
    let mut d = ScriptedDaemon::checks(AccountAction::Allow, "");
    let mut log = Recorder::default();
    account(&mut pam, &mut d, SECURE, &mut log);
    assert_eq!(pam.kept(ATTEMPT_DATA).as_deref(), Some("tok9"));
}

#[test]
fn without_a_kept_attempt_mfad_finds_the_login() {
    // sshd: the auth and account phases ran in a child process.
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::opens(limited("s2"));
    let mut log = Recorder::default();
    assert_eq!(
        open_session(&mut pam, &mut d, SECURE, &mut log),
        Outcome::Success
    );
    assert_eq!(d.opened[0][2], "", "no token");
    assert_eq!(close_session(&mut pam, &mut d, &mut log), Outcome::Success);
    assert_eq!(d.closed, ["s2"]);
}

#[test]
fn nothing_to_close_without_a_session() {
    let mut pam = ScriptedPam::new(&[]);
    let mut d = ScriptedDaemon::opens(limited("never"));
    let mut log = Recorder::default();
    assert_eq!(close_session(&mut pam, &mut d, &mut log), Outcome::Ignore);
    assert!(d.closed.is_empty());
}

#[test]
fn a_session_mfad_does_not_limit_is_ignored() {
    let mut pam = ScriptedPam::new(&[]);
    pam.data.insert(ATTEMPT_DATA.into(), "tok".into());
    let mut d = ScriptedDaemon::opens(limited(""));
    let mut log = Recorder::default();
    assert_eq!(
        open_session(&mut pam, &mut d, SECURE, &mut log),
        Outcome::Ignore
    );
    assert_eq!(pam.kept(SESSION_DATA), None);
}

#[test]
fn an_unavailable_mfad_refuses_the_session_only_in_secure_mode() {
    for (mode, want) in [(SECURE, Outcome::SessionErr), (SAFE, Outcome::Ignore)] {
        let mut pam = ScriptedPam::new(&[]);
        pam.data.insert(ATTEMPT_DATA.into(), "tok".into());
        let mut d = ScriptedDaemon::opens(Err(Error::Unavailable("no bus".into())));
        let mut log = Recorder::default();
        assert_eq!(open_session(&mut pam, &mut d, mode, &mut log), want);
        if mode == SAFE {
            assert!(log.has(Level::Warning, "WITHOUT ITS DURATION LIMIT"));
        } else {
            assert_eq!(pam.errors, [SESSION_UNAVAILABLE]);
        }
    }
    // An impostor is refused in either mode.
    let mut pam = ScriptedPam::new(&[]);
    pam.data.insert(ATTEMPT_DATA.into(), "tok".into());
    let mut d = ScriptedDaemon::opens(Err(Error::Impostor("uid 1000".into())));
    let mut log = Recorder::default();
    assert_eq!(
        open_session(&mut pam, &mut d, SAFE, &mut log),
        Outcome::SessionErr
    );
}
