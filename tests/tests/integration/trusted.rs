//! Trusted devices: after a right code, the device the login came from
//! (the SSH key of the first factor, else the remote host) logs in without
//! a code while `[trusted_devices] lifetime` lasts. Users list and remove
//! them with `mfactl trusted`, admins with `mfactl admin trusted USER`, and
//! `admin reset` clears them. Local logins are never trusted; lifetime
//! "off" (the default) trusts nothing. Trust is given in the account phase
//! (`account required pam_mfa.so`), which runs only once the whole auth
//! stack passed: a right code next to a wrong password trusts nothing.

use mfa_tests::codes::unix_now;
use mfa_tests::ssh::{account_guard, SshKey, SshOpts, SshSetup};
use mfa_tests::{Clock, Env, PamOutcome, PamResult, PamtesterOpts, User};
use serde_json::Value;

const TRUSTED_MSG: &str = "This device is trusted";

fn opts<'a>(key: &'a SshKey, codes: &[&str]) -> SshOpts<'a> {
    SshOpts {
        key: Some(key),
        codes: codes.iter().map(|c| c.to_string()).collect(),
        ..SshOpts::default()
    }
}

/// `mfactl --json trusted list` as the user.
fn trusted_list(env: &Env, user: &User) -> Vec<Value> {
    let v = env.mfactl_json(Some(user), &["trusted", "list"]);
    v.as_array()
        .unwrap_or_else(|| panic!("trusted list is not an array: {v}"))
        .clone()
}

/// A remote service with the code in auth and the guard (which grants the
/// trust) in account.
fn trusted_service(env: &Env) -> String {
    env.pam_service_raw(&format!(
        "auth required {m}\naccount required {m}\n",
        m = env.pam_module_spec()
    ))
}

/// pamtester from a remote host (PAM_RHOST), as a remote service that is
/// not sshd would set it: authenticate, then the account phase.
fn from_host(env: &Env, svc: &str, user: &User, rhost: &str, answers: &[&str]) -> PamOutcome {
    let items = match rhost {
        "" => vec![],
        h => vec![("rhost", h)],
    };
    env.pamtester_with(
        svc,
        user,
        answers,
        &PamtesterOpts {
            items,
            ops: vec!["authenticate", "acct_mgmt"],
            ..PamtesterOpts::default()
        },
    )
}

#[test]
fn a_verified_ssh_key_is_trusted_until_removed() {
    let env = Env::builder()
        .trusted_lifetime("30d")
        .max_failures(100)
        .start();
    let dan = env.add_login_user(None);
    let dev = env.enroll_raw(&dan);
    let key = env.ssh_key();
    let other = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env).account(&account_guard(&env)));
    sshd.authorize(&dan, &[&key, &other]);
    let c = Clock::now().codes(&dev.secret, 0, 2);

    // First login from the key: the code is asked.
    let r = sshd.ssh(&dan, &opts(&key, &[&c[0]]));
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");

    // Same key again: no code prompt at all, and in.
    let r = sshd.ssh(&dan, &opts(&key, &[]));
    r.assert_logged_in();
    assert!(r.prompts.is_empty(), "a trusted key is asked nothing: {r}");
    let log = env.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("login allowed")
            && l.contains(&format!("user={}", dan.name))
            && l.contains("trusted_device=")),
        "{log}"
    );

    // The user sees one key device, with the key's fingerprint.
    let list = trusted_list(&env, &dan);
    assert_eq!(list.len(), 1, "{list:?}");
    let t = &list[0];
    assert_eq!(t["kind"], "key", "{t}");
    assert_eq!(t["identity"], key.fingerprint.as_str(), "{t}");
    let now = unix_now() as i64;
    let first = t["first_used"].as_i64().unwrap_or(0);
    let last = t["last_used"].as_i64().unwrap_or(0);
    let expires = t["expires"].as_i64().unwrap_or(0);
    assert!(first > now - 120 && first <= last && last <= now + 5, "{t}");
    assert!(
        expires >= now + 29 * 86400 && expires <= now + 31 * 86400,
        "30d lifetime: {t}"
    );
    let text = env.mfactl_as(&dan, &["trusted", "list"]);
    text.assert_success();
    assert!(
        text.stdout.contains(&key.fingerprint) && text.stdout.contains("key"),
        "{text}"
    );

    // Another key of the same user is not trusted by the first one.
    let r = sshd.ssh(&dan, &opts(&other, &[&c[1]]));
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");
    assert_eq!(trusted_list(&env, &dan).len(), 2);

    // The user removes them all: the key is asked again.
    let v = env.mfactl_json(Some(&dan), &["trusted", "remove", "--all"]);
    assert_eq!(v["removed"], 2, "{v}");
    assert!(trusted_list(&env, &dan).is_empty());
    let r = sshd.ssh(&dan, &opts(&key, &[&c[2]]));
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");

    // The admin sees it; reset clears it.
    let v = env.mfactl_json(None, &["admin", "trusted", &dan.name]);
    let a = v.as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(a.len(), 1, "{v}");
    assert_eq!(a[0]["identity"], key.fingerprint.as_str(), "{v}");
    let text = env.mfactl(&["admin", "trusted", &dan.name]);
    text.assert_success();
    assert!(text.stdout.contains(&key.fingerprint), "{text}");
    env.mfactl(&["admin", "reset", &dan.name]).assert_success();
    let v = env.mfactl_json(None, &["admin", "trusted", &dan.name]);
    assert_eq!(v, serde_json::json!([]), "reset leaves no trusted device");
}

/// Removing one trusted device by id, by the user and by the admin.
#[test]
fn trusted_devices_are_removed_one_by_one() {
    let env = Env::builder().trusted_lifetime("forever").start();
    let eve = env.add_user();
    let dev = env.enroll_raw(&eve);
    let svc = trusted_service(&env);
    let c = Clock::now().codes(&dev.secret, 0, 1);
    from_host(&env, &svc, &eve, "10.1.1.1", &[&c[0]]).assert_result(PamResult::Success);
    from_host(&env, &svc, &eve, "10.1.1.2", &[&c[1]]).assert_result(PamResult::Success);
    let list = trusted_list(&env, &eve);
    assert_eq!(list.len(), 2, "{list:?}");
    // "forever": no expiry, shown as "never".
    assert!(list.iter().all(|t| t["expires"] == 0), "{list:?}");
    let text = env.mfactl_as(&eve, &["trusted", "list"]);
    assert!(text.stdout.contains("never"), "{text}");

    let id = |host: &str| -> String {
        trusted_list(&env, &eve)
            .iter()
            .find(|t| t["identity"] == host)
            .and_then(|t| t["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no trusted device for {host}"))
    };
    let first = id("10.1.1.1");
    let out = env.mfactl_as(&eve, &["trusted", "remove", &first]);
    out.assert_success();
    assert!(out.stdout.contains(&first), "{out}");
    let left = trusted_list(&env, &eve);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["identity"], "10.1.1.2");
    // An id that is no longer there: a clear error.
    let out = env.mfactl_as(&eve, &["trusted", "remove", &first]);
    out.assert_failure();
    assert!(out.stderr.starts_with("mfactl: "), "{out}");

    let second = id("10.1.1.2");
    env.mfactl(&["admin", "trusted", &eve.name, "remove", &second])
        .assert_success();
    assert!(trusted_list(&env, &eve).is_empty());
}

/// Without a key, a remote service's host is the device; the trust is per
/// user and per host, and a local login (no PAM_RHOST) is never trusted.
#[test]
fn remote_hosts_are_trusted_and_local_logins_never() {
    let env = Env::builder().trusted_lifetime("30d").start();
    let fay = env.add_user();
    let gil = env.add_user();
    let dev = env.enroll_raw(&fay);
    let gdev = env.enroll_raw(&gil);
    let svc = trusted_service(&env);
    let c = Clock::now().codes(&dev.secret, 0, 3);

    let r = from_host(&env, &svc, &fay, "10.9.8.7", &[&c[0]]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
    // Again from the same host: in without a prompt, and told why.
    let r = from_host(&env, &svc, &fay, "10.9.8.7", &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    assert!(r.transcript().contains(TRUSTED_MSG), "{}", r.output);
    // Another host is asked.
    let r = from_host(&env, &svc, &fay, "10.9.8.6", &[&c[1]]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
    // Another user from the trusted host is asked: trust is per user.
    let g = Clock::now().code(&gdev.secret, 0);
    let r = from_host(&env, &svc, &gil, "10.9.8.7", &[&g]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);

    // Local logins: asked every time, and never listed.
    for code in [&c[2], &c[3]] {
        let r = from_host(&env, &svc, &fay, "", &[code]);
        r.assert_result(PamResult::Success);
        assert_eq!(
            r.prompts(),
            1,
            "a local login is never trusted:\n{}",
            r.output
        );
    }
    let list = trusted_list(&env, &fay);
    let mut hosts: Vec<&str> = list
        .iter()
        .map(|t| {
            assert_eq!(t["kind"], "host", "{t}");
            t["identity"].as_str().unwrap_or("")
        })
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["10.9.8.6", "10.9.8.7"], "{list:?}");
}

/// lifetime "off" (mfad's default; the harness leaves the section out):
/// every login asks, keys and hosts alike, and nothing is listed.
#[test]
fn trust_is_off_by_default() {
    let env = Env::new();
    assert!(env.config().trusted_lifetime.is_none());
    assert!(!std::fs::read_to_string(env.config_path())
        .unwrap_or_default()
        .contains("trusted_devices"));
    let hal = env.add_login_user(None);
    let dev = env.enroll_raw(&hal);
    let key = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env).account(&account_guard(&env)));
    sshd.authorize(&hal, &[&key]);
    let svc = trusted_service(&env);
    let c = Clock::now().codes(&dev.secret, 0, 3);

    for code in [&c[0], &c[1]] {
        let r = sshd.ssh(&hal, &opts(&key, &[code]));
        r.assert_logged_in();
        assert_eq!(r.code_prompts(), 1, "{r}");
    }
    for code in [&c[2], &c[3]] {
        let r = from_host(&env, &svc, &hal, "10.9.8.7", &[code]);
        r.assert_result(PamResult::Success);
        assert_eq!(r.prompts(), 1, "{}", r.output);
    }
    assert!(trusted_list(&env, &hal).is_empty());
}

/// Trusted devices are the user's own business: another user can neither
/// see nor remove them, the Admin methods need an admin, and root may.
#[test]
fn trusted_devices_are_private() {
    let env = Env::builder().trusted_lifetime("30d").start();
    let ida = env.add_user();
    let jo = env.add_user();
    let dev = env.enroll_raw(&ida);
    let svc = trusted_service(&env);
    let code = Clock::now().code(&dev.secret, 0);
    from_host(&env, &svc, &ida, "10.2.2.2", &[&code]).assert_result(PamResult::Success);

    let mine = env.call(Some(&ida), &["trusted", ""]);
    let list = mine.ok().as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{mine:?}");
    let id = list[0]["id"].as_str().unwrap_or_default().to_string();

    for args in [
        vec!["trusted", ida.name.as_str()],
        vec!["trusted-remove", &ida.name, &id],
        vec!["trusted-remove-all", &ida.name],
        vec!["admin-trusted", &ida.name],
        vec!["admin-trusted-remove", &ida.name, &id],
        vec!["admin-trusted-remove-all", &ida.name],
    ] {
        env.call(Some(&jo), &args).assert_error("AccessDenied");
    }
    // Not an admin either for herself.
    env.call(Some(&ida), &["admin-trusted", &ida.name])
        .assert_error("AccessDenied");
    // Still there; root removes it.
    assert_eq!(trusted_list(&env, &ida).len(), 1);
    let v = env.call(None, &["admin-trusted-remove-all", &ida.name]);
    assert_eq!(v.ok(), &serde_json::json!(1), "{v:?}");
    assert!(trusted_list(&env, &ida).is_empty());
}

/// The bug this order of things prevents: pam_mfa succeeds, a later module
/// of the stack (the password) fails, and the device must not be trusted.
#[test]
fn a_right_code_with_a_wrong_password_trusts_nothing() {
    let env = Env::builder()
        .trusted_lifetime("30d")
        .max_failures(100)
        .start();
    let password = "correct horse 7";
    let eve = env.add_login_user(Some(password));
    let dev = env.enroll_raw(&eve);
    let svc = env.pam_service_raw(&format!(
        "auth required pam_unix.so nodelay\nauth required {m}\naccount required {m}\n",
        m = env.pam_module_spec()
    ));
    let c = Clock::now().codes(&dev.secret, 0, 2);
    let r = from_host(&env, &svc, &eve, "10.3.3.3", &["wrong password", &c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(
        trusted_list(&env, &eve).is_empty(),
        "trusted after a failed login"
    );
    // The password alone is not enough next time: the code is asked.
    let r = from_host(&env, &svc, &eve, "10.3.3.3", &[password]);
    assert_ne!(r.result(), PamResult::Success, "{}", r.transcript());
    assert_eq!(r.prompts(), 1, "the code prompt: {}", r.transcript());
    // A full login does make it trusted.
    let r = from_host(&env, &svc, &eve, "10.3.3.3", &[password, &c[1]]);
    r.assert_result(PamResult::Success);
    assert_eq!(trusted_list(&env, &eve).len(), 1);
}

/// Only root vouches for where a login comes from: a caller running as the
/// user (a screen locker) that names a host and a key of its own choosing
/// gets its code checked, but no trusted device. The same made-up origin
/// begun by root is trusted, so the check can fail.
#[test]
fn a_caller_running_as_the_user_cannot_mint_trust() {
    let env = Env::builder().trusted_lifetime("30d").start();
    let mo = env.add_user();
    let dev = env.enroll_raw(&mo);
    let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNtIS6ys3VoapH/tKTx2Y8H3bCnHjpRD+evliKsWIGw";
    let verify_as = |who: Option<&User>, offset: i64| {
        let b = env.call(who, &["login-begin", &mo.name, "sshd", "203.0.113.7", key]);
        assert_eq!(b.ok()["action"], "challenge", "{b:?}");
        let attempt = b.ok()["attempt"].as_str().expect("attempt").to_string();
        let code = Clock::now().code(&dev.secret, offset);
        let a = env.call(who, &["answer", &attempt, &code]);
        assert_eq!(a.ok()["result"], "success", "{a:?}");
        let c = env.call(who, &["account-check", &mo.name, "sshd", &attempt]);
        assert_eq!(c.ok()["action"], "allow", "{c:?}");
    };
    let trusted = || {
        let t = env.call(None, &["trusted", &mo.name]);
        t.ok().as_array().map(Vec::len).unwrap_or(usize::MAX)
    };
    verify_as(Some(&mo), 0);
    assert_eq!(trusted(), 0, "the user's own caller made a trusted device");
    verify_as(None, 1);
    assert_eq!(trusted(), 1, "root's login from that origin is trusted");
}
