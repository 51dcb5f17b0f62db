//! What a run of logins measured, and the statistics of it.

use serde::{Deserialize, Serialize};

/// The outcome of a run of logins (one process or thread, or merged).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Tally {
    /// Duration of each timed login, in nanoseconds.
    pub samples_ns: Vec<u64>,
    /// CLOCK_MONOTONIC at the end of each successful login (all of them,
    /// timed or not), to compute a rate over a common window.
    pub done_at_ns: Vec<u64>,
    pub ok: usize,
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// (user index, step) of each successful login.
    pub used: Vec<(usize, u64)>,
}

impl Tally {
    pub fn fail(&mut self, message: String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.samples_ns.extend(other.samples_ns);
        self.done_at_ns.extend(other.done_at_ns);
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.used.extend(other.used);
    }

    /// Fails when more than 1% of the logins failed: the numbers would not
    /// be about successful verifications any more.
    pub fn check(&self, what: &str) -> crate::error::Result<()> {
        let total = self.ok + self.failed;
        if total == 0 || self.failed * 100 > total {
            return Err(crate::error::Error::Protocol(format!(
                "{what}: {} of {total} logins failed; first: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("none succeeded")
            )));
        }
        Ok(())
    }
}

/// The `q`-quantile (0..=1) of `v`, nearest rank; 0 for none.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub fn median(v: &[u64]) -> u64 {
    quantile(v, 0.5)
}

pub fn p90(v: &[u64]) -> u64 {
    quantile(v, 0.9)
}

/// Completions per second between the `skip`-th completion and the
/// `tail`-th from the end (ramp-up and ramp-down left out).
pub fn rate(done_at_ns: &[u64], skip: usize, tail: usize) -> Option<f64> {
    let mut d = done_at_ns.to_vec();
    d.sort_unstable();
    let last = d.len().checked_sub(tail + 1)?;
    if last <= skip {
        return None;
    }
    let span = d[last].checked_sub(d[skip])?;
    (span > 0).then(|| (last - skip) as f64 * 1e9 / span as f64)
}

/// Completions per second of all workers within [start, end] nanoseconds.
pub fn rate_in(done_at_ns: &[u64], start: u64, end: u64) -> Option<f64> {
    if end <= start {
        return None;
    }
    let n = done_at_ns
        .iter()
        .filter(|&&t| t > start && t <= end)
        .count();
    Some(n as f64 * 1e9 / (end - start) as f64)
}

/// Milliseconds, for the report.
pub fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

pub fn ms_signed(ns: i64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}
