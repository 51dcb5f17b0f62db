//! Session duration, pure: how long a new session lasts, whether a user's
//! choice is allowed, and when to warn and end. Times are Unix seconds
//! given by the caller.

use crate::config::SessionConfig;

/// How long before the end the warnings come, longest first.
pub const WARNINGS: [i64; 2] = [300, 60];

/// One thing to do to a session, at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Warn that `left` seconds remain.
    Warn {
        at: i64,
        left: i64,
    },
    End {
        at: i64,
    },
}

impl Event {
    pub fn at(&self) -> i64 {
        match *self {
            Event::Warn { at, .. } | Event::End { at } => at,
        }
    }
}

/// The duration in seconds of a session opened now for a user whose choice
/// is `chosen`: None when sessions are not limited. A choice counts only
/// while users may choose, and never beyond the limit (which may have
/// shrunk since it was made).
pub fn duration(config: &SessionConfig, chosen: Option<i64>) -> Option<i64> {
    let limit = config.limit_secs();
    if limit <= 0 {
        return None;
    }
    match chosen {
        Some(c) if config.user_choice && c > 0 => Some(c.min(limit)),
        _ => Some(limit),
    }
}

/// Checks a user's choice of `secs`; Err is the sentence for the user.
pub fn check_choice(config: &SessionConfig, secs: i64) -> Result<(), String> {
    let limit = config.limit_secs();
    if limit <= 0 {
        return Err("Session durations are not limited on this host.".into());
    }
    if !config.user_choice {
        return Err(format!(
            "The administrator does not let users choose a session duration; every session lasts {}.",
            human(limit)
        ));
    }
    if secs <= 0 {
        return Err("A session duration must be at least 1 second.".into());
    }
    if secs > limit {
        return Err(format!(
            "{} is longer than the limit of {}; choose a shorter duration.",
            human(secs),
            human(limit)
        ));
    }
    Ok(())
}

/// What happens to a session from `started` to `ends`, in order: warnings
/// 5 and 1 minute before the end, each only when the session is longer
/// than that; when it is not longer than the shortest, one warning at half
/// the duration; then the end. Events before `now` are left out, but never
/// the end.
pub fn schedule(started: i64, ends: i64, now: i64) -> Vec<Event> {
    let length = ends.saturating_sub(started);
    let mut events: Vec<Event> = WARNINGS
        .iter()
        .filter(|&&lead| lead < length)
        .map(|&lead| Event::Warn {
            at: ends - lead,
            left: lead,
        })
        .collect();
    if events.is_empty() && length >= 2 {
        let left = length - length / 2;
        events.push(Event::Warn {
            at: ends - left,
            left,
        });
    }
    events.retain(|e| e.at() >= now);
    events.push(Event::End { at: ends });
    events
}

/// The warning written to the session's terminal.
pub fn warning(left: i64, duration: i64) -> String {
    format!(
        "This session ends in {} (session duration {}). Log in again to continue.",
        words(left),
        human(duration)
    )
}

/// "5 minutes", "1 minute", "2 seconds".
fn words(secs: i64) -> String {
    let (n, unit) = if secs >= 60 && secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A duration as the configuration writes it: "4h", "1h 30m", "3s".
pub fn human(secs: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(secs).unwrap_or(0),
    ))
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limit(secs: u64, user_choice: bool) -> SessionConfig {
        SessionConfig {
            max_duration: Some(Duration::from_secs(secs)),
            user_choice,
        }
    }

    #[test]
    fn the_duration_is_the_choice_within_the_limit() {
        assert_eq!(duration(&SessionConfig::default(), Some(60)), None);
        assert_eq!(duration(&limit(3600, true), None), Some(3600));
        assert_eq!(duration(&limit(3600, true), Some(600)), Some(600));
        assert_eq!(duration(&limit(3600, true), Some(7200)), Some(3600));
        assert_eq!(duration(&limit(3600, false), Some(600)), Some(3600));
    }

    #[test]
    fn choices_above_the_limit_or_without_choice_are_refused() {
        assert!(check_choice(&limit(3600, true), 3600).is_ok());
        assert!(check_choice(&limit(3600, true), 1).is_ok());
        let e = check_choice(&limit(14400, true), 18000).unwrap_err();
        assert_eq!(
            e,
            "5h is longer than the limit of 4h; choose a shorter duration."
        );
        assert!(check_choice(&limit(3600, true), 0).is_err());
        assert!(check_choice(&limit(3600, false), 60)
            .unwrap_err()
            .contains("does not let users choose"));
        assert!(check_choice(&SessionConfig::default(), 60)
            .unwrap_err()
            .contains("not limited"));
    }

    #[test]
    fn long_sessions_are_warned_5_and_1_minute_before() {
        assert_eq!(
            schedule(0, 14400, 0),
            [
                Event::Warn {
                    at: 14100,
                    left: 300
                },
                Event::Warn {
                    at: 14340,
                    left: 60
                },
                Event::End { at: 14400 }
            ]
        );
        // 4 minutes: the 1-minute warning only.
        assert_eq!(
            schedule(0, 240, 0),
            [Event::Warn { at: 180, left: 60 }, Event::End { at: 240 }]
        );
    }

    #[test]
    fn short_sessions_are_warned_at_half() {
        assert_eq!(
            schedule(100, 104, 100),
            [Event::Warn { at: 102, left: 2 }, Event::End { at: 104 }]
        );
        assert_eq!(
            schedule(0, 60, 0),
            [Event::Warn { at: 30, left: 30 }, Event::End { at: 60 }]
        );
        assert_eq!(
            schedule(0, 3, 0),
            [Event::Warn { at: 1, left: 2 }, Event::End { at: 3 }]
        );
        assert_eq!(schedule(0, 1, 0), [Event::End { at: 1 }]);
    }

    #[test]
    fn past_warnings_are_skipped_but_never_the_end() {
        assert_eq!(
            schedule(0, 14400, 14200),
            [
                Event::Warn {
                    at: 14340,
                    left: 60
                },
                Event::End { at: 14400 }
            ]
        );
        assert_eq!(schedule(0, 100, 500), [Event::End { at: 100 }]);
    }

    #[test]
    fn warnings_read_well() {
        assert_eq!(
            warning(300, 14400),
            "This session ends in 5 minutes (session duration 4h). Log in again to continue."
        );
        assert_eq!(words(60), "1 minute");
        assert_eq!(words(2), "2 seconds");
        assert_eq!(words(1), "1 second");
        assert_eq!(words(90), "90 seconds");
    }
}
