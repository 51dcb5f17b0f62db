//! The store's tests, written once: every backend runs them with
//! `conformance::suite!(<expression making a fresh, empty store>)` in its
//! own test module. Each checks one promise of the [`Store`] trait.

use std::sync::Arc;

use super::*;
use crate::lockout::Limits;
use crate::users::Account;

pub fn totp(id: &str) -> Device {
    Device {
        id: id.into(),
        label: "phone".into(),
        data: DeviceData::Totp {
            secret: vec![7; 20],
        },
        created: 1000,
        last_used: 0,
    }
}

pub fn sms(id: &str, phone: &str) -> Device {
    Device {
        id: id.into(),
        label: String::new(),
        data: DeviceData::Sms {
            phone: phone.into(),
        },
        created: 1001,
        last_used: 0,
    }
}

pub const ALICE: u32 = 1000;
pub const BOB: u32 = 1001;
pub const NOBODY: u32 = 4242;

pub fn alice() -> Account {
    Account {
        uid: ALICE,
        name: "alice".into(),
    }
}

pub fn bob() -> Account {
    Account {
        uid: BOB,
        name: "bob".into(),
    }
}

pub fn code(n: u8) -> Hashed {
    Hashed {
        salt: vec![n; 16],
        hash: vec![n; 32],
    }
}

const LIMITS: Limits = Limits {
    max_failures: 3,
    duration_secs: 900,
    max_duration_secs: 3600,
};

/// Expands to one `#[test]` per conformance check, each on a fresh store.
macro_rules! suite {
    ($make:expr) => {
        $crate::store::conformance::suite!(@tests $make;
            unknown_user_is_a_default_state,
            devices_keep_their_typed_data,
            steps_are_accepted_once_and_only_forward,
            backup_codes_are_single_use,
            backup_codes_are_listed_per_user_without_used_ones,
            enrollment_replaces_backup_codes_only_when_given,
            removing_the_last_device_drops_backup_codes,
            failures_count_up_to_a_lock_and_locks_refuse_codes,
            locks_double_until_a_success,
            failures_of_unknown_users_are_not_stored,
            lockout_reset_and_unlock,
            sms_codes_are_single_use_live_and_die_with_the_number,
            the_newest_sms_codes_are_kept_and_one_use_kills_all,
            sends_are_limited_per_hour_and_can_be_released,
            sends_are_limited_for_the_whole_machine,
            sends_to_one_user_wait_for_the_cooldown,
            concurrent_sends_never_overshoot_a_limit,
            trusted_devices_are_per_user_renewed_and_removed,
            the_enrolling_name_is_kept_and_renewed,
            concurrent_accepts_of_one_step_let_one_through,
            concurrent_failures_are_all_counted,
            a_grace_period_starts_once_until_a_reset,
            session_choices_are_per_user_and_can_be_forgotten,
            sessions_are_recorded_listed_by_end_and_removed_once,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::store::conformance::$name(std::sync::Arc::new($make));
            }
        )*
    };
}
pub(crate) use suite;

pub fn unknown_user_is_a_default_state(s: Arc<dyn Store>) {
    let u = s.user(NOBODY).unwrap();
    assert!(!u.enrolled());
    assert_eq!(u.last_step, 0);
    assert_eq!(u.lockout, Lockout::default());
    assert!(s.list_users().unwrap().is_empty());
}

pub fn devices_keep_their_typed_data(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    s.add_device(&alice(), &sms("d2", "+37255512345"), 1, None)
        .unwrap();
    let u = s.user(ALICE).unwrap();
    assert_eq!(u.devices, vec![totp("d1"), sms("d2", "+37255512345")]);
    assert_eq!(
        u.phone().map(|(d, p)| (d.id.as_str(), p)),
        Some(("d2", "+37255512345"))
    );
    assert!(u.has_app());
    let new = DeviceData::Sms {
        phone: "+14155550100".into(),
    };
    assert!(s.replace_device_data(ALICE, "d2", &new).unwrap());
    assert!(
        !s.replace_device_data(ALICE, "d1", &new).unwrap(),
        "an app is not a phone"
    );
    assert_eq!(s.user(ALICE).unwrap().phone().unwrap().1, "+14155550100");
}

pub fn steps_are_accepted_once_and_only_forward(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 100, Some(&[])).unwrap();
    assert!(
        !s.accept_totp_step(ALICE, "d1", 100, 5).unwrap(),
        "enrollment step reused"
    );
    assert!(s.accept_totp_step(ALICE, "d1", 101, 5).unwrap());
    assert!(!s.accept_totp_step(ALICE, "d1", 101, 6).unwrap(), "replay");
    assert!(
        !s.accept_totp_step(ALICE, "d1", 99, 6).unwrap(),
        "older step"
    );
    assert!(
        !s.accept_totp_step(BOB, "d1", 500, 6).unwrap(),
        "unknown user"
    );
    let u = s.user(ALICE).unwrap();
    assert_eq!(u.last_step, 101);
    assert_eq!(u.devices[0].last_used, 5);
}

pub fn backup_codes_are_single_use(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[code(1), code(2)]))
        .unwrap();
    s.add_device(&bob(), &totp("d1"), 1, Some(&[code(3)]))
        .unwrap();
    let codes = s.backup_codes(ALICE).unwrap();
    assert_eq!(codes.len(), 2);
    let id = codes[0].id;
    assert!(s.use_backup_code(ALICE, id, 10).unwrap());
    assert!(!s.use_backup_code(ALICE, id, 10).unwrap());
    let bobs = s.backup_codes(BOB).unwrap()[0].id;
    assert!(
        !s.use_backup_code(ALICE, bobs, 10).unwrap(),
        "another user's code"
    );
    assert_eq!(s.backup_codes(BOB).unwrap().len(), 1);
}

pub fn backup_codes_are_listed_per_user_without_used_ones(s: Arc<dyn Store>) {
    assert!(s.backup_codes(NOBODY).unwrap().is_empty(), "unknown user");
    s.add_device(&alice(), &totp("d1"), 1, Some(&[code(1), code(2), code(3)]))
        .unwrap();
    s.add_device(&bob(), &totp("d1"), 1, Some(&[code(4)]))
        .unwrap();
    let listed = |uid| -> Vec<Hashed> {
        let mut codes: Vec<Hashed> = s
            .backup_codes(uid)
            .unwrap()
            .into_iter()
            .map(|b| b.code)
            .collect();
        codes.sort_by(|a, b| a.salt.cmp(&b.salt));
        codes
    };
    assert_eq!(listed(ALICE), [code(1), code(2), code(3)]);
    assert_eq!(listed(BOB), [code(4)], "only the user's own");
    let second = s
        .backup_codes(ALICE)
        .unwrap()
        .into_iter()
        .find(|b| b.code == code(2))
        .unwrap();
    assert!(s.use_backup_code(ALICE, second.id, 10).unwrap());
    assert_eq!(listed(ALICE), [code(1), code(3)], "a used one is gone");
    assert_eq!(listed(BOB), [code(4)]);
    // The login's own read carries none of them.
    assert!(s.user(ALICE).unwrap().enrolled());
}

pub fn enrollment_replaces_backup_codes_only_when_given(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[code(1), code(2)]))
        .unwrap();
    s.add_device(&alice(), &totp("d2"), 2, None).unwrap();
    assert_eq!(s.backup_codes(ALICE).unwrap().len(), 2);
    s.add_device(&alice(), &totp("d3"), 3, Some(&[code(3), code(4), code(5)]))
        .unwrap();
    assert_eq!(s.backup_codes(ALICE).unwrap().len(), 3);
    s.replace_backup_codes(ALICE, &[code(6)]).unwrap();
    let codes = s.backup_codes(ALICE).unwrap();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].code, code(6));
    assert_eq!(
        s.user(ALICE).unwrap().last_step,
        3,
        "the newest enrollment step is kept"
    );
}

pub fn removing_the_last_device_drops_backup_codes(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[code(1)]))
        .unwrap();
    s.add_device(&alice(), &sms("d2", "+37255512345"), 2, Some(&[code(2)]))
        .unwrap();
    s.add_sms_code(ALICE, &code(9), 100, 3).unwrap();
    assert!(s.remove_device(ALICE, "d2").unwrap());
    assert_eq!(s.backup_codes(ALICE).unwrap().len(), 1);
    assert!(
        s.user(ALICE).unwrap().sms_codes.is_empty(),
        "a code sent to a removed phone dies"
    );
    assert!(!s.remove_device(ALICE, "d2").unwrap());
    assert!(s.remove_device(ALICE, "d1").unwrap());
    assert!(!s.user(ALICE).unwrap().enrolled());
    assert!(s.backup_codes(ALICE).unwrap().is_empty());
    assert!(s.list_users().unwrap().is_empty());
}

pub fn failures_count_up_to_a_lock_and_locks_refuse_codes(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[code(1)]))
        .unwrap();
    s.add_sms_code(ALICE, &code(2), 10_000, 3).unwrap();
    assert_eq!(s.record_failure(ALICE, 100, LIMITS).unwrap().failures, 1);
    assert_eq!(s.record_failure(ALICE, 101, LIMITS).unwrap().failures, 2);
    let locked = s.record_failure(ALICE, 102, LIMITS).unwrap();
    assert_eq!(locked.failures, 3);
    assert_eq!(locked.locked_until, 102 + 900);
    assert_eq!(s.user(ALICE).unwrap().lockout, locked);
    // Right codes during the lock are refused and use nothing up.
    let backup = s.backup_codes(ALICE).unwrap();
    assert!(!s.accept_totp_step(ALICE, "d1", 50, 200).unwrap());
    assert!(!s.use_backup_code(ALICE, backup[0].id, 200).unwrap());
    assert!(!s.use_sms_code(ALICE, "d1", &code(2), 200).unwrap());
    let u = s.user(ALICE).unwrap();
    assert_eq!((u.last_step, s.backup_codes(ALICE).unwrap().len()), (1, 1));
    assert_eq!(u.sms_codes.len(), 1);
    // After the lock a right code clears the count.
    assert!(s.accept_totp_step(ALICE, "d1", 50, 1003).unwrap());
    assert_eq!(s.user(ALICE).unwrap().lockout, Lockout::default());
}

pub fn failures_of_unknown_users_are_not_stored(s: Arc<dyn Store>) {
    let l = s.record_failure(NOBODY, 100, LIMITS).unwrap();
    assert_eq!(l.failures, 1);
    assert_eq!(s.user(NOBODY).unwrap().lockout, Lockout::default());
    assert!(s.list_users().unwrap().is_empty());
}

pub fn lockout_reset_and_unlock(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 10, Some(&[code(1)]))
        .unwrap();
    for t in 0..3 {
        s.record_failure(ALICE, 100 + t, LIMITS).unwrap();
    }
    let locked = s.user(ALICE).unwrap().lockout;
    assert!(locked.is_locked(103));
    assert_eq!(s.list_users().unwrap()[0].locked_until, locked.locked_until);
    assert!(s.unlock(ALICE).unwrap());
    assert!(!s.unlock(BOB).unwrap());
    assert_eq!(s.user(ALICE).unwrap().lockout, Lockout::default());
    s.record_failure(ALICE, 200, LIMITS).unwrap();
    s.trust(ALICE, "t1", "key", "SHA256:x", 100).unwrap();
    s.add_sms_code(ALICE, &code(2), 10_000, 3).unwrap();
    assert!(s.reset(ALICE).unwrap());
    let u = s.user(ALICE).unwrap();
    assert!(!u.enrolled() && u.sms_codes.is_empty());
    assert!(s.backup_codes(ALICE).unwrap().is_empty());
    assert_eq!(u.lockout, Lockout::default());
    assert_eq!(u.last_step, 10, "used steps stay used");
    assert!(s.trusted_list(ALICE).unwrap().is_empty());
    assert!(!s.reset(ALICE).unwrap());
}

pub fn sms_codes_are_single_use_live_and_die_with_the_number(s: Arc<dyn Store>) {
    s.add_device(&alice(), &sms("p1", "+37255512345"), 0, Some(&[]))
        .unwrap();
    s.add_sms_code(ALICE, &code(1), 100, 3).unwrap();
    assert!(
        !s.use_sms_code(ALICE, "p1", &code(1), 100).unwrap(),
        "expired at its expiry"
    );
    s.add_sms_code(ALICE, &code(2), 200, 3).unwrap();
    assert!(
        !s.use_sms_code(ALICE, "p1", &code(7), 50).unwrap(),
        "never sent"
    );
    assert!(s.use_sms_code(ALICE, "p1", &code(2), 150).unwrap());
    assert!(!s.use_sms_code(ALICE, "p1", &code(2), 150).unwrap(), "used");
    assert_eq!(s.user(ALICE).unwrap().devices[0].last_used, 150);
    s.add_sms_code(ALICE, &code(3), 300, 3).unwrap();
    let new = DeviceData::Sms {
        phone: "+14155550100".into(),
    };
    s.replace_device_data(ALICE, "p1", &new).unwrap();
    assert!(s.user(ALICE).unwrap().sms_codes.is_empty());
}

/// "Send again" keeps the codes sent before (the newest `keep`), and
/// using any one of them uses up all.
pub fn the_newest_sms_codes_are_kept_and_one_use_kills_all(s: Arc<dyn Store>) {
    s.add_device(&alice(), &sms("p1", "+37255512345"), 0, Some(&[]))
        .unwrap();
    s.add_device(&bob(), &sms("p2", "+37255512346"), 0, Some(&[]))
        .unwrap();
    s.add_sms_code(BOB, &code(9), 1000, 3).unwrap();
    for n in 1..=4 {
        s.add_sms_code(ALICE, &code(n), 1000 + i64::from(n), 3)
            .unwrap();
    }
    let kept: Vec<Hashed> = s
        .user(ALICE)
        .unwrap()
        .sms_codes
        .into_iter()
        .map(|c| c.code)
        .collect();
    assert_eq!(
        kept,
        [code(2), code(3), code(4)],
        "the newest three, oldest first"
    );
    assert!(
        !s.use_sms_code(ALICE, "p1", &code(1), 500).unwrap(),
        "the fourth-newest is gone"
    );
    assert!(
        s.use_sms_code(ALICE, "p1", &code(2), 500).unwrap(),
        "an older code still works"
    );
    assert!(s.user(ALICE).unwrap().sms_codes.is_empty());
    for n in [3, 4] {
        assert!(
            !s.use_sms_code(ALICE, "p1", &code(n), 500).unwrap(),
            "one login, one code: code {n} died with the one used"
        );
    }
    assert_eq!(s.user(BOB).unwrap().sms_codes.len(), 1, "per user");
}

const SENDS: SendLimits = SendLimits {
    per_user: 2,
    total: 100,
    cooldown: 0,
};

pub fn sends_are_limited_per_hour_and_can_be_released(s: Arc<dyn Store>) {
    let SendSlot::Granted(first) = s.reserve_send(ALICE, 1000, SENDS).unwrap() else {
        panic!("first send refused");
    };
    assert!(matches!(
        s.reserve_send(ALICE, 1010, SENDS).unwrap(),
        SendSlot::Granted(_)
    ));
    assert_eq!(
        s.reserve_send(ALICE, 1020, SENDS).unwrap(),
        SendSlot::UserFull {
            next_at: 1000 + SEND_WINDOW_SECS
        }
    );
    assert!(
        matches!(
            s.reserve_send(BOB, 1020, SENDS).unwrap(),
            SendSlot::Granted(_)
        ),
        "per user"
    );
    s.release_send(first).unwrap();
    assert!(matches!(
        s.reserve_send(ALICE, 1030, SENDS).unwrap(),
        SendSlot::Granted(_)
    ));
    assert!(
        matches!(
            s.reserve_send(ALICE, 1010 + SEND_WINDOW_SECS, SENDS)
                .unwrap(),
            SendSlot::Granted(_)
        ),
        "an hour later the oldest send no longer counts"
    );
}

pub fn sends_are_limited_for_the_whole_machine(s: Arc<dyn Store>) {
    let limits = SendLimits {
        per_user: 10,
        total: 3,
        cooldown: 0,
    };
    for (uid, at) in [(ALICE, 1000), (BOB, 1010), (ALICE, 1020)] {
        assert!(matches!(
            s.reserve_send(uid, at, limits).unwrap(),
            SendSlot::Granted(_)
        ));
    }
    for uid in [ALICE, BOB, NOBODY] {
        assert_eq!(
            s.reserve_send(uid, 1030, limits).unwrap(),
            SendSlot::TotalFull {
                next_at: 1000 + SEND_WINDOW_SECS
            },
            "uid {uid}"
        );
    }
    assert!(
        matches!(
            s.reserve_send(NOBODY, 1000 + SEND_WINDOW_SECS, limits)
                .unwrap(),
            SendSlot::Granted(_)
        ),
        "an hour later the oldest send no longer counts"
    );
    // A user still under their own limit is held to the machine's.
    let tight = SendLimits {
        per_user: 2,
        ..limits
    };
    assert_eq!(
        s.reserve_send(ALICE, 1000 + SEND_WINDOW_SECS, tight)
            .unwrap(),
        SendSlot::TotalFull {
            next_at: 1010 + SEND_WINDOW_SECS
        },
        "alice has one send left in the window, the machine none"
    );
}

pub fn sends_to_one_user_wait_for_the_cooldown(s: Arc<dyn Store>) {
    let limits = SendLimits {
        per_user: 10,
        total: 10,
        cooldown: 30,
    };
    let SendSlot::Granted(first) = s.reserve_send(ALICE, 1000, limits).unwrap() else {
        panic!("first send refused");
    };
    assert_eq!(
        s.reserve_send(ALICE, 1018, limits).unwrap(),
        SendSlot::Cooldown { next_at: 1030 }
    );
    assert!(
        matches!(
            s.reserve_send(BOB, 1018, limits).unwrap(),
            SendSlot::Granted(_)
        ),
        "per user"
    );
    assert!(matches!(
        s.reserve_send(ALICE, 1030, limits).unwrap(),
        SendSlot::Granted(_)
    ));
    assert_eq!(
        s.reserve_send(ALICE, 1031, limits).unwrap(),
        SendSlot::Cooldown { next_at: 1060 },
        "from the newest send"
    );
    // A send taken back (nothing went out) does not hold up the next.
    s.release_send(first).unwrap();
    let SendSlot::Granted(last) = s.reserve_send(BOB, 2000, limits).unwrap() else {
        panic!("bob refused");
    };
    s.release_send(last).unwrap();
    assert!(matches!(
        s.reserve_send(BOB, 2001, limits).unwrap(),
        SendSlot::Granted(_)
    ));
}

/// Many threads sending at once: exactly as many sends are granted as the
/// tighter of the two hourly limits allows.
pub fn concurrent_sends_never_overshoot_a_limit(s: Arc<dyn Store>) {
    let limits = SendLimits {
        per_user: 5,
        total: 7,
        cooldown: 0,
    };
    let granted = |uids: Vec<u32>| -> usize {
        std::thread::scope(|scope| {
            let handles: Vec<_> = uids
                .into_iter()
                .map(|uid| {
                    let s = s.clone();
                    scope.spawn(move || s.reserve_send(uid, 1000, limits).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|slot| matches!(slot, SendSlot::Granted(_)))
                .count()
        })
    };
    assert_eq!(granted(vec![ALICE; 12]), 5, "the user's limit");
    assert_eq!(
        granted([BOB, NOBODY].repeat(6)),
        2,
        "the machine's limit, across users"
    );
}

pub fn trusted_devices_are_per_user_renewed_and_removed(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    s.trust(ALICE, "t1", "key", "SHA256:x", 100).unwrap();
    s.trust(ALICE, "t2", "host", "10.0.0.1", 110).unwrap();
    assert_eq!(s.trusted(BOB, "key", "SHA256:x").unwrap(), None);
    // Renewal keeps the id and first use.
    s.trust(ALICE, "t9", "key", "SHA256:x", 200).unwrap();
    let t = s.trusted(ALICE, "key", "SHA256:x").unwrap().unwrap();
    assert_eq!(
        (t.id.as_str(), t.first_used, t.trusted_at),
        ("t1", 100, 200)
    );
    s.touch_trusted(ALICE, "t1", 250).unwrap();
    assert_eq!(s.trusted_list(ALICE).unwrap()[0].last_used, 250);
    assert_eq!(s.untrust(ALICE, Some("t1")).unwrap(), 1);
    assert_eq!(s.untrust(ALICE, Some("t1")).unwrap(), 0);
    s.trust(ALICE, "t3", "key", "SHA256:y", 300).unwrap();
    assert_eq!(s.untrust(ALICE, None).unwrap(), 2);
}

/// Many threads offering the same step at once: exactly one is accepted.
pub fn concurrent_accepts_of_one_step_let_one_through(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    let accepted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                scope.spawn(move || s.accept_totp_step(ALICE, "d1", 42, 5).unwrap())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(accepted, 1);
}

/// Failures recorded at once from many threads are each counted.
pub fn concurrent_failures_are_all_counted(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    let limits = Limits {
        max_failures: 100,
        duration_secs: 900,
        max_duration_secs: 900,
    };
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let s = s.clone();
            scope.spawn(move || {
                for _ in 0..5 {
                    s.record_failure(ALICE, 100, limits).unwrap();
                }
            });
        }
    });
    assert_eq!(s.user(ALICE).unwrap().lockout.failures, 40);
}

pub fn the_enrolling_name_is_kept_and_renewed(s: Arc<dyn Store>) {
    assert_eq!(s.user(ALICE).unwrap().name, "");
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    assert_eq!(s.user(ALICE).unwrap().name, "alice");
    assert_eq!(s.list_users().unwrap()[0].user, "alice");
    assert_eq!(s.list_users().unwrap()[0].uid, i64::from(ALICE));
    // After a reset the UID enrolls afresh under its name of now.
    assert!(s.reset(ALICE).unwrap());
    let renamed = Account {
        uid: ALICE,
        name: "alice2".into(),
    };
    s.add_device(&renamed, &totp("d2"), 2, Some(&[])).unwrap();
    assert_eq!(s.user(ALICE).unwrap().name, "alice2");
}

pub fn locks_double_until_a_success(s: Arc<dyn Store>) {
    s.add_device(&alice(), &totp("d1"), 1, Some(&[])).unwrap();
    let lock = |t: i64| {
        let mut l = Lockout::default();
        for i in 0..3 {
            l = s.record_failure(ALICE, t + i, LIMITS).unwrap();
        }
        l
    };
    let first = lock(100);
    assert_eq!((first.locks, first.locked_until), (1, 102 + 900));
    let second = lock(2000);
    assert_eq!((second.locks, second.locked_until), (2, 2002 + 1800));
    assert_eq!(s.user(ALICE).unwrap().lockout, second);
    // A success after the lock ends the doubling.
    assert!(s.accept_totp_step(ALICE, "d1", 10, 5000).unwrap());
    assert_eq!(s.user(ALICE).unwrap().lockout, Lockout::default());
    assert_eq!(lock(6000).locked_until, 6002 + 900);
    // So does an admin's unlock.
    let again = lock(8000);
    assert_eq!(again.locks, 2);
    assert!(s.unlock(ALICE).unwrap());
    assert_eq!(lock(20000).locks, 1);
}

/// The first start of a grace period is kept; a reset forgets it, so the
/// next one starts anew.
pub fn a_grace_period_starts_once_until_a_reset(s: Arc<dyn Store>) {
    assert!(s.grace_starts().unwrap().is_empty());
    assert_eq!(s.start_grace(ALICE, 100).unwrap(), 100);
    assert_eq!(s.start_grace(ALICE, 500).unwrap(), 100);
    assert_eq!(s.start_grace(BOB, 300).unwrap(), 300);
    assert_eq!(s.grace_starts().unwrap(), [(ALICE, 100), (BOB, 300)]);
    assert!(
        s.reset(ALICE).unwrap(),
        "a grace period is something to forget"
    );
    assert_eq!(s.grace_starts().unwrap(), [(BOB, 300)]);
    assert_eq!(s.start_grace(ALICE, 900).unwrap(), 900);
    // Many logins starting it at once agree on one start.
    let starts: Vec<i64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                scope.spawn(move || s.start_grace(NOBODY, 1000 + i).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(starts.iter().all(|&t| t == starts[0]), "{starts:?}");
}

/// A user's session duration choice is kept per user until forgotten.
pub fn session_choices_are_per_user_and_can_be_forgotten(s: Arc<dyn Store>) {
    assert_eq!(s.session_choice(ALICE).unwrap(), None);
    s.set_session_choice(ALICE, Some(3600)).unwrap();
    s.set_session_choice(BOB, Some(60)).unwrap();
    s.set_session_choice(ALICE, Some(1800)).unwrap();
    assert_eq!(s.session_choice(ALICE).unwrap(), Some(1800));
    assert_eq!(s.session_choice(BOB).unwrap(), Some(60));
    s.set_session_choice(ALICE, None).unwrap();
    assert_eq!(s.session_choice(ALICE).unwrap(), None);
    assert_eq!(s.session_choice(BOB).unwrap(), Some(60));
}

pub fn session(id: &str, uid: u32, ends: i64) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        uid,
        user: format!("user{uid}"),
        service: "sshd".into(),
        tty: "/dev/pts/3".into(),
        rhost: "10.0.0.1".into(),
        xdg_session_id: String::new(),
        pid: 4321,
        pid_start: u64::MAX / 2,
        started: 1000,
        ends,
    }
}

/// Sessions come back whole, soonest end first; removing one twice says so.
pub fn sessions_are_recorded_listed_by_end_and_removed_once(s: Arc<dyn Store>) {
    assert!(s.sessions().unwrap().is_empty());
    let a = session("s1", ALICE, 5000);
    let b = SessionRecord {
        xdg_session_id: "c7".into(),
        ..session("s2", BOB, 2000)
    };
    s.add_session(&a).unwrap();
    s.add_session(&b).unwrap();
    assert_eq!(s.sessions().unwrap(), [b.clone(), a.clone()]);
    assert!(s.add_session(&a).is_err(), "ids are unique");
    assert!(s.remove_session("s2").unwrap());
    assert!(!s.remove_session("s2").unwrap(), "already gone");
    assert_eq!(s.sessions().unwrap(), [a]);
}
