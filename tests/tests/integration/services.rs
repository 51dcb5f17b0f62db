//! su-, sudo- and screen-locker-style services, through pamtester and the
//! real pam_unix + pam_mfa stacks. pam_unix gets `nodelay` only to skip
//! its 2 s delay after a wrong password (the suite stays fast).
//!
//! What each models:
//! - su: a user runs `su - TARGET`; su is setuid root, so libpam runs as
//!   root and asks for the TARGET's password and the TARGET's code
//!   (PAM_USER = target, PAM_RUSER = the invoking user). Real su puts
//!   `auth sufficient pam_rootok.so` first so that root itself is asked
//!   nothing; pamtester runs as root, so the stack leaves it out to model
//!   a non-root invoker.
//! - sudo: a user runs `sudo CMD`; sudo (setuid root) asks for the
//!   INVOKING user's password and code (PAM_USER = PAM_RUSER = invoker),
//!   whoever the command runs as.
//! - screen locker: runs as the user, without root, and verifies that
//!   user only: pam_unix checks the own password through unix_chkpwd, and
//!   mfad lets a non-root caller verify only itself.

use mfa_tests::pam::PamtesterOpts;
use mfa_tests::{random_letters, wrong_code, Clock, Env, PamResult, User};

/// `auth required pam_unix.so` then `auth required pam_mfa.so` (both must
/// pass, neither alone is enough), pam_unix + pam_mfa in account.
fn password_and_code(env: &Env) -> String {
    let mfa = env.pam_module_spec();
    env.pam_service_raw(&format!(
        "auth required pam_unix.so nodelay\n\
         auth required {mfa}\n\
         account required pam_unix.so\n\
         account required {mfa}\n"
    ))
}

fn with_items<'a>(items: &[(&'a str, &'a str)]) -> PamtesterOpts<'a> {
    PamtesterOpts {
        items: items.to_vec(),
        ops: vec!["authenticate", "acct_mgmt"],
        ..PamtesterOpts::default()
    }
}

/// `sudo` run by `u` on pts/7.
fn sudo_by(u: &User) -> PamtesterOpts<'_> {
    with_items(&[("ruser", &u.name), ("tty", "pts/7")])
}

#[test]
fn su_asks_for_the_targets_password_and_code() {
    let env = Env::builder().max_failures(100).start();
    let ann = env.add_user();
    let ann_dev = env.enroll_raw(&ann);
    let bob_pw = random_letters(14);
    let bob = env.add_login_user(Some(&bob_pw));
    let bob_dev = env.enroll_raw(&bob);
    let svc = password_and_code(&env);
    // ann runs `su - bob` on pts/4.
    let su = with_items(&[("ruser", &ann.name), ("tty", "pts/4")]);
    let c = Clock::now().codes(&bob_dev.secret, 0, 2);

    let r = env.pamtester_with(&svc, &bob, &[&bob_pw, &c[0]], &su);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);

    // The invoker's own code is not the target's.
    let ann_code = Clock::now().code(&ann_dev.secret, 0);
    env.pamtester_with(&svc, &bob, &[&bob_pw, &ann_code, &ann_code, &ann_code], &su)
        .assert_result(PamResult::AuthErr);

    // Right password, wrong code.
    let w = wrong_code(&bob_dev.secret);
    let r = env.pamtester_with(&svc, &bob, &[&bob_pw, &w, &w, &w], &su);
    r.assert_result(PamResult::AuthErr);
    assert_eq!(r.prompts(), 3, "{}", r.output);

    // Wrong password, right code: refused; the code is still asked.
    let r = env.pamtester_with(&svc, &bob, &["wrong-password", &c[1]], &su);
    r.assert_result(PamResult::AuthErr);
    assert_eq!(r.prompts(), 1, "{}", r.output);

    // mfad's log names the service for the audit.
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("user={}", bob.name))
                && l.contains(&format!("service={svc}"))),
        "{log}"
    );
    env.pamtester_with(&svc, &bob, &[&bob_pw, &c[2]], &su)
        .assert_result(PamResult::Success);
}

#[test]
fn sudo_asks_for_the_invoking_users_password_and_code() {
    let env = Env::builder().max_failures(100).start();
    let cat_pw = random_letters(14);
    let cat = env.add_login_user(Some(&cat_pw));
    let dev = env.enroll_raw(&cat);
    let dom_pw = random_letters(14);
    let dom = env.add_login_user(Some(&dom_pw));
    let dom_dev = env.enroll_raw(&dom);
    let eli_pw = random_letters(14);
    let eli = env.add_login_user(Some(&eli_pw));
    let svc = password_and_code(&env);
    let sudo = sudo_by;
    let c = Clock::now().code(&dev.secret, 0);

    // cat runs sudo: cat's password and cat's code.
    let r = env.pamtester_with(&svc, &cat, &[&cat_pw, &c], &sudo(&cat));
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);

    // Another user's code does not do for cat.
    let d = Clock::now().code(&dom_dev.secret, 0);
    env.pamtester_with(&svc, &cat, &[&cat_pw, &d, &d, &d], &sudo(&cat))
        .assert_result(PamResult::AuthErr);
    // ... and dom still has that code to use.
    env.pamtester_with(&svc, &dom, &[&dom_pw, &d], &sudo(&dom))
        .assert_result(PamResult::Success);

    // An invoker without a device (policy optional): the password alone.
    let r = env.pamtester_with(&svc, &eli, &[&eli_pw], &sudo(&eli));
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    // ... but not without it.
    env.pamtester_with(&svc, &eli, &["wrong-password"], &sudo(&eli))
        .assert_result(PamResult::AuthErr);
}

/// A screen locker runs as the user: it verifies the user's own password
/// and code, and may not verify anyone else.
#[test]
fn a_screen_locker_verifies_only_its_own_user() {
    let env = Env::builder().max_failures(100).start();
    let fio_pw = random_letters(14);
    let fio = env.add_login_user(Some(&fio_pw));
    let dev = env.enroll_raw(&fio);
    let gus_pw = random_letters(14);
    let gus = env.add_login_user(Some(&gus_pw));
    let gus_dev = env.enroll_raw(&gus);
    let mfa = env.pam_module_spec();
    let svc = env.pam_service_raw(&format!(
        "auth required pam_unix.so nodelay\nauth required {mfa}\n"
    ));
    let as_fio = PamtesterOpts {
        as_user: Some(&fio),
        ..PamtesterOpts::default()
    };
    let c = Clock::now().codes(&dev.secret, 0, 1);

    let r = env.pamtester_with(&svc, &fio, &[&fio_pw, &c[0]], &as_fio);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);

    let w = wrong_code(&dev.secret);
    env.pamtester_with(&svc, &fio, &[&fio_pw, &w, &w, &w], &as_fio)
        .assert_result(PamResult::AuthErr);

    // fio's locker tries gus, even with gus's password and code: refused
    // by pam_unix (unix_chkpwd checks only the caller's own password:
    // PAM_AUTHINFO_UNAVAIL, the first failure of the stack) and by mfad
    // (no code prompt, its reason shown).
    let g = Clock::now().code(&gus_dev.secret, 0);
    let r = env.pamtester_with(&svc, &gus, &[&gus_pw, &g], &as_fio);
    assert_ne!(r.result(), PamResult::Success, "{}", r.output);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    assert!(
        r.transcript().contains("only verify your own account"),
        "{}",
        r.output
    );
    // pam_mfa alone: its own answer is PAM_AUTH_ERR.
    let mfa_only = env.pam_service("");
    let r = env.pamtester_with(&mfa_only, &gus, &[&g], &as_fio);
    r.assert_result(PamResult::AuthErr);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    assert!(
        r.transcript().contains("only verify your own account"),
        "{}",
        r.output
    );
    // gus's failure count is untouched, and gus's code is still unused.
    let s = env.mfactl_json(None, &["admin", "status", &gus.name]);
    assert_eq!(s["failures"], 0, "{s}");
    let as_gus = PamtesterOpts {
        as_user: Some(&gus),
        ..PamtesterOpts::default()
    };
    env.pamtester_with(&svc, &gus, &[&gus_pw, &g], &as_gus)
        .assert_result(PamResult::Success);

    // And fio again, later step.
    env.pamtester_with(&svc, &fio, &[&fio_pw, &c[1]], &as_fio)
        .assert_result(PamResult::Success);
}
