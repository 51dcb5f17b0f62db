//! mfactl's contract for scripts and people: errors are one sentence on
//! stderr prefixed `mfactl: ` with exit 1 (2 for usage), and `--json`
//! output has the agreed shapes.

use mfa_tests::{Env, Output};
use serde_json::json;

#[track_caller]
fn one_line_error(out: &Output, code: i32) {
    assert_eq!(out.code, Some(code), "{out}");
    assert!(out.stderr.starts_with("mfactl: "), "{out}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
}

#[test]
fn a_missing_daemon_is_one_clear_error() {
    let env = Env::builder().no_daemon().start();
    let u = env.add_user();
    one_line_error(&env.mfactl_as(&u, &["status"]), 1);
    one_line_error(&env.mfactl_as(&u, &["--json", "status"]), 1);
    one_line_error(&env.mfactl(&["admin", "list"]), 1);
    // No bus at all.
    let out = mfa_tests::Cmd::new(mfa_tests::paths::mfactl())
        .args(["--bus", "unix:path=/nonexistent/bus", "status"])
        .as_user(&u)
        .run();
    one_line_error(&out, 1);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let u = env.add_user();
    for args in [
        vec!["frobnicate"],
        vec!["enroll", "sms"],
        vec!["enroll", "totp", "--confirm", "only-an-id"],
        vec!["admin", "reset"],
    ] {
        let out = env.mfactl_as(&u, &args);
        assert_eq!(
            out.code,
            Some(2),
            "usage error expected for {args:?}:\n{out}"
        );
    }
}

#[test]
fn json_shapes() {
    let env = Env::new();
    let u = env.add_user();
    env.enroll(&u);
    let s = env.mfactl_json(Some(&u), &["status"]);
    for key in [
        "user",
        "enrolled",
        "devices",
        "backup_codes_left",
        "failures",
        "locked_until",
    ] {
        assert!(s.get(key).is_some(), "status lacks {key}: {s}");
    }
    for key in ["id", "kind", "name", "created", "last_used"] {
        assert!(
            s["devices"][0].get(key).is_some(),
            "device lacks {key}: {s}"
        );
    }
    let l = env.mfactl_json(None, &["admin", "list"]);
    let row = &l[0];
    for key in ["user", "devices", "backup_codes_left", "locked_until"] {
        assert!(row.get(key).is_some(), "list row lacks {key}: {l}");
    }
    assert_eq!(
        env.mfactl_json(None, &["admin", "unlock", &u.name]),
        json!({"ok": true})
    );
    assert_eq!(
        env.mfactl_json(None, &["admin", "reset", &u.name]),
        json!({"ok": true})
    );
}
