//! Lockout: consecutive failures lock the user; during the lockout even a
//! correct code fails; an admin unlocks; success resets the count.

use std::time::Duration;

use mfa_api::{AnswerResult, BeginAction, LoginProxy};
use mfa_tests::codes::unix_now;
use mfa_tests::{wrong_code, Clock, Env, PamResult};

/// Each new lockout of a user lasts twice as long as the one before, up to
/// `max_duration`; a successful login starts over.
#[test]
fn each_new_lockout_lasts_twice_as_long() {
    let env = Env::builder()
        .max_failures(2)
        .lockout_duration("2s")
        .lockout_max_duration("1h")
        .start();
    let ann = env.add_user();
    let dev = env.enroll(&ann);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let lock = || {
        env.pamtester(&svc, &ann, &[&w, &w])
            .assert_result(PamResult::AuthErr);
        let s = env.mfactl_json(None, &["admin", "status", &ann.name]);
        s["locked_until"].as_i64().unwrap_or(0) - unix_now() as i64
    };
    let first = lock();
    assert!((1..=2).contains(&first), "first lock {first}s, expected 2s");
    std::thread::sleep(Duration::from_secs(3));
    let second = lock();
    assert!(
        (3..=4).contains(&second),
        "second lock {second}s, expected 4s"
    );
    std::thread::sleep(Duration::from_secs(5));
    env.pamtester(&svc, &ann, &[&Clock::now().code(&dev.secret, 0)])
        .assert_result(PamResult::Success);
    let after = lock();
    assert!(
        (1..=2).contains(&after),
        "after a success {after}s, expected 2s"
    );
}

#[test]
fn failures_lock_the_user_until_an_admin_unlocks() {
    let env = Env::builder().max_failures(3).start();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 1);

    env.pamtester(&svc, &alice, &[&w, &w, &w])
        .assert_result(PamResult::AuthErr);
    let s = env.mfactl_json(None, &["admin", "status", &alice.name]);
    assert!(s["failures"].as_u64().unwrap_or(0) >= 3, "{s}");
    assert!(
        s["locked_until"].as_i64().unwrap_or(0) > unix_now() as i64,
        "not locked after 3 failures: {s}"
    );

    // Locked: a correct code fails, with the reason shown.
    let r = env.pamtester(&svc, &alice, &[&c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(
        r.transcript()
            .to_lowercase()
            .contains("too many failed attempts"),
        "the lockout must be explained:\n{}",
        r.output
    );
    let begin = env.call(None, &["login-begin", &alice.name]);
    assert_eq!(begin.ok()["action"], "deny", "{begin:?}");
    let msg = begin.ok()["message"].as_str().unwrap_or("").to_string();
    assert!(
        msg.starts_with("Too many failed attempts; try again in ") && msg.contains("minute"),
        "lockout message: {msg:?}"
    );

    // The admin unlocks; the user logs in.
    env.mfactl(&["admin", "unlock", &alice.name])
        .assert_success();
    let s = env.mfactl_json(None, &["admin", "status", &alice.name]);
    assert_eq!(s["locked_until"], 0, "{s}");
    assert_eq!(s["failures"], 0, "{s}");
    env.pamtester(&svc, &alice, &[&c[1]])
        .assert_result(PamResult::Success);
}

/// A session opened before the lockout cannot be used to get in during it.
#[test]
fn a_correct_code_during_the_lockout_fails() {
    let env = Env::builder().max_failures(3).start();
    let bob = env.add_user();
    let dev = env.enroll(&bob);
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 1);
    let (result, message) = zbus::block_on(async {
        let conn = env.connect().await;
        let login = LoginProxy::new(&conn).await.expect("proxy");
        let (a, early, _) = login
            .begin(&bob.name, "mfa-test", "", "", "")
            .await
            .expect("Begin");
        assert_eq!(a, BeginAction::Challenge);
        // Three failures in other sessions lock the user.
        let mut failures = 0;
        while failures < 3 {
            let (a, s, _) = login
                .begin(&bob.name, "mfa-test", "", "", "")
                .await
                .expect("Begin");
            assert_eq!(a, BeginAction::Challenge, "locked before 3 failures?");
            loop {
                let (r, _) = login.answer(&s, w.as_bytes()).await.expect("Answer");
                failures += 1;
                if r != AnswerResult::Retry || failures == 3 {
                    break;
                }
            }
        }
        login.answer(&early, c[0].as_bytes()).await
    })
    .map_or_else(|e| (None, e.message()), |(r, m)| (Some(r), m));
    assert_ne!(
        result,
        Some(AnswerResult::Success),
        "a correct code was accepted during the lockout ({message})"
    );
    let s = env.mfactl_json(None, &["admin", "status", &bob.name]);
    assert!(s["locked_until"].as_i64().unwrap_or(0) > 0, "{s}");
    env.mfactl(&["admin", "unlock", &bob.name]).assert_success();
    let svc = env.pam_service("");
    env.pamtester(&svc, &bob, &[&c[1]])
        .assert_result(PamResult::Success);
}

#[test]
fn success_resets_the_failure_count() {
    let env = Env::builder().max_failures(3).start();
    let carl = env.add_user();
    let dev = env.enroll(&carl);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 2);
    env.pamtester(&svc, &carl, &[&w, &w, &c[0]])
        .assert_result(PamResult::Success);
    // Without the reset this would be failures 3 and 4: a lockout.
    env.pamtester(&svc, &carl, &[&w, &w, &c[1]])
        .assert_result(PamResult::Success);
    let s = env.mfactl_json(None, &["admin", "status", &carl.name]);
    assert_eq!(s["failures"], 0, "{s}");
    assert_eq!(s["locked_until"], 0, "{s}");
}

/// The lockout lasts `duration`, then the user may log in again.
#[test]
fn the_lockout_ends_after_its_duration() {
    let env = Env::builder()
        .max_failures(2)
        .lockout_duration("2s")
        .start();
    let dora = env.add_user();
    let dev = env.enroll(&dora);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 0);
    env.pamtester(&svc, &dora, &[&w, &w, &w])
        .assert_result(PamResult::AuthErr);
    let s = env.mfactl_json(None, &["admin", "status", &dora.name]);
    let until = s["locked_until"].as_i64().unwrap_or(0);
    let now = unix_now() as i64;
    assert!(
        until > 0 && until <= now + 3,
        "a 2s lockout should end within 3 s: {s}"
    );
    std::thread::sleep(Duration::from_secs((until - now + 1).max(1) as u64));
    env.pamtester(&svc, &dora, &[&c[0]])
        .assert_result(PamResult::Success);
}
