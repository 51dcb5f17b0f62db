//! Odd answers at the code prompt, through the real module in-process
//! (pam-run: answers of any length and any bytes, which pamtester's
//! line-based conversation cannot send), and user names that do not exist.
//! Letters and a 400-digit answer through pamtester: login.rs; arbitrary
//! bytes straight to the daemon: secrets.rs.

use mfa_tests::pam::rc;
use mfa_tests::{random_letters, Clock, Env, Policy, User};

/// What mfad says about anything that is not 6 or 8 digits.
const NOT_A_CODE: &str = "6 digits";

/// Each bad answer is answered with one clear error message and counts as
/// exactly one failed attempt; then the module prompts again.
#[test]
fn malformed_answers_get_a_message_and_count_once() {
    let env = Env::builder().max_failures(100).start();
    let kai = env.add_user();
    let dev = env.enroll_raw(&kai);
    let svc = env.pam_service("");
    let long = "7".repeat(10_000);
    let cases: [(&str, Vec<&str>); 4] = [
        ("letters", vec!["abcdef"]),
        ("empty", vec![""]),
        ("10,000 characters", vec![&long]),
        // 0xff 0xfe "1234": not UTF-8.
        ("non-UTF-8 bytes", vec!["--hex", "fffe31323334"]),
    ];
    for (i, (what, answer)) in cases.iter().enumerate() {
        // One answer only: after the message the module prompts again and
        // the conversation has nothing left (PAM_CONV_ERR), so exactly one
        // answer reached the daemon.
        let (flags, answers): (Vec<&str>, Vec<&str>) = if answer[0] == "--hex" {
            (answer.clone(), vec![])
        } else {
            (vec![], answer.clone())
        };
        let run = env.pam_run(&svc, &kai, &flags, &answers);
        assert_eq!(run.auth_rc(0), rc::PAM_CONV_ERR, "{what}:\n{}", run.output);
        assert_eq!(
            run.prompts().len(),
            2,
            "{what}: prompted again:\n{}",
            run.output
        );
        let messages = run.messages();
        assert_eq!(messages.len(), 1, "{what}: {messages:?}");
        assert!(
            messages[0].contains(NOT_A_CODE) && !messages[0].contains('\n'),
            "{what}: not a clear one-line message: {messages:?}"
        );
        assert_eq!(run.message_styles(), ["error"], "{what}");
        assert_eq!(
            env.failures(&kai),
            i as u64 + 1,
            "{what} must count as one failure"
        );
    }
    assert!(
        !env.daemon_log().contains("panicked"),
        "{}",
        env.daemon_log()
    );

    // A right code with a space in the middle, as apps show it: accepted,
    // and the failure count is cleared.
    let code = Clock::now().code(&dev.secret, 0);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let run = env.pam_run(&svc, &kai, &[], &[&spaced]);
    assert_eq!(run.auth_rc(0), rc::PAM_SUCCESS, "{}", run.output);
    assert_eq!(env.failures(&kai), 0);
}

/// A user name that does not exist gets exactly what an unenrolled user
/// gets, on the wire and through PAM, under both policies: the login
/// cannot be used to find out which accounts exist.
#[test]
fn a_nonexistent_user_looks_like_an_unenrolled_one() {
    for policy in [Policy::Optional, Policy::Required] {
        // The refusal; enroll_login.rs compares the enrollment at login
        // (whose secrets are random) of a real and a nonexistent user.
        let env = Env::builder()
            .policy(policy)
            .policy_toml("enroll_at_login = false\n")
            .start();
        let real = env.add_user();
        let ghost = User {
            name: format!("mfatghost{}", random_letters(10)),
            uid: 0,
            gid: 0,
        };
        assert!(mfa_tests::users::lookup(&ghost.name).is_none());
        // The name itself may appear in a message; compare without it.
        let anon = |s: &str, u: &User| s.replace(&u.name, "USER");

        // The attempt token (of `enroll`, under required) is random: only
        // whether there is one may not differ.
        let begin = |u: &User| {
            let mut v = env
                .call(None, &["login-begin", &u.name, "svc", "10.0.0.1"])
                .ok()
                .clone();
            let has = v["attempt"].as_str().is_some_and(|t| !t.is_empty());
            v["attempt"] = serde_json::Value::Bool(has);
            anon(&v.to_string(), u)
        };
        assert_eq!(begin(&real), begin(&ghost), "{policy:?}: Begin differs");
        let a = env.call(None, &["account-check", &real.name, "svc", ""]);
        let b = env.call(None, &["account-check", &ghost.name, "svc", ""]);
        assert_eq!(
            anon(&a.ok().to_string(), &real),
            anon(&b.ok().to_string(), &ghost),
            "{policy:?}: AccountCheck differs"
        );

        let svc = env.pam_service_raw(&format!(
            "auth required {m}\nauth required pam_permit.so\naccount required {m}\naccount required pam_permit.so\n",
            m = env.pam_module_spec()
        ));
        let ra = env.pam_run(&svc, &real, &["--acct"], &[]);
        let rb = env.pam_run(&svc, &ghost, &["--acct"], &[]);
        for call in ["authenticate", "acct_mgmt"] {
            assert_eq!(
                ra.round_rc(0, call),
                rb.round_rc(0, call),
                "{policy:?}: {call} differs:\n{}\n{}",
                ra.output,
                rb.output
            );
        }
        assert_eq!(ra.prompts(), rb.prompts(), "{policy:?}");
        let ma: Vec<String> = ra.messages().iter().map(|m| anon(m, &real)).collect();
        let mb: Vec<String> = rb.messages().iter().map(|m| anon(m, &ghost)).collect();
        assert_eq!(ma, mb, "{policy:?}: messages differ");
        assert_eq!(ra.message_styles(), rb.message_styles(), "{policy:?}");
        match policy {
            Policy::Optional => assert_eq!(ra.auth_rc(0), rc::PAM_SUCCESS),
            Policy::Required => assert_eq!(ra.auth_rc(0), rc::PAM_AUTH_ERR),
        }
    }
}
