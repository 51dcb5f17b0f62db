//! Version skew fails closed: the real D-Bus client, through a real
//! private dbus-daemon, against a fake mfad (served in this process) that
//! answers with values and errors this version does not know, as a newer
//! mfad might. With `failmode=safe`, where an unreachable mfad means
//! PAM_IGNORE, each of them must still be a refusal.
//!
//! Also the token's old name, `PAM_MFA_SESSION`, over the real bus.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{serve_fake_mfad, wait_for_owner, Bus};
use pam::constants::PamResultCode;
use pam_mfa::args::FailMode;
use pam_mfa::flow::{self, Options, Outcome, ATTEMPT_ENV, NOT_UNDERSTOOD, OLD_ATTEMPT_ENV};
use pam_mfa::handle::{Code, Pam};
use pam_mfa::log::{Level, Log};
use pam_mfa::Error;

/// The errors of an mfad newer than this module: one it knows, one not.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.mfad.Mfa1.Error")]
enum NewerError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Bogus(String),
}

const GOOD_CODE: &[u8] = b"123456";
const PROMPT: &str = "Verification code: ";

/// A newer mfad. What it answers depends on the user name (Begin,
/// AccountCheck) or the attempt token (Answer); plain strings, so it can
/// say what no enum of this version has.
struct NewerLogin;

#[zbus::interface(name = "org.mfad.Mfa1.Login")]
impl NewerLogin {
    async fn begin(
        &self,
        user: String,
        _service: String,
        _rhost: String,
        _tty: String,
        _auth_info: String,
    ) -> Result<(String, String, String), NewerError> {
        match user.as_str() {
            "bogus-begin" => Ok(("bogus".into(), format!("attempt-of-{user}"), PROMPT.into())),
            "bogus-error" => Err(NewerError::Bogus("Something new.".into())),
            _ => Ok((
                "challenge".into(),
                format!("attempt-of-{user}"),
                PROMPT.into(),
            )),
        }
    }

    async fn answer(&self, attempt: String, code: Vec<u8>) -> Result<(String, String), NewerError> {
        match attempt.as_str() {
            "attempt-of-bogus-answer" => Ok(("bogus".into(), "Welcome.".into())),
            "attempt-of-bogus-answer-error" => Err(NewerError::Bogus("Something new.".into())),
            _ if code == GOOD_CODE => Ok(("success".into(), String::new())),
            _ => Ok(("retry".into(), "Wrong code.".into())),
        }
    }

    async fn account_check(
        &self,
        user: String,
        _service: String,
        attempt: String,
    ) -> Result<(String, String), NewerError> {
        match user.as_str() {
            "bogus-check" => Ok(("bogus".into(), String::new())),
            // A Begin action, never an AccountCheck one.
            "challenge-check" => Ok(("challenge".into(), PROMPT.into())),
            "bogus-error" => Err(NewerError::Bogus("Something new.".into())),
            _ if attempt == format!("attempt-of-{user}") => Ok(("allow".into(), String::new())),
            _ => Ok(("deny".into(), "Not verified.".into())),
        }
    }
}

/// A PAM handle for `user` whose user types `answers`.
struct Screen {
    user: String,
    answers: Vec<&'static [u8]>,
    prompts: Vec<String>,
    errors: Vec<String>,
    infos: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Screen {
    fn new(user: &str, answers: Vec<&'static [u8]>) -> Screen {
        Screen {
            user: user.into(),
            answers,
            prompts: Vec::new(),
            errors: Vec::new(),
            infos: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

impl Pam for Screen {
    fn user(&mut self) -> Result<String, Error> {
        Ok(self.user.clone())
    }
    fn service(&self) -> String {
        "skew".into()
    }
    fn rhost(&self) -> String {
        String::new()
    }
    fn tty(&self) -> String {
        String::new()
    }
    fn ssh_auth_info(&self) -> String {
        String::new()
    }
    fn getenv(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn setenv(&mut self, name: &str, value: &str) -> Result<(), Error> {
        self.env.insert(name.into(), value.into());
        Ok(())
    }
    fn unsetenv(&mut self, name: &str) -> Result<(), Error> {
        self.env
            .remove(name)
            .map(drop)
            .ok_or_else(|| Error::Environment(name.into()))
    }
    fn prompt_secret(&mut self, prompt: &str) -> Result<Code, Error> {
        self.prompts.push(prompt.into());
        if self.answers.is_empty() {
            return Err(Error::Conversation("no more answers".into()));
        }
        Ok(Code::new(self.answers.remove(0).to_vec()))
    }
    fn error_msg(&mut self, message: &str) -> Result<(), Error> {
        self.errors.push(message.into());
        Ok(())
    }
    fn text_info(&mut self, message: &str) -> Result<(), Error> {
        self.infos.push(message.into());
        Ok(())
    }
    fn password(&self) -> Option<Code> {
        None
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
}

const SAFE: Options = Options {
    failmode: FailMode::Safe,
    silent: false,
};

/// One authentication over the bus, as `pam_sm_authenticate` runs it.
fn authenticate(bus: &str, pam: &mut Screen) -> (Outcome, Recorder) {
    let mut log = Recorder::default();
    let mut daemon = common::client(bus, Duration::from_secs(5));
    let outcome = flow::authenticate(pam, &mut daemon, SAFE, &mut log);
    daemon.close();
    (outcome, log)
}

/// One account check over the bus, as `pam_sm_acct_mgmt` runs it.
fn account(bus: &str, pam: &mut Screen) -> (Outcome, Recorder) {
    let mut log = Recorder::default();
    let mut daemon = common::client(bus, Duration::from_secs(5));
    let outcome = flow::account(pam, &mut daemon, SAFE, &mut log);
    daemon.close();
    (outcome, log)
}

/// A private bus with the newer mfad on it.
fn newer_mfad() -> Bus {
    let bus = Bus::start("skew");
    serve_fake_mfad(&bus.address, NewerLogin);
    wait_for_owner(&bus.address);
    bus
}

#[test]
fn without_mfad_failmode_safe_steps_aside() {
    // The control: what the cases below must never turn into.
    let bus = Bus::start("skew-control");
    let mut pam = Screen::new("carol", vec![GOOD_CODE]);
    let (o, log) = authenticate(&bus.address, &mut pam);
    assert_eq!(o, Outcome::Ignore);
    assert!(log.has(Level::Warning, "NO SECOND FACTOR CHECKED"));
    let mut pam = Screen::new("carol", vec![]);
    assert_eq!(account(&bus.address, &mut pam).0, Outcome::Ignore);
}

#[test]
fn the_newer_mfad_lets_a_right_code_in() {
    // The fake speaks the known values too: the refusals below are not
    // its doing.
    let bus = newer_mfad();
    let mut pam = Screen::new("carol", vec![b"000000", GOOD_CODE]);
    let (o, _) = authenticate(&bus.address, &mut pam);
    assert_eq!(o, Outcome::Success);
    assert_eq!(pam.errors, ["Wrong code."]);
    assert_eq!(
        pam.env.get(ATTEMPT_ENV).map(String::as_str),
        Some("attempt-of-carol")
    );
    assert_eq!(account(&bus.address, &mut pam).0, Outcome::Success);
    assert!(pam.env.is_empty());
}

#[test]
fn an_unknown_begin_action_is_auth_err() {
    let bus = newer_mfad();
    let mut pam = Screen::new("bogus-begin", vec![GOOD_CODE]);
    let (o, log) = authenticate(&bus.address, &mut pam);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(o.code(), PamResultCode::PAM_AUTH_ERR);
    assert!(pam.prompts.is_empty(), "prompted: {:?}", pam.prompts);
    assert_eq!(pam.errors, [NOT_UNDERSTOOD]);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
    assert!(log.has(Level::Error, "does not know"));
}

#[test]
fn an_unknown_answer_result_is_auth_err() {
    let bus = newer_mfad();
    let mut pam = Screen::new("bogus-answer", vec![GOOD_CODE, GOOD_CODE]);
    let (o, log) = authenticate(&bus.address, &mut pam);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(o.code(), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(pam.prompts, [PROMPT], "asked again after an unknown result");
    assert_eq!(pam.errors, [NOT_UNDERSTOOD]);
    assert!(pam.infos.is_empty(), "{:?}", pam.infos);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
    assert!(log.has(Level::Error, "does not know"));
}

#[test]
fn an_unknown_account_action_is_perm_denied() {
    let bus = newer_mfad();
    for user in ["bogus-check", "challenge-check"] {
        let mut pam = Screen::new(user, vec![]);
        pam.env
            .insert(ATTEMPT_ENV.into(), format!("attempt-of-{user}"));
        let (o, log) = account(&bus.address, &mut pam);
        assert_eq!(o, Outcome::PermDenied, "{user}: {:?}", log.0);
        assert_eq!(o.code(), PamResultCode::PAM_PERM_DENIED);
        assert!(pam.prompts.is_empty());
        assert_eq!(pam.errors, [flow::ACCOUNT_DENIED]);
        assert!(pam.env.is_empty(), "{:?}", pam.env);
        assert!(log.has(Level::Error, "does not know"), "{user}");
    }
}

#[test]
fn an_unknown_mfad_error_is_a_refusal() {
    let bus = newer_mfad();

    let mut pam = Screen::new("bogus-error", vec![GOOD_CODE]);
    let (o, log) = authenticate(&bus.address, &mut pam);
    assert_eq!(o.code(), PamResultCode::PAM_AUTH_ERR);
    assert!(pam.prompts.is_empty());
    assert_eq!(pam.errors, ["Something new."]);
    assert!(log.has(Level::Warning, "(Bogus)"));

    let mut pam = Screen::new("bogus-answer-error", vec![GOOD_CODE]);
    let (o, _) = authenticate(&bus.address, &mut pam);
    assert_eq!(o.code(), PamResultCode::PAM_AUTH_ERR);
    assert_eq!(pam.errors, ["Something new."]);
    assert!(pam.env.is_empty(), "{:?}", pam.env);

    let mut pam = Screen::new("bogus-error", vec![]);
    pam.env
        .insert(ATTEMPT_ENV.into(), "attempt-of-bogus-error".into());
    let (o, _) = account(&bus.address, &mut pam);
    assert_eq!(o.code(), PamResultCode::PAM_PERM_DENIED);
    assert_eq!(pam.errors, ["Something new."]);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
}

#[test]
fn the_old_token_name_still_counts_for_one_release() {
    let bus = newer_mfad();
    // An auth phase by the module before the rename left the old name.
    let mut pam = Screen::new("carol", vec![]);
    pam.env
        .insert(OLD_ATTEMPT_ENV.into(), "attempt-of-carol".into());
    assert_eq!(account(&bus.address, &mut pam).0, Outcome::Success);
    assert!(pam.env.is_empty(), "{:?}", pam.env);

    // The new name is read first; both go.
    let mut pam = Screen::new("carol", vec![]);
    pam.env
        .insert(ATTEMPT_ENV.into(), "attempt-of-carol".into());
    pam.env.insert(OLD_ATTEMPT_ENV.into(), "forged".into());
    assert_eq!(account(&bus.address, &mut pam).0, Outcome::Success);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
    let mut pam = Screen::new("carol", vec![]);
    pam.env.insert(ATTEMPT_ENV.into(), "forged".into());
    pam.env
        .insert(OLD_ATTEMPT_ENV.into(), "attempt-of-carol".into());
    assert_eq!(account(&bus.address, &mut pam).0, Outcome::PermDenied);
    assert!(pam.env.is_empty(), "{:?}", pam.env);
}
