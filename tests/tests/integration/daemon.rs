//! mfad as a process: readiness, a second instance, SIGTERM, its config
//! errors, and the privacy of its state.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use mfa_tests::bus::name_has_owner;
use mfa_tests::{Env, Policy};

#[test]
fn mfad_announces_where_it_serves() {
    let env = Env::new();
    let want = format!("mfad: serving org.mfad.Mfa1 on {}", env.bus_address());
    let log = env.daemon_log();
    assert!(log.contains(&want), "expected {want:?} in:\n{log}");
}

#[test]
fn a_second_instance_on_the_same_bus_exits_with_a_clear_message() {
    let env = Env::new();
    let pid = env.daemon_pid().expect("running");
    // Another state dir, so only the bus name is in dispute ...
    let mut other = env.config().clone();
    other.state_dir = env.dir().join("state2");
    let path = env.write_file("mfad2.toml", &other.to_toml());
    let out = env.run_mfad(&path, Duration::from_secs(15));
    assert!(!out.timed_out, "the second mfad kept running:\n{out}");
    assert!(matches!(out.code, Some(c) if c != 0), "{out}");
    let last = out.stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.contains("org.mfad.Mfa1"),
        "the message must say the name is taken, in one line:\n{out}"
    );
    // ... and with the very same config (a double start).
    let out = env.run_mfad(env.config_path(), Duration::from_secs(15));
    assert!(!out.timed_out, "the second mfad kept running:\n{out}");
    assert!(matches!(out.code, Some(c) if c != 0), "{out}");
    assert!(!out.stderr.trim().is_empty(), "{out}");
    // The first one still serves.
    assert_eq!(env.daemon_pid(), Some(pid));
    assert_eq!(name_has_owner(env.bus_address(), "org.mfad.Mfa1"), Ok(true));
    let u = env.add_user();
    env.enroll_raw(&u);
}

#[test]
fn sigterm_stops_it_cleanly() {
    let mut env = Env::new();
    let status = env.stop_daemon().expect("exit status");
    assert_eq!(
        status.code(),
        Some(0),
        "mfad after SIGTERM: {status}\n{}",
        env.daemon_log()
    );
    assert_eq!(
        name_has_owner(env.bus_address(), "org.mfad.Mfa1"),
        Ok(false)
    );
}

/// Logins would wait on an mfad that can no longer answer: it exits,
/// non-zero and logged, when its bus goes away.
#[test]
fn it_exits_when_it_loses_the_bus() {
    let mut env = Env::new();
    env.stop_bus();
    let status = env
        .wait_daemon_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("mfad still runs without its bus:\n{}", env.daemon_log()));
    assert!(!status.success(), "{status}");
    let log = env.daemon_log();
    assert!(log.contains("lost the bus connection"), "{log}");
}

/// Two daemons never migrate one database at once: the state directory's
/// lock comes first.
#[test]
fn it_takes_the_state_lock_before_it_opens_the_database() {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::DirBuilderExt;
    let env = Env::builder().no_daemon().start();
    let state = env.state_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .expect("create the state directory");
    let file = std::fs::File::create(state.join("mfad.lock")).expect("create mfad.lock");
    let _held = Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("lock mfad.lock");
    let out = env.run_mfad(env.config_path(), Duration::from_secs(10));
    assert!(matches!(out.code, Some(c) if c != 0), "{out}");
    assert!(out.stderr.contains("in use by another mfad"), "{out}");
    assert!(
        !state.join("mfad.db").exists(),
        "mfad opened the database before it had the lock"
    );
}

/// The database's secrets are sealed under the key file: without it mfad
/// refuses to start rather than make a new key and lose them.
#[test]
fn a_lost_key_file_is_an_error_not_a_new_key() {
    let mut env = Env::new();
    let user = env.add_user();
    env.enroll(&user);
    env.stop_daemon();
    let key = env.state_dir().join("mfad.key");
    let mode = std::fs::metadata(&key)
        .expect("mfad.key exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_file(&key).expect("remove the key file");
    let out = env.run_mfad(env.config_path(), Duration::from_secs(10));
    assert!(matches!(out.code, Some(c) if c != 0), "{out}");
    assert!(out.stderr.contains("mfad.key is missing"), "{out}");
    assert!(!key.exists(), "no new key was made");
}

#[test]
fn its_state_is_private_to_root() {
    let env = Env::new();
    let u = env.add_user();
    env.enroll_raw(&u);
    let dir = std::fs::metadata(env.state_dir()).expect("state dir exists");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700, "state dir mode");
    assert_eq!(dir.uid(), 0);
    let db = std::fs::metadata(env.state_dir().join("mfad.db")).expect("mfad.db exists");
    assert_eq!(db.permissions().mode() & 0o777, 0o600, "mfad.db mode");
    assert_eq!(db.uid(), 0);
}

#[test]
fn an_unknown_config_key_is_named_with_its_line() {
    let env = Env::builder().no_daemon().start();
    let mut text = env.config().to_toml();
    // Line 3 of the file.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "[daemon]");
    text = format!(
        "{}\n{}\nbogus_key = 1\n{}\n",
        lines[0],
        lines[1],
        lines[2..].join("\n")
    );
    let path = env.write_file("bad.toml", &text);
    let out = env.run_mfad(&path, Duration::from_secs(10));
    assert!(matches!(out.code, Some(c) if c != 0), "{out}");
    assert!(
        out.stderr.contains("bogus_key"),
        "the key must be named:\n{out}"
    );
    assert!(
        out.stderr.contains("line 3") || out.stderr.contains(":3"),
        "the line (3) must be named:\n{out}"
    );
}

#[test]
fn bad_config_values_are_refused() {
    let env = Env::builder().no_daemon().start();
    for (what, text) in [
        (
            "policy mode",
            env.config().to_toml().replace(
                &format!("mode = \"{}\"", Policy::Optional.as_str()),
                "mode = \"sometimes\"",
            ),
        ),
        (
            "lockout duration",
            env.config()
                .to_toml()
                .replace("duration = \"15m\"", "duration = \"soon\""),
        ),
    ] {
        assert_ne!(text, env.config().to_toml(), "{what}: replacement failed");
        let path = env.write_file("bad.toml", &text);
        let out = env.run_mfad(&path, Duration::from_secs(10));
        assert!(
            matches!(out.code, Some(c) if c != 0) && !out.stderr.trim().is_empty(),
            "{what}: mfad must refuse the config with a message:\n{out}"
        );
        assert!(!out.stderr.contains("panicked"), "{what}:\n{out}");
    }
}

/// The capability sets (effective, permitted, bounding) of every thread of
/// process `pid`, as the hex masks of /proc/PID/task/TID/status, by
/// "TID NAME".
fn thread_capabilities(pid: u32) -> Vec<(String, [u64; 3])> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read mfad's tasks");
    let mut caps = Vec::new();
    for task in tasks {
        let task = task.expect("a task");
        let status = std::fs::read_to_string(task.path().join("status")).expect("task status");
        let mask = |field: &str| {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .unwrap_or_else(|| panic!("no {field} in {status}"));
            u64::from_str_radix(line[field.len()..].trim(), 16).expect("a hex mask")
        };
        let name = std::fs::read_to_string(task.path().join("comm")).expect("task comm");
        caps.push((
            format!("{} {}", task.file_name().to_string_lossy(), name.trim()),
            [mask("CapEff:"), mask("CapPrm:"), mask("CapBnd:")],
        ));
    }
    assert!(caps.len() > 1, "mfad runs more than one thread: {caps:?}");
    caps
}

/// Capabilities are per thread: they must be gone from every thread that
/// serves calls, not only from the one that dropped them.
#[test]
fn no_thread_of_mfad_keeps_a_capability() {
    let env = Env::new();
    // Calls answered, so the runtime's threads have all run.
    let u = env.add_user();
    env.enroll_raw(&u);
    for (tid, sets) in thread_capabilities(env.daemon_pid().expect("running")) {
        assert_eq!(sets, [0, 0, 0], "thread {tid} keeps capabilities");
    }
}

/// With session duration on, mfad keeps exactly CAP_KILL (to end sessions)
/// and CAP_DAC_OVERRIDE (to warn on the user's terminal), in every thread
/// but the login socket's, which any local user reaches: they hold none.
#[test]
fn with_session_duration_every_thread_keeps_kill_and_dac_override_only() {
    const CAP_DAC_OVERRIDE: u64 = 1 << 1;
    const CAP_KILL: u64 = 1 << 5;
    let env = Env::builder()
        .extra_toml("[session]\nmax_duration = \"1h\"\n")
        .start();
    let u = env.add_user();
    env.enroll_raw(&u);
    let want = CAP_DAC_OVERRIDE | CAP_KILL;
    let threads = thread_capabilities(env.daemon_pid().expect("running"));
    let login = |t: &str| t.contains(" mfad-login-");
    assert!(
        threads.iter().filter(|(t, _)| login(t)).count() > 1,
        "the login socket's threads: {threads:?}"
    );
    for (thread, sets) in threads {
        if login(&thread) {
            assert_eq!(sets, [0, 0, want], "thread {thread}");
        } else {
            assert_eq!(sets, [want, want, want], "thread {thread}");
        }
    }
}
