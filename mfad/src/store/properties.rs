//! Property tests of the replay and lockout promises of the [`Store`]
//! trait, on the SQLite store: any sequence of operations, at any times.

use std::collections::HashSet;

use proptest::prelude::*;

use super::conformance::{alice, code, totp, ALICE};
use super::sqlite::SqliteStore;
use super::Store;
use crate::lockout::{Limits, Lockout};

const NOW: i64 = 2_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Event {
    Failure,
    /// A right code from the app, for a step never used before.
    AppCode,
    BackupCode,
    Unlock,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => Just(Event::Failure),
        1 => Just(Event::AppCode),
        1 => Just(Event::BackupCode),
        1 => Just(Event::Unlock),
    ]
}

proptest! {
    /// Whatever the order of steps and devices, a step is accepted at most
    /// once, and only when it is newer than the enrollment's and every step
    /// accepted before (on any of the user's apps).
    #[test]
    fn a_step_is_accepted_once_and_only_when_newer_than_all_accepted(
        enrolled_at in 0u64..50,
        tries in proptest::collection::vec((0u64..120, 0usize..2, 0i64..100), 1..60),
    ) {
        let s = SqliteStore::open_in_memory().unwrap();
        s.add_device(&alice(), &totp("d1"), enrolled_at, Some(&[])).unwrap();
        s.add_device(&alice(), &totp("d2"), enrolled_at, None).unwrap();
        let mut accepted = HashSet::new();
        let mut newest = enrolled_at;
        let mut now = NOW;
        for (step, device, dt) in tries {
            now += dt;
            let ok = s.accept_totp_step(ALICE, ["d1", "d2"][device], step, now).unwrap();
            prop_assert_eq!(ok, step > newest, "step {} after {}", step, newest);
            if ok {
                prop_assert!(accepted.insert(step), "step {} accepted twice", step);
                newest = step;
            }
            prop_assert_eq!(s.user(ALICE).unwrap().last_step, newest);
        }
    }

    /// `record_failure` locks exactly when max_failures consecutive failures
    /// happened (as `Lockout::after_failure` says), a right code during a
    /// lock never passes and uses nothing up, and a right code outside one
    /// or an unlock clears the count.
    #[test]
    fn failures_lock_exactly_and_no_right_code_passes_a_lock(
        max in 1u32..6,
        duration in 1i64..1000,
        events in proptest::collection::vec((event(), 0i64..700), 1..60),
    ) {
        // No doubling here (the maximum is the duration); it has tests of its own.
        let limits = Limits { max_failures: max, duration_secs: duration, max_duration_secs: duration };
        let s = SqliteStore::open_in_memory().unwrap();
        let backup: Vec<_> = (1..=60).map(code).collect();
        s.add_device(&alice(), &totp("d1"), 0, Some(&backup)).unwrap();
        let mut expected = Lockout::default();
        let mut run = 0u32;
        let mut lock_end = None::<i64>;
        let mut step = 0;
        let mut now = NOW;
        for (event, dt) in events {
            now += dt;
            let locked = lock_end.is_some_and(|end| now < end);
            let before = s.user(ALICE).unwrap();
            match event {
                Event::Failure => {
                    if lock_end.is_some_and(|end| now >= end) {
                        // The lock ran out: a new run starts.
                        run = 0;
                        lock_end = None;
                    }
                    run += 1;
                    if run >= max {
                        lock_end = Some(now + duration);
                    }
                    expected = expected.after_failure(now, limits);
                    let got = s.record_failure(ALICE, now, limits).unwrap();
                    prop_assert_eq!(got, expected);
                    prop_assert_eq!(got.is_locked(now), run >= max);
                }
                Event::AppCode => {
                    step += 1;
                    let ok = s.accept_totp_step(ALICE, "d1", step, now).unwrap();
                    prop_assert_eq!(ok, !locked, "app code while locked={}", locked);
                    let after = s.user(ALICE).unwrap();
                    if ok {
                        prop_assert_eq!(after.last_step, step);
                    } else {
                        prop_assert_eq!(after.last_step, before.last_step);
                    }
                }
                Event::BackupCode => {
                    let codes = s.backup_codes(ALICE).unwrap();
                    let ok = s.use_backup_code(ALICE, codes[0].id, now).unwrap();
                    prop_assert_eq!(ok, !locked, "backup code while locked={}", locked);
                    let left = s.backup_codes(ALICE).unwrap().len();
                    prop_assert_eq!(left, codes.len() - usize::from(ok));
                }
                Event::Unlock => {
                    prop_assert!(s.unlock(ALICE).unwrap());
                }
            }
            if matches!(event, Event::Unlock) || (!locked && !matches!(event, Event::Failure)) {
                expected = Lockout::default();
                run = 0;
                lock_end = None;
            }
            prop_assert_eq!(s.user(ALICE).unwrap().lockout, expected);
        }
    }
}
