//! `[policy] mode` for users without a device, seen through real PAM
//! stacks that tell PAM_IGNORE, PAM_SUCCESS and PAM_AUTH_ERR apart:
//!
//! - `auth required pam_mfa.so` + `auth required pam_permit.so`: IGNORE
//!   and SUCCESS pass, AUTH_ERR fails;
//! - `auth required pam_mfa.so` alone: SUCCESS passes, AUTH_ERR fails with
//!   "Authentication failure", and IGNORE fails with "Permission denied"
//!   (libpam's answer when every module in the stack was ignored).

use mfa_tests::{random_letters, Clock, Env, PamResult, Policy, User};

fn with_permit(env: &Env) -> String {
    env.pam_service_raw(&format!(
        "auth required {}\nauth required pam_permit.so\naccount required pam_permit.so\n",
        env.pam_module_spec()
    ))
}

/// A name no account has.
fn ghost() -> User {
    User {
        name: format!("mfatghost{}", random_letters(10)),
        uid: 0,
        gid: 0,
    }
}

/// Lines the module showed (pamtester's own lines removed).
fn module_messages(out: &mfa_tests::Output) -> Vec<String> {
    out.all()
        .lines()
        .map(|l| {
            l.split("pamtester: ")
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn optional_policy_ignores_users_without_a_device() {
    let env = Env::new();
    let nora = env.add_user();
    let both = with_permit(&env);
    let alone = env.pam_service("");

    for user in [nora.clone(), ghost()] {
        let r = env.pamtester(&both, &user, &[]);
        r.assert_result(PamResult::Success);
        assert_eq!(
            r.prompts(),
            0,
            "no prompt for an unenrolled user:\n{}",
            r.output
        );
        // Alone in the stack, the module's PAM_IGNORE leaves libpam with no
        // decision: "Permission denied", not success and not AUTH_ERR.
        env.pamtester(&alone, &user, &[])
            .assert_result(PamResult::PermDenied);
    }

    // On the wire: Begin says ignore, for a real and a nonexistent user.
    for name in [nora.name.as_str(), ghost().name.as_str()] {
        let v = env.call(None, &["login-begin", name]);
        assert_eq!(v.ok()["action"], "ignore", "{v:?}");
    }

    // An enrolled user is still asked for a code.
    let dev = env.enroll_raw(&nora);
    let code = Clock::now().code(&dev.secret, 0);
    let r = env.pamtester(&both, &nora, &[&code]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
}

#[test]
fn required_policy_denies_users_without_a_device() {
    // Without enrollment at login (enroll_login.rs has it on).
    let env = Env::builder()
        .policy(Policy::Required)
        .policy_toml("enroll_at_login = false\n")
        .start();
    let otto = env.add_user();
    let both = with_permit(&env);
    for user in [otto.clone(), ghost()] {
        let r = env.pamtester(&both, &user, &[]);
        r.assert_result(PamResult::AuthErr);
        assert_eq!(r.prompts(), 0, "{}", r.output);
        assert!(
            !module_messages(&r.output).is_empty(),
            "the refusal must be explained to the user:\n{}",
            r.output
        );
    }
    // Same answer on the wire for a real and a nonexistent user.
    let g = ghost();
    let real = env.call(None, &["login-begin", &otto.name]);
    let fake = env.call(None, &["login-begin", &g.name]);
    assert_eq!(real.ok()["action"], "deny", "{real:?}");
    assert_eq!(fake.ok()["action"], "deny", "{fake:?}");
    let msg = |v: &mfa_tests::CallResult, name: &str| {
        v.ok()["message"]
            .as_str()
            .unwrap_or("")
            .replace(name, "USER")
    };
    assert_eq!(msg(&real, &otto.name), msg(&fake, &g.name));
    assert!(!msg(&real, &otto.name).is_empty());

    // Enrolled users log in as usual.
    let dev = env.enroll_raw(&otto);
    let code = Clock::now().code(&dev.secret, 0);
    env.pamtester(&both, &otto, &[&code])
        .assert_result(PamResult::Success);
}
