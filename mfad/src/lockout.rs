//! Lockout after consecutive failures, pure: the time is a parameter.

/// The failure state of one user as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures since the last success, unlock or expired lock.
    pub failures: u32,
    /// Unix time the lock ends; 0 when never locked.
    pub locked_until: i64,
    /// Locks since the last success: each new lock lasts twice as long as
    /// the one before, up to the limit.
    pub locks: u32,
}

/// The configured limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_failures: u32,
    /// How long the first lock lasts.
    pub duration_secs: i64,
    /// The longest a lock lasts, however often it doubled.
    pub max_duration_secs: i64,
}

impl Limits {
    /// The length of lock number `n` (1 for the first): the duration,
    /// doubled for each lock before it, at most the maximum (but never
    /// shorter than the duration itself).
    pub fn duration_of_lock(&self, n: u32) -> i64 {
        let doubled = self
            .duration_secs
            .saturating_mul(1i64 << n.saturating_sub(1).min(40));
        doubled.min(self.max_duration_secs.max(self.duration_secs))
    }
}

impl Lockout {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until > now
    }

    /// Seconds left on the lock, 0 when not locked.
    pub fn remaining(&self, now: i64) -> i64 {
        (self.locked_until - now).max(0)
    }

    /// The state after one more failure at `now`. A lock that has run out
    /// starts the count afresh, so a user is not locked again by a single
    /// typo after waiting it out; but the next lock, until a success, lasts
    /// twice as long.
    pub fn after_failure(self, now: i64, limits: Limits) -> Lockout {
        let failures = if self.locked_until != 0 && !self.is_locked(now) {
            1
        } else {
            self.failures.saturating_add(1)
        };
        let mut locks = self.locks;
        let locked_until = if failures >= limits.max_failures {
            if !self.is_locked(now) {
                locks = locks.saturating_add(1);
            }
            now.saturating_add(limits.duration_of_lock(locks))
        } else if self.is_locked(now) {
            self.locked_until
        } else {
            0
        };
        Lockout {
            failures,
            locked_until,
            locks,
        }
    }

    /// What the user sees when locked: minutes rounded up.
    pub fn message(&self, now: i64) -> String {
        format!(
            "Too many failed attempts; try again in {}.",
            minutes(self.remaining(now))
        )
    }
}

/// "1 minute", "15 minutes": a wait in seconds, in minutes rounded up.
pub fn minutes(secs: i64) -> String {
    let minutes = (secs.max(1) + 59) / 60;
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("{minutes} {unit}")
}

/// A short wait for users, in whole seconds rounded up: "12 seconds".
pub fn seconds(secs: i64) -> String {
    let secs = secs.max(1);
    let unit = if secs == 1 { "second" } else { "seconds" };
    format!("{secs} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        duration_secs: 900,
        max_duration_secs: 3600,
    };

    #[test]
    fn locks_after_max_consecutive_failures() {
        let mut s = Lockout::default();
        s = s.after_failure(100, LIMITS);
        s = s.after_failure(101, LIMITS);
        assert!(!s.is_locked(101));
        s = s.after_failure(102, LIMITS);
        assert!(s.is_locked(102));
        assert_eq!(s.locked_until, 1002);
        assert!(s.is_locked(1001));
        assert!(!s.is_locked(1002));
    }

    #[test]
    fn failures_during_a_lock_do_not_extend_or_shorten_it_below_the_duration() {
        let mut s = Lockout::default();
        for t in 0..3 {
            s = s.after_failure(t, LIMITS);
        }
        let s2 = s.after_failure(10, LIMITS);
        assert!(s2.is_locked(900));
        assert_eq!(s2.failures, 4);
    }

    #[test]
    fn expired_lock_restarts_the_count() {
        let mut s = Lockout::default();
        for t in 0..3 {
            s = s.after_failure(t, LIMITS);
        }
        let s = s.after_failure(5000, LIMITS);
        assert_eq!(s.failures, 1);
        assert!(!s.is_locked(5000));
    }

    /// Each new lock doubles, up to the maximum; failures within a lock do
    /// not count as a new lock.
    #[test]
    fn each_new_lock_lasts_twice_as_long_up_to_the_maximum() {
        let mut s = Lockout::default();
        let mut t = 0;
        let mut lengths = Vec::new();
        for _ in 0..5 {
            for _ in 0..3 {
                s = s.after_failure(t, LIMITS);
            }
            lengths.push(s.locked_until - t);
            assert_eq!(s.after_failure(t + 1, LIMITS).locks, s.locks);
            t = s.locked_until + 1;
        }
        assert_eq!(lengths, [900, 1800, 3600, 3600, 3600]);
        assert_eq!(s.locks, 5);
    }

    #[test]
    fn a_maximum_below_the_duration_leaves_the_duration() {
        let limits = Limits {
            max_failures: 1,
            duration_secs: 900,
            max_duration_secs: 60,
        };
        assert_eq!(limits.duration_of_lock(1), 900);
        assert_eq!(limits.duration_of_lock(u32::MAX), 900);
        let huge = Limits {
            max_failures: 1,
            duration_secs: i64::MAX / 2,
            max_duration_secs: i64::MAX,
        };
        assert_eq!(huge.duration_of_lock(10), i64::MAX);
    }

    #[test]
    fn message_rounds_minutes_up() {
        let s = Lockout {
            failures: 5,
            locked_until: 1000,
            locks: 1,
        };
        assert_eq!(
            s.message(100),
            "Too many failed attempts; try again in 15 minutes."
        );
        assert_eq!(
            s.message(959),
            "Too many failed attempts; try again in 1 minute."
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone, Copy)]
        enum Event {
            Failure,
            /// A right code: the store takes it only while not locked.
            Success,
            /// `mfactl admin unlock`.
            Unlock,
        }

        fn event() -> impl Strategy<Value = Event> {
            prop_oneof![
                6 => Just(Event::Failure),
                1 => Just(Event::Success),
                1 => Just(Event::Unlock),
            ]
        }

        proptest! {
            /// Locked exactly while the run of consecutive failures (since
            /// the last success, unlock or run-out lock) has reached
            /// max_failures, and for `duration` after its last failure.
            #[test]
            fn locks_exactly_after_max_consecutive_failures(
                max in 1u32..6,
                duration in 1i64..2000,
                events in proptest::collection::vec((event(), 0i64..1500), 0..60),
            ) {
                // No doubling here (the maximum is the duration): the model is the
                // plain lock; doubling has tests of its own.
                let limits = Limits { max_failures: max, duration_secs: duration, max_duration_secs: duration };
                let mut state = Lockout::default();
                let mut now = 1_000_000;
                let mut run = 0u32;
                let mut last_failure = 0i64;
                let lock_ends = |run: u32, last: i64| (run >= max).then_some(last + duration);
                for (event, dt) in events {
                    now += dt;
                    let locked = lock_ends(run, last_failure).is_some_and(|end| now < end);
                    prop_assert_eq!(state.is_locked(now), locked);
                    match event {
                        Event::Failure => {
                            if lock_ends(run, last_failure).is_some_and(|end| now >= end) {
                                run = 0;
                            }
                            run += 1;
                            last_failure = now;
                            state = state.after_failure(now, limits);
                            prop_assert_eq!(state.failures, run);
                            prop_assert_eq!(state.is_locked(now), run >= max);
                            if run >= max {
                                prop_assert_eq!(state.remaining(now), duration);
                            }
                        }
                        Event::Success if locked => {}
                        Event::Success | Event::Unlock => {
                            state = Lockout::default();
                            run = 0;
                        }
                    }
                }
            }
        }
    }
}
