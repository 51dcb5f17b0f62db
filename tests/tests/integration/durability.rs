//! A code once accepted is never accepted again, even after a crash: a
//! backup code's use is fsynced before the reply (group commit), a TOTP
//! accept is written before it and covered by a durable high-water mark of
//! steps (see docs/architecture.md). Killed with SIGKILL in the middle of
//! many concurrent logins and started again, mfad refuses every code it
//! accepted before the kill.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mfa_tests::{paths, Clock, Cmd, Env};
use serde_json::Value;

/// One `mfa-call socket:PATH login USER CODE` as root: Some(true) when
/// the code was accepted, Some(false) when refused, None when mfad could
/// not answer (killed mid-call).
fn login(env: &Env, user: &str, code: &str) -> Option<bool> {
    let out = Cmd::new(paths::helper("mfa-call"))
        .arg(format!("socket:{}", env.login_socket().display()))
        .args(["login", user, code])
        .timeout(Duration::from_secs(20))
        .run();
    let v: Value = serde_json::from_str(out.stdout.trim()).ok()?;
    let answers = v.get("ok")?.get("answers")?.as_array()?;
    Some(answers.first()?.get("result")?.as_str()? == "success")
}

#[test]
fn no_code_accepted_before_a_kill_is_accepted_after_it() {
    let mut env = Env::builder().max_failures(1000).window(4).start();
    let users: Vec<_> = (0..6).map(|_| env.add_user()).collect();
    // Each user: the backup codes (each good once) and the TOTP codes of
    // the window, oldest first (each good once, and only if newer).
    let mut work: Vec<(String, Vec<String>)> = Vec::new();
    for u in &users {
        let dev = env.enroll(u);
        let mut codes = dev.backup_codes.clone();
        codes.extend(Clock::now().codes(&dev.secret, -1, 4));
        work.push((u.name.clone(), codes));
    }
    let total: usize = work.iter().map(|(_, c)| c.len()).sum();
    let accepted: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let lost = Arc::new(Mutex::new(0usize));
    let env_ref = &env;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (user, codes) in &work {
            let (accepted, lost, env) = (accepted.clone(), lost.clone(), env_ref);
            scope.spawn(move || {
                for code in codes {
                    match login(env, user, code) {
                        Some(true) => accepted
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((user.clone(), code.clone())),
                        Some(false) => {}
                        None => *lost.lock().unwrap_or_else(|e| e.into_inner()) += 1,
                    }
                }
            });
        }
        // The kill, once a third of the codes are in, with six logins at
        // a time still going.
        let pid = env_ref.daemon_pid().expect("mfad runs");
        loop {
            let n = accepted.lock().unwrap_or_else(|e| e.into_inner()).len();
            if n >= total / 3 || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 mfad");
    });
    let accepted = accepted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let lost = *lost.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        accepted.len() >= total / 3,
        "only {} of {total} accepted before the kill",
        accepted.len()
    );
    assert!(lost > 0, "the kill came after the last login: no load");
    let status = env.kill_daemon();
    assert!(
        status.is_some_and(|s| !s.success()),
        "mfad died of the kill: {status:?}"
    );
    env.start_daemon();
    for (user, code) in &accepted {
        assert_eq!(
            login(&env, user, code),
            Some(false),
            "{user}'s code {code} was accepted again after the crash"
        );
    }
}

/// Accepts commit without an fsync, covered by a durable high-water mark
/// of time steps (docs/architecture.md, "Durability"). After a clean stop
/// (SIGTERM) nothing is refused: a current code works at once. After a
/// kill, mfad cannot know which accepts of the last seconds reached the
/// disk, so it refuses every app code up to the mark, for every user, and
/// says why once; backup codes still work.
#[test]
fn after_a_kill_app_codes_up_to_the_mark_are_refused_and_after_a_clean_stop_none() {
    const UNCLEAN: &str = "mfad did not stop cleanly: authenticator codes of time steps up to";
    let mut env = Env::builder().max_failures(1000).start();
    let (alice, bob, carol) = (env.add_user(), env.add_user(), env.add_user());
    let (a, b, c) = (env.enroll(&alice), env.enroll(&bob), env.enroll(&carol));
    let clock = Clock::now();
    assert_eq!(
        login(&env, &alice.name, &clock.code(&a.secret, -1)),
        Some(true)
    );

    let status = env.stop_daemon();
    assert!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}");
    env.start_daemon();
    assert_eq!(
        login(&env, &bob.name, &clock.code(&b.secret, 0)),
        Some(true),
        "a current code right after a clean stop: {}",
        env.daemon_log()
    );
    assert!(!env.daemon_log().contains(UNCLEAN), "{}", env.daemon_log());

    assert_eq!(
        login(&env, &alice.name, &clock.code(&a.secret, 0)),
        Some(true)
    );
    let status = env.kill_daemon();
    assert!(status.is_some_and(|s| !s.success()), "kill -9: {status:?}");
    env.start_daemon();
    let log = env.daemon_log();
    assert_eq!(log.matches(UNCLEAN).count(), 1, "{log}");
    assert!(
        log.contains("backup codes and SMS codes work"),
        "the line says what still works: {log}"
    );
    // Carol never used an app code, and this one was never accepted: it
    // is refused all the same, as any accept of it might have been lost.
    assert_eq!(
        login(&env, &carol.name, &clock.code(&c.secret, 0)),
        Some(false),
        "a current code right after a kill"
    );
    assert_eq!(login(&env, &carol.name, &c.backup_codes[0]), Some(true));

    // Said once: a clean stop after it leaves nothing to say.
    let status = env.stop_daemon();
    assert!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}");
    env.start_daemon();
    let log = env.daemon_log();
    assert_eq!(log.matches(UNCLEAN).count(), 1, "{log}");
}
