//! The account-phase guard, `account required pam_mfa.so`: a login of an
//! enrolled user that never passed the code step (sshd left at public key
//! only, a stack without pam_mfa in auth) is refused in pam_acct_mgmt, and
//! mfad logs why. The auth phase hands its verified attempt to the account
//! phase in the PAM environment (PAM_MFA_ATTEMPT), which survives sshd's
//! separate keyboard-interactive process.

use mfa_tests::pam::{rc, PamtesterOpts};
use mfa_tests::ssh::{account_guard, SshOpts, SshSetup};
use mfa_tests::{Clock, Env, PamResult, User};

/// mfad's log has an `account denied` line for this user and service.
#[track_caller]
fn assert_account_denied_logged(env: &Env, user: &User, service: &str) {
    let log = env.daemon_log();
    let line = log
        .lines()
        .find(|l| {
            l.contains("account denied")
                && l.contains(&format!("user={} ", user.name))
                && l.contains(&format!("service={service}"))
        })
        .unwrap_or_else(|| {
            panic!(
                "mfad logged no `account denied` for {} on {service}:\n{log}",
                user.name
            )
        });
    assert!(line.contains("reason="), "the admin is told why: {line}");
}

fn ops<'a>(list: &[&'a str]) -> PamtesterOpts<'a> {
    PamtesterOpts {
        ops: list.to_vec(),
        ..PamtesterOpts::default()
    }
}

/// `AuthenticationMethods publickey`: PAM auth never runs, so only the
/// account phase can stop an enrolled user. It does; an unenrolled user
/// (policy optional) still gets in with the key.
#[test]
fn public_key_only_ssh_is_stopped_in_the_account_phase() {
    let env = Env::new();
    let ivy = env.add_login_user(None);
    let jon = env.add_login_user(None);
    env.enroll_raw(&ivy);
    let key = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_only_with_account_guard(&env));
    sshd.authorize(&ivy, &[&key]);
    sshd.authorize(&jon, &[&key]);
    let with_key = SshOpts {
        key: Some(&key),
        ..SshOpts::default()
    };

    let r = sshd.ssh(&ivy, &with_key);
    r.assert_refused();
    assert!(r.prompts.is_empty(), "no code step in this setup: {r}");
    assert_account_denied_logged(&env, &ivy, &sshd.name);
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "Access denied for user {} by PAM account configuration",
            ivy.name
        )),
        "sshd refused for another reason:\n{log}"
    );

    sshd.ssh(&jon, &with_key).assert_logged_in();
}

/// Key, then code, with the account guard: the session verified by the
/// keyboard-interactive child reaches the account phase in the monitor.
/// A trusted key (Begin `allow`, no prompt) passes the guard too.
#[test]
fn key_then_code_passes_the_account_guard() {
    let env = Env::builder().trusted_lifetime("30d").start();
    let kim = env.add_login_user(None);
    let lee = env.add_login_user(None);
    let dev = env.enroll_raw(&kim);
    let key = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env).account(&account_guard(&env)));
    sshd.authorize(&kim, &[&key]);
    sshd.authorize(&lee, &[&key]);
    let code = Clock::now().code(&dev.secret, 0);

    let r = sshd.ssh(
        &kim,
        &SshOpts {
            key: Some(&key),
            codes: vec![code],
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");
    // Now trusted: no prompt, and the account phase still allows it.
    let r = sshd.ssh(
        &kim,
        &SshOpts {
            key: Some(&key),
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert!(r.prompts.is_empty(), "{r}");
    assert!(
        !env.daemon_log().contains("account denied"),
        "{}",
        env.daemon_log()
    );
    // Not enrolled: ignored in both phases.
    sshd.ssh(
        &lee,
        &SshOpts {
            key: Some(&key),
            ..SshOpts::default()
        },
    )
    .assert_logged_in();
}

/// Through pamtester: `authenticate acct_mgmt` on one handle passes;
/// `acct_mgmt` alone is refused for an enrolled user (with a message) and
/// passes for an unenrolled one.
#[test]
fn the_account_phase_needs_this_logins_code_step() {
    let env = Env::new();
    let max = env.add_user();
    let ned = env.add_user();
    let dev = env.enroll_raw(&max);
    let svc = env.pam_service_raw(&format!(
        "auth required {}\n{}\n",
        env.pam_module_spec(),
        account_guard(&env)
    ));
    let c = Clock::now().codes(&dev.secret, 0, 1);

    env.pamtester_with(&svc, &max, &[&c[0]], &ops(&["authenticate", "acct_mgmt"]))
        .assert_result(PamResult::Success);

    let r = env.pamtester_with(&svc, &max, &[], &ops(&["acct_mgmt"]));
    r.assert_result(PamResult::PermDenied);
    assert!(
        r.transcript().contains("2-step verification"),
        "the refusal is explained:\n{}",
        r.output
    );
    assert_account_denied_logged(&env, &max, &svc);

    env.pamtester_with(&svc, &ned, &[], &ops(&["acct_mgmt"]))
        .assert_result(PamResult::Success);

    // In-process (like sshd's monitor): authenticate, then account.
    let run = env.pam_run(&svc, &max, &["--acct"], &[&c[1]]);
    assert_eq!(run.auth_rc(0), rc::PAM_SUCCESS, "{}", run.output);
    assert_eq!(
        run.round_rc(0, "acct_mgmt"),
        rc::PAM_SUCCESS,
        "{}",
        run.output
    );
    // The account hook, like the auth hook, leaves no thread or fd behind.
    assert!(run.leaks().is_empty(), "{:?}\n{}", run.leaks(), run.output);
}

/// The token's name before PAM_MFA_ATTEMPT, as an auth phase of the older
/// module leaves it: the account phase still reads it, for one release.
#[test]
fn the_account_phase_still_reads_the_old_token_name() {
    let env = Env::new();
    let max = env.add_user();
    let dev = env.enroll_raw(&max);
    let svc = env.pam_service_raw(&format!(
        "auth required {}\n{}\n",
        env.pam_module_spec(),
        account_guard(&env)
    ));
    let c = Clock::now().codes(&dev.secret, 0, 1);
    let verified = |code: &str| {
        let v = env.call(None, &["login", &max.name, code]);
        assert_eq!(v.ok()["answers"][0]["result"], "success", "{v:?}");
        let attempt = v.ok()["begin"]["attempt"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!attempt.is_empty(), "{v:?}");
        attempt
    };
    let account = |name: &str, attempt: &str| {
        env.pamtester_with(
            &svc,
            &max,
            &[],
            &PamtesterOpts {
                ops: vec!["acct_mgmt"],
                pam_env: vec![(name, attempt)],
                ..PamtesterOpts::default()
            },
        )
    };

    let old = verified(&c[0]);
    account("PAM_MFA_SESSION", &old).assert_result(PamResult::Success);
    // It was read, and used up: not again, under either name.
    account("PAM_MFA_SESSION", &old).assert_result(PamResult::PermDenied);
    account("PAM_MFA_ATTEMPT", &old).assert_result(PamResult::PermDenied);

    let new = verified(&c[1]);
    account("PAM_MFA_ATTEMPT", &new).assert_result(PamResult::Success);
}

/// On the wire: a verified attempt answers AccountCheck once; an attempt
/// that never got the code, or another user's, is denied.
#[test]
fn a_verified_attempt_passes_the_account_check_once() {
    let env = Env::new();
    let ola = env.add_user();
    let pia = env.add_user();
    let dev = env.enroll_raw(&ola);
    env.enroll_raw(&pia);
    let code = Clock::now().code(&dev.secret, 0);
    let v = env.call(None, &["login", &ola.name, &code]);
    assert_eq!(v.ok()["answers"][0]["result"], "success", "{v:?}");
    let attempt = v.ok()["begin"]["attempt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Another user cannot use it.
    let other = env.call(None, &["account-check", &pia.name, "svc", &attempt]);
    assert_eq!(other.ok()["action"], "deny", "{other:?}");
    let first = env.call(None, &["account-check", &ola.name, "svc", &attempt]);
    assert_eq!(first.ok()["action"], "allow", "{first:?}");
    let again = env.call(None, &["account-check", &ola.name, "svc", &attempt]);
    assert_eq!(again.ok()["action"], "deny", "{again:?}");
    let none = env.call(None, &["account-check", &ola.name, "svc", ""]);
    assert_eq!(none.ok()["action"], "deny", "{none:?}");

    // A challenge that was never answered is not verified.
    let begin = env.call(None, &["login-begin", &ola.name]);
    let pending = begin.ok()["attempt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let v = env.call(None, &["account-check", &ola.name, "svc", &pending]);
    assert_eq!(v.ok()["action"], "deny", "{v:?}");
}

/// The daemon down in the account phase: failmode=secure refuses
/// (PAM_PERM_DENIED), failmode=safe steps aside (PAM_IGNORE).
#[test]
fn the_account_phase_without_a_daemon_follows_failmode() {
    let env = Env::builder().no_daemon().start();
    let quinn = env.add_user();
    let spec = env.pam_module_spec();
    for (args, want) in [
        ("failmode=secure timeout=2", PamResult::PermDenied),
        ("failmode=safe timeout=2", PamResult::Success),
    ] {
        let svc = env.pam_service_raw(&format!(
            "auth required pam_permit.so\naccount required {spec} {args}\naccount required pam_permit.so\n"
        ));
        let r = env.pamtester_with(&svc, &quinn, &[], &ops(&["acct_mgmt"]));
        r.assert_result(want);
        assert!(
            r.output.elapsed < std::time::Duration::from_secs(6),
            "{}",
            r.output
        );
    }
}
