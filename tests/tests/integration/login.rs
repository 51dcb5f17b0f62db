//! Logins through the real PAM stack: pamtester loads the real
//! libpam_mfa.so from /etc/pam.d, which asks the real mfad.

use mfa_tests::pam::rc;
use mfa_tests::{wrong_code, Clock, Env, PamResult};

#[test]
fn login_with_a_current_code() {
    let env = Env::new();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let svc = env.pam_service("");
    let code = Clock::now().code(&dev.secret, 0);
    let r = env.pamtester(&svc, &alice, &[&code]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "one prompt expected:\n{}", r.output);

    let s = env.mfactl_json(None, &["admin", "status", &alice.name]);
    assert_eq!(s["failures"], 0, "{s}");
    assert!(
        s["devices"][0]["last_used"].as_i64().unwrap_or(0) > 0,
        "last_used not recorded: {s}"
    );
    // The audit log names the user.
    let log = env.daemon_log();
    assert!(
        log.contains(&format!("user={}", alice.name)),
        "mfad logged no event with user={}:\n{log}",
        alice.name
    );
}

#[test]
fn wrong_code_is_refused_after_three_tries() {
    let env = Env::builder().max_failures(100).start();
    let bob = env.add_user();
    let dev = env.enroll(&bob);
    let svc = env.pam_service("");
    let wrong = wrong_code(&dev.secret);
    let right = Clock::now().code(&dev.secret, 0);
    // Three wrong answers end the authentication; the fourth (right) one is
    // never asked for.
    let r = env.pamtester(&svc, &bob, &[&wrong, &wrong, &wrong, &right]);
    r.assert_result(PamResult::AuthErr);
    assert_eq!(r.prompts(), 3, "the daemon allows 3 tries:\n{}", r.output);

    // The right code was not consumed: it still works.
    env.pamtester(&svc, &bob, &[&right])
        .assert_result(PamResult::Success);
}

#[test]
fn a_wrong_code_then_the_right_one_logs_in() {
    let env = Env::new();
    let carol = env.add_user();
    let dev = env.enroll(&carol);
    let svc = env.pam_service("");
    let wrong = wrong_code(&dev.secret);
    let right = Clock::now().code(&dev.secret, 0);
    let r = env.pamtester(&svc, &carol, &[&wrong, &right]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 2, "{}", r.output);
    // Success resets the failure count.
    let s = env.mfactl_json(None, &["admin", "status", &carol.name]);
    assert_eq!(s["failures"], 0, "{s}");
}

#[test]
fn malformed_input_is_just_a_wrong_code() {
    let env = Env::builder().max_failures(100).start();
    let dan = env.add_user();
    let dev = env.enroll(&dan);
    let svc = env.pam_service("");
    let right = Clock::now().code(&dev.secret, 0);
    // Under misc_conv's 512-byte line limit, which would split a longer
    // line into two answers.
    let long = "9".repeat(400);
    let r = env.pamtester(&svc, &dan, &["abcdef", &long, &right]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 3, "{}", r.output);
}

#[test]
fn a_used_code_is_never_accepted_again() {
    let env = Env::builder().max_failures(100).start();
    let erin = env.add_user();
    let dev = env.enroll(&erin);
    let svc = env.pam_service("");
    let clock = Clock::now();
    let c = clock.codes(&dev.secret, -1, 1);
    env.pamtester(&svc, &erin, &[&c[1]])
        .assert_result(PamResult::Success);
    // The same code again: refused on every try.
    env.pamtester(&svc, &erin, &[&c[1], &c[1], &c[1]])
        .assert_result(PamResult::AuthErr);
    // An earlier step, still inside the window: refused too.
    env.pamtester(&svc, &erin, &[&c[0], &c[0], &c[0]])
        .assert_result(PamResult::AuthErr);
    // The enrollment's confirmation codes were used as well.
    let used = dev.confirm_codes[1].as_str();
    env.pamtester(&svc, &erin, &[used, used, used])
        .assert_result(PamResult::AuthErr);
    // A later step works.
    env.pamtester(&svc, &erin, &[&c[2]])
        .assert_result(PamResult::Success);
}

/// Replay protection is durable: a restarted daemon still refuses a used
/// code.
#[test]
fn replay_state_survives_a_restart() {
    let mut env = Env::builder().max_failures(100).start();
    let fay = env.add_user();
    let dev = env.enroll(&fay);
    let svc = env.pam_service("");
    let c = Clock::now().codes(&dev.secret, 0, 1);
    env.pamtester(&svc, &fay, &[&c[0]])
        .assert_result(PamResult::Success);
    env.stop_daemon();
    env.start_daemon();
    env.pamtester(&svc, &fay, &[&c[0], &c[0], &c[0]])
        .assert_result(PamResult::AuthErr);
    env.pamtester(&svc, &fay, &[&c[1]])
        .assert_result(PamResult::Success);
}

#[test]
fn a_backup_code_works_once() {
    let env = Env::builder().max_failures(100).start();
    let gus = env.add_user();
    let dev = env.enroll(&gus);
    let svc = env.pam_service("");
    let backup = &dev.backup_codes[0];
    env.pamtester(&svc, &gus, &[backup])
        .assert_result(PamResult::Success);
    let s = env.mfactl_json(None, &["admin", "status", &gus.name]);
    assert_eq!(s["backup_codes_left"], 9, "{s}");
    env.pamtester(&svc, &gus, &[backup, backup, backup])
        .assert_result(PamResult::AuthErr);
    // Another one still works.
    env.pamtester(&svc, &gus, &[&dev.backup_codes[1]])
        .assert_result(PamResult::Success);
    let s = env.mfactl_json(None, &["admin", "status", &gus.name]);
    assert_eq!(s["backup_codes_left"], 8, "{s}");
}

/// Unknown module arguments are ignored (logged), `debug` is accepted.
#[test]
fn unknown_module_arguments_are_ignored() {
    let env = Env::new();
    let hal = env.add_user();
    let dev = env.enroll(&hal);
    let svc = env.pam_service("debug frobnicate=1 nonsense");
    let code = Clock::now().code(&dev.secret, 0);
    env.pamtester(&svc, &hal, &[&code])
        .assert_result(PamResult::Success);
}

/// pam_sm_setcred returns PAM_SUCCESS (sshd drops the session otherwise)
/// and pam_sm_acct_mgmt returns PAM_SUCCESS after this login's code step
/// (called in the applications' order: account, then setcred): with the
/// module alone in the auth and account stacks, libpam reports exactly its
/// results.
#[test]
fn setcred_and_acct_mgmt_succeed() {
    let env = Env::new();
    let ivy = env.add_user();
    let dev = env.enroll(&ivy);
    let module = env.pam_module_spec();
    let svc = env.pam_service_raw(&format!(
        "auth required {module}\naccount required {module}\n"
    ));
    let code = Clock::now().code(&dev.secret, 0);
    let run = env.pam_run(&svc, &ivy, &["--setcred", "--acct"], &[&code]);
    assert_eq!(run.auth_rc(0), rc::PAM_SUCCESS, "{}", run.output);
    assert_eq!(
        run.round_rc(0, "setcred"),
        rc::PAM_SUCCESS,
        "{}",
        run.output
    );
    assert_eq!(
        run.round_rc(0, "acct_mgmt"),
        rc::PAM_SUCCESS,
        "{}",
        run.output
    );
    assert_eq!(run.prompts(), vec!["Verification code: ".to_string()]);
    assert_eq!(run.prompt_styles(), vec!["echo_off".to_string()]);
}

/// A wrong code is explained with PAM_ERROR_MSG before the next prompt.
#[test]
fn a_retry_is_explained_as_an_error_message() {
    let env = Env::new();
    let kim = env.add_user();
    let dev = env.enroll(&kim);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let code = Clock::now().code(&dev.secret, 0);
    let run = env.pam_run(&svc, &kim, &[], &[&w, &code]);
    assert_eq!(run.auth_rc(0), rc::PAM_SUCCESS, "{}", run.output);
    assert_eq!(run.prompts().len(), 2, "{}", run.output);
    assert!(
        run.message_styles().iter().any(|s| s == "error"),
        "no PAM_ERROR_MSG after the wrong code: {:?} {:?}",
        run.messages(),
        run.message_styles()
    );
}

/// Replay is per user, not per device: a step used with one device is
/// used for the user's other devices too.
#[test]
fn a_used_step_is_used_for_every_device_of_the_user() {
    let env = Env::builder().max_failures(100).start();
    let lou = env.add_user();
    let one = env.enroll(&lou);
    let p = env.enroll_begin_with_code(&lou, &one.backup_codes[0]);
    let c = Clock::now().codes(&p.secret, -1, 0);
    env.mfactl_as(
        &lou,
        &[
            "enroll",
            "totp",
            "--confirm",
            &p.enrollment_id,
            &c[0],
            &c[1],
        ],
    )
    .assert_success();
    let svc = env.pam_service("");
    let clock = Clock::now();
    env.pamtester(&svc, &lou, &[&clock.code(&one.secret, 1)])
        .assert_result(PamResult::Success);
    let other = clock.code(&p.secret, 1);
    env.pamtester(&svc, &lou, &[&other, &other, &other])
        .assert_result(PamResult::AuthErr);
    env.pamtester(&svc, &lou, &[&clock.code(&p.secret, 2)])
        .assert_result(PamResult::Success);
}

/// The module passes the service, rhost and tty to the daemon, which logs
/// them with the user.
#[test]
fn the_audit_log_names_user_and_service() {
    let env = Env::new();
    let jo = env.add_user();
    let dev = env.enroll(&jo);
    let svc = env.pam_service("");
    let code = Clock::now().code(&dev.secret, 0);
    env.pamtester(&svc, &jo, &[&code])
        .assert_result(PamResult::Success);
    let log = env.daemon_log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("user={}", jo.name)) && l.contains(&svc))
        .unwrap_or_else(|| {
            panic!(
                "no log line with user={} and service {svc}:\n{log}",
                jo.name
            )
        });
    assert!(line.starts_with("mfad: "), "{line}");
    assert!(line.contains(&format!("service={svc}")), "{line}");
}
