//! Test helper: one raw org.mfad.Mfa1 call as whoever runs it (the tests
//! run it under setpriv as a test user), so the daemon's authorization by
//! caller uid is tested with real credentials.
//!
//! Usage: mfa-call BUS COMMAND ARGS...
//!   BUS is a D-Bus address, "system", or socket:PATH (mfad's login
//!   socket, peer to peer)
//!   login-begin USER [SERVICE [RHOST [AUTH_INFO]]]
//!   login USER ANSWER...          Begin, then Answer each answer in turn
//!                                 while the result is retry or prompt
//!                                 (an empty ANSWER is the empty answer)
//!   answer ATTEMPT ANSWER         one Login.Answer
//!   account-check USER SERVICE ATTEMPT
//!   trusted USER | trusted-remove USER ID | trusted-remove-all USER
//!   admin-trusted USER | admin-trusted-remove USER ID | admin-trusted-remove-all USER
//!   enroll-begin USER [NAME [CODE]]
//!   enroll-confirm USER ID CODE1 CODE2
//!   enroll-sms-begin USER PHONE [CODE]
//!   enroll-sms-resend USER ID
//!   enroll-sms-confirm USER ID CODE
//!   send-code USER
//!   status USER
//!   remove-device USER ID CODE
//!   regen-backup USER CODE
//!   admin-list | admin-status USER | admin-reset USER | admin-unlock USER
//!   own-name                      RequestName org.mfad.Mfa1 (bus policy check)
//!   impostor                      owns org.mfad.Mfa1 and answers every Begin
//!                                 `ignore` and every AccountCheck `allow`;
//!                                 prints {"ok": "serving"}, then runs until
//!                                 killed
//!   socket-listen                 (BUS is a socket path) listens there and
//!                                 accepts, answering nothing; prints
//!                                 {"ok": "listening"}, runs until killed
//!   socket-probe N                (BUS is a socket path) opens N
//!                                 connections at once and starts SASL
//!                                 EXTERNAL on each; prints {"ok": [...]},
//!                                 per connection "ok" (mfad answered OK)
//!                                 or "closed" (mfad hung up)
//!   flood USER SECONDS CONNECTIONS  Account.Status(USER) in a loop on each
//!                                 of CONNECTIONS connections for SECONDS;
//!                                 prints {"ok": N, "rate_limited": N,
//!                                 "other": N, "first_other": MESSAGE}
//!
//! Prints one JSON object: {"ok": RESULT} (exit 0) or {"error": NAME,
//! "message": MESSAGE} for a D-Bus error reply (exit 3). Anything else
//! (usage, cannot connect) exits 2 with {"fatal": MESSAGE}.
//!
//! `login` prints {"begin": {action, attempt, message}, "answers":
//! [{result, message}...]}; a `prompt` result's message is the new prompt.
//! The SMS calls print {"enrollment_id", "phone"} (begin), {"phone"}
//! (resend, send-code; the number as masked by the daemon) and
//! {"device_id", "backup_codes"} (confirm).

use std::process::ExitCode;

use mfa_api::{AccountProxy, AdminProxy, BeginAction, LoginProxy};
use serde_json::{json, Value};
use zbus::DBusError;

enum Failure {
    DBus(String, String),
    Fatal(String),
}

impl From<mfa_api::Error> for Failure {
    fn from(e: mfa_api::Error) -> Self {
        match &e {
            mfa_api::Error::ZBus(zbus::Error::MethodError(name, desc, _)) => {
                Failure::DBus(name.to_string(), desc.clone().unwrap_or_default())
            }
            mfa_api::Error::ZBus(zbus::Error::FDO(f)) => Failure::DBus(
                f.name().to_string(),
                f.description().unwrap_or_default().to_string(),
            ),
            mfa_api::Error::ZBus(other) => Failure::Fatal(other.to_string()),
            _ => Failure::DBus(e.name().to_string(), e.message()),
        }
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        Failure::from(mfa_api::Error::ZBus(e))
    }
}

fn arg(args: &[String], i: usize, what: &str) -> Result<String, Failure> {
    args.get(i)
        .cloned()
        .ok_or_else(|| Failure::Fatal(format!("missing argument: {what}")))
}

async fn run(args: Vec<String>) -> Result<Value, Failure> {
    let bus = arg(&args, 0, "BUS")?;
    let cmd = arg(&args, 1, "COMMAND")?;
    let rest = &args[2..];
    match cmd.as_str() {
        "impostor" => return impostor(&bus).await,
        "flood" => return flood(&bus, rest),
        "socket-listen" => return socket_listen(&bus),
        "socket-probe" => return socket_probe(&bus, rest),
        _ => {}
    }
    let conn = match bus.strip_prefix("socket:") {
        Some(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)
                .map_err(|e| Failure::Fatal(format!("cannot connect to {path}: {e}")))?;
            zbus::connection::Builder::unix_stream(stream)
                .p2p()
                .build()
                .await
        }
        None => mfa_api::connect(&bus).await,
    }
    .map_err(|e| Failure::Fatal(format!("cannot connect to {bus}: {e}")))?;
    let login = LoginProxy::new(&conn).await?;
    let account = AccountProxy::new(&conn).await?;
    let admin = AdminProxy::new(&conn).await?;
    let v = match cmd.as_str() {
        "login-begin" => {
            let service = rest.get(1).map(String::as_str).unwrap_or("mfa-test");
            let rhost = rest.get(2).map(String::as_str).unwrap_or("");
            let auth_info = rest.get(3).map(String::as_str).unwrap_or("");
            let (action, attempt, message) = login
                .begin(&arg(rest, 0, "USER")?, service, rhost, "", auth_info)
                .await?;
            json!({"action": action, "attempt": attempt, "message": message})
        }
        "account-check" => {
            let (action, message) = login
                .account_check(
                    &arg(rest, 0, "USER")?,
                    &arg(rest, 1, "SERVICE")?,
                    &arg(rest, 2, "ATTEMPT")?,
                )
                .await?;
            json!({"action": action, "message": message})
        }
        "trusted" => json!(account.trusted_devices(&arg(rest, 0, "USER")?).await?),
        "trusted-remove" => {
            account
                .remove_trusted_device(&arg(rest, 0, "USER")?, &arg(rest, 1, "ID")?)
                .await?;
            json!(null)
        }
        "trusted-remove-all" => json!(
            account
                .remove_all_trusted_devices(&arg(rest, 0, "USER")?)
                .await?
        ),
        "admin-trusted" => json!(admin.trusted_devices(&arg(rest, 0, "USER")?).await?),
        "admin-trusted-remove" => {
            admin
                .remove_trusted_device(&arg(rest, 0, "USER")?, &arg(rest, 1, "ID")?)
                .await?;
            json!(null)
        }
        "admin-trusted-remove-all" => json!(
            admin
                .remove_all_trusted_devices(&arg(rest, 0, "USER")?)
                .await?
        ),
        "login" => {
            let (action, attempt, message) = login
                .begin(&arg(rest, 0, "USER")?, "mfa-test", "", "", "")
                .await?;
            let mut answers = Vec::new();
            if action == BeginAction::Challenge {
                for code in &rest[1..] {
                    let (result, message) = login.answer(&attempt, code.as_bytes()).await?;
                    answers.push(json!({"result": result, "message": message}));
                    // A prompt is not a try: the next answer goes to the
                    // new prompt, as pam_mfa does.
                    if !matches!(
                        result,
                        mfa_api::AnswerResult::Retry | mfa_api::AnswerResult::Prompt
                    ) {
                        break;
                    }
                }
            }
            json!({
                "begin": {"action": action, "attempt": attempt, "message": message},
                "answers": answers,
            })
        }
        "answer" => {
            let (result, message) = login
                .answer(
                    &arg(rest, 0, "ATTEMPT")?,
                    arg(rest, 1, "ANSWER")?.as_bytes(),
                )
                .await?;
            json!({"result": result, "message": message})
        }
        "enroll-sms-begin" => {
            let code = rest.get(2).map(String::as_str).unwrap_or("");
            let (id, phone) = account
                .enroll_sms_begin(&arg(rest, 0, "USER")?, &arg(rest, 1, "PHONE")?, code)
                .await?;
            json!({"enrollment_id": id, "phone": phone})
        }
        "enroll-sms-resend" => {
            let phone = account
                .enroll_sms_resend(&arg(rest, 0, "USER")?, &arg(rest, 1, "ID")?)
                .await?;
            json!({ "phone": phone })
        }
        "enroll-sms-confirm" => {
            let (device_id, backup_codes) = account
                .enroll_sms_confirm(
                    &arg(rest, 0, "USER")?,
                    &arg(rest, 1, "ID")?,
                    &arg(rest, 2, "CODE")?,
                )
                .await?;
            json!({"device_id": device_id, "backup_codes": backup_codes})
        }
        "send-code" => {
            let phone = account.send_code(&arg(rest, 0, "USER")?).await?;
            json!({ "phone": phone })
        }
        "enroll-begin" => {
            let name = rest.get(1).map(String::as_str).unwrap_or("");
            let code = rest.get(2).map(String::as_str).unwrap_or("");
            let (id, uri, secret) = account
                .enroll_totp_begin(&arg(rest, 0, "USER")?, name, code)
                .await?;
            json!({"enrollment_id": id, "uri": uri, "secret": secret})
        }
        "enroll-confirm" => {
            let (device_id, backup_codes) = account
                .enroll_totp_confirm(
                    &arg(rest, 0, "USER")?,
                    &arg(rest, 1, "ID")?,
                    &arg(rest, 2, "CODE1")?,
                    &arg(rest, 3, "CODE2")?,
                )
                .await?;
            json!({"device_id": device_id, "backup_codes": backup_codes})
        }
        "status" => json!(account.status(&arg(rest, 0, "USER")?).await?),
        "remove-device" => {
            account
                .remove_device(
                    &arg(rest, 0, "USER")?,
                    &arg(rest, 1, "ID")?,
                    &arg(rest, 2, "CODE")?,
                )
                .await?;
            json!(null)
        }
        "regen-backup" => json!(
            account
                .regenerate_backup_codes(&arg(rest, 0, "USER")?, &arg(rest, 1, "CODE")?)
                .await?
        ),
        "admin-list" => json!(admin.list_users().await?),
        "admin-status" => json!(admin.user_status(&arg(rest, 0, "USER")?).await?),
        "admin-reset" => {
            admin.reset(&arg(rest, 0, "USER")?).await?;
            json!(null)
        }
        "admin-unlock" => {
            admin.unlock(&arg(rest, 0, "USER")?).await?;
            json!(null)
        }
        "own-name" => {
            let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
            let name = zbus::names::WellKnownName::try_from(mfa_api::BUS_NAME)
                .map_err(|e| Failure::Fatal(e.to_string()))?;
            let reply = dbus
                .request_name(name, zbus::fdo::RequestNameFlags::DO_NOT_QUEUE)
                .await
                .map_err(|e| Failure::from(zbus::Error::from(e)))?;
            json!(format!("{reply:?}"))
        }
        other => return Err(Failure::Fatal(format!("unknown command {other:?}"))),
    };
    Ok(v)
}

/// A fake mfad that lets everyone in, for the bus policy or the module to
/// refuse.
struct Impostor;

#[zbus::interface(name = "org.mfad.Mfa1.Login")]
impl Impostor {
    async fn begin(
        &self,
        _user: String,
        _service: String,
        _rhost: String,
        _tty: String,
        _auth_info: String,
    ) -> (String, String, String) {
        ("ignore".into(), String::new(), String::new())
    }

    async fn account_check(
        &self,
        _user: String,
        _service: String,
        _attempt: String,
    ) -> (String, String) {
        ("allow".into(), String::new())
    }
}

async fn impostor(bus: &str) -> Result<Value, Failure> {
    let conn = zbus::connection::Builder::address(mfa_api::bus_address(bus))
        .name(mfa_api::BUS_NAME)
        .serve_at(mfa_api::OBJECT_PATH, Impostor)
        .build()
        .await?;
    println!("{}", json!({"ok": "serving"}));
    std::future::pending::<()>().await;
    drop(conn);
    Ok(json!(null))
}

/// An impostor on a login socket path: listens as whoever runs it.
fn socket_listen(path: &str) -> Result<Value, Failure> {
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| Failure::Fatal(format!("cannot listen on {path}: {e}")))?;
    println!("{}", json!({"ok": "listening"}));
    let mut held = Vec::new();
    for stream in listener.incoming().flatten() {
        held.push(stream);
    }
    Ok(json!(null))
}

/// N connections held at once, each starting SASL EXTERNAL: what mfad
/// says to each ("ok", or "closed" when it hung up).
fn socket_probe(path: &str, rest: &[String]) -> Result<Value, Failure> {
    use std::io::{Read, Write};
    let n: usize = arg(rest, 0, "N")?
        .parse()
        .map_err(|_| Failure::Fatal("N must be a whole number".into()))?;
    let uid = nix::unistd::getuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    let mut streams = Vec::new();
    let mut results = Vec::new();
    for _ in 0..n {
        let mut s = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| Failure::Fatal(format!("cannot connect to {path}: {e}")))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        let sent = s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes());
        let mut buf = [0u8; 256];
        let got = match sent.and_then(|()| s.read(&mut buf)) {
            Ok(0) | Err(_) => "closed",
            Ok(k) if buf[..k].starts_with(b"OK ") => "ok",
            Ok(_) => "other",
        };
        results.push(got);
        streams.push(s);
    }
    Ok(json!(results))
}

/// Many connections each calling Account.Status in a loop, from threads of
/// their own (each with its own connection and event loop).
fn flood(bus: &str, rest: &[String]) -> Result<Value, Failure> {
    let user = arg(rest, 0, "USER")?;
    let number = |i: usize, what: &str| -> Result<u64, Failure> {
        arg(rest, i, what)?
            .parse()
            .map_err(|_| Failure::Fatal(format!("{what} must be a whole number")))
    };
    let seconds = number(1, "SECONDS")?;
    let connections = number(2, "CONNECTIONS")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (bus, user) = (bus.to_string(), user.clone());
            std::thread::spawn(move || {
                zbus::block_on(async move {
                    let mut counts = (0u64, 0u64, 0u64, String::new());
                    let conn = match mfa_api::connect(&bus).await {
                        Ok(c) => c,
                        Err(e) => {
                            counts.2 += 1;
                            counts.3 = e.to_string();
                            return counts;
                        }
                    };
                    let Ok(account) = AccountProxy::new(&conn).await else {
                        counts.2 += 1;
                        return counts;
                    };
                    while std::time::Instant::now() < deadline {
                        match account.status(&user).await {
                            Ok(_) => counts.0 += 1,
                            Err(mfa_api::Error::RateLimited(_)) => counts.1 += 1,
                            Err(e) => {
                                counts.2 += 1;
                                if counts.3.is_empty() {
                                    counts.3 = e.to_string();
                                }
                            }
                        }
                    }
                    counts
                })
            })
        })
        .collect();
    let (mut ok, mut limited, mut other, mut first) = (0, 0, 0, String::new());
    for t in threads {
        let (o, l, x, f) = t
            .join()
            .map_err(|_| Failure::Fatal("a flood thread panicked".into()))?;
        ok += o;
        limited += l;
        other += x;
        if first.is_empty() {
            first = f;
        }
    }
    Ok(json!({"ok": ok, "rate_limited": limited, "other": other, "first_other": first}))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match zbus::block_on(run(args)) {
        Ok(v) => {
            println!("{}", json!({ "ok": v }));
            ExitCode::SUCCESS
        }
        Err(Failure::DBus(name, message)) => {
            println!("{}", json!({"error": name, "message": message}));
            ExitCode::from(3)
        }
        Err(Failure::Fatal(message)) => {
            println!("{}", json!({ "fatal": message }));
            ExitCode::from(2)
        }
    }
}
