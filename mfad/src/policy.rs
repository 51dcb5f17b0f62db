//! What `Login.Begin` answers, pure: from the policy, the user's enrollment
//! and lockout state and the time.

use crate::lockout::Lockout;

/// `[policy] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Users without an enrollment pass this module (PAM_IGNORE).
    Optional,
    /// Users without an enrollment are refused.
    Required,
}

/// The decision, before any login attempt is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ignore,
    /// A trusted device: no code needed.
    Allow,
    Deny(String),
    Challenge,
}

pub const NOT_ENROLLED_REQUIRED: &str =
    "2-step verification is required for this account but not set up; ask your administrator.";

/// `enrolled` means at least one active device; `trusted` that the login
/// comes from a device whose trust holds. A lockout beats trust.
pub fn begin(mode: Mode, enrolled: bool, trusted: bool, lockout: Lockout, now: i64) -> Decision {
    if !enrolled {
        return match mode {
            Mode::Optional => Decision::Ignore,
            Mode::Required => Decision::Deny(NOT_ENROLLED_REQUIRED.to_string()),
        };
    }
    if lockout.is_locked(now) {
        return Decision::Deny(lockout.message(now));
    }
    if trusted {
        return Decision::Allow;
    }
    Decision::Challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unenrolled_users_follow_the_mode() {
        let free = Lockout::default();
        assert_eq!(
            begin(Mode::Optional, false, false, free, 0),
            Decision::Ignore
        );
        assert!(matches!(
            begin(Mode::Required, false, false, free, 0),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn enrolled_users_are_challenged_unless_locked() {
        let free = Lockout::default();
        assert_eq!(
            begin(Mode::Optional, true, false, free, 0),
            Decision::Challenge
        );
        assert_eq!(
            begin(Mode::Required, true, false, free, 0),
            Decision::Challenge
        );
        let locked = Lockout {
            failures: 5,
            locked_until: 100,
            locks: 1,
        };
        assert!(
            matches!(begin(Mode::Optional, true, true, locked, 50), Decision::Deny(m) if m.contains("Too many"))
        );
        assert_eq!(
            begin(Mode::Optional, true, false, locked, 100),
            Decision::Challenge
        );
    }

    #[test]
    fn trusted_devices_skip_the_code_but_not_a_lockout_or_missing_enrollment() {
        let free = Lockout::default();
        assert_eq!(begin(Mode::Optional, true, true, free, 0), Decision::Allow);
        assert_eq!(
            begin(Mode::Optional, false, true, free, 0),
            Decision::Ignore
        );
        assert!(matches!(
            begin(Mode::Required, false, true, free, 0),
            Decision::Deny(_)
        ));
    }
}
