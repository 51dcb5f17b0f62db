//! Enrollment of an authenticator app with the real mfactl, as the user,
//! against the real mfad: interactive and scripted.

use std::time::Duration;

use mfa_tests::codes::{is_digits, Clock};
use mfa_tests::mfactl::{confirm_offset, json_str};
use mfa_tests::{code_at_offset, wrong_code, Env, PamResult};
use serde_json::Value;

fn is_base32(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// The query parameters of an otpauth URI.
fn query(uri: &str) -> Vec<(String, String)> {
    uri.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The URI is what Google Authenticator and friends read: label
/// ISSUER:USER, the secret (160 bits, base32), issuer, SHA1, 6 digits, 30 s.
#[track_caller]
fn check_uri(uri: &str, secret: &str, issuer: &str, user: &str) {
    let label_ok = [
        format!("otpauth://totp/{issuer}:{user}?"),
        format!("otpauth://totp/{issuer}%3A{user}?"),
        format!("otpauth://totp/{issuer}%3a{user}?"),
    ]
    .iter()
    .any(|p| uri.starts_with(p.as_str()));
    assert!(label_ok, "otpauth URI label must be {issuer}:{user}: {uri}");
    let q = query(uri);
    assert_eq!(param(&q, "secret"), Some(secret), "{uri}");
    assert_eq!(param(&q, "issuer"), Some(issuer), "{uri}");
    assert_eq!(param(&q, "algorithm"), Some("SHA1"), "{uri}");
    assert_eq!(param(&q, "digits"), Some("6"), "{uri}");
    assert_eq!(param(&q, "period"), Some("30"), "{uri}");
    assert!(is_base32(secret), "secret is not base32: {secret}");
    // 160 bits = 32 base32 characters (no padding).
    assert_eq!(secret.len(), 32, "secret must be 160 bits: {secret}");
}

#[track_caller]
fn status(env: &Env, user: &mfa_tests::User) -> Value {
    env.mfactl_json(Some(user), &["status"])
}

#[test]
fn scripted_enrollment_activates_a_device() {
    let env = Env::new();
    let alice = env.add_user();
    let p = env.enroll_begin(&alice);
    check_uri(&p.uri, &p.secret, "mfa-test", &alice.name);
    // Not enrolled until confirmed.
    assert_eq!(status(&env, &alice)["enrolled"], Value::Bool(false));

    let codes = env.confirm_codes(&p.secret);
    let v = env.mfactl_json(
        Some(&alice),
        &[
            "enroll",
            "totp",
            "--confirm",
            &p.enrollment_id,
            &codes[0],
            &codes[1],
        ],
    );
    let device_id = json_str(&v, "device_id");
    let backup: Vec<&str> = v["backup_codes"]
        .as_array()
        .expect("backup_codes")
        .iter()
        .map(|c| c.as_str().expect("string"))
        .collect();
    assert_eq!(backup.len(), 10, "{v}");
    assert!(backup.iter().all(|c| is_digits(c, 8)), "{v}");
    let distinct: std::collections::BTreeSet<_> = backup.iter().collect();
    assert_eq!(distinct.len(), 10, "backup codes must differ: {v}");

    let s = status(&env, &alice);
    assert_eq!(s["user"], Value::String(alice.name.clone()), "{s}");
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");
    assert_eq!(s["backup_codes_left"], 10, "{s}");
    assert_eq!(s["failures"], 0, "{s}");
    assert_eq!(s["locked_until"], 0, "{s}");
    let devices = s["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{s}");
    assert_eq!(devices[0]["id"], Value::String(device_id), "{s}");
    assert_eq!(devices[0]["kind"], "totp", "{s}");
    assert!(devices[0]["created"].as_i64().unwrap_or(0) > 0, "{s}");

    // The enrolled app's next code logs in through the real PAM module.
    let svc = env.pam_service("");
    let code = code_at_offset(&p.secret, 0);
    env.pamtester(&svc, &alice, &[&code])
        .assert_result(PamResult::Success);
}

#[test]
fn interactive_enrollment_shows_qr_secret_and_backup_codes() {
    let env = Env::new();
    let bob = env.add_user();
    let mut run = env
        .mfactl_cmd(&["enroll", "totp"])
        .as_user(&bob)
        .timeout(Duration::from_secs(30))
        .spawn_interactive();
    run.wait_for("Code 1:", 1, Duration::from_secs(15));
    let shown = run.transcript();

    // The otpauth URI, readable by the apps, carries the secret.
    let uri = shown
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI shown:\n{shown}"))
        .to_string();
    let secret = param(&query(&uri), "secret")
        .unwrap_or_else(|| panic!("URI without secret: {uri}"))
        .to_string();
    check_uri(&uri, &secret, "mfa-test", &bob.name);
    // The secret in groups, for typing it in by hand.
    assert!(
        shown
            .lines()
            .any(|l| !l.contains(&secret)
                && l.split_whitespace().collect::<String>().contains(&secret)),
        "the secret is not shown in groups for manual entry:\n{shown}"
    );
    // A QR code drawn with Unicode blocks.
    let qr_lines = shown
        .lines()
        .filter(|l| l.contains('█') || l.contains('▀') || l.contains('▄'))
        .count();
    assert!(qr_lines >= 10, "no QR code in the terminal:\n{shown}");

    let codes = Clock::now().codes(
        &secret,
        confirm_offset(env.window()),
        confirm_offset(env.window()) + 1,
    );
    run.send_line(&codes[0]);
    run.wait_for("Code 2:", 1, Duration::from_secs(15));
    run.send_line(&codes[1]);
    let out = run.finish();
    out.assert_success();

    // Ten 8-digit backup codes are shown once, after the codes.
    let after = out
        .stdout
        .rsplit_once("Code 2:")
        .map_or(out.stdout.as_str(), |(_, a)| a);
    let backup = eight_digit_codes(after);
    assert_eq!(backup.len(), 10, "expected 10 backup codes:\n{out}");
    // The codes typed are never echoed back.
    assert!(
        !out.all().contains(&codes[0]) && !out.all().contains(&codes[1]),
        "mfactl printed a verification code:\n{out}"
    );

    let s = status(&env, &bob);
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");
    assert_eq!(s["backup_codes_left"], 10, "{s}");

    // The shown backup codes are the real ones.
    let svc = env.pam_service("");
    env.pamtester(&svc, &bob, &[&backup[3]])
        .assert_result(PamResult::Success);
}

/// 8-digit codes in text, also when shown as "1234 5678" or "1234-5678".
fn eight_digit_codes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let tokens: Vec<&str> = line
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != ' ')
            .collect();
        for t in tokens {
            let words: Vec<&str> = t.split(' ').filter(|w| !w.is_empty()).collect();
            let mut i = 0;
            while i < words.len() {
                let w = words[i];
                if is_digits(w, 8) {
                    out.push(w.to_string());
                } else if let Some((a, b)) = w.split_once('-') {
                    if is_digits(a, 4) && is_digits(b, 4) {
                        out.push(format!("{a}{b}"));
                    }
                } else if is_digits(w, 4) && words.get(i + 1).is_some_and(|n| is_digits(n, 4)) {
                    out.push(format!("{w}{}", words[i + 1]));
                    i += 1;
                }
                i += 1;
            }
        }
    }
    out.dedup();
    out
}

/// Each bad pair is tried on a fresh enrollment, so a daemon that limits
/// guesses per enrollment is not mistaken for one that refuses good codes.
#[test]
fn confirmation_refuses_wrong_and_non_consecutive_codes() {
    let env = Env::builder().max_failures(100).start();
    let carol = env.add_user();
    let first = confirm_offset(env.window());
    // (index of code1 or None for a wrong one, same for code2, why)
    let cases: [(Option<usize>, Option<usize>, &str); 5] = [
        (None, Some(1), "a wrong first code"),
        (Some(0), None, "a wrong second code"),
        (Some(0), Some(2), "codes two steps apart"),
        (Some(1), Some(0), "codes in reverse order"),
        (Some(0), Some(0), "the same code twice"),
    ];
    for (i1, i2, why) in cases {
        let p = env.enroll_begin(&carol);
        let c = Clock::now().codes(&p.secret, first, first + 2);
        let wrong = wrong_code(&p.secret);
        let pick = |i: Option<usize>| i.map_or(wrong.clone(), |i| c[i].clone());
        let (a, b) = (pick(i1), pick(i2));
        let out = env.mfactl_as(
            &carol,
            &["enroll", "totp", "--confirm", &p.enrollment_id, &a, &b],
        );
        assert_eq!(
            out.code,
            Some(1),
            "{why} must be refused with exit 1:\n{out}"
        );
        assert!(
            out.stderr.starts_with("mfactl: ") && out.stderr.trim_end().lines().count() == 1,
            "{why}: the error must be one line starting with `mfactl: `:\n{out}"
        );
        assert!(
            !out.stderr.contains(&a) && !out.stderr.contains(&b),
            "{why}: the error repeats a code:\n{out}"
        );
    }
    assert_eq!(status(&env, &carol)["enrolled"], Value::Bool(false));

    // An enrollment id that does not exist.
    let out = env.mfactl_as(
        &carol,
        &[
            "enroll",
            "totp",
            "--confirm",
            "no-such-enrollment",
            "123456",
            "654321",
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("mfactl: "), "{out}");

    // A right pair completes an enrollment.
    env.enroll(&carol);
    assert_eq!(status(&env, &carol)["enrolled"], Value::Bool(true));
}

/// A user may have more than one device; either one's codes log in.
#[test]
fn a_user_may_enroll_two_devices() {
    let env = Env::new();
    let dave = env.add_user();
    let first = env.enroll(&dave);
    // The second confirmation must use later steps than the first (no step
    // is accepted twice for a user): steps -1 and 0. A further device
    // needs a current code.
    let p = env.enroll_begin_with_code(&dave, &first.backup_codes[0]);
    let c = Clock::now().codes(&p.secret, -1, 0);
    let v = env.mfactl_json(
        Some(&dave),
        &[
            "enroll",
            "totp",
            "--confirm",
            &p.enrollment_id,
            &c[0],
            &c[1],
        ],
    );
    let second_id = json_str(&v, "device_id");
    assert_ne!(second_id, first.device_id);
    assert_eq!(
        v["backup_codes"],
        serde_json::json!([]),
        "backup codes come once: {v}"
    );
    let s = status(&env, &dave);
    let ids: Vec<&str> = s["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{s}");
    assert!(ids.contains(&first.device_id.as_str()) && ids.contains(&second_id.as_str()));

    let svc = env.pam_service("");
    let clock = Clock::now();
    env.pamtester(&svc, &dave, &[&clock.code(&first.secret, 1)])
        .assert_result(PamResult::Success);
    env.pamtester(&svc, &dave, &[&clock.code(&p.secret, 2)])
        .assert_result(PamResult::Success);
}

#[test]
fn enrollment_name_is_kept() {
    let env = Env::new();
    let erin = env.add_user();
    let mut run = env
        .mfactl_cmd(&["enroll", "totp", "--name", "work phone"])
        .as_user(&erin)
        .spawn_interactive();
    run.wait_for("Code 1:", 1, Duration::from_secs(15));
    let shown = run.transcript();
    let uri = shown
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI shown:\n{shown}"))
        .to_string();
    let secret = param(&query(&uri), "secret").expect("secret").to_string();
    let first = confirm_offset(env.window());
    let c = Clock::now().codes(&secret, first, first + 1);
    run.send_line(&c[0]);
    run.wait_for("Code 2:", 1, Duration::from_secs(15));
    run.send_line(&c[1]);
    run.finish().assert_success();
    let s = status(&env, &erin);
    assert_eq!(s["devices"][0]["name"], "work phone", "{s}");
}

/// Once a user has a device, adding an app asks for a current code at the
/// prompt (and `--begin` without `--code` or stdin refuses): nothing running
/// as the user can add its own app behind their back.
#[test]
fn a_further_app_asks_for_a_current_code_first() {
    let env = Env::new();
    let fay = env.add_user();
    let first = env.enroll(&fay);
    let out = env
        .mfactl_cmd(&["enroll", "totp", "--begin"])
        .as_user(&fay)
        .stdin("")
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    let mut run = env
        .mfactl_cmd(&["enroll", "totp"])
        .as_user(&fay)
        .timeout(Duration::from_secs(30))
        .spawn_interactive();
    run.wait_for("Current code (", 1, Duration::from_secs(15));
    assert!(
        !run.transcript().contains("otpauth://"),
        "no secret before the code"
    );
    run.send_line(&first.backup_codes[0]);
    run.wait_for("Code 1:", 1, Duration::from_secs(15));
    let shown = run.transcript();
    let secret = shown
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://totp/"))
        .and_then(|uri| param(&query(uri), "secret").map(str::to_string))
        .unwrap_or_else(|| panic!("no otpauth URI shown:\n{shown}"));
    let codes = Clock::now().codes(&secret, 1, 2);
    run.send_line(&codes[0]);
    run.wait_for("Code 2:", 1, Duration::from_secs(15));
    run.send_line(&codes[1]);
    let out = run.finish();
    out.assert_success();
    assert!(out.stdout.contains("backup codes are unchanged"), "{out}");
    let s = status(&env, &fay);
    assert_eq!(s["devices"].as_array().map(Vec::len), Some(2), "{s}");
    assert_eq!(s["backup_codes_left"], 9, "{s}");
}
