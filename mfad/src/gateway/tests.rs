//! The backends against real local things: an HTTP server on 127.0.0.1, a
//! /bin/sh script, a file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

const PHONE: &str = "+37255512345";
const CODE: &str = "482913";

/// Values that would break a naive encoder: a form separator, a quote, a
/// newline, a placeholder.
const EVIL: &str = "a&To=+1999\"\n{code}'$(id)";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn sms(toml_text: &str) -> SmsConfig {
    crate::config::Config::parse(toml_text, Path::new("/test/mfad.toml"))
        .unwrap()
        .sms
        .unwrap()
}

fn message<'a>(user: &'a str, host: &'a str) -> Message<'a> {
    Message {
        phone: PHONE,
        code: CODE,
        user,
        host,
    }
}

// ---- pure parts ----

#[test]
fn excerpt_is_one_short_line_without_secrets() {
    assert_eq!(excerpt("a\r\n\tb  c\n", &[], 100), "a b c");
    assert_eq!(
        excerpt("{\"body\":\"code 482913\"}", &[CODE], 100),
        "{\"body\":\"code [redacted]\"}"
    );
    assert_eq!(excerpt("x 482913 y", &["", CODE], 100), "x [redacted] y");
    let long = "e".repeat(300);
    let e = excerpt(&long, &[], 20);
    assert_eq!(e, format!("{}...", "e".repeat(20)));
    // A cut through a number drops the number's shown part.
    assert_eq!(excerpt("status 48291300", &[], 10), "status...");
}

#[test]
fn e164_check() {
    for ok in ["+37255512345", "+1", "+123456789012345"] {
        assert!(is_e164(ok), "{ok}");
    }
    for bad in [
        "37255512345",
        "+",
        "+1234567890123456",
        "+372 555",
        "-text",
        "+37a",
    ] {
        assert!(!is_e164(bad), "{bad}");
    }
}

#[test]
fn backend_table_must_match() {
    let mut c = sms("[sms]\nbackend = \"file\"\n[sms.file]\npath = \"/tmp/x\"\n");
    assert!(c.validate().is_ok());
    c.backend = Backend::Command;
    let e = c.validate().unwrap_err();
    assert!(e.contains("[sms.command]"), "{e}");
    let rt = runtime();
    match Gateway::new(&c, rt.handle().clone()) {
        Err(Error::Config(e)) => assert!(e.contains("[sms.command]"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_phone_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox");
    let c = sms(&format!(
        "[sms]\nbackend = \"file\"\n[sms.file]\npath = \"{}\"\n",
        path.display()
    ));
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    let msg = Message {
        phone: "-text",
        ..message("alice", "box")
    };
    assert!(matches!(g.send(&msg), Err(SendError::Failed(_))));
    assert!(!path.exists());
}

// ---- password file ----

fn secret_file(dir: &Path, content: &str, mode: u32) -> PathBuf {
    let p = dir.join(format!("secret-{mode:o}-{}", content.len()));
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn password_file_first_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = secret_file(dir.path(), "s3cret\r\nsecond line\n", 0o600);
    assert_eq!(read_password_file(&p).unwrap(), "s3cret");
    let p = secret_file(dir.path(), "tok en", 0o400);
    assert_eq!(read_password_file(&p).unwrap(), "tok en");
}

#[test]
fn password_file_must_be_private_and_present() {
    let dir = tempfile::tempdir().unwrap();
    for (content, mode, want) in [
        ("hunter2\n", 0o640, "mode 0640"),
        ("hunter2\n", 0o604, "chmod 600"),
        ("hunter2\n", 0o620, "group or others"),
        ("\nsecond\n", 0o600, "empty"),
        ("", 0o600, "empty"),
    ] {
        let p = secret_file(dir.path(), content, mode);
        match read_password_file(&p) {
            Err(Error::Config(e)) => {
                assert!(e.contains(want), "{e}");
                assert!(e.contains("password_file"), "{e}");
                // (Not "pw": a random temp dir name may hold it.)
                assert!(!e.contains("hunter2"), "{e}");
            }
            other => panic!("{mode:o}: {other:?}"),
        }
    }
    let missing = dir.path().join("missing");
    match read_password_file(&missing) {
        Err(Error::Config(e)) => assert!(e.contains("cannot open"), "{e}"),
        other => panic!("{other:?}"),
    }
    match read_password_file(dir.path()) {
        Err(Error::Config(e)) => assert!(e.contains("not a regular file"), "{e}"),
        other => panic!("{other:?}"),
    }
}

// ---- http ----

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// A gateway on 127.0.0.1 that reads one request, waits `delay`, then
/// writes `answer` and closes. The handle gives the request it read.
fn gateway_once(answer: &str, delay: Duration) -> (String, JoinHandle<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/send?k=v",
        listener.local_addr().unwrap().port()
    );
    let answer = answer.to_owned();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let req = Request {
            head,
            body: Vec::new(),
        };
        let len: usize = req
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        std::thread::sleep(delay);
        let mut stream = reader.into_inner();
        // The client may be gone already (the timeout test).
        let _ = stream.write_all(answer.as_bytes());
        Request { body, ..req }
    });
    (url, handle)
}

fn http_config(url: &str, extra: &str) -> SmsConfig {
    sms(&format!(
        "[sms]\nbackend = \"http\"\nsender = \"MFA\"\n[sms.http]\nurl = \"{url}\"\n{extra}"
    ))
}

const OK: &str = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

#[test]
fn http_posts_the_form_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "tok3n&x\n", 0o600);
    let (url, server) = gateway_once(OK, Duration::ZERO);
    let c = http_config(
        &url,
        &format!(
            "username = \"ACxxx\"\npassword_file = \"{}\"\n\
             form = {{ To = \"{{phone}}\", From = \"{{sender}}\", Body = \"{{message}}\", \
             Ref = \"{{user}}@{{host}} {{{{x}}}}\" }}\n",
            pw.display()
        ),
    );
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    g.send(&message(EVIL, "box")).unwrap();
    let req = server.join().unwrap();
    assert!(
        req.head.starts_with("POST /send?k=v HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("ACxxx:tok3n&x");
    assert_eq!(req.header("authorization"), Some(format!("Basic {basic}")));
    // Exactly the configured fields, each value whole: `&To=` inside a value
    // is data, and the `{code}` in the user name is not expanded.
    let mut form = req.form();
    form.sort();
    assert_eq!(
        form,
        [
            (
                "Body".to_owned(),
                format!("Your verification code for box is {CODE}")
            ),
            ("From".to_owned(), "MFA".to_owned()),
            ("Ref".to_owned(), format!("{EVIL}@box {{x}}")),
            ("To".to_owned(), PHONE.to_owned()),
        ]
    );
}

#[test]
fn http_message_values_are_not_expanded_twice() {
    let (url, server) = gateway_once(OK, Duration::ZERO);
    let c = sms(&format!(
        "[sms]\nbackend = \"http\"\nmessage = \"{{user}} on {{host}}: {{code}}\"\n\
         [sms.http]\nurl = \"{url}\"\n"
    ));
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    g.send(&message("{code}&Body=x", "{phone}\n")).unwrap();
    let form = server.join().unwrap().form();
    assert_eq!(form.len(), 3, "{form:?}");
    let body = form.iter().find(|(k, _)| k == "Body").unwrap();
    assert_eq!(body.1, format!("{{code}}&Body=x on {{phone}}\n: {CODE}"));
    assert!(!form.iter().any(|(_, v)| v == "x"));
}

#[test]
fn http_refusal_is_failed_with_status_and_no_secrets() {
    let body = format!(
        "{{\"code\":21211,\"message\":\"The 'To' number is not valid.\nBody: Your verification code for box is {CODE}\"}}"
    );
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (url, server) = gateway_once(&answer, Duration::ZERO);
    let rt = runtime();
    let g = Gateway::new(&http_config(&url, ""), rt.handle().clone()).unwrap();
    let e = g.send(&message("alice", "box")).unwrap_err();
    server.join().unwrap();
    let SendError::Failed(detail) = &e else {
        panic!("{e:?}")
    };
    assert!(
        detail.contains("127.0.0.1 answered HTTP 400 Bad Request"),
        "{detail}"
    );
    assert!(detail.contains("21211"), "{detail}");
    assert!(!detail.contains(CODE), "{detail}");
    assert!(!detail.contains("Your verification code"), "{detail}");
    assert!(!detail.contains('\n'), "{detail}");
    assert!(!detail.contains("/send"), "{detail}");
    assert_eq!(e.to_string(), *detail);
}

#[test]
fn http_server_error_and_redirect_are_failed() {
    let rt = runtime();
    for (answer, want) in [
        (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "503",
        ),
        (
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "302",
        ),
    ] {
        let (url, server) = gateway_once(answer, Duration::ZERO);
        let g = Gateway::new(&http_config(&url, ""), rt.handle().clone()).unwrap();
        match g.send(&message("alice", "box")) {
            Err(SendError::Failed(d)) => assert!(d.contains(want), "{d}"),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
    }
}

#[test]
fn http_timeout_is_uncertain() {
    let (url, server) = gateway_once(OK, Duration::from_secs(3));
    let rt = runtime();
    let g = Gateway::new(
        &http_config(&url, "timeout = \"500ms\"\n"),
        rt.handle().clone(),
    )
    .unwrap();
    let start = Instant::now();
    match g.send(&message("alice", "box")) {
        Err(SendError::Uncertain(d)) => {
            assert!(d.contains("within 0.5s"), "{d}");
            assert!(d.contains("may have been sent"), "{d}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    // The request did go out before the timeout.
    assert!(!server.join().unwrap().body.is_empty());
}

#[test]
fn http_connection_refused_is_failed() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rt = runtime();
    let g = Gateway::new(
        &http_config(&format!("http://127.0.0.1:{port}/"), ""),
        rt.handle().clone(),
    )
    .unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => {
            assert!(d.starts_with("cannot connect to 127.0.0.1"), "{d}");
            assert!(d.to_lowercase().contains("refused"), "{d}");
        }
        other => panic!("{other:?}"),
    }
}

/// https with ring: a server that does not speak TLS is a connect failure
/// (nothing sent), not a panic over a missing crypto provider.
#[test]
fn https_handshake_failure_is_failed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 512];
        let n = s.read(&mut buf).unwrap();
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        // A TLS ClientHello starts with a handshake record.
        buf[..n].first().copied()
    });
    let rt = runtime();
    let g = Gateway::new(
        &http_config(&format!("https://127.0.0.1:{port}/"), ""),
        rt.handle().clone(),
    )
    .unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => assert!(d.starts_with("cannot connect to 127.0.0.1"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.join().unwrap(), Some(0x16));
}

#[test]
fn http_gateway_needs_a_private_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "pw\n", 0o644);
    let c = http_config(
        "https://sms.example.com/",
        &format!("username = \"u\"\npassword_file = \"{}\"\n", pw.display()),
    );
    let rt = runtime();
    match Gateway::new(&c, rt.handle().clone()) {
        Err(Error::Config(e)) => assert!(e.contains("chmod 600"), "{e}"),
        other => panic!("{other:?}"),
    }
}

// ---- command ----

fn script(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("send-sms");
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn command_config(argv: &[String], extra: &str) -> SmsConfig {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    sms(&format!(
        "[sms]\nbackend = \"command\"\n[sms.command]\nargv = [{}]\n{extra}",
        argv.join(", ")
    ))
}

#[test]
fn command_gets_argv_without_a_shell_and_a_clean_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("argv");
    let env = dir.path().join("env");
    let prog = script(
        dir.path(),
        &format!(
            "for a in \"$@\"; do printf '%s\\0' \"$a\"; done > {}\nenv > {}\necho \"$@\"; echo oops >&2\n",
            out.display(),
            env.display()
        ),
    );
    let c = command_config(
        &[
            prog.display().to_string(),
            "TEXT".into(),
            "{phone}".into(),
            "-text".into(),
            "{message}".into(),
            "{user}".into(),
            "u={user} {{lit}}".into(),
        ],
        "",
    );
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    g.send(&message(EVIL, "box")).unwrap();
    let argv = std::fs::read(&out).unwrap();
    let argv: Vec<&str> = std::str::from_utf8(&argv)
        .unwrap()
        .strip_suffix('\0')
        .unwrap()
        .split('\0')
        .collect();
    let text = format!("Your verification code for box is {CODE}");
    let user_arg = format!("u={EVIL} {{lit}}");
    assert_eq!(
        argv,
        [
            "TEXT",
            PHONE,
            "-text",
            text.as_str(),
            EVIL,
            user_arg.as_str()
        ]
    );
    let env = std::fs::read_to_string(&env).unwrap();
    assert!(
        env.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{env}"
    );
    assert!(!env.contains("HOME="), "{env}");
    assert!(!env.contains("CARGO"), "{env}");
}

#[test]
fn command_nonzero_exit_is_failed_with_status() {
    let dir = tempfile::tempdir().unwrap();
    let prog = script(dir.path(), "echo \"$1\"; exit 3\n");
    let c = command_config(&[prog.display().to_string(), "{message}".into()], "");
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => {
            assert_eq!(d, format!("{} exited with status 3", prog.display()));
        }
        other => panic!("{other:?}"),
    }
    let prog = script(dir.path(), "kill -9 $$\n");
    let c = command_config(&[prog.display().to_string(), "{code}".into()], "");
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => assert!(d.ends_with("was killed by signal 9"), "{d}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_timeout_kills_its_group_and_is_uncertain() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let prog = script(
        dir.path(),
        &format!("sleep 30 &\necho $! > {}\nwait\n", pid_file.display()),
    );
    let c = command_config(
        &[prog.display().to_string(), "{message}".into()],
        "timeout = \"500ms\"\n",
    );
    let rt = runtime();
    let g = Gateway::new(&c, rt.handle().clone()).unwrap();
    let start = Instant::now();
    match g.send(&message("alice", "box")) {
        Err(SendError::Uncertain(d)) => assert!(d.contains("within 0.5s and was killed"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // The background sleep went with its group: gone, or a zombie waiting
    // for init.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::read_to_string(&stat) {
            Err(_) => break,
            Ok(s) if s.contains(") Z ") => break,
            Ok(_) if Instant::now() > deadline => panic!("sleep {pid} survived"),
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn command_must_exist_at_start() {
    let c = command_config(&["/nonexistent/send-sms".into(), "{message}".into()], "");
    let rt = runtime();
    match Gateway::new(&c, rt.handle().clone()) {
        Err(Error::Config(e)) => {
            assert!(e.contains("argv[0] /nonexistent/send-sms"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

// ---- file ----

fn file_gateway(path: &Path, rt: &tokio::runtime::Runtime) -> Gateway {
    let c = sms(&format!(
        "[sms]\nbackend = \"file\"\nsender = \"Corp \\\"IT\\\"\"\n[sms.file]\npath = \"{}\"\n",
        path.display()
    ));
    Gateway::new(&c, rt.handle().clone()).unwrap()
}

#[test]
fn file_appends_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let rt = runtime();
    let g = file_gateway(&path, &rt);
    g.send(&message("alice", "box")).unwrap();
    g.send(&message("bob", EVIL)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (line, host) in lines.iter().zip(["box", EVIL]) {
        let obj = line.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["from", "message", "time", "to"]);
        assert_eq!(obj["to"], PHONE);
        assert_eq!(obj["from"], "Corp \"IT\"");
        assert_eq!(
            obj["message"],
            format!("Your verification code for {host} is {CODE}")
        );
        assert!(now.abs_diff(obj["time"].as_u64().unwrap()) < 60);
    }
}

#[test]
fn file_concurrent_sends_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let rt = runtime();
    let g = Arc::new(file_gateway(&path, &rt));
    let long_user = "u".repeat(3000);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let g = g.clone();
            let user = format!("{long_user}{i}");
            std::thread::spawn(move || {
                for _ in 0..25 {
                    g.send(&message("x", &user)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 100);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["to"], PHONE);
    }
}

#[test]
fn file_existing_outbox_is_appended_and_missing_dir_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    std::fs::write(&path, "{\"old\":1}\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rt = runtime();
    file_gateway(&path, &rt)
        .send(&message("alice", "box"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\"old\":1}\n{"), "{text}");
    let c = sms("[sms]\nbackend = \"file\"\n[sms.file]\npath = \"/nonexistent/dir/outbox\"\n");
    match Gateway::new(&c, rt.handle().clone()) {
        Err(Error::Config(e)) => assert!(e.contains("does not exist"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn file_outbox_is_never_a_symlink_nor_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("outbox.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let at_start = |path: &Path| {
        let c = sms(&format!(
            "[sms]\nbackend = \"file\"\n[sms.file]\npath = \"{}\"\n",
            path.display()
        ));
        match Gateway::new(&c, rt.handle().clone()) {
            Err(Error::Config(e)) => e,
            Ok(_) => panic!("{} accepted", path.display()),
            Err(e) => panic!("{e:?}"),
        }
    };
    assert!(at_start(&link).contains("symlink"));
    let open = dir.path().join("open.jsonl");
    std::fs::write(&open, "").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(at_start(&open).contains("chmod 600"));
    // A symlink put in place after the start is refused at the send.
    let later = dir.path().join("later.jsonl");
    let g = file_gateway(&later, &rt);
    std::os::unix::fs::symlink(&target, &later).unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => assert!(d.contains("symlink"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "",
        "nothing written through it"
    );
}

#[test]
fn file_write_error_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let rt = runtime();
    let g = file_gateway(&path, &rt);
    // A directory where the file should be: open fails, even for root.
    std::fs::create_dir(&path).unwrap();
    match g.send(&message("alice", "box")) {
        Err(SendError::Failed(d)) => {
            assert!(d.starts_with("cannot open"), "{d}");
            assert!(!d.contains(CODE), "{d}");
        }
        other => panic!("{other:?}"),
    }
}
