//! SMS gateways for the tests, all real: an HTTP server on 127.0.0.1 that
//! records what mfad posts ([`SmsGateway`]), a script that records the argv
//! mfad runs it with ([`SmsCommand`]), and a reader for the file backend's
//! JSON lines ([`SmsOutbox`]).
//!
//! An [`Env`] built with [`crate::EnvBuilder::sms`] makes the one its
//! [`Sms`] names and writes `[sms]` into mfad.toml; the Env's `sms_*`
//! methods read whichever it is:
//!
//! ```no_run
//! use mfa_tests::{Env, Sms};
//! let env = Env::builder().sms(Sms::http()).start();
//! let alice = env.add_user();
//! let phone = env.enroll_sms(&alice, "+37255512345");
//! let n = env.sms_count();
//! // ... something that sends a code ...
//! let code = env.wait_for_sms(n + 1).code();
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{SmsCommandSection, SmsFileSection, SmsHttpSection, SmsSection};
use crate::mfactl::json_str;
use crate::{random_letters, Enrolled, Env, User};

/// How long the `wait_for_*` helpers of the Env wait for a message.
pub const SMS_WAIT: Duration = Duration::from_secs(15);

/// The example number of the README; valid E.164.
pub const EXAMPLE_PHONE: &str = "+37255512345";

/// A random valid Estonian mobile number, `+3725` and 7 digits (12
/// characters, masked as `+372*****NNN`).
pub fn random_phone() -> String {
    let mut b = [0u8; 7];
    getrandom::fill(&mut b).expect("randomness");
    let digits: String = b.iter().map(|x| char::from(b'0' + x % 10)).collect();
    format!("+3725{digits}")
}

/// A number masked the way mfad shows it to users (README, "Codes by
/// SMS"): the first 4 characters, a `*` for each hidden one, the last 3
/// (`+37255512345` -> `+372*****345`).
pub fn mask_phone(phone: &str) -> String {
    let c: Vec<char> = phone.chars().collect();
    assert!(c.len() > 7, "too short to mask: {phone}");
    format!(
        "{}{}{}",
        c[..4].iter().collect::<String>(),
        "*".repeat(c.len() - 7),
        c[c.len() - 3..].iter().collect::<String>()
    )
}

/// The runs of ASCII digits in `text`, each whole: a phone number is one
/// run, not a code inside it.
pub fn digit_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .collect()
}

/// Whether `code` appears in `text` as a number of its own (the check that
/// a code was not logged).
pub fn holds_code(text: &str, code: &str) -> bool {
    digit_runs(text).contains(&code)
}

/// The one 6-digit code in `text`: a run of exactly 6 ASCII digits (longer
/// runs, like a phone number, do not count). None when there is none or
/// more than one distinct.
pub fn find_code(text: &str) -> Option<String> {
    let mut found: BTreeSet<&str> = digit_runs(text)
        .into_iter()
        .filter(|run| run.len() == 6)
        .collect();
    if found.len() == 1 {
        found.pop_first().map(str::to_string)
    } else {
        None
    }
}

/// The seconds N of mfad's `Wait N seconds before asking for another code.`
/// (`[sms] resend_cooldown`) in `text`; None when it is not there.
pub fn cooldown_wait(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once("Wait ")?;
    let (n, unit) = rest.split_once(' ')?;
    let tail = unit
        .strip_prefix("seconds")
        .or(unit.strip_prefix("second"))?;
    tail.starts_with(" before asking for another code.")
        .then(|| n.parse().ok())
        .flatten()
}

/// [`find_code`] or a panic quoting the text.
#[track_caller]
pub fn code_in(text: &str) -> String {
    find_code(text).unwrap_or_else(|| panic!("no single 6-digit code in {text:?}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// HTTP

/// One request the gateway received.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// Header names and values as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body decoded as `application/x-www-form-urlencoded`, in order,
    /// duplicates kept (empty when the body is empty).
    pub form: Vec<(String, String)>,
}

impl SmsRequest {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first form field of this name (case-sensitive, as sent).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field names in the order sent.
    pub fn field_names(&self) -> Vec<&str> {
        self.form.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// `Authorization: Basic ...` decoded into (username, password).
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let v = self.header("authorization")?;
        let (scheme, b64) = v.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64_decode(b64.trim())?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The 6-digit code in the `Body` field.
    #[track_caller]
    pub fn code(&self) -> String {
        let body = self
            .field("Body")
            .unwrap_or_else(|| panic!("the request has no Body field: {self:?}"));
        code_in(body)
    }
}

/// What the gateway answers. The body goes out as `application/json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub status: u16,
    pub body: String,
    /// Wait this long after the request before answering.
    pub delay: Duration,
}

impl Default for Behaviour {
    /// Twilio's answer to a new message: 201 Created.
    fn default() -> Self {
        Behaviour {
            status: 201,
            body: r#"{"sid":"SMmfatest","status":"queued"}"#.into(),
            delay: Duration::ZERO,
        }
    }
}

struct Shared {
    requests: Mutex<Vec<SmsRequest>>,
    arrived: Condvar,
    behaviour: Mutex<Behaviour>,
    stop: AtomicBool,
}

/// A real HTTP/1.1 server on 127.0.0.1 (random port), one thread per
/// connection, that records every request and answers per its
/// [`Behaviour`] (201 by default), switchable while it runs. Each answer
/// closes the connection. Stopped when dropped (a delayed answer is cut
/// short).
pub struct SmsGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Path of [`SmsGateway::url`], Twilio's shape.
pub const GATEWAY_PATH: &str = "/2010-04-01/Accounts/ACmfatest/Messages.json";

impl SmsGateway {
    pub fn start() -> SmsGateway {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("SMS gateway: cannot listen on 127.0.0.1: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            behaviour: Mutex::new(Behaviour::default()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("sms-gateway".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn gateway thread");
        SmsGateway {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/2010-04-01/Accounts/ACmfatest/Messages.json`
    pub fn url(&self) -> String {
        format!("http://{}{GATEWAY_PATH}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer from now on with this status and body (no delay change).
    pub fn respond(&self, status: u16, body: &str) {
        let mut b = lock(&self.shared.behaviour);
        b.status = status;
        b.body = body.into();
    }

    /// Wait this long before each answer from now on (ZERO: at once).
    pub fn delay(&self, d: Duration) {
        lock(&self.shared.behaviour).delay = d;
    }

    /// Replaces the whole behaviour.
    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.shared.behaviour) = b;
    }

    /// Back to 201, no delay.
    pub fn reset(&self) {
        self.set_behaviour(Behaviour::default());
    }

    /// Every request so far, in arrival order (recorded as soon as it is
    /// read, before any delay).
    pub fn requests(&self) -> Vec<SmsRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Waits until at least `n` requests came; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<SmsRequest> {
        let deadline = Instant::now() + timeout;
        let mut reqs = lock(&self.shared.requests);
        while reqs.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "SMS gateway: {} request(s) after {timeout:?}, expected {n}: {:?}",
                    reqs.len(),
                    *reqs
                );
            }
            reqs = self
                .shared
                .arrived
                .wait_timeout(reqs, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        reqs.clone()
    }

    /// The last request; panics when there is none.
    #[track_caller]
    pub fn last(&self) -> SmsRequest {
        self.requests()
            .pop()
            .unwrap_or_else(|| panic!("the SMS gateway got no request"))
    }

    /// The 6-digit code in the Body field of the last request.
    #[track_caller]
    pub fn last_code(&self) -> String {
        self.last().code()
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let s = shared.clone();
        // Detached: a delayed answer must not hold up other connections.
        let _ = thread::Builder::new()
            .name("sms-gateway-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &s) {
                    eprintln!("mfa-tests SMS gateway: {e}");
                }
            });
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.is_empty() {
        return Ok(()); // a wake-up connect, or a client that gave up
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("bad header line {h:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| e.to_string())?;
    }
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| e.to_string())?;
            let size = size.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk {size:?}"))?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = get("content-length") {
        let n: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
        body = vec![0u8; n];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    let form = form_decode(&body);
    {
        let mut reqs = lock(&shared.requests);
        reqs.push(SmsRequest {
            method,
            path,
            headers,
            body,
            form,
        });
        shared.arrived.notify_all();
    }
    let b = lock(&shared.behaviour).clone();
    let until = Instant::now() + b.delay;
    while Instant::now() < until {
        if shared.stop.load(Ordering::SeqCst) {
            let _ = w.shutdown(Shutdown::Both);
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    let resp = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        b.status,
        reason(b.status),
        b.body.len(),
        b.body
    );
    // The client may have given up (its timeout): not our error.
    let _ = w.write_all(resp.as_bytes());
    let _ = w.flush();
    let _ = w.shutdown(Shutdown::Both);
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
pub fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == b'&')
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Command

/// A bash script (in the Env's temp dir) for `[sms.command] argv`: it
/// records its whole argv, `$0` included, then sleeps and exits as told.
/// Records are appended under flock: the argument count, then each
/// argument, each NUL-terminated, so any byte but NUL survives.
pub struct SmsCommand {
    script: PathBuf,
    log: PathBuf,
    exit_file: PathBuf,
    delay_file: PathBuf,
}

impl SmsCommand {
    /// Writes the script (mode 0755) and its control files into `dir`.
    pub fn new(dir: &Path) -> SmsCommand {
        let base = dir.join(format!("sms-command-{}", random_letters(6)));
        let script = base.with_extension("sh");
        let c = SmsCommand {
            log: base.with_extension("argv"),
            exit_file: base.with_extension("exit"),
            delay_file: base.with_extension("delay"),
            script,
        };
        let q = |p: &Path| format!("'{}'", p.display()); // letters, dirs, dots only
        let text = format!(
            "#!/bin/bash\n\
             # written by mfa-tests: records its argv for the test, then exits as told\n\
             exec 9>>{log}\n\
             flock 9\n\
             printf '%s\\0' \"$(( $# + 1 ))\" >&9\n\
             printf '%s\\0' \"$0\" >&9\n\
             for a in \"$@\"; do printf '%s\\0' \"$a\" >&9; done\n\
             exec 9>&-\n\
             delay=$(cat {delay} 2>/dev/null)\n\
             if [ -n \"$delay\" ]; then sleep \"$delay\" </dev/null >/dev/null 2>&1; fi\n\
             code=$(cat {exit} 2>/dev/null || echo 0)\n\
             if [ \"$code\" != 0 ]; then echo \"sms test command: failing with exit $code\" >&2; fi\n\
             exit \"$code\"\n",
            log = q(&c.log),
            delay = q(&c.delay_file),
            exit = q(&c.exit_file),
        );
        std::fs::write(&c.script, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", c.script.display()));
        std::fs::set_permissions(&c.script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod SMS command");
        c
    }

    /// The script's absolute path (argv[0] in the config).
    pub fn path(&self) -> &Path {
        &self.script
    }

    /// The exit status of the next runs (0 by default).
    pub fn set_exit(&self, code: i32) {
        std::fs::write(&self.exit_file, format!("{code}\n")).expect("write exit file");
    }

    /// Sleep this long before exiting (after recording); ZERO for none.
    pub fn set_delay(&self, d: Duration) {
        if d.is_zero() {
            let _ = std::fs::remove_file(&self.delay_file);
        } else {
            std::fs::write(&self.delay_file, format!("{:.3}\n", d.as_secs_f64()))
                .expect("write delay file");
        }
    }

    /// Every run's argv (argv[0] first), in order.
    #[track_caller]
    pub fn calls(&self) -> Vec<Vec<String>> {
        let raw = match std::fs::read(&self.log) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.log.display()),
        };
        let mut fields = raw.split(|&b| b == 0);
        let mut calls = Vec::new();
        while let Some(n) = fields.next() {
            if n.is_empty() {
                break; // the split after the last NUL
            }
            let n: usize = std::str::from_utf8(n)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("corrupt argv record in {}", self.log.display()));
            let argv: Vec<String> = (0..n)
                .map(|_| {
                    let a = fields.next().unwrap_or_else(|| {
                        panic!("truncated argv record in {}", self.log.display())
                    });
                    String::from_utf8_lossy(a).into_owned()
                })
                .collect();
            calls.push(argv);
        }
        calls
    }

    pub fn count(&self) -> usize {
        self.calls().len()
    }

    /// Waits until at least `n` runs were recorded; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SMS command: {} run(s) after {timeout:?}, expected {n}: {calls:?}",
                    calls.len()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last run's argv; panics when there was none.
    #[track_caller]
    pub fn last_call(&self) -> Vec<String> {
        self.calls()
            .pop()
            .unwrap_or_else(|| panic!("the SMS command never ran"))
    }

    /// The one 6-digit code among the last run's arguments (argv[0] left
    /// out).
    #[track_caller]
    pub fn last_code(&self) -> String {
        let argv = self.last_call();
        code_in(&argv[1..].join("\n"))
    }
}

// ---------------------------------------------------------------------------
// File

/// The file backend's outbox: one JSON object per line.
pub struct SmsOutbox {
    path: PathBuf,
}

impl SmsOutbox {
    pub fn new(path: &Path) -> SmsOutbox {
        SmsOutbox {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text ("" while it does not exist).
    #[track_caller]
    pub fn text(&self) -> String {
        match std::fs::read(&self.path) {
            Ok(b) => String::from_utf8(b)
                .unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => panic!("cannot read {}: {e}", self.path.display()),
        }
    }

    /// Every line parsed; panics on a line that is not a JSON object, or
    /// on a last line without its newline.
    #[track_caller]
    pub fn messages(&self) -> Vec<Value> {
        let text = self.text();
        if text.is_empty() {
            return Vec::new();
        }
        assert!(
            text.ends_with('\n'),
            "{}: the last line has no newline:\n{text}",
            self.path.display()
        );
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("{}: a line is not JSON ({e}): {l:?}", self.path.display())
                });
                assert!(v.is_object(), "not a JSON object: {l}");
                v
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.messages().len()
    }

    /// Waits until at least `n` messages are there; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SMS outbox {}: {} message(s) after {timeout:?}, expected {n}",
                    self.path.display(),
                    m.len()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The 6-digit code in the `message` of the last line.
    #[track_caller]
    pub fn last_code(&self) -> String {
        let m = self
            .messages()
            .pop()
            .unwrap_or_else(|| panic!("the SMS outbox is empty"));
        code_in(&json_str(&m, "message"))
    }
}

// ---------------------------------------------------------------------------
// Config and the Env

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Command,
    File,
}

/// The `[sms]` an Env gets (see [`crate::EnvBuilder::sms`]). Unset
/// settings are left out of mfad.toml (mfad's defaults apply).
#[derive(Debug, Clone)]
pub struct Sms {
    kind: Kind,
    code_lifetime: Option<String>,
    max_sends_per_hour: Option<u32>,
    max_total_sends_per_hour: Option<u32>,
    resend_cooldown: Option<String>,
    allowed_prefixes: Option<Vec<String>>,
    sender: Option<String>,
    message: Option<String>,
    form: Option<Vec<(String, String)>>,
    username: Option<String>,
    password_file: Option<(String, u32)>,
    timeout: Option<String>,
    url: Option<String>,
    program: Option<String>,
    args: Vec<String>,
}

impl Sms {
    fn new(kind: Kind) -> Sms {
        Sms {
            kind,
            code_lifetime: None,
            max_sends_per_hour: None,
            max_total_sends_per_hour: None,
            // Tests send codes back to back (enroll, then log in at once);
            // the tests of the cooldown set one.
            resend_cooldown: Some("0s".into()),
            allowed_prefixes: None,
            sender: None,
            message: None,
            form: None,
            username: None,
            password_file: None,
            timeout: None,
            url: None,
            program: None,
            args: ["TEXT", "{phone}", "-text", "{message}"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// `backend = "http"`, url the Env's [`SmsGateway`] (started with the
    /// Env), no form/auth/timeout keys unless set.
    pub fn http() -> Sms {
        Sms::new(Kind::Http)
    }

    /// `backend = "command"`, argv `[SCRIPT, "TEXT", "{phone}", "-text",
    /// "{message}"]` with the Env's [`SmsCommand`] script.
    pub fn command() -> Sms {
        Sms::new(Kind::Command)
    }

    /// `backend = "file"`, path `DIR/sms-outbox.jsonl`.
    pub fn file() -> Sms {
        Sms::new(Kind::File)
    }

    /// `code_lifetime`, e.g. "5m".
    pub fn code_lifetime(mut self, d: &str) -> Sms {
        self.code_lifetime = Some(d.into());
        self
    }

    pub fn max_sends_per_hour(mut self, n: u32) -> Sms {
        self.max_sends_per_hour = Some(n);
        self
    }

    pub fn max_total_sends_per_hour(mut self, n: u32) -> Sms {
        self.max_total_sends_per_hour = Some(n);
        self
    }

    /// `resend_cooldown`, e.g. "30s" (the harness sets "0s" otherwise).
    pub fn resend_cooldown(mut self, d: &str) -> Sms {
        self.resend_cooldown = Some(d.into());
        self
    }

    /// Leaves `resend_cooldown` out: mfad's default applies.
    pub fn default_resend_cooldown(mut self) -> Sms {
        self.resend_cooldown = None;
        self
    }

    /// `allowed_prefixes`, e.g. `["+372", "+1"]`.
    pub fn allowed_prefixes(mut self, prefixes: &[&str]) -> Sms {
        self.allowed_prefixes = Some(prefixes.iter().map(|p| p.to_string()).collect());
        self
    }

    pub fn sender(mut self, s: &str) -> Sms {
        self.sender = Some(s.into());
        self
    }

    /// The `message` template.
    pub fn message(mut self, m: &str) -> Sms {
        self.message = Some(m.into());
        self
    }

    /// `[sms.http] form`, fields in this order.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Sms {
        self.form = Some(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    /// `[sms.http] username`.
    pub fn username(mut self, u: &str) -> Sms {
        self.username = Some(u.into());
        self
    }

    /// `[sms.http] password_file`: the harness writes `password` and a
    /// newline to `DIR/sms-password`, mode 0600.
    pub fn password(self, password: &str) -> Sms {
        self.password_file_contents(&format!("{password}\n"), 0o600)
    }

    /// `[sms.http] password_file` with exactly these contents and mode.
    pub fn password_file_contents(mut self, contents: &str, mode: u32) -> Sms {
        self.password_file = Some((contents.into(), mode));
        self
    }

    /// `timeout` of `[sms.http]` or `[sms.command]`, e.g. "2s".
    pub fn timeout(mut self, d: &str) -> Sms {
        self.timeout = Some(d.into());
        self
    }

    /// `[sms.http] url` instead of the gateway's (the gateway still runs).
    pub fn url(mut self, url: &str) -> Sms {
        self.url = Some(url.into());
        self
    }

    /// argv[0] instead of the recorder script (e.g. a relative path).
    pub fn program(mut self, p: &str) -> Sms {
        self.program = Some(p.into());
        self
    }

    /// The command's arguments after argv[0].
    pub fn args(mut self, args: &[&str]) -> Sms {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The gateway part an Env runs for its `[sms]` backend.
pub enum SmsParts {
    Http(SmsGateway),
    Command(SmsCommand),
    File(SmsOutbox),
}

/// One message as any backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The number (the field/argument configured as `{phone}`, or the
    /// file's `to`).
    pub to: String,
    /// The text (the field/argument configured as `{message}`, or the
    /// file's `message`).
    pub text: String,
}

impl SentSms {
    /// The 6-digit code in the text.
    #[track_caller]
    pub fn code(&self) -> String {
        code_in(&self.text)
    }
}

/// Makes the Env's gateway part and the `[sms]` section for it.
pub(crate) fn make(sms: &Sms, dir: &Path) -> (SmsParts, SmsSection) {
    let mut section = SmsSection {
        backend: Some(
            match sms.kind {
                Kind::Http => "http",
                Kind::Command => "command",
                Kind::File => "file",
            }
            .into(),
        ),
        code_lifetime: sms.code_lifetime.clone(),
        max_sends_per_hour: sms.max_sends_per_hour,
        max_total_sends_per_hour: sms.max_total_sends_per_hour,
        resend_cooldown: sms.resend_cooldown.clone(),
        allowed_prefixes: sms.allowed_prefixes.clone(),
        sender: sms.sender.clone(),
        message: sms.message.clone(),
        http: None,
        command: None,
        file: None,
    };
    let parts = match sms.kind {
        Kind::Http => {
            let gw = SmsGateway::start();
            let password_file = sms.password_file.as_ref().map(|(contents, mode)| {
                let p = dir.join("sms-password");
                std::fs::write(&p, contents).expect("write sms-password");
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                    .expect("chmod sms-password");
                p
            });
            section.http = Some(SmsHttpSection {
                url: sms.url.clone().unwrap_or_else(|| gw.url()),
                form: sms.form.clone(),
                username: sms.username.clone(),
                password_file,
                timeout: sms.timeout.clone(),
            });
            SmsParts::Http(gw)
        }
        Kind::Command => {
            let c = SmsCommand::new(dir);
            let mut argv = vec![sms
                .program
                .clone()
                .unwrap_or_else(|| c.path().display().to_string())];
            argv.extend(sms.args.iter().cloned());
            section.command = Some(SmsCommandSection {
                argv,
                timeout: sms.timeout.clone(),
            });
            SmsParts::Command(c)
        }
        Kind::File => {
            let path = dir.join("sms-outbox.jsonl");
            section.file = Some(SmsFileSection { path: path.clone() });
            SmsParts::File(SmsOutbox::new(&path))
        }
    };
    (parts, section)
}

/// mfad's default form, for reading requests when the test set none.
fn default_form() -> Vec<(String, String)> {
    [
        ("To", "{phone}"),
        ("From", "{sender}"),
        ("Body", "{message}"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// A finished phone enrollment.
#[derive(Debug, Clone)]
pub struct SmsEnrolled {
    /// The full number.
    pub phone: String,
    /// As the daemon masked it in its answer to EnrollSmsBegin.
    pub masked: String,
    pub device_id: String,
    /// As the daemon returned them: ten for a first phone, none for a
    /// change of number.
    pub backup_codes: Vec<String>,
    /// The code that confirmed the enrollment (used up).
    pub confirm_code: String,
}

impl Env {
    fn sms_parts(&self) -> &SmsParts {
        self.sms
            .as_ref()
            .unwrap_or_else(|| panic!("this Env has no [sms] (EnvBuilder::sms)"))
    }

    /// The HTTP gateway (panics unless the backend is http).
    #[track_caller]
    pub fn sms_gateway(&self) -> &SmsGateway {
        match self.sms_parts() {
            SmsParts::Http(g) => g,
            _ => panic!("the Env's SMS backend is not http"),
        }
    }

    /// The recording command (panics unless the backend is command).
    #[track_caller]
    pub fn sms_command(&self) -> &SmsCommand {
        match self.sms_parts() {
            SmsParts::Command(c) => c,
            _ => panic!("the Env's SMS backend is not command"),
        }
    }

    /// The outbox (panics unless the backend is file).
    #[track_caller]
    pub fn sms_outbox(&self) -> &SmsOutbox {
        match self.sms_parts() {
            SmsParts::File(o) => o,
            _ => panic!("the Env's SMS backend is not file"),
        }
    }

    /// Every message sent so far, from whichever backend.
    pub fn sms_sent(&self) -> Vec<SentSms> {
        let section = self.config.sms.as_ref();
        match self.sms_parts() {
            SmsParts::Http(g) => {
                let form = section
                    .and_then(|s| s.http.as_ref())
                    .and_then(|h| h.form.clone())
                    .unwrap_or_else(default_form);
                let key = |t: &str| {
                    form.iter()
                        .find(|(_, v)| v == t)
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default()
                };
                let (to, text) = (key("{phone}"), key("{message}"));
                g.requests()
                    .iter()
                    .map(|r| SentSms {
                        to: r.field(&to).unwrap_or_default().to_string(),
                        text: r.field(&text).unwrap_or_default().to_string(),
                    })
                    .collect()
            }
            SmsParts::Command(c) => {
                let argv = section
                    .and_then(|s| s.command.as_ref())
                    .map(|c| c.argv.clone())
                    .unwrap_or_default();
                let idx = |t: &str| argv.iter().position(|a| a == t);
                let (to, text) = (idx("{phone}"), idx("{message}"));
                c.calls()
                    .iter()
                    .map(|a| SentSms {
                        to: to.and_then(|i| a.get(i)).cloned().unwrap_or_default(),
                        text: text.and_then(|i| a.get(i)).cloned().unwrap_or_default(),
                    })
                    .collect()
            }
            SmsParts::File(o) => o
                .messages()
                .iter()
                .map(|m| SentSms {
                    to: m["to"].as_str().unwrap_or_default().to_string(),
                    text: m["message"].as_str().unwrap_or_default().to_string(),
                })
                .collect(),
        }
    }

    /// How many messages were sent so far.
    pub fn sms_count(&self) -> usize {
        self.sms_sent().len()
    }

    /// Waits (up to [`SMS_WAIT`]) until the `n`-th message (1-based) was
    /// sent and returns it.
    #[track_caller]
    pub fn wait_for_sms(&self, n: usize) -> SentSms {
        assert!(n >= 1);
        let deadline = Instant::now() + SMS_WAIT;
        loop {
            let mut sent = self.sms_sent();
            if sent.len() >= n {
                return sent.swap_remove(n - 1);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} SMS sent after {SMS_WAIT:?}, expected {n}: {sent:?}\nmfad log:\n{}",
                    sent.len(),
                    self.daemon_log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The code in the last message sent.
    #[track_caller]
    pub fn last_sms_code(&self) -> String {
        self.sms_sent()
            .pop()
            .unwrap_or_else(|| panic!("no SMS was sent"))
            .code()
    }

    /// Enrolls `phone` for `user` end to end over D-Bus: EnrollSmsBegin
    /// (as the user when `as_user`, with `current_code`; else as root with
    /// the user's name and no code), the code from the gateway, then
    /// EnrollSmsConfirm the same way. Checks the masked number against
    /// [`mask_phone`].
    #[track_caller]
    pub fn enroll_sms_with(
        &self,
        user: &User,
        phone: &str,
        as_user: bool,
        current_code: &str,
    ) -> SmsEnrolled {
        let (caller, name) = if as_user {
            (Some(user), "")
        } else {
            (None, user.name.as_str())
        };
        let before = self.sms_count();
        let v = self
            .call(caller, &["enroll-sms-begin", name, phone, current_code])
            .ok()
            .clone();
        let id = json_str(&v, "enrollment_id");
        let masked = json_str(&v, "phone");
        assert_eq!(masked, mask_phone(phone), "EnrollSmsBegin's masked number");
        let sms = self.wait_for_sms(before + 1);
        assert_eq!(sms.to, phone, "the SMS went to another number: {sms:?}");
        let code = sms.code();
        let v = self
            .call(caller, &["enroll-sms-confirm", name, &id, &code])
            .ok()
            .clone();
        SmsEnrolled {
            phone: phone.to_string(),
            masked,
            device_id: json_str(&v, "device_id"),
            backup_codes: v["backup_codes"]
                .as_array()
                .unwrap_or_else(|| panic!("no backup_codes: {v}"))
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect(),
            confirm_code: code,
        }
    }

    /// A phone as the user's first device, as the user (no current code):
    /// [`Env::enroll_sms_with`]. Returns ten backup codes.
    #[track_caller]
    pub fn enroll_sms(&self, user: &User, phone: &str) -> SmsEnrolled {
        let e = self.enroll_sms_with(user, phone, true, "");
        assert_eq!(
            e.backup_codes.len(),
            10,
            "a first phone must come with 10 backup codes: {e:?}"
        );
        e
    }

    /// An authenticator app ([`Env::enroll`], with mfactl as the user),
    /// then a phone added by root (so no code of the app is used up).
    /// The Enrolled's backup codes are the ones valid now: the phone's, if
    /// its confirmation returned new ones.
    #[track_caller]
    pub fn enroll_app_and_sms(&self, user: &User, phone: &str) -> (Enrolled, SmsEnrolled) {
        let mut app = self.enroll(user);
        let sms = self.enroll_sms_with(user, phone, false, "");
        if !sms.backup_codes.is_empty() {
            app.backup_codes = sms.backup_codes.clone();
        }
        (app, sms)
    }
}

/// `[sms]` as TOML (used by DaemonConfig::to_toml).
pub(crate) fn section_toml(s: &SmsSection) -> String {
    use crate::daemon::toml_str;
    let mut t = String::from("\n[sms]\n");
    if let Some(b) = &s.backend {
        let _ = writeln!(t, "backend = {}", toml_str(b));
    }
    if let Some(v) = &s.code_lifetime {
        let _ = writeln!(t, "code_lifetime = {}", toml_str(v));
    }
    if let Some(v) = s.max_sends_per_hour {
        let _ = writeln!(t, "max_sends_per_hour = {v}");
    }
    if let Some(v) = s.max_total_sends_per_hour {
        let _ = writeln!(t, "max_total_sends_per_hour = {v}");
    }
    if let Some(v) = &s.resend_cooldown {
        let _ = writeln!(t, "resend_cooldown = {}", toml_str(v));
    }
    if let Some(v) = &s.allowed_prefixes {
        let items: Vec<String> = v.iter().map(|p| toml_str(p)).collect();
        let _ = writeln!(t, "allowed_prefixes = [{}]", items.join(", "));
    }
    if let Some(v) = &s.sender {
        let _ = writeln!(t, "sender = {}", toml_str(v));
    }
    if let Some(v) = &s.message {
        let _ = writeln!(t, "message = {}", toml_str(v));
    }
    if let Some(h) = &s.http {
        let _ = writeln!(t, "\n[sms.http]\nurl = {}", toml_str(&h.url));
        if let Some(form) = &h.form {
            let fields: Vec<String> = form
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                .collect();
            let _ = writeln!(t, "form = {{ {} }}", fields.join(", "));
        }
        if let Some(u) = &h.username {
            let _ = writeln!(t, "username = {}", toml_str(u));
        }
        if let Some(p) = &h.password_file {
            let _ = writeln!(t, "password_file = {}", toml_str(&p.to_string_lossy()));
        }
        if let Some(d) = &h.timeout {
            let _ = writeln!(t, "timeout = {}", toml_str(d));
        }
    }
    if let Some(c) = &s.command {
        let argv: Vec<String> = c.argv.iter().map(|a| toml_str(a)).collect();
        let _ = writeln!(t, "\n[sms.command]\nargv = [{}]", argv.join(", "));
        if let Some(d) = &c.timeout {
            let _ = writeln!(t, "timeout = {}", toml_str(d));
        }
    }
    if let Some(f) = &s.file {
        let _ = writeln!(
            t,
            "\n[sms.file]\npath = {}",
            toml_str(&f.path.to_string_lossy())
        );
    }
    t
}
