//! Checking a typed code against a user's factors, with replay protection
//! and lockout: each factor uses its code up in one store operation, and a
//! wrong code is counted in one store operation.

use super::Core;
use crate::error::{Error, Result};
use crate::factor::{Accepted, Input, Outcome, FACTORS};
use crate::lockout::Lockout;
use crate::users::Account;

/// Longer input is not a code; it is rejected before any parsing.
const MAX_CODE_INPUT: usize = 64;

pub const MSG_WRONG_RETRY: &str = "Wrong code, try again.";
pub const MSG_WRONG: &str = "Wrong code.";
const MSG_MALFORMED: &str = "A code is 6 digits (or an 8-digit backup code).";
const MSG_WRONG_CURRENT: &str =
    "Wrong code; give a current code from your authenticator app or by SMS, or a backup code.";

/// The outcome of one checked code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok(Accepted),
    /// Counted as a failure; `lockout` is the state after it.
    Wrong {
        lockout: Lockout,
        message: &'static str,
    },
    /// The user was locked before this code; nothing was checked.
    Locked(Lockout),
}

/// The digits of a typed code: ASCII spaces are dropped ("123 456"); any
/// other non-digit, non-UTF-8 input or overlong input gives None.
pub fn normalize(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_CODE_INPUT {
        return None;
    }
    let digits: Vec<u8> = raw.iter().copied().filter(|b| *b != b' ').collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    String::from_utf8(digits).ok()
}

/// Checks a typed code for `user` and records the outcome: success uses the
/// code up (and clears failures); anything else counts as one failure.
pub fn check(core: &Core, account: &Account, raw: &[u8], now: i64) -> Result<Check> {
    let state = core.store.user(account.uid)?;
    if state.lockout.is_locked(now) {
        return Ok(Check::Locked(state.lockout));
    }
    let mut message = MSG_MALFORMED;
    if let Some(code) = normalize(raw) {
        let input = Input {
            store: core.store.as_ref(),
            uid: account.uid,
            state: &state,
            code: &code,
            now,
            totp_window: core.config.totp.window,
            keys: &core.keys,
        };
        for factor in FACTORS {
            match factor.verify(&input)? {
                Outcome::Accepted(how) => return Ok(Check::Ok(how)),
                Outcome::Rejected(why) => {
                    if message == MSG_MALFORMED {
                        message = MSG_WRONG_RETRY;
                    }
                    if let Some(why) = why {
                        message = why;
                    }
                }
                Outcome::NotMine => {}
            }
        }
    }
    let lockout = core
        .store
        .record_failure(account.uid, now, core.config.lockout_limits())?;
    Ok(Check::Wrong { lockout, message })
}

/// For account changes by the user: a current code is required, and a
/// wrong one counts toward the lockout as at login.
pub fn require_code(core: &Core, account: &Account, code: &str, now: i64) -> Result<()> {
    let user = account.name.as_str();
    match check(core, account, code.as_bytes(), now)? {
        Check::Ok(_) => Ok(()),
        Check::Locked(l) => Err(Error::LockedOut(l.message(now))),
        Check::Wrong { lockout, message } => {
            core.audit
                .warn("verify failed", &[("user", user), ("service", "mfactl")]);
            if lockout.is_locked(now) {
                core.audit.warn("lockout", &[("user", user)]);
                return Err(Error::LockedOut(lockout.message(now)));
            }
            let message = if message == MSG_WRONG_RETRY {
                MSG_WRONG_CURRENT
            } else {
                message
            };
            Err(Error::InvalidCode(message.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_input_normalization() {
        assert_eq!(normalize(b"123456").as_deref(), Some("123456"));
        assert_eq!(normalize(b"123 456").as_deref(), Some("123456"));
        assert_eq!(normalize(b" 1234 5678 ").as_deref(), Some("12345678"));
        for bad in [
            &b""[..],
            b"   ",
            b"12345a",
            b"123-456",
            b"\xff\xfe",
            b"\t123456",
            "١٢٣٤٥٦".as_bytes(),
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        assert_eq!(normalize(&[b'1'; 65]), None);
    }
}
