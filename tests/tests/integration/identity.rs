//! One account, one identity: every name of a UID shares the enrollment,
//! the lockout and the codes, through pamtester and the real module.

use mfa_tests::users::lookup;
use mfa_tests::{wrong_code, Clock, Env, PamResult};

#[test]
fn an_alias_of_an_enrolled_user_is_asked_for_and_takes_their_code() {
    let env = Env::builder().max_failures(100).start();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let aliceb = env.add_alias(&alice);
    assert_eq!(aliceb.uid, alice.uid);
    let svc = env.pam_service("");
    // A wrong code under the alias counts for alice's account.
    let wrong = wrong_code(&dev.secret);
    let r = env.pamtester(&svc, &aliceb, &[&wrong, &Clock::now().code(&dev.secret, 0)]);
    r.assert_result(PamResult::Success);
    assert_eq!(
        r.prompts(),
        2,
        "the alias is asked for alice's code:\n{}",
        r.output
    );
    // The step is used up for every name of the UID.
    let used = Clock::now().code(&dev.secret, 0);
    let again = env.pamtester(&svc, &alice, &[&used, &used, &used]);
    again.assert_result(PamResult::AuthErr);
    assert!(
        again.output.stderr.contains("already used"),
        "{}",
        again.output
    );
    let s = env.mfactl_json(None, &["admin", "status", &aliceb.name]);
    assert_eq!(s["user"], alice.name.as_str(), "{s}");
    assert_eq!(
        s["failures"], 3,
        "alice's 3 replays (the alias's success cleared its failure): {s}"
    );
}

#[test]
fn a_second_name_for_root_gets_roots_enrollment() {
    let env = Env::new();
    let root = lookup("root").expect("root exists");
    let dev = env.enroll(&root);
    let toor = env.add_alias(&root);
    assert_eq!(toor.uid, 0);
    let svc = env.pam_service("");
    // Without a code: refused (not "not enrolled", which optional mode lets through).
    env.pamtester(&svc, &toor, &["000000", "000000", "000000"])
        .assert_result(PamResult::AuthErr);
    env.pamtester(&svc, &toor, &[&Clock::now().code(&dev.secret, 0)])
        .assert_result(PamResult::Success);
}
