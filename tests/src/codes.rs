//! TOTP codes from an independent implementation: oathtool.
//!
//! Tests never sleep for the clock: they pick codes for steps around "now"
//! (the daemon's window is wide in tests) and use them in increasing order,
//! because the daemon never accepts a step at or before the last one used.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::proc::Cmd;

/// Seconds per TOTP step.
pub const STEP: u64 = 30;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `count` consecutive codes starting at the step holding `unix_time`.
/// The secret goes to oathtool on stdin, not in its arguments.
pub fn totp_codes(secret: &str, unix_time: u64, count: usize) -> Vec<String> {
    assert!(count >= 1);
    let oathtool = crate::paths::tool("oathtool", "oathtool");
    let out = Cmd::new(oathtool)
        .args(["--totp", "--base32", "--digits=6"])
        .arg(format!("--now=@{unix_time}"))
        .arg(format!("--window={}", count - 1))
        .arg("-")
        .stdin(format!("{secret}\n"))
        .run();
    assert!(out.success(), "oathtool failed (secret rejected?):\n{out}");
    let codes: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).collect();
    assert!(
        codes.len() == count && codes.iter().all(|c| is_digits(c, 6)),
        "oathtool printed something unexpected:\n{out}"
    );
    codes
}

/// The 6-digit TOTP code (SHA1, 30 s) for `secret` (base32) at `unix_time`.
pub fn totp_code(secret: &str, unix_time: u64) -> String {
    totp_codes(secret, unix_time, 1).remove(0)
}

/// A fixed "now", so codes for several offsets come from the same step even
/// when the clock crosses a step boundary in between.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: u64,
}

impl Clock {
    pub fn now() -> Clock {
        Clock { now: unix_now() }
    }

    /// The Unix time `k` steps from now.
    pub fn time(&self, k: i64) -> u64 {
        let t = self.now as i64 + k * STEP as i64;
        u64::try_from(t).expect("time after 1970")
    }

    /// The code for now + k*30 s.
    pub fn code(&self, secret: &str, k: i64) -> String {
        totp_code(secret, self.time(k))
    }

    /// Codes for offsets `from..=to`, in order.
    pub fn codes(&self, secret: &str, from: i64, to: i64) -> Vec<String> {
        assert!(from <= to);
        totp_codes(secret, self.time(from), (to - from + 1) as usize)
    }
}

/// The code for now + k*30 s.
pub fn code_at_offset(secret: &str, k: i64) -> String {
    Clock::now().code(secret, k)
}

/// A 6-digit code that is not valid for `secret` at any step within ten
/// steps of now (so it is wrong under any window the tests use).
pub fn wrong_code(secret: &str) -> String {
    let valid = Clock::now().codes(secret, -10, 10);
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("randomness");
        let c = format!("{:06}", u32::from_le_bytes(b) % 1_000_000);
        if !valid.contains(&c) {
            return c;
        }
    }
}

pub fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// The bytes of a base32 secret (RFC 4648, as authenticator apps show it;
/// padding and spaces ignored). Panics on a character outside the alphabet.
pub fn base32_decode(secret: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in secret.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("{:?} is not base32", c as char));
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
