//! The real mfactl, run as root or as a test user, and the scripted
//! enrollment built on it.

use serde_json::Value;

use crate::codes::{is_digits, Clock};
use crate::proc::{Cmd, Output};
use crate::{paths, Env, User};

/// A finished enrollment: what the user's app and the user now hold.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// base32, as shown to the user.
    pub secret: String,
    pub device_id: String,
    pub backup_codes: Vec<String>,
    /// The two codes used to confirm (steps now-3 and now-2 with window 4).
    pub confirm_codes: [String; 2],
}

/// `mfactl --json enroll totp --begin` output.
#[derive(Debug, Clone)]
pub struct PendingEnrollment {
    pub enrollment_id: String,
    pub uri: String,
    pub secret: String,
}

/// A string field of a JSON object, or a panic naming it and the document.
#[track_caller]
pub fn json_str(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("JSON has no string field {key:?}: {v}"))
        .to_string()
}

/// Parses stdout of a successful command as JSON.
#[track_caller]
pub fn parse_json(out: &Output) -> Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"))
}

impl Env {
    /// `mfactl --bus ADDR ARGS...` as a command to adjust (user, stdin).
    pub fn mfactl_cmd(&self, args: &[&str]) -> Cmd {
        Cmd::new(paths::mfactl())
            .arg("--bus")
            .arg(self.bus_address())
            .args(args)
    }

    /// mfactl as root.
    pub fn mfactl(&self, args: &[&str]) -> Output {
        self.mfactl_cmd(args).run()
    }

    /// mfactl as `user`.
    pub fn mfactl_as(&self, user: &User, args: &[&str]) -> Output {
        self.mfactl_cmd(args).as_user(user).run()
    }

    /// `mfactl --json ARGS` (as `user` or root); asserts success and parses
    /// stdout.
    #[track_caller]
    pub fn mfactl_json(&self, user: Option<&User>, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.mfactl_cmd(&all).maybe_as(user).run();
        out.assert_success();
        parse_json(&out)
    }

    /// The user's consecutive failed attempts, from `mfactl admin status`.
    #[track_caller]
    pub fn failures(&self, user: &User) -> u64 {
        let s = self.mfactl_json(None, &["admin", "status", &user.name]);
        s["failures"]
            .as_u64()
            .unwrap_or_else(|| panic!("no failures in {s}"))
    }

    /// `mfactl --json enroll totp --begin` as the user.
    #[track_caller]
    pub fn enroll_begin(&self, user: &User) -> PendingEnrollment {
        let v = self.mfactl_json(Some(user), &["enroll", "totp", "--begin"]);
        PendingEnrollment {
            enrollment_id: json_str(&v, "enrollment_id"),
            uri: json_str(&v, "uri"),
            secret: json_str(&v, "secret"),
        }
    }

    /// `enroll totp --begin --code CODE`: a further device, proven with a
    /// current code.
    pub fn enroll_begin_with_code(&self, user: &User, code: &str) -> PendingEnrollment {
        let v = self.mfactl_json(Some(user), &["enroll", "totp", "--begin", "--code", code]);
        PendingEnrollment {
            enrollment_id: json_str(&v, "enrollment_id"),
            uri: json_str(&v, "uri"),
            secret: json_str(&v, "secret"),
        }
    }

    /// The two confirmation codes for `secret`: the first two steps of the
    /// window (with window 4: now-3 and now-2), so that logins afterwards
    /// still have later steps inside the window without waiting.
    pub fn confirm_codes(&self, secret: &str) -> [String; 2] {
        let first = confirm_offset(self.window());
        let c = Clock::now().codes(secret, first, first + 1);
        [c[0].clone(), c[1].clone()]
    }

    /// Scripted enrollment as the user: `--begin`, then `--confirm ID CODE1
    /// CODE2` with codes from oathtool.
    #[track_caller]
    pub fn enroll(&self, user: &User) -> Enrolled {
        let p = self.enroll_begin(user);
        let codes = self.confirm_codes(&p.secret);
        let v = self.mfactl_json(
            Some(user),
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
        let backup_codes: Vec<String> = v
            .get("backup_codes")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no backup_codes array: {v}"))
            .iter()
            .map(|c| {
                c.as_str()
                    .unwrap_or_else(|| panic!("backup code is not a string: {v}"))
                    .to_string()
            })
            .collect();
        assert_eq!(backup_codes.len(), 10, "expected 10 backup codes: {v}");
        assert!(
            backup_codes.iter().all(|c| is_digits(c, 8)),
            "backup codes must be 8 digits: {v}"
        );
        Enrolled {
            secret: p.secret,
            device_id,
            backup_codes,
            confirm_codes: codes,
        }
    }
}

/// The step offset of the first confirmation code for a window: 1 - window
/// (a step later than the window's edge, so the daemon's clock may have
/// moved one step on since the test computed the code).
pub fn confirm_offset(window: u32) -> i64 {
    assert!(
        window >= 2,
        "the harness needs [totp] window >= 2 to enroll and log in without waiting"
    );
    1 - window as i64
}
