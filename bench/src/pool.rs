//! Enrolled users and which of them may log in now.
//!
//! A verifier (an mfad, or Google Authenticator's files) accepts each
//! user's time step once. The pool remembers the last step each verifier
//! accepted per user and hands out only users whose next login can use
//! this step's code or the next one's (both within a window of 1).

use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::totp;

/// An enrolled user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub secret: Vec<u8>,
    /// The secret as mfad gave it (base32), for Google Authenticator's file.
    pub base32: String,
}

/// One user handed out for one login, with the last step its verifier
/// accepted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ticket {
    pub idx: usize,
    pub last: u64,
}

impl Ticket {
    /// The step whose code to send now: this step's, or the next one's if
    /// this step was used already. None if neither may be used.
    pub fn step(&self) -> Option<u64> {
        let now = totp::now_step();
        let step = now.max(self.last + 1);
        (step <= now + 1).then_some(step)
    }
}

/// The users of one verifier.
pub struct Pool {
    /// Indices into the user list, in the order they are handed out
    /// (shuffled: logins come from users all over the database).
    order: Vec<usize>,
    last: Vec<u64>,
    reserved: Vec<bool>,
    cursor: usize,
}

impl Pool {
    /// `last[i]`: the step user i last used with this verifier (0 for none).
    pub fn new(order: Vec<usize>, last: Vec<u64>) -> Pool {
        let n = last.len();
        Pool {
            order,
            last,
            reserved: vec![false; n],
            cursor: 0,
        }
    }

    /// `n` users who can log in now, reserved until [`Pool::settle`]. Waits
    /// for the next 30-second step when too few are free (small pools).
    pub fn take(&mut self, n: usize) -> Result<Vec<Ticket>> {
        let mut out = Vec::with_capacity(n);
        for _attempt in 0..3 {
            let now = totp::now_step();
            let mut scanned = 0;
            while out.len() < n && scanned < self.order.len() {
                let idx = self.order[self.cursor];
                self.cursor = (self.cursor + 1) % self.order.len();
                scanned += 1;
                if !self.reserved[idx] && self.last[idx] <= now {
                    self.reserved[idx] = true;
                    out.push(Ticket {
                        idx,
                        last: self.last[idx],
                    });
                }
            }
            if out.len() == n {
                return Ok(out);
            }
            let next = (now + 1) * totp::STEP;
            let wait = next.saturating_sub(crate::unix_now()) + 1;
            eprintln!(
                "mfa-bench: {} of {n} users free in this 30-second step; waiting {wait} s for the next",
                out.len()
            );
            thread::sleep(Duration::from_secs(wait));
        }
        Err(Error::Setup(format!(
            "not enough enrolled users for {n} logins (the pool has {}): raise BENCH_USERS",
            self.order.len()
        )))
    }

    /// Records the steps used and frees the tickets that were not used.
    pub fn settle(&mut self, tickets: &[Ticket], used: &[(usize, u64)]) {
        for &(idx, step) in used {
            if let Some(l) = self.last.get_mut(idx) {
                *l = (*l).max(step);
            }
        }
        for t in tickets {
            if let Some(r) = self.reserved.get_mut(t.idx) {
                *r = false;
            }
        }
    }
}

/// A fixed pseudo-random permutation of 0..n (xorshift; the same every run).
pub fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}
