//! Administration with the real mfactl: reset ("lost phone"), unlock,
//! list and status; the admin group; a user's own device removal and
//! backup code regeneration.

use mfa_tests::codes::is_digits;
use mfa_tests::mfactl::json_str;
use mfa_tests::{wrong_code, Clock, Env, PamResult};
use serde_json::Value;

fn with_permit(env: &Env) -> String {
    env.pam_service_raw(&format!(
        "auth required {}\nauth required pam_permit.so\n",
        env.pam_module_spec()
    ))
}

#[test]
fn reset_removes_every_device_and_backup_code() {
    let env = Env::builder().max_failures(2).start();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    // Locked out as well, to see the reset clear it.
    env.pamtester(&svc, &alice, &[&w, &w, &w])
        .assert_result(PamResult::AuthErr);

    env.mfactl(&["admin", "reset", &alice.name])
        .assert_success();
    let s = env.mfactl_json(None, &["admin", "status", &alice.name]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
    assert_eq!(s["devices"], Value::Array(vec![]), "{s}");
    assert_eq!(s["backup_codes_left"], 0, "{s}");
    assert_eq!(s["locked_until"], 0, "{s}");

    // Policy optional: no code asked any more (PAM_IGNORE).
    let both = with_permit(&env);
    let r = env.pamtester(&both, &alice, &[]);
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 0, "{}", r.output);
    env.pamtester(&svc, &alice, &[&dev.backup_codes[0]])
        .assert_result(PamResult::PermDenied);

    // The user enrolls a new phone (steps after the ones already used).
    let p = env.enroll_begin(&alice);
    let c = Clock::now().codes(&p.secret, -1, 1);
    env.mfactl_as(
        &alice,
        &[
            "enroll",
            "totp",
            "--confirm",
            &p.enrollment_id,
            &c[0],
            &c[1],
        ],
    )
    .assert_success();
    env.pamtester(&svc, &alice, &[&c[2]])
        .assert_result(PamResult::Success);
}

#[test]
fn admin_list_and_status() {
    let env = Env::new();
    let a = env.add_user();
    let b = env.add_user();
    let idle = env.add_user();
    let da = env.enroll(&a);
    env.enroll(&b);

    let list = env.mfactl_json(None, &["admin", "list"]);
    let rows = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"));
    let find = |name: &str| rows.iter().find(|r| r["user"] == name).cloned();
    for u in [&a, &b] {
        let row = find(&u.name).unwrap_or_else(|| panic!("{} not listed: {list}", u.name));
        assert_eq!(row["devices"], 1, "{row}");
        assert_eq!(row["backup_codes_left"], 10, "{row}");
        assert_eq!(row["locked_until"], 0, "{row}");
    }
    assert!(find(&idle.name).is_none(), "unenrolled user listed: {list}");

    let text = env.mfactl(&["admin", "list"]);
    text.assert_success();
    assert!(
        text.stdout.contains(&a.name) && text.stdout.contains(&b.name),
        "{text}"
    );

    let s = env.mfactl_json(None, &["admin", "status", &a.name]);
    assert_eq!(s["user"], Value::String(a.name.clone()), "{s}");
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");
    assert_eq!(s["devices"][0]["id"], Value::String(da.device_id), "{s}");
    assert_eq!(s["failures"], 0, "{s}");

    let s = env.mfactl_json(None, &["admin", "status", &idle.name]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
}

#[test]
fn admin_group_members_may_administer() {
    let mut env = Env::builder().no_daemon().start();
    let admin = env.add_user();
    let plain = env.add_user();
    let target = env.add_user();
    let group = env.add_group(&[&admin]);
    env.set_config(|c| c.admin_group = group.clone());
    env.start_daemon();
    env.enroll(&target);

    let out = env.mfactl_as(&admin, &["--json", "admin", "list"]);
    out.assert_success();
    assert!(out.stdout.contains(&target.name), "{out}");
    env.mfactl_as(&admin, &["admin", "unlock", &target.name])
        .assert_success();

    let out = env.mfactl_as(&plain, &["admin", "list"]);
    assert_eq!(out.code, Some(1), "a non-member must be refused:\n{out}");
    assert!(out.stderr.starts_with("mfactl: "), "{out}");

    env.mfactl_as(&admin, &["admin", "reset", &target.name])
        .assert_success();
    let s = env.mfactl_json(None, &["admin", "status", &target.name]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
}

/// An admin-group member may not reset or unlock root or another member
/// (that would take over their account); root may. Membership is the
/// user's groups as NSS lists them (getgrouplist).
#[test]
fn only_root_changes_root_or_another_admin() {
    let mut env = Env::builder().no_daemon().start();
    let ops1 = env.add_user();
    let ops2 = env.add_user();
    let group = env.add_group(&[&ops1, &ops2]);
    env.set_config(|c| c.admin_group = group.clone());
    env.start_daemon();
    env.enroll(&ops2);
    for (who, what) in [
        ("root", "reset"),
        ("root", "unlock"),
        (ops2.name.as_str(), "reset"),
    ] {
        let out = env.mfactl_as(&ops1, &["admin", what, who]);
        assert_eq!(out.code, Some(1), "{what} {who} must be refused:\n{out}");
        assert!(out.stderr.contains("Only root may change"), "{out}");
    }
    let s = env.mfactl_json(None, &["admin", "status", &ops2.name]);
    assert_eq!(s["enrolled"], Value::Bool(true), "still enrolled: {s}");
    // Looking is allowed; root may change them.
    env.mfactl_as(&ops1, &["admin", "status", &ops2.name])
        .assert_success();
    env.mfactl(&["admin", "reset", &ops2.name]).assert_success();
}

#[test]
fn a_user_removes_a_device_only_with_a_code() {
    let env = Env::builder().max_failures(100).start();
    let eve = env.add_user();
    let dev = env.enroll(&eve);
    let w = wrong_code(&dev.secret);

    let out = env.mfactl_as(&eve, &["remove", &dev.device_id]);
    assert_eq!(
        out.code,
        Some(1),
        "removal without a code must fail:\n{out}"
    );
    let out = env.mfactl_as(&eve, &["remove", &dev.device_id, "--code", &w]);
    assert_eq!(
        out.code,
        Some(1),
        "removal with a wrong code must fail:\n{out}"
    );
    assert!(
        !out.stderr.contains(&w),
        "the error repeats the code:\n{out}"
    );
    let out = env.mfactl_as(&eve, &["remove", "no-such-device", "--code", &w]);
    assert_eq!(out.code, Some(1), "{out}");
    let s = env.mfactl_json(Some(&eve), &["status"]);
    assert_eq!(s["enrolled"], Value::Bool(true), "{s}");

    let code = Clock::now().code(&dev.secret, 0);
    let v = env.mfactl_json(Some(&eve), &["remove", &dev.device_id, "--code", &code]);
    assert_eq!(v, serde_json::json!({"ok": true}));
    let s = env.mfactl_json(Some(&eve), &["status"]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
}

#[test]
fn a_backup_code_also_authorizes_removal_and_root_needs_none() {
    let env = Env::new();
    let finn = env.add_user();
    let gina = env.add_user();
    let df = env.enroll(&finn);
    let dg = env.enroll(&gina);
    env.mfactl_as(
        &finn,
        &["remove", &df.device_id, "--code", &df.backup_codes[5]],
    )
    .assert_success();
    let s = env.mfactl_json(Some(&finn), &["status"]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");

    // root removes another user's device without a code.
    env.call(None, &["remove-device", &gina.name, &dg.device_id, ""])
        .ok();
    let s = env.mfactl_json(None, &["admin", "status", &gina.name]);
    assert_eq!(s["enrolled"], Value::Bool(false), "{s}");
}

#[test]
fn backup_codes_are_regenerated_with_a_code() {
    let env = Env::builder().max_failures(100).start();
    let hugo = env.add_user();
    let dev = env.enroll(&hugo);
    let svc = env.pam_service("");

    let out = env.mfactl_as(&hugo, &["backup-codes"]);
    assert_eq!(
        out.code,
        Some(1),
        "regeneration without a code must fail:\n{out}"
    );

    let code = Clock::now().code(&dev.secret, 0);
    let v = env.mfactl_json(Some(&hugo), &["backup-codes", "--code", &code]);
    let fresh: Vec<String> = v["backup_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("no backup_codes: {v}"))
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(fresh.len(), 10, "{v}");
    assert!(fresh.iter().all(|c| is_digits(c, 8)), "{v}");
    assert!(fresh.iter().all(|c| !dev.backup_codes.contains(c)), "{v}");

    // Old ones are gone, new ones work.
    let old = dev.backup_codes[0].as_str();
    env.pamtester(&svc, &hugo, &[old, old, old])
        .assert_result(PamResult::AuthErr);
    env.pamtester(&svc, &hugo, &[&fresh[0]])
        .assert_result(PamResult::Success);
    let s = env.mfactl_json(Some(&hugo), &["status"]);
    assert_eq!(s["backup_codes_left"], 9, "{s}");
    let _ = json_str(&s, "user");
}
