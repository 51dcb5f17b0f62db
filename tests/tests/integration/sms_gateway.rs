//! The SMS gateways through the real mfad: the HTTP gateway (a real server
//! on 127.0.0.1), the command backend (a script recording its argv) and the
//! file backend; config checks; phone number validation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use mfa_tests::codes::{is_digits, unix_now};
use mfa_tests::mfactl::json_str;
use mfa_tests::sms::{
    code_in, cooldown_wait, find_code, form_decode, holds_code, EXAMPLE_PHONE, GATEWAY_PATH,
    SMS_WAIT,
};
use mfa_tests::{random_phone, CallResult, Cmd, Env, Output, Sms, SmsCommand, SmsGateway, User};

/// The harness's gateway is a real HTTP server: it reads a raw request,
/// decodes the form and basic auth, and answers as told.
#[test]
fn harness_gateway_records_and_answers() {
    let gw = SmsGateway::start();
    gw.respond(503, "{\"down\":true}");
    let body = "To=%2B37255512345&From=M+F&Body=a%26b%3Dc+123456";
    let mut s = TcpStream::connect(gw.addr()).expect("connect");
    write!(
        s,
        "POST /x?y=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dTpwOnc=\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 503 "), "{resp}");
    assert!(resp.ends_with("{\"down\":true}"), "{resp}");
    let r = gw.wait_for_requests(1, Duration::from_secs(5)).remove(0);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/x?y=1");
    assert_eq!(r.field_names(), ["To", "From", "Body"]);
    assert_eq!(r.field("To"), Some("+37255512345"));
    assert_eq!(r.field("From"), Some("M F"));
    assert_eq!(r.field("Body"), Some("a&b=c 123456"));
    assert_eq!(r.basic_auth(), Some(("u".into(), "p:w".into())));
    assert_eq!(gw.last_code(), "123456");
    assert_eq!(
        form_decode(b"a=&b&c=%zz"),
        [("a", ""), ("b", ""), ("c", "%zz")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(
        find_code("+37255512345 code 012345."),
        Some("012345".into())
    );
    assert_eq!(find_code("1234567 12345"), None);
    assert_eq!(find_code("111111 222222"), None);
}

/// The harness's command script records any argument exactly, one record
/// per run, and exits as told.
#[test]
fn harness_command_records_argv_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = SmsCommand::new(dir.path());
    let args = ["", "a b", "x\ny", "$(id)", "'\"", "-n", "\\0"];
    Cmd::new(c.path()).args(args).run().assert_success();
    c.set_exit(7);
    let out = Cmd::new(c.path()).run();
    assert_eq!(out.code, Some(7), "{out}");
    c.set_exit(0);
    c.set_delay(Duration::from_millis(300));
    let out = Cmd::new(c.path()).arg("z").run();
    out.assert_success();
    assert!(out.elapsed >= Duration::from_millis(300), "{out}");
    let calls = c.calls();
    assert_eq!(calls.len(), 3);
    let p = c.path().display().to_string();
    let mut want = vec![p.clone()];
    want.extend(args.iter().map(|s| s.to_string()));
    assert_eq!(calls[0], want);
    assert_eq!(calls[1], vec![p.clone()]);
    assert_eq!(calls[2], vec![p, "z".to_string()]);
}

// ---------------------------------------------------------------------------
// Through the real mfad

/// `{host}`: `[daemon] issuer`, else the machine's host name
/// (docs/configuration.md).
fn host(env: &Env) -> String {
    if env.config().issuer.is_empty() {
        nix::unistd::gethostname()
            .expect("gethostname")
            .into_string()
            .expect("UTF-8 host name")
    } else {
        env.config().issuer.clone()
    }
}

/// EnrollSmsBegin as `user` for their first phone.
fn begin(env: &Env, user: &User, phone: &str) -> CallResult {
    env.call(Some(user), &["enroll-sms-begin", "", phone, ""])
}

/// Panics if `code` appears in the daemon's log as a number of its own.
#[track_caller]
fn assert_log_lacks(env: &Env, code: &str) {
    let log = env.daemon_log();
    assert!(!holds_code(&log, code), "mfad logged a code:\n{log}");
}

/// A one-line error message.
#[track_caller]
fn one_line(msg: &str) {
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "not a one-line message: {msg:?}"
    );
}

const GATEWAY_FAILED: &str = "Could not send the code by SMS; try again later.";
const NOT_CONFIGURED: &str = "SMS is not configured on this host; ask the administrator.";

fn sorted(v: Vec<&str>) -> Vec<&str> {
    let mut v = v;
    v.sort_unstable();
    v
}

/// The default form: To, From and Body, the Body from the default message
/// template ({host} is the host name when no issuer is set); the confirmed
/// phone is a device of kind sms, masked for the user and in full for the
/// admin.
#[test]
fn http_posts_the_default_form() {
    let env = Env::builder()
        .issuer("")
        .sms(Sms::http().sender("MFA-Test"))
        .start();
    let alice = env.add_user();
    let v = begin(&env, &alice, EXAMPLE_PHONE).ok().clone();
    assert_eq!(v["phone"], "+372*****345", "{v}");
    let reqs = env.sms_gateway().wait_for_requests(1, SMS_WAIT);
    assert_eq!(reqs.len(), 1, "one request per code: {reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, GATEWAY_PATH);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        "{r:?}"
    );
    assert_eq!(sorted(r.field_names()), ["Body", "From", "To"], "{r:?}");
    assert_eq!(r.field("To"), Some(EXAMPLE_PHONE));
    assert_eq!(r.field("From"), Some("MFA-Test"));
    let code = r.code();
    assert!(is_digits(&code, 6), "{code}");
    assert_eq!(
        r.field("Body"),
        Some(format!("Your verification code for {} is {code}", host(&env)).as_str())
    );
    assert_eq!(
        r.header("authorization"),
        None,
        "no credentials are configured"
    );

    let id = json_str(&v, "enrollment_id");
    let done = env
        .call(Some(&alice), &["enroll-sms-confirm", "", &id, &code])
        .ok()
        .clone();
    let device_id = json_str(&done, "device_id");
    let s = env.call(Some(&alice), &["status", ""]).ok().clone();
    assert_eq!(s["devices"][0]["id"], device_id.as_str(), "{s}");
    assert_eq!(s["devices"][0]["kind"], "sms", "{s}");
    assert_eq!(s["devices"][0]["name"], "+372*****345", "{s}");
    let s = env.call(None, &["admin-status", &alice.name]).ok().clone();
    assert_eq!(s["devices"][0]["name"], EXAMPLE_PHONE, "{s}");
    assert_log_lacks(&env, &code);
}

/// Custom fields and template: every placeholder lands where configured,
/// in form values as in the message ({host} is the issuer, "mfa-test").
#[test]
fn http_posts_the_configured_form_and_message() {
    let env = Env::builder()
        .sms(
            Sms::http()
                .sender("Acme")
                .message("{user}@{host}: your code is {code}.")
                .form(&[
                    ("to_number", "{phone}"),
                    ("text", "{message}"),
                    ("ref", "{user}:{host}:{code}"),
                    ("from", "{sender}"),
                    ("channel", "sms"),
                ]),
        )
        .start();
    let bob = env.add_user();
    let phone = random_phone();
    begin(&env, &bob, &phone).ok();
    let r = env.sms_gateway().wait_for_requests(1, SMS_WAIT).remove(0);
    assert_eq!(
        sorted(r.field_names()),
        ["channel", "from", "ref", "text", "to_number"],
        "{r:?}"
    );
    let text = r.field("text").expect("text").to_string();
    let code = code_in(&text);
    assert_eq!(text, format!("{}@mfa-test: your code is {code}.", bob.name));
    assert_eq!(r.field("to_number"), Some(phone.as_str()));
    assert_eq!(
        r.field("ref"),
        Some(format!("{}:mfa-test:{code}", bob.name).as_str())
    );
    assert_eq!(r.field("from"), Some("Acme"));
    assert_eq!(r.field("channel"), Some("sms"));
}

/// username and the first line of password_file make HTTP basic auth; the
/// password never reaches the log.
#[test]
fn http_basic_auth_from_username_and_password_file() {
    let password = "s3cr:et p@ss/wörd";
    let env = Env::builder()
        .sms(
            Sms::http()
                .username("ACmfatest")
                .password_file_contents(&format!("{password}\nsecond line\n"), 0o600),
        )
        .start();
    let carol = env.add_user();
    begin(&env, &carol, EXAMPLE_PHONE).ok();
    let r = env.sms_gateway().wait_for_requests(1, SMS_WAIT).remove(0);
    assert_eq!(
        r.basic_auth(),
        Some(("ACmfatest".to_string(), password.to_string())),
        "Authorization: {:?}",
        r.header("authorization")
    );
    assert!(
        !env.daemon_log().contains("s3cr:et"),
        "{}",
        env.daemon_log()
    );
}

/// Values are form-encoded: a sender or message with `&`, `=`, `"` or a
/// newline adds no field; `{{`/`}}` are literal braces; substitution is
/// one pass (a `{phone}` that comes out of the message stays as it is).
#[test]
fn http_placeholders_cannot_add_fields() {
    let sender = "Evil&To=+15550000000&Body=x\"y\nZ=1";
    let env = Env::builder()
        .sms(
            Sms::http()
                .sender(sender)
                .message("Code {code} & Body=oops&To=+1999 \"{{user}}\" {{phone}} 50%\nline two")
                .form(&[
                    ("To", "{phone}"),
                    ("From", "{sender}"),
                    ("Body", "{message}"),
                    ("Note", "{{sender}} is {sender}"),
                ]),
        )
        .start();
    let dan = env.add_user();
    begin(&env, &dan, EXAMPLE_PHONE).ok();
    let r = env.sms_gateway().wait_for_requests(1, SMS_WAIT).remove(0);
    assert_eq!(
        sorted(r.field_names()),
        ["Body", "From", "Note", "To"],
        "a value added a field: {}",
        r.body_text()
    );
    assert_eq!(r.field("To"), Some(EXAMPLE_PHONE));
    assert_eq!(r.field("From"), Some(sender));
    let code = r.code();
    assert_eq!(
        r.field("Body"),
        Some(
            format!("Code {code} & Body=oops&To=+1999 \"{{user}}\" {{phone}} 50%\nline two")
                .as_str()
        )
    );
    assert_eq!(
        r.field("Note"),
        Some(format!("{{sender}} is {sender}").as_str())
    );
}

/// Any non-2xx answer: the caller gets Unavailable with one line, the log
/// has the gateway's status but never the code. The gateway coming back
/// works at once.
#[test]
fn http_error_answers_are_unavailable_and_logged_without_the_code() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(20))
        .start();
    let gw = env.sms_gateway();
    let erin = env.add_user();
    for (i, (status, body)) in [
        (503, r#"{"message":"Service Unavailable"}"#),
        (401, r#"{"code":20003,"message":"Authenticate"}"#),
        (
            400,
            r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        gw.respond(status, body);
        let r = begin(&env, &erin, EXAMPLE_PHONE);
        let msg = r.assert_error("Unavailable");
        assert_eq!(msg, GATEWAY_FAILED);
        let reqs = gw.wait_for_requests(i + 1, SMS_WAIT);
        assert_eq!(reqs.len(), i + 1, "no retries behind the caller's back");
        let code = reqs[i].code();
        assert!(!msg.contains(&code));
        let log = env.daemon_log();
        assert!(
            log.contains(&status.to_string()),
            "the log must name the gateway's status {status}:\n{log}"
        );
        assert_log_lacks(&env, &code);
    }
    gw.reset();
    let v = begin(&env, &erin, EXAMPLE_PHONE).ok().clone();
    let code = gw.last_code();
    env.call(
        Some(&erin),
        &[
            "enroll-sms-confirm",
            "",
            &json_str(&v, "enrollment_id"),
            &code,
        ],
    )
    .ok();
}

/// A gateway slower than the timeout: Unavailable after about the timeout,
/// and mfad answers other calls while it waits.
#[test]
fn http_timeout_is_unavailable_and_the_daemon_stays_responsive() {
    // Not 4 s: that is how long a login waits, enrollment waits the
    // configured timeout.
    let env = Env::builder().sms(Sms::http().timeout("3s")).start();
    let gw = env.sms_gateway();
    let (fay, gus) = (env.add_user(), env.add_user());
    env.enroll_raw(&gus);
    gw.delay(Duration::from_secs(60));
    let start = Instant::now();
    let result = thread::scope(|s| {
        let pending = s.spawn(|| begin(&env, &fay, EXAMPLE_PHONE));
        gw.wait_for_requests(1, SMS_WAIT);
        // While mfad waits for the gateway: the Account, Admin and Login
        // interfaces answer, for other users and for root.
        let t = Instant::now();
        env.call(Some(&gus), &["status", ""]).ok();
        env.call(None, &["admin-list"]).ok();
        let v = env.call(None, &["login-begin", &gus.name]).ok().clone();
        assert_eq!(v["action"], "challenge", "{v}");
        assert!(
            !pending.is_finished(),
            "the send ended before the other calls were answered ({:?}): the test proves nothing",
            t.elapsed()
        );
        pending.join().expect("the call thread")
    });
    let took = start.elapsed();
    assert_eq!(result.assert_error("Unavailable"), GATEWAY_FAILED);
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "the 3 s timeout took {took:?}"
    );
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains(&fay.name)
                && (l.contains("3s") || l.to_lowercase().contains("time"))),
        "the log must say the gateway did not answer in time, naming the user:\n{log}"
    );
    assert_log_lacks(&env, &gw.last_code());
    // Answering at once again: the next send works.
    gw.reset();
    begin(&env, &fay, EXAMPLE_PHONE).ok();
}

/// argv as configured, no shell: the phone and the message are one
/// argument each whatever they hold.
#[test]
fn command_gets_the_configured_argv_without_a_shell() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let canary = scratch.path().join("pwned");
    let message = format!(
        "Code {{code}}; $(touch {c}) `touch {c}` \"double\" 'single' & | > * {{user}}\nend",
        c = canary.display()
    );
    let env = Env::builder()
        .sms(Sms::command().sender("My Shop").message(&message).args(&[
            "TEXT",
            "{phone}",
            "-text",
            "{message}",
            "--from={sender}",
        ]))
        .start();
    let hal = env.add_user();
    let phone = random_phone();
    let v = begin(&env, &hal, &phone).ok().clone();
    let cmd = env.sms_command();
    let argv = cmd.wait_for_calls(1, SMS_WAIT).remove(0);
    let code = cmd.last_code();
    let text = format!(
        "Code {code}; $(touch {c}) `touch {c}` \"double\" 'single' & | > * {}\nend",
        hal.name,
        c = canary.display()
    );
    assert_eq!(
        argv,
        [
            cmd.path().display().to_string(),
            "TEXT".into(),
            phone.clone(),
            "-text".into(),
            text,
            "--from=My Shop".into(),
        ]
    );
    assert!(!canary.exists(), "a shell ran the message");
    assert_eq!(cmd.count(), 1);
    env.call(
        Some(&hal),
        &[
            "enroll-sms-confirm",
            "",
            &json_str(&v, "enrollment_id"),
            &code,
        ],
    )
    .ok();
}

/// A command that exits non-zero, or outlives its timeout: Unavailable,
/// without the code in the log.
#[test]
fn command_failure_and_timeout_are_unavailable() {
    let env = Env::builder()
        .sms(Sms::command().timeout("2s").max_sends_per_hour(20))
        .start();
    let cmd = env.sms_command();
    let ivy = env.add_user();
    cmd.set_exit(3);
    let msg = begin(&env, &ivy, EXAMPLE_PHONE)
        .assert_error("Unavailable")
        .to_string();
    assert_eq!(msg, GATEWAY_FAILED);
    assert_eq!(cmd.count(), 1);
    assert_log_lacks(&env, &cmd.last_code());

    cmd.set_exit(0);
    cmd.set_delay(Duration::from_secs(30));
    let start = Instant::now();
    let r = begin(&env, &ivy, EXAMPLE_PHONE);
    let took = start.elapsed();
    assert_eq!(r.assert_error("Unavailable"), GATEWAY_FAILED);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(12),
        "the 2 s command timeout took {took:?}"
    );
    assert_eq!(cmd.count(), 2);
    assert_log_lacks(&env, &cmd.last_code());

    cmd.set_delay(Duration::ZERO);
    begin(&env, &ivy, EXAMPLE_PHONE).ok();
    assert_eq!(cmd.count(), 3);
}

/// One JSON object per line, whatever the message holds; the file is 0600;
/// a resend appends a line with a new code, and the first code still works.
#[test]
fn file_backend_writes_one_json_object_per_line() {
    let env = Env::builder()
        .sms(Sms::file().message("Say \"hi\"\nyour code: {code}\t{{end}} \\ done"))
        .start();
    let jo = env.add_user();
    let t0 = unix_now();
    let v = begin(&env, &jo, EXAMPLE_PHONE).ok().clone();
    let id = json_str(&v, "enrollment_id");
    let r = env
        .call(Some(&jo), &["enroll-sms-resend", "", &id])
        .ok()
        .clone();
    assert_eq!(r["phone"], "+372*****345", "{r}");
    let outbox = env.sms_outbox();
    let msgs = outbox.wait_for_messages(2, SMS_WAIT);
    assert_eq!(outbox.text().lines().count(), 2, "{}", outbox.text());
    let mut codes = Vec::new();
    for m in &msgs {
        let mut keys: Vec<&str> = m
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["from", "message", "time", "to"], "{m}");
        assert_eq!(m["to"], EXAMPLE_PHONE, "{m}");
        assert_eq!(m["from"], "MFA", "the default sender: {m}");
        let t = m["time"].as_u64().unwrap_or_else(|| panic!("time: {m}"));
        assert!(t + 5 >= t0 && t <= unix_now() + 5, "{m}");
        let code = code_in(m["message"].as_str().expect("message"));
        assert_eq!(
            m["message"],
            format!("Say \"hi\"\nyour code: {code}\t{{end}} \\ done"),
            "{m}"
        );
        codes.push(code);
    }
    let mode = std::fs::metadata(outbox.path())
        .expect("outbox")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the outbox holds codes: root only");

    env.call(Some(&jo), &["enroll-sms-confirm", "", &id, &codes[0]])
        .ok();
    assert_eq!(outbox.count(), 2);
}

/// Anything but E.164 is InvalidArgument naming the example, and no SMS
/// goes out; for root acting on a user too.
#[test]
fn bad_phone_numbers_are_refused_with_the_example() {
    let env = Env::builder().sms(Sms::http()).start();
    let kim = env.add_user();
    for bad in [
        "0555",
        "+0123",
        "+0123456789",
        "+1 555 1234",
        "+1-555-0100",
        "+1555abc0100",
        "phone",
        "+3725551234567890",
        "",
        "+",
        "++37255512345",
        "37255512345",
    ] {
        for r in [
            begin(&env, &kim, bad),
            env.call(None, &["enroll-sms-begin", &kim.name, bad, ""]),
        ] {
            let msg = r.assert_error("InvalidArgument");
            one_line(msg);
            assert!(
                msg.contains(EXAMPLE_PHONE),
                "{bad:?}: the message must show {EXAMPLE_PHONE}: {msg}"
            );
        }
    }
    assert_eq!(env.sms_gateway().count(), 0, "an SMS went to a bad number");
    let s = env.call(None, &["admin-status", &kim.name]).ok().clone();
    assert_eq!(s["enrolled"], false, "{s}");
}

/// Without [sms]: Unavailable with the admin hint, for enrollment and
/// SendCode.
#[test]
fn without_sms_config_the_calls_are_unavailable() {
    let env = Env::new();
    let lou = env.add_user();
    let msg = begin(&env, &lou, EXAMPLE_PHONE)
        .assert_error("Unavailable")
        .to_string();
    assert_eq!(msg, NOT_CONFIGURED);
    env.enroll_raw(&lou);
    let msg = env
        .call(Some(&lou), &["send-code", ""])
        .assert_error("Unavailable")
        .to_string();
    assert_eq!(msg, NOT_CONFIGURED);
}

/// max_sends_per_hour counts every send of the user: the next one is
/// RateLimited and reaches no gateway; other users are not affected.
#[test]
fn sends_beyond_the_hourly_limit_are_rate_limited() {
    let env = Env::builder()
        .sms(Sms::http().max_sends_per_hour(2))
        .start();
    let gw = env.sms_gateway();
    let (mo, ned) = (env.add_user(), env.add_user());
    let v = begin(&env, &mo, EXAMPLE_PHONE).ok().clone();
    let id = json_str(&v, "enrollment_id");
    env.call(Some(&mo), &["enroll-sms-resend", "", &id]).ok();
    assert_eq!(gw.count(), 2);
    let msg = env
        .call(Some(&mo), &["enroll-sms-resend", "", &id])
        .assert_error("RateLimited")
        .to_string();
    one_line(&msg);
    begin(&env, &mo, EXAMPLE_PHONE).assert_error("RateLimited");
    assert_eq!(gw.count(), 2, "a send beyond the limit reached the gateway");
    begin(&env, &ned, EXAMPLE_PHONE).ok();
    assert_eq!(gw.count(), 3);
}

/// `allowed_prefixes`: a number outside them is InvalidArgument naming the
/// rule, at enrollment and at a change of number, for users and root, and
/// nothing is sent; numbers inside work.
#[test]
fn numbers_outside_the_allowed_prefixes_are_refused_with_the_rule() {
    let env = Env::builder()
        .sms(Sms::http().allowed_prefixes(&["+372", "+1"]))
        .start();
    let gw = env.sms_gateway();
    let pia = env.add_user();
    let check = |r: CallResult, what: &str| {
        let msg = r.assert_error("InvalidArgument");
        one_line(msg);
        assert!(
            msg.contains("allowed_prefixes") && msg.contains("+372, +1"),
            "{what}: the message must name the rule: {msg}"
        );
    };
    for bad in ["+447700900123", "+37155512345", "+21255512345"] {
        check(begin(&env, &pia, bad), bad);
        check(
            env.call(None, &["enroll-sms-begin", &pia.name, bad, ""]),
            bad,
        );
    }
    assert_eq!(gw.count(), 0, "an SMS went to a number outside the rule");
    // Inside: +372 and +1 numbers enroll; a change to +44 is refused too.
    env.enroll_sms(&pia, EXAMPLE_PHONE);
    env.call(Some(&pia), &["send-code", ""]).ok();
    let current = env.wait_for_sms(2).code();
    check(
        env.call(
            Some(&pia),
            &["enroll-sms-begin", "", "+447700900123", &current],
        ),
        "change of number",
    );
    assert_eq!(gw.count(), 2);
    env.call(
        Some(&pia),
        &["enroll-sms-begin", "", "+14155550100", &current],
    )
    .ok();
    assert_eq!(
        gw.wait_for_requests(3, SMS_WAIT)[2].field("To"),
        Some("+14155550100")
    );
}

/// `max_total_sends_per_hour` holds for all users together, in the
/// database (a restart does not reset it): past it every user is
/// RateLimited with a clear message, nothing reaches the gateway, and the
/// log tells the admin.
#[test]
fn the_machine_wide_budget_holds_across_users_and_restarts() {
    let mut env = Env::builder()
        .sms(
            Sms::http()
                .max_sends_per_hour(10)
                .max_total_sends_per_hour(3),
        )
        .start();
    let (ray, sue) = (env.add_user(), env.add_user());
    let v = begin(&env, &ray, EXAMPLE_PHONE).ok().clone();
    let id = json_str(&v, "enrollment_id");
    env.call(Some(&ray), &["enroll-sms-resend", "", &id]).ok();
    begin(&env, &sue, "+14155550100").ok();
    assert_eq!(env.sms_gateway().count(), 3);
    let refused = |env: &Env, first: CallResult| {
        for r in [
            first,
            begin(env, &sue, "+14155550101"),
            env.call(None, &["enroll-sms-begin", &sue.name, "+14155550102", ""]),
        ] {
            let msg = r.assert_error("RateLimited").to_string();
            one_line(&msg);
            assert!(
                msg.contains("This host has sent too many codes by SMS") && msg.contains("minutes"),
                "{msg}"
            );
        }
    };
    refused(&env, env.call(Some(&ray), &["enroll-sms-resend", "", &id]));
    // A restart ends the enrollments, not the count.
    env.stop_daemon();
    env.start_daemon();
    refused(&env, begin(&env, &ray, EXAMPLE_PHONE));
    assert_eq!(
        env.sms_gateway().count(),
        3,
        "a send past the host's budget"
    );
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains("sms refused") && l.contains("max_total_sends_per_hour")),
        "no log line for the admin:\n{log}"
    );
}

/// `resend_cooldown` (default 30s) between two sends to one user:
/// enrollment resends, and a new enrollment, are RateLimited with the
/// seconds left; another user is not held up.
#[test]
fn enrollment_resends_wait_for_the_cooldown() {
    assert_eq!(
        cooldown_wait("x Wait 12 seconds before asking for another code. y"),
        Some(12)
    );
    assert_eq!(
        cooldown_wait("Wait 1 second before asking for another code."),
        Some(1)
    );
    assert_eq!(cooldown_wait("Wait 12 seconds."), None);
    let env = Env::builder()
        .sms(Sms::http().default_resend_cooldown())
        .start();
    let (tom, una) = (env.add_user(), env.add_user());
    let sent = Instant::now();
    let v = begin(&env, &tom, EXAMPLE_PHONE).ok().clone();
    let id = json_str(&v, "enrollment_id");
    for r in [
        env.call(Some(&tom), &["enroll-sms-resend", "", &id]),
        begin(&env, &tom, "+14155550100"),
    ] {
        let msg = r.assert_error("RateLimited").to_string();
        one_line(&msg);
        let left = cooldown_wait(&msg).unwrap_or_else(|| panic!("no wait in {msg:?}"));
        let most = 30 - sent.elapsed().as_secs().min(30);
        assert!(
            (1..=30).contains(&left) && left + 1 >= most,
            "{left}s left, {:?} after the send: {msg}",
            sent.elapsed()
        );
    }
    assert_eq!(env.sms_gateway().count(), 1);
    begin(&env, &una, EXAMPLE_PHONE).ok();
    assert_eq!(env.sms_gateway().count(), 2, "another user was held up");
}

/// https anywhere and plain http to the loopback addresses are accepted,
/// and a send through `localhost` reaches the gateway on 127.0.0.1.
#[test]
fn https_and_loopback_http_urls_are_accepted() {
    for url in [
        "https://api.example.com/2010-04-01/Accounts/ACx/Messages.json",
        "http://localhost:8080/send",
        "http://127.0.0.1/send",
        "http://[::1]:8080/send",
    ] {
        let env = Env::builder().sms(Sms::http().url(url)).start();
        assert!(env.daemon_pid().is_some(), "{url}");
    }
    let mut env = Env::builder().sms(Sms::http()).no_daemon().start();
    let url = env.sms_gateway().url().replace("127.0.0.1", "localhost");
    env.set_config(|c| {
        c.sms
            .as_mut()
            .and_then(|s| s.http.as_mut())
            .expect("[sms.http]")
            .url = url
    });
    env.start_daemon();
    let pat = env.add_user();
    begin(&env, &pat, EXAMPLE_PHONE).ok();
    assert_eq!(env.sms_gateway().count(), 1);
}

/// Runs mfad with `toml` and expects it to refuse: a non-zero exit, one
/// line on stderr containing every one of `needles`, no panic.
#[track_caller]
fn assert_refused(env: &Env, what: &str, toml: &str, needles: &[&str]) {
    let path = env.write_file("bad-sms.toml", toml);
    let out: Output = env.run_mfad(&path, Duration::from_secs(10));
    assert!(
        !out.timed_out && matches!(out.code, Some(c) if c != 0),
        "{what}: mfad must refuse to start:\n{out}\n--- config ---\n{toml}"
    );
    let err = out.stderr.trim();
    assert!(
        err.lines().count() == 1 && err.starts_with("mfad: "),
        "{what}: expected one `mfad: ` line on stderr:\n{out}"
    );
    assert!(!err.contains("panicked"), "{what}:\n{out}");
    for n in needles {
        assert!(
            err.contains(n),
            "{what}: the error must mention {n:?}:\n{out}"
        );
    }
}

/// Config mistakes stop mfad at start with one clear line.
#[test]
fn bad_sms_configs_are_refused_at_start() {
    let base = Env::builder().no_daemon().start();
    let with = |sms: Sms| -> String {
        let env = Env::builder().sms(sms).no_daemon().start();
        env.config().to_toml()
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown placeholder in message",
            with(Sms::file().message("Code {code} {nonsense}")),
            vec!["{nonsense}"],
        ),
        (
            "unknown placeholder in a form value",
            with(Sms::http().form(&[("To", "{phone}"), ("Body", "{message}"), ("X", "{bogus}")])),
            vec!["{bogus}"],
        ),
        (
            "unknown placeholder in argv",
            with(Sms::command().args(&["{phone}", "{mesage}"])),
            vec!["{mesage}"],
        ),
        (
            "an unclosed brace",
            with(Sms::file().message("Code {code} {oops")),
            vec!["{oops"],
        ),
        (
            "message without {code}",
            with(Sms::file().message("Your code is on its way")),
            vec!["{code}"],
        ),
        (
            "no backend",
            format!("{}\n[sms]\nsender = \"MFA\"\n", base.config().to_toml()),
            vec!["backend"],
        ),
        (
            "an unknown backend",
            format!("{}\n[sms]\nbackend = \"pigeon\"\n", base.config().to_toml()),
            vec!["pigeon"],
        ),
        (
            "backend http without [sms.http]",
            format!("{}\n[sms]\nbackend = \"http\"\n", base.config().to_toml()),
            vec!["sms.http"],
        ),
        (
            "backend command without [sms.command]",
            format!(
                "{}\n[sms]\nbackend = \"command\"\n",
                base.config().to_toml()
            ),
            vec!["sms.command"],
        ),
        (
            "backend file without [sms.file]",
            format!("{}\n[sms]\nbackend = \"file\"\n", base.config().to_toml()),
            vec!["sms.file"],
        ),
        (
            "plain http to a remote host",
            with(Sms::http().url("http://api.example.com/send")),
            vec!["https"],
        ),
        (
            "plain http to a private address",
            with(Sms::http().url("http://10.1.2.3:8080/send")),
            vec!["https"],
        ),
        (
            "plain http to a name that starts like localhost",
            with(Sms::http().url("http://localhost.example.com/send")),
            vec!["https"],
        ),
        (
            "plain http to a name that starts like 127.0.0.1",
            with(Sms::http().url("http://127.0.0.1.example.com/send")),
            vec!["https"],
        ),
        (
            "a URL that is not http(s)",
            with(Sms::http().url("ftp://127.0.0.1/send")),
            vec!["ftp"],
        ),
        (
            "a relative command",
            with(Sms::command().program("gammu-smsd-inject")),
            vec!["gammu-smsd-inject"],
        ),
        (
            "a ./relative command",
            with(Sms::command().program("./sms.sh")),
            vec!["./sms.sh"],
        ),
        (
            "an empty argv",
            format!(
                "{}\n[sms]\nbackend = \"command\"\n[sms.command]\nargv = []\n",
                base.config().to_toml()
            ),
            vec!["argv"],
        ),
    ];
    for (what, toml, needles) in &cases {
        assert_refused(&base, what, toml, needles);
    }
    // The cost limits, with the line of the key.
    for (what, sms, key, needles) in [
        (
            "a prefix without +",
            Sms::file().allowed_prefixes(&["+372", "372"]),
            "allowed_prefixes",
            vec!["sms.allowed_prefixes[1]", "\"372\"", "\"+\" and digits"],
        ),
        (
            "a prefix with a space",
            Sms::file().allowed_prefixes(&["+1 "]),
            "allowed_prefixes",
            vec!["sms.allowed_prefixes[0]"],
        ),
        (
            "a budget of 0",
            Sms::file().max_total_sends_per_hour(0),
            "max_total_sends_per_hour",
            vec!["sms.max_total_sends_per_hour must be at least 1"],
        ),
        (
            "a cooldown over an hour",
            Sms::file().resend_cooldown("2h"),
            "resend_cooldown",
            vec!["sms.resend_cooldown must be at most 1h"],
        ),
    ] {
        let toml = with(sms);
        let line = toml
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{what}: no {key} in\n{toml}"))
            + 1;
        let line = format!("line {line}");
        let mut needles = needles;
        needles.push(&line);
        assert_refused(&base, what, &toml, &needles);
    }
}

/// The password file must be root's alone: group or other may not read
/// it, and root must own it.
#[test]
fn a_password_file_others_may_read_is_refused() {
    for mode in [0o644, 0o640, 0o604] {
        let env = Env::builder()
            .sms(
                Sms::http()
                    .username("AC")
                    .password_file_contents("pw\n", mode),
            )
            .no_daemon()
            .start();
        let file = env.dir().join("sms-password");
        assert_refused(
            &env,
            &format!("password_file mode {mode:o}"),
            &env.config().to_toml(),
            &[&file.display().to_string()],
        );
    }
    // Root's alone means owned by root too.
    let env = Env::builder()
        .sms(Sms::http().username("AC").password("pw"))
        .no_daemon()
        .start();
    let owner = env.add_user();
    let file = env.dir().join("sms-password");
    std::os::unix::fs::chown(&file, Some(owner.uid), Some(owner.gid)).expect("chown");
    assert_refused(
        &env,
        "password_file owned by a user",
        &env.config().to_toml(),
        &[&file.display().to_string()],
    );
    // 0400 and 0600 are fine.
    for mode in [0o400, 0o600] {
        let env = Env::builder()
            .sms(
                Sms::http()
                    .username("AC")
                    .password_file_contents("pw\n", mode),
            )
            .start();
        assert!(env.daemon_pid().is_some());
    }
}

/// The file outbox holds codes: mfad refuses one it does not own, one
/// others may read, and a symlink, at start.
#[test]
fn a_file_outbox_owned_by_another_user_or_a_symlink_is_refused() {
    let env = Env::builder().sms(Sms::file()).no_daemon().start();
    let outbox = env.dir().join("sms-outbox.jsonl");
    let shown = outbox.display().to_string();
    let owner = env.add_user();
    std::fs::write(&outbox, "").expect("write the outbox");
    std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&outbox, Some(owner.uid), Some(owner.gid)).expect("chown");
    let toml = env.config().to_toml();
    assert_refused(&env, "outbox owned by a user", &toml, &[&shown, "UID"]);
    std::fs::remove_file(&outbox).expect("remove");
    std::os::unix::fs::symlink("/etc/mfa-no-such-target", &outbox).expect("symlink");
    assert_refused(&env, "outbox is a symlink", &toml, &[&shown, "symlink"]);
    assert!(!std::path::Path::new("/etc/mfa-no-such-target").exists());
}

/// The harness's enrollment helpers work on every backend, and SendCode
/// goes to the enrolled phone through the same gateway; its code is a
/// current code (here for RegenerateBackupCodes).
#[test]
fn harness_enrolls_phones_on_every_backend() {
    for sms in [Sms::http(), Sms::command(), Sms::file()] {
        let env = Env::builder().sms(sms).start();
        let ann = env.add_user();
        let phone = random_phone();
        let e = env.enroll_sms(&ann, &phone);
        assert_eq!(env.sms_count(), 1);
        let s = env.call(Some(&ann), &["status", ""]).ok().clone();
        assert_eq!(s["devices"][0]["id"], e.device_id.as_str(), "{s}");
        assert_eq!(s["devices"][0]["kind"], "sms", "{s}");
        let v = env.call(Some(&ann), &["send-code", ""]).ok().clone();
        assert_eq!(v["phone"], e.masked.as_str(), "{v}");
        let sent = env.wait_for_sms(2);
        assert_eq!(sent.to, phone);
        assert_ne!(sent.code(), e.confirm_code, "a code is never sent twice");
        let codes = env
            .call(Some(&ann), &["regen-backup", "", &sent.code()])
            .ok()
            .clone();
        assert_eq!(codes.as_array().map(Vec::len), Some(10), "{codes}");
    }

    let env = Env::builder().sms(Sms::http()).start();
    let bo = env.add_user();
    let (app, phone) = env.enroll_app_and_sms(&bo, EXAMPLE_PHONE);
    let s = env.call(None, &["admin-status", &bo.name]).ok().clone();
    let mut kinds: Vec<&str> = s["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["sms", "totp"], "{s}");
    assert!(s["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .any(|d| d["id"] == phone.device_id.as_str() && d["name"] == EXAMPLE_PHONE));
    // The backup codes the helper hands back are the valid ones.
    let v = env
        .call(None, &["login", &bo.name, &app.backup_codes[0]])
        .ok()
        .clone();
    assert_eq!(v["answers"][0]["result"], "success", "{v}");
}

/// mfa-call's `login` goes on after a `prompt` answer and shows its
/// message; `login-begin` and `answer` work as separate processes.
#[test]
fn harness_mfa_call_follows_prompts() {
    let env = Env::builder().sms(Sms::file()).start();
    let cy = env.add_user();
    env.enroll_sms(&cy, EXAMPLE_PHONE);
    let v = env
        .call(None, &["login", &cy.name, "", "000000"])
        .ok()
        .clone();
    assert_eq!(v["begin"]["action"], "challenge", "{v}");
    assert_eq!(v["answers"][0]["result"], "prompt", "{v}");
    assert!(
        v["answers"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("+372*****345")),
        "{v}"
    );
    assert_eq!(v["answers"].as_array().map(Vec::len), Some(2), "{v}");

    let n = env.sms_count();
    let b = env.call(None, &["login-begin", &cy.name]).ok().clone();
    let code = env.wait_for_sms(n + 1).code();
    let attempt = json_str(&b, "attempt");
    let a = env.call(None, &["answer", &attempt, &code]).ok().clone();
    assert_eq!(a["result"], "success", "{a}");
}
