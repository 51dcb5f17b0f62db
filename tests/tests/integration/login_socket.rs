//! mfad's private login socket (`[daemon] login_socket`, the module's
//! `socket=`): logins over it without the bus, the Login interface only
//! with each call authorized as on the bus, an impostor on it refused in
//! either failmode, and what mfad enforces there in dbus-daemon's stead
//! (connections per UID, the authentication deadline, the message size).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mfa_tests::pam::PamtesterOpts;
use mfa_tests::{paths, random_phone, wrong_code, Clock, Env, PamResult, Sms, User};

/// `auth` and `account` lines of pam_mfa with `args` (no `bus=`).
fn service(env: &Env, args: &str) -> String {
    let module = paths::pam_module();
    env.pam_service_raw(&format!(
        "auth required {m} {args}\naccount required {m} {args}\n",
        m = module.display()
    ))
}

fn ops<'a>(list: &[&'a str]) -> PamtesterOpts<'a> {
    PamtesterOpts {
        ops: list.to_vec(),
        ..PamtesterOpts::default()
    }
}

#[test]
fn a_login_goes_over_the_socket_without_the_bus() {
    let env = Env::builder().max_failures(100).start();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let socket = env.login_socket();
    let meta = std::fs::metadata(socket).expect("the login socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o666, "socket mode");
    let svc = service(&env, &format!("socket={} timeout=3", socket.display()));
    let on_bus = env.pam_service("timeout=2");
    let c = Clock::now().codes(&dev.secret, 0, 1);

    // The bus hangs: a login over it cannot finish, one over the socket can.
    env.pause_bus();
    env.pamtester(&on_bus, &alice, &[&c[0]])
        .assert_result(PamResult::AuthInfoUnavail);
    let r = env.pamtester_with(&svc, &alice, &[&c[0]], &ops(&["authenticate", "acct_mgmt"]));
    r.assert_result(PamResult::Success);
    assert_eq!(r.prompts(), 1, "{}", r.output);
    // mfad decides as ever: the code just used is refused, a wrong one too.
    let r = env.pamtester(&svc, &alice, &[&c[0], &c[0], &c[0]]);
    r.assert_result(PamResult::AuthErr);
    assert!(r.transcript().contains("already used"), "{}", r.output);
    let wrong = wrong_code(&dev.secret);
    env.pamtester(&svc, &alice, &[&wrong, &wrong, &wrong])
        .assert_result(PamResult::AuthErr);
    // The account phase without this login's code step is refused.
    env.pamtester_with(&svc, &alice, &[], &ops(&["acct_mgmt"]))
        .assert_result(PamResult::PermDenied);
    env.resume_bus();
    env.pamtester(&svc, &alice, &[&c[1]])
        .assert_result(PamResult::Success);
}

#[test]
fn the_socket_serves_login_only_and_authorizes_each_call() {
    let env = Env::new();
    let bob = env.add_user();
    let eve = env.add_user();
    env.enroll(&bob);
    // Root (the PAM stack) may begin anyone's login.
    let v = env.call_on_socket(None, &["login-begin", &bob.name]);
    assert_eq!(v.ok()["action"], "challenge", "{v:?}");
    // Another user may not, as on the bus.
    let theirs = env.call_on_socket(Some(&eve), &["login-begin", &bob.name]);
    let on_bus = env.call(Some(&eve), &["login-begin", &bob.name]);
    assert_eq!(theirs.err().0, on_bus.err().0, "{theirs:?} vs {on_bus:?}");
    assert!(
        theirs.err().0.starts_with(mfa_api::ERROR_PREFIX) || theirs.err().0.contains("Access"),
        "{theirs:?}"
    );
    // Account and Admin are the bus's only.
    let status = env.call_on_socket(Some(&bob), &["status", &bob.name]);
    assert!(
        status.err().0.contains("UnknownInterface") || status.err().0.contains("UnknownObject"),
        "{status:?}"
    );
    let list = env.call_on_socket(None, &["admin-list"]);
    assert!(list.err().0.contains("Unknown"), "{list:?}");
}

#[test]
fn an_impostor_on_the_socket_is_refused_in_either_failmode() {
    let env = Env::new();
    let carol = env.add_user();
    let mallory = env.add_user();
    let dev = env.enroll(&carol);
    let dir = env.dir().join("mallory");
    std::fs::create_dir(&dir).expect("mkdir");
    nix::unistd::chown(
        &dir,
        Some(nix::unistd::Uid::from_raw(mallory.uid)),
        Some(nix::unistd::Gid::from_raw(mallory.gid)),
    )
    .expect("chown");
    let path = dir.join("login.socket");
    let _impostor = env.start_socket_impostor(&mallory, &path);
    let module = paths::pam_module();
    for failmode in ["secure", "safe"] {
        let args = format!("socket={} failmode={failmode} timeout=3", path.display());
        // pam_permit after it: an IGNORE would let the login through.
        let auth = env.pam_service_raw(&format!(
            "auth required {m} {args}\nauth required pam_permit.so\n",
            m = module.display()
        ));
        let r = env.pamtester(&auth, &carol, &["000000"]);
        r.assert_result(PamResult::AuthInfoUnavail);
        assert_eq!(r.prompts(), 0, "{}", r.output);
        let account = env.pam_service_raw(&format!(
            "auth required pam_permit.so\naccount required {m} {args}\naccount required pam_permit.so\n",
            m = module.display()
        ));
        env.pamtester_with(&account, &carol, &[], &ops(&["acct_mgmt"]))
            .assert_result(PamResult::PermDenied);
    }
    // The same module, pointed at mfad's socket, logs carol in: the
    // refusal above is the impostor's.
    let svc = service(&env, &format!("socket={}", env.login_socket().display()));
    let code = Clock::now().code(&dev.secret, 0);
    env.pamtester(&svc, &carol, &[&code])
        .assert_result(PamResult::Success);
}

#[test]
fn connections_are_limited_per_uid() {
    let env = Env::new();
    let dan = env.add_user();
    let erin = env.add_user();
    let probe = |user, n: usize| -> Vec<String> {
        let v = env.call_at(
            &env.login_socket().to_string_lossy(),
            Some(user),
            &["socket-probe", &n.to_string()],
        );
        v.ok()
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let limit = 16;
    let got = probe(&dan, limit + 2);
    assert!(
        got[..limit].iter().all(|s| s == "ok"),
        "the first {limit} are served: {got:?}"
    );
    assert!(
        got[limit..].iter().all(|s| s == "closed"),
        "more are turned away: {got:?}"
    );
    // Another user is not held up by it, and dan's count went with his
    // connections.
    assert!(probe(&erin, limit).iter().all(|s| s == "ok"));
    assert!(probe(&dan, limit).iter().all(|s| s == "ok"));
    let log = env.daemon_log();
    assert!(log.contains("too many connections"), "{log}");
}

/// Authenticates as root on a fresh connection (SASL EXTERNAL, BEGIN).
fn authenticated(env: &Env) -> UnixStream {
    let mut s = UnixStream::connect(env.login_socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"\0AUTH EXTERNAL 30\r\n").expect("auth");
    let mut buf = [0u8; 128];
    let n = s.read(&mut buf).expect("read OK");
    assert!(
        buf[..n].starts_with(b"OK "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"BEGIN\r\n").expect("begin");
    s
}

/// Whether the peer hung up (EOF, or a reset) within the read timeout.
fn hung_up(s: &mut UnixStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn an_oversized_message_ends_the_connection() {
    let env = Env::new();
    let fay = env.add_user();
    env.enroll(&fay);
    // A method call whose header announces a 1 MiB body: mfad hangs up
    // without reading it.
    let mut s = authenticated(&env);
    let mut header = vec![b'l', 1, 0, 1];
    header.extend_from_slice(&(1u32 << 20).to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    s.write_all(&header).expect("write header");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert!(hung_up(&mut s), "mfad kept a connection past the cap");

    // Through the real client: a Begin of 40 KB is answered, one of
    // 100 KB ends the connection.
    let call = |len: usize| {
        env.call_on_socket(
            None,
            &["login-begin", &fay.name, "mfa-test", "", &"x".repeat(len)],
        )
    };
    let small = call(40_000);
    assert!(
        matches!(small, mfa_tests::calls::CallResult::Ok(_))
            || small.err().0.starts_with(mfa_api::ERROR_PREFIX),
        "answered by mfad: {small:?}"
    );
    let out = mfa_tests::Cmd::new(paths::helper("mfa-call"))
        .arg(format!("socket:{}", env.login_socket().display()))
        .args([
            "login-begin",
            &fay.name,
            "mfa-test",
            "",
            &"x".repeat(100_000),
        ])
        .run();
    assert_eq!(
        out.code,
        Some(2),
        "not a D-Bus reply but a lost connection:\n{out}"
    );
    // mfad itself is fine.
    let v = env.call_on_socket(None, &["login-begin", &fay.name]);
    assert_eq!(v.ok()["action"], "challenge");
}

#[test]
fn an_idle_unauthenticated_connection_is_closed() {
    let env = Env::new();
    let start = Instant::now();
    let mut idle = UnixStream::connect(env.login_socket()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    assert!(hung_up(&mut idle), "never closed");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "closed after {waited:?}, not after about 5 s"
    );
    // An authenticated connection is kept past that deadline.
    let mut kept = authenticated(&env);
    kept.set_read_timeout(Some(Duration::from_secs(7)))
        .expect("timeout");
    assert!(
        !hung_up(&mut kept),
        "an authenticated connection was closed"
    );
}

/// mfad serves the socket on four threads of its own, each call's work on
/// the thread that read it; a Begin that waits for the SMS gateway runs
/// elsewhere. With a gateway that hangs and two dozen SMS logins waiting
/// on it, another user's login with an app code goes through at once; had
/// the Begins waited on the socket's threads (0.6 s each, four at a time),
/// it would wait seconds behind them.
#[test]
fn a_hanging_sms_gateway_does_not_hold_up_other_logins_on_the_socket() {
    use mfa_api::wire::{decode, encode_call, message_length, Call, Value, METHOD_RETURN};
    let env = Env::builder()
        .sms(
            Sms::http()
                .timeout("30s")
                .max_sends_per_hour(20)
                .max_total_sends_per_hour(500),
        )
        .max_failures(100)
        .start();
    let alice = env.add_user();
    let dev = env.enroll(&alice);
    let waiting: Vec<User> = (0..24)
        .map(|_| {
            let u = env.add_user();
            env.enroll_sms(&u, &random_phone());
            u
        })
        .collect();
    let gateway = env.sms_gateway();
    let before = gateway.count();
    gateway.delay(Duration::from_secs(10));
    // Every connection made and authenticated first, then each sends its
    // Begin, as sshd would for two dozen users at once.
    let mut conns: Vec<UnixStream> = waiting.iter().map(|_| authenticated(&env)).collect();
    for (s, u) in conns.iter_mut().zip(&waiting) {
        let args: Vec<Value> = [u.name.as_str(), "sshd", "", "", ""]
            .iter()
            .map(|a| Value::Str(a.to_string()))
            .collect();
        let call = Call {
            destination: None,
            path: mfa_api::OBJECT_PATH,
            interface: mfa_api::LOGIN_INTERFACE,
            member: "Begin",
            args: &args,
        };
        let (bytes, _) = encode_call(1, &call).expect("encode Begin");
        s.write_all(&bytes).expect("send Begin");
    }
    // Four sends under way: the socket's threads would all be held by now.
    gateway.wait_for_requests(before + 4, Duration::from_secs(30));
    let code = Clock::now().code(&dev.secret, 0);
    let started = Instant::now();
    let r = env.call_on_socket(None, &["login", &alice.name, &code]);
    let took = started.elapsed();
    assert_eq!(r.ok()["begin"]["action"], "challenge", "{:?}", r.ok());
    assert_eq!(r.ok()["answers"][0]["result"], "success", "{:?}", r.ok());
    assert!(
        took < Duration::from_millis(1500),
        "alice's login took {took:?} while the SMS gateway hung"
    );
    // Each Begin is answered (the code on its way) and sent one SMS.
    for s in &mut conns {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).expect("Begin's reply");
        let len = message_length(&h, 1 << 20).expect("a D-Bus message");
        let mut m = h.to_vec();
        m.resize(len, 0);
        s.read_exact(&mut m[16..]).expect("Begin's reply");
        let reply = decode(&m, &[]).expect("decode");
        assert_eq!(reply.kind, METHOD_RETURN, "{reply:?}");
        assert_eq!(reply.body[0].str(), Some("challenge"), "{reply:?}");
        let message = reply.body[2].str().unwrap_or_default();
        assert!(message.contains("by SMS"), "{message}");
    }
    assert_eq!(gateway.count(), before + waiting.len());
}
