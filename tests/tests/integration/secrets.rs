//! Codes and secrets never leak: not in D-Bus error messages, not in
//! mfad's log. And odd input never brings the daemon down.

use mfa_api::LoginProxy;
use mfa_tests::bus::name_has_owner;
use mfa_tests::{wrong_code, Clock, Env, PamResult};

#[track_caller]
fn clean(message: &str, secrets: &[&str]) {
    assert!(!message.is_empty(), "an error needs a message");
    assert!(
        !message.contains('\n'),
        "one sentence, one line: {message:?}"
    );
    for s in secrets {
        assert!(!message.contains(s), "message {message:?} contains {s:?}");
    }
}

#[test]
fn dbus_errors_never_contain_the_code() {
    let env = Env::builder().max_failures(1000).start();
    let ada = env.add_user();
    let dev = env.enroll_raw(&ada);
    let me = Some(&ada);
    let w1 = wrong_code(&dev.secret);
    let w2 = wrong_code(&dev.secret);
    let w8 = "13572468";

    // Enrollment confirmation with wrong codes.
    let p = env.call(me, &["enroll-begin", "", "", &dev.backup_codes[9]]);
    let id = p.ok()["enrollment_id"].as_str().expect("id").to_string();
    let pending_secret = p.ok()["secret"].as_str().expect("secret").to_string();
    let r = env.call(me, &["enroll-confirm", "", &id, &w1, &w2]);
    clean(r.err().1, &[&w1, &w2, &pending_secret, &dev.secret]);
    // Removal and regeneration with wrong or malformed codes.
    for bad in [w1.as_str(), w8, "12a456", "1234567890123", "' OR 1=1 --"] {
        let r = env.call(me, &["remove-device", "", &dev.device_id, bad]);
        clean(r.err().1, &[bad, &dev.secret]);
        let r = env.call(me, &["regen-backup", "", bad]);
        clean(r.err().1, &[bad, &dev.secret]);
    }
    // Login answers: retry/deny messages.
    let r = env.call(me, &["login", &ada.name, &w1, w8, "12a456"]);
    for a in r.ok()["answers"].as_array().expect("answers") {
        let m = a["message"].as_str().unwrap_or("");
        for s in [w1.as_str(), w8, "12a456", &dev.secret] {
            assert!(!m.contains(s), "Answer message {m:?} contains {s:?}");
        }
    }
    // mfactl's own error lines repeat no code either.
    let out = env.mfactl_as(&ada, &["remove", &dev.device_id, "--code", &w1]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(!out.all().contains(&w1), "{out}");
}

#[test]
fn the_daemon_log_never_contains_a_code_or_a_secret() {
    let env = Env::builder().max_failures(1000).start();
    let bo = env.add_user();
    let dev = env.enroll_raw(&bo);
    let svc = env.pam_service("");
    let w = wrong_code(&dev.secret);
    let c = Clock::now().codes(&dev.secret, 0, 2);
    let mut used: Vec<String> = vec![dev.secret.clone(), w.clone()];
    used.extend(dev.confirm_codes.iter().cloned());
    used.extend(dev.backup_codes.iter().cloned());
    used.extend(c.iter().cloned());

    env.pamtester(&svc, &bo, &[&w, &c[0]])
        .assert_result(PamResult::Success);
    env.pamtester(&svc, &bo, &[&c[0], &c[0], &c[0]])
        .assert_result(PamResult::AuthErr);
    env.pamtester(&svc, &bo, &[&dev.backup_codes[0]])
        .assert_result(PamResult::Success);
    let v = env.mfactl_json(Some(&bo), &["backup-codes", "--code", &c[1]]);
    let fresh: Vec<String> = v["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    used.extend(fresh.iter().cloned());
    // A pending enrollment's secret (a further device: with a code).
    let p = env.enroll_begin_with_code(&bo, &fresh[0]);
    used.push(p.secret.clone());
    env.mfactl_as(&bo, &["remove", &dev.device_id, "--code", &c[2]])
        .assert_success();
    env.mfactl(&["admin", "reset", &bo.name]).assert_success();

    let log = env.daemon_log();
    assert!(
        log.matches(&format!("user={}", bo.name)).count() >= 4,
        "mfad should log these events (enroll, verify ok/failed, remove, reset):\n{log}"
    );
    for s in &used {
        assert!(
            !log.contains(s.as_str()),
            "mfad's log contains {s:?}:\n{log}"
        );
    }
    for s in [&dev.secret, &p.secret] {
        assert!(
            !log.to_lowercase().contains(&s.to_lowercase()),
            "mfad's log contains a secret:\n{log}"
        );
    }
}

/// Arbitrary bytes as a code, unknown sessions, odd user names: answers or
/// clean errors, and the daemon keeps serving.
#[test]
fn odd_input_never_brings_the_daemon_down() {
    let env = Env::builder().max_failures(1000).start();
    let cy = env.add_user();
    env.enroll_raw(&cy);
    zbus::block_on(async {
        let conn = env.connect().await;
        let login = LoginProxy::new(&conn).await.expect("proxy");
        let (_, session, _) = login
            .begin(&cy.name, "mfa-test", "", "", "")
            .await
            .expect("Begin");
        for bytes in [
            &[0xff_u8, 0xfe, 0x00, 0x31][..],
            b"",
            &[b'1'; 100_000][..],
            "١٢٣٤٥٦".as_bytes(),
        ] {
            match login.answer(&session, bytes).await {
                Ok((r, m)) => assert!(!m.contains('\n'), "{r:?}: {m:?}"),
                Err(e) => assert!(!e.message().is_empty()),
            }
        }
        let r = login.answer("no-such-session", b"123456").await;
        assert!(
            r.is_err()
                || r.as_ref()
                    .is_ok_and(|(a, _)| *a != mfa_api::AnswerResult::Success)
        );
        for name in [
            "",
            "../../etc/passwd",
            "root\n",
            &"x".repeat(10_000),
            "ünïcode",
        ] {
            let r = login.begin(name, "mfa-test", "", "", "").await;
            if let Ok((a, _, _)) = r {
                assert_ne!(a, mfa_api::BeginAction::Allow, "{name:?}");
            }
        }
    });
    assert_eq!(name_has_owner(env.bus_address(), "org.mfad.Mfa1"), Ok(true));
    assert!(
        !env.daemon_log().contains("panicked"),
        "{}",
        env.daemon_log()
    );
}

/// A copy of the state directory's files reveals no TOTP secret: not as
/// base32, raw bytes or hex, not in the database, its WAL or any other
/// file, while mfad runs and after it stopped.
#[test]
fn no_file_of_the_state_directory_holds_a_secret() {
    let mut env = Env::new();
    let users: Vec<_> = (0..3).map(|_| env.add_user()).collect();
    let secrets: Vec<String> = users.iter().map(|u| env.enroll(u).secret).collect();
    let state_dir = env.state_dir().to_path_buf();
    let scan = |when: &str| {
        let mut files = 0;
        for entry in std::fs::read_dir(&state_dir).expect("read the state directory") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files += 1;
            for secret in &secrets {
                let raw = mfa_tests::codes::base32_decode(secret);
                assert_eq!(raw.len(), 20, "a 160-bit secret");
                let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                for (form, needle) in [
                    ("base32", secret.as_bytes().to_vec()),
                    ("raw", raw.clone()),
                    ("hex", hex.clone().into_bytes()),
                    ("HEX", hex.to_uppercase().into_bytes()),
                ] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "{when}: the secret ({form}) is in {}",
                        path.display()
                    );
                }
            }
        }
        assert!(files >= 2, "{when}: the database and the key file at least");
    };
    scan("while mfad runs");
    env.stop_daemon();
    scan("after mfad stopped");
    // The secrets still work: they are sealed, not lost.
    env.start_daemon();
    let svc = env.pam_service("");
    let code = Clock::now().code(&secrets[0], 0);
    env.pamtester(&svc, &users[0], &[&code])
        .assert_result(PamResult::Success);
}
