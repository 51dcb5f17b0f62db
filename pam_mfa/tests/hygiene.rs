//! The real D-Bus client against a real private dbus-daemon and a fake
//! mfad (served in this process), with the threads (/proc/self/task) and
//! descriptors (/proc/self/fd) of this process compared before and after
//! every path: success, retry, refusal, no owner, no bus, a hung daemon, a
//! hung bus, and the account check after them. Also that the conversation
//! (between Begin and Answer) runs with no extra thread alive.
//!
//! One #[test] only: other tests' threads would muddle the counts.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{serve_fake_mfad, wait_for, wait_for_owner, Bus};
use mfa_api::{AccountAction, AnswerResult, BeginAction};
use pam_mfa::args::FailMode;
use pam_mfa::client::{BeginRequest, Daemon};
use pam_mfa::flow::{self, Options, Outcome};
use pam_mfa::handle::{Code, Pam};
use pam_mfa::log::{Level, Log};
use pam_mfa::Error;

/// Threads and open descriptors (with their targets) of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    threads: Vec<String>,
    fds: BTreeMap<String, String>,
}

fn snapshot() -> Snapshot {
    let mut threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok())
        .map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), comm.trim())
        })
        .collect();
    threads.sort();
    let own = format!("/proc/{}/fd", std::process::id());
    let mut fds = BTreeMap::new();
    for e in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
    {
        let target = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if target != own && target != "/proc/self/fd" {
            fds.insert(e.file_name().to_string_lossy().into_owned(), target);
        }
    }
    Snapshot { threads, fds }
}

#[track_caller]
fn assert_same(before: &Snapshot, what: &str) {
    let after = snapshot();
    assert_eq!(&after, before, "{what}: threads or descriptors differ");
}

/// The fake mfad: what it does depends on the user name.
struct FakeLogin;

const GOOD_CODE: &[u8] = b"123456";

#[zbus::interface(name = "org.mfad.Mfa1.Login")]
impl FakeLogin {
    async fn begin(
        &self,
        user: String,
        _service: String,
        _rhost: String,
        _tty: String,
        _auth_info: String,
    ) -> zbus::fdo::Result<(BeginAction, String, String)> {
        match user.as_str() {
            "ignored" => Ok((BeginAction::Ignore, String::new(), String::new())),
            "hung" => std::future::pending().await,
            "refused" => Err(zbus::fdo::Error::Failed("no".into())),
            _ => Ok((
                BeginAction::Challenge,
                format!("attempt-of-{user}"),
                "Verification code: ".into(),
            )),
        }
    }

    async fn answer(&self, attempt: String, code: Vec<u8>) -> (AnswerResult, String) {
        if attempt.starts_with("attempt-of-") && code == GOOD_CODE {
            (AnswerResult::Success, String::new())
        } else {
            (AnswerResult::Retry, "Wrong code.".into())
        }
    }

    async fn account_check(
        &self,
        user: String,
        _service: String,
        attempt: String,
    ) -> zbus::fdo::Result<(AccountAction, String)> {
        match user.as_str() {
            "ignored" => Ok((AccountAction::Ignore, String::new())),
            "hung" => std::future::pending().await,
            _ if attempt == format!("attempt-of-{user}") => {
                Ok((AccountAction::Allow, String::new()))
            }
            _ => Ok((AccountAction::Deny, "Not verified.".into())),
        }
    }
}

fn request(user: &str) -> BeginRequest {
    BeginRequest {
        user: user.into(),
        service: "hygiene".into(),
        ..Default::default()
    }
}

/// A conversation that answers from a list and checks, at every prompt,
/// that no thread is running besides those there before.
struct Typist {
    answers: Vec<&'static [u8]>,
    baseline_threads: Vec<String>,
    prompts: usize,
    env: HashMap<String, String>,
}

impl Pam for Typist {
    fn user(&mut self) -> Result<String, Error> {
        Ok("carol".into())
    }
    fn service(&self) -> String {
        "hygiene".into()
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
    fn prompt_secret(&mut self, _prompt: &str) -> Result<Code, Error> {
        // The user takes their time: nothing may run meanwhile.
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            snapshot().threads,
            self.baseline_threads,
            "a thread runs during the conversation"
        );
        self.prompts += 1;
        if self.answers.is_empty() {
            return Err(Error::Conversation("no more answers".into()));
        }
        Ok(Code::new(self.answers.remove(0).to_vec()))
    }
    fn error_msg(&mut self, _message: &str) -> Result<(), Error> {
        Ok(())
    }
    fn text_info(&mut self, _message: &str) -> Result<(), Error> {
        Ok(())
    }
    fn password(&self) -> Option<Code> {
        None
    }
}

struct NoLog;
impl Log for NoLog {
    fn log(&mut self, _level: Level, _message: &str) {}
}

const SECURE: Options = Options {
    failmode: FailMode::Secure,
    silent: false,
};

fn typist(answers: Vec<&'static [u8]>, base: &Snapshot) -> Typist {
    Typist {
        answers,
        baseline_threads: base.threads.clone(),
        prompts: 0,
        env: HashMap::new(),
    }
}

fn authenticate(bus: &str, answers: Vec<&'static [u8]>, base: &Snapshot) -> (Outcome, usize) {
    let mut pam = typist(answers, base);
    let outcome = authenticate_with(&mut pam, bus);
    (outcome, pam.prompts)
}

fn authenticate_with(pam: &mut Typist, bus: &str) -> Outcome {
    let mut daemon = common::client(bus, Duration::from_secs(5));
    let outcome = flow::authenticate(pam, &mut daemon, SECURE, &mut NoLog);
    daemon.close();
    outcome
}

/// The account phase on `pam`'s environment, as `pam_sm_acct_mgmt` runs it.
fn account(pam: &mut Typist, bus: &str, timeout: Duration) -> Outcome {
    let mut daemon = common::client(bus, timeout);
    let outcome = flow::account(pam, &mut daemon, SECURE, &mut NoLog);
    daemon.close();
    outcome
}

#[test]
fn the_client_leaves_no_thread_and_no_descriptor_behind() {
    let bus = Bus::start("hygiene");
    let base = snapshot();

    // No socket at all.
    let nowhere = format!(
        "unix:path={}",
        Path::new(&bus.dir).join("nothing").display()
    );
    let mut d = common::client(&nowhere, Duration::from_secs(5));
    let r = d.begin(&request("carol"));
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    d.close();
    assert_same(&base, "no socket");
    let mut pam = typist(vec![], &base);
    assert_eq!(
        account(&mut pam, &nowhere, Duration::from_secs(5)),
        Outcome::PermDenied
    );
    assert_same(&base, "account check, no socket");

    // A bus, but nobody owns org.mfad.Mfa1.
    let start = Instant::now();
    let mut d = common::client(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request("carol"));
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("no owner for org.mfad.Mfa1")),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "no owner must not wait"
    );
    drop(d);
    assert_same(&base, "no owner");

    // The bus hangs (SIGSTOP): the connect times out.
    bus.signal(libc::SIGSTOP);
    let start = Instant::now();
    let mut d = common::client(&bus.address, Duration::from_secs(1));
    let r = d.begin(&request("carol"));
    bus.signal(libc::SIGCONT);
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("within 1s")),
        "{r:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    d.close();
    assert_same(&base, "hung bus");

    serve_fake_mfad(&bus.address, FakeLogin);
    wait_for_owner(&bus.address);
    // The fake mfad's thread (and its socket) are part of the picture now.
    let base = snapshot();

    // Challenge, a wrong code, the right one.
    let (o, prompts) = authenticate(&bus.address, vec![b"000000", GOOD_CODE], &base);
    assert_eq!((o, prompts), (Outcome::Success, 2));
    assert_same(&base, "retry then success");

    // Three wrong codes.
    let (o, prompts) = authenticate(&bus.address, vec![b"1", b"\xff\xfe", b""], &base);
    assert_eq!((o, prompts), (Outcome::AuthErr, 3));
    assert_same(&base, "three wrong codes");

    // The conversation fails after a challenge.
    let (o, _) = authenticate(&bus.address, vec![], &base);
    assert_eq!(o, Outcome::ConvErr);
    assert_same(&base, "conversation failure");

    // mfad answers with an error.
    let mut d = common::client(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request("refused"));
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    d.close();
    assert_same(&base, "error reply");

    // Ignore.
    let mut d = common::client(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request("ignored")).expect("begin");
    assert_eq!(r.action, BeginAction::Ignore);
    d.close();
    assert_same(&base, "ignore");

    // mfad hangs in Begin: the call times out after `timeout`.
    let start = Instant::now();
    let mut d = common::client(&bus.address, Duration::from_secs(1));
    let r = d.begin(&request("hung"));
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("Login.Begin")),
        "{r:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    d.close();
    assert_same(&base, "hung mfad");

    // Dropped without close, in the middle of a login.
    let mut d = common::client(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request("dave")).expect("begin");
    assert_eq!(r.action, BeginAction::Challenge);
    assert_eq!(snapshot().threads, base.threads, "no thread between steps");
    drop(d);
    assert_same(&base, "dropped mid-login");

    // The account phase after a login, and without one; mfad hangs in
    // AccountCheck.
    let mut pam = typist(vec![GOOD_CODE], &base);
    assert_eq!(authenticate_with(&mut pam, &bus.address), Outcome::Success);
    assert_eq!(
        account(&mut pam, &bus.address, Duration::from_secs(5)),
        Outcome::Success
    );
    assert!(pam.env.is_empty());
    assert_same(&base, "account check after a login");
    let mut pam = typist(vec![], &base);
    assert_eq!(
        account(&mut pam, &bus.address, Duration::from_secs(5)),
        Outcome::PermDenied
    );
    assert_same(&base, "account check without a login");
    let mut pam = Typist {
        env: HashMap::from([(flow::ATTEMPT_ENV.to_string(), "forged".to_string())]),
        ..typist(vec![], &base)
    };
    assert_eq!(
        account(&mut pam, &bus.address, Duration::from_secs(5)),
        Outcome::PermDenied
    );
    assert!(pam.env.is_empty(), "the token is removed when refused too");
    assert_same(&base, "account check with a forged token");
    let start = Instant::now();
    let mut d = common::client(&bus.address, Duration::from_secs(1));
    let r = d.account_check("hung", "hygiene", "x");
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("Login.AccountCheck")),
        "{r:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    d.close();
    assert_same(&base, "hung account check");

    // Many in a row, quickly.
    for _ in 0..20 {
        let (o, _) = authenticate(
            &bus.address,
            vec![GOOD_CODE],
            &Snapshot {
                threads: base.threads.clone(),
                fds: BTreeMap::new(),
            },
        );
        assert_eq!(o, Outcome::Success);
    }
    assert_same(&base, "twenty logins");

    // Control, and the reason for pam_mfa::runtime: on zbus's default
    // runtime, a connection still alive when `zbus::block_on` returns is
    // handed to a helper thread, which outlives the last call by a moment.
    // (This also shows the snapshots do see threads.)
    let conn = zbus::block_on(mfa_api::connect(&bus.address)).expect("connect");
    assert_ne!(
        snapshot().threads,
        base.threads,
        "zbus's default runtime no longer starts a helper thread between block_on calls; \
         pam_mfa::runtime may no longer be needed"
    );
    let _ = zbus::block_on(conn.close());
    wait_for(
        || snapshot().threads == base.threads,
        "the helper thread to end",
    );
}
