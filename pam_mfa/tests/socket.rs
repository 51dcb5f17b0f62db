//! Which way pam_mfa reaches mfad: the login socket when there is one,
//! and the bus behind it only when the socket is missing (no file, or
//! nobody listening) and the bus is a fallback (no `socket=`). Against a
//! real private dbus-daemon with a fake mfad on it.

mod common;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{serve_fake_mfad, wait_for_owner, Bus};
use pam_mfa::client::{BeginRequest, Daemon, LeanDaemon};
use pam_mfa::Error;

/// An mfad that answers `ignore`: only reachable through the bus here.
struct Ignoring;

#[zbus::interface(name = "org.mfad.Mfa1.Login")]
impl Ignoring {
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
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn request() -> BeginRequest {
    BeginRequest {
        user: "alice".into(),
        service: "socket-test".into(),
        ..Default::default()
    }
}

#[test]
fn a_missing_socket_falls_back_to_the_bus_only_when_allowed() {
    let bus = Bus::start("socket-fallback");
    serve_fake_mfad(&bus.address, Ignoring);
    wait_for_owner(&bus.address);
    let missing = bus.dir.join("no-such.socket");
    let timeout = Duration::from_secs(5);

    // No file: the bus answers.
    let mut d = LeanDaemon::socket(&missing, Some(&bus.address), timeout).with_owner_uid(euid());
    let r = d.begin(&request()).expect("the bus behind the socket");
    assert_eq!(r.action, mfa_api::BeginAction::Ignore);
    d.close();

    // A file nobody listens on (an mfad that is gone): the bus answers.
    let stale = bus.dir.join("stale.socket");
    drop(UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let mut d = LeanDaemon::socket(&stale, Some(&bus.address), timeout).with_owner_uid(euid());
    let r = d.begin(&request()).expect("the bus behind a stale socket");
    assert_eq!(r.action, mfa_api::BeginAction::Ignore);
    d.close();

    // `socket=` alone: no bus to fall back to.
    let mut d = LeanDaemon::socket(&missing, None, timeout).with_owner_uid(euid());
    let r = d.begin(&request());
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("no-such.socket")),
        "{r:?}"
    );
    d.close();
}

#[test]
fn a_socket_served_by_another_uid_is_an_impostor_and_no_fallback() {
    let bus = Bus::start("socket-impostor");
    serve_fake_mfad(&bus.address, Ignoring);
    wait_for_owner(&bus.address);
    // This process listens: the module expects someone else's UID.
    let path = bus.dir.join("login.socket");
    let _listener = UnixListener::bind(&path).expect("bind");
    let other = euid().wrapping_add(1);
    let mut d =
        LeanDaemon::socket(&path, Some(&bus.address), Duration::from_secs(5)).with_owner_uid(other);
    let r = d.begin(&request());
    assert!(
        matches!(&r, Err(Error::Impostor(m)) if m.contains(&format!("UID {}", euid()))),
        "{r:?}"
    );
    d.close();
    let mut d =
        LeanDaemon::socket(&path, Some(&bus.address), Duration::from_secs(5)).with_owner_uid(other);
    let r = d.account_check("alice", "socket-test", "");
    assert!(matches!(&r, Err(Error::Impostor(_))), "{r:?}");
    d.close();
}
