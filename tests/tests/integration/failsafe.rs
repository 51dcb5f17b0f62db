//! The daemon goes away in the middle of a login, after the code prompt:
//! the login fails cleanly and in time (no hang, no crash of the process
//! holding the PAM handle), and the next login works. Through pamtester
//! and through the real sshd, whose per-connection child runs the module.
//! (Daemon down before the login, hung daemon and hung bus: failmode.rs.)

use std::time::{Duration, Instant};

use mfa_tests::pam::PROMPT;
use mfa_tests::ssh::{SshOpts, SshSetup};
use mfa_tests::{paths, Clock, Cmd, Env, PamOutcome, PamResult};

/// The module's timeout in these tests, and the margin for process start
/// and a busy machine.
const TIMEOUT: u64 = 3;
const SLACK: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy)]
enum Mishap {
    /// Stopped and started again: a new daemon that never saw the session.
    Restart,
    /// Stopped for good.
    Stop,
}

#[test]
fn the_daemon_goes_away_after_the_prompt() {
    for mishap in [Mishap::Restart, Mishap::Stop] {
        let mut env = Env::builder().max_failures(100).start();
        let hana = env.add_user();
        let dev = env.enroll_raw(&hana);
        let svc = env.pam_service(&format!("timeout={TIMEOUT}"));
        let c = Clock::now().codes(&dev.secret, 0, 1);

        let mut run = Cmd::new(paths::tool("pamtester", "pamtester"))
            .args(["-v", &svc, &hana.name, "authenticate"])
            .timeout(Duration::from_secs(30))
            .spawn_interactive();
        run.wait_for(PROMPT, 1, Duration::from_secs(10));
        env.stop_daemon();
        if let Mishap::Restart = mishap {
            env.start_daemon();
        }
        let sent = Instant::now();
        run.send_line(&c[0]);
        let r = PamOutcome {
            output: run.finish(),
        };
        let waited = sent.elapsed();
        assert!(
            matches!(r.result(), PamResult::AuthErr | PamResult::AuthInfoUnavail),
            "{mishap:?}: the login must fail cleanly:\n{}",
            r.output
        );
        assert_eq!(r.output.signal, None, "{mishap:?}: {}", r.output);
        assert!(
            waited < Duration::from_secs(TIMEOUT) + SLACK,
            "{mishap:?}: took {waited:?}"
        );
        // The user is told something, not left with a bare failure.
        let transcript = r.transcript();
        let told: Vec<&str> = transcript
            .lines()
            .filter(|l| !l.contains("pamtester:") && !l.trim().is_empty())
            .filter(|l| l.trim() != PROMPT)
            .collect();
        assert!(!told.is_empty(), "{mishap:?}: no message:\n{}", r.output);
        assert!(
            transcript.contains("stopped answering"),
            "{mishap:?}: the user is told the service went away:\n{}",
            r.output
        );

        if let Mishap::Stop = mishap {
            env.start_daemon();
        }
        env.pamtester(&svc, &hana, &[&c[1]])
            .assert_result(PamResult::Success);
    }
}

/// The same over SSH: the askpass script holds at the code prompt while
/// mfad restarts. That attempt is refused in time, sshd's listener keeps
/// running (its child did not take it down), and the next login works.
#[test]
fn the_daemon_restarts_during_an_ssh_login() {
    let mut env = Env::builder().max_failures(100).start();
    let ivo = env.add_login_user(None);
    let dev = env.enroll_raw(&ivo);
    let key = env.ssh_key();
    let spec = format!("{} timeout={TIMEOUT}", env.pam_module_spec());
    let sshd = env.sshd(SshSetup::new(
        "publickey,keyboard-interactive",
        &format!("auth required {spec}\nauth optional pam_permit.so"),
    ));
    sshd.authorize(&ivo, &[&key]);
    let c = Clock::now().codes(&dev.secret, 0, 1);

    let pending = sshd.ssh_held(
        &ivo,
        &SshOpts {
            key: Some(&key),
            codes: vec![c[0].clone()],
            attempts: 1,
            ..SshOpts::default()
        },
    );
    pending.wait_for_code_prompt(Duration::from_secs(15));
    env.stop_daemon();
    env.start_daemon();
    let released = Instant::now();
    let r = pending.finish();
    let waited = released.elapsed();
    r.assert_refused();
    assert_eq!(r.code_prompts(), 1, "{r}");
    assert!(
        waited < Duration::from_secs(TIMEOUT) + SLACK,
        "took {waited:?}:\n{r}"
    );
    assert!(sshd.is_running(), "sshd died:\n{}", sshd.log());
    let log = sshd.log();
    assert!(
        log.contains(&format!("Failed keyboard-interactive/pam for {}", ivo.name)),
        "the attempt should end as a plain failure:\n{log}"
    );
    assert!(
        !log.contains("fatal"),
        "sshd reported a fatal error:\n{log}"
    );

    let r = sshd.ssh(
        &ivo,
        &SshOpts {
            key: Some(&key),
            codes: vec![c[1].clone()],
            ..SshOpts::default()
        },
    );
    r.assert_logged_in();
    assert!(sshd.is_running());
}
