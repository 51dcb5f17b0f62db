//! The service over an in-memory store, a fake user directory and a
//! recording SMS sender: every interface call as the daemon makes it.

use std::sync::{Arc, Mutex};

use super::attempts::{MSG_NOT_VERIFIED, PROMPT, PROMPT_APP_OR_SMS};
use super::enroll::ENROLLMENT_SECS;
use super::*;
use crate::config::LogTarget;
use crate::error::Error;
use crate::factor::backup;
use crate::factor::sms::MSG_EXPIRED as MSG_SMS_EXPIRED;
use crate::factor::totp::MSG_REPLAY;
use crate::gateway::{Message, SendError, Sender};
use crate::phone;
use crate::policy::Mode;
use crate::random;
use crate::store::sqlite::SqliteStore;
use crate::totp;
use crate::trust::Lifetime;
use crate::users::Fake;

const NOW: i64 = 2_000_000_000;
/// The one user besides root in the fake directory.
const USER: &str = "alice";
const USER_UID: u32 = 1000;
/// A user's own Begins a minute (attempts.rs).
const SELF_LOGINS: u32 = 10;
/// A second user, for limits across users.
const BOB: &str = "bob";
const BOB_UID: u32 = 1001;

fn alice() -> crate::users::Account {
    crate::users::Account {
        uid: USER_UID,
        name: USER.into(),
    }
}

fn core(config: Config, sms: Option<Sms>) -> Core {
    Core {
        config,
        issuer: "test-host".into(),
        store: Arc::new(SqliteStore::open_in_memory().unwrap()),
        audit: Arc::new(Audit::new(LogTarget::Stderr)),
        users: Box::new(
            Fake::default()
                .with("root", 0, &["root"])
                .with(USER, USER_UID, &[])
                .with(BOB, BOB_UID, &[]),
        ),
        random: Box::new(random::Os),
        keys: Arc::new(crate::seal::Keys::for_tests()),
        sms,
    }
}

fn service(mode: Mode) -> Service {
    service_with(mode, Lifetime::Off)
}

fn service_with(mode: Mode, lifetime: Lifetime) -> Service {
    let mut config = Config::default();
    config.trusted_devices.lifetime = lifetime;
    config.policy.mode = mode;
    config.lockout.max_failures = 4;
    config.daemon.log = LogTarget::Stderr;
    Service::new(core(config, None))
}

/// Records what would go out by SMS; fails while `down` is set.
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<(String, String)>>,
    down: std::sync::atomic::AtomicBool,
    slow: std::sync::atomic::AtomicBool,
}

impl Sender for Outbox {
    fn send(&self, m: &Message<'_>) -> std::result::Result<(), SendError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SendError::Failed("HTTP 503".into()));
        }
        if self.slow.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_secs(3));
        }
        self.sent
            .lock()
            .unwrap()
            .push((m.phone.to_string(), m.code.to_string()));
        Ok(())
    }
}

impl Outbox {
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
    fn last(&self) -> (String, String) {
        self.sent.lock().unwrap().last().cloned().unwrap()
    }
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

const PHONE: &str = "+37255512345";
const MASKED: &str = "+372*****345";

/// SMS with `max_sends` per user and hour and no cooldown (the tests of
/// other things send back to back).
fn sms_service(max_sends: u32) -> (Service, Arc<Outbox>) {
    sms_service_with(
        crate::store::SendLimits {
            per_user: max_sends,
            total: 100,
            cooldown: 0,
        },
        &[],
    )
}

fn sms_service_with(
    limits: crate::store::SendLimits,
    allowed_prefixes: &[&str],
) -> (Service, Arc<Outbox>) {
    let outbox = Arc::new(Outbox::default());
    let mut config = Config::default();
    config.lockout.max_failures = 4;
    let s = Service::new(core(
        config,
        Some(Sms {
            sender: outbox.clone(),
            code_lifetime: 120,
            limits,
            allowed_prefixes: allowed_prefixes.iter().map(|p| p.to_string()).collect(),
            login_wait: std::time::Duration::from_millis(300),
        }),
    ));
    (s, outbox)
}

/// Enrolls USER's phone as root; returns the backup codes.
fn enroll_phone(s: &Service, outbox: &Outbox, number: &str, now: i64) -> Vec<String> {
    let (id, masked) = s.enroll_sms_begin(0, USER, number, "", now).unwrap();
    assert_eq!(masked, phone::mask(number));
    let (to, code) = outbox.last();
    assert_eq!(to, number);
    s.enroll_sms_confirm(0, USER, &id, &code, now).unwrap().1
}

#[test]
fn sms_only_login_sends_a_code_at_begin_and_it_works_once() {
    let (s, outbox) = sms_service(10);
    let backup = enroll_phone(&s, &outbox, PHONE, NOW);
    assert_eq!(backup.len(), backup::COUNT);
    let status = s.status(0, USER).unwrap();
    assert_eq!(status.devices[0].kind, "sms");
    assert_eq!(status.devices[0].name, MASKED);
    assert_eq!(s.user_status(0, USER).unwrap().devices[0].name, PHONE);

    let (action, token, prompt) = begin(&s);
    assert_eq!(action, BeginAction::Challenge);
    assert_eq!(
        prompt,
        format!("Code sent by SMS to {MASKED}. Verification code: ")
    );
    assert_eq!(outbox.count(), 2);
    let (_, code) = outbox.last();
    let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success);
    // One-time: the same code fails in the next login.
    let (_, token, _) = begin(&s);
    let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Retry);
}

/// Where waiting is refused (the login socket's threads), a call that
/// would send an SMS stops before it does anything: nothing reserved, sent
/// or stored, no attempt made, the user's self-login counted once. Made
/// again where it may wait, it does all of it once.
#[test]
fn a_send_where_waiting_is_refused_does_nothing_until_made_again() {
    let (s, outbox) = sms_service(50);
    enroll_phone(&s, &outbox, PHONE, NOW);
    let sent = outbox.count();
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    // The user itself (a screen locker): its self-logins are limited, and
    // each of these Begins counts once.
    for n in 0..SELF_LOGINS as usize {
        let refused = sms::without_waiting(|| s.login_begin(USER_UID, &req, NOW));
        assert!(matches!(refused, Err(Error::WouldWait)), "{refused:?}");
        assert_eq!(
            outbox.count(),
            sent + 2 * n,
            "sent where waiting is refused"
        );
        let (action, token, prompt) = s.login_begin(USER_UID, &req, NOW).unwrap();
        assert_eq!(action, BeginAction::Challenge);
        assert!(prompt.contains(MASKED), "{prompt}");
        // An empty answer asks for a code by SMS: the same.
        let refused = sms::without_waiting(|| s.login_answer(USER_UID, &token, b"", NOW));
        assert!(matches!(refused, Err(Error::WouldWait)), "{refused:?}");
        assert_eq!(outbox.count(), sent + 2 * n + 1);
        let (r, _) = s.login_answer(USER_UID, &token, b"", NOW).unwrap();
        assert_eq!(r, AnswerResult::Prompt, "the attempt is as it was");
    }
    assert_eq!(outbox.count(), sent + 2 * SELF_LOGINS as usize);
    // The limit itself still holds.
    let r = s.login_begin(USER_UID, &req, NOW);
    assert!(matches!(r, Err(Error::RateLimited(_))), "{r:?}");
    // The flag is the call's only: this thread may wait again.
    let (action, _, _) = s.login_begin(0, &req, NOW).unwrap();
    assert_eq!(action, BeginAction::Challenge);
}

/// "Send again" keeps the codes sent before: a slow first message still
/// logs in, and is no wrong code toward the lockout.
#[test]
fn codes_sent_again_stay_live_until_one_is_used_and_expire() {
    let (s, outbox) = sms_service(10);
    enroll_phone(&s, &outbox, PHONE, NOW);
    let (_, token, _) = begin(&s);
    let (_, first) = outbox.last();
    let (r, prompt) = s.login_answer(0, &token, b"", NOW).unwrap();
    assert_eq!(r, AnswerResult::Prompt);
    assert!(prompt.contains(MASKED), "{prompt}");
    let (_, second) = outbox.last();
    assert_eq!(outbox.count(), 3);
    let (r, _) = s.login_answer(0, &token, first.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success, "the first code still works");
    assert_eq!(s.user_status(0, USER).unwrap().failures, 0);
    // One login, one code: the second died with the first.
    let (_, token, _) = begin(&s);
    if second != outbox.last().1 {
        let (r, _) = s.login_answer(0, &token, second.as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Retry);
        assert_eq!(s.user_status(0, USER).unwrap().failures, 1);
    }
    let (_, new) = outbox.last();
    let (r, msg) = s
        .login_answer(0, &token, new.as_bytes(), NOW + 121)
        .unwrap();
    assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_SMS_EXPIRED));
}

/// Of four codes sent for one login, the newest three work; using one of
/// them uses up the others.
#[test]
fn only_the_last_three_codes_stay_live_and_one_use_kills_all() {
    let (s, outbox) = sms_service(10);
    enroll_phone(&s, &outbox, PHONE, NOW);
    let (_, token, _) = begin(&s);
    for _ in 0..3 {
        assert_eq!(
            s.login_answer(0, &token, b"", NOW).unwrap().0,
            AnswerResult::Prompt
        );
    }
    let sent: Vec<String> = outbox.sent.lock().unwrap()[1..]
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(sent.len(), 4);
    let state = s.core().store.user(USER_UID).unwrap();
    assert_eq!(state.sms_codes.len(), 3);
    // The oldest no longer works (unless it equals a newer one by chance).
    if !sent[1..].contains(&sent[0]) {
        let (r, _) = s.login_answer(0, &token, sent[0].as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Retry);
    }
    let (r, _) = s.login_answer(0, &token, sent[1].as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success);
    assert!(s.core().store.user(USER_UID).unwrap().sms_codes.is_empty());
}

#[test]
fn an_enrollment_code_sent_again_keeps_the_first_one_live() {
    let (s, outbox) = sms_service(10);
    let (id, _) = s.enroll_sms_begin(0, USER, PHONE, "", NOW).unwrap();
    let (_, first) = outbox.last();
    s.enroll_sms_resend(0, USER, &id, NOW).unwrap();
    assert_eq!(outbox.count(), 2);
    s.enroll_sms_confirm(0, USER, &id, &first, NOW).unwrap();
    assert!(s.status(0, USER).unwrap().devices[0].kind == "sms");
}

#[test]
fn numbers_outside_the_allowed_prefixes_are_refused_with_the_rule() {
    let (s, outbox) = sms_service_with(
        crate::store::SendLimits {
            per_user: 10,
            total: 100,
            cooldown: 0,
        },
        &["+372", "+1"],
    );
    for bad in ["+447700900123", "+37155512345"] {
        match s.enroll_sms_begin(0, USER, bad, "", NOW) {
            Err(Error::InvalidArgument(m)) => {
                assert!(
                    m.contains("allowed_prefixes") && m.contains("+372, +1"),
                    "{bad}: {m}"
                );
                assert!(!m.contains('\n'));
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(outbox.count(), 0, "nothing sent to a refused number");
    enroll_phone(&s, &outbox, PHONE, NOW);
    // A change of number is held to the same rule.
    s.send_code(USER_UID, USER, NOW).unwrap();
    let current = outbox.last().1;
    assert!(matches!(
        s.enroll_sms_begin(USER_UID, USER, "+447700900123", &current, NOW),
        Err(Error::InvalidArgument(m)) if m.contains("allowed_prefixes")
    ));
    let (id, _) = s
        .enroll_sms_begin(USER_UID, USER, "+14155550100", &current, NOW)
        .unwrap();
    assert!(!id.is_empty());
}

/// The machine-wide budget holds across users, with a message for them
/// and (in the log) a line for the admin.
#[test]
fn the_machine_wide_budget_holds_across_users() {
    let (s, outbox) = sms_service_with(
        crate::store::SendLimits {
            per_user: 10,
            total: 3,
            cooldown: 0,
        },
        &[],
    );
    enroll_phone(&s, &outbox, PHONE, NOW);
    s.send_code(USER_UID, USER, NOW).unwrap();
    s.enroll_sms_begin(0, BOB, "+14155550100", "", NOW).unwrap();
    assert_eq!(outbox.count(), 3);
    for (user, r) in [
        (USER, s.send_code(0, USER, NOW + 10)),
        (
            BOB,
            s.enroll_sms_begin(0, BOB, "+14155550101", "", NOW + 10)
                .map(|(_, m)| m),
        ),
    ] {
        match r {
            Err(Error::RateLimited(m)) => assert!(
                m.contains("This host has sent too many codes") && m.contains("60 minutes"),
                "{user}: {m}"
            ),
            other => panic!("{user}: {other:?}"),
        }
    }
    assert_eq!(outbox.count(), 3);
    assert_eq!(
        s.send_code(0, USER, NOW + 3600).unwrap(),
        MASKED,
        "an hour later"
    );
}

/// Between two sends to one user the cooldown holds, and the message says
/// how long is left: login sends, SendCode, enrollment resends.
#[test]
fn sends_to_one_user_wait_for_the_cooldown() {
    let (s, outbox) = sms_service_with(
        crate::store::SendLimits {
            per_user: 20,
            total: 100,
            cooldown: 30,
        },
        &[],
    );
    let (id, _) = s.enroll_sms_begin(0, USER, PHONE, "", NOW).unwrap();
    let wait12 = "Wait 12 seconds before asking for another code.";
    match s.enroll_sms_resend(0, USER, &id, NOW + 18) {
        Err(Error::RateLimited(m)) => assert_eq!(m, wait12),
        other => panic!("{other:?}"),
    }
    s.enroll_sms_confirm(0, USER, &id, &outbox.last().1, NOW)
        .unwrap();
    assert_eq!(outbox.count(), 1);
    match s.send_code(0, USER, NOW + 29) {
        Err(Error::RateLimited(m)) => {
            assert_eq!(m, "Wait 1 second before asking for another code.")
        }
        other => panic!("{other:?}"),
    }
    // Login: Begin sends (the cooldown is over), "send again" waits.
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    let (_, token, prompt) = s.login_begin(0, &req, NOW + 30).unwrap();
    assert!(prompt.starts_with("Code sent by SMS"), "{prompt}");
    let (r, msg) = s.login_answer(0, &token, b"", NOW + 48).unwrap();
    assert_eq!(r, AnswerResult::Retry);
    assert_eq!(
        msg,
        format!("{wait12} Use a code already sent by SMS or a backup code.")
    );
    // A second login meanwhile is told to wait too, and the code already
    // sent still works.
    let (_, token, prompt) = s.login_begin(0, &req, NOW + 48).unwrap();
    assert!(prompt.starts_with(wait12), "{prompt}");
    assert_eq!(outbox.count(), 2);
    assert_eq!(s.user_status(0, USER).unwrap().failures, 0);
    let (r, _) = s
        .login_answer(0, &token, outbox.last().1.as_bytes(), NOW + 48)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
    // No code is live any more: the backup codes are the way left, as
    // long as there are some.
    let wait10 = "Wait 10 seconds before asking for another code.";
    let (_, token, prompt) = s.login_begin(0, &req, NOW + 50).unwrap();
    assert_eq!(prompt, format!("{wait10} Backup code: "));
    let (r, msg) = s.login_answer(0, &token, b"", NOW + 50).unwrap();
    assert_eq!(
        (r, msg),
        (AnswerResult::Retry, format!("{wait10} Use a backup code."))
    );
    s.core().store.replace_backup_codes(USER_UID, &[]).unwrap();
    let (r, msg) = s.login_answer(0, &token, b"", NOW + 50).unwrap();
    assert_eq!((r, msg), (AnswerResult::Retry, wait10.to_string()));
    let (action, _, msg) = s.login_begin(0, &req, NOW + 50).unwrap();
    assert_eq!((action, msg), (BeginAction::Deny, wait10.to_string()));
    // Another user is not held up.
    s.enroll_sms_begin(0, BOB, "+14155550100", "", NOW + 48)
        .unwrap();
    assert_eq!(outbox.count(), 3);
}

#[test]
fn app_and_phone_users_get_sms_on_an_empty_answer_only() {
    let (s, outbox) = sms_service(2);
    let (secret, _) = enroll(&s);
    let (id, _) = s.enroll_sms_begin(0, USER, PHONE, "", NOW).unwrap();
    s.enroll_sms_confirm(0, USER, &id, &outbox.last().1, NOW)
        .unwrap();
    let (_, token, prompt) = begin(&s);
    assert_eq!(prompt, PROMPT_APP_OR_SMS);
    assert_eq!(outbox.count(), 1, "no SMS until asked");
    assert_eq!(
        s.login_answer(0, &token, b"  ", NOW).unwrap().0,
        AnswerResult::Prompt
    );
    // The hour's two sends are used: a clear retry, no failure counted.
    let (r, msg) = s.login_answer(0, &token, b"", NOW).unwrap();
    assert_eq!(r, AnswerResult::Retry);
    assert!(
        msg.contains("Too many codes") && msg.contains("app"),
        "{msg}"
    );
    assert_eq!(outbox.count(), 2);
    assert_eq!(s.user_status(0, USER).unwrap().failures, 0);
    let (r, _) = s
        .login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
}

#[test]
fn gateway_down_leaves_backup_codes_or_denies() {
    let (s, outbox) = sms_service(10);
    let backup = enroll_phone(&s, &outbox, PHONE, NOW);
    outbox.set_down(true);
    let (action, token, prompt) = begin(&s);
    assert_eq!(action, BeginAction::Challenge);
    assert!(prompt.contains("Could not send") && prompt.contains("Backup code"));
    let (r, _) = s
        .login_answer(0, &token, backup[0].as_bytes(), NOW)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
    s.core().store.replace_backup_codes(USER_UID, &[]).unwrap();
    let (action, token, msg) = begin(&s);
    assert_eq!(action, BeginAction::Deny);
    assert!(token.is_empty());
    assert_eq!(msg, sms::MSG_FAILED);
    // A refused send does not use up the hour's sends.
    outbox.set_down(false);
    assert_eq!(begin(&s).0, BeginAction::Challenge);
}

#[test]
fn a_slow_gateway_does_not_hold_up_the_login() {
    let (s, outbox) = sms_service(10);
    enroll_phone(&s, &outbox, PHONE, NOW);
    outbox.slow.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let (action, token, prompt) = begin(&s);
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    assert_eq!(action, BeginAction::Challenge);
    assert_eq!(
        prompt,
        format!("A code is on its way by SMS to {MASKED}. Verification code: ")
    );
    // The code was stored before the gateway answered: once it arrives,
    // it works.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while outbox.count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, code) = outbox.last();
    let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success);
}

#[test]
fn wrong_sms_codes_lock_the_user() {
    let (s, outbox) = sms_service(10);
    enroll_phone(&s, &outbox, PHONE, NOW);
    for _ in 0..4 {
        let (action, token, _) = begin(&s);
        assert_eq!(action, BeginAction::Challenge);
        // Codes of earlier logins stay live too: wrong is none of them.
        let sent: Vec<String> = outbox
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.1.clone())
            .collect();
        let wrong = (0..)
            .map(|n: u32| format!("{n:06}"))
            .find(|c| !sent.contains(c))
            .unwrap();
        s.login_answer(0, &token, wrong.as_bytes(), NOW).unwrap();
    }
    let sent = outbox.count();
    assert_eq!(begin(&s).0, BeginAction::Deny);
    assert_eq!(outbox.count(), sent, "no SMS to a locked user");
}

#[test]
fn a_new_number_needs_a_code_and_the_old_one_works_until_confirmed() {
    let (s, outbox) = sms_service(10);
    enroll_phone(&s, &outbox, PHONE, NOW);
    let new = "+14155550100";
    // USER_UID is not root: a current code is needed.
    assert!(matches!(
        s.enroll_sms_begin(USER_UID, USER, new, "", NOW),
        Err(Error::InvalidCode(_))
    ));
    assert_eq!(s.send_code(USER_UID, USER, NOW).unwrap(), MASKED);
    let (to, current) = outbox.last();
    assert_eq!(to, PHONE);
    let (id, masked) = s
        .enroll_sms_begin(USER_UID, USER, new, &current, NOW)
        .unwrap();
    assert_eq!(masked, "+141*****100");
    let (to, new_code) = outbox.last();
    assert_eq!(to, new);
    // Not confirmed yet: logins still go to the old number.
    begin(&s);
    assert_eq!(outbox.last().0, PHONE);
    let device = s.status(0, USER).unwrap().devices[0].id.clone();
    let (kept, codes) = s
        .enroll_sms_confirm(USER_UID, USER, &id, &new_code, NOW)
        .unwrap();
    assert_eq!((kept, codes.len()), (device, 0));
    begin(&s);
    assert_eq!(outbox.last().0, new);
    assert_eq!(s.user_status(0, USER).unwrap().devices.len(), 1);
}

#[test]
fn bad_numbers_and_missing_sms_config_are_clear_errors() {
    let (s, outbox) = sms_service(10);
    for bad in ["0555", "+1 555 0100", "", "+0123456789"] {
        match s.enroll_sms_begin(0, USER, bad, "", NOW) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(phone::EXAMPLE), "{m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(outbox.count(), 0);
    let plain = service(Mode::Optional);
    assert!(matches!(
        plain.enroll_sms_begin(0, USER, PHONE, "", NOW),
        Err(Error::Unavailable(_))
    ));
}

fn secret_of(uri: &str) -> Vec<u8> {
    let b32 = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    totp_rs::Secret::try_from_base32(b32)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn code(secret: &[u8], offset: i64) -> String {
    totp::code_at_step(secret, (totp::step_at(NOW) as i64 + offset) as u64)
}

/// Enrolls USER with steps now-1 and now; returns secret and backup codes.
fn enroll(s: &Service) -> (Vec<u8>, Vec<String>) {
    let (id, uri, _) = s.enroll_totp_begin(0, USER, "phone", "", NOW).unwrap();
    let secret = secret_of(&uri);
    let (_, backup) = s
        .enroll_totp_confirm(0, USER, &id, &code(&secret, -1), &code(&secret, 0), NOW)
        .unwrap();
    (secret, backup)
}

fn begin(s: &Service) -> (BeginAction, String, String) {
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    s.login_begin(0, &req, NOW).unwrap()
}

#[test]
fn unenrolled_users_follow_policy() {
    assert_eq!(begin(&service(Mode::Optional)).0, BeginAction::Ignore);
    assert_eq!(begin(&service(Mode::Required)).0, BeginAction::Enroll);
    let s = policy_service(|p| {
        p.mode = Mode::Required;
        p.enroll_at_login = false;
    });
    assert_eq!(begin(&s).0, BeginAction::Deny);
}

#[test]
fn enrolled_login_succeeds_once_per_step() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let (action, token, prompt) = begin(&s);
    assert_eq!((action, prompt.as_str()), (BeginAction::Challenge, PROMPT));
    // The enrollment's own steps are used up.
    let (r, msg) = s
        .login_answer(0, &token, code(&secret, 0).as_bytes(), NOW)
        .unwrap();
    assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_REPLAY));
    let spaced = code(&secret, 1);
    let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
    let (r, _) = s.login_answer(0, &token, spaced.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success);
    // The attempt is gone, and the same code does not work again.
    assert!(matches!(
        s.login_answer(0, &token, b"000000", NOW),
        Err(Error::NotFound(_))
    ));
    let (_, token, _) = begin(&s);
    let (r, msg) = s
        .login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
        .unwrap();
    assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_REPLAY));
}

#[test]
fn three_wrong_tries_end_the_attempt_and_enough_lock_the_user() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.login_answer(0, &token, b"abc", NOW).unwrap().0,
        AnswerResult::Retry
    );
    assert_eq!(
        s.login_answer(0, &token, b"\xff\xfe", NOW).unwrap().0,
        AnswerResult::Retry
    );
    assert_eq!(
        s.login_answer(0, &token, &[b'1'; 10_000], NOW).unwrap().0,
        AnswerResult::Deny
    );
    let (_, token, _) = begin(&s);
    let (r, msg) = s.login_answer(0, &token, b"000000", NOW).unwrap();
    assert_eq!(r, AnswerResult::Deny, "fourth failure locks");
    assert!(msg.contains("Too many failed attempts"), "{msg}");
    // Locked: Begin denies and a correct code does not help.
    assert_eq!(begin(&s).0, BeginAction::Deny);
    assert!(matches!(
        verify::require_code(&s.core(), &alice(), &code(&secret, 1), NOW),
        Err(Error::LockedOut(_))
    ));
    s.unlock(0, USER).unwrap();
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
}

#[test]
fn backup_codes_work_once() {
    let s = service(Mode::Optional);
    let (_, backup) = enroll(&s);
    assert_eq!(backup.len(), 10);
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.login_answer(0, &token, backup[3].as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.login_answer(0, &token, backup[3].as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Retry
    );
    assert_eq!(s.status(0, USER).unwrap().backup_codes_left, 9);
}

/// A login with a 6-digit code, right or wrong, and its account phase
/// never read the backup codes (SQLite's own count of runs of the
/// statement that reads them); an 8-digit answer does.
/// The account phase of a login that passed reads nothing (Begin checked
/// the account); one without a verified attempt reads the user's state.
#[test]
fn the_account_phase_of_a_verified_login_reads_no_state() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let mut c = core(Config::default(), None);
    c.store = store.clone();
    let s = Service::new(c);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin(&s);
    let code = code(&secret, 1);
    let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
    assert_eq!(r, AnswerResult::Success);
    let reads = store.user_reads();
    assert!(reads > 0, "Begin and Answer read the user: {reads}");
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    assert_eq!(store.user_reads(), reads, "the account phase read the user");
    // Collected once: the same token again is decided from the state.
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Deny
    );
    assert_eq!(store.user_reads(), reads + 1);
}

#[test]
fn only_an_eight_digit_answer_reads_the_backup_codes() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let mut c = core(Config::default(), None);
    c.store = store.clone();
    let s = Service::new(c);
    let (secret, backup) = enroll(&s);
    let (_, token, _) = begin(&s);
    let (r, _) = s
        .login_answer(0, &token, backup[0].as_bytes(), NOW)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
    let reads = store.backup_code_reads();
    assert!(reads > 0, "the backup code login read them: {reads}");
    let (action, token, _) = begin(&s);
    assert_eq!(action, BeginAction::Challenge);
    for wrong in [&b"000 000"[..], b"1234567"] {
        let (r, _) = s.login_answer(0, &token, wrong, NOW).unwrap();
        assert_eq!(r, AnswerResult::Retry);
    }
    let (r, _) = s
        .login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    let (_, token, _) = begin(&s);
    let (r, _) = s.login_answer(0, &token, b"123456789", NOW).unwrap();
    assert_eq!(r, AnswerResult::Retry);
    assert_eq!(store.backup_code_reads(), reads, "no 8-digit answer");
    let (r, _) = s.login_answer(0, &token, b"0000 0000", NOW).unwrap();
    assert_eq!(r, AnswerResult::Retry);
    assert_eq!(store.backup_code_reads(), reads + 1, "a wrong backup code");
}

#[test]
fn users_act_only_on_themselves() {
    let s = service(Mode::Optional);
    let req = LoginRequest {
        user: "root".into(),
        ..Default::default()
    };
    assert!(matches!(
        s.login_begin(USER_UID, &req, NOW),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        s.enroll_totp_begin(USER_UID, "root", "", "", NOW),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        s.status(USER_UID, "root"),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        s.reset(USER_UID, "root"),
        Err(Error::AccessDenied(_))
    ));
    assert!(matches!(
        s.list_users(USER_UID),
        Err(Error::AccessDenied(_))
    ));
    // Their own account is fine.
    assert_eq!(s.status(USER_UID, "").unwrap().user, USER);
    let own = LoginRequest {
        user: USER.into(),
        ..Default::default()
    };
    assert_eq!(
        s.login_begin(USER_UID, &own, NOW).unwrap().0,
        BeginAction::Ignore
    );
}

#[test]
fn an_attempt_belongs_to_its_caller() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin(&s);
    let stolen = s.login_answer(USER_UID, &token, code(&secret, 1).as_bytes(), NOW);
    assert!(matches!(stolen, Err(Error::NotFound(_))));
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
}

#[test]
fn removing_a_device_as_the_user_needs_a_code() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let id = s.status(0, USER).unwrap().devices[0].id.clone();
    assert!(matches!(
        s.remove_device(USER_UID, "", &id, "123456", NOW),
        Err(Error::InvalidCode(_))
    ));
    assert!(matches!(
        s.remove_device(USER_UID, "", "nope", "", NOW),
        Err(Error::NotFound(_))
    ));
    s.remove_device(USER_UID, "", &id, &code(&secret, 1), NOW)
        .unwrap();
    let st = s.status(0, USER).unwrap();
    assert!(!st.enrolled);
    assert_eq!(st.backup_codes_left, 0);
}

#[test]
fn enrollment_needs_two_consecutive_codes_and_expires() {
    let s = service(Mode::Optional);
    let (id, uri, b32) = s.enroll_totp_begin(0, USER, "", "", NOW).unwrap();
    assert!(uri.contains(&format!("secret={b32}")));
    let secret = secret_of(&uri);
    let wrong = s.enroll_totp_confirm(0, USER, &id, &code(&secret, 0), &code(&secret, 0), NOW);
    assert!(matches!(wrong, Err(Error::InvalidCode(_))));
    let late = s.enroll_totp_confirm(
        0,
        USER,
        &id,
        &code(&secret, 0),
        &code(&secret, 1),
        NOW + ENROLLMENT_SECS,
    );
    assert!(matches!(late, Err(Error::Expired(_))));
    assert!(matches!(
        s.enroll_totp_confirm(0, USER, &id, "1", "2", NOW),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.enroll_totp_begin(0, "no-such-user-x", "", "", NOW),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn reset_forgets_everything_but_used_steps() {
    let s = service(Mode::Optional);
    enroll(&s);
    s.reset(0, USER).unwrap();
    let st = s.status(0, USER).unwrap();
    assert!(!st.enrolled && st.devices.is_empty() && st.backup_codes_left == 0);
    assert!(s.list_users(0).unwrap().is_empty());
    assert_eq!(begin(&s).0, BeginAction::Ignore);
}

fn begin_from(
    s: &Service,
    rhost: &str,
    auth_info: &str,
    now: i64,
) -> (BeginAction, String, String) {
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        rhost: rhost.into(),
        auth_info: auth_info.into(),
        ..Default::default()
    };
    s.login_begin(0, &req, now).unwrap()
}

#[test]
fn a_verified_device_is_trusted_for_the_lifetime() {
    let s = service_with(Mode::Optional, Lifetime::Secs(3600));
    let (secret, _) = enroll(&s);
    let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNtIS6ys3VoapH/tKTx2Y8H3bCnHjpRD+evliKsWIGw";
    let (action, token, _) = begin_from(&s, "10.0.0.9", key, NOW);
    assert_eq!(action, BeginAction::Challenge);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    // Not trusted until the account phase says the whole login passed.
    assert_eq!(
        begin_from(&s, "10.0.0.7", key, NOW + 5).0,
        BeginAction::Challenge
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    // Same key from another host: trusted. No key, same host: not.
    assert_eq!(
        begin_from(&s, "10.0.0.7", key, NOW + 10).0,
        BeginAction::Allow
    );
    assert_eq!(
        begin_from(&s, "10.0.0.9", "", NOW + 10).0,
        BeginAction::Challenge
    );
    // Local logins are never trusted.
    assert_eq!(begin_from(&s, "", "", NOW + 10).0, BeginAction::Challenge);
    // Expired trust asks again.
    assert_eq!(
        begin_from(&s, "10.0.0.7", key, NOW + 3600).0,
        BeginAction::Challenge
    );
    let listed = s.trusted_devices(USER_UID, "").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].expires),
        ("key", NOW + 3600)
    );
    assert_eq!(listed[0].last_used, NOW + 10);
    // Another user gets nothing from it.
    assert!(matches!(
        s.trusted_devices(USER_UID, "root"),
        Err(Error::AccessDenied(_))
    ));
    s.remove_trusted_device(USER_UID, "", &listed[0].id)
        .unwrap();
    assert_eq!(
        begin_from(&s, "10.0.0.7", key, NOW + 20).0,
        BeginAction::Challenge
    );
    assert!(matches!(
        s.remove_trusted_device(USER_UID, "", &listed[0].id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn host_trust_without_a_key_and_reset_clears_it() {
    let s = service_with(Mode::Optional, Lifetime::Forever);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    assert_eq!(
        begin_from(&s, "10.0.0.9", "", NOW + 1_000_000).0,
        BeginAction::Allow
    );
    assert_eq!(s.admin_trusted_devices(0, USER).unwrap()[0].expires, 0);
    assert!(matches!(
        s.admin_trusted_devices(USER_UID, USER),
        Err(Error::AccessDenied(_))
    ));
    s.reset(0, USER).unwrap();
    assert!(s.admin_trusted_devices(0, USER).unwrap().is_empty());
}

#[test]
fn a_right_code_without_the_account_phase_trusts_nothing() {
    // e.g. `auth required pam_unix.so` failed after pam_mfa's success:
    // the application never runs the account phase.
    let s = service_with(Mode::Optional, Lifetime::Forever);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin_from(&s, "10.3.3.3", "", NOW);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        begin_from(&s, "10.3.3.3", "", NOW + 1).0,
        BeginAction::Challenge
    );
    assert!(s.trusted_devices(0, USER).unwrap().is_empty());
}

#[test]
fn trust_is_off_by_default() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        begin_from(&s, "10.0.0.9", "", NOW).0,
        BeginAction::Challenge
    );
    assert!(s.trusted_devices(0, USER).unwrap().is_empty());
}

#[test]
fn the_account_phase_needs_a_verified_attempt_once() {
    let s = service(Mode::Optional);
    // Not enrolled: no opinion.
    assert_eq!(
        s.account_check(0, USER, "sshd", "", NOW).unwrap().0,
        AccountAction::Ignore
    );
    let (secret, _) = enroll(&s);
    // Enrolled, but no code step in this login (sshd with publickey only).
    let (action, msg) = s.account_check(0, USER, "sshd", "", NOW).unwrap();
    assert_eq!(
        (action, msg.as_str()),
        (AccountAction::Deny, MSG_NOT_VERIFIED)
    );
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Deny,
        "not yet verified"
    );
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    // A verified attempt takes no more answers.
    assert!(matches!(
        s.login_answer(0, &token, b"123456", NOW),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        s.account_check(0, "root", "sshd", &token, NOW).unwrap().0,
        AccountAction::Ignore,
        "other user"
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Deny,
        "used once"
    );
}

#[test]
fn a_trusted_login_passes_the_account_phase() {
    let s = service_with(Mode::Optional, Lifetime::Forever);
    let (secret, _) = enroll(&s);
    let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    let (action, token, _) = begin_from(&s, "10.0.0.9", "", NOW + 5);
    assert_eq!(action, BeginAction::Allow);
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW + 6).unwrap().0,
        AccountAction::Allow
    );
    // Unenrolled users under "required" are refused here too.
    let r = service(Mode::Required);
    assert_eq!(
        r.account_check(0, USER, "sshd", "", NOW).unwrap().0,
        AccountAction::Deny
    );
}

/// A verified attempt, as a trusted device's Allow makes, that no account
/// phase has collected; its token.
fn verified_attempt(
    s: &Service,
    grant: &authz::LoginGrant,
    req: &LoginRequest,
    now: i64,
) -> String {
    let verified = super::attempts::Stage::Verified;
    s.attempts
        .add(&s.core(), grant, req, None, verified, now)
        .unwrap()
}

#[test]
fn a_full_attempt_table_drops_its_oldest_attempts_not_new_logins() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    // Verified attempts no account phase collects, as with an auth-only
    // stack (a trusted device's Allow makes the same kind).
    let req = LoginRequest {
        user: USER.into(),
        ..Default::default()
    };
    let grant = authz::login(&s.core(), 0, USER).unwrap();
    let add = |now| verified_attempt(&s, &grant, &req, now);
    let first = add(NOW);
    for i in 1..attempts::MAX_ATTEMPTS as i64 {
        add(NOW + i / 100);
    }
    let later = NOW + 200;
    let (action, token, _) = s.login_begin(0, &req, later).unwrap();
    assert_eq!(action, BeginAction::Challenge);
    assert!(s.attempts.count() <= attempts::MAX_ATTEMPTS);
    assert!(!s.attempts.holds(&first), "the oldest went");
    let (r, _) = s
        .login_answer(0, &token, code(&secret, 7).as_bytes(), later)
        .unwrap();
    assert_eq!(r, AnswerResult::Success);
}

/// A service whose directory is `users` (root is always there).
fn service_of(mode: Mode, lifetime: Lifetime, users: Fake) -> Service {
    let mut config = Config::default();
    config.policy.mode = mode;
    config.trusted_devices.lifetime = lifetime;
    config.lockout.max_failures = 4;
    let mut c = core(config, None);
    c.users = Box::new(users.with("root", 0, &["root"]));
    Service::new(c)
}

fn begin_as(s: &Service, caller: u32, user: &str) -> (BeginAction, String, String) {
    let req = LoginRequest {
        user: user.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    s.login_begin(caller, &req, NOW).unwrap()
}

#[test]
fn every_name_of_a_uid_shares_one_enrollment_lockout_and_status() {
    let users = Fake::default()
        .with(USER, USER_UID, &[])
        .with("aliceb", USER_UID, &[])
        .with("ALICE", USER_UID, &[]);
    let s = service_of(Mode::Optional, Lifetime::Off, users);
    let (secret, _) = enroll(&s);
    for alias in ["aliceb", "ALICE"] {
        let (action, token, _) = begin_as(&s, 0, alias);
        assert_eq!(action, BeginAction::Challenge, "{alias} is alice");
        assert_eq!(
            s.login_answer(0, &token, b"000000", NOW).unwrap().0,
            AnswerResult::Retry
        );
    }
    // Two failures under aliases count for alice too.
    assert_eq!(s.status(0, USER).unwrap().failures, 2);
    assert_eq!(s.status(0, "aliceb").unwrap().user, USER, "canonical name");
    let (_, token, _) = begin_as(&s, 0, "aliceb");
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    // The alias can verify itself (a screen locker running as UID 1000).
    assert_eq!(begin_as(&s, USER_UID, "aliceb").0, BeginAction::Challenge);
}

#[test]
fn an_unknown_name_gets_the_answer_of_an_unenrolled_user() {
    for mode in [Mode::Optional, Mode::Required] {
        let s = service_of(
            mode,
            Lifetime::Off,
            Fake::default().with(USER, USER_UID, &[]),
        );
        let unknown = begin_as(&s, 0, "no-such-user");
        let unenrolled = begin_as(&s, 0, USER);
        // The tokens differ, nothing else.
        assert_eq!(
            (unknown.0, unknown.1.is_empty(), unknown.2),
            (unenrolled.0, unenrolled.1.is_empty(), unenrolled.2),
            "{mode:?}"
        );
        assert!(matches!(
            s.login_begin(
                USER_UID,
                &LoginRequest {
                    user: "no-such-user".into(),
                    ..Default::default()
                },
                NOW
            ),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.enroll_totp_begin(0, "no-such-user", "", "", NOW),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn a_uid_enrolled_by_another_account_name_is_refused_until_reset() {
    let shared = Arc::new(SqliteStore::open_in_memory().unwrap());
    let with = |users: Fake| {
        let mut c = core(Config::default(), None);
        c.store = shared.clone();
        c.users = Box::new(users.with("root", 0, &["root"]));
        Service::new(c)
    };
    let before = with(Fake::default().with(USER, USER_UID, &[]));
    enroll(&before);
    // The account was renamed (or the UID given to someone else).
    let after = with(Fake::default().with("mallory", USER_UID, &[]));
    let (action, token, message) = begin_as(&after, 0, "mallory");
    assert_eq!(
        (action, token.as_str(), message.as_str()),
        (BeginAction::Deny, "", MSG_RESET_NEEDED)
    );
    assert!(matches!(
        after.status(USER_UID, ""),
        Err(Error::AccessDenied(_))
    ));
    assert_eq!(
        after.account_check(0, "mallory", "sshd", "", NOW).unwrap(),
        (AccountAction::Deny, MSG_RESET_NEEDED.to_string())
    );
    // The admin sees the old enrollment and resets it; then it is theirs.
    assert_eq!(after.user_status(0, "mallory").unwrap().devices.len(), 1);
    after.reset(0, "mallory").unwrap();
    assert_eq!(begin_as(&after, 0, "mallory").0, BeginAction::Ignore);
    assert_eq!(after.status(USER_UID, "").unwrap().user, "mallory");
}

#[test]
fn only_root_with_a_remote_host_makes_a_device_trusted() {
    let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNtIS6ys3VoapH/tKTx2Y8H3bCnHjpRD+evliKsWIGw";
    let s = service_of(
        Mode::Optional,
        Lifetime::Secs(3600),
        Fake::default().with(USER, USER_UID, &[]),
    );
    let (secret, _) = enroll(&s);
    // The user's own caller (a screen locker) names a host and a key.
    let req = LoginRequest {
        user: USER.into(),
        service: "xscreensaver".into(),
        rhost: "203.0.113.9".into(),
        auth_info: key.into(),
        ..Default::default()
    };
    let (_, token, _) = s.login_begin(USER_UID, &req, NOW).unwrap();
    assert_eq!(
        s.login_answer(USER_UID, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        s.account_check(USER_UID, USER, "xscreensaver", &token, NOW)
            .unwrap()
            .0,
        AccountAction::Allow
    );
    assert!(s.trusted_devices(0, USER).unwrap().is_empty());
    // root with a key but no remote host: not trusted either.
    let (_, token, _) = begin_from(&s, "", key, NOW + 40);
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 2).as_bytes(), NOW + 40)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    s.account_check(0, USER, "sshd", &token, NOW + 40).unwrap();
    assert!(s.trusted_devices(0, USER).unwrap().is_empty());
    // root with a remote host: trusted.
    let (_, token, _) = begin_from(&s, "10.0.0.9", key, NOW + 70);
    s.login_answer(0, &token, code(&secret, 3).as_bytes(), NOW + 70)
        .unwrap();
    s.account_check(0, USER, "sshd", &token, NOW + 70).unwrap();
    assert_eq!(s.trusted_devices(0, USER).unwrap().len(), 1);
}

#[test]
fn an_admin_may_not_change_root_or_another_admin() {
    let users = Fake::default()
        .with(USER, USER_UID, &[])
        .with("ops1", 1001, &["ops"])
        .with("ops2", 1002, &["ops"]);
    let mut c = core(Config::default(), None);
    c.config.daemon.admin_group = "ops".into();
    c.users = Box::new(users.with("root", 0, &["root"]));
    let s = Service::new(c);
    s.reset(1001, USER).unwrap();
    s.unlock(1001, USER).unwrap();
    for protected in ["root", "ops2", "ops1"] {
        assert!(
            matches!(s.reset(1001, protected), Err(Error::AccessDenied(_))),
            "{protected}"
        );
        assert!(matches!(
            s.unlock(1001, protected),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.admin_remove_all_trusted_devices(1001, protected),
            Err(Error::AccessDenied(_))
        ));
        // Looking is fine; root may change them.
        s.user_status(1001, protected).unwrap();
        s.reset(0, protected).unwrap();
        s.unlock(0, protected).unwrap();
    }
}

#[test]
fn a_new_app_needs_a_current_code_and_keeps_the_backup_codes() {
    let s = service(Mode::Optional);
    let (secret, backup) = enroll(&s);
    // As the user, without a code or with a wrong one: refused, counted.
    assert!(matches!(
        s.enroll_totp_begin(USER_UID, "", "laptop", "", NOW),
        Err(Error::InvalidCode(_))
    ));
    assert!(matches!(
        s.enroll_totp_begin(USER_UID, "", "laptop", "000000", NOW),
        Err(Error::InvalidCode(_))
    ));
    assert_eq!(s.status(0, USER).unwrap().failures, 2);
    // With a backup code (any factor proves it): a second app, no new codes.
    let (id, uri, _) = s
        .enroll_totp_begin(USER_UID, "", "laptop", &backup[0], NOW)
        .unwrap();
    let second = secret_of(&uri);
    // Steps are used once across all of a user's apps: the next two.
    let (_, codes) = s
        .enroll_totp_confirm(
            USER_UID,
            "",
            &id,
            &code(&second, 1),
            &code(&second, 2),
            NOW + 30,
        )
        .unwrap();
    assert!(codes.is_empty(), "backup codes are never replaced silently");
    let status = s.status(0, USER).unwrap();
    assert_eq!(status.devices.len(), 2);
    assert_eq!(status.backup_codes_left, 9, "the other nine still work");
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.login_answer(0, &token, backup[1].as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    let _ = secret;
    // root needs no code.
    s.enroll_totp_begin(0, USER, "tablet", "", NOW).unwrap();
}

#[test]
fn a_first_phone_after_an_app_brings_no_new_backup_codes() {
    let (s, outbox) = sms_service(10);
    let (id, uri, _) = s.enroll_totp_begin(0, USER, "phone", "", NOW).unwrap();
    let secret = secret_of(&uri);
    let (_, first) = s
        .enroll_totp_confirm(0, USER, &id, &code(&secret, -1), &code(&secret, 0), NOW)
        .unwrap();
    assert_eq!(first.len(), backup::COUNT);
    assert!(enroll_phone(&s, &outbox, PHONE, NOW).is_empty());
    assert_eq!(s.status(0, USER).unwrap().backup_codes_left, 10);
}

/// A service with this `[policy]` and a directory of alice (in `staff`),
/// bob (in `robots`) and carol (in no group).
fn policy_service(f: impl FnOnce(&mut crate::config::Policy)) -> Service {
    let mut config = Config::default();
    f(&mut config.policy);
    let mut c = core(config, None);
    c.users = Box::new(
        Fake::default()
            .with("root", 0, &["root"])
            .with(USER, USER_UID, &["staff"])
            .with("bob", 1001, &["robots"])
            .with("carol", 1002, &[]),
    );
    Service::new(c)
}

fn begin_at(s: &Service, user: &str, service: &str, now: i64) -> (BeginAction, String) {
    let req = LoginRequest {
        user: user.into(),
        service: service.into(),
        ..Default::default()
    };
    let (action, _, message) = s.login_begin(0, &req, now).unwrap();
    (action, message)
}

#[test]
fn groups_and_services_decide_who_must_use_two_step() {
    let s = policy_service(|p| {
        p.required_groups = vec!["staff".into()];
        p.exempt_groups = vec!["robots".into()];
        p.exempt_users = vec!["carol".into()];
        p.service.insert(
            "sudo".into(),
            crate::config::ServicePolicy {
                mode: Mode::Required,
            },
        );
    });
    // alice must (required group), with any service.
    assert_eq!(begin_at(&s, USER, "sshd", NOW).0, BeginAction::Enroll);
    // carol is exempt even for sudo; bob through his group.
    assert_eq!(begin_at(&s, "carol", "sudo", NOW).0, BeginAction::Ignore);
    assert_eq!(begin_at(&s, "bob", "sudo", NOW).0, BeginAction::Ignore);
    // Without the exemption, carol must for sudo only.
    let s = policy_service(|p| {
        p.service.insert(
            "sudo".into(),
            crate::config::ServicePolicy {
                mode: Mode::Required,
            },
        );
    });
    assert_eq!(begin_at(&s, "carol", "sudo", NOW).0, BeginAction::Enroll);
    assert_eq!(begin_at(&s, "carol", "sshd", NOW).0, BeginAction::Ignore);
    let (action, message) = s.account_check(0, "carol", "sudo", "", NOW).unwrap();
    assert_eq!(action, AccountAction::Deny, "{message}");
    assert_eq!(
        s.account_check(0, "carol", "sshd", "", NOW).unwrap().0,
        AccountAction::Ignore
    );
}

#[test]
fn an_exempt_user_with_a_device_is_not_asked() {
    let s = policy_service(|p| p.exempt_users = vec![USER.into()]);
    enroll(&s);
    assert_eq!(begin_at(&s, USER, "sshd", NOW).0, BeginAction::Ignore);
    assert_eq!(
        s.account_check(0, USER, "sshd", "", NOW).unwrap().0,
        AccountAction::Ignore
    );
}

#[test]
fn the_grace_period_runs_from_the_first_login_and_a_reset_restarts_it() {
    let s = policy_service(|p| {
        p.mode = Mode::Required;
        p.grace_period = std::time::Duration::from_secs(3600);
    });
    let (action, message) = begin_at(&s, USER, "sshd", NOW);
    assert_eq!(action, BeginAction::Ignore);
    assert!(
        message.contains("1 hour") && message.contains("mfactl enroll"),
        "{message}"
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", "", NOW + 10).unwrap().0,
        AccountAction::Ignore
    );
    let (action, message) = begin_at(&s, USER, "sshd", NOW + 1800);
    assert_eq!(action, BeginAction::Ignore);
    assert!(message.contains("30 minutes"), "{message}");
    // Over: enrollment at login, and refused by the account phase alone.
    assert_eq!(
        begin_at(&s, USER, "sshd", NOW + 3600).0,
        BeginAction::Enroll
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", "", NOW + 3600).unwrap().0,
        AccountAction::Deny
    );
    // carol's period is her own, from her first login.
    assert_eq!(
        begin_at(&s, "carol", "sshd", NOW + 3600).0,
        BeginAction::Ignore
    );
    // An admin reset starts a new one.
    s.reset(0, USER).unwrap();
    let (action, message) = begin_at(&s, USER, "sshd", NOW + 4000);
    assert_eq!(action, BeginAction::Ignore);
    assert!(message.contains("1 hour"), "{message}");
    // Once enrolled, a code is asked for.
    enroll(&s);
    assert_eq!(
        begin_at(&s, USER, "sshd", NOW + 4000).0,
        BeginAction::Challenge
    );
}

#[test]
fn admins_list_who_must_still_enroll_with_their_grace_left() {
    let s = policy_service(|p| {
        p.required_groups = vec!["staff".into()];
        p.grace_period = std::time::Duration::from_secs(3600);
    });
    let missing = |now| s.list_missing(0, now).unwrap();
    // alice must (staff) and has not logged in yet; bob and carol need not.
    assert_eq!(
        missing(NOW),
        [mfa_api::MissingUser {
            user: USER.into(),
            grace_left: -1
        }]
    );
    begin_at(&s, USER, "sshd", NOW);
    assert_eq!(missing(NOW + 600)[0].grace_left, 3000);
    assert_eq!(missing(NOW + 4000)[0].grace_left, 0);
    // A service that requires it makes everyone not exempt count.
    let s2 = policy_service(|p| {
        p.exempt_users = vec!["bob".into()];
        p.service.insert(
            "sudo".into(),
            crate::config::ServicePolicy {
                mode: Mode::Required,
            },
        );
    });
    let names: Vec<String> = s2
        .list_missing(0, NOW)
        .unwrap()
        .into_iter()
        .map(|m| m.user)
        .collect();
    assert_eq!(names, [USER, "carol"]);
    // Enrolled users are not missing; nobody but an admin may ask.
    enroll(&s);
    assert!(missing(NOW + 4000).is_empty());
    assert!(matches!(
        s.list_missing(1002, NOW),
        Err(Error::AccessDenied(_))
    ));
}

#[test]
fn admins_remove_a_device_without_a_code_but_not_an_admins() {
    let mut config = Config::default();
    config.daemon.admin_group = "admins".into();
    let mut c = core(config, None);
    c.users = Box::new(
        Fake::default()
            .with("root", 0, &["root"])
            .with(USER, USER_UID, &[])
            .with("ada", 1001, &["admins"])
            .with("abe", 1002, &["admins"]),
    );
    let s = Service::new(c);
    enroll(&s);
    let id = s.status(0, USER).unwrap().devices[0].id.clone();
    assert!(matches!(
        s.admin_remove_device(1001, USER, "nope"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.admin_remove_device(USER_UID, USER, &id),
        Err(Error::AccessDenied(_))
    ));
    s.admin_remove_device(1001, USER, &id).unwrap();
    assert!(!s.status(0, USER).unwrap().enrolled);
    // Another admin's device: only root.
    let (eid, uri, _) = s.enroll_totp_begin(0, "abe", "phone", "", NOW).unwrap();
    let secret = secret_of(&uri);
    s.enroll_totp_confirm(0, "abe", &eid, &code(&secret, -1), &code(&secret, 0), NOW)
        .unwrap();
    let abe_dev = s.status(0, "abe").unwrap().devices[0].id.clone();
    assert!(matches!(
        s.admin_remove_device(1001, "abe", &abe_dev),
        Err(Error::AccessDenied(_))
    ));
    s.admin_remove_device(0, "abe", &abe_dev).unwrap();
}

#[test]
fn a_reload_changes_the_policy_and_keeps_logins_in_flight() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let (action, token, _) = begin(&s);
    assert_eq!(action, BeginAction::Challenge);
    let mut config = Config::default();
    config.policy.mode = Mode::Required;
    config.daemon.bus = "unix:path=/elsewhere".into();
    config.daemon.log = LogTarget::Stderr;
    let kept = s.reload(config);
    assert_eq!(kept, ["[daemon] bus"]);
    assert_eq!(s.core().config.daemon.bus, Config::default().daemon.bus);
    // The login begun before the reload still takes its code.
    assert_eq!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    // The new policy applies to the next login.
    assert_eq!(
        s.login_begin(
            0,
            &LoginRequest {
                user: "root".into(),
                service: "sshd".into(),
                ..Default::default()
            },
            NOW
        )
        .unwrap()
        .0,
        BeginAction::Enroll
    );
}

// ----- Enrollment at login ---------------------------------------------------

/// A required-mode service with `[sms]` when `sms` (allowed prefix +372).
fn enroll_service(sms: bool) -> (Service, Arc<Outbox>) {
    let (s, outbox) = sms_service_with(
        crate::store::SendLimits {
            per_user: 5,
            total: 100,
            cooldown: 0,
        },
        &["+372"],
    );
    let mut config = Config::default();
    config.policy.mode = Mode::Required;
    config.daemon.log = LogTarget::Stderr;
    if !sms {
        return (Service::new(core(config, None)), outbox);
    }
    s.core.write().unwrap().config = config;
    (s, outbox)
}

fn enroll_begin_login(s: &Service) -> String {
    let (action, token, message) = begin(s);
    assert_eq!(action, BeginAction::Enroll);
    assert_eq!(message, super::attempts::MSG_ENROLL);
    token
}

#[test]
fn a_login_enrolls_an_app_and_counts_as_verified() {
    let (s, _) = enroll_service(false);
    let token = enroll_begin_login(&s);
    assert_eq!(s.login_enroll_kinds(0, &token, NOW).unwrap(), ["totp"]);
    let (uri, secret_b32, _) = s.login_enroll_begin(0, &token, "totp", "", NOW).unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = secret_of(&uri);
    assert_eq!(totp::secret_to_base32(&secret), secret_b32);
    // One wrong pair is a retry; the right pair enrolls and verifies.
    let wrong = vec!["000000".to_string(), "000001".to_string()];
    let (r, m, codes) = s.login_enroll_confirm(0, &token, &wrong, NOW).unwrap();
    assert_eq!((r, codes.len()), (AnswerResult::Retry, 0), "{m}");
    let right = vec![code(&secret, -1), code(&secret, 0)];
    let (r, m, codes) = s.login_enroll_confirm(0, &token, &right, NOW).unwrap();
    assert_eq!(r, AnswerResult::Success, "{m}");
    assert_eq!(codes.len(), 10);
    let status = s.status(0, USER).unwrap();
    assert!(status.enrolled);
    assert_eq!(status.devices[0].kind, "totp");
    // The attempt takes no more enrollment calls nor answers; the account
    // phase allows it once.
    assert!(matches!(
        s.login_enroll_confirm(0, &token, &right, NOW),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Deny
    );
    // The next login asks for a code.
    assert_eq!(begin(&s).0, BeginAction::Challenge);
}

#[test]
fn three_wrong_pairs_end_the_login_and_enroll_nothing() {
    let (s, _) = enroll_service(false);
    let token = enroll_begin_login(&s);
    let (uri, _, _) = s.login_enroll_begin(0, &token, "totp", "", NOW).unwrap();
    let secret = secret_of(&uri);
    let wrong = vec!["123456".to_string(), "654321".to_string()];
    for want in [AnswerResult::Retry, AnswerResult::Retry, AnswerResult::Deny] {
        let (r, m, _) = s.login_enroll_confirm(0, &token, &wrong, NOW).unwrap();
        assert_eq!(r, want, "{m}");
    }
    let right = vec![code(&secret, -1), code(&secret, 0)];
    assert!(matches!(
        s.login_enroll_confirm(0, &token, &right, NOW),
        Err(Error::NotFound(_))
    ));
    assert!(!s.status(0, USER).unwrap().enrolled);
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Deny
    );
}

#[test]
fn only_root_gets_enroll_and_only_for_the_attempt_it_began() {
    let (s, _) = enroll_service(false);
    // A caller running as the user (a screen locker) is refused as before.
    let (action, token, message) = begin_as(&s, USER_UID, USER);
    assert_eq!(action, BeginAction::Deny);
    assert!(token.is_empty());
    assert_eq!(message, crate::policy::NOT_ENROLLED_REQUIRED);
    // Root's enrolling attempt is useless to anyone else.
    let token = enroll_begin_login(&s);
    assert!(matches!(
        s.login_enroll_begin(USER_UID, &token, "totp", "", NOW),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.login_enroll_kinds(BOB_UID, &token, NOW),
        Err(Error::NotFound(_))
    ));
    // Nor is it an attempt that takes codes.
    assert!(matches!(
        s.login_answer(0, &token, b"123456", NOW),
        Err(Error::NotFound(_))
    ));
    // A challenge attempt (an enrolled user) cannot enroll without a code.
    let (s, _) = enroll_service(false);
    enroll(&s);
    let (action, token, _) = begin(&s);
    assert_eq!(action, BeginAction::Challenge);
    assert!(matches!(
        s.login_enroll_begin(0, &token, "totp", "", NOW),
        Err(Error::NotFound(_))
    ));
    // Off: the refusal of before.
    let s = policy_service(|p| {
        p.mode = Mode::Required;
        p.enroll_at_login = false;
    });
    let (action, token, message) = begin(&s);
    assert_eq!((action, token.as_str()), (BeginAction::Deny, ""));
    assert_eq!(message, crate::policy::NOT_ENROLLED_REQUIRED);
}

#[test]
fn a_login_enrolls_a_phone_within_the_sms_limits() {
    let (s, outbox) = enroll_service(true);
    let token = enroll_begin_login(&s);
    assert_eq!(
        s.login_enroll_kinds(0, &token, NOW).unwrap(),
        ["totp", "sms"]
    );
    // allowed_prefixes applies; a bad number is an error, not a try.
    assert!(matches!(
        s.login_enroll_begin(0, &token, "sms", "+4915112345678", NOW),
        Err(Error::InvalidArgument(m)) if m.contains("allowed_prefixes")
    ));
    assert!(matches!(
        s.login_enroll_begin(0, &token, "fido", "", NOW),
        Err(Error::InvalidArgument(_))
    ));
    let (uri, secret, message) = s.login_enroll_begin(0, &token, "sms", PHONE, NOW).unwrap();
    assert_eq!((uri.as_str(), secret.as_str()), ("", ""));
    assert!(message.contains(MASKED), "{message}");
    assert_eq!(outbox.count(), 1);
    let message = s.login_enroll_resend(0, &token, NOW + 1).unwrap();
    assert!(message.contains(MASKED), "{message}");
    assert_eq!(outbox.count(), 2);
    let (r, _, _) = s
        .login_enroll_confirm(0, &token, &["000000".to_string()], NOW + 2)
        .unwrap();
    assert_eq!(r, AnswerResult::Retry);
    let (phone, sent) = outbox.last();
    assert_eq!(phone, PHONE);
    let (r, m, codes) = s.login_enroll_confirm(0, &token, &[sent], NOW + 2).unwrap();
    assert_eq!(r, AnswerResult::Success, "{m}");
    assert_eq!(codes.len(), 10);
    assert_eq!(s.status(0, USER).unwrap().devices[0].kind, "sms");
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW + 3).unwrap().0,
        AccountAction::Allow
    );
}

#[test]
fn an_unknown_name_enrolls_a_decoy_that_never_passes() {
    let (s, outbox) = enroll_service(true);
    let (action, token, message) = begin_as(&s, 0, "no-such-user");
    assert_eq!(action, BeginAction::Enroll);
    assert_eq!(message, super::attempts::MSG_ENROLL);
    let (uri, _, _) = s.login_enroll_begin(0, &token, "totp", "", NOW).unwrap();
    let secret = secret_of(&uri);
    let right = vec![code(&secret, -1), code(&secret, 0)];
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(s.login_enroll_confirm(0, &token, &right, NOW).unwrap().0);
    }
    assert_eq!(
        results,
        [AnswerResult::Retry, AnswerResult::Retry, AnswerResult::Deny]
    );
    // Wrong codes of any form get what a real enrollment says.
    for codes in [["1", "2"], ["abc", "123456"], ["123456", "654321"]] {
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        let (_, real, _) = begin_as(&s, 0, USER);
        s.login_enroll_begin(0, &real, "totp", "", NOW).unwrap();
        let (_, fake, _) = begin_as(&s, 0, "no-such-user");
        s.login_enroll_begin(0, &fake, "totp", "", NOW).unwrap();
        let real = s.login_enroll_confirm(0, &real, &codes, NOW).unwrap();
        let fake = s.login_enroll_confirm(0, &fake, &codes, NOW).unwrap();
        assert_eq!(real, fake, "{codes:?}");
    }
    // By SMS: "sent", and nothing goes out.
    let (_, token, _) = begin_as(&s, 0, "no-such-user");
    let (_, _, message) = s.login_enroll_begin(0, &token, "sms", PHONE, NOW).unwrap();
    assert!(message.contains(MASKED), "{message}");
    assert!(s
        .login_enroll_resend(0, &token, NOW)
        .unwrap()
        .contains(MASKED));
    assert_eq!(outbox.count(), 0);
    let (_, real, _) = begin_as(&s, 0, USER);
    s.login_enroll_begin(0, &real, "sms", PHONE, NOW).unwrap();
    let sent = outbox.last().1;
    let wrong = if sent == "123456" { "654321" } else { "123456" };
    for code in ["12", "abcdef", wrong] {
        let codes = vec![code.to_string()];
        let r = s.login_enroll_confirm(0, &real, &codes, NOW).unwrap();
        let f = s.login_enroll_confirm(0, &token, &codes, NOW).unwrap();
        assert_eq!(r, f, "{code}");
    }
}

// ----- session duration -------------------------------------------------------

fn limited(secs: u64) -> Service {
    let mut config = Config::default();
    config.daemon.log = LogTarget::Stderr;
    config.session.max_duration = Some(std::time::Duration::from_secs(secs));
    Service::new(core(config, None))
}

fn own_pidfd() -> std::os::fd::OwnedFd {
    crate::process::pidfd_open(i32::try_from(std::process::id()).unwrap()).unwrap()
}

fn session_login(attempt: &str) -> super::SessionLogin {
    super::SessionLogin {
        user: USER.into(),
        service: "sshd".into(),
        attempt: attempt.into(),
        tty: "pts/4".into(),
        xdg_session_id: String::new(),
    }
}

/// A verified login through the account phase.
fn passed_login(s: &Service, secret: &[u8], offset: i64) -> String {
    let (_, token, _) = begin(s);
    let code = code(secret, offset);
    assert_eq!(
        s.login_answer(0, &token, code.as_bytes(), NOW).unwrap().0,
        AnswerResult::Success
    );
    assert_eq!(
        s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
        AccountAction::Allow
    );
    token
}

/// A caller that is not root (a screen locker, as the user) may hand over
/// only its own process to be ended; this test process is root's.
#[test]
fn a_users_own_login_cannot_register_roots_process() {
    assert_eq!(nix::unistd::getuid().as_raw(), 0, "run as root");
    let s = limited(3600);
    let (secret, _) = enroll(&s);
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    let (_, token, _) = s.login_begin(USER_UID, &req, NOW).unwrap();
    let code = code(&secret, 1);
    assert_eq!(
        s.login_answer(USER_UID, &token, code.as_bytes(), NOW)
            .unwrap()
            .0,
        AnswerResult::Success
    );
    assert_eq!(
        s.account_check(USER_UID, USER, "sshd", &token, NOW)
            .unwrap()
            .0,
        AccountAction::Allow
    );
    assert!(matches!(
        s.open_session(USER_UID, &session_login(&token), own_pidfd(), NOW),
        Err(Error::AccessDenied(_))
    ));
    assert!(s.sessions(USER_UID, "").unwrap().is_empty());
}

#[test]
fn a_login_that_passed_opens_one_limited_session() {
    let s = limited(3600);
    let (secret, _) = enroll(&s);
    let token = passed_login(&s, &secret, 1);
    let (id, ends, message) = s
        .open_session(0, &session_login(&token), own_pidfd(), NOW)
        .unwrap();
    assert!(!id.is_empty());
    assert_eq!(ends, NOW + 3600);
    assert!(message.contains("1h"), "{message}");
    let listed = s.sessions(USER_UID, "").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].tty.as_str()),
        (id.as_str(), "pts/4")
    );
    // Each passed login counts once.
    let again = s
        .open_session(0, &session_login(&token), own_pidfd(), NOW)
        .unwrap();
    assert_eq!(again.0, "");
    // Only root closes it; then it is gone.
    assert!(matches!(
        s.close_session(USER_UID, &id, NOW),
        Err(Error::AccessDenied(_))
    ));
    s.close_session(0, &id, NOW).unwrap();
    assert!(s.sessions(0, USER).unwrap().is_empty());
}

#[test]
fn without_a_token_the_passed_login_of_the_user_and_service_counts() {
    let s = limited(60);
    let (secret, _) = enroll(&s);
    passed_login(&s, &secret, 1);
    let other_service = super::SessionLogin {
        service: "login".into(),
        ..session_login("")
    };
    assert_eq!(
        s.open_session(0, &other_service, own_pidfd(), NOW)
            .unwrap()
            .0,
        "",
        "another service's login is not this one"
    );
    let (id, ends, _) = s
        .open_session(0, &session_login(""), own_pidfd(), NOW)
        .unwrap();
    assert!(!id.is_empty());
    assert_eq!(ends, NOW + 60);
}

#[test]
fn a_login_that_did_not_pass_or_an_unlimited_host_opens_nothing() {
    let s = limited(60);
    enroll(&s);
    let (_, token, _) = begin(&s);
    assert_eq!(
        s.open_session(0, &session_login(&token), own_pidfd(), NOW)
            .unwrap()
            .0,
        "",
        "challenged, never answered"
    );
    assert_eq!(
        s.open_session(0, &session_login(""), own_pidfd(), NOW)
            .unwrap()
            .0,
        ""
    );
    let off = service(Mode::Optional);
    let (secret_off, _) = enroll(&off);
    let token = passed_login(&off, &secret_off, 1);
    assert_eq!(
        off.open_session(0, &session_login(&token), own_pidfd(), NOW)
            .unwrap()
            .0,
        ""
    );
}

#[test]
fn a_users_choice_shortens_new_sessions_within_the_limit() {
    let s = limited(3600);
    let (secret, _) = enroll(&s);
    assert!(matches!(
        s.set_session_duration(USER_UID, "", 7200),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.set_session_duration(USER_UID, BOB, 60),
        Err(Error::AccessDenied(_))
    ));
    s.set_session_duration(USER_UID, "", 600).unwrap();
    let d = s.session_duration(USER_UID, "").unwrap();
    assert_eq!((d.duration, d.chosen, d.limit), (600, 600, 3600));
    let token = passed_login(&s, &secret, 1);
    let (_, ends, _) = s
        .open_session(0, &session_login(&token), own_pidfd(), NOW)
        .unwrap();
    assert_eq!(ends, NOW + 600);
    s.set_session_duration(USER_UID, "", 0).unwrap();
    assert_eq!(s.session_duration(USER_UID, "").unwrap().duration, 3600);
}

#[test]
fn a_full_table_of_passed_logins_drops_its_oldest_not_all() {
    let s = limited(3600);
    enroll(&s);
    let req = LoginRequest {
        user: USER.into(),
        service: "sshd".into(),
        ..Default::default()
    };
    let grant = authz::login(&s.core(), 0, USER).unwrap();
    let pass = |now| {
        let token = verified_attempt(&s, &grant, &req, now);
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, now).unwrap().0,
            AccountAction::Allow
        );
        token
    };
    let tokens: Vec<String> = (0..=attempts::MAX_ATTEMPTS as i64)
        .map(|i| pass(NOW + i / 100))
        .collect();
    let later = NOW + 200;
    let recent = &tokens[tokens.len() - 2];
    assert!(
        s.attempts
            .take_passed(&grant, "sshd", recent, later)
            .is_some(),
        "a recent login that passed still opens a limited session"
    );
    assert!(s
        .attempts
        .take_passed(&grant, "sshd", &tokens[0], later)
        .is_none());
}

#[test]
fn without_a_session_limit_no_passed_login_is_kept() {
    let s = service(Mode::Optional);
    let (secret, _) = enroll(&s);
    let token = passed_login(&s, &secret, 1);
    let grant = authz::login(&s.core(), 0, USER).unwrap();
    assert!(s
        .attempts
        .take_passed(&grant, "sshd", &token, NOW)
        .is_none());
}
