//! Authorization by the caller's uid as the bus reports it: a user acts
//! only for themselves, root for anyone, Admin only root (or the admin
//! group). Calls are made by real processes running as the test users.

use mfa_tests::{Clock, Env, PamResult};
use serde_json::Value;

#[test]
fn a_user_cannot_enroll_verify_or_reset_for_another_user() {
    let env = Env::new();
    let alice = env.add_user();
    let mallory = env.add_user();
    let dev = env.enroll_raw(&alice);
    let code = Clock::now().code(&dev.secret, 0);
    let m = Some(&mallory);

    // Verify another user (Login is root's, or one's own).
    env.call(m, &["login-begin", &alice.name])
        .assert_error("AccessDenied");
    env.call(m, &["login", &alice.name, &code])
        .assert_error("AccessDenied");
    // Enroll a device for another user.
    env.call(m, &["enroll-begin", &alice.name])
        .assert_error("AccessDenied");
    env.call(m, &["status", &alice.name])
        .assert_error("AccessDenied");
    env.call(m, &["remove-device", &alice.name, &dev.device_id, &code])
        .assert_error("AccessDenied");
    env.call(m, &["regen-backup", &alice.name, &dev.backup_codes[0]])
        .assert_error("AccessDenied");
    // Admin: reset, unlock, list, status.
    env.call(m, &["admin-reset", &alice.name])
        .assert_error("AccessDenied");
    env.call(m, &["admin-unlock", &alice.name])
        .assert_error("AccessDenied");
    env.call(m, &["admin-list"]).assert_error("AccessDenied");
    env.call(m, &["admin-status", &alice.name])
        .assert_error("AccessDenied");

    // The same through mfactl: one clear line, exit 1.
    for args in [
        vec!["admin", "reset", alice.name.as_str()],
        vec!["admin", "status", alice.name.as_str()],
        vec!["admin", "list"],
    ] {
        let out = env.mfactl_as(&mallory, &args);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr.starts_with("mfactl: ") && out.stderr.trim_end().lines().count() == 1,
            "{out}"
        );
    }

    // Nothing changed for alice, and her code was not used up.
    let r = env.call(None, &["admin-status", &alice.name]);
    let s = r.ok();
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");
    assert_eq!(s["backup_codes_left"], 10, "{s}");
    assert_eq!(s["failures"], 0, "{s}");
    let svc = env.pam_service("");
    env.pamtester(&svc, &alice, &[&code])
        .assert_result(PamResult::Success);
}

#[test]
fn a_user_may_verify_and_manage_themselves() {
    let env = Env::new();
    let bea = env.add_user();
    let dev = env.enroll_raw(&bea);
    let me = Some(&bea);
    // A screen locker runs as the user and verifies the user.
    let v = env.call(me, &["login-begin", &bea.name]);
    assert_eq!(v.ok()["action"], "challenge", "{v:?}");
    let code = Clock::now().code(&dev.secret, 0);
    let v = env.call(me, &["login", &bea.name, &code]);
    assert_eq!(v.ok()["answers"][0]["result"], "success", "{v:?}");
    // "" is the caller; the own name works too.
    for who in ["", bea.name.as_str()] {
        let v = env.call(me, &["status", who]);
        assert_eq!(v.ok()["user"], Value::String(bea.name.clone()), "{v:?}");
    }
    // A further device needs a current code: without one, refused.
    let v = env.call(me, &["enroll-begin", &bea.name]);
    assert_eq!(v.err().0, "org.mfad.Mfa1.Error.InvalidCode", "{v:?}");
    let v = env.call(me, &["enroll-begin", &bea.name, "", &dev.backup_codes[0]]);
    assert!(v.ok()["secret"].as_str().is_some(), "{v:?}");
}

#[test]
fn root_may_act_for_anyone() {
    let env = Env::new();
    let cleo = env.add_user();
    env.enroll_raw(&cleo);
    let v = env.call(None, &["login-begin", &cleo.name]);
    assert_eq!(v.ok()["action"], "challenge", "{v:?}");
    let v = env.call(None, &["status", &cleo.name]);
    assert_eq!(v.ok()["enrolled"], Value::Bool(true), "{v:?}");
    let v = env.call(None, &["admin-list"]);
    assert!(v.ok().to_string().contains(&cleo.name), "{v:?}");
    let v = env.call(None, &["regen-backup", &cleo.name, ""]);
    assert_eq!(v.ok().as_array().map(Vec::len), Some(10), "{v:?}");
}

/// The D-Bus policy file lets only root own org.mfad.Mfa1, so no user can
/// pose as the daemon (e.g. while it is down).
#[test]
fn only_root_may_own_the_bus_name() {
    let env = Env::builder().no_daemon().start();
    let dora = env.add_user();
    let r = env.call(Some(&dora), &["own-name"]);
    let (name, _) = r.err();
    assert_eq!(name, "org.freedesktop.DBus.Error.AccessDenied");
    let v = env.call(None, &["own-name"]);
    assert_eq!(v.ok(), "PrimaryOwner", "{v:?}");
}
