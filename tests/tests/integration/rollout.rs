//! Rolling 2-step out: who must use it (`required_groups`, `exempt_groups`,
//! `exempt_users`, `[policy.service.NAME]`) with real groups through
//! getgrouplist, and the grace period, through pamtester and stacks where
//! PAM_IGNORE and PAM_SUCCESS pass and PAM_AUTH_ERR fails.

use std::time::{Duration, Instant};

use mfa_tests::daemon::toml_str;
use mfa_tests::{Clock, Cmd, Env, PamResult, Policy, User};

fn with_permit(env: &Env) -> String {
    env.pam_service_raw(&format!(
        "auth required {}\nauth required pam_permit.so\naccount required pam_permit.so\n",
        env.pam_module_spec()
    ))
}

/// Makes a new group `user`'s primary group (test users are made in
/// `users`, which every other test user shares).
fn set_primary_group(env: &Env, user: &User) -> String {
    let group = env.add_group(&[]);
    Cmd::new("usermod")
        .args(["-g", &group, &user.name])
        .run()
        .assert_success();
    let out = Cmd::new("id").args(["-Gn", &user.name]).run();
    assert_eq!(out.stdout.trim(), group, "only the primary group: {out}");
    group
}

#[test]
fn groups_users_and_services_decide_who_must_use_two_step() {
    let mut env = Env::builder().no_daemon().start();
    let staffer = env.add_user();
    let plain = env.add_user();
    let robot = env.add_user();
    let backup = env.add_user();
    let by_primary = env.add_user();
    let staff = env.add_group(&[&staffer, &backup]);
    let robots = env.add_group(&[&robot]);
    let lenient = with_permit(&env);
    let strict = with_permit(&env);
    // Refused rather than enrolled at login (enroll_login.rs), to tell
    // who must from who need not by the result alone.
    let policy = format!(
        "enroll_at_login = false\nrequired_groups = [{}, {}]\nexempt_groups = [{}]\nexempt_users = [{}]\n",
        toml_str(&staff),
        toml_str(&set_primary_group(&env, &by_primary)),
        toml_str(&robots),
        toml_str(&backup.name),
    );
    env.set_config(|c| {
        c.policy_toml = policy;
        c.extra_toml = format!(
            "[policy.service.{}]\nmode = \"required\"\n",
            toml_str(&strict)
        );
    });
    env.start_daemon();
    env.enroll_raw(&robot);

    let login = |user: &User, service: &str| env.pamtester(service, user, &[]);
    // A supplementary group of required_groups, and a primary one.
    login(&staffer, &lenient).assert_result(PamResult::AuthErr);
    login(&by_primary, &lenient).assert_result(PamResult::AuthErr);
    // Nobody else must, except through the strict service.
    let r = login(&plain, &lenient);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    login(&plain, &strict).assert_result(PamResult::AuthErr);
    // Exempt by group (even with a device) and by name (even in staff):
    // never asked, and the login is logged.
    for user in [&robot, &backup] {
        let r = login(user, &strict);
        r.assert_result(PamResult::Success);
        assert_eq!(r.prompts(), 0, "{} is exempt:\n{}", user.name, r.output);
        let log = env.daemon_log();
        assert!(
            log.lines()
                .any(|l| l.contains("login exempt") && l.contains(&format!("user={}", user.name))),
            "{log}"
        );
    }
    // Anyone else with a device is asked for a code.
    assert!(!env
        .daemon_log()
        .contains(&format!("user={} exempt", plain.name)));
    let dev = env.enroll_raw(&plain);
    let code = Clock::now().code(&dev.secret, 0);
    let r = env.pamtester(&lenient, &plain, &[&code]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
}

/// Polls `f` until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

#[test]
fn the_grace_period_runs_from_the_first_login_until_it_ends_and_a_reset_restarts_it() {
    let env = Env::builder()
        .policy(Policy::Required)
        .policy_toml("grace_period = \"4s\"\nenroll_at_login = false")
        .start();
    let nina = env.add_user();
    let svc = with_permit(&env);
    // The period starts at nina's first login, not when mfad started.
    std::thread::sleep(Duration::from_secs(5));
    let first = Instant::now();
    let r = env.pamtester(&svc, &nina, &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    let text = r.output.all();
    assert!(
        text.contains("mfactl enroll totp") && text.contains("second"),
        "the user is told how long is left and how to enroll:\n{text}"
    );
    // Ends 4 seconds after the first login.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(first.elapsed()));
    let r = env.pamtester(&svc, &nina, &[]);
    r.assert_result(PamResult::AuthErr);
    assert!(
        !r.output.all().contains("mfactl enroll totp"),
        "{}",
        r.output
    );
    // An admin reset gives her a new one.
    env.call(None, &["admin-reset", &nina.name]).ok();
    env.pamtester(&svc, &nina, &[])
        .assert_result(PamResult::Success);
    assert!(
        eventually(Duration::from_secs(8), || env
            .pamtester(&svc, &nina, &[])
            .result()
            == PamResult::AuthErr),
        "the new period ends too"
    );
    let log = env.daemon_log();
    assert!(log.contains("login in grace period"), "{log}");
}

fn device_id(env: &Env, user: &User) -> String {
    let s = env.mfactl_json(None, &["admin", "status", &user.name]);
    s["devices"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no device: {s}"))
        .to_string()
}

fn missing(env: &Env, as_user: Option<&User>) -> Vec<(String, i64)> {
    let v = env.mfactl_json(as_user, &["admin", "list", "--missing"]);
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|m| {
            (
                m["user"].as_str().expect("user").to_string(),
                m["grace_left"].as_i64().expect("grace_left"),
            )
        })
        .collect()
}

#[test]
fn admins_see_who_is_missing_and_remove_a_lost_device() {
    let mut env = Env::builder().no_daemon().start();
    let ann = env.add_login_user(None);
    let nol = env.add_user(); // no login shell: listed once seen at login
    let plain = env.add_login_user(None);
    let adm = env.add_user();
    let adm2 = env.add_login_user(None);
    let staff = env.add_group(&[&ann, &nol, &adm2]);
    let admins = env.add_group(&[&adm, &adm2]);
    env.set_config(|c| {
        c.admin_group = admins.clone();
        c.policy_toml = format!(
            "required_groups = [{}]\ngrace_period = \"1h\"\n",
            toml_str(&staff)
        );
    });
    env.start_daemon();
    let ours = |list: Vec<(String, i64)>| -> Vec<(String, i64)> {
        let names = [&ann.name, &nol.name, &plain.name, &adm.name, &adm2.name];
        list.into_iter()
            .filter(|(u, _)| names.contains(&u))
            .collect()
    };
    let mut want = vec![(ann.name.clone(), -1), (adm2.name.clone(), -1)];
    want.sort();
    assert_eq!(ours(missing(&env, None)), want);

    // nol is seen at login: listed, with the grace period running.
    let svc = with_permit(&env);
    env.pamtester(&svc, &nol, &[])
        .assert_result(PamResult::Success);
    let now = ours(missing(&env, Some(&adm)));
    let nol_left = now.iter().find(|(u, _)| *u == nol.name).map(|m| m.1);
    assert!(
        matches!(nol_left, Some(l) if (3590..=3600).contains(&l)),
        "{now:?}"
    );
    let text = env.mfactl(&["admin", "list", "--missing"]);
    text.assert_success();
    assert!(text.stdout.contains("starts at the next login"), "{text}");
    assert!(text.stdout.contains(&ann.name), "{text}");

    // Enrolled: off the list. The admin removes ann's lost phone: back on.
    env.enroll_raw(&ann);
    assert!(!ours(missing(&env, None)).iter().any(|m| m.0 == ann.name));
    let id = device_id(&env, &ann);
    let r = env.mfactl_as(&adm, &["admin", "remove", &ann.name, &id]);
    r.assert_success();
    assert!(r.stdout.contains(&id), "{r}");
    assert!(ours(missing(&env, None)).iter().any(|m| m.0 == ann.name));
    let again = env.mfactl_as(&adm, &["admin", "remove", &ann.name, &id]);
    again.assert_failure();
    assert!(again.stderr.contains("No device"), "{again}");

    // Another admin's device: only root may remove it.
    env.enroll_raw(&adm2);
    let id2 = device_id(&env, &adm2);
    let r = env.mfactl_as(&adm, &["admin", "remove", &adm2.name, &id2]);
    r.assert_failure();
    assert!(r.stderr.contains("Only root"), "{r}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r}");
    env.mfactl(&["admin", "remove", &adm2.name, &id2])
        .assert_success();
    // Not an admin: refused.
    let r = env.mfactl_as(&plain, &["admin", "list", "--missing"]);
    r.assert_failure();
    let r = env.mfactl_as(&plain, &["admin", "remove", &nol.name, "x"]);
    r.assert_failure();
    assert!(r.stderr.contains("admin"), "{r}");
}

fn hup(env: &Env) {
    let pid = env.daemon_pid().expect("mfad runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP to mfad");
}

/// Waits until the daemon's log has `n` lines containing `what`.
fn wait_log(env: &Env, what: &str, n: usize) -> String {
    let ok = eventually(Duration::from_secs(10), || {
        env.daemon_log().matches(what).count() >= n
    });
    let log = env.daemon_log();
    assert!(ok, "no {n}x {what:?} in the log:\n{log}");
    log
}

#[test]
fn sighup_rereads_the_config_and_keeps_logins_in_flight() {
    let mut env = Env::new();
    let una = env.add_user();
    let eve = env.add_user();
    let dev = env.enroll_raw(&eve);
    let svc = with_permit(&env);
    env.pamtester(&svc, &una, &[])
        .assert_result(PamResult::Success);
    // eve's login is waiting for her code while the config changes.
    let begun = env.call(None, &["login-begin", &eve.name]);
    assert_eq!(begun.ok()["action"], "challenge", "{begun:?}");
    let attempt = begun.ok()["attempt"].as_str().expect("attempt").to_string();

    env.set_config(|c| {
        c.policy = Policy::Required;
        c.policy_toml = "enroll_at_login = false\n".into();
    });
    hup(&env);
    wait_log(&env, "config reloaded", 1);
    env.pamtester(&svc, &una, &[])
        .assert_result(PamResult::AuthErr);
    let code = Clock::now().code(&dev.secret, 0);
    let answered = env.call(None, &["answer", &attempt, &code]);
    assert_eq!(answered.ok()["result"], "success", "{answered:?}");

    // A bad file is refused, logged, and the config in force stays.
    std::fs::write(env.config_path(), "[policy]\nmode = \"maybe\"\n").expect("write");
    hup(&env);
    let log = wait_log(&env, "config refused", 1);
    let line = log
        .lines()
        .find(|l| l.contains("config refused"))
        .unwrap_or_default();
    assert!(line.contains("line 2"), "{line}");
    env.pamtester(&svc, &una, &[])
        .assert_result(PamResult::AuthErr);
    assert!(env.daemon_pid().is_some(), "mfad still runs");
    // What needs a restart is said, and kept.
    env.set_config(|c| c.bus = "unix:path=/nonexistent/bus".into());
    hup(&env);
    let log = wait_log(&env, "config reloaded", 2);
    assert!(log.contains("config needs a restart"), "{log}");
    env.pamtester(&svc, &una, &[])
        .assert_result(PamResult::AuthErr);
}

#[test]
fn check_config_prints_the_policy_and_warns_about_root() {
    let env = Env::builder()
        .no_daemon()
        .policy(Policy::Required)
        .policy_toml("grace_period = \"7d\"")
        .start();
    let out = Cmd::new(mfa_tests::paths::mfad())
        .arg("--check-config")
        .arg("--config")
        .arg(env.config_path())
        .run();
    out.assert_success();
    for want in [
        "valid",
        "mode = \"required\", grace_period = \"7days\"",
        "have no device:",
        "warning: root must use 2-step verification but has no device",
    ] {
        assert!(out.stdout.contains(want), "{want:?}:\n{out}");
    }
    // mfad never ran there: check-config leaves no state behind.
    assert!(!env.state_dir().join("mfad.db").exists());

    let bad = env.write_file("bad.toml", "[policy]\nexempt_users = [\"a b\"]\n");
    let out = Cmd::new(mfa_tests::paths::mfad())
        .args(["--check-config", "--config"])
        .arg(&bad)
        .run();
    out.assert_failure();
    assert!(out.stdout.is_empty(), "{out}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(out.stderr.contains("exempt_users"), "{out}");
    let missing = Cmd::new(mfa_tests::paths::mfad())
        .args(["--check-config", "--config", "/nonexistent/mfad.toml"])
        .run();
    missing.assert_failure();
    assert!(missing.stderr.contains("cannot read"), "{missing}");
}

fn root() -> User {
    User {
        name: "root".into(),
        uid: 0,
        gid: 0,
    }
}

/// The test: mfad stopped, failmode=secure; root logs in with one
/// code once, the same code fails the second time, another user cannot use
/// one; with mfad running a break-glass code is not a verification code;
/// mfad reports the use when it starts again.
#[test]
fn break_glass_codes_let_root_in_once_while_mfad_is_down() {
    let mut env = Env::builder().no_daemon().start();
    let file = env.dir().join("break-glass");
    let file_s = file.to_string_lossy().to_string();
    env.set_config(|c| c.daemon_toml = format!("break_glass = {}", toml_str(&file_s)));
    env.start_daemon();
    let other = env.add_user();

    // Only root makes codes.
    let r = env.mfactl_as(
        &other,
        &["admin", "break-glass", "--generate", "--file", "/tmp/x"],
    );
    r.assert_failure();
    assert!(r.stderr.contains("Only root"), "{r}");
    let v = env.mfactl_json(
        None,
        &[
            "admin",
            "break-glass",
            "--generate",
            "--count",
            "2",
            "--file",
            &file_s,
        ],
    );
    let codes: Vec<String> = v["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(codes.len(), 2, "{v}");
    assert!(
        codes.iter().all(|c| c.replace('-', "").len() >= 16),
        "{codes:?}"
    );
    let meta = std::fs::metadata(&file).expect("the file");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (0, 0o600));
    let stored = std::fs::read_to_string(&file).expect("read");
    assert!(!codes.iter().any(|c| stored.contains(&c.replace('-', ""))));

    let svc = env.pam_service(&format!(
        "failmode=secure breakglass={file_s} breakglass_users=root"
    ));
    // mfad running: the code is only a (wrong) verification code.
    env.enroll_raw(&root());
    let r = env.pamtester(&svc, &root(), &[&codes[0], &codes[0], &codes[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(!r.output.all().contains("break-glass"), "{}", r.output);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), stored);

    // mfad stopped; both phases, as sshd and su run them.
    env.stop_daemon();
    let args = format!("failmode=secure breakglass={file_s}");
    let both = env.pam_service_raw(&format!(
        "auth required {m} {args}\naccount required {m} {args}\n",
        m = env.pam_module_spec()
    ));
    use mfa_tests::pam::rc;
    let r = env.pam_run(&both, &root(), &["--acct"], &[&codes[0]]);
    assert_eq!(r.auth_rc(0), rc::PAM_SUCCESS, "{}", r.output);
    assert_eq!(r.round_rc(0, "acct_mgmt"), rc::PAM_SUCCESS, "{}", r.output);
    assert_eq!(r.prompt_styles(), ["echo_off"], "{}", r.output);
    assert!(r.prompts()[0].contains("break-glass"), "{}", r.output);
    // Used once: the same code fails, and so does a made-up one.
    let r = env.pam_run(&both, &root(), &[], &[&codes[0]]);
    assert_eq!(r.auth_rc(0), rc::PAM_AUTH_ERR, "{}", r.output);
    let r = env.pam_run(&both, &root(), &[], &["aaaaa-aaaaa-aaaaa-aaaaa"]);
    assert_eq!(r.auth_rc(0), rc::PAM_AUTH_ERR, "{}", r.output);
    // Not in breakglass_users (default root): never asked, failmode=secure
    // refuses in both phases.
    let r = env.pam_run(&both, &other, &["--acct"], &[&codes[1]]);
    assert_eq!(r.auth_rc(0), rc::PAM_AUTHINFO_UNAVAIL, "{}", r.output);
    assert!(r.prompts().is_empty(), "{}", r.output);
    assert_eq!(
        r.round_rc(0, "acct_mgmt"),
        rc::PAM_PERM_DENIED,
        "{}",
        r.output
    );

    env.start_daemon();
    let log = wait_log(&env, "break-glass code was used", 1);
    assert!(
        log.lines()
            .any(|l| l.contains("break-glass code was used") && l.contains("user=root")),
        "{log}"
    );
    assert_eq!(log.matches("break-glass code was used").count(), 1, "{log}");
}

/// Over the real sshd (key, then keyboard-interactive, with the account
/// guard): a user in their grace period gets in on the key alone; once it
/// is over, the login is refused. (sshd hands the module's info text to
/// the client only in a login with a terminal, after it; this harness runs
/// a command without one, so the notice itself is checked through
/// pamtester above.)
#[test]
fn ssh_logins_in_the_grace_period_are_told_to_enroll_then_refused() {
    use mfa_tests::ssh::{account_guard, SshOpts, SshSetup};
    let env = Env::builder()
        .policy(Policy::Required)
        .policy_toml("grace_period = \"6s\"\nenroll_at_login = false")
        .start();
    let gus = env.add_login_user(None);
    let key = env.ssh_key();
    let sshd = env.sshd(SshSetup::key_then_code(&env).account(&account_guard(&env)));
    sshd.authorize(&gus, &[&key]);
    let opts = SshOpts {
        key: Some(&key),
        attempts: 1,
        ..SshOpts::default()
    };
    let start = Instant::now();
    let r = sshd.ssh(&gus, &opts);
    r.assert_logged_in();
    assert_eq!(r.code_prompts(), 0, "{r}");
    assert!(
        env.daemon_log().contains("login in grace period"),
        "{}",
        env.daemon_log()
    );
    std::thread::sleep(Duration::from_secs(7).saturating_sub(start.elapsed()));
    sshd.ssh(&gus, &opts).assert_refused();
}
