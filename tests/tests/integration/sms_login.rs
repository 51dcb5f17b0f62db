//! Logins with a code sent by SMS, end to end: pamtester (and sshd with the
//! real ssh client) loads the real pam_mfa.so, which asks the real mfad,
//! which posts to a real HTTP gateway on 127.0.0.1 (tests/src/sms.rs). The
//! tests read each code from what the gateway received, the way a phone
//! would, and answer the prompt with it while the login waits.
//!
//! What the README promises ("Codes by SMS"): an SMS-only user gets a code
//! at Begin and the prompt says where it went; a user with an app and a
//! phone is asked for the app code and an empty answer sends one by SMS
//! (`prompt`, not a try); SMS codes are one-time, stay live after a newer
//! one is sent (the last 3; using one uses up all), expire, count toward the
//! lockout; sends are limited per user and hour, for the whole host, and
//! by a cooldown between two sends to a user; a gateway
//! that is down or hangs never lets a login through without a right code.

use std::time::{Duration, Instant};

use mfa_tests::codes::unix_now;
use mfa_tests::proc::Interactive;
use mfa_tests::sms::{cooldown_wait, holds_code};
use mfa_tests::ssh::{account_guard, SshKey, SshOpts, SshSetup};
use mfa_tests::{
    mask_phone, paths, random_phone, wrong_code, Clock, Cmd, Env, PamOutcome, PamResult, Sms, User,
};
use serde_json::Value;

/// The prompt for a user with an app and a phone.
const APP_OR_SMS: &str = "Verification code (press Enter to get a code by SMS): ";
/// Every prompt pam_mfa shows ends with one of these: `...code: ` (the
/// SMS, app and backup-code prompts), `...by SMS): ` (app or SMS), and
/// `...code): ` (a prompt that names the codes it takes).
const PROMPT_ENDS: &[&str] = &["code: ", "SMS): ", "code): "];
/// Generous: the machine runs many of these tests at once.
const WAIT: Duration = Duration::from_secs(20);

/// `Code sent by SMS to +372*****345. Verification code: ` for `phone`.
fn sms_prompt(phone: &str) -> String {
    format!(
        "Code sent by SMS to {}. Verification code: ",
        mask_phone(phone)
    )
}

/// A 6-digit code that is none of `codes`.
fn none_of(codes: &[&str]) -> String {
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !codes.contains(&c.as_str()))
        .expect("a free code")
}

/// One pamtester run answered prompt by prompt, for codes that exist only
/// once the login has started.
struct Login {
    run: Interactive,
    prompts: usize,
}

impl Login {
    /// `pamtester -v SERVICE USER authenticate`.
    fn start(svc: &str, user: &User) -> Login {
        Login::start_with(svc, user, &[], &["authenticate"])
    }

    /// With PAM items (`rhost=...`) and operations (`acct_mgmt`).
    fn start_with(svc: &str, user: &User, items: &[(&str, &str)], ops: &[&str]) -> Login {
        let mut args: Vec<String> = vec!["-v".into()];
        for (k, v) in items {
            args.push("-I".into());
            args.push(format!("{k}={v}"));
        }
        args.push(svc.into());
        args.push(user.name.clone());
        args.extend(ops.iter().map(|s| s.to_string()));
        let run = Cmd::new(paths::tool("pamtester", "pamtester"))
            .args(&args)
            .timeout(Duration::from_secs(60))
            .spawn_interactive();
        Login { run, prompts: 0 }
    }

    /// Waits for the next prompt and returns it (the text after the
    /// previous prompt and the last message line).
    #[track_caller]
    fn prompt(&mut self) -> String {
        self.try_prompt().unwrap_or_else(|why| {
            panic!(
                "no prompt {} ({why}):\n{}",
                self.prompts + 1,
                self.run.transcript()
            )
        })
    }

    /// [`Login::prompt`], or why there was none (pamtester ended).
    fn try_prompt(&mut self) -> Result<String, String> {
        self.run
            .wait_until_any(PROMPT_ENDS, self.prompts + 1, WAIT)?;
        self.prompts += 1;
        let all = self.run.transcript();
        // The end of prompt number `self.prompts`, and of the one before.
        let mut ends: Vec<usize> = PROMPT_ENDS
            .iter()
            .flat_map(|n| all.match_indices(n).map(move |(i, _)| i + n.len()))
            .collect();
        ends.sort_unstable();
        let end = ends[self.prompts - 1];
        let prev = if self.prompts >= 2 {
            ends[self.prompts - 2]
        } else {
            0
        };
        let line = all[..end].rfind('\n').map_or(0, |i| i + 1);
        Ok(all[prev.max(line)..end].to_string())
    }

    /// Waits for the next prompt and checks it is exactly `want`.
    #[track_caller]
    fn expect(&mut self, want: &str) {
        let got = self.prompt();
        assert_eq!(
            got,
            want,
            "prompt {}; transcript:\n{}",
            self.prompts,
            self.run.transcript()
        );
    }

    fn answer(&mut self, s: &str) {
        self.run.send_line(s);
    }

    fn transcript(&self) -> String {
        self.run.transcript()
    }

    fn finish(self) -> PamOutcome {
        let output = self.run.finish();
        assert!(!output.timed_out, "pamtester hung:\n{output}");
        PamOutcome { output }
    }
}

/// A whole login: each answer goes out after the next prompt, until the
/// answers or the prompts run out.
fn answer_all(svc: &str, user: &User, answers: &[&str]) -> PamOutcome {
    let mut login = Login::start(svc, user);
    for a in answers {
        if login.try_prompt().is_err() {
            break;
        }
        login.answer(a);
    }
    login.finish()
}

/// Messages sent to `phone` so far.
fn sent_to(env: &Env, phone: &str) -> usize {
    env.sms_sent().iter().filter(|m| m.to == phone).count()
}

/// The code of the `n`-th message (1-based), which must have gone to
/// `phone`.
#[track_caller]
fn code_sent(env: &Env, n: usize, phone: &str) -> String {
    let m = env.wait_for_sms(n);
    assert_eq!(m.to, phone, "SMS {n} went elsewhere: {m:?}");
    m.code()
}

// ---------------------------------------------------------------------------

/// An SMS-only user: Begin sends exactly one code, the prompt says where
/// it went (masked), the code logs in once; after Enter sent a newer one,
/// the first (a slow message) still logs in, and then the newer is dead.
#[test]
fn an_sms_only_user_logs_in_with_the_code_sent_at_begin() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .max_failures(100)
        .start();
    let ann = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&ann, &phone);
    let svc = env.pam_service("");
    let n = env.sms_count();

    let mut login = Login::start(&svc, &ann);
    login.expect(&sms_prompt(&phone));
    let first = code_sent(&env, n + 1, &phone);
    assert!(
        !login.transcript().contains(&phone),
        "the full number was shown:\n{}",
        login.transcript()
    );
    login.answer(&first);
    login.finish().assert_result(PamResult::Success);
    assert_eq!(env.sms_count(), n + 1, "Begin sends exactly one SMS");
    let req = env.sms_gateway().last();
    assert_eq!(req.method, "POST");
    assert_eq!(req.field("To"), Some(phone.as_str()), "{req:?}");

    // Used: refused (the new login's own code is not given).
    let mut login = Login::start(&svc, &ann);
    login.expect(&sms_prompt(&phone));
    let second = code_sent(&env, n + 2, &phone);
    assert_ne!(second, first, "a fresh code for each login");
    login.answer(&first);
    for _ in 0..2 {
        let _ = login.prompt();
        login.answer(&first);
    }
    login.finish().assert_result(PamResult::AuthErr);

    // Enter sends a new code; the one from Begin, arriving late, still
    // works and is no failure. Using it uses up the new one too.
    let mut login = Login::start(&svc, &ann);
    login.expect(&sms_prompt(&phone));
    let old = code_sent(&env, n + 3, &phone);
    login.answer("");
    login.expect(&sms_prompt(&phone));
    let new = code_sent(&env, n + 4, &phone);
    login.answer(&old);
    login.finish().assert_result(PamResult::Success);
    assert_eq!(env.failures(&ann), 0);
    assert_eq!(env.sms_count(), n + 4);
    let mut login = Login::start(&svc, &ann);
    login.expect(&sms_prompt(&phone));
    let fresh = code_sent(&env, n + 5, &phone);
    if new != fresh {
        login.answer(&new);
        let _ = login.prompt();
        assert!(
            login.transcript().to_lowercase().contains("wrong"),
            "the code used up with the other is wrong:\n{}",
            login.transcript()
        );
    }
    login.answer(&fresh);
    login.finish().assert_result(PamResult::Success);

    // mfad's log names the events, never a code.
    let log = env.daemon_log();
    assert!(log.contains("sms sent"), "{log}");
    for c in [&first, &second, &old, &new, &fresh] {
        assert!(!holds_code(&log, c), "a code in mfad's log:\n{log}");
    }
}

/// A user with an app and a phone: the app prompt offers Enter; Enter sends
/// a code (not a try, no failure) and the prompt says where; that code
/// logs in once. The app code works without any SMS.
#[test]
fn an_app_and_phone_user_presses_enter_for_a_code_by_sms() {
    let env = Env::builder().sms(Sms::http()).max_failures(100).start();
    let ben = env.add_user();
    let phone = random_phone();
    let (app, _) = env.enroll_app_and_sms(&ben, &phone);
    let svc = env.pam_service("");
    let n = env.sms_count();

    // Two wrong codes, Enter, the SMS code: Enter is not the third try.
    let wrong = wrong_code(&app.secret);
    let mut login = Login::start(&svc, &ben);
    login.expect(APP_OR_SMS);
    assert_eq!(env.sms_count(), n, "nothing is sent before Enter");
    login.answer(&wrong);
    login.expect(APP_OR_SMS);
    login.answer(&wrong);
    login.expect(APP_OR_SMS);
    login.answer("");
    login.expect(&sms_prompt(&phone));
    assert_eq!(env.failures(&ben), 2, "Enter counted as a failure");
    let code = code_sent(&env, n + 1, &phone);
    login.answer(&code);
    login.finish().assert_result(PamResult::Success);
    assert_eq!(env.failures(&ben), 0, "success resets the count");

    // One-time: the same code again is wrong, and nothing is sent.
    let mut login = Login::start(&svc, &ben);
    for _ in 0..3 {
        login.expect(APP_OR_SMS);
        login.answer(&code);
    }
    login.finish().assert_result(PamResult::AuthErr);

    // The app code, no SMS.
    let mut login = Login::start(&svc, &ben);
    login.expect(APP_OR_SMS);
    login.answer(&Clock::now().code(&app.secret, 0));
    login.finish().assert_result(PamResult::Success);
    assert_eq!(env.sms_count(), n + 1, "the app login sent an SMS");
}

/// Through sshd: the keyboard-interactive prompt shows the masked number;
/// an app+phone user answers the first prompt empty and logs in with the
/// code sent by SMS.
#[test]
fn ssh_logins_with_a_code_by_sms() {
    let env = Env::builder().sms(Sms::http()).max_failures(100).start();
    let cat = env.add_login_user(None);
    let dan = env.add_login_user(None);
    let cat_phone = random_phone();
    let dan_phone = random_phone();
    env.enroll_sms(&cat, &cat_phone);
    env.enroll_app_and_sms(&dan, &dan_phone);
    let key = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env));
    sshd.authorize(&cat, &[&key]);
    sshd.authorize(&dan, &[&key]);
    let opts = SshOpts {
        key: Some(&key),
        attempts: 1,
        ..SshOpts::default()
    };

    // SMS only.
    let n = env.sms_count();
    let ssh = sshd.ssh_stepped(&cat, &opts);
    let p = ssh.code_prompt(1, WAIT);
    assert!(p.contains(&sms_prompt(&cat_phone)), "{p:?}");
    assert!(!p.contains(&cat_phone), "the full number: {p:?}");
    ssh.answer(1, &code_sent(&env, n + 1, &cat_phone));
    let r = ssh.finish();
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");
    assert_eq!(env.sms_count(), n + 1);

    // App and phone: Enter, then the SMS code.
    let ssh = sshd.ssh_stepped(&dan, &opts);
    let p = ssh.code_prompt(1, WAIT);
    assert!(p.contains(APP_OR_SMS), "{p:?}");
    assert_eq!(env.sms_count(), n + 1, "sent before Enter");
    ssh.answer(1, "");
    let p = ssh.code_prompt(2, WAIT);
    assert!(p.contains(&sms_prompt(&dan_phone)), "{p:?}");
    ssh.answer(2, &code_sent(&env, n + 2, &dan_phone));
    let r = ssh.finish();
    r.assert_logged_in();
    assert!(
        sshd.log().contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            dan.name
        )),
        "{}",
        sshd.log()
    );
}

/// `max_sends_per_hour` counts enrollment and login sends of a user
/// together. Past it, Enter gets a clear message and no request reaches
/// the gateway; the login passes only with a right code.
#[test]
fn the_sends_per_hour_are_limited() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(3))
        .max_failures(100)
        .start();
    let eve = env.add_user();
    let fox = env.add_user();
    let eve_phone = random_phone();
    let fox_phone = random_phone();
    let eve_phone_dev = env.enroll_sms(&eve, &eve_phone); // send 1
    let (fox_app, _) = env.enroll_app_and_sms(&fox, &fox_phone); // send 1
    let svc = env.pam_service("");

    // SMS only: Begin (2), Enter (3), then the limit.
    let n = env.sms_count();
    let mut login = Login::start(&svc, &eve);
    login.expect(&sms_prompt(&eve_phone));
    let sent1 = code_sent(&env, n + 1, &eve_phone);
    login.answer("");
    login.expect(&sms_prompt(&eve_phone));
    let sent2 = code_sent(&env, n + 2, &eve_phone);
    login.answer("");
    let _ = login.prompt();
    login.answer("");
    let _ = login.prompt();
    // Two tries gone on sends that did not happen; a code never sent is
    // the third, wrong.
    login.answer(&none_of(&[&sent1, &sent2]));
    let r = login.finish();
    r.assert_result(PamResult::AuthErr);
    let said = r.transcript().to_lowercase();
    assert!(
        said.contains("too many codes sent by sms"),
        "the limit must be explained:\n{}",
        r.output
    );
    assert_eq!(sent_to(&env, &eve_phone), 3, "a send past the limit");

    // A new login sends nothing and says why; a backup code logs in.
    let mut login = Login::start(&svc, &eve);
    let p = login.prompt();
    assert!(
        p.to_lowercase().contains("too many codes sent by sms"),
        "{p:?}"
    );
    login.answer(&eve_phone_dev.backup_codes[0]);
    login.finish().assert_result(PamResult::Success);
    assert_eq!(sent_to(&env, &eve_phone), 3);

    // The limit is per user: fox still has two sends. Enter (2), Enter
    // (3), Enter: refused with a hint at the app, whose code logs in.
    let mut login = Login::start(&svc, &fox);
    login.expect(APP_OR_SMS);
    login.answer("");
    login.expect(&sms_prompt(&fox_phone));
    login.answer("");
    login.expect(&sms_prompt(&fox_phone));
    login.answer("");
    let _ = login.prompt();
    login.answer(&Clock::now().code(&fox_app.secret, 0));
    let r = login.finish();
    r.assert_result(PamResult::Success);
    let said = r.transcript().to_lowercase();
    assert!(
        said.contains("too many codes sent by sms") && said.contains("app"),
        "{}",
        r.output
    );
    assert_eq!(sent_to(&env, &fox_phone), 3);
}

/// "Send again" must not make a slow message useless: the gateway takes
/// seconds for the first code (the login says it is on its way), Enter
/// sends a second at once, and the first, arriving late, logs in without
/// counting a failure.
#[test]
fn a_slow_first_message_still_logs_in_after_send_again() {
    let env = Env::builder().sms(Sms::http()).max_failures(100).start();
    let kai = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&kai, &phone);
    let svc = env.pam_service("");
    let n = env.sms_count();
    env.sms_gateway().delay(Duration::from_secs(4));
    let mut login = Login::start(&svc, &kai);
    login.expect(&format!(
        "A code is on its way by SMS to {}. Verification code: ",
        mask_phone(&phone)
    ));
    env.sms_gateway().delay(Duration::ZERO);
    login.answer("");
    login.expect(&sms_prompt(&phone));
    let first = code_sent(&env, n + 1, &phone);
    let second = code_sent(&env, n + 2, &phone);
    assert_eq!(env.sms_count(), n + 2);
    login.answer(&first);
    login.finish().assert_result(PamResult::Success);
    assert_eq!(env.failures(&kai), 0, "the late code counted as wrong");
    // One login, one code: the second died with the first.
    let mut login = Login::start(&svc, &kai);
    login.expect(&sms_prompt(&phone));
    let third = code_sent(&env, n + 3, &phone);
    if second != third {
        login.answer(&second);
        let _ = login.prompt();
        assert_eq!(env.failures(&kai), 1, "the used-up code must be wrong");
    }
    login.answer(&third);
    login.finish().assert_result(PamResult::Success);
}

/// Begin and three presses of Enter send four codes: the newest three
/// stay live, the first is dead; using one kills the other two.
#[test]
fn three_resends_keep_the_last_three_and_one_use_kills_all() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .max_failures(100)
        .start();
    let lou = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&lou, &phone);
    let svc = env.pam_service("");
    let n = env.sms_count();
    let mut login = Login::start(&svc, &lou);
    login.expect(&sms_prompt(&phone));
    for _ in 0..3 {
        login.answer("");
        login.expect(&sms_prompt(&phone));
    }
    let codes: Vec<String> = (1..=4).map(|i| code_sent(&env, n + i, &phone)).collect();
    // The oldest is gone (unless a newer one is the same by chance).
    if !codes[1..].contains(&codes[0]) {
        login.answer(&codes[0]);
        let _ = login.prompt();
        assert!(
            login.transcript().to_lowercase().contains("wrong"),
            "the fourth-newest code must be dead:\n{}",
            login.transcript()
        );
    }
    login.answer(&codes[1]);
    login.finish().assert_result(PamResult::Success);

    // The two newer ones died with it.
    let mut login = Login::start(&svc, &lou);
    login.expect(&sms_prompt(&phone));
    let fresh = code_sent(&env, n + 5, &phone);
    let before = env.failures(&lou);
    let mut tried = 0;
    for old in &codes[2..] {
        if *old != fresh {
            login.answer(old);
            let _ = login.prompt();
            tried += 1;
        }
    }
    assert_eq!(env.failures(&lou), before + tried, "a used-up code passed");
    login.answer(&fresh);
    login.finish().assert_result(PamResult::Success);
}

/// `resend_cooldown` (default 30s) at login: right after the phone was
/// enrolled, Enter is told how long to wait and nothing is sent, and the
/// app still logs in; SendCode is held the same way.
#[test]
fn sends_at_login_wait_for_the_cooldown() {
    let env = Env::builder()
        .sms(Sms::http().default_resend_cooldown())
        .start();
    let mia = env.add_user();
    let (app, _) = env.enroll_app_and_sms(&mia, &random_phone());
    let enrolled = Instant::now();
    let svc = env.pam_service("");
    let n = env.sms_count();
    let check = |text: &str| {
        let left = cooldown_wait(text).unwrap_or_else(|| panic!("no wait in {text:?}"));
        let most = 30 - enrolled.elapsed().as_secs().min(30);
        assert!(
            (1..=30).contains(&left) && left + 1 >= most,
            "{left}s left, {:?} after the send: {text}",
            enrolled.elapsed()
        );
    };
    let mut login = Login::start(&svc, &mia);
    login.expect(APP_OR_SMS);
    login.answer("");
    let _ = login.prompt();
    check(&login.transcript());
    login.answer(&Clock::now().code(&app.secret, 0));
    login.finish().assert_result(PamResult::Success);
    let msg = env
        .call(Some(&mia), &["send-code", ""])
        .assert_error("RateLimited")
        .to_string();
    check(&msg);
    assert_eq!(env.sms_count(), n, "a send within the cooldown");
}

/// The resend limit with nothing but Enter: every answer empty, the login
/// never passes and the gateway sees no request past the limit.
#[test]
fn only_enter_never_logs_in() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(2))
        .max_failures(100)
        .start();
    let gil = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&gil, &phone); // send 1
    let svc = env.pam_service("");
    for _ in 0..2 {
        let r = answer_all(&svc, &gil, &[""; 12]);
        assert_ne!(r.result(), PamResult::Success, "{}", r.output);
    }
    // Begin (2), then nothing more.
    assert_eq!(sent_to(&env, &phone), 2, "{:?}", env.sms_sent());
}

/// `code_lifetime`: a code used in time works, one used after it is
/// refused with a message saying so.
#[test]
fn an_expired_code_is_refused() {
    let lifetime = 5;
    let env = Env::builder()
        .sms(Sms::http().code_lifetime(&format!("{lifetime}s")))
        .max_failures(100)
        .start();
    let hal = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&hal, &phone);
    let svc = env.pam_service("");

    let mut login = Login::start(&svc, &hal);
    login.expect(&sms_prompt(&phone));
    login.answer(&env.last_sms_code());
    login.finish().assert_result(PamResult::Success);

    let mut login = Login::start(&svc, &hal);
    login.expect(&sms_prompt(&phone));
    let n = env.sms_count();
    let code = env.last_sms_code();
    let sent = Instant::now();
    // mfad counts whole seconds: two more than the lifetime is past it.
    std::thread::sleep(Duration::from_secs(lifetime + 2).saturating_sub(sent.elapsed()));
    login.answer(&code);
    let _ = login.prompt();
    assert!(
        login.transcript().to_lowercase().contains("expired"),
        "the user is told the code expired:\n{}",
        login.transcript()
    );
    // Enter for a new one, which works.
    login.answer("");
    login.expect(&sms_prompt(&phone));
    login.answer(&code_sent(&env, n + 1, &phone));
    login.finish().assert_result(PamResult::Success);
}

/// Wrong SMS codes count toward the lockout; locked, even the right SMS
/// code is refused and nothing is sent; an admin unlocks.
#[test]
fn wrong_sms_codes_lock_the_user_out() {
    let env = Env::builder().sms(Sms::http()).max_failures(3).start();
    let ida = env.add_user();
    let phone = random_phone();
    env.enroll_sms(&ida, &phone);
    let svc = env.pam_service("");

    // Two login attempts begun before the lockout (as root, like sshd).
    let begin = || {
        let v = env.call(None, &["login-begin", &ida.name]);
        let v = v.ok();
        assert_eq!(v["action"], "challenge", "{v}");
        v["attempt"].as_str().unwrap_or_default().to_string()
    };
    let n0 = env.sms_count();
    let early = begin();
    let early_enter = begin();

    let mut login = Login::start(&svc, &ida);
    login.expect(&sms_prompt(&phone));
    let right = code_sent(&env, n0 + 3, &phone);
    // Wrong (none of the three codes live), three times: the third locks.
    let live: Vec<String> = env.sms_sent().iter().map(|m| m.code()).collect();
    let wrong = none_of(&live.iter().map(String::as_str).collect::<Vec<_>>());
    login.answer(&wrong);
    let _ = login.prompt();
    login.answer(&wrong);
    let _ = login.prompt();
    login.answer(&wrong);
    let r = login.finish();
    r.assert_result(PamResult::AuthErr);
    let s = env.mfactl_json(None, &["admin", "status", &ida.name]);
    assert!(s["failures"].as_u64().unwrap_or(0) >= 3, "{s}");
    assert!(
        s["locked_until"].as_i64().unwrap_or(0) > unix_now() as i64,
        "not locked after 3 wrong SMS codes: {s}"
    );

    // The right code, in an attempt begun before: refused. Enter in the
    // other sends nothing.
    let n = env.sms_count();
    let a = env.call(None, &["answer", &early, &right]);
    if let mfa_tests::CallResult::Ok(v) = &a {
        assert_ne!(
            v["result"], "success",
            "locked, yet the right code passed: {v}"
        );
    }
    let a = env.call(None, &["answer", &early_enter, ""]);
    if let mfa_tests::CallResult::Ok(v) = &a {
        assert_ne!(v["result"], "success", "{v}");
        assert_ne!(v["result"], "prompt", "an SMS for a locked user: {v}");
    }
    assert_eq!(env.sms_count(), n, "an SMS was sent to a locked user");
    // A new login: refused at once, told why, nothing sent.
    let r = env.pamtester(&svc, &ida, &[&right]);
    r.assert_result(PamResult::AuthErr);
    assert!(
        r.transcript()
            .to_lowercase()
            .contains("too many failed attempts"),
        "{}",
        r.output
    );
    assert_eq!(env.sms_count(), n, "an SMS was sent to a locked user");

    env.mfactl(&["admin", "unlock", &ida.name]).assert_success();
    let mut login = Login::start(&svc, &ida);
    login.expect(&sms_prompt(&phone));
    login.answer(&code_sent(&env, n + 1, &phone));
    login.finish().assert_result(PamResult::Success);
}

/// A change of number: the old number gets the login codes until the new
/// one is confirmed, then the new one does; the device stays the same.
#[test]
fn a_new_number_takes_over_once_confirmed() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .max_failures(100)
        .start();
    let jo = env.add_user();
    let old = random_phone();
    let new = random_phone();
    let first = env.enroll_sms(&jo, &old);
    let svc = env.pam_service("");
    let shown = |who: Option<&User>| -> String {
        let v = match who {
            Some(u) => env.call(Some(u), &["status", ""]).ok().clone(),
            None => env.call(None, &["admin-status", &jo.name]).ok().clone(),
        };
        let devices: Vec<Value> = v["devices"].as_array().cloned().unwrap_or_default();
        assert_eq!(devices.len(), 1, "one phone: {v}");
        assert_eq!(devices[0]["kind"], "sms", "{v}");
        assert_eq!(devices[0]["id"], first.device_id.as_str(), "{v}");
        devices[0]["name"].as_str().unwrap_or_default().to_string()
    };

    // The user proves a current code (sent to the old number), then starts
    // the change.
    let n = env.sms_count();
    let v = env.call(Some(&jo), &["send-code", ""]);
    assert_eq!(v.ok()["phone"], mask_phone(&old).as_str(), "{v:?}");
    let current = code_sent(&env, n + 1, &old);
    let v = env.call(Some(&jo), &["enroll-sms-begin", "", &new, &current]);
    let v = v.ok().clone();
    assert_eq!(v["phone"], mask_phone(&new).as_str(), "{v}");
    let id = v["enrollment_id"].as_str().unwrap_or_default().to_string();
    let confirm = code_sent(&env, n + 2, &new);

    // Not confirmed yet: the login code goes to the old number.
    let mut login = Login::start(&svc, &jo);
    login.expect(&sms_prompt(&old));
    login.answer(&code_sent(&env, n + 3, &old));
    login.finish().assert_result(PamResult::Success);
    assert_eq!(shown(Some(&jo)), mask_phone(&old));
    assert_eq!(shown(None), old);

    let v = env.call(Some(&jo), &["enroll-sms-confirm", "", &id, &confirm]);
    let v = v.ok().clone();
    assert_eq!(v["device_id"], first.device_id.as_str(), "same device: {v}");
    assert_eq!(v["backup_codes"], serde_json::json!([]), "{v}");
    assert_eq!(shown(Some(&jo)), mask_phone(&new));
    assert_eq!(shown(None), new);

    // Now the new number gets the codes, and the old one nothing.
    let before_old = sent_to(&env, &old);
    let mut login = Login::start(&svc, &jo);
    login.expect(&sms_prompt(&new));
    login.answer(&code_sent(&env, n + 4, &new));
    login.finish().assert_result(PamResult::Success);
    assert_eq!(sent_to(&env, &old), before_old);
    // The backup codes of the first enrollment still work.
    env.pamtester(&svc, &jo, &[&first.backup_codes[0]])
        .assert_result(PamResult::Success);
}

#[derive(Debug, Clone, Copy)]
enum Down {
    /// The gateway answers 500.
    Error,
    /// Nothing listens at the gateway's address.
    Gone,
}

/// The gateway is down at login. An SMS-only user without backup codes is
/// refused with a message that the code could not be sent; with backup
/// codes, a backup code logs in; an app+phone user logs in with the app.
/// Never PAM_SUCCESS without a right code.
#[test]
fn a_gateway_that_is_down_never_lets_a_login_through() {
    for down in [Down::Error, Down::Gone] {
        let mut env = Env::builder()
            .sms(Sms::http().max_sends_per_hour(50))
            .max_failures(100)
            .start();
        let kim = env.add_user(); // phone only, backup codes used up
        let lea = env.add_user(); // phone only, backup codes
        let max = env.add_user(); // app and phone
        let kim_dev = env.enroll_sms(&kim, &random_phone());
        let lea_dev = env.enroll_sms(&lea, &random_phone());
        let (max_app, _) = env.enroll_app_and_sms(&max, &random_phone());
        let svc = env.pam_service("");
        match down {
            Down::Error => env
                .sms_gateway()
                .respond(500, r#"{"message":"internal error"}"#),
            Down::Gone => {
                let dead = {
                    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    l.local_addr().expect("addr")
                };
                env.set_config(|c| {
                    let http = c.sms.as_mut().and_then(|s| s.http.as_mut());
                    http.expect("[sms.http]").url = format!("http://{dead}/sms");
                });
                env.stop_daemon();
                env.start_daemon();
            }
        }
        // kim spends her backup codes while no SMS can go out (so no SMS
        // code of hers is outstanding).
        for c in &kim_dev.backup_codes {
            let v = env.call(None, &["login", &kim.name, c]);
            let v = v.ok();
            assert_eq!(v["answers"][0]["result"], "success", "{down:?}: {v}");
        }

        let r = answer_all(&svc, &kim, &["123456", "", "654321"]);
        r.assert_result(PamResult::AuthErr);
        assert!(
            r.transcript().contains("Could not send the code by SMS"),
            "{down:?}: kim must be told:\n{}",
            r.output
        );

        let mut login = Login::start(&svc, &lea);
        let p = login.prompt();
        assert!(
            p.contains("Could not send the code by SMS") && p.contains("ackup code"),
            "{down:?}: {p:?}"
        );
        login.answer("123456");
        let _ = login.prompt();
        login.answer("");
        let _ = login.prompt();
        login.answer(&lea_dev.backup_codes[0]);
        let r = login.finish();
        r.assert_result(PamResult::Success);

        let mut login = Login::start(&svc, &max);
        login.expect(APP_OR_SMS);
        login.answer("");
        let _ = login.prompt();
        assert!(
            login
                .transcript()
                .contains("Could not send the code by SMS"),
            "{down:?}:\n{}",
            login.transcript()
        );
        login.answer(&Clock::now().code(&max_app.secret, 0));
        login.finish().assert_result(PamResult::Success);

        // Only Enter: never in.
        let r = answer_all(&svc, &max, &[""; 6]);
        assert_ne!(r.result(), PamResult::Success, "{down:?}: {}", r.output);
    }
}

/// A gateway that hangs makes mfad slow, not gone: the module (default
/// `timeout=`, 10 s, or a short 2 s) must not take it for a dead daemon and let the login
/// through under failmode=safe. The stack is the usual one: a first factor
/// (here pam_permit standing in for the password), then pam_mfa. The
/// logins run at once, each waiting on the gateway.
#[test]
fn a_gateway_that_hangs_never_lets_a_login_through() {
    let env = Env::builder()
        .sms(Sms::http().timeout("30s").max_sends_per_hour(20))
        .max_failures(100)
        .start();
    let ned = env.add_user();
    let ola = env.add_user();
    env.enroll_sms(&ned, &random_phone());
    env.enroll_app_and_sms(&ola, &random_phone());
    env.sms_gateway().delay(Duration::from_secs(15));
    let svc = |failmode: &str| {
        env.pam_service_raw(&format!(
            "auth required pam_permit.so\nauth required {} failmode={failmode}\naccount required pam_permit.so\n",
            env.pam_module_spec()
        ))
    };
    let (secure, safe) = (svc("secure"), svc("safe"));
    // mfad waits for the gateway well under a second, so even a short
    // module timeout does not run out first.
    let safe_short = svc("safe timeout=2");
    // SMS only: Begin waits on the gateway. App and phone: Enter does.
    let cases = [
        (&secure, &ned, "123456"),
        (&safe, &ned, "123456"),
        (&safe_short, &ned, "123456"),
        (&secure, &ola, ""),
        (&safe, &ola, ""),
        (&safe_short, &ola, ""),
    ];
    let outcomes: Vec<PamOutcome> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(svc, user, answer)| scope.spawn(|| answer_all(svc, user, &[answer, ""])))
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| panic!("a login thread panicked"))
            })
            .collect()
    });
    for ((svc, user, _), r) in cases.iter().zip(&outcomes) {
        assert_ne!(
            r.result(),
            PamResult::Success,
            "{} ({}) got in without a code while the gateway hung:\n{}\nmfad:\n{}",
            user.name,
            std::fs::read_to_string(env.pam_service_path(svc)).unwrap_or_default(),
            r.output,
            env.daemon_log()
        );
        assert!(
            r.transcript().contains("Verification code"),
            "the login must still be asked for a code:\n{}",
            r.output
        );
    }
}

/// Trusted devices (issue 3) apply to SMS logins: with a lifetime and the
/// account line, a host or SSH key verified by SMS logs in without a code
/// next time, and no SMS is sent.
#[test]
fn a_device_verified_by_sms_is_trusted() {
    let env = Env::builder()
        .sms(Sms::http())
        .trusted_lifetime("30d")
        .max_failures(100)
        .start();
    let pia = env.add_login_user(None);
    let phone = random_phone();
    env.enroll_sms(&pia, &phone);
    let svc = env.pam_service_raw(&format!(
        "auth required {m}\naccount required {m}\n",
        m = env.pam_module_spec()
    ));
    let from = |host: &str| {
        Login::start_with(
            &svc,
            &pia,
            &[("rhost", host)],
            &["authenticate", "acct_mgmt"],
        )
    };

    let n = env.sms_count();
    let mut login = from("10.4.4.4");
    login.expect(&sms_prompt(&phone));
    login.answer(&code_sent(&env, n + 1, &phone));
    login.finish().assert_result(PamResult::Success);

    let r = from("10.4.4.4").finish();
    r.assert_result(PamResult::Success);
    assert!(
        r.transcript().contains("This device is trusted"),
        "{}",
        r.output
    );
    assert_eq!(env.sms_count(), n + 1, "a trusted device got an SMS");

    // Another host is asked.
    let mut login = from("10.4.4.5");
    login.expect(&sms_prompt(&phone));
    login.answer(&code_sent(&env, n + 2, &phone));
    login.finish().assert_result(PamResult::Success);

    // An SSH key verified by SMS.
    let key: SshKey = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env).account(&account_guard(&env)));
    sshd.authorize(&pia, &[&key]);
    let opts = SshOpts {
        key: Some(&key),
        attempts: 1,
        ..SshOpts::default()
    };
    let ssh = sshd.ssh_stepped(&pia, &opts);
    let p = ssh.code_prompt(1, WAIT);
    assert!(p.contains(&sms_prompt(&phone)), "{p:?}");
    ssh.answer(1, &code_sent(&env, n + 3, &phone));
    ssh.finish().assert_logged_in();
    let r = sshd.ssh(&pia, &opts);
    r.assert_logged_in();
    assert!(r.prompts.is_empty(), "a trusted key is asked nothing: {r}");
    assert_eq!(env.sms_count(), n + 3, "a trusted key got an SMS");
    let list = env.mfactl_json(Some(&pia), &["trusted", "list"]);
    assert!(
        list.as_array()
            .is_some_and(|a| a.iter().any(|t| t["identity"] == key.fingerprint.as_str())),
        "{list}"
    );
}
