//! The daemon down, unreachable or hung: `failmode=secure` refuses the
//! login (PAM_AUTHINFO_UNAVAIL), `failmode=safe` steps aside (PAM_IGNORE),
//! both within the module's timeout plus a little.

use std::time::Duration;

use mfa_tests::pam::{pamtester_cmd, PamtesterOpts};
use mfa_tests::{paths, Clock, Env, PamResult};

/// Margin over the module's timeout for process start-up and a slow box.
const SLACK: Duration = Duration::from_secs(4);

/// `auth required MODULE ARGS` + `auth required pam_permit.so`: IGNORE
/// passes, AUTHINFO_UNAVAIL fails.
fn with_permit(env: &Env, module_args: &str) -> String {
    env.pam_service_raw(&format!(
        "auth required {module_args}\nauth required pam_permit.so\n"
    ))
}

#[test]
fn daemon_down_with_failmode_secure_refuses_quickly() {
    let env = Env::builder().no_daemon().start();
    let ann = env.add_user();
    let spec = env.pam_module_spec();
    for args in ["failmode=secure timeout=3", "timeout=3"] {
        let svc = with_permit(&env, &format!("{spec} {args}"));
        let r = env.pamtester(&svc, &ann, &[]);
        r.assert_result(PamResult::AuthInfoUnavail);
        assert_eq!(r.prompts(), 0, "{}", r.output);
        assert!(
            r.output.elapsed < Duration::from_secs(3) + SLACK,
            "`{args}`: took {:?}",
            r.output.elapsed
        );
    }
}

#[test]
fn daemon_down_with_failmode_safe_lets_the_stack_decide() {
    let env = Env::builder().no_daemon().start();
    let ben = env.add_user();
    let spec = env.pam_module_spec();
    let svc = with_permit(&env, &format!("{spec} failmode=safe timeout=3"));
    let r = env.pamtester(&svc, &ben, &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    assert!(
        r.output.elapsed < Duration::from_secs(3) + SLACK,
        "{}",
        r.output
    );
    // It is PAM_IGNORE, not PAM_SUCCESS: alone it decides nothing.
    let alone = env.pam_service("failmode=safe timeout=3");
    env.pamtester(&alone, &ben, &[])
        .assert_result(PamResult::PermDenied);
}

/// No bus at all at the configured address.
#[test]
fn an_unreachable_bus_is_a_down_daemon() {
    let env = Env::builder().no_daemon().start();
    let cy = env.add_user();
    let module = paths::pam_module();
    let nowhere = format!("bus=unix:path={}/no-such-bus", env.dir().display());
    let secure = with_permit(
        &env,
        &format!("{} {nowhere} failmode=secure timeout=3", module.display()),
    );
    let safe = with_permit(
        &env,
        &format!("{} {nowhere} failmode=safe timeout=3", module.display()),
    );
    let r = env.pamtester(&secure, &cy, &[]);
    r.assert_result(PamResult::AuthInfoUnavail);
    assert!(
        r.output.elapsed < Duration::from_secs(3) + SLACK,
        "{}",
        r.output
    );
    env.pamtester(&safe, &cy, &[])
        .assert_result(PamResult::Success);
}

/// mfad owns its name but answers nothing (stopped): the module gives up
/// after `timeout` seconds.
#[test]
fn a_hung_daemon_times_out() {
    let env = Env::new();
    let dee = env.add_user();
    let dev = env.enroll_raw(&dee);
    let spec = env.pam_module_spec();
    let secure = with_permit(&env, &format!("{spec} failmode=secure timeout=2"));
    let safe = with_permit(&env, &format!("{spec} failmode=safe timeout=2"));
    env.pause_daemon();
    let r = env.pamtester(&secure, &dee, &[]);
    let r2 = env.pamtester(&safe, &dee, &[]);
    env.resume_daemon();
    r.assert_result(PamResult::AuthInfoUnavail);
    assert!(
        r.output.elapsed >= Duration::from_millis(1500)
            && r.output.elapsed < Duration::from_secs(2) + SLACK,
        "timeout=2 should take about 2 s, took {:?}",
        r.output.elapsed
    );
    r2.assert_result(PamResult::Success);
    assert!(
        r2.output.elapsed < Duration::from_secs(2) + SLACK,
        "{}",
        r2.output
    );
    // Running again, the daemon serves as before.
    let code = Clock::now().code(&dev.secret, 0);
    env.pamtester(&secure, &dee, &[&code])
        .assert_result(PamResult::Success);
}

/// Under su/sudo the caller controls the environment, so the module must
/// take the bus address from its arguments only. Here the environment
/// points at a working daemon, the arguments name none: the module must
/// not find the daemon.
#[test]
fn the_module_never_takes_the_bus_from_the_environment() {
    let env = Env::new();
    let eli = env.add_user();
    let dev = env.enroll_raw(&eli);
    let module = paths::pam_module();
    let svc = env.pam_service_raw(&format!(
        "auth required {} failmode=secure timeout=3\n",
        module.display()
    ));
    let code = Clock::now().code(&dev.secret, 0);
    let bus = env.bus_address().to_string();
    let r = pamtester_cmd(
        &svc,
        &eli.name,
        &[&code],
        Duration::from_secs(30),
        &[
            ("DBUS_SYSTEM_BUS_ADDRESS", &bus),
            ("DBUS_SESSION_BUS_ADDRESS", &bus),
            ("DBUS_STARTER_ADDRESS", &bus),
        ],
    );
    assert_eq!(
        r.prompts(),
        0,
        "the module reached the daemon through the environment:\n{}",
        r.output
    );
    assert_ne!(r.result(), PamResult::Success, "{}", r.output);
    if !std::path::Path::new("/run/dbus/system_bus_socket").exists() {
        r.assert_result(PamResult::AuthInfoUnavail);
    }
}

/// The bus itself hangs (stopped dbus-daemon): the module's timeout covers
/// connecting, not only the calls.
#[test]
fn a_hung_bus_times_out() {
    let env = Env::builder().no_daemon().start();
    let fox = env.add_user();
    let spec = env.pam_module_spec();
    let secure = with_permit(&env, &format!("{spec} failmode=secure timeout=2"));
    let safe = with_permit(&env, &format!("{spec} failmode=safe timeout=2"));
    env.pause_bus();
    let r = env.pamtester(&secure, &fox, &[]);
    let r2 = env.pamtester(&safe, &fox, &[]);
    env.resume_bus();
    r.assert_result(PamResult::AuthInfoUnavail);
    assert!(
        r.output.elapsed < Duration::from_secs(2) + SLACK,
        "took {:?}",
        r.output.elapsed
    );
    r2.assert_result(PamResult::Success);
    assert!(
        r2.output.elapsed < Duration::from_secs(2) + SLACK,
        "{}",
        r2.output
    );
}

/// The daemon stops answering after it sent the challenge: the answer
/// times out and the login is refused (failmode=secure), in time.
#[test]
fn a_daemon_that_hangs_after_the_prompt_times_out() {
    let env = Env::new();
    let gil = env.add_user();
    let dev = env.enroll_raw(&gil);
    let spec = env.pam_module_spec();
    let svc = with_permit(&env, &format!("{spec} failmode=secure timeout=2"));
    let code = Clock::now().code(&dev.secret, 0);
    let mut run = mfa_tests::Cmd::new(paths::tool("pamtester", "pamtester"))
        .args(["-v", &svc, &gil.name, "authenticate"])
        .timeout(Duration::from_secs(30))
        .spawn_interactive();
    run.wait_for(mfa_tests::pam::PROMPT, 1, Duration::from_secs(10));
    env.pause_daemon();
    let sent = std::time::Instant::now();
    run.send_line(&code);
    let out = run.finish();
    let waited = sent.elapsed();
    env.resume_daemon();
    let r = mfa_tests::PamOutcome { output: out };
    assert_ne!(r.result(), PamResult::Success, "{}", r.output);
    assert!(
        matches!(r.result(), PamResult::AuthInfoUnavail | PamResult::AuthErr),
        "{}",
        r.output
    );
    assert!(waited < Duration::from_secs(2) + SLACK, "took {waited:?}");
}

/// An abstract socket is a name any local user can bind first: a `bus=`
/// naming one is a configuration error, refused even with failmode=safe
/// (where an unreachable bus would step aside).
#[test]
fn an_abstract_bus_address_is_refused_in_either_failmode() {
    let env = Env::builder().no_daemon().start();
    let hal = env.add_user();
    let module = paths::pam_module();
    let bus = format!("bus=unix:abstract={}/bus", env.dir().display());
    for failmode in ["safe", "secure"] {
        let svc = with_permit(
            &env,
            &format!("{} {bus} failmode={failmode} timeout=3", module.display()),
        );
        let r = env.pamtester(&svc, &hal, &[]);
        r.assert_result(PamResult::AuthInfoUnavail);
        assert_eq!(r.prompts(), 0, "{}", r.output);
    }
}

/// `auth` and `account` lines with `failmode=MODE`, each followed by
/// pam_permit: anything but a refusal by the module passes.
fn auth_and_account_with_permit(env: &Env, failmode: &str) -> String {
    let spec = env.pam_module_spec();
    env.pam_service_raw(&format!(
        "auth required {spec} failmode={failmode} timeout=3\nauth required pam_permit.so\n\
         account required {spec} failmode={failmode} timeout=3\naccount required pam_permit.so\n"
    ))
}

/// A bus whose policy wrongly lets any user own org.mfad.Mfa1, and a user
/// who took the name first with a fake mfad that lets everyone in: the
/// module asks the bus who owns the name and refuses, in either failmode,
/// in the auth and in the account phase.
#[test]
fn an_impostor_owning_the_name_is_refused_in_either_failmode() {
    let env = Env::builder().anyone_may_own_the_name().no_daemon().start();
    let mallory = env.add_user();
    let ivy = env.add_user();
    let _impostor = env.start_impostor(&mallory);
    // The fake does answer: asked directly, it lets ivy in.
    let begin = env.call(Some(&ivy), &["login-begin", &ivy.name]);
    assert_eq!(begin.ok()["action"], "ignore", "{begin:?}");
    for failmode in ["safe", "secure"] {
        let svc = auth_and_account_with_permit(&env, failmode);
        let r = env.pamtester(&svc, &ivy, &[]);
        r.assert_result(PamResult::AuthInfoUnavail);
        assert_eq!(r.prompts(), 0, "{}", r.output);
        let r = env.pamtester_with(
            &svc,
            &ivy,
            &[],
            &PamtesterOpts {
                ops: vec!["acct_mgmt"],
                ..PamtesterOpts::default()
            },
        );
        r.assert_result(PamResult::PermDenied);
    }
}
