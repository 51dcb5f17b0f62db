//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), pure: the time is a
//! parameter. Replay protection lives in the caller: these functions only say
//! which step a code belongs to, never whether it was used.

use subtle::ConstantTimeEq;
use totp_rs::{Builder, Secret, Totp};

/// Seconds per time step.
pub const STEP_SECONDS: u64 = 30;
/// Length of a newly generated secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Digits in a code.
pub const DIGITS: usize = 6;

/// The time step that `unix_time` falls in.
pub fn step_at(unix_time: i64) -> u64 {
    u64::try_from(unix_time).unwrap_or(0) / STEP_SECONDS
}

fn totp_for(secret: &[u8]) -> Totp {
    // Secrets we store are always SECRET_BYTES long; the non-compliant build
    // only skips the minimum-length check, which the RFC vectors need.
    Builder::new()
        .with_secret(Secret::from(secret.to_vec()))
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECONDS)
        .build_noncompliant()
}

/// The code for `secret` at time step `step`, zero-padded.
#[cfg(test)]
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    totp_for(secret).generate(step * STEP_SECONDS).to_string()
}

/// The steps within `window` of `now_step`, oldest first.
fn window_steps(now_step: u64, window: u32) -> impl Iterator<Item = u64> {
    let w = u64::from(window);
    now_step.saturating_sub(w)..=now_step.saturating_add(w)
}

/// Compares in constant time for codes of equal length.
fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The step within `window` of `now` whose code is `code`, if any, newer than
/// `after_step` (the last step already accepted for the user). Every step in
/// the window is computed and compared, so the time taken does not depend on
/// which step matched.
pub fn find_step(secret: &[u8], code: &str, now: i64, window: u32, after_step: u64) -> Option<u64> {
    let totp = totp_for(secret);
    let mut found = None;
    for step in window_steps(step_at(now), window) {
        let candidate = totp.generate(step * STEP_SECONDS).to_string();
        if same_code(&candidate, code) && step > after_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// For enrollment: the step `s` within the window such that `code1` is the
/// code of `s` and `code2` the code of `s + 1`, both within the window and
/// newer than `after_step`. Returns `s + 1`, the last step used.
pub fn find_consecutive(
    secret: &[u8],
    code1: &str,
    code2: &str,
    now: i64,
    window: u32,
    after_step: u64,
) -> Option<u64> {
    let totp = totp_for(secret);
    let steps: Vec<u64> = window_steps(step_at(now), window).collect();
    let codes: Vec<String> = steps
        .iter()
        .map(|s| totp.generate(s * STEP_SECONDS).to_string())
        .collect();
    let mut found = None;
    for i in 0..codes.len().saturating_sub(1) {
        let both = same_code(&codes[i], code1) & same_code(&codes[i + 1], code2);
        if both && steps[i] > after_step && found.is_none() {
            found = Some(steps[i + 1]);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn secret_to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec())
        .to_base32()
        .trim_end_matches('=')
        .to_string()
}

/// Percent-encodes a label or parameter for an otpauth URI.
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The otpauth URI that authenticator apps read from the QR code (the Key
/// Uri Format of Google Authenticator, understood by Aegis, FreeOTP and
/// 1Password too).
pub fn otpauth_uri(issuer: &str, user: &str, secret: &[u8]) -> String {
    let issuer = uri_escape(issuer);
    format!(
        "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        user = uri_escape(user),
        secret = secret_to_base32(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // RFC 6238 appendix B, SHA1 column, last six of the eight digits.
        let vectors = [
            (59i64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(code_at_step(RFC_SECRET, step_at(t)), code, "t={t}");
        }
    }

    #[test]
    fn window_accepts_neighbouring_steps_only() {
        let now = 1_111_111_109;
        let s = step_at(now);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let step = (s as i64 + offset) as u64;
            let code = code_at_step(RFC_SECRET, step);
            let got = find_step(RFC_SECRET, &code, now, 1, 0);
            assert_eq!(got.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(got, Some(step));
            }
        }
    }

    #[test]
    fn steps_at_or_before_the_last_accepted_are_refused() {
        let now = 1_111_111_109;
        let s = step_at(now);
        let code = code_at_step(RFC_SECRET, s);
        assert_eq!(find_step(RFC_SECRET, &code, now, 1, s - 1), Some(s));
        assert_eq!(find_step(RFC_SECRET, &code, now, 1, s), None);
        assert_eq!(find_step(RFC_SECRET, &code, now, 1, s + 1), None);
    }

    #[test]
    fn wrong_and_malformed_codes_are_refused() {
        let now = 59;
        assert_eq!(find_step(RFC_SECRET, "000000", now, 1, 0), None);
        assert_eq!(find_step(RFC_SECRET, "28708", now, 1, 0), None);
        assert_eq!(find_step(RFC_SECRET, "2870822", now, 1, 0), None);
        assert_eq!(find_step(RFC_SECRET, "", now, 1, 0), None);
    }

    #[test]
    fn consecutive_codes_confirm_enrollment() {
        let now = 2_000_000_000;
        let s = step_at(now);
        let c0 = code_at_step(RFC_SECRET, s);
        let c1 = code_at_step(RFC_SECRET, s + 1);
        assert_eq!(
            find_consecutive(RFC_SECRET, &c0, &c1, now, 1, 0),
            Some(s + 1)
        );
        // Swapped, repeated or non-adjacent codes do not.
        assert_eq!(find_consecutive(RFC_SECRET, &c1, &c0, now, 1, 0), None);
        assert_eq!(find_consecutive(RFC_SECRET, &c0, &c0, now, 1, 0), None);
        let c2 = code_at_step(RFC_SECRET, s + 2);
        assert_eq!(find_consecutive(RFC_SECRET, &c0, &c2, now, 1, 0), None);
        // Outside the window.
        assert_eq!(find_consecutive(RFC_SECRET, &c0, &c1, now + 90, 1, 0), None);
    }

    #[test]
    fn otpauth_uri_has_the_key_uri_format() {
        let uri = otpauth_uri("host one", "alice", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/host%20one:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=host%20one&algorithm=SHA1&digits=6&period=30"
        );
    }
}
