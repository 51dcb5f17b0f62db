//! A fixed-window counter per key, pure: the time is a parameter. Used to
//! slow down users who verify their own codes (screen lockers), who do not
//! pass through sshd's or login's own delays.

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
