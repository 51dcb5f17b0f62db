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

/// The decision, before any session is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ignore,
    Deny(String),
    Challenge,
}

pub const NOT_ENROLLED_REQUIRED: &str =
    "2-step verification is required for this account but not set up; ask your administrator.";

/// `enrolled` means at least one active device or unused backup code.
pub fn begin(mode: Mode, enrolled: bool, lockout: Lockout, now: i64) -> Decision {
    if !enrolled {
        return match mode {
            Mode::Optional => Decision::Ignore,
            Mode::Required => Decision::Deny(NOT_ENROLLED_REQUIRED.to_string()),
        };
    }
    if lockout.is_locked(now) {
        return Decision::Deny(lockout.message(now));
    }
    Decision::Challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unenrolled_users_follow_the_mode() {
        let free = Lockout::default();
        assert_eq!(begin(Mode::Optional, false, free, 0), Decision::Ignore);
        assert!(matches!(
            begin(Mode::Required, false, free, 0),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn enrolled_users_are_challenged_unless_locked() {
        let free = Lockout::default();
        assert_eq!(begin(Mode::Optional, true, free, 0), Decision::Challenge);
        assert_eq!(begin(Mode::Required, true, free, 0), Decision::Challenge);
        let locked = Lockout {
            failures: 5,
            locked_until: 100,
        };
        assert!(
            matches!(begin(Mode::Optional, true, locked, 50), Decision::Deny(m) if m.contains("Too many"))
        );
        assert_eq!(
            begin(Mode::Optional, true, locked, 100),
            Decision::Challenge
        );
    }
}
