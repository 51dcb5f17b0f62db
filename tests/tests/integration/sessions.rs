//! Session duration (`[session]`, `session required pam_mfa.so`): the real
//! sshd and ssh, pamtester and pam-run with the real module, and the real
//! mfad ending sessions with signals. Durations are a few seconds.

use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mfa_tests::pam::PamtesterOpts;
use mfa_tests::proc::Cmd;
use mfa_tests::ssh::{SshOpts, SshSetup};
use mfa_tests::{mfactl::parse_json, paths, Env, User};

/// `[session] max_duration` of `limit` (TOML value).
fn env_with_limit(limit: &str) -> Env {
    Env::builder()
        .max_failures(100)
        .extra_toml(&format!("[session]\nmax_duration = {limit}\n"))
        .start()
}

/// kbd-int sshd whose session stack has the module.
fn limited_sshd(env: &Env) -> mfa_tests::ssh::Sshd {
    env.sshd(
        SshSetup::kbd_int(env)
            .account(&mfa_tests::ssh::account_guard(env))
            .session(&format!(
                "session required pam_permit.so\nsession required {}",
                env.pam_module_spec()
            )),
    )
}

fn ssh_opts<'a>(code: &str, command: &'a str) -> SshOpts<'a> {
    SshOpts {
        codes: vec![code.to_string()],
        command,
        timeout: Duration::from_secs(20),
        ..SshOpts::default()
    }
}

fn unix_now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `field=value` of the last daemon log line with `event` and `user`.
fn logged(env: &Env, event: &str, user: &User, field: &str) -> Option<String> {
    let log = env.daemon_log();
    let line = log
        .lines()
        .rfind(|l| l.contains(event) && l.contains(&format!("user={}", user.name)))?
        .to_string();
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))
        .map(str::to_string)
}

/// Waits until the daemon logged `event` for `user`; panics after 10 s.
#[track_caller]
fn wait_logged(env: &Env, event: &str, user: &User) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged(env, event, user, "user").is_none() {
        assert!(
            Instant::now() < deadline,
            "mfad never logged {event:?} for {}:\n{}",
            user.name,
            env.daemon_log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// PIDs of the processes running as `user`.
fn processes_of(user: &User) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == user.uid))
        .map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            format!(
                "{} {}",
                e.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect()
}

/// Until `user` runs nothing (the session's processes are gone).
#[track_caller]
fn assert_no_processes_soon(user: &User) {
    assert_no_processes_within(user, Duration::from_secs(2));
}

#[track_caller]
fn assert_no_processes_within(user: &User, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let left = processes_of(user);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of {} survived the session's end: {left:?}",
            user.name
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// ssh ended within 2 s of the session's end time mfad logged, not
/// before it.
#[track_caller]
fn assert_ended_on_time(env: &Env, user: &User, finished: f64) {
    let ends: f64 = logged(env, "session opened", user, "ends")
        .unwrap_or_else(|| panic!("no session opened:\n{}", env.daemon_log()))
        .parse()
        .expect("ends= is a number");
    assert!(
        finished >= ends - 0.5 && finished <= ends + 2.0,
        "the session ended at {finished:.1}, its end time was {ends}:\n{}",
        env.daemon_log()
    );
}

/// The first promise: `ssh host sleep 60` is closed on time and
/// its remote processes are gone; the end is logged with who and how long.
#[test]
fn an_ssh_session_ends_on_time_with_its_processes() {
    let env = env_with_limit("\"3s\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let sshd = limited_sshd(&env);

    let r = sshd.ssh(&alice, &ssh_opts(&dev.backup_codes[0], "sleep 60"));
    let finished = unix_now_f();
    assert!(!r.output.timed_out && r.output.code != Some(0), "{r}");
    assert_ended_on_time(&env, &alice, finished);
    assert_no_processes_soon(&alice);
    let log = env.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("session ended")
            && l.contains(&format!("user={}", alice.name))
            && l.contains(&format!("service={}", sshd.name))
            && l.contains("rhost=127.0.0.1")
            && l.contains("duration_secs=")),
        "{log}"
    );
    // The record goes with the session, once its processes are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = parse_json(&env.mfactl(&["--json", "admin", "sessions"]));
        if v == serde_json::json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "{v}\n{log}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A user's shorter choice ends sooner; a choice above the limit, or any
/// choice when `user_choice = false`, is refused with a clear error.
#[test]
fn a_shorter_choice_ends_sooner_and_a_longer_one_is_refused() {
    let env = env_with_limit("\"1h\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);

    let over = env.mfactl_as(&alice, &["session-duration", "2h"]);
    assert!(!over.success(), "{over}");
    assert!(
        over.stderr.contains("longer than the limit of 1h"),
        "{over}"
    );
    let set = env.mfactl_as(&alice, &["--json", "session-duration", "2s"]);
    let v = parse_json(&set);
    assert_eq!(v["duration"], 2, "{v}");
    assert_eq!(v["chosen"], 2, "{v}");
    assert_eq!(v["limit"], 3600, "{v}");
    let status = env.mfactl_as(&alice, &["status"]);
    status.assert_success();
    assert!(
        status
            .stdout
            .contains("Session duration: 2s (your choice; limit 1h)"),
        "{status}"
    );

    let sshd = limited_sshd(&env);
    let r = sshd.ssh(&alice, &ssh_opts(&dev.backup_codes[0], "sleep 60"));
    let finished = unix_now_f();
    assert!(r.output.elapsed < Duration::from_secs(20), "{r}");
    assert_ended_on_time(&env, &alice, finished);
    assert_eq!(
        logged(&env, "session opened", &alice, "duration_secs").as_deref(),
        Some("2")
    );
    assert_no_processes_soon(&alice);

    // Back to the limit.
    let v = parse_json(&env.mfactl_as(&alice, &["--json", "session-duration", "default"]));
    assert_eq!(
        (v["duration"].as_i64(), v["chosen"].as_i64()),
        (Some(3600), Some(0))
    );
}

#[test]
fn without_user_choice_no_one_chooses() {
    let env = Env::builder()
        .extra_toml("[session]\nmax_duration = \"4h\"\nuser_choice = false\n")
        .start();
    let alice = env.add_login_user(None);
    let r = env.mfactl_as(&alice, &["session-duration", "1h"]);
    assert!(!r.success(), "{r}");
    assert!(r.stderr.contains("does not let users choose"), "{r}");
    let r = env.mfactl_as(&alice, &["session-duration"]);
    r.assert_success();
    assert!(
        r.stdout
            .contains("4h (the limit; limit 4h, users may not choose)"),
        "{r}"
    );
}

/// With a terminal (`ssh -tt`), the warning comes before the end.
#[test]
fn ssh_with_a_terminal_sees_the_warning() {
    let env = env_with_limit("\"4s\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let sshd = limited_sshd(&env);
    let r = sshd.ssh(
        &alice,
        &SshOpts {
            tty: true,
            ..ssh_opts(&dev.backup_codes[0], "sleep 60")
        },
    );
    let finished = unix_now_f();
    assert!(
        r.output.stdout.contains(
            "This session ends in 2 seconds (session duration 4s). Log in again to continue."
        ),
        "{r}\n{}",
        env.daemon_log()
    );
    assert_ended_on_time(&env, &alice, finished);
}

/// A restart of mfad in the middle re-arms the session from the database.
#[test]
fn an_mfad_restart_keeps_the_limit() {
    restart_keeps_the_limit(env_with_limit("\"5s\""));
}

/// The same with the fleet's PostgreSQL store (its calls block on the
/// daemon's runtime: the timers must not call it from async code).
#[test]
fn an_mfad_restart_keeps_the_limit_with_postgres() {
    let pg = mfa_tests::postgres::Postgres::start();
    let env = Env::builder()
        .max_failures(100)
        .extra_toml("[session]\nmax_duration = \"5s\"\n")
        .daemon_toml(&pg.daemon_toml())
        .store(&pg.store_toml("5s"))
        .start();
    restart_keeps_the_limit(env);
}

fn restart_keeps_the_limit(mut env: Env) {
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let sshd = limited_sshd(&env);
    let pending = sshd.ssh_held(&alice, &ssh_opts(&dev.backup_codes[0], "sleep 60"));
    pending.release();
    wait_logged(&env, "session opened", &alice);
    env.stop_daemon();
    env.start_daemon();
    let r = pending.finish();
    let finished = unix_now_f();
    assert!(!r.output.timed_out, "{r}");
    wait_logged(&env, "session re-armed", &alice);
    assert_ended_on_time(&env, &alice, finished);
    assert_no_processes_soon(&alice);
}

/// A login that did not pass 2-step (not enrolled, policy optional) is not
/// limited: it outlives the limit.
#[test]
fn a_session_without_2step_is_not_limited() {
    let env = env_with_limit("\"2s\"");
    let bob = env.add_login_user(None);
    let sshd = limited_sshd(&env);
    let r = sshd.ssh(
        &bob,
        &SshOpts {
            command: "sleep 4; echo mfa-ok",
            timeout: Duration::from_secs(30),
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert!(
        !env.daemon_log().contains("session opened"),
        "{}",
        env.daemon_log()
    );
}

/// A console-style service (login's stack, a tty) through pamtester:
/// open_session registers the session, close_session removes the record.
#[test]
fn close_session_removes_the_record() {
    let env = env_with_limit("\"1h\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let module = env.pam_module_spec();
    let svc = env.pam_service_raw(&format!(
        "auth required {module}\naccount required {module}\nsession required {module}\n"
    ));
    let out = env.pamtester_with(
        &svc,
        &alice,
        &[&dev.backup_codes[0]],
        &PamtesterOpts {
            items: vec![("tty", "tty1")],
            ops: vec!["authenticate", "acct_mgmt", "open_session", "close_session"],
            ..PamtesterOpts::default()
        },
    );
    out.output.assert_success();
    let log = env.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("session opened")
            && l.contains(&format!("service={svc}"))
            && l.contains("tty=tty1")
            && l.contains("duration_secs=3600")),
        "{log}"
    );
    assert_eq!(
        logged(&env, "session closed", &alice, "service").as_deref(),
        Some(svc.as_str()),
        "{log}"
    );
    let v = parse_json(&env.mfactl(&["--json", "admin", "sessions", &alice.name]));
    assert_eq!(v, serde_json::json!([]));
}

/// su's stack through pamtester (as root, with the caller's tty), and a
/// session pam-run holds open: mfad ends it (SIGHUP) on time.
#[test]
fn su_and_console_sessions_are_limited_too() {
    let env = env_with_limit("\"3s\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let module = env.pam_module_spec();
    let su = env.pam_service_raw(&format!(
        "auth required {module}\naccount required pam_permit.so\n\
         session required pam_permit.so\nsession required {module}\n"
    ));
    // su: no account line for the module, the auth phase's kept attempt
    // counts.
    let out = env.pamtester_with(
        &su,
        &alice,
        &[&dev.backup_codes[0]],
        &PamtesterOpts {
            items: vec![("tty", "pts/0"), ("ruser", "root")],
            ops: vec!["authenticate", "open_session", "close_session"],
            ..PamtesterOpts::default()
        },
    );
    out.output.assert_success();
    wait_logged(&env, "session closed", &alice);

    let console = env.pam_service_raw(&format!(
        "auth required {module}\naccount required {module}\nsession required {module}\n"
    ));
    let started = Instant::now();
    let run = Cmd::new(paths::helper("pam-run"))
        .arg(&console)
        .arg(&alice.name)
        .args(["--acct", "--session", "60"])
        .arg(&dev.backup_codes[1])
        .timeout(Duration::from_secs(30))
        .run();
    let finished = unix_now_f();
    assert_eq!(run.signal, Some(1), "ended by SIGHUP: {run}");
    assert!(started.elapsed() < Duration::from_secs(15), "{run}");
    assert_ended_on_time(&env, &alice, finished);
}

/// An admin ends a session now; `admin reset --end-sessions` ends the lost
/// phone's sessions too. A user lists their own.
#[test]
fn admins_end_sessions() {
    let env = env_with_limit("\"1h\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let module = env.pam_module_spec();
    let svc = env.pam_service_raw(&format!(
        "auth required {module}\naccount required {module}\nsession required {module}\n"
    ));
    let hold = |code: String| {
        let cmd = Cmd::new(paths::helper("pam-run"))
            .arg(&svc)
            .arg(&alice.name)
            .args(["--acct", "--session", "60"])
            .arg(code)
            .timeout(Duration::from_secs(30));
        thread::spawn(move || cmd.run())
    };
    let wait_sessions = |n: usize| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = parse_json(&env.mfactl_as(&alice, &["--json", "sessions"]));
            if v.as_array().map_or(0, Vec::len) == n {
                return v;
            }
            assert!(Instant::now() < deadline, "sessions: {v}");
            thread::sleep(Duration::from_millis(50));
        }
    };

    let first = hold(dev.backup_codes[0].clone());
    let v = wait_sessions(1);
    let id = v[0]["id"].as_str().expect("id").to_string();
    assert_eq!(v[0]["user"], alice.name.as_str());
    assert_eq!(v[0]["service"], svc.as_str());
    let text = env.mfactl(&["admin", "sessions"]);
    assert!(text.stdout.contains(&id), "{text}");
    // The user cannot end their own limit, nor see the Admin interface.
    assert!(!env
        .mfactl_as(&alice, &["admin", "end-session", &id])
        .success());
    env.mfactl(&["admin", "end-session", &id]).assert_success();
    let run = first.join().expect("pam-run thread");
    assert_eq!(run.signal, Some(1), "{run}");
    assert!(run.elapsed < Duration::from_secs(10), "{run}");
    assert!(env.daemon_log().contains("ended by an administrator"));
    wait_sessions(0);

    let second = hold(dev.backup_codes[1].clone());
    wait_sessions(1);
    let v = parse_json(&env.mfactl(&["--json", "admin", "reset", &alice.name, "--end-sessions"]));
    assert_eq!(v["sessions_ended"], 1, "{v}");
    let run = second.join().expect("pam-run thread");
    assert_eq!(run.signal, Some(1), "{run}");
    wait_sessions(0);
}

/// mfad unavailable at open_session: `failmode=secure` refuses the session
/// (PAM_SESSION_ERR), `safe` lets it open unlimited (the module's
/// PAM_IGNORE leaves pam_permit's success).
#[test]
fn failmode_decides_when_mfad_cannot_register_the_session() {
    let env = env_with_limit("\"1h\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let module = env.pam_module_spec();
    let lib = paths::pam_module();
    for (i, (mode, want)) in [("secure", 14), ("safe", 0)].into_iter().enumerate() {
        // The session line asks a bus where nobody answers.
        let svc = env.pam_service_raw(&format!(
            "auth required {module}\naccount required {module}\n\
             session required pam_permit.so\n\
             session required {} bus=unix:path=/nonexistent/mfa-bus failmode={mode}\n",
            lib.display()
        ));
        let run = env.pam_run(
            &svc,
            &alice,
            &["--acct", "--session", "0"],
            &[&dev.backup_codes[i]],
        );
        assert_eq!(run.round_rc(0, "acct_mgmt"), 0, "{}", run.output);
        assert_eq!(
            run.round_rc(0, "open_session"),
            want,
            "failmode={mode}: {}",
            run.output
        );
    }
    assert!(!env.daemon_log().contains("session opened"));
}

/// What ignores the SIGHUP gets SIGTERM 10 s later, even though the login
/// program already closed the session (its command died of the SIGHUP).
#[test]
fn what_ignores_sighup_is_terminated_after_the_session_closed() {
    let env = env_with_limit("\"2s\"");
    let alice = env.add_login_user(None);
    let dev = env.enroll_raw(&alice);
    let sshd = limited_sshd(&env);
    let r = sshd.ssh(
        &alice,
        &ssh_opts(
            &dev.backup_codes[0],
            "(trap '' HUP; exec sleep 61) </dev/null >/dev/null 2>&1 & sleep 60",
        ),
    );
    assert!(!r.output.timed_out, "{r}");
    let ended = Instant::now();
    assert!(
        processes_of(&alice).iter().any(|p| p.contains("sleep 61")),
        "the SIGHUP-proof process should outlive the SIGHUP: {:?}",
        processes_of(&alice)
    );
    assert_no_processes_within(&alice, Duration::from_secs(13));
    assert!(
        ended.elapsed() > Duration::from_secs(5),
        "SIGTERM comes 10 s after SIGHUP"
    );
}
