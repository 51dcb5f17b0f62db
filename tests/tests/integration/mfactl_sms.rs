//! mfactl's SMS commands against the real mfad and a real gateway:
//! `enroll sms` (interactive and scripted), `phone set`, codes by SMS at
//! the current-code prompts of `remove` and `backup-codes`, phones in
//! `status` and `admin status`, and the errors.

use std::time::Duration;

use mfa_tests::codes::{is_digits, Clock};
use mfa_tests::mfactl::{json_str, parse_json};
use mfa_tests::proc::Interactive;
use mfa_tests::sms::EXAMPLE_PHONE;
use mfa_tests::{mask_phone, random_phone, wrong_code, Env, Output, Sms, User};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// An error as mfactl prints it: one line `mfactl: ...`, this exit code.
#[track_caller]
fn one_line_error(out: &Output, code: i32) {
    assert_eq!(out.code, Some(code), "{out}");
    assert!(out.stderr.starts_with("mfactl: "), "{out}");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout after an error:\n{out}"
    );
}

/// mfactl as `user` with `input` on stdin.
fn mfactl_in(env: &Env, user: &User, args: &[&str], input: &str) -> Output {
    env.mfactl_cmd(args).as_user(user).stdin(input).run()
}

/// An interactive mfactl as `user`.
fn spawn(env: &Env, user: &User, args: &[&str]) -> Interactive {
    env.mfactl_cmd(args)
        .as_user(user)
        .timeout(Duration::from_secs(60))
        .spawn_interactive()
}

/// The user's devices from `mfactl --json status` (as the user) or
/// `mfactl --json admin status USER` (as root).
fn devices(env: &Env, user: &User, admin: bool) -> Vec<Value> {
    let s = if admin {
        env.mfactl_json(None, &["admin", "status", &user.name])
    } else {
        env.mfactl_json(Some(user), &["status"])
    };
    s["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices: {s}"))
        .clone()
}

/// The one device of this kind; panics when there is not exactly one.
#[track_caller]
fn device_of(devices: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = devices.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} device: {devices:?}");
    found[0].clone()
}

/// The backup codes as `backup_codes_text` shows them: 8-digit codes on
/// the indented lines of the block.
fn shown_backup_codes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("    "))
        .flat_map(|l| l.split_whitespace())
        .filter(|w| is_digits(w, 8))
        .map(str::to_string)
        .collect()
}

fn string_array(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("not a string: {v}"))
                .to_string()
        })
        .collect()
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// A login by the user through mfa-call (as root): the result of the last
/// answer ("success", "retry", ...).
fn login(env: &Env, user: &User, answers: &[&str]) -> String {
    let mut args = vec!["login", user.name.as_str()];
    args.extend_from_slice(answers);
    let v = env.call(None, &args).ok().clone();
    v["answers"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|a| a["result"].as_str())
        .unwrap_or_else(|| panic!("no answers in {v}"))
        .to_string()
}

#[test]
fn interactive_enroll_sms_sends_again_on_enter() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(3))
        .start();
    let ann = env.add_user();
    let phone = random_phone();
    let masked = mask_phone(&phone);
    let mut run = spawn(&env, &ann, &["enroll", "sms", &phone]);
    run.wait_for("Code:", 1, WAIT);
    // A user with no device gives no current code.
    assert!(
        !run.transcript().contains("Current code"),
        "{}",
        run.transcript()
    );
    assert!(
        run.transcript()
            .contains(&format!("Code sent by SMS to {masked}.")),
        "{}",
        run.transcript()
    );
    let first = env.wait_for_sms(1);
    assert_eq!(first.to, phone);
    assert!(
        !run.transcript().contains(&phone),
        "the full number is shown"
    );

    // Enter: a new code; the gateway sees a second message.
    run.send_line("");
    run.wait_for("Code:", 2, WAIT);
    let second = env.wait_for_sms(2);
    assert_eq!(second.to, phone);
    assert!(
        run.transcript()
            .contains(&format!("New code sent by SMS to {masked}")),
        "{}",
        run.transcript()
    );
    run.send_line("");
    run.wait_for("Code:", 3, WAIT);
    let third = env.wait_for_sms(3);
    // The hourly limit (3) is used up: the refusal is shown, the prompt
    // comes back, nothing is sent.
    run.send_line("");
    run.wait_for("Code:", 4, WAIT);
    assert_eq!(env.sms_count(), 3, "a send beyond the limit went out");
    // What came between the third and the fourth prompt: the refusal.
    let shown = run.transcript();
    let between = shown.split("Code:").nth(3).unwrap_or_default();
    assert!(
        !between.trim().is_empty() && !between.contains("New code sent"),
        "the refusal is not shown:\n{shown}"
    );

    // A code never sent is wrong; the first code, sent two resends ago,
    // still works (the last three stay live).
    let sent = [first.code(), second.code(), third.code()];
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !sent.contains(c))
        .expect("a code never sent");
    run.send_line(&wrong);
    run.wait_for("Code:", 5, WAIT);
    assert!(
        run.transcript().to_lowercase().contains("wrong code"),
        "{}",
        run.transcript()
    );
    run.send_line(&first.code());
    let out = run.finish();
    out.assert_success();
    for code in [first.code(), second.code(), third.code()] {
        assert!(!out.all().contains(&code), "mfactl printed a code:\n{out}");
    }
    assert!(
        !out.all().contains(&phone),
        "the full number is shown:\n{out}"
    );

    let d = device_of(&devices(&env, &ann, false), "sms");
    let id = json_str(&d, "id");
    assert_eq!(d["name"], masked.as_str(), "{d}");
    assert!(
        out.stdout
            .contains(&format!("Your phone {masked} is enrolled as device {id}")),
        "{out}"
    );
    let backup = shown_backup_codes(&out.stdout);
    assert_eq!(backup.len(), 10, "expected 10 backup codes:\n{out}");
    // They are the real ones.
    assert_eq!(login(&env, &ann, &[&backup[4]]), "success");
}

#[test]
fn interactive_enroll_sms_with_an_app_asks_for_a_current_code() {
    let env = Env::builder().sms(Sms::http()).start();
    let bea = env.add_user();
    let app = env.enroll(&bea);
    let phone = random_phone();
    let mut run = spawn(&env, &bea, &["enroll", "sms", &phone]);
    run.wait_for("Current code (", 1, WAIT);
    // No phone yet: Enter cannot send one, and the prompt does not offer it.
    assert!(
        run.transcript()
            .contains("Current code (authenticator app or backup code): "),
        "{}",
        run.transcript()
    );
    assert!(!run.transcript().contains("press Enter"));
    run.send_line("");
    run.wait_for("Current code (", 2, WAIT);
    assert_eq!(env.sms_count(), 0, "nothing is sent before a current code");
    // A wrong one is said so and asked again.
    let w = wrong_code(&app.secret);
    run.send_line(&w);
    run.wait_for("Current code (", 3, WAIT);
    assert_eq!(env.sms_count(), 0);
    let code = Clock::now().code(&app.secret, 0);
    run.send_line(&code);
    run.wait_for("Code:", 1, WAIT);
    let sms = env.wait_for_sms(1);
    assert_eq!(sms.to, phone);
    run.send_line(&sms.code());
    let out = run.finish();
    out.assert_success();
    assert!(
        !out.all().contains(&code) && !out.all().contains(&w),
        "{out}"
    );
    assert!(shown_backup_codes(&out.stdout).is_empty(), "{out}");
    assert!(out.stdout.contains("backup codes are unchanged"), "{out}");
    let ds = devices(&env, &bea, false);
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert_eq!(device_of(&ds, "sms")["name"], mask_phone(&phone).as_str());
    device_of(&ds, "totp");
}

#[test]
fn scripted_enroll_sms_with_json() {
    let env = Env::builder().sms(Sms::file()).start();
    let cid = env.add_user();
    let phone = random_phone();
    let masked = mask_phone(&phone);

    let v = env.mfactl_json(Some(&cid), &["enroll", "sms", &phone, "--begin"]);
    assert_eq!(keys(&v), ["enrollment_id", "phone"], "{v}");
    assert_eq!(v["phone"], masked.as_str(), "{v}");
    let id = json_str(&v, "enrollment_id");
    let first = env.wait_for_sms(1);
    assert_eq!(first.to, phone);

    let v = env.mfactl_json(Some(&cid), &["enroll", "sms", "--resend", &id]);
    assert_eq!(v, serde_json::json!({ "phone": masked }));
    let second = env.wait_for_sms(2);
    assert_eq!(second.to, phone);

    // A code never sent is a one-line error without the code (the first
    // code stays live after the resend: sms_gateway.rs tests that).
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| *c != first.code() && *c != second.code())
        .expect("a code never sent");
    let out = env.mfactl_as(&cid, &["--json", "enroll", "sms", "--confirm", &id, &wrong]);
    one_line_error(&out, 1);
    assert!(!out.stderr.contains(&wrong), "{out}");
    // Not enrolled until confirmed.
    assert!(devices(&env, &cid, false).is_empty());

    // The code on stdin.
    let out = mfactl_in(
        &env,
        &cid,
        &["--json", "enroll", "sms", "--confirm", &id],
        &format!("{}\n", second.code()),
    );
    out.assert_success();
    let v = parse_json(&out);
    assert_eq!(keys(&v), ["backup_codes", "device_id"], "{v}");
    let backup = string_array(&v["backup_codes"]);
    assert_eq!(backup.len(), 10, "{v}");
    assert!(backup.iter().all(|c| is_digits(c, 8)), "{v}");
    let d = device_of(&devices(&env, &cid, false), "sms");
    assert_eq!(d["id"], v["device_id"], "{d}");
    assert_eq!(d["name"], masked.as_str(), "{d}");
}

#[test]
fn scripted_enroll_sms_plain_with_a_current_code_on_stdin() {
    let env = Env::builder().sms(Sms::http()).start();
    let dov = env.add_user();
    let app = env.enroll(&dov);
    let phone = random_phone();
    let masked = mask_phone(&phone);

    // A user with a device must give a current code; never from argv.
    let out = env.mfactl_as(&dov, &["enroll", "sms", &phone, "--begin"]);
    one_line_error(&out, 2);
    let w = wrong_code(&app.secret);
    let out = mfactl_in(
        &env,
        &dov,
        &["enroll", "sms", &phone, "--begin"],
        &format!("{w}\n"),
    );
    one_line_error(&out, 1);
    assert!(!out.stderr.contains(&w), "{out}");
    assert_eq!(env.sms_count(), 0, "a code was sent without a current code");

    let code = Clock::now().code(&app.secret, 0);
    let out = mfactl_in(
        &env,
        &dov,
        &["enroll", "sms", &phone, "--begin"],
        &format!("{code}\n"),
    );
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("Code sent by SMS to {masked}.")),
        "{out}"
    );
    assert!(
        !out.all().contains(&code) && !out.all().contains(&phone),
        "{out}"
    );
    let id = out
        .stdout
        .split_once("Enrollment ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no enrollment id shown:\n{out}"))
        .to_string();
    assert!(
        out.stdout
            .contains(&format!("mfactl enroll sms --confirm {id}")),
        "{out}"
    );
    env.wait_for_sms(1);

    let out = env.mfactl_as(&dov, &["enroll", "sms", "--resend", &id]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("New code sent by SMS to {masked}; the ones sent before still work.\n")
    );
    let sms = env.wait_for_sms(2);

    let out = env.mfactl_as(&dov, &["enroll", "sms", "--confirm", &id, &sms.code()]);
    out.assert_success();
    let d = device_of(&devices(&env, &dov, false), "sms");
    let device_id = json_str(&d, "id");
    assert!(
        out.stdout
            .starts_with(&format!("Phone enrolled as device {device_id}")),
        "{out}"
    );
    // Backup codes come with the first device only: the app's still work.
    assert!(shown_backup_codes(&out.stdout).is_empty(), "{out}");
    assert!(out.stdout.contains("backup codes are unchanged"), "{out}");
    assert_eq!(login(&env, &dov, &[&app.backup_codes[5]]), "success");
}

#[test]
fn phone_set_changes_the_number_after_a_code_by_sms() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .start();
    let eli = env.add_user();
    let old = random_phone();
    let new = random_phone();
    let enrolled = env.enroll_sms(&eli, &old);
    let mut n = env.sms_count();

    let mut run = spawn(&env, &eli, &["phone", "set", &new]);
    run.wait_for("Current code (", 1, WAIT);
    assert!(
        run.transcript().contains("press Enter to get one by SMS"),
        "{}",
        run.transcript()
    );
    // Enter: a code to the enrolled number, then the same prompt.
    run.send_line("");
    run.wait_for("Current code (", 2, WAIT);
    n += 1;
    let current = env.wait_for_sms(n);
    assert_eq!(current.to, old);
    assert!(
        run.transcript()
            .contains(&format!("Code sent by SMS to {}.", mask_phone(&old))),
        "{}",
        run.transcript()
    );
    run.send_line(&current.code());
    run.wait_for("Code:", 1, WAIT);
    n += 1;
    let verify = env.wait_for_sms(n);
    assert_eq!(verify.to, new);
    assert!(
        run.transcript()
            .contains(&format!("Code sent by SMS to {}.", mask_phone(&new))),
        "{}",
        run.transcript()
    );

    // Until the new number is confirmed, the old one is the number, and
    // its codes log in.
    assert_eq!(
        device_of(&devices(&env, &eli, true), "sms")["name"],
        old.as_str()
    );
    let begin = env.call(None, &["login-begin", &eli.name]).ok().clone();
    assert_eq!(begin["action"], "challenge", "{begin}");
    n += 1;
    let login_sms = env.wait_for_sms(n);
    assert_eq!(login_sms.to, old);
    let answer = env
        .call(
            None,
            &[
                "answer",
                json_str(&begin, "attempt").as_str(),
                &login_sms.code(),
            ],
        )
        .ok()
        .clone();
    assert_eq!(answer["result"], "success", "{answer}");

    run.send_line(&verify.code());
    let out = run.finish();
    out.assert_success();
    assert!(
        out.stdout
            .contains(&format!("Your number is now {}", mask_phone(&new))),
        "{out}"
    );
    // A change of number makes no backup codes.
    assert!(shown_backup_codes(&out.stdout).is_empty(), "{out}");
    assert!(
        !out.all().contains(&new) && !out.all().contains(&old),
        "{out}"
    );

    let d = device_of(&devices(&env, &eli, true), "sms");
    assert_eq!(d["id"], enrolled.device_id.as_str(), "same device: {d}");
    assert_eq!(d["name"], new.as_str(), "{d}");
    let d = device_of(&devices(&env, &eli, false), "sms");
    assert_eq!(d["name"], mask_phone(&new).as_str(), "{d}");
    // Codes go to the new number now.
    let v = env.call(Some(&eli), &["send-code", ""]).ok().clone();
    assert_eq!(v["phone"], mask_phone(&new).as_str(), "{v}");
    assert_eq!(env.wait_for_sms(n + 1).to, new);
}

#[test]
fn phone_set_without_a_phone_points_to_enroll_sms() {
    let env = Env::builder().sms(Sms::http()).start();
    let fay = env.add_user();
    let gil = env.add_user();
    env.enroll(&gil);
    for u in [&fay, &gil] {
        let out = env.mfactl_as(u, &["phone", "set", EXAMPLE_PHONE]);
        one_line_error(&out, 1);
        assert!(out.stderr.contains("mfactl enroll sms"), "{out}");
    }
    assert_eq!(env.sms_count(), 0);
}

#[test]
fn remove_and_backup_codes_take_a_code_by_sms_on_enter() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .start();
    let hal = env.add_user();
    let phone = random_phone();
    let (app, sms) = env.enroll_app_and_sms(&hal, &phone);
    let mut n = env.sms_count();

    let mut run = spawn(&env, &hal, &["backup-codes"]);
    run.wait_for("Current code (", 1, WAIT);
    assert!(
        run.transcript().contains(
            "Current code (authenticator app or backup code; press Enter to get one by SMS): "
        ),
        "{}",
        run.transcript()
    );
    run.send_line("");
    run.wait_for("Current code (", 2, WAIT);
    n += 1;
    let code = env.wait_for_sms(n);
    assert_eq!(code.to, phone);
    run.send_line(&code.code());
    let out = run.finish();
    out.assert_success();
    let fresh = shown_backup_codes(&out.stdout);
    assert_eq!(fresh.len(), 10, "{out}");
    assert!(fresh.iter().all(|c| !app.backup_codes.contains(c)), "{out}");

    let mut run = spawn(&env, &hal, &["remove", &sms.device_id]);
    run.wait_for("Current code (", 1, WAIT);
    run.send_line("");
    run.wait_for("Current code (", 2, WAIT);
    n += 1;
    let code = env.wait_for_sms(n);
    run.send_line(&code.code());
    let out = run.finish();
    out.assert_success();
    assert!(
        out.stdout
            .ends_with(&format!("Removed device {}.\n", sms.device_id)),
        "{out}"
    );
    let ds = devices(&env, &hal, false);
    assert_eq!(ds.len(), 1, "{ds:?}");
    device_of(&ds, "totp");

    // Without a phone the prompt offers no SMS; end of input is an error.
    let out = env.mfactl_as(&hal, &["remove", &app.device_id]);
    assert!(
        out.stdout
            .contains("Current code (authenticator app or backup code): "),
        "{out}"
    );
    assert!(!out.stdout.contains("press Enter"), "{out}");
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(env.sms_count(), n);
}

#[test]
fn an_sms_only_user_removes_the_phone_with_a_code_by_sms() {
    let env = Env::builder().sms(Sms::http()).start();
    let ida = env.add_user();
    let phone = random_phone();
    let sms = env.enroll_sms(&ida, &phone);
    let n = env.sms_count();
    let mut run = spawn(&env, &ida, &["--json", "remove", &sms.device_id]);
    run.wait_for("Current code (", 1, WAIT);
    let shown = run.transcript();
    assert!(shown.contains("press Enter to get one by SMS"), "{shown}");
    assert!(!shown.contains("authenticator app"), "{shown}");
    run.send_line("");
    run.wait_for("Current code (", 2, WAIT);
    let code = env.wait_for_sms(n + 1).code();
    run.send_line(&code);
    let out = run.finish();
    out.assert_success();
    // With --json, prompts go to stderr and stdout holds the document.
    assert_eq!(parse_json(&out), serde_json::json!({"ok": true}), "{out}");
    assert!(devices(&env, &ida, false).is_empty());
}

#[test]
fn status_masks_the_number_and_admin_status_shows_it() {
    let env = Env::builder().sms(Sms::http()).start();
    let jo = env.add_user();
    let phone = random_phone();
    let masked = mask_phone(&phone);
    let (app, sms) = env.enroll_app_and_sms(&jo, &phone);

    let out = env.mfactl_as(&jo, &["status"]);
    out.assert_success();
    assert!(!out.stdout.contains(&phone), "{out}");
    let row = |text: &str, id: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(out.stdout.contains("NAME / NUMBER"), "{out}");
    let r = row(&out.stdout, &sms.device_id);
    assert_eq!(r[1..3], ["sms".to_string(), masked.clone()], "{out}");
    let r = row(&out.stdout, &app.device_id);
    assert_eq!(r[1], "totp", "{out}");
    // The columns line up: the number starts where the header's name does.
    let header = out
        .stdout
        .lines()
        .find(|l| l.contains("NAME / NUMBER"))
        .expect("header");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&masked))
        .expect("phone row");
    assert_eq!(header.find("NAME"), line.find(&masked), "{out}");

    let out = env.mfactl(&["admin", "status", &jo.name]);
    out.assert_success();
    let r = row(&out.stdout, &sms.device_id);
    assert_eq!(r[1..3], ["sms".to_string(), phone.clone()], "{out}");

    let d = device_of(&devices(&env, &jo, false), "sms");
    assert_eq!(d["name"], masked.as_str());
    let d = device_of(&devices(&env, &jo, true), "sms");
    assert_eq!(d["name"], phone.as_str());
}

#[test]
fn errors_are_one_line() {
    // SMS not configured: the daemon's Unavailable, as one line.
    let env = Env::new();
    let kai = env.add_user();
    for args in [
        vec!["enroll", "sms", EXAMPLE_PHONE],
        vec!["--json", "enroll", "sms", EXAMPLE_PHONE, "--begin"],
    ] {
        let out = env.mfactl_as(&kai, &args);
        one_line_error(&out, 1);
        assert!(out.stderr.contains("SMS is not configured"), "{out}");
    }
    drop(env);

    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(2))
        .start();
    let lea = env.add_user();
    // A number not in E.164: the daemon's message with the example.
    for bad in ["37255512345", "+372 abc", "+"] {
        let out = env.mfactl_as(&lea, &["enroll", "sms", bad, "--begin"]);
        one_line_error(&out, 1);
        assert!(out.stderr.contains(EXAMPLE_PHONE), "{out}");
    }
    // Usage errors stay clap's, exit 2.
    for args in [
        vec!["enroll", "sms"],
        vec!["enroll", "sms", "--begin"],
        vec!["enroll", "sms", "--confirm"],
        vec!["enroll", "sms", "--resend"],
        vec!["enroll", "sms", EXAMPLE_PHONE, "--resend", "x"],
        vec!["phone", "set"],
        vec!["phone"],
    ] {
        let out = env.mfactl_as(&lea, &args);
        assert_eq!(out.code, Some(2), "{out}");
    }
    // --confirm without a code anywhere.
    one_line_error(
        &env.mfactl_as(&lea, &["enroll", "sms", "--confirm", "x"]),
        2,
    );
    // No such enrollment.
    one_line_error(
        &env.mfactl_as(&lea, &["enroll", "sms", "--confirm", "nosuch", "123456"]),
        1,
    );
    one_line_error(
        &env.mfactl_as(&lea, &["enroll", "sms", "--resend", "nosuch"]),
        1,
    );
    assert_eq!(env.sms_count(), 0);

    // The gateway fails: Unavailable, one line.
    env.sms_gateway().respond(503, "{\"message\":\"down\"}");
    let phone = random_phone();
    let out = env.mfactl_as(&lea, &["enroll", "sms", &phone, "--begin"]);
    one_line_error(&out, 1);
    assert!(
        out.stderr.to_lowercase().contains("could not send"),
        "{out}"
    );
    env.sms_gateway().reset();

    // The hourly limit (2): the second resend is refused, one line.
    let mo = env.add_user();
    let before = env.sms_count();
    let v = env.mfactl_json(Some(&mo), &["enroll", "sms", &phone, "--begin"]);
    let id = json_str(&v, "enrollment_id");
    env.mfactl_as(&mo, &["enroll", "sms", "--resend", &id])
        .assert_success();
    let out = env.mfactl_as(&mo, &["enroll", "sms", "--resend", &id]);
    one_line_error(&out, 1);
    assert_eq!(
        env.sms_count(),
        before + 2,
        "a send beyond the limit went out"
    );
}
