//! Fairness under a local flood: one user calling mfad as fast as it can
//! from many connections is held to its call budget (mfad refuses the rest
//! at once with RateLimited), and another user's login through the module,
//! with `timeout=1 failmode=safe` (where a late mfad would mean no second
//! factor), still asks for and needs a code.

use std::time::{Duration, Instant};

use mfa_tests::{paths, wrong_code, Clock, Cmd, Env, PamResult};
use serde_json::Value;

/// mfad's budget per non-root UID (mfad/src/dbus.rs): a burst, then a rate.
const CALL_BURST: u64 = 50;
const CALLS_PER_SECOND: u64 = 20;
/// How long the flood lasts, and over how many connections: a moderate
/// flood (on a 2-core machine a private dbus-daemon itself saturates at
/// about 48 busy connections, before mfad does).
const FLOOD_SECONDS: u64 = 8;
const FLOOD_CONNECTIONS: u64 = 16;

#[test]
fn a_flooding_user_cannot_push_another_users_login_past_the_timeout() {
    let env = Env::builder().max_failures(100).start();
    let flooder = env.add_user();
    let victim = env.add_user();
    let dev = env.enroll(&victim);
    let svc = env.pam_service("timeout=1 failmode=safe");

    let flood = {
        let cmd = Cmd::new(paths::helper("mfa-call"))
            .arg(env.bus_address())
            .args([
                "flood",
                flooder.name.as_str(),
                &FLOOD_SECONDS.to_string(),
                &FLOOD_CONNECTIONS.to_string(),
            ])
            .as_user(&flooder)
            .timeout(Duration::from_secs(FLOOD_SECONDS + 30));
        std::thread::spawn(move || cmd.run())
    };
    let started = Instant::now();
    // Let the flood get going before the logins.
    std::thread::sleep(Duration::from_secs(1));

    let wrong = wrong_code(&dev.secret);
    let r = env.pamtester(&svc, &victim, &[&wrong, &wrong, &wrong]);
    r.assert_result(PamResult::AuthErr);
    assert_eq!(r.prompts(), 3, "a wrong code must not pass:\n{}", r.output);
    let code = Clock::now().code(&dev.secret, 0);
    let r = env.pamtester(&svc, &victim, &[&code]);
    r.assert_result(PamResult::Success);
    assert_eq!(
        r.prompts(),
        1,
        "the login must ask for a code:\n{}",
        r.output
    );
    let logins_done = started.elapsed();

    let out = flood.join().expect("the flood thread");
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("mfa-call flood printed no JSON ({e}):\n{out}"));
    eprintln!("flood: {v}; the two logins took {logins_done:?}");
    let counts = &v["ok"];
    let served = counts["ok"].as_u64().expect("a count");
    let limited = counts["rate_limited"].as_u64().expect("a count");
    assert!(
        logins_done < Duration::from_secs(FLOOD_SECONDS),
        "the logins ended after the flood ({logins_done:?}); they prove nothing: {v}"
    );
    assert_eq!(counts["other"], 0, "the flood met other errors: {v}");
    assert!(limited > 0, "the flooder was never refused: {v}");
    // The budget, plus a second of slack for the clock.
    let budget = CALL_BURST + CALLS_PER_SECOND * (FLOOD_SECONDS + 1);
    assert!(
        served <= budget,
        "the flooder was served {served} calls, over its budget of {budget}: {v}"
    );
    let log = env.daemon_log();
    assert!(
        log.contains("over the call budget") && log.contains(&format!("uid={}", flooder.uid)),
        "mfad did not log the flood:\n{log}"
    );
}
