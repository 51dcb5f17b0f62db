//! Enrolling inside the login (`[policy] enroll_at_login`, on by default):
//! a user who must use 2-step and has no device is walked through setting
//! up an app (or a phone) by the real pam_mfa.so in pamtester and in sshd's
//! keyboard-interactive exchange, asking the real mfad; the tests read the
//! secret the module showed (or the code the HTTP gateway received) and
//! answer the prompts while the login waits.

use std::time::Duration;

use mfa_tests::proc::Interactive;
use mfa_tests::ssh::{account_guard, SshOpts, SshSetup};
use mfa_tests::{
    mask_phone, paths, random_phone, Clock, Cmd, Env, PamOutcome, PamResult, PamtesterOpts, Policy,
    Sms, User,
};
use serde_json::Value;

const CODE1: &str = "Code 1: ";
const CODE2: &str = "Code 2: ";
const CONTINUE: &str = "Press Enter to continue: ";
const PHONE: &str = "Phone number: ";
const SMS_CODE: &str = "Code: ";
const CHOICE: &str = "(type sms): ";
/// Every prompt of an enrollment ends with one of these.
const PROMPTS: &[&str] = &[CODE1, CODE2, CONTINUE, PHONE, SMS_CODE, CHOICE];
const WAIT: Duration = Duration::from_secs(20);
/// The last info line before `Code 1: `, and a line of the backup codes'
/// text.
const APP_STEPS: &str = "and after it changes, the next one (Code 2).";
const STORE: &str = "they are shown only this once.";
/// mfad's refusal when enrollment at login is not possible.
const ASK_ADMIN: &str = "not set up; ask your administrator";

/// auth and account through pam_mfa (the account phase checks that the
/// login was verified).
fn service(env: &Env) -> String {
    env.pam_service_raw(&format!(
        "auth required {m}\naccount required {m}\n",
        m = env.pam_module_spec()
    ))
}

fn required_env(builder: mfa_tests::EnvBuilder) -> Env {
    builder.policy(Policy::Required).max_failures(100).start()
}

/// One pamtester run answered prompt by prompt.
struct Login {
    run: Interactive,
    seen: usize,
}

impl Login {
    /// pamtester's stdout (PAM_TEXT_INFO) unbuffered (stdbuf), so that the
    /// text shown before a prompt is there when the prompt is.
    fn start(svc: &str, user: &User, ops: &[&str]) -> Login {
        Login::start_from(svc, user, &[], ops)
    }

    /// With PAM items (`rhost=...`).
    fn start_from(svc: &str, user: &User, items: &[&str], ops: &[&str]) -> Login {
        let pamtester = paths::tool("pamtester", "pamtester");
        let mut args: Vec<String> =
            vec!["-o0".into(), pamtester.display().to_string(), "-v".into()];
        for item in items {
            args.push("-I".into());
            args.push(item.to_string());
        }
        args.push(svc.into());
        args.push(user.name.clone());
        args.extend(ops.iter().map(|s| s.to_string()));
        let run = Cmd::new("stdbuf")
            .args(&args)
            .timeout(Duration::from_secs(90))
            .spawn_interactive();
        Login { run, seen: 0 }
    }

    /// Waits for the next prompt, checks it is `want`, returns everything
    /// shown so far.
    #[track_caller]
    fn expect(&mut self, want: &str) -> String {
        if let Err(why) = self.run.wait_until_any(PROMPTS, self.seen + 1, WAIT) {
            panic!(
                "no prompt {} ({why}), wanted {want:?}:\n{}",
                self.seen + 1,
                self.run.transcript()
            );
        }
        self.seen += 1;
        let all = self.run.transcript();
        // Prompts all go to stderr (misc_conv), the last part of the
        // transcript: the latest is the one that ends last.
        let last = PROMPTS
            .iter()
            .filter_map(|p| all.rfind(p).map(|i| (i + p.len(), *p)))
            .max()
            .map(|(_, p)| p);
        assert_eq!(last, Some(want), "prompt {}:\n{all}", self.seen);
        all
    }

    /// Waits until `needle` was shown `count` times: info text (stdout)
    /// may come in after the prompt that follows it (stderr).
    #[track_caller]
    fn shown(&mut self, needle: &str, count: usize) -> String {
        if let Err(why) = self.run.wait_until(needle, count, WAIT) {
            panic!("{needle:?} not shown ({why}):\n{}", self.run.transcript());
        }
        self.run.transcript()
    }

    fn answer(&mut self, s: &str) {
        self.run.send_line(s);
    }

    fn finish(self) -> PamOutcome {
        let output = self.run.finish();
        assert!(!output.timed_out, "pamtester hung:\n{output}");
        PamOutcome { output }
    }
}

/// The secret of the otpauth URI the module showed.
#[track_caller]
fn shown_secret(text: &str) -> String {
    let uri = text
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("no otpauth URI shown:\n{text}"));
    uri.split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_else(|| panic!("URI without secret: {uri}"))
        .to_string()
}

/// 8-digit backup codes shown after the last `Backup codes` heading.
fn shown_backup_codes(text: &str) -> Vec<String> {
    let Some(at) = text.rfind("Backup codes") else {
        return Vec::new();
    };
    text[at..]
        .split_whitespace()
        .filter(|w| w.len() == 8 && w.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

fn status(env: &Env, user: &User) -> Value {
    env.mfactl_json(None, &["admin", "status", &user.name])
}

/// Answers the app's two prompts with `codes` per try.
fn app_tries(login: &mut Login, tries: &[[String; 2]]) -> String {
    let mut shown = String::new();
    for [c1, c2] in tries {
        shown = login.expect(CODE1);
        login.answer(c1);
        login.expect(CODE2);
        login.answer(c2);
    }
    shown
}

/// Wrong codes three times: the login fails and nothing is enrolled; then
/// the right codes: in, with the device, the backup codes (which work) and
/// the account phase's consent.
#[test]
fn a_user_enrolls_an_app_inside_the_login() {
    let env = required_env(Env::builder());
    let alice = env.add_user();
    let svc = service(&env);

    let mut login = Login::start(&svc, &alice, &["authenticate", "acct_mgmt"]);
    let wrong = ["000000".to_string(), "000001".to_string()];
    app_tries(&mut login, &[wrong.clone(), wrong.clone(), wrong]);
    login.shown("set it up now", 1);
    let r = login.finish();
    r.assert_result(PamResult::AuthErr);
    let t = r.transcript();
    assert!(t.contains("No device was set up"), "{t}");
    assert!(!t.contains(CONTINUE), "{t}");
    assert_eq!(status(&env, &alice)["enrolled"], Value::Bool(false));

    let mut login = Login::start(&svc, &alice, &["authenticate", "acct_mgmt"]);
    login.expect(CODE1);
    let shown = login.shown(APP_STEPS, 1);
    // The QR code (the same rendering as mfactl), the secret in groups, the URI.
    let secret = shown_secret(&shown);
    let uri = shown
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://"))
        .unwrap()
        .to_string();
    let qr = mfa_api::qr::render(&uri).unwrap();
    assert!(shown.contains(qr.trim_end()), "QR code not shown:\n{shown}");
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(shown.contains(&grouped.join(" ")), "{shown}");
    let codes = env.confirm_codes(&secret);
    login.answer(&codes[0]);
    login.expect(CODE2);
    login.answer(&codes[1]);
    login.expect(CONTINUE);
    let shown = login.shown(STORE, 1);
    let backup = shown_backup_codes(&shown);
    assert_eq!(backup.len(), 10, "{shown}");
    login.answer("");
    let r = login.finish();
    r.assert_result(PamResult::Success);
    assert!(
        r.output.stdout.contains("account management done"),
        "the account phase allows the enrolled login:\n{}",
        r.output
    );
    let s = status(&env, &alice);
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");
    assert_eq!(s["devices"][0]["kind"], "totp", "{s}");
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains("enrolled at login") && l.contains(&alice.name)),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret is never logged");

    // From now on a code is asked; a backup code shown at login works.
    let r = env.pamtester(&svc, &alice, &[&backup[0]]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
}

/// sudo passes PAM_SILENT: the enrollment is shown all the same (and the
/// flag does reach the module: the trusted device's notice, which it hides
/// under PAM_SILENT, is hidden).
#[test]
fn the_enrollment_is_shown_under_pam_silent() {
    let env = required_env(Env::builder().trusted_lifetime("30d"));
    let bob = env.add_user();
    let svc = service(&env);
    let from = ["rhost=10.9.8.7"];
    let silent = ["authenticate(PAM_SILENT)", "acct_mgmt"];
    let mut login = Login::start_from(&svc, &bob, &from, &silent);
    login.expect(CODE1);
    let shown = login.shown(APP_STEPS, 1);
    assert!(shown.contains("Scan this QR code"), "{shown}");
    let codes = env.confirm_codes(&shown_secret(&shown));
    login.answer(&codes[0]);
    login.expect(CODE2);
    login.answer(&codes[1]);
    login.expect(CONTINUE);
    let shown = login.shown(STORE, 1);
    assert_eq!(shown_backup_codes(&shown).len(), 10, "{shown}");
    login.answer("");
    login.finish().assert_result(PamResult::Success);
    assert_eq!(status(&env, &bob)["enrolled"], Value::Bool(true));

    // The enrolled login made 10.9.8.7 trusted (the account phase).
    const TRUSTED: &str = "This device is trusted";
    let r = Login::start_from(&svc, &bob, &from, &silent).finish();
    r.assert_result(PamResult::Success);
    assert!(!r.transcript().contains(TRUSTED), "{}", r.output);
    let r = Login::start_from(&svc, &bob, &from, &["authenticate"]).finish();
    r.assert_result(PamResult::Success);
    assert!(r.transcript().contains(TRUSTED), "{}", r.output);
}

/// With `[sms]`: the user chooses text messages, a number outside
/// `allowed_prefixes` is refused with the rule, Enter sends again, the code
/// from the gateway enrolls the phone.
#[test]
fn a_user_enrolls_a_phone_inside_the_login() {
    let env = required_env(
        Env::builder().sms(
            Sms::http()
                .allowed_prefixes(&["+372"])
                .max_sends_per_hour(20),
        ),
    );
    let carol = env.add_user();
    let svc = service(&env);
    let phone = random_phone();
    let mut login = Login::start(&svc, &carol, &["authenticate", "acct_mgmt"]);
    login.expect(CHOICE);
    login.answer("sms");
    login.expect(PHONE);
    login.answer("+4915112345678");
    let shown = login.expect(PHONE);
    assert!(shown.contains("allowed_prefixes"), "{shown}");
    login.answer(&phone);
    login.expect(SMS_CODE);
    login.shown(&format!("Code sent by SMS to {}.", mask_phone(&phone)), 1);
    let first = env.wait_for_sms(1);
    assert_eq!(first.to, phone);
    login.answer("");
    login.expect(SMS_CODE);
    login.shown(
        &format!("New code sent by SMS to {}.", mask_phone(&phone)),
        1,
    );
    let second = env.wait_for_sms(2);
    assert_eq!(second.to, phone);
    login.answer(&second.code());
    login.expect(CONTINUE);
    let shown = login.shown(STORE, 1);
    assert_eq!(shown_backup_codes(&shown).len(), 10, "{shown}");
    login.answer("");
    let r = login.finish();
    r.assert_result(PamResult::Success);
    assert!(
        r.output.stdout.contains("account management done"),
        "{}",
        r.output
    );
    let s = status(&env, &carol);
    assert_eq!(s["devices"][0]["kind"], "sms", "{s}");
    assert_eq!(s["devices"][0]["name"], phone.as_str(), "{s}");
}

/// A caller running as the user (a screen locker) never gets to enroll,
/// and `enroll_at_login = false` keeps the refusal of before.
#[test]
fn only_root_callers_enroll_and_only_when_on() {
    let env = required_env(Env::builder());
    let dan = env.add_user();
    let svc = service(&env);
    let r = env.pamtester_with(
        &svc,
        &dan,
        &[],
        &PamtesterOpts {
            as_user: Some(&dan),
            ..PamtesterOpts::default()
        },
    );
    r.assert_result(PamResult::AuthErr);
    let t = r.transcript();
    assert!(t.contains(ASK_ADMIN), "{t}");
    assert!(!t.contains(CODE1) && !t.contains("otpauth://"), "{t}");
    // Root gets `enroll`, for a name without an account too (a decoy).
    let nobody = format!("mfatghost{}", mfa_tests::random_letters(10));
    let real = env.call(None, &["login-begin", &dan.name]);
    let fake = env.call(None, &["login-begin", &nobody]);
    assert_eq!(real.ok()["action"], "enroll", "{real:?}");
    assert_eq!(fake.ok()["action"], "enroll", "{fake:?}");
    assert_eq!(real.ok()["message"], fake.ok()["message"]);
    // And through the module: the same prompts, messages (but for the
    // random secret) and results.
    let ghost = User {
        name: nobody.clone(),
        uid: 0,
        gid: 0,
    };
    let (ra, rb) = (
        env.pam_run(&svc, &dan, &["--acct"], &["1", "2"]),
        env.pam_run(&svc, &ghost, &["--acct"], &["1", "2"]),
    );
    let without_secrets = |r: &mfa_tests::pam::PamRun, name: &str| -> Vec<String> {
        r.messages()
            .iter()
            .filter(|m| {
                !m.contains("otpauth://") && !m.contains("QR code") && !m.contains("secret")
            })
            .map(|m| m.replace(name, "USER"))
            .collect()
    };
    assert_eq!(ra.prompts(), [CODE1, CODE2, CODE1]);
    assert_eq!(ra.prompts(), rb.prompts());
    assert_eq!(ra.message_styles(), rb.message_styles());
    assert_eq!(
        without_secrets(&ra, &dan.name),
        without_secrets(&rb, &nobody)
    );
    for call in ["authenticate", "acct_mgmt"] {
        assert_eq!(ra.round_rc(0, call), rb.round_rc(0, call), "{call}");
    }

    let env = required_env(Env::builder().policy_toml("enroll_at_login = false\n"));
    let erin = env.add_user();
    let svc = service(&env);
    let r = env.pamtester(&svc, &erin, &[]);
    r.assert_result(PamResult::AuthErr);
    let t = r.transcript();
    assert!(t.contains(ASK_ADMIN), "{t}");
    assert!(!t.contains(CODE1) && !t.contains("otpauth://"), "{t}");
    assert_eq!(status(&env, &erin)["enrolled"], Value::Bool(false));
}

/// Over sshd keyboard-interactive: the user enrolls inside their first SSH
/// login (several rounds: Code 1, Code 2, the last prompt with the backup
/// codes) and the command runs.
#[test]
fn a_user_enrolls_inside_their_first_ssh_login() {
    let env = required_env(Env::builder());
    let frank = env.add_login_user(None);
    let sshd = env.sshd(SshSetup::kbd_int(&env).account(&account_guard(&env)));
    let ssh = sshd.ssh_stepped(&frank, &SshOpts::default());
    let first = ssh.code_prompt(1, WAIT);
    assert!(first.ends_with(CODE1), "{first}");
    let codes = env.confirm_codes(&shown_secret(&first));
    ssh.answer(1, &codes[0]);
    let second = ssh.code_prompt(2, WAIT);
    assert!(second.ends_with(CODE2), "{second}");
    ssh.answer(2, &codes[1]);
    let r = ssh.finish();
    r.assert_logged_in();
    let last = r
        .prompts
        .iter()
        .find(|p| p.ends_with(CONTINUE))
        .unwrap_or_else(|| panic!("no last prompt: {r}"));
    assert_eq!(shown_backup_codes(last).len(), 10, "{last}");
    assert_eq!(status(&env, &frank)["enrolled"], Value::Bool(true));

    // The next login asks for a code.
    let code = Clock::now().code(&shown_secret(&first), 1);
    let r = sshd.ssh(
        &frank,
        &SshOpts {
            codes: vec![code],
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 1, "{r}");
}

/// The grace period comes first: logins without a code while it lasts,
/// then enrollment inside the login.
#[test]
fn grace_first_then_enrollment_at_login() {
    let env = required_env(Env::builder().policy_toml("grace_period = \"3s\"\n"));
    let gus = env.add_user();
    let svc = service(&env);
    // PAM_IGNORE in the grace period: pam_permit decides.
    let lenient = env.pam_service_raw(&format!(
        "auth required {}\nauth required pam_permit.so\naccount required pam_permit.so\n",
        env.pam_module_spec()
    ));
    let r = env.pamtester(&lenient, &gus, &[]);
    r.assert_result(PamResult::Success);
    let t = r.transcript();
    assert!(
        t.contains("mfactl enroll totp") && !t.contains(CODE1),
        "{t}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let mut login = Login::start(&svc, &gus, &["authenticate"]);
    login.expect(CODE1);
    let codes = env.confirm_codes(&shown_secret(&login.shown(APP_STEPS, 1)));
    login.answer(&codes[0]);
    login.expect(CODE2);
    login.answer(&codes[1]);
    login.expect(CONTINUE);
    login.answer("");
    login.finish().assert_result(PamResult::Success);
}
