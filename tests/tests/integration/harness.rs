//! The harness's own parts, checked against the real tools: oathtool, the
//! bus config script, the private bus, users and PAM service files.

use std::path::Path;

use mfa_tests::codes::{totp_code, totp_codes, Clock};
use mfa_tests::{paths, Cmd, Env};

/// RFC 6238 appendix B, SHA1, truncated to 6 digits: oathtool is a sound
/// independent implementation for the tests.
#[test]
fn oathtool_matches_rfc6238_vectors() {
    // base32 of the ASCII secret "12345678901234567890"
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp_code(secret, 59), "287082");
    assert_eq!(totp_code(secret, 1111111109), "081804");
    assert_eq!(totp_code(secret, 1111111111), "050471");
    assert_eq!(totp_code(secret, 1234567890), "005924");
    assert_eq!(totp_code(secret, 2000000000), "279037");
    // A batch equals the codes one by one.
    let batch = totp_codes(secret, 59, 3);
    assert_eq!(
        batch,
        vec![
            totp_code(secret, 59),
            totp_code(secret, 89),
            totp_code(secret, 119)
        ]
    );
    let clock = Clock { now: 59 };
    assert_eq!(clock.code(secret, 0), "287082");
    assert_eq!(clock.codes(secret, -1, 1)[1], "287082");
}

fn bus_config(dir: &Path, stock: Option<&str>) -> mfa_tests::Output {
    let mut cmd = Cmd::new("bash")
        .arg(paths::repo_root().join("scripts/bus-config.sh"))
        .arg(dir);
    if let Some(s) = stock {
        cmd = cmd.env("MFA_STOCK_BUS_CONF", s);
    }
    cmd.run()
}

#[test]
fn bus_config_script_derives_a_private_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bus_config(dir.path(), None);
    out.assert_success();
    let conf = &out.stdout;
    let socket = dir.path().canonicalize().expect("canon").join("bus");
    assert!(
        conf.contains(&format!("<listen>unix:path={}</listen>", socket.display())),
        "{conf}"
    );
    assert!(conf.contains("<auth>EXTERNAL</auth>"), "{conf}");
    let policy = paths::repo_root().join("packaging/dbus/org.mfad.Mfa1.conf");
    let policy = policy.canonicalize().expect("policy file exists");
    assert!(
        conf.contains(&format!("<include>{}</include>", policy.display())),
        "{conf}"
    );
    // Only the one listen, auth and include; none of the dropped elements
    // outside comments.
    let mut body = conf.clone();
    while let Some(start) = body.find("<!--") {
        let end = body[start..].find("-->").expect("comment closed") + start + 3;
        body.replace_range(start..end, "");
    }
    for gone in [
        "<user>",
        "<fork",
        "<pidfile>",
        "<syslog",
        "<standard_system_servicedirs",
        "<servicehelper>",
        "<includedir>",
        "system-local.conf",
        "/etc/dbus-1/system.conf",
        "/run/dbus/system_bus_socket",
    ] {
        assert!(!body.contains(gone), "{gone} left in:\n{body}");
    }
    assert_eq!(body.matches("<include").count(), 1, "{body}");
    assert_eq!(body.matches("<listen>").count(), 1, "{body}");
    // The stock default policy is kept.
    assert!(
        body.contains(r#"<deny send_type="method_call"/>"#),
        "{body}"
    );
    assert!(body.contains("<type>system</type>"), "{body}");
}

#[test]
fn bus_config_script_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = bus_config(dir.path(), Some("/nonexistent/system.conf"));
    missing.assert_failure();
    assert!(missing.stdout.is_empty(), "{missing}");
    assert!(
        missing.stderr.contains("/nonexistent/system.conf") && missing.stderr.contains("missing"),
        "{missing}"
    );
    let nodir = bus_config(Path::new("/nonexistent-mfa-dir"), None);
    nodir.assert_failure();
    assert!(nodir.stderr.contains("does not exist"), "{nodir}");
    let usage = Cmd::new("bash")
        .arg(paths::repo_root().join("scripts/bus-config.sh"))
        .run();
    usage.assert_failure();
    assert!(usage.stderr.contains("usage"), "{usage}");
}

/// The private bus starts, a test user can connect to it, and dropping the
/// Env removes the users, service files and temp dir it made.
#[test]
fn env_makes_and_removes_its_world() {
    let env = Env::builder().no_daemon().start();
    let dir = env.dir().to_path_buf();
    assert!(env.bus_address().starts_with("unix:path=/"));
    let user = env.add_user();
    assert!(user.name.starts_with("mfat") && user.name.len() <= 32);
    assert!(mfa_tests::users::lookup(&user.name).is_some());
    let svc = env.pam_service("debug");
    let svc_path = env.pam_service_path(&svc);
    let contents = std::fs::read_to_string(&svc_path).expect("service file");
    assert!(contents.contains(&format!(
        "auth required {} bus={} debug",
        paths::pam_module().display(),
        env.bus_address()
    )));
    assert!(contents.contains("account required pam_permit.so"));

    // A test user reaches the bus through the 0755 temp dir.
    let out = Cmd::new(paths::tool("dbus-send", "dbus-bin"))
        .arg(format!("--bus={}", env.bus_address()))
        .args([
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetId",
        ])
        .as_user(&user)
        .run();
    out.assert_success();
    // ... and setpriv really changed the uid.
    let id = Cmd::new("id").arg("-u").as_user(&user).run();
    assert_eq!(id.stdout.trim(), user.uid.to_string(), "{id}");

    drop(env);
    assert!(
        mfa_tests::users::lookup(&user.name).is_none(),
        "user left behind"
    );
    assert!(!svc_path.exists(), "service file left behind");
    assert!(!dir.exists(), "temp dir left behind");
}

#[test]
fn commands_time_out_and_are_killed() {
    let out = Cmd::new("sleep")
        .arg("10")
        .timeout(std::time::Duration::from_millis(300))
        .run();
    assert!(out.timed_out, "{out}");
    assert!(out.elapsed < std::time::Duration::from_secs(5), "{out}");
}

/// pam-run drives libpam in-process and reports its results and the
/// process's threads and fds; checked with stock modules.
#[test]
fn pam_run_reports_libpam_results() {
    use mfa_tests::pam::rc;
    let env = Env::builder().no_daemon().start();
    let user = env.add_user();
    for (stack, want) in [
        ("auth required pam_permit.so\n", rc::PAM_SUCCESS),
        ("auth required pam_deny.so\n", rc::PAM_AUTH_ERR),
        // Every module ignored: what pam_mfa's PAM_IGNORE alone looks like.
        ("auth [default=ignore] pam_deny.so\n", rc::PAM_PERM_DENIED),
    ] {
        let svc = env.pam_service_raw(stack);
        let run = env.pam_run(&svc, &user, &["--repeat", "2"], &[]);
        assert_eq!(run.rounds(), 2);
        assert_eq!(run.auth_rc(0), want, "{stack}{}", run.output);
        assert_eq!(run.auth_rc(1), want, "{stack}{}", run.output);
        assert!(run.leaks().is_empty(), "{:?}", run.leaks());
    }
    // pamtester's verdicts parse the same way.
    let svc = env.pam_service_raw("auth [default=ignore] pam_deny.so\n");
    env.pamtester(&svc, &user, &[])
        .assert_result(mfa_tests::PamResult::PermDenied);
    let svc = env.pam_service_raw("auth required pam_deny.so\n");
    env.pamtester(&svc, &user, &[])
        .assert_result(mfa_tests::PamResult::AuthErr);
}

/// A private sshd: its PAM service is named after the symlink it runs as,
/// it serves on its own port, the askpass script answers and logs
/// prompts, and dropping it stops sshd and removes the service file and
/// the key directory.
#[test]
fn sshd_makes_and_removes_its_world() {
    use mfa_tests::ssh::{SshOpts, SshSetup};
    let env = Env::builder().no_daemon().start();
    let pw = mfa_tests::random_letters(12);
    let user = env.add_login_user(Some(&pw));
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with(&format!("{}:", user.name)) && l.ends_with(":/bin/sh")),
        "login users get /bin/sh"
    );
    let sshd = env.sshd(SshSetup::new(
        "keyboard-interactive",
        "auth required pam_unix.so nodelay",
    ));
    assert!(sshd.name.starts_with("sshd-mfat"));
    let service = std::path::Path::new("/etc/pam.d").join(&sshd.name);
    let contents = std::fs::read_to_string(&service).expect("sshd's PAM service");
    assert!(
        contents.contains("auth required pam_unix.so nodelay"),
        "{contents}"
    );
    assert!(std::path::Path::new("/run/sshd").is_dir());

    // pam_unix's prompt reaches the askpass script, which answers it.
    let r = sshd.ssh(
        &user,
        &SshOpts {
            password: Some(&pw),
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert_eq!(r.password_prompts(), 1, "{r}");
    assert!(
        r.prompts[0].starts_with(&format!("({}@127.0.0.1) ", user.name)),
        "{r}"
    );
    let r = sshd.ssh(
        &user,
        &SshOpts {
            password: Some("wrong"),
            attempts: 1,
            ..SshOpts::default()
        },
    );
    r.assert_refused();

    let log = sshd.log();
    assert!(log.contains(&format!("Server listening on 127.0.0.1 port {}", sshd.port)));
    let pid = sshd.pid().expect("sshd runs");
    let keys = sshd.keys_dir().to_path_buf();
    assert!(keys.starts_with("/run"), "StrictModes refuses /tmp");
    drop(sshd);
    assert!(!service.exists(), "service file left behind");
    assert!(!keys.exists(), "key directory left behind");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "sshd {pid} still there"
    );
}
