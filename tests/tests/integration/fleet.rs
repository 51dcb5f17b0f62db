//! Many hosts, one PostgreSQL: two mfad on two private buses ("hosts" A and
//! B) share a real PostgreSQL server the test starts. An enrollment made on
//! one host logs in on the other; a code, a failure, a reset count on every
//! host; trust stays on its host unless fleet-wide; a database that is down
//! or too slow fails logins closed within the timeout, as "mfad
//! unavailable", and the daemon recovers by itself when it returns.

use std::time::Duration;

use serde_json::Value;

use mfa_tests::postgres::{store_toml, Postgres};
use mfa_tests::ssh::{SshOpts, SshSetup};
use mfa_tests::{wrong_code, Clock, Env, EnvBuilder, PamResult, PamtesterOpts, User};

/// Host `name` on the shared database `pg`, with the fleet's key file.
fn host(pg: &Postgres, name: &str, timeout: &str, b: EnvBuilder) -> Env {
    b.host_name(name)
        .daemon_toml(&pg.daemon_toml())
        .store(&pg.store_toml(timeout))
        .start()
}

fn two_hosts(pg: &Postgres, b: impl Fn() -> EnvBuilder) -> (Env, Env) {
    (host(pg, "host-a", "5s", b()), host(pg, "host-b", "5s", b()))
}

#[test]
fn enrolled_on_one_host_logs_in_on_another_and_a_code_works_once_in_the_fleet() {
    let pg = Postgres::start();
    let (a, b) = two_hosts(&pg, Env::builder);
    let alice = a.add_user();
    let dev = a.enroll(&alice);
    let (svc_a, svc_b) = (a.pam_service(""), b.pam_service(""));
    let c = Clock::now().codes(&dev.secret, 0, 1);

    b.pamtester(&svc_b, &alice, &[&c[0]])
        .assert_result(PamResult::Success);
    // The same code on the other host, within its 30 seconds: refused.
    let r = a.pamtester(&svc_a, &alice, &[&c[0], &c[0], &c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(r.transcript().contains("already used"), "{}", r.output);
    // A backup code used on A is gone on B.
    a.pamtester(&svc_a, &alice, &[&dev.backup_codes[0]])
        .assert_result(PamResult::Success);
    let used = &dev.backup_codes[0];
    b.pamtester(&svc_b, &alice, &[used, used, used])
        .assert_result(PamResult::AuthErr);
    let s = b.mfactl_json(None, &["admin", "status", &alice.name]);
    assert_eq!(s["backup_codes_left"], 9, "{s}");
    a.pamtester(&svc_a, &alice, &[&c[1]])
        .assert_result(PamResult::Success);
    // Every audit line names the host it happened on.
    assert!(
        b.daemon_log()
            .lines()
            .any(|l| l.contains("host=host-b") && l.contains(&alice.name)),
        "{}",
        b.daemon_log()
    );
}

/// Through the real sshd on host B, for a user who enrolled on host A.
#[test]
fn enrolled_on_one_host_logs_in_over_ssh_on_another() {
    let pg = Postgres::start();
    let (a, b) = two_hosts(&pg, || Env::builder().max_failures(100));
    let hank = a.add_login_user(None);
    let dev = a.enroll(&hank);
    let sshd = b.sshd(SshSetup::kbd_int(&b));
    let c = Clock::now().codes(&dev.secret, 0, 0);
    let opts = SshOpts {
        codes: vec![c[0].clone()],
        ..SshOpts::default()
    };
    sshd.ssh(&hank, &opts).assert_logged_in();
    // The code is spent for host A too.
    let svc_a = a.pam_service("");
    let r = a.pamtester(&svc_a, &hank, &[&c[0], &c[0], &c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(r.transcript().contains("already used"), "{}", r.output);
}

#[test]
fn failures_count_across_hosts_and_an_admin_reset_on_one_host_holds_on_all() {
    let pg = Postgres::start();
    let (a, b) = two_hosts(&pg, || Env::builder().max_failures(3));
    let bob = a.add_user();
    let dev = a.enroll(&bob);
    let (svc_a, svc_b) = (a.pam_service(""), b.pam_service(""));
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 0);

    // Two wrong codes on A, then the user gives up (no third answer).
    assert!(!a.pamtester(&svc_a, &bob, &[&w, &w]).authenticated());
    assert_eq!(b.failures(&bob), 2, "A's failures are seen on B");
    assert!(!b.pamtester(&svc_b, &bob, &[&w]).authenticated());
    let s = a.mfactl_json(None, &["admin", "status", &bob.name]);
    assert!(
        s["locked_until"].as_i64().unwrap_or(0) > 0,
        "the third failure, on B, locks on A: {s}"
    );
    // Locked everywhere: the right code fails on A.
    let r = a.pamtester(&svc_a, &bob, &[&c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(
        r.transcript()
            .to_lowercase()
            .contains("too many failed attempts"),
        "{}",
        r.output
    );

    // Lost phone: the admin resets on B; A knows no enrollment any more.
    b.mfactl(&["admin", "reset", &bob.name]).assert_success();
    let s = a.mfactl_json(None, &["admin", "status", &bob.name]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
    assert_eq!(s["locked_until"], 0, "{s}");
    a.pamtester(&svc_a, &bob, &[&dev.backup_codes[0]])
        .assert_result(PamResult::PermDenied);
}

/// A service that grants trust in its account phase, used from `rhost`.
fn trusted_login(env: &Env, user: &User, rhost: &str, answers: &[&str]) -> mfa_tests::PamOutcome {
    let svc = env.pam_service_raw(&format!(
        "auth required {m}\naccount required {m}\n",
        m = env.pam_module_spec()
    ));
    env.pamtester_with(
        &svc,
        user,
        answers,
        &PamtesterOpts {
            items: vec![("rhost", rhost)],
            ops: vec!["authenticate", "acct_mgmt"],
            ..PamtesterOpts::default()
        },
    )
}

#[test]
fn trust_stays_on_its_host_unless_fleet_wide() {
    let pg = Postgres::start();
    let (a, b) = two_hosts(&pg, || Env::builder().trusted_lifetime("30d"));
    let carol = a.add_user();
    let dev = a.enroll(&carol);
    let c = Clock::now().codes(&dev.secret, 0, 2);
    let rhost = "10.1.2.3";

    trusted_login(&a, &carol, rhost, &[&c[0]]).assert_result(PamResult::Success);
    let r = trusted_login(&a, &carol, rhost, &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "trusted on A: {}", r.output);
    // B has not trusted that device: it asks for a code.
    let r = trusted_login(&b, &carol, rhost, &[&c[1]]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "B must ask: {}", r.output);
    drop((a, b, carol));

    // scope = "fleet": one host's trust holds on the other. A fresh
    // database: the next user may get carol's UID back.
    let pg = Postgres::start();
    let (a, b) = two_hosts(&pg, || {
        Env::builder()
            .trusted_lifetime("30d")
            .trusted_scope("fleet")
    });
    let dave = a.add_user();
    let dev = a.enroll(&dave);
    let c = Clock::now().codes(&dev.secret, 0, 0);
    trusted_login(&a, &dave, rhost, &[&c[0]]).assert_result(PamResult::Success);
    let r = trusted_login(&b, &dave, rhost, &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "fleet-wide trust on B: {}", r.output);
}

/// Margin over the store's timeout for process start-up and a slow box.
const SLACK: Duration = Duration::from_secs(4);

#[test]
fn a_slow_or_stopped_database_fails_closed_in_time_and_mfad_recovers_by_itself() {
    let pg = Postgres::start();
    let a = host(&pg, "host-a", "2s", Env::builder());
    let erin = a.add_user();
    let dev = a.enroll(&erin);
    let pid = a.daemon_pid();
    let spec = a.pam_module_spec();
    let secure = a.pam_service("failmode=secure timeout=10");
    let safe = a.pam_service_raw(&format!(
        "auth required {spec} failmode=safe timeout=10\nauth required pam_permit.so\n"
    ));
    let c = Clock::now().codes(&dev.secret, 0, 1);

    // Slow: another session holds the users table; every read waits.
    {
        let _held = pg.hold("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;");
        std::thread::sleep(Duration::from_millis(500));
        let r = a.pamtester(&secure, &erin, &[&c[0]]);
        r.assert_result(PamResult::AuthInfoUnavail);
        assert!(
            r.output.elapsed < Duration::from_secs(2) + SLACK,
            "held the login for {:?}",
            r.output.elapsed
        );
        // Unavailability, not a refusal: failmode=safe steps aside.
        a.pamtester(&safe, &erin, &[&c[0]])
            .assert_result(PamResult::Success);
    }

    // Stopped.
    pg.stop_server();
    let r = a.pamtester(&secure, &erin, &[&c[0]]);
    r.assert_result(PamResult::AuthInfoUnavail);
    assert!(
        r.output.elapsed < Duration::from_secs(2) + SLACK,
        "{:?}",
        r.output.elapsed
    );
    assert!(
        a.daemon_log().contains("state database unavailable"),
        "no clear log line:\n{}",
        a.daemon_log()
    );

    // Back: the same daemon serves the next login.
    pg.start_server();
    a.pamtester(&secure, &erin, &[&c[0]])
        .assert_result(PamResult::Success);
    assert_eq!(a.daemon_pid(), pid, "mfad was not restarted");
    let r = a.pamtester(&secure, &erin, &[&c[0], &c[0], &c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(r.transcript().contains("already used"), "{}", r.output);
}

/// `mfad migrate --to-postgres` with a host's config.
fn migrate(env: &Env) -> mfa_tests::Output {
    mfa_tests::Cmd::new(mfa_tests::paths::mfad())
        .arg("--config")
        .arg(env.config_path())
        .args(["migrate", "--to-postgres"])
        .timeout(Duration::from_secs(60))
        .run()
}

#[test]
fn migration_merges_hosts_enrolled_apart_without_losing_a_device() {
    let pg = Postgres::start();
    // Two hosts on their own SQLite databases, with the fleet's key file
    // from the start; the user enrolled on both.
    let mut a = Env::builder()
        .host_name("host-a")
        .daemon_toml(&pg.daemon_toml())
        .start();
    let mut b = Env::builder()
        .host_name("host-b")
        .daemon_toml(&pg.daemon_toml())
        .start();
    let frank = a.add_user();
    let grace = a.add_user();
    let app_a = a.enroll(&frank);
    let app_b = b.enroll(&frank);
    let grace_app = b.enroll(&grace);
    let svc_a = a.pam_service("");
    let w = wrong_code(&app_a.secret);
    assert!(!a.pamtester(&svc_a, &frank, &[&w]).authenticated());

    for env in [&mut a, &mut b] {
        env.set_config(|c| c.store = Some(pg.store_toml("5s")));
    }
    // Not while the host's mfad runs.
    let out = migrate(&a);
    out.assert_failure();
    assert!(out.stderr.contains("in use by another mfad"), "{out}");
    a.stop_daemon();
    b.stop_daemon();
    let out = migrate(&a);
    out.assert_success();
    assert!(
        out.stdout
            .contains("1 of 1 devices added, 10 of 10 backup codes"),
        "{out}"
    );
    let out = migrate(&b);
    out.assert_success();
    assert!(out.stdout.contains("migrated 2 accounts"), "{out}");
    // Again: nothing is added twice.
    let out = migrate(&a);
    out.assert_success();
    assert!(
        out.stdout
            .contains("0 of 1 devices added, 0 of 10 backup codes"),
        "{out}"
    );

    a.start_daemon();
    b.start_daemon();
    let s = a.mfactl_json(None, &["admin", "status", &frank.name]);
    assert_eq!(s["devices"].as_array().map(Vec::len), Some(2), "{s}");
    assert_eq!(s["backup_codes_left"], 20, "{s}");
    assert_eq!(s["failures"], 1, "the failure on A came along: {s}");
    let svc_b = b.pam_service("");
    // Host A's app logs in on B and host B's app on A.
    let c_a = Clock::now().codes(&app_a.secret, 0, 0);
    let c_b = Clock::now().codes(&app_b.secret, 1, 1);
    b.pamtester(&svc_b, &frank, &[&c_a[0]])
        .assert_result(PamResult::Success);
    a.pamtester(&svc_a, &frank, &[&c_b[0]])
        .assert_result(PamResult::Success);
    // Both hosts' backup codes work anywhere.
    a.pamtester(&svc_a, &frank, &[&app_b.backup_codes[0]])
        .assert_result(PamResult::Success);
    b.pamtester(&svc_b, &frank, &[&app_a.backup_codes[0]])
        .assert_result(PamResult::Success);
    let c = Clock::now().codes(&grace_app.secret, 0, 0);
    a.pamtester(&svc_a, &grace, &[&c[0]])
        .assert_result(PamResult::Success);
}

/// A host whose database was sealed under a key of its own (not the
/// fleet's) cannot be merged: the migration says why, and adds nothing.
#[test]
fn migration_refuses_a_database_sealed_under_another_key() {
    let pg = Postgres::start();
    let mut a = Env::builder().host_name("host-a").start();
    let lee = a.add_user();
    a.enroll(&lee);
    a.stop_daemon();
    let fleet = pg.daemon_toml();
    a.set_config(|c| {
        c.store = Some(pg.store_toml("5s"));
        c.daemon_toml = fleet;
    });
    let out = migrate(&a);
    out.assert_failure();
    assert!(out.stderr.contains("same key file"), "{out}");
    let devices = pg.psql("mfa", "SELECT count(*) FROM devices");
    devices.assert_success();
    assert_eq!(devices.stdout.trim(), "0", "nothing added: {devices}");
}

#[test]
fn migration_needs_a_postgres_store_and_a_database() {
    let a = Env::builder().no_daemon().start();
    let out = migrate(&a);
    out.assert_failure();
    assert!(out.stderr.contains("backend = \"postgres\""), "{out}");
}

/// Over TCP the database is spoken to over TLS, its certificate checked
/// against `sslrootcert`; a server the roots do not vouch for is refused.
#[test]
fn a_database_over_tcp_is_reached_over_verified_tls() {
    let pg = Postgres::start_tls();
    let a = Env::builder()
        .host_name("host-a")
        .daemon_toml(&pg.daemon_toml())
        .store(&store_toml(&pg.tls_url(&pg.ca()), "5s"))
        .start();
    let ivy = a.add_user();
    let dev = a.enroll(&ivy);
    let svc = a.pam_service("");
    let c = Clock::now().codes(&dev.secret, 0, 0);
    a.pamtester(&svc, &ivy, &[&c[0]])
        .assert_result(PamResult::Success);
    let tls = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'mfad' AND s.ssl",
    );
    tls.assert_success();
    assert_ne!(tls.stdout.trim(), "0", "mfad's sessions are not TLS: {tls}");

    // Roots that do not vouch for the server: mfad does not start.
    let other = Postgres::start_tls();
    let b = Env::builder()
        .no_daemon()
        .store(&store_toml(&pg.tls_url(&other.ca()), "5s"))
        .start();
    let out = b.run_mfad(b.config_path(), Duration::from_secs(30));
    out.assert_failure();
    assert!(
        out.stderr.contains("certificate") || out.stderr.contains("UnknownIssuer"),
        "{out}"
    );
}

/// Every host must use the fleet's key file: a host without it refuses to
/// start (and to make a key of its own) once the database holds secrets.
#[test]
fn a_host_without_the_fleets_key_file_does_not_start() {
    let pg = Postgres::start();
    let a = host(&pg, "host-a", "5s", Env::builder());
    let kim = a.add_user();
    a.enroll(&kim);
    let c = Env::builder()
        .no_daemon()
        .host_name("host-c")
        .store(&pg.store_toml("5s"))
        .start();
    let out = c.run_mfad(c.config_path(), Duration::from_secs(30));
    out.assert_failure();
    assert!(
        out.stderr.contains("key file") && out.stderr.contains("fleet's key"),
        "{out}"
    );
    assert!(
        !c.config_path()
            .with_file_name("state")
            .join("mfad.key")
            .exists(),
        "no key of its own"
    );
}
