//! The PAM module inside a long-lived process (sshd, a screen locker):
//! after pam_authenticate returns, the process has the same threads and
//! file descriptors as before, on every path. And no tokio in the .so.

use mfa_tests::pam::rc;
use mfa_tests::{paths, wrong_code, Clock, Env};

#[track_caller]
fn assert_no_leaks(run: &mfa_tests::pam::PamRun) {
    let leaks = run.leaks();
    assert!(
        leaks.is_empty(),
        "pam_mfa left threads or fds behind:\n{}\n{}",
        leaks.join("\n"),
        run.output
    );
}

#[test]
fn successful_and_failed_logins_leave_nothing_behind() {
    let env = Env::builder().max_failures(1000).start();
    let ava = env.add_user();
    let dev = env.enroll_raw(&ava);
    let svc = env.pam_service("");
    let c = Clock::now().codes(&dev.secret, -1, 1);
    let run = env.pam_run(&svc, &ava, &["--repeat", "3"], &[&c[0], &c[1], &c[2]]);
    for i in 0..3 {
        assert_eq!(
            run.auth_rc(i),
            rc::PAM_SUCCESS,
            "round {i}:\n{}",
            run.output
        );
    }
    assert_no_leaks(&run);

    let w = wrong_code(&dev.secret);
    let run = env.pam_run(&svc, &ava, &[], &[&w, &w, &w]);
    assert_eq!(run.auth_rc(0), rc::PAM_AUTH_ERR, "{}", run.output);
    assert_eq!(run.prompts().len(), 3, "{}", run.output);
    assert_no_leaks(&run);

    // The conversation fails (no answer): still nothing left.
    let run = env.pam_run(&svc, &ava, &[], &[]);
    assert_ne!(run.auth_rc(0), rc::PAM_SUCCESS, "{}", run.output);
    assert_no_leaks(&run);

    // Not enrolled: PAM_IGNORE, which alone in the stack is PERM_DENIED.
    let nel = env.add_user();
    let run = env.pam_run(&svc, &nel, &[], &[]);
    assert_eq!(run.auth_rc(0), rc::PAM_PERM_DENIED, "{}", run.output);
    assert_no_leaks(&run);
}

#[test]
fn an_absent_or_hung_daemon_leaves_nothing_behind() {
    let mut env = Env::new();
    let bea = env.add_user();
    env.enroll_raw(&bea);
    let svc = env.pam_service("failmode=secure timeout=1");
    env.pause_daemon();
    let run = env.pam_run(&svc, &bea, &["--repeat", "2"], &[]);
    env.resume_daemon();
    for i in 0..2 {
        assert_eq!(run.auth_rc(i), rc::PAM_AUTHINFO_UNAVAIL, "{}", run.output);
    }
    assert_no_leaks(&run);

    env.stop_daemon();
    let run = env.pam_run(&svc, &bea, &["--repeat", "2"], &[]);
    for i in 0..2 {
        assert_eq!(run.auth_rc(i), rc::PAM_AUTHINFO_UNAVAIL, "{}", run.output);
    }
    assert_no_leaks(&run);
}

/// zbus's `tokio` feature must never reach the module (feature
/// unification): a tokio runtime would live on inside sshd.
#[test]
fn the_module_contains_no_tokio() {
    let so = std::fs::read(paths::pam_module()).expect("read libpam_mfa.so");
    let found = so.windows(b"/tokio-1.".len()).any(|w| w == b"/tokio-1.");
    assert!(
        !found,
        "libpam_mfa.so was built with tokio (is zbus's `tokio` feature on in some workspace member? `cargo tree -e features -i zbus`)"
    );
}
