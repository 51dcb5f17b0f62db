//! Who pam_mfa talks to: over a real private dbus-daemon whose policy lets
//! any user own org.mfad.Mfa1, a fake mfad running as a user other than
//! root is an impostor, refused before any call; and a bus reached through
//! an abstract socket (a name any local user can bind first) is a
//! configuration error. Both refuse in either failmode.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{serve_fake_mfad, wait_for_owner, Bus};
use pam_mfa::client::{BeginRequest, Daemon, LeanDaemon};
use pam_mfa::Error;

/// Set in the child this test starts: serve a fake mfad on this bus.
const CHILD_BUS: &str = "PAM_MFA_TEST_IMPOSTOR_BUS";
/// Who runs the impostor when the test runs as root.
const NOBODY: u32 = 65534;

/// An mfad that lets everyone in without a code.
struct Welcoming;

#[zbus::interface(name = "org.mfad.Mfa1.Login")]
impl Welcoming {
    async fn begin(
        &self,
        _user: String,
        _service: String,
        _rhost: String,
        _tty: String,
        _auth_info: String,
    ) -> (String, String, String) {
        ("ignore".into(), String::new(), String::new())
    }

    async fn account_check(
        &self,
        _user: String,
        _service: String,
        _attempt: String,
    ) -> (String, String) {
        ("allow".into(), String::new())
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// This test binary again, running only `test` as `uid` (nobody when the
/// test runs as root), serving [`Welcoming`] on `address` until killed.
fn impostor(test: &str, address: &str) -> (Child, u32) {
    let uid = if euid() == 0 { NOBODY } else { euid() };
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", test, "--nocapture"])
        .env(CHILD_BUS, address)
        .stdin(Stdio::null());
    if euid() == 0 {
        cmd.uid(uid).gid(NOBODY);
    }
    let child = cmd.spawn().expect("start the impostor");
    (child, uid)
}

/// In the child: serves the fake until the parent kills it.
fn serve_if_child() -> bool {
    let Ok(address) = std::env::var(CHILD_BUS) else {
        return false;
    };
    assert_ne!(euid(), 0, "the impostor must not run as root");
    serve_fake_mfad(&address, Welcoming);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request() -> BeginRequest {
    BeginRequest {
        user: "alice".into(),
        service: "owner-test".into(),
        ..Default::default()
    }
}

#[test]
fn an_owner_that_is_not_root_is_an_impostor() {
    if serve_if_child() {
        return;
    }
    let bus = Bus::start_open(
        "impostor",
        &format!("pam-mfa-impostor-{}", std::process::id()),
    );
    let (child, uid) = impostor("an_owner_that_is_not_root_is_an_impostor", &bus.address);
    let _child = Killed(child);
    wait_for_owner(&bus.address);

    let mut d = LeanDaemon::new(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request());
    assert!(
        matches!(&r, Err(Error::Impostor(m)) if m.contains(&format!("UID {uid}"))),
        "{r:?}"
    );
    d.close();
    let mut d = LeanDaemon::new(&bus.address, Duration::from_secs(5));
    let r = d.account_check("alice", "owner-test", "");
    assert!(matches!(&r, Err(Error::Impostor(_))), "{r:?}");
    d.close();

    // The same fake, expected to run as `uid`, is served: the refusal is
    // the owner check, not a broken fake.
    let mut d = LeanDaemon::new(&bus.address, Duration::from_secs(5)).with_owner_uid(uid);
    let r = d.begin(&request()).expect("the fake answers");
    assert_eq!(r.action, mfa_api::BeginAction::Ignore);
    d.close();
}

#[test]
fn an_abstract_socket_is_a_configuration_error() {
    let name = format!("pam-mfa-abstract-{}", std::process::id());
    let bus = Bus::start_open("abstract", &name);
    serve_fake_mfad(&bus.address, Welcoming);
    wait_for_owner(&bus.address);

    let abstract_address = format!("unix:abstract={name}");
    // The bus does answer there: only the module's rule refuses it.
    wait_for_owner(&abstract_address);
    let mut d = common::client(&abstract_address, Duration::from_secs(5));
    let r = d.begin(&request());
    assert!(
        matches!(&r, Err(Error::Config(m)) if m.contains("unix:path=")),
        "{r:?}"
    );
    d.close();

    let mut d = common::client(&bus.address, Duration::from_secs(5));
    let r = d.begin(&request()).expect("the path address is served");
    assert_eq!(r.action, mfa_api::BeginAction::Ignore);
    d.close();
}
