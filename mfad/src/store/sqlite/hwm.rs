//! The durable high-water mark of TOTP time steps, as pure arithmetic (time
//! is a parameter). The store keeps `H` in `run_state`: an accept of step
//! `s` may commit without an fsync only while `s <= H` is on disk, because
//! after an unclean stop every step up to `H` is refused for every user.
//! See docs/architecture.md ("Durability").

/// How many steps beyond the current one `H` is set when it is raised:
/// about one fsync per `AHEAD - 1` steps (60 s) while codes are accepted,
/// and app codes refused for at most `AHEAD + 1` steps (2 minutes) after a
/// crash.
pub const AHEAD: u64 = 3;

/// The `H` an accept of `step` at `now_step` must first make durable (in
/// the same fsynced commit), or None when `step <= h` is covered already.
pub fn raise_for(h: u64, step: u64, now_step: u64) -> Option<u64> {
    (step > h).then(|| step.max(now_step + AHEAD))
}

/// The `H` to make durable ahead of time (off the login path), or None:
/// when codes were accepted since the last raise and a code of the next
/// step (inside any window) would no longer be covered. An idle mfad
/// never raises it.
pub fn raise_early(h: u64, now_step: u64, accepted_since_raise: bool) -> Option<u64> {
    (accepted_since_raise && now_step + 1 >= h).then_some(now_step + AHEAD)
}

/// After a start that found the database still marked running (mfad did
/// not stop cleanly), the step up to which every user's codes are refused:
/// `H`, which covers every accept that may have been lost. None after a
/// clean stop.
pub fn floor_after(running: bool, h: u64) -> Option<u64> {
    (running && h > 0).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::step_at;

    #[test]
    fn an_accept_raises_h_only_past_it() {
        let now = step_at(1_700_000_000);
        assert_eq!(raise_for(0, now, now), Some(now + AHEAD), "first accept");
        assert_eq!(raise_for(now + AHEAD, now, now), None);
        assert_eq!(raise_for(now + AHEAD, now + AHEAD, now), None);
        // The clock moved on past H: raised again, from the new step.
        let later = now + AHEAD + 1;
        assert_eq!(raise_for(now + AHEAD, later, later), Some(later + AHEAD));
        // A code from a wide window ahead of the clock is covered itself.
        assert_eq!(raise_for(now, now + 10, now), Some(now + 10));
        // An old step of the window below H needs nothing.
        assert_eq!(raise_for(now + 1, now - 1, now), None);
    }

    #[test]
    fn h_is_raised_early_only_while_codes_are_accepted() {
        let h = 1000;
        assert_eq!(raise_early(h, h - 3, true), None, "far below H");
        assert_eq!(raise_early(h, h - 2, true), None);
        assert_eq!(raise_early(h, h - 1, true), Some(h - 1 + AHEAD));
        assert_eq!(raise_early(h, h + 5, true), Some(h + 5 + AHEAD));
        assert_eq!(raise_early(h, h - 1, false), None, "idle: no fsync");
        // Raised early every AHEAD - 1 steps under steady logins, so that a
        // login of the current or next step never waits for an fsync.
        let mut h = raise_for(0, 500, 500).unwrap();
        let mut raises = 0;
        for now in 500..560 {
            assert_eq!(raise_for(h, now + 1, now), None, "step {now}");
            if let Some(next) = raise_early(h, now, true) {
                h = next;
                raises += 1;
            }
        }
        // Raised at steps 502, 504, .., 558: one fsync per minute.
        assert_eq!(raises, 29);
    }

    #[test]
    fn after_an_unclean_stop_steps_up_to_h_are_refused() {
        assert_eq!(floor_after(true, 1234), Some(1234));
        assert_eq!(floor_after(false, 1234), None, "clean stop");
        assert_eq!(floor_after(true, 0), None, "no code ever accepted");
    }
}
