//! Pure rate limits: the time is a parameter.
//!
//! - [`RateLimit`]: a fixed-window counter per key, to slow down users who
//!   verify their own codes (screen lockers), who do not pass through
//!   sshd's or login's own delays.
//! - [`Budget`]: a token bucket per UID across all D-Bus methods, so one
//!   local user's flood cannot crowd out another user's login.

use std::collections::HashMap;

pub struct RateLimit {
    max: u32,
    period: i64,
    windows: HashMap<String, (i64, u32)>,
}

/// Above this many keys, expired windows are dropped before adding one.
const PRUNE_AT: usize = 4096;

impl RateLimit {
    pub fn new(max: u32, period: i64) -> RateLimit {
        RateLimit {
            max,
            period,
            windows: HashMap::new(),
        }
    }

    /// Counts one hit for `key` at `now`; false if over the limit.
    pub fn hit(&mut self, key: &str, now: i64) -> bool {
        if self.windows.len() >= PRUNE_AT {
            let period = self.period;
            self.windows.retain(|_, (start, _)| now - *start < period);
        }
        let entry = self.windows.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= self.period {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Takes back the last hit for `key`: the call it counted did nothing
    /// and is made again.
    pub fn refund(&mut self, key: &str) {
        if let Some(entry) = self.windows.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// A token bucket per UID: `burst` calls at once, refilled at `per_second`
/// calls a second. Counted in thousandths of a call so that refills between
/// calls a few milliseconds apart are not lost to rounding.
pub struct Budget {
    burst: u64,
    per_second: u64,
    /// uid -> (thousandths of a call left, when last refilled in ms,
    /// refusing since the bucket last ran dry).
    buckets: HashMap<u32, (u64, i64, bool)>,
}

/// What [`Budget::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Allowed,
    /// Over budget. `first` is true for the first refusal since the UID was
    /// last within its budget (to log once per flood, not once per call).
    Refused {
        first: bool,
    },
}

const MILLI: u64 = 1000;

impl Budget {
    pub fn new(burst: u32, per_second: u32) -> Budget {
        Budget {
            burst: u64::from(burst.max(1)),
            per_second: u64::from(per_second.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one call from `uid`'s budget at `now_ms` (a monotonic clock in
    /// milliseconds).
    pub fn take(&mut self, uid: u32, now_ms: i64) -> Take {
        let full = self.burst * MILLI;
        if self.buckets.len() >= PRUNE_AT {
            // A full bucket is the same as no bucket.
            let per_second = self.per_second;
            self.buckets
                .retain(|_, b| refilled(b.0, b.1, now_ms, per_second, full) < full);
        }
        let b = self.buckets.entry(uid).or_insert((full, now_ms, false));
        b.0 = refilled(b.0, b.1, now_ms, self.per_second, full);
        b.1 = b.1.max(now_ms);
        if b.0 >= MILLI {
            b.0 -= MILLI;
            b.2 = false;
            Take::Allowed
        } else {
            let first = !b.2;
            b.2 = true;
            Take::Refused { first }
        }
    }
}

/// `left` thousandths of a call at `then_ms`, refilled up to `full` by
/// `now_ms`. A clock that went back refills nothing.
fn refilled(left: u64, then_ms: i64, now_ms: i64, per_second: u64, full: u64) -> u64 {
    let elapsed = u64::try_from(now_ms.saturating_sub(then_ms)).unwrap_or(0);
    // per_second calls a second = per_second thousandths a millisecond.
    left.saturating_add(elapsed.saturating_mul(per_second))
        .min(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_allows_a_burst_then_the_refill_rate() {
        let mut b = Budget::new(3, 2);
        for _ in 0..3 {
            assert_eq!(b.take(1000, 0), Take::Allowed);
        }
        assert_eq!(b.take(1000, 0), Take::Refused { first: true });
        assert_eq!(b.take(1000, 100), Take::Refused { first: false });
        // 2 a second: one call back after 500 ms, not before.
        assert_eq!(b.take(1000, 499), Take::Refused { first: false });
        assert_eq!(b.take(1000, 500), Take::Allowed);
        assert_eq!(b.take(1000, 500), Take::Refused { first: true });
        // Refills stop at the burst.
        for _ in 0..3 {
            assert_eq!(b.take(1000, 60_000), Take::Allowed);
        }
        assert_eq!(b.take(1000, 60_000), Take::Refused { first: true });
    }

    #[test]
    fn each_uid_has_its_own_budget() {
        let mut b = Budget::new(1, 1);
        assert_eq!(b.take(1000, 0), Take::Allowed);
        assert_eq!(b.take(1000, 0), Take::Refused { first: true });
        assert_eq!(b.take(1001, 0), Take::Allowed);
    }

    #[test]
    fn refills_between_close_calls_add_up() {
        // 10 a second, calls 30 ms apart: 0.3 of a call each time, which
        // whole-call counting would round away. (A burst of 2, so that the
        // refills never hit the cap between takes.)
        let mut b = Budget::new(2, 10);
        assert_eq!(b.take(7, 0), Take::Allowed);
        let mut allowed = 0;
        for i in 1..=100 {
            if b.take(7, i * 30) == Take::Allowed {
                allowed += 1;
            }
        }
        // 3 s at 10 a second, plus the one call left of the burst.
        assert!((30..=31).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut b = Budget::new(1, 1000);
        assert_eq!(b.take(7, 10_000), Take::Allowed);
        assert_eq!(b.take(7, 0), Take::Refused { first: true });
        assert_eq!(b.take(7, 10_000), Take::Refused { first: false });
        assert_eq!(b.take(7, 10_001), Take::Allowed);
    }

    #[test]
    fn many_uids_are_pruned_once_full_again() {
        let mut b = Budget::new(2, 1);
        for uid in 0..PRUNE_AT as u32 {
            b.take(uid, 0);
        }
        assert_eq!(b.buckets.len(), PRUNE_AT);
        b.take(u32::MAX, 10_000);
        assert_eq!(b.buckets.len(), 1);
    }

    #[test]
    fn limits_per_key_and_window() {
        let mut r = RateLimit::new(2, 60);
        assert!(r.hit("a", 0));
        assert!(r.hit("a", 1));
        assert!(!r.hit("a", 2));
        assert!(r.hit("b", 2));
        assert!(r.hit("a", 60));
    }
}
