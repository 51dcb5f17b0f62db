//! mfad alone, over the bus or its login socket: enrollment, and logins (Login.Begin then
//! Login.Answer with a valid code) from one or many clients, each with its
//! own connection, as root (as sshd, su or sudo call it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mfa_api::{AccountProxy, AnswerResult, BeginAction, LoginProxy};

use crate::error::{bus, Error, Result};
use crate::pool::{Ticket, User};
use crate::stats::Tally;
use crate::{mono_ns, totp};

/// The service name mfad logs for the benchmark's logins.
const SERVICE: &str = "mfa-bench";

/// Enrolls every user of `names` on mfad at `address` with a TOTP device
/// (EnrollTotpBegin, then EnrollTotpConfirm with the codes of the previous
/// and the current step, as root for the named user), `clients` at a time.
/// Returns each user with the step its enrollment used.
pub fn enroll(address: &str, names: &[String], clients: usize) -> Result<Vec<(User, u64)>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<(User, u64)>>> = Mutex::new(vec![None; names.len()]);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    thread::scope(|s| {
        for _ in 0..clients.min(names.len()).max(1) {
            s.spawn(|| {
                let r = zbus::block_on(async {
                    let conn = mfa_api::connect(address)
                        .await
                        .map_err(bus("cannot connect to the bus"))?;
                    let account = AccountProxy::new(&conn)
                        .await
                        .map_err(bus("no Account proxy"))?;
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(i) else { break };
                        let enrolled = enroll_one(&account, name).await?;
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(enrolled);
                        }
                    }
                    Ok::<(), Error>(())
                });
                if let Err(e) = r {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock() {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| Error::Protocol("an enrollment thread panicked".into()))?;
    results
        .into_iter()
        .zip(names)
        .map(|(r, name)| r.ok_or_else(|| Error::Protocol(format!("{name} was not enrolled"))))
        .collect()
}

async fn enroll_one(account: &AccountProxy<'_>, name: &str) -> Result<(User, u64)> {
    let (id, _uri, base32) = account
        .enroll_totp_begin(name, "mfa-bench", "")
        .await
        .map_err(bus(&format!("EnrollTotpBegin for {name}")))?;
    let secret = totp::base32_decode(&base32)?;
    let mut last_err = None;
    // A step may end between computing the codes and mfad checking them;
    // then the next try uses the new step's.
    for _ in 0..3 {
        let step = totp::now_step();
        let (c1, c2) = (totp::code(&secret, step - 1), totp::code(&secret, step));
        match account.enroll_totp_confirm(name, &id, &c1, &c2).await {
            Ok(_) => {
                return Ok((
                    User {
                        name: name.to_string(),
                        secret,
                        base32,
                    },
                    step,
                ))
            }
            Err(mfa_api::Error::InvalidCode(m)) => last_err = Some(m),
            Err(e) => return Err(bus(&format!("EnrollTotpConfirm for {name}"))(e)),
        }
    }
    Err(Error::Protocol(format!(
        "mfad refused the enrollment codes of {name}: {}",
        last_err.unwrap_or_default()
    )))
}

/// A connection to mfad: `socket:PATH` is its login socket (peer to
/// peer), anything else a bus address.
async fn connect(address: &str) -> zbus::Result<zbus::Connection> {
    match address.strip_prefix("socket:") {
        Some(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            zbus::connection::Builder::unix_stream(stream)
                .p2p()
                .build()
                .await
        }
        None => mfa_api::connect(address).await,
    }
}

/// One login: Begin must challenge, Answer with the code must succeed.
async fn login(proxy: &LoginProxy<'_>, name: &str, code: &str) -> std::result::Result<(), String> {
    let (action, token, message) = proxy
        .begin(name, SERVICE, "", "", "")
        .await
        .map_err(|e| format!("Begin for {name}: {e}"))?;
    if action != BeginAction::Challenge {
        return Err(format!("Begin for {name}: {action:?} ({message})"));
    }
    let (result, message) = proxy
        .answer(&token, code.as_bytes())
        .await
        .map_err(|e| format!("Answer for {name}: {e}"))?;
    if result != AnswerResult::Success {
        return Err(format!("Answer for {name}: {result:?} ({message})"));
    }
    Ok(())
}

/// Logs `tickets` in one after the other on one connection; times each.
pub fn sequential(address: &str, users: &[User], tickets: &[Ticket]) -> Result<Tally> {
    zbus::block_on(async {
        let conn = connect(address)
            .await
            .map_err(bus("cannot connect to mfad"))?;
        let proxy = LoginProxy::new(&conn)
            .await
            .map_err(bus("no Login proxy"))?;
        let mut tally = Tally::default();
        for t in tickets {
            one(&proxy, users, t, &mut tally).await;
        }
        Ok(tally)
    })
}

async fn one(proxy: &LoginProxy<'_>, users: &[User], t: &Ticket, tally: &mut Tally) {
    let user = &users[t.idx];
    let Some(step) = t.step() else {
        tally.fail(format!("{}: no usable step left", user.name));
        return;
    };
    let code = totp::code(&user.secret, step);
    let start = Instant::now();
    match login(proxy, &user.name, &code).await {
        Ok(()) => {
            tally.samples_ns.push(nanos(start.elapsed()));
            tally.done_at_ns.push(mono_ns());
            tally.ok += 1;
            tally.used.push((t.idx, step));
        }
        Err(e) => tally.fail(e),
    }
}

/// Logs `tickets` in from `clients` concurrent connections (one thread
/// each), every client taking the next ticket when its login is done.
pub fn concurrent(
    address: &str,
    users: &[User],
    tickets: &[Ticket],
    clients: usize,
) -> Result<Tally> {
    let next = AtomicUsize::new(0);
    let total = Arc::new(Mutex::new(Tally::default()));
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    // All clients connect first, then start together.
    let ready = std::sync::Barrier::new(clients);
    thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let r = zbus::block_on(async {
                    let conn = connect(address).await;
                    let proxy = match conn {
                        Ok(conn) => LoginProxy::new(&conn)
                            .await
                            .map(|p| (conn, p))
                            .map_err(bus("no Login proxy")),
                        Err(e) => Err(bus("cannot connect to mfad")(e)),
                    };
                    ready.wait();
                    let (_conn, proxy) = proxy?;
                    let mut tally = Tally::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = tickets.get(i) else { break };
                        one(&proxy, users, t, &mut tally).await;
                    }
                    Ok::<Tally, Error>(tally)
                });
                match r {
                    Ok(t) => {
                        if let Ok(mut total) = total.lock() {
                            total.merge(t);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let total = std::mem::take(
        &mut *total
            .lock()
            .map_err(|_| Error::Protocol("a client thread panicked".into()))?,
    );
    Ok(total)
}

/// `mfa-bench flood ADDRESS SECONDS CONNECTIONS`, run as a user who is
/// not root: Account.Status in a loop on each of CONNECTIONS bus
/// connections for SECONDS; prints "CALLS REFUSED".
pub fn flood(args: &[String]) -> Result<String> {
    let bad = || Error::Setup("usage: mfa-bench flood ADDRESS SECONDS CONNECTIONS".into());
    let address = args.first().ok_or_else(bad)?;
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let calls = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..connections {
            s.spawn(|| {
                zbus::block_on(async {
                    let Ok(conn) = mfa_api::connect(address).await else {
                        return;
                    };
                    let Ok(account) = AccountProxy::new(&conn).await else {
                        return;
                    };
                    while Instant::now() < deadline {
                        calls.fetch_add(1, Ordering::Relaxed);
                        if account.status("").await.is_err() {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            });
        }
    });
    Ok(format!(
        "{} {}",
        calls.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    ))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
