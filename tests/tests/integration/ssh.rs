//! Logins through the real OpenSSH server on 127.0.0.1 and the real ssh
//! client, with the real pam_mfa.so asking the real mfad. The three setups
//! of the README and their PAM stacks are in tests/src/ssh.rs
//! (`SshSetup::kbd_int`, `key_then_code`, `password_then_code`).
//!
//! ssh makes 3 keyboard-interactive attempts (NumberOfPasswordPrompts) and
//! pam_mfa prompts up to 3 times in each, so a refused login can cost up
//! to 9 failures: these Envs raise `max_failures` so the lockout stays out
//! of the way (it has its own tests).

use mfa_tests::ssh::{SshKey, SshOpts, SshSetup};
use mfa_tests::{random_letters, wrong_code, Clock, Env};

fn opts<'a>(key: Option<&'a SshKey>, codes: &[&str]) -> SshOpts<'a> {
    SshOpts {
        key,
        codes: codes.iter().map(|c| c.to_string()).collect(),
        ..SshOpts::default()
    }
}

fn with_password<'a>(password: &'a str, codes: &[&str]) -> SshOpts<'a> {
    SshOpts {
        password: Some(password),
        ..opts(None, codes)
    }
}

/// `AuthenticationMethods keyboard-interactive`: the code is asked in the
/// keyboard-interactive exchange; the remote command runs after a right
/// one and never after a wrong one.
#[test]
fn keyboard_interactive_only() {
    let env = Env::builder().max_failures(100).start();
    let alice = env.add_login_user(None);
    let bob = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let sshd = env.sshd(SshSetup::kbd_int(&env));

    let code = Clock::now().code(&dev.secret, 0);
    let r = sshd.ssh(&alice, &opts(None, &[&code]));
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");
    assert_eq!(r.prompts.len(), 1, "only the code is asked: {r}");
    assert!(
        sshd.log().contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            alice.name
        )),
        "{}",
        sshd.log()
    );
    // mfad saw sshd's service name and the client's address.
    let log = env.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("verify ok")
            && l.contains(&format!("user={}", alice.name))
            && l.contains(&format!("service={}", sshd.name))
            && l.contains("rhost=127.0.0.1")),
        "{log}"
    );

    // A wrong code, every time ssh asks: refused, and each wrong answer
    // is explained before the next prompt.
    let w = wrong_code(&dev.secret);
    let r = sshd.ssh(&alice, &opts(None, &[w.as_str(); 9]));
    r.assert_refused();
    assert_eq!(r.code_prompts(), 9, "3 attempts of 3 prompts: {r}");
    assert!(
        r.prompts[1].contains("Wrong code"),
        "the retry prompt carries the module's message: {r}"
    );
    assert_eq!(env.failures(&alice), 9);
    assert!(
        sshd.log().contains(&format!(
            "Failed keyboard-interactive/pam for {}",
            alice.name
        )),
        "{}",
        sshd.log()
    );

    // Not enrolled, policy optional: pam_mfa steps aside, pam_permit
    // (optional) decides, no prompt.
    let r = sshd.ssh(&bob, &opts(None, &[]));
    r.assert_logged_in();
    assert!(r.prompts.is_empty(), "{r}");
}

/// `AuthenticationMethods publickey,keyboard-interactive`: the key first,
/// then the code; neither alone gets in.
#[test]
fn key_then_code() {
    let env = Env::builder().max_failures(100).start();
    let alice = env.add_login_user(None);
    let bob = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let key = env.ssh_key();
    let stranger = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env));
    sshd.authorize(&alice, &[&key]);
    sshd.authorize(&bob, &[&key]);
    let c = Clock::now().codes(&dev.secret, 0, 1);

    // No key: sshd never offers keyboard-interactive, so the code is not
    // even asked (and stays unused).
    let r = sshd.ssh(&alice, &opts(None, &[&c[0]]));
    r.assert_refused();
    assert!(r.prompts.is_empty(), "{r}");
    assert!(
        r.output.stderr.contains("Permission denied (publickey)"),
        "{r}"
    );
    // A key that is not authorized: the same.
    let r = sshd.ssh(&alice, &opts(Some(&stranger), &[&c[0]]));
    r.assert_refused();
    assert!(r.prompts.is_empty(), "{r}");

    // Key and code.
    let r = sshd.ssh(&alice, &opts(Some(&key), &[&c[0]]));
    r.assert_logged_in();
    assert_eq!(r.prompts.len(), 1, "{r}");
    assert_eq!(r.code_prompts(), 1, "{r}");
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "Partial publickey for {} from 127.0.0.1",
            alice.name
        )) || log.contains(&format!("Accepted publickey for {}", alice.name)),
        "sshd did not check the key first:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            alice.name
        )),
        "{log}"
    );

    // The key without the code (empty answers): refused.
    let r = sshd.ssh(&alice, &opts(Some(&key), &[]));
    r.assert_refused();
    assert!(r.code_prompts() >= 1, "{r}");
    // ... and a right code still works afterwards.
    sshd.ssh(&alice, &opts(Some(&key), &[&c[1]]))
        .assert_logged_in();

    // Not enrolled: the key alone, no prompt.
    let r = sshd.ssh(&bob, &opts(Some(&key), &[]));
    r.assert_logged_in();
    assert!(r.prompts.is_empty(), "{r}");
}

/// Password, then code, in one keyboard-interactive exchange (pam_unix,
/// then pam_mfa, both required): both must be right, and a wrong password
/// is not revealed before the code is asked.
#[test]
fn password_then_code() {
    let env = Env::builder().max_failures(100).start();
    let password = random_letters(16);
    let carol = env.add_login_user(Some(&password));
    let dev = env.enroll_raw(&carol);
    let sshd = env.sshd(SshSetup::password_then_code(&env));
    let c = Clock::now().codes(&dev.secret, 0, 1);
    let with = with_password;
    let pw = password.as_str();

    // Right password, right code.
    let r = sshd.ssh(&carol, &with(pw, &[&c[0]]));
    r.assert_logged_in();
    assert_eq!(r.password_prompts(), 1, "{r}");
    assert_eq!(r.code_prompts(), 1, "{r}");
    assert!(
        r.prompts[0].contains("Password") && r.prompts[1].contains("Verification code"),
        "password first, then the code: {r}"
    );

    // Right password, wrong code.
    let w = wrong_code(&dev.secret);
    let r = sshd.ssh(&carol, &with(pw, &[w.as_str(); 9]));
    r.assert_refused();
    assert!(r.code_prompts() >= 3, "{r}");

    // Wrong password, right code: refused, and the code is still asked
    // (`required`, not `requisite`), so the client learns nothing about
    // which one was wrong.
    let r = sshd.ssh(&carol, &with("not-the-password", &[&c[1]]));
    r.assert_refused();
    assert!(
        r.prompts[0].contains("Password") && r.prompts[1].contains("Verification code"),
        "{r}"
    );
    assert!(
        sshd.log().contains(&format!(
            "Failed keyboard-interactive/pam for {}",
            carol.name
        )),
        "{}",
        sshd.log()
    );
}

/// sshd's "password" method answers every PAM prompt with the password, so
/// it cannot ask for a code. pam_mfa sees its answer equal PAM_AUTHTOK and
/// refuses without sending the password to mfad: no failure is counted, so
/// a stock sshd_config (PasswordAuthentication yes) cannot lock users out.
#[test]
fn the_password_method_cannot_pass_and_costs_no_failures() {
    let env = Env::builder().max_failures(100).start();
    let password = format!("pw-{}", random_letters(10));
    let alice = env.add_login_user(Some(&password));
    env.enroll_raw(&alice);
    let sshd = env.sshd(SshSetup {
        methods: "password".into(),
        ..SshSetup::password_then_code(&env)
    });
    let r = sshd.ssh(
        &alice,
        &SshOpts {
            preferred: "password",
            ..with_password(&password, &[])
        },
    );
    r.assert_refused();
    assert_eq!(env.failures(&alice), 0, "the password was sent as a code");
    let log = env.daemon_log();
    assert!(!log.contains("verify failed"), "{log}");
    assert!(!log.contains(&password), "mfad saw the password: {log}");
}

/// The session token pam_mfa leaves for the account phase never reaches
/// the user's session environment: the account guard takes it, and
/// setcred drops it where there is no guard.
#[test]
fn the_session_token_stays_out_of_the_session_environment() {
    let env = Env::builder().max_failures(100).start();
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let c = Clock::now().codes(&dev.secret, 0, 2);
    for (i, setup) in [
        SshSetup::kbd_int(&env),
        SshSetup::kbd_int(&env).account(&mfa_tests::ssh::account_guard(&env)),
    ]
    .into_iter()
    .enumerate()
    {
        let sshd = env.sshd(setup);
        let r = sshd.ssh(
            &alice,
            &SshOpts {
                command: "env",
                ..opts(None, &[&c[i]])
            },
        );
        assert_eq!(r.output.code, Some(0), "{r}");
        assert!(
            r.output.stdout.contains("USER="),
            "env printed nothing: {r}"
        );
        // The token, under its name or its earlier one.
        assert!(
            !r.output.stdout.contains("PAM_MFA_ATTEMPT")
                && !r.output.stdout.contains("PAM_MFA_SESSION"),
            "setup {i}: {r}"
        );
    }
}
