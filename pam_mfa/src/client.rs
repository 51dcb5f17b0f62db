//! The daemon side of an authentication (`Login.Begin`, `Login.Answer`,
//! the `Enroll*` calls), of an account check (`Login.AccountCheck`) and of
//! a session (`Login.OpenSession`, `CloseSession`) on org.mfad.Mfa1.
//! [`Daemon`] is the trait the state machine uses; [`LeanDaemon`] is the
//! client the module uses: the wire protocol of [`crate::wire`] on a
//! blocking socket, mfad's login socket first, else the bus.
//!
//! One connection per authentication, account check or session call:
//! connect + Begin (or AccountCheck, OpenSession, CloseSession) run under
//! one deadline, each later call under its own; the conversation happens
//! in between, outside any deadline. No runtime and no thread;
//! [`LeanDaemon::close`] (or dropping it) closes the socket.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mfa_api::{AccountAction, AnswerResult, BeginAction};

use crate::error::Error;

/// What `Login.Begin` is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeginRequest {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// sshd's `SSH_AUTH_INFO_0`, or empty.
    pub auth_info: String,
}

/// `Login.Begin`'s answer: action, attempt token, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginReply {
    pub action: BeginAction,
    /// For `Answer` and `AccountCheck`; a bearer token, never logged.
    pub attempt: String,
    pub message: String,
}

/// `Login.Answer`'s answer: result, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerReply {
    pub result: AnswerResult,
    pub message: String,
}

/// `Login.AccountCheck`'s answer: `allow`, `ignore` or `deny`, and a
/// message (why denied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountReply {
    pub action: AccountAction,
    pub message: String,
}

/// `Login.EnrollBegin`'s answer: for an app the otpauth URI and the secret
/// (base32), for a phone both empty; a message for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollStart {
    pub uri: String,
    pub secret: String,
    pub message: String,
}

/// `Login.EnrollConfirm`'s answer: success (with the backup codes, shown
/// this once), retry or deny, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollReply {
    pub result: AnswerResult,
    pub message: String,
    pub backup_codes: Vec<String>,
}

/// `Login.OpenSession`'s answer: the session id (empty: not limited), its
/// Unix end time and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReply {
    pub id: String,
    pub ends: i64,
    pub message: String,
}

/// mfad as the state machine sees it.
pub trait Daemon {
    fn begin(&mut self, request: &BeginRequest) -> Result<BeginReply, Error>;
    fn answer(&mut self, attempt: &str, code: &[u8]) -> Result<AnswerReply, Error>;
    /// `attempt` is the token Begin returned in the auth phase, or empty.
    fn account_check(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<AccountReply, Error>;
    /// After Begin answered `enroll`, on its attempt: the kinds of device
    /// offered ("totp", and "sms" when the host sends text messages).
    fn enroll_kinds(&mut self, attempt: &str) -> Result<Vec<String>, Error>;
    /// Starts enrolling a device of `kind`; `phone` for "sms", else empty.
    fn enroll_begin(
        &mut self,
        attempt: &str,
        kind: &str,
        phone: &str,
    ) -> Result<EnrollStart, Error>;
    /// Sends a new code for a phone enrollment; returns a message.
    fn enroll_resend(&mut self, attempt: &str) -> Result<String, Error>;
    /// Confirms with two codes (app) or one (phone).
    fn enroll_confirm(&mut self, attempt: &str, codes: &[&str]) -> Result<EnrollReply, Error>;

    /// Registers this process's login session of `user` through `service`
    /// for the login that passed (with `attempt`, or empty when this
    /// process does not have it): `Login.OpenSession`, with a pidfd of this
    /// process.
    fn open_session(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
        tty: &str,
        xdg_session_id: &str,
    ) -> Result<SessionReply, Error>;
    /// `Login.CloseSession`.
    fn close_session(&mut self, id: &str) -> Result<(), Error>;
}

/// Where a [`LeanDaemon`] reaches mfad.
#[derive(Debug, Clone)]
enum Route {
    /// org.mfad.Mfa1 on this bus, its owner checked with the bus.
    Bus(String),
    /// mfad's login socket, its peer checked with SO_PEERCRED; when the
    /// socket is missing, `then_bus` if any.
    Socket {
        path: PathBuf,
        then_bus: Option<String>,
    },
}

/// The UID mfad runs as.
pub const MFAD_UID: u32 = 0;

/// A pidfd of this process (pidfd_open(2) of getpid()).
fn own_pidfd() -> Result<std::os::fd::OwnedFd, Error> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let fd = std::os::fd::RawFd::try_from(fd).unwrap_or(-1);
    if fd < 0 {
        return Err(Error::Unavailable(format!(
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// The lean client: the D-Bus wire protocol spoken by [`crate::wire`] on
/// a blocking unix socket, with poll() deadlines. No runtime, no thread:
/// one socket per authentication or account check, closed by
/// [`LeanDaemon::close`] or on drop.
pub struct LeanDaemon {
    conn: Option<crate::wire::Conn>,
    /// Where calls go: the checked owner's unique name on a bus, None on
    /// the login socket (peer to peer).
    destination: Option<String>,
    route: Route,
    timeout: Duration,
    owner_uid: u32,
}

impl LeanDaemon {
    /// On the bus at `address` ("system" or one `unix:path=`), connecting
    /// on the first `begin` or `account_check`.
    pub fn new(address: &str, timeout: Duration) -> LeanDaemon {
        LeanDaemon {
            conn: None,
            destination: None,
            route: Route::Bus(address.to_string()),
            timeout,
            owner_uid: MFAD_UID,
        }
    }

    /// On mfad's login socket at `path`; when there is no socket there (no
    /// file, or nobody listening), on `then_bus` if given.
    pub fn socket(path: &Path, then_bus: Option<&str>, timeout: Duration) -> LeanDaemon {
        LeanDaemon {
            route: Route::Socket {
                path: path.to_path_buf(),
                then_bus: then_bus.map(str::to_string),
            },
            ..LeanDaemon::new("", timeout)
        }
    }

    /// Expects mfad to run as `uid` instead of root (tests only).
    pub fn with_owner_uid(mut self, uid: u32) -> LeanDaemon {
        self.owner_uid = uid;
        self
    }

    /// Closes the connection.
    pub fn close(mut self) {
        self.conn = None;
    }

    /// A new connection to mfad, checked, by `deadline`.
    fn connect(&mut self, deadline: Instant) -> Result<(), Error> {
        self.conn = None;
        self.destination = None;
        let bus = match &self.route {
            Route::Bus(bus) => bus.clone(),
            Route::Socket { path, then_bus } => match connect_login_socket(path, self.owner_uid) {
                Ok(stream) => {
                    // Authenticates with the first call, in the same write.
                    self.conn = Some(crate::wire::Conn::new(stream));
                    return Ok(());
                }
                Err(SocketError::Missing(_)) if then_bus.is_some() => {
                    then_bus.clone().unwrap_or_default()
                }
                Err(SocketError::Missing(e)) => {
                    return Err(Error::Unavailable(format!(
                        "cannot connect to {}: {e}",
                        path.display()
                    )))
                }
                Err(SocketError::Refused(e)) => return Err(e),
            },
        };
        let address = bus_address(&bus)?;
        let path = unix_path(&address)?;
        let stream = UnixStream::connect(&path)
            .map_err(|e| Error::Unavailable(format!("cannot connect to {address}: {e}")))?;
        let mut conn = crate::wire::Conn::new(stream);
        let owner = lean_verified_owner(&mut conn, self.owner_uid, deadline, self.timeout)?;
        self.conn = Some(conn);
        self.destination = Some(owner);
        Ok(())
    }

    /// Calls `member` of org.mfad.Mfa1.Login with `args` by `deadline`:
    /// the reply's values.
    pub fn call(
        &mut self,
        member: &str,
        args: &[crate::wire::Value],
        deadline: Instant,
    ) -> Result<Vec<crate::wire::Value>, Error> {
        let timeout = self.timeout;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::Unavailable("not connected to mfad".into()))?;
        let call = crate::wire::Call {
            destination: self.destination.as_deref(),
            path: mfa_api::OBJECT_PATH,
            interface: mfa_api::LOGIN_INTERFACE,
            member,
            args,
        };
        conn.call(&call, deadline).map_err(|e| {
            // A broken connection is not reused.
            if !matches!(e, crate::wire::WireError::Remote { .. }) {
                self.conn = None;
            }
            wire_error(e, &format!("Login.{member}"), timeout)
        })
    }

    /// Connects and makes the first call under one deadline.
    fn start(
        &mut self,
        member: &str,
        args: &[crate::wire::Value],
    ) -> Result<Vec<crate::wire::Value>, Error> {
        let deadline = deadline_after(self.timeout);
        self.connect(deadline)?;
        self.call(member, args, deadline)
    }
}

impl Daemon for LeanDaemon {
    fn begin(&mut self, req: &BeginRequest) -> Result<BeginReply, Error> {
        use crate::wire::Value::Str;
        let reply = self.start(
            "Begin",
            &[
                Str(req.user.clone()),
                Str(req.service.clone()),
                Str(req.rhost.clone()),
                Str(req.tty.clone()),
                Str(req.auth_info.clone()),
            ],
        )?;
        let [action, attempt, message] = strings::<3>(&reply, "Begin")?;
        Ok(BeginReply {
            action: from_wire(&action),
            attempt,
            message,
        })
    }

    fn answer(&mut self, attempt: &str, code: &[u8]) -> Result<AnswerReply, Error> {
        use crate::wire::Value::{Bytes, Str};
        let deadline = deadline_after(self.timeout);
        let mut args = [Str(attempt.to_string()), Bytes(code.to_vec())];
        let reply = self.call("Answer", &args, deadline);
        if let Bytes(code) = &mut args[1] {
            crate::handle::wipe(code);
        }
        let reply = reply?;
        let [result, message] = strings::<2>(&reply, "Answer")?;
        Ok(AnswerReply {
            result: from_wire(&result),
            message,
        })
    }

    fn account_check(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<AccountReply, Error> {
        use crate::wire::Value::Str;
        let reply = self.start(
            "AccountCheck",
            &[
                Str(user.to_string()),
                Str(service.to_string()),
                Str(attempt.to_string()),
            ],
        )?;
        let [action, message] = strings::<2>(&reply, "AccountCheck")?;
        Ok(AccountReply {
            action: from_wire(&action),
            message,
        })
    }

    fn enroll_kinds(&mut self, attempt: &str) -> Result<Vec<String>, Error> {
        use crate::wire::Value::Str;
        let deadline = deadline_after(self.timeout);
        let reply = self.call("EnrollKinds", &[Str(attempt.to_string())], deadline)?;
        match reply.as_slice() {
            [kinds] => kinds.strs().ok_or_else(|| bad_reply("EnrollKinds")),
            _ => Err(bad_reply("EnrollKinds")),
        }
    }

    fn enroll_begin(
        &mut self,
        attempt: &str,
        kind: &str,
        phone: &str,
    ) -> Result<EnrollStart, Error> {
        use crate::wire::Value::Str;
        let deadline = deadline_after(self.timeout);
        let reply = self.call(
            "EnrollBegin",
            &[
                Str(attempt.to_string()),
                Str(kind.to_string()),
                Str(phone.to_string()),
            ],
            deadline,
        )?;
        let [uri, secret, message] = strings::<3>(&reply, "EnrollBegin")?;
        Ok(EnrollStart {
            uri,
            secret,
            message,
        })
    }

    fn enroll_resend(&mut self, attempt: &str) -> Result<String, Error> {
        use crate::wire::Value::Str;
        let deadline = deadline_after(self.timeout);
        let reply = self.call("EnrollResend", &[Str(attempt.to_string())], deadline)?;
        let [message] = strings::<1>(&reply, "EnrollResend")?;
        Ok(message)
    }

    fn enroll_confirm(&mut self, attempt: &str, codes: &[&str]) -> Result<EnrollReply, Error> {
        use crate::wire::Value::{Array, Str};
        let deadline = deadline_after(self.timeout);
        let codes = codes.iter().map(|c| Str(c.to_string())).collect();
        let reply = self.call(
            "EnrollConfirm",
            &[Str(attempt.to_string()), Array("s".into(), codes)],
            deadline,
        )?;
        match reply.as_slice() {
            [result, message, backup] => Ok(EnrollReply {
                result: from_wire(result.str().ok_or_else(|| bad_reply("EnrollConfirm"))?),
                message: message
                    .str()
                    .ok_or_else(|| bad_reply("EnrollConfirm"))?
                    .to_string(),
                backup_codes: backup.strs().ok_or_else(|| bad_reply("EnrollConfirm"))?,
            }),
            _ => Err(bad_reply("EnrollConfirm")),
        }
    }

    fn open_session(
        &mut self,
        user: &str,
        service: &str,
        attempt: &str,
        tty: &str,
        xdg_session_id: &str,
    ) -> Result<SessionReply, Error> {
        use crate::wire::Value::{Fd, Str};
        // mfad ends the session by this pidfd, so a recycled PID is never
        // hit; it goes to mfad by unix fd passing.
        let pidfd = std::sync::Arc::new(own_pidfd()?);
        let reply = self.start(
            "OpenSession",
            &[
                Str(user.to_string()),
                Str(service.to_string()),
                Str(attempt.to_string()),
                Str(tty.to_string()),
                Str(xdg_session_id.to_string()),
                Fd(pidfd),
            ],
        )?;
        match reply.as_slice() {
            [id, ends, message] => Ok(SessionReply {
                id: id
                    .str()
                    .ok_or_else(|| bad_reply("OpenSession"))?
                    .to_string(),
                ends: ends.i64().ok_or_else(|| bad_reply("OpenSession"))?,
                message: message
                    .str()
                    .ok_or_else(|| bad_reply("OpenSession"))?
                    .to_string(),
            }),
            _ => Err(bad_reply("OpenSession")),
        }
    }

    fn close_session(&mut self, id: &str) -> Result<(), Error> {
        use crate::wire::Value::Str;
        let reply = self.start("CloseSession", &[Str(id.to_string())])?;
        if reply.is_empty() {
            Ok(())
        } else {
            Err(bad_reply("CloseSession"))
        }
    }
}

/// mfad answered `what` with values of the wrong number or type.
fn bad_reply(what: &str) -> Error {
    Error::Unavailable(format!("mfad's reply to {what} has the wrong type"))
}

/// A reply of exactly N strings.
fn strings<const N: usize>(reply: &[crate::wire::Value], what: &str) -> Result<[String; N], Error> {
    let bad = || bad_reply(what);
    if reply.len() != N {
        return Err(bad());
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, v) in out.iter_mut().zip(reply) {
        *slot = v.str().ok_or_else(bad)?.to_string();
    }
    Ok(out)
}

/// An action or result string as mfa_api reads it (an unknown value is
/// its `Unknown`, a refusal).
fn from_wire<T: std::str::FromStr<Err = std::convert::Infallible>>(s: &str) -> T {
    let Ok(t) = s.parse();
    t
}

/// A wire error as the state machine sorts it: mfad's own errors are
/// refusals, anything else means mfad could not be asked.
fn wire_error(e: crate::wire::WireError, what: &str, timeout: Duration) -> Error {
    use crate::wire::WireError;
    match e {
        WireError::Timeout => timed_out(what, timeout),
        WireError::Remote { name, message } => Error::from_reply(what, &name, &message),
        other => Error::Unavailable(format!("{what}: {other}")),
    }
}

/// The socket path of a checked `unix:path=` address, %-escapes decoded.
fn unix_path(address: &str) -> Result<PathBuf, Error> {
    let raw = address
        .strip_prefix("unix:path=")
        .map(|r| r.split(',').next().unwrap_or_default())
        .ok_or_else(|| Error::Config(format!("{address} is not a unix:path= address")))?;
    let mut out = Vec::new();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Exactly two hex digits (from_str_radix alone takes a sign).
            let byte = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Config(format!("bad escape in {address}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// On a bus: Hello, then whether org.mfad.Mfa1's owner runs as `uid`
/// (GetNameOwner, GetConnectionUnixUser); its unique name, where the calls
/// then go.
fn lean_verified_owner(
    conn: &mut crate::wire::Conn,
    uid: u32,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, Error> {
    use crate::wire::{Call, Value};
    let bus = |member: &'static str, args: &'static [Value]| Call {
        destination: Some("org.freedesktop.DBus"),
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member,
        args,
    };
    conn.call(&bus("Hello", &[]), deadline)
        .map_err(|e| wire_error(e, "connecting to the bus", timeout))?;
    let name = [Value::Str(mfa_api::BUS_NAME.into())];
    let owner = conn
        .call(
            &Call {
                args: &name,
                ..bus("GetNameOwner", &[])
            },
            deadline,
        )
        .map_err(|e| match e {
            crate::wire::WireError::Remote { message, .. } => {
                Error::Unavailable(format!("no owner for {}: {message}", mfa_api::BUS_NAME))
            }
            e => wire_error(e, "checking who owns org.mfad.Mfa1", timeout),
        })?;
    let owner = owner
        .first()
        .and_then(|v| v.str())
        .ok_or_else(|| {
            Error::Unavailable("the bus's GetNameOwner reply has the wrong type".into())
        })?
        .to_string();
    let arg = [Value::Str(owner.clone())];
    let owner_uid = conn
        .call(
            &Call {
                args: &arg,
                ..bus("GetConnectionUnixUser", &[])
            },
            deadline,
        )
        .map_err(|e| wire_error(e, "checking who owns org.mfad.Mfa1", timeout))?
        .first()
        .and_then(|v| v.u32())
        .ok_or_else(|| {
            Error::Unavailable("the bus's GetConnectionUnixUser reply has the wrong type".into())
        })?;
    if owner_uid != uid {
        return Err(Error::Impostor(format!(
            "{} is owned by {owner}, running as UID {owner_uid}, not {uid}",
            mfa_api::BUS_NAME
        )));
    }
    Ok(owner)
}

/// The D-Bus address to connect to: "system" is the system bus socket;
/// anything else must be one `unix:path=` address. An abstract socket
/// (`unix:abstract=`) is a name any local user can bind first; other
/// transports carry no Unix uid for mfad to authorize by. Either is a
/// configuration error.
pub fn bus_address(bus: &str) -> Result<String, Error> {
    let address = mfa_api::bus_address(bus);
    let bad = || {
        Error::Config(format!(
            "bus={} is not a single unix:path= D-Bus address",
            crate::log::field(address)
        ))
    };
    // One `unix:path=` address: a non-empty path, and no key but guid
    // (abstract=, tmpdir= and the like name other kinds of socket).
    let rest = address.strip_prefix("unix:path=").ok_or_else(bad)?;
    if address.contains(';') {
        return Err(bad());
    }
    let mut parts = rest.split(',');
    if parts.next().is_none_or(str::is_empty) {
        return Err(bad());
    }
    if !parts.all(|kv| kv.split_once('=').is_some_and(|(k, _)| k == "guid")) {
        return Err(bad());
    }
    unix_path(address)?;
    Ok(address.to_string())
}

/// Why the login socket could not be used.
#[derive(Debug)]
pub enum SocketError {
    /// No socket file, or nobody listening on it: mfad is not running
    /// there (the system bus may be tried next).
    Missing(std::io::Error),
    /// Anything else, among them an impostor on the socket.
    Refused(Error),
}

/// Connects to mfad's login socket and checks that the process on the
/// other end runs as `uid` (SO_PEERCRED, as the kernel saw it when it
/// listened): anyone else is an impostor, in either failmode.
pub fn connect_login_socket(path: &Path, uid: u32) -> Result<UnixStream, SocketError> {
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            SocketError::Missing(e)
        }
        _ => SocketError::Refused(Error::Unavailable(format!(
            "cannot connect to {}: {e}",
            path.display()
        ))),
    })?;
    let peer = peer_uid(&stream).map_err(|e| {
        SocketError::Refused(Error::Unavailable(format!(
            "cannot tell who serves {}: {e}",
            path.display()
        )))
    })?;
    if peer != uid {
        return Err(SocketError::Refused(Error::Impostor(format!(
            "{} is served by UID {peer}, not {uid}",
            path.display()
        ))));
    }
    Ok(stream)
}

/// The UID of the process at the other end of `stream` (SO_PEERCRED).
pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| std::io::Error::other("ucred size"))?;
    // SAFETY: `cred` and `len` are live, writable and sized for
    // SO_PEERCRED's ucred; the descriptor is open for the call's duration.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::Unavailable(format!(
        "no answer from mfad within {}s ({what})",
        timeout.as_secs()
    ))
}

/// `timeout` from now; a timeout too long for the clock never fires.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_path_addresses_are_accepted() {
        assert_eq!(
            bus_address("system").unwrap(),
            "unix:path=/run/dbus/system_bus_socket"
        );
        assert_eq!(
            bus_address("unix:path=/tmp/x/bus").unwrap(),
            "unix:path=/tmp/x/bus"
        );
        assert_eq!(
            bus_address("unix:path=/tmp/x/bus,guid=0123456789abcdef0123456789abcdef").unwrap(),
            "unix:path=/tmp/x/bus,guid=0123456789abcdef0123456789abcdef"
        );
        for bad in [
            "unix:abstract=mfa",
            "unix:abstract=/tmp/dbus-x",
            "unix:path=/tmp/x,abstract=mfa",
            "unix:tmpdir=/tmp",
            "unix:dir=/tmp",
            "unix:runtime=yes",
            "unix:path=",
            "unixexec:path=/bin/true",
            "tcp:host=127.0.0.1,port=4000",
            "session",
            "",
            "unix:path=/a;unix:path=/b",
            "unix:path=/tmp/x,foo=bar",
            "unix:path=/tmp/x,guid",
            "unix:path=/tmp/%zz/bus",
            "unix:path=/tmp/x%4",
            "unix:path=/tmp/x%",
            "unix:path=/tmp/%+f/bus",
            "/run/dbus/system_bus_socket",
        ] {
            assert!(matches!(bus_address(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn answer_before_begin_is_unavailable() {
        let mut d = LeanDaemon::new("unix:path=/nonexistent", Duration::from_secs(1));
        assert!(matches!(d.answer("x", b"1"), Err(Error::Unavailable(_))));
        d.close();
    }

    #[test]
    fn a_missing_socket_is_unavailable_at_once() {
        let mut d = LeanDaemon::new("unix:path=/nonexistent/bus", Duration::from_secs(5));
        let t = Instant::now();
        let r = d.begin(&BeginRequest::default());
        assert!(
            matches!(r, Err(Error::Unavailable(ref m)) if m.contains("cannot connect")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        d.close();
    }

    #[test]
    fn account_check_without_a_bus_is_unavailable_at_once() {
        let mut d = LeanDaemon::new("unix:path=/nonexistent/bus", Duration::from_secs(5));
        let t = Instant::now();
        let r = d.account_check("alice", "sshd", "");
        assert!(
            matches!(r, Err(Error::Unavailable(ref m)) if m.contains("cannot connect")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        d.close();
    }

    #[test]
    fn deadlines_never_overflow() {
        let _ = deadline_after(Duration::MAX);
        let d = deadline_after(Duration::from_secs(2));
        assert!(d > Instant::now());
    }
}
