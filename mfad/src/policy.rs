//! Who must use 2-step verification, and what `Login.Begin` answers; pure:
//! the configuration, the facts about the user (group membership, their
//! enrollment and lockout state, when their grace period started) and the
//! time are parameters.
//!
//! Who must use 2-step, first match wins:
//!
//! | # | rule | result |
//! |---|---|---|
//! | 1 | the user is in `exempt_users` | exempt: never asked, even with a device |
//! | 2 | the user is in a group of `exempt_groups` | exempt |
//! | 3 | the user is in a group of `required_groups` | required |
//! | 4 | `[policy.service.NAME]` exists for the PAM service | its `mode` |
//! | 5 | otherwise | `[policy] mode` |
//!
//! A user who must use 2-step and has no device may log in without a code
//! while their grace period (`grace_period`, from the first such login) lasts;
//! after it they enroll inside the login when they can (`enroll_at_login`,
//! a root caller), and are refused otherwise. An enrolled user who is not exempt is always
//! asked for a code, whatever the mode.

use std::collections::BTreeMap;

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

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Optional => "optional",
            Mode::Required => "required",
        }
    }
}

/// `[policy]`, the parts that decide who must use 2-step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub mode: Mode,
    pub required_groups: Vec<String>,
    pub exempt_groups: Vec<String>,
    pub exempt_users: Vec<String>,
    /// `[policy.service.NAME] mode`, by PAM service name.
    pub services: BTreeMap<String, Mode>,
    /// Seconds a user who must enroll may still log in without a code.
    pub grace_secs: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            mode: Mode::Optional,
            required_groups: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_users: Vec::new(),
            services: BTreeMap::new(),
            grace_secs: 0,
        }
    }
}

/// Whether a user must use 2-step for one login, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Never asked; the reason is for the audit log.
    Exempt(String),
    Required,
    Optional,
}

/// Rules 1-5 of the table above, for the account `user` logging in through
/// `service` (empty: no particular service). `in_group` answers group
/// membership (primary and supplementary).
pub fn need(rules: &Rules, user: &str, service: &str, in_group: impl Fn(&str) -> bool) -> Need {
    if rules.exempt_users.iter().any(|u| u == user) {
        return Need::Exempt("exempt_users".into());
    }
    if let Some(g) = rules.exempt_groups.iter().find(|g| in_group(g)) {
        return Need::Exempt(format!("exempt_groups {g}"));
    }
    if rules.required_groups.iter().any(|g| in_group(g)) {
        return Need::Required;
    }
    let mode = rules.services.get(service).copied().unwrap_or(rules.mode);
    match mode {
        Mode::Optional => Need::Optional,
        Mode::Required => Need::Required,
    }
}

/// The decision, before any login attempt is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ignore,
    /// Exempt from 2-step: not asked (logged).
    Exempt(String),
    /// Must enroll but the grace period holds: let in without a code, told
    /// how many seconds are left.
    Grace(i64),
    /// A trusted device: no code needed.
    Allow,
    Deny(String),
    Challenge,
    /// Must use 2-step, has no device and no grace left: enroll one inside
    /// this login.
    Enroll,
}

pub const NOT_ENROLLED_REQUIRED: &str =
    "2-step verification is required for this account but not set up; ask your administrator.";

/// The facts about one user at one login.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// At least one active device.
    pub enrolled: bool,
    /// The login comes from a device whose trust holds.
    pub trusted: bool,
    pub lockout: Lockout,
    /// When the user's grace period started, if it has.
    pub grace_start: Option<i64>,
    /// This login may enroll a device (`enroll_at_login`, a root caller,
    /// an account that exists).
    pub can_enroll: bool,
}

/// Seconds of grace left at `now` for a period of `grace_secs` that started
/// at `start`; 0 when over.
pub fn grace_left(grace_secs: i64, start: i64, now: i64) -> i64 {
    start.saturating_add(grace_secs).saturating_sub(now).max(0)
}

/// A lockout beats trust; exemption beats everything.
pub fn begin(need: &Need, grace_secs: i64, facts: Facts, now: i64) -> Decision {
    if let Need::Exempt(why) = need {
        return Decision::Exempt(why.clone());
    }
    if !facts.enrolled {
        return match need {
            Need::Required => match facts.grace_start {
                Some(start) if grace_left(grace_secs, start, now) > 0 => {
                    Decision::Grace(grace_left(grace_secs, start, now))
                }
                _ if facts.can_enroll => Decision::Enroll,
                _ => Decision::Deny(NOT_ENROLLED_REQUIRED.to_string()),
            },
            _ => Decision::Ignore,
        };
    }
    if facts.lockout.is_locked(now) {
        return Decision::Deny(facts.lockout.message(now));
    }
    if facts.trusted {
        return Decision::Allow;
    }
    Decision::Challenge
}

/// "6 days 23 hours", "5 minutes": a length of time for the user, to the
/// two largest units.
pub fn human_secs(secs: i64) -> String {
    let units = [
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ];
    let mut left = secs.max(0);
    let mut parts = Vec::new();
    for (name, size) in units {
        let n = left / size;
        if n > 0 && parts.len() < 2 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            left -= n * size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

/// What a user in their grace period is told at each login. `enroll_at_login`:
/// whether a login after the period walks them through the setup instead of
/// refusing them.
pub fn grace_message(left: i64, enroll_at_login: bool) -> String {
    let after = if enroll_at_login {
        "after that, the next login asks you to set it up before letting you in"
    } else {
        "after that, logins without it are refused"
    };
    format!(
        "2-step verification is required for this account: set it up within {} \
         with `mfactl enroll totp` (authenticator app) or `mfactl enroll sms NUMBER` \
         (text message); {after}.",
        human_secs(left)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(enrolled: bool, trusted: bool, lockout: Lockout) -> Facts {
        Facts {
            enrolled,
            trusted,
            lockout,
            grace_start: None,
            can_enroll: false,
        }
    }

    #[test]
    fn unenrolled_users_follow_the_need() {
        let free = Lockout::default();
        assert_eq!(
            begin(&Need::Optional, 0, facts(false, false, free), 0),
            Decision::Ignore
        );
        assert!(matches!(
            begin(&Need::Required, 0, facts(false, false, free), 0),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn enrolled_users_are_challenged_unless_locked() {
        let free = Lockout::default();
        for need in [Need::Optional, Need::Required] {
            assert_eq!(
                begin(&need, 0, facts(true, false, free), 0),
                Decision::Challenge
            );
        }
        let locked = Lockout {
            failures: 5,
            locked_until: 100,
            locks: 1,
        };
        assert!(
            matches!(begin(&Need::Optional, 0, facts(true, true, locked), 50), Decision::Deny(m) if m.contains("Too many"))
        );
        assert_eq!(
            begin(&Need::Optional, 0, facts(true, false, locked), 100),
            Decision::Challenge
        );
    }

    #[test]
    fn trusted_devices_skip_the_code_but_not_a_lockout_or_missing_enrollment() {
        let free = Lockout::default();
        assert_eq!(
            begin(&Need::Optional, 0, facts(true, true, free), 0),
            Decision::Allow
        );
        assert_eq!(
            begin(&Need::Optional, 0, facts(false, true, free), 0),
            Decision::Ignore
        );
        assert!(matches!(
            begin(&Need::Required, 0, facts(false, true, free), 0),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn exemption_beats_enrollment_lockout_and_trust() {
        let locked = Lockout {
            failures: 5,
            locked_until: 100,
            locks: 1,
        };
        let exempt = Need::Exempt("exempt_users".into());
        for f in [facts(true, false, locked), facts(false, false, locked)] {
            assert_eq!(
                begin(&exempt, 0, f, 50),
                Decision::Exempt("exempt_users".into())
            );
        }
    }

    #[test]
    fn grace_lets_unenrolled_required_users_in_until_it_ends() {
        let f = Facts {
            grace_start: Some(1000),
            ..Facts::default()
        };
        assert_eq!(begin(&Need::Required, 600, f, 1000), Decision::Grace(600));
        assert_eq!(begin(&Need::Required, 600, f, 1599), Decision::Grace(1));
        assert!(matches!(
            begin(&Need::Required, 600, f, 1600),
            Decision::Deny(_)
        ));
        // No start recorded, or no period: refused.
        assert!(matches!(
            begin(&Need::Required, 600, Facts::default(), 1000),
            Decision::Deny(_)
        ));
        assert!(matches!(
            begin(&Need::Required, 0, f, 1000),
            Decision::Deny(_)
        ));
        // Optional users are never in grace; enrolled ones get the code.
        assert_eq!(begin(&Need::Optional, 600, f, 1000), Decision::Ignore);
        let enrolled = Facts {
            enrolled: true,
            ..f
        };
        assert_eq!(
            begin(&Need::Required, 600, enrolled, 1000),
            Decision::Challenge
        );
    }

    #[test]
    fn enroll_at_login_comes_after_grace_and_before_the_refusal() {
        let f = Facts {
            grace_start: Some(1000),
            can_enroll: true,
            ..Facts::default()
        };
        // Grace first: the user may still put it off.
        assert_eq!(begin(&Need::Required, 600, f, 1000), Decision::Grace(600));
        // Then enrollment, with or without a grace period.
        assert_eq!(begin(&Need::Required, 600, f, 1600), Decision::Enroll);
        assert_eq!(begin(&Need::Required, 0, f, 1000), Decision::Enroll);
        // Never for optional or exempt users, nor for enrolled ones.
        assert_eq!(begin(&Need::Optional, 0, f, 1000), Decision::Ignore);
        assert!(matches!(
            begin(&Need::Exempt("x".into()), 0, f, 1000),
            Decision::Exempt(_)
        ));
        let enrolled = Facts {
            enrolled: true,
            ..f
        };
        assert_eq!(
            begin(&Need::Required, 0, enrolled, 1000),
            Decision::Challenge
        );
        // A login that cannot enroll is refused.
        let cannot = Facts {
            can_enroll: false,
            ..f
        };
        assert!(matches!(
            begin(&Need::Required, 0, cannot, 1000),
            Decision::Deny(_)
        ));
    }

    fn rules() -> Rules {
        Rules {
            mode: Mode::Optional,
            required_groups: vec!["staff".into()],
            exempt_groups: vec!["robots".into()],
            exempt_users: vec!["backup".into()],
            services: [("sudo".to_string(), Mode::Required)].into(),
            grace_secs: 0,
        }
    }

    /// Each row of the precedence table, and the row above it winning.
    #[test]
    fn precedence_table() {
        let r = rules();
        let groups = |gs: &'static [&'static str]| move |g: &str| gs.contains(&g);
        // 1: exempt_users beats every group and service.
        assert_eq!(
            need(&r, "backup", "sudo", groups(&["staff"])),
            Need::Exempt("exempt_users".into())
        );
        // 2: exempt_groups beats required_groups and a required service.
        assert_eq!(
            need(&r, "ci", "sudo", groups(&["staff", "robots"])),
            Need::Exempt("exempt_groups robots".into())
        );
        // 3: required_groups beats an optional mode and service.
        assert_eq!(need(&r, "ann", "sshd", groups(&["staff"])), Need::Required);
        let mut opt_service = r.clone();
        opt_service.mode = Mode::Required;
        opt_service.services.insert("sshd".into(), Mode::Optional);
        assert_eq!(
            need(&opt_service, "ann", "sshd", groups(&["staff"])),
            Need::Required
        );
        assert_eq!(
            need(&opt_service, "bob", "sshd", groups(&[])),
            Need::Optional
        );
        // 4: the service's mode beats the default.
        assert_eq!(need(&r, "bob", "sudo", groups(&[])), Need::Required);
        // 5: the default.
        assert_eq!(need(&r, "bob", "sshd", groups(&[])), Need::Optional);
        assert_eq!(need(&r, "bob", "", groups(&[])), Need::Optional);
    }

    #[test]
    fn lengths_of_time_for_people() {
        assert_eq!(human_secs(0), "0 seconds");
        assert_eq!(human_secs(1), "1 second");
        assert_eq!(human_secs(90), "1 minute 30 seconds");
        assert_eq!(human_secs(7 * 86400 - 1), "6 days 23 hours");
        assert_eq!(human_secs(86400 + 59), "1 day");
        assert!(grace_message(3600, false).contains("1 hour"));
        assert!(grace_message(3600, false).contains("mfactl enroll totp"));
        assert!(grace_message(3600, false).contains("are refused"));
        assert!(grace_message(3600, true).contains("asks you to set it up"));
    }
}
