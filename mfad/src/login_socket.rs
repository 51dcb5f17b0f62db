//! The private login socket (`[daemon] login_socket`): the
//! org.mfad.Mfa1.Login interface peer to peer, as systemd serves
//! /run/systemd/private, so that a login costs no trip through
//! dbus-daemon. The caller's UID is the kernel's (SO_PEERCRED), never a
//! claim in a message, and each call is authorized as on the bus.
//!
//! mfad speaks the protocol itself here, with [`mfa_api::wire`]'s codec:
//! SASL EXTERNAL checked against SO_PEERCRED, NEGOTIATE_UNIX_FD, BEGIN,
//! then method calls on one connection in turn. A zbus connection and
//! object server per login cost more CPU and memory than the login's own
//! work; the bus keeps zbus.
//!
//! What dbus-daemon enforces on the bus, mfad enforces here: a limit of
//! connections per UID, a deadline for the authentication and a cap on the
//! size of a message (checked from its header, before its body is read).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mfa_api::wire::{
    decode, encode_error, encode_return, message_length, Incoming, Value, METHOD_CALL,
    NO_REPLY_EXPECTED,
};
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;

use crate::audit::Audit;
use crate::dbus::{Context, Run};
use crate::error::{Error, Result};

/// Connections a non-root UID may hold at once: a screen locker or two,
/// far from what it takes to tie mfad up.
pub const MAX_CONNECTIONS_PER_UID: usize = 16;
/// Root's connections: every login in flight on the host holds one.
pub const MAX_ROOT_CONNECTIONS: usize = 1024;
/// A connection that has not authenticated by then is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest message mfad reads on the socket; Login's calls are a few
/// strings, far below it. dbus-daemon's own limit is 128 MiB.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The longest SASL line before BEGIN.
const MAX_SASL_LINE: usize = 4096;
/// Descriptors accepted with one read; more are a protocol error.
const MAX_FDS_PER_READ: usize = 16;

/// A listening socket and where it came from.
pub struct Listener {
    pub listener: std::os::unix::net::UnixListener,
    /// The path mfad bound and removes when it stops; None when systemd
    /// passed the socket (systemd owns the file).
    pub bound: Option<PathBuf>,
}

impl Listener {
    /// The socket systemd passed (LISTEN_FDS, `mfad.socket`), else a new
    /// one bound at `path`; None when there is neither (`login_socket =
    /// ""` and no socket from systemd).
    pub fn open(path: &Path) -> Result<Option<Listener>> {
        if let Some(listener) = from_systemd()? {
            return Ok(Some(Listener {
                listener,
                bound: None,
            }));
        }
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        bind(path).map(|listener| {
            Some(Listener {
                listener,
                bound: Some(path.to_path_buf()),
            })
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.bound {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The first socket passed by systemd's socket activation, when the
/// variables name this process; it must be a listening unix stream socket.
#[allow(unsafe_code)]
fn from_systemd() -> Result<Option<std::os::unix::net::UnixListener>> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if !ours || count == 0 || TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    const SD_LISTEN_FDS_START: RawFd = 3;
    // SAFETY: LISTEN_PID names this process, so systemd passed descriptor 3
    // open to it; nothing else in mfad opens or owns it, and TAKEN makes
    // sure it is taken once.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    let bad = |what: &str| {
        Error::Io(format!(
            "the socket passed by systemd (LISTEN_FDS) is not {what}"
        ))
    };
    if !socket::getsockopt(&fd, socket::sockopt::AcceptConn).map_err(|_| bad("a socket"))? {
        return Err(bad("listening"));
    }
    if socket::getsockopt(&fd, socket::sockopt::SockType).map_err(|_| bad("a socket"))?
        != socket::SockType::Stream
    {
        return Err(bad("a stream socket"));
    }
    let listener = std::os::unix::net::UnixListener::from(fd);
    if listener
        .local_addr()
        .map_err(|_| bad("a unix socket"))?
        .is_unnamed()
    {
        return Err(bad("a unix socket with a path"));
    }
    Ok(Some(listener))
}

/// Binds `path`, mode 0666 (the Login interface authorizes each call), in
/// a directory only root may write to, made 0755 if missing. A socket left
/// by an mfad that is gone is replaced; one that answers is not.
fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    let io = |what: &str, e: io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| Error::Io(format!("{} has no directory", path.display())))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
        // The umask (077) applies to create_dir_all: set the mode itself.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("cannot set the mode of the directory of", e))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| io("cannot read the directory of", e))?;
    // Anyone else who could write there could put their own socket in
    // mfad's place.
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(Error::Io(format!(
            "refusing the login socket {}: its directory must belong to mfad's user and be \
             writable by no one else",
            path.display()
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::Io(format!(
                    "the login socket {} is served by another process; is another mfad running?",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(|e| io("cannot remove the old socket", e))?;
        }
        Ok(_) => {
            return Err(Error::Io(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot read", e)),
    }
    let listener =
        std::os::unix::net::UnixListener::bind(path).map_err(|e| io("cannot listen on", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| io("cannot set the mode of", e))?;
    Ok(listener)
}

/// Threads that serve the login socket. Each call's work runs on the
/// thread that reads it, and a call that writes waits there for its
/// commit (an fsync, with SQLite's synchronous = FULL): four keep two
/// cores busy meanwhile, and let a commit cover up to four calls.
pub const THREADS: usize = 4;

/// The threads serving the login socket; they stop accepting once
/// [`Pool::stop`] is called (or the pool dropped).
pub struct Pool {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Pool {
    pub fn stop(self) {
        let _ = self.stop.send(true);
    }
}

/// An accepted connection on its way to the thread that serves it.
type Accepted = (std::os::unix::net::UnixStream, u32, Slot);

/// Serves `listener` on [`THREADS`] threads of its own, each a tokio
/// runtime on one thread. The first accepts and deals the connections out
/// in turn (one thread only waits on the listener: each wakes for the
/// connections it serves, not for every one); a connection's I/O and its
/// calls' work (`how`, see [`Run`]) then stay on its thread, with no hop
/// to another and back. A client that stops halfway through a message
/// holds only its own task.
pub fn start(
    listener: std::os::unix::net::UnixListener,
    ctx: Arc<Context>,
    audit: Arc<Audit>,
    how: Run,
) -> Result<Pool> {
    let unusable = |e: io::Error| Error::Io(format!("cannot use the login socket: {e}"));
    listener.set_nonblocking(true).map_err(unusable)?;
    let server = Arc::new(Server::new(&ctx, how));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut dealt = Vec::new();
    let mut taken = Vec::new();
    for _ in 1..THREADS {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        dealt.push(tx);
        taken.push(rx);
    }
    let mut listener = Some(listener);
    let mut taken = taken.into_iter();
    for n in 0..THREADS {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("cannot start the login socket's runtime: {e}")))?;
        let (ctx, server) = (ctx.clone(), server.clone());
        let work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            match listener.take() {
                Some(listener) => Box::pin(accept(
                    listener,
                    std::mem::take(&mut dealt),
                    ctx,
                    audit.clone(),
                    server,
                    stopped.clone(),
                )),
                None => match taken.next() {
                    Some(rx) => Box::pin(take(rx, ctx, server)),
                    None => break,
                },
            };
        let audit = audit.clone();
        std::thread::Builder::new()
            .name(format!("mfad-login-{n}"))
            .spawn(move || {
                shed_capabilities(&audit);
                runtime.block_on(work)
            })
            .map_err(|e| Error::Io(format!("cannot start the login socket's threads: {e}")))?;
    }
    Ok(Pool { stop })
}

/// Accepts connections until `stopped`, and serves every [`THREADS`]th
/// on this thread, the others on the threads `dealt` sends them to.
async fn accept(
    listener: std::os::unix::net::UnixListener,
    dealt: Vec<tokio::sync::mpsc::UnboundedSender<Accepted>>,
    ctx: Arc<Context>,
    audit: Arc<Audit>,
    server: Arc<Server>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            audit.warn("login socket unusable", &[("error", &e.to_string())]);
            return;
        }
    };
    let counts: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    let (mut turn, mut last_warned) = (0usize, None);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Stopped, or the pool dropped: either way, no more.
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: let some close.
                audit.warn("login socket accept failed", &[("error", &e.to_string())]);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(cred) = stream.peer_cred() else {
            continue;
        };
        let uid = cred.uid();
        let Some(slot) = Slot::take(&counts, uid) else {
            // Logged at most once a second: the refusals themselves must
            // not flood the log.
            let now = std::time::Instant::now();
            if last_warned.is_none_or(|t: std::time::Instant| now.duration_since(t).as_secs() >= 1)
            {
                last_warned = Some(now);
                audit.warn(
                    "login socket: too many connections, refusing",
                    &[("uid", &uid.to_string())],
                );
            }
            continue;
        };
        turn = (turn + 1) % THREADS;
        let Some(thread) = turn.checked_sub(1).and_then(|t| dealt.get(t)) else {
            serve(stream, uid, slot, &ctx, &server);
            continue;
        };
        // Off this thread's reactor, onto the other's.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if let Err(back) = thread.send((stream, uid, slot)) {
            // That thread is gone (it cannot be, but if it were, its
            // connections are served here).
            let (stream, uid, slot) = back.0;
            if let Ok(stream) = UnixStream::from_std(stream) {
                serve(stream, uid, slot, &ctx, &server);
            }
        }
    }
}

/// Clears the capabilities this thread kept (with `[session] max_duration`
/// on, CAP_KILL and CAP_DAC_OVERRIDE, to end sessions and warn on their
/// terminals; capabilities are per thread): these threads read what any
/// local user sends, and need none. Work that may need them runs elsewhere.
fn shed_capabilities(audit: &Audit) {
    use caps::CapSet;
    let failed: Vec<&str> = [
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ]
    .into_iter()
    .filter(|(set, _)| caps::clear(None, *set).is_err())
    .map(|(_, name)| name)
    .collect();
    if !failed.is_empty() {
        audit.warn(
            "capabilities not dropped",
            &[("sets", &failed.join(",")), ("threads", "login socket")],
        );
    }
}

/// Serves the connections the accepting thread deals to this one, until
/// it stops.
async fn take(
    mut taken: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    ctx: Arc<Context>,
    server: Arc<Server>,
) {
    while let Some((stream, uid, slot)) = taken.recv().await {
        if let Ok(stream) = UnixStream::from_std(stream) {
            serve(stream, uid, slot, &ctx, &server);
        }
    }
}

/// Serves one connection on its own task on this thread's runtime.
fn serve(stream: UnixStream, uid: u32, slot: Slot, ctx: &Arc<Context>, server: &Arc<Server>) {
    let (ctx, server) = (ctx.clone(), server.clone());
    tokio::spawn(async move {
        let _slot = slot;
        // Any error ends the connection: the peer broke the protocol or
        // went away.
        let _ = server.connection(&ctx, stream, uid).await;
    });
}

/// What every connection shares: the GUID the server names in its OK and
/// the introspection data of the Login interface, made once.
pub struct Server {
    guid: String,
    introspection: String,
    /// Where the calls' work runs.
    how: Run,
}

const PEER: &str = "org.freedesktop.DBus.Peer";
const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
const UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
const DOCTYPE: &str =
    "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
                       \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n";

impl Server {
    /// The introspection data is zbus's for the bus's Login handlers, so
    /// the two cannot drift apart.
    pub fn new(ctx: &Arc<Context>, how: Run) -> Server {
        use zbus::object_server::Interface;
        let mut login = String::new();
        crate::dbus::Login(ctx.clone()).introspect_to_writer(&mut login, 2);
        let introspection = format!(
            "{DOCTYPE}<node>\n{login}  <interface name=\"{PEER}\">\n    \
             <method name=\"Ping\">\n    </method>\n  </interface>\n  \
             <interface name=\"{INTROSPECTABLE}\">\n    <method name=\"Introspect\">\n      \
             <arg type=\"s\" direction=\"out\"/>\n    </method>\n  </interface>\n</node>\n"
        );
        Server {
            guid: zbus::Guid::generate().to_string(),
            introspection,
            how,
        }
    }

    /// Serves one accepted connection from `uid` (SO_PEERCRED): the
    /// authentication by [`AUTH_TIMEOUT`], then its calls until it closes.
    pub async fn connection(&self, ctx: &Context, stream: UnixStream, uid: u32) -> io::Result<()> {
        let mut conn = Conn {
            stream,
            uid,
            input: Vec::new(),
            fds: Vec::new(),
            serial: 0,
            out: Vec::new(),
        };
        tokio::time::timeout(AUTH_TIMEOUT, conn.authenticate(&self.guid))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "authentication timed out"))??;
        loop {
            let (bytes, fds) = conn.message().await?;
            // A message that does not decode ends the connection, as on
            // dbus-daemon: what follows it cannot be trusted to be framed.
            let msg = decode(&bytes, &fds).map_err(|e| protocol(&e.to_string()))?;
            if msg.kind != METHOD_CALL {
                continue;
            }
            let (serial, wants_reply) = (msg.serial, msg.flags & NO_REPLY_EXPECTED == 0);
            // Descriptors the message does not declare are closed (dropped
            // with `fds`) and the call refused. Dropped first, so that the
            // call's own descriptor (OpenSession's) is its value's alone.
            let undeclared = fds.len() != usize::try_from(msg.unix_fds).unwrap_or(usize::MAX);
            drop(fds);
            let reply = if undeclared {
                Err(Refusal(
                    INVALID_ARGS.into(),
                    "Invalid arguments: descriptors the call does not declare".into(),
                ))
            } else {
                self.call(ctx, uid, msg).await
            };
            if !wants_reply {
                continue;
            }
            conn.serial = conn.serial.wrapping_add(1).max(1);
            let (bytes, fds) = match reply {
                Ok(values) => encode_return(conn.serial, serial, &values),
                Err(Refusal(name, message)) => {
                    encode_error(conn.serial, serial, &name, &message).map(|b| (b, Vec::new()))
                }
            }
            .map_err(|e| protocol(&e.to_string()))?;
            let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
            conn.send(&bytes, &raw).await?;
        }
    }

    /// One method call: Login's methods, Peer.Ping and Introspect.
    async fn call(
        &self,
        ctx: &Context,
        caller: u32,
        msg: Incoming,
    ) -> std::result::Result<Vec<Value>, Refusal> {
        let path = msg.path.clone().unwrap_or_default();
        let member = msg.member.clone().unwrap_or_default();
        let interface = msg.interface.clone();
        match (interface.as_deref(), member.as_str()) {
            (Some(PEER) | None, "Ping") => {
                check(&msg, "")?;
                Ok(Vec::new())
            }
            (Some(INTROSPECTABLE) | None, "Introspect") => {
                check(&msg, "")?;
                self.introspect(&path).map(|xml| vec![Value::Str(xml)])
            }
            (Some(mfa_api::LOGIN_INTERFACE) | None, _) if path == mfa_api::OBJECT_PATH => {
                login(ctx, self.how, caller, &member, msg).await
            }
            _ if path != mfa_api::OBJECT_PATH => Err(unknown_object(&path)),
            // Another interface on the object (Account, Admin: the bus's
            // only), named as zbus names it there.
            (Some(i), _) => Err(Refusal(
                UNKNOWN_INTERFACE.into(),
                format!("Unknown interface '{i}'"),
            )),
            (None, m) => Err(unknown_method("", m)),
        }
    }

    /// The introspection data of `path`: Login's on its object, the next
    /// node on the way to it, nothing else.
    fn introspect(&self, path: &str) -> std::result::Result<String, Refusal> {
        if path == mfa_api::OBJECT_PATH {
            return Ok(self.introspection.clone());
        }
        let below = if path == "/" {
            Some(&mfa_api::OBJECT_PATH[1..])
        } else {
            mfa_api::OBJECT_PATH
                .strip_prefix(path)
                .and_then(|rest| rest.strip_prefix('/'))
        };
        let child = below
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| unknown_object(path))?;
        Ok(format!(
            "{DOCTYPE}<node>\n  <node name=\"{child}\"/>\n</node>\n"
        ))
    }
}

/// An error reply: its D-Bus name and message.
#[derive(Debug)]
struct Refusal(String, String);

impl From<mfa_api::Error> for Refusal {
    fn from(e: mfa_api::Error) -> Refusal {
        Refusal(e.error_name(), e.message())
    }
}

fn unknown_method(interface: &str, member: &str) -> Refusal {
    Refusal(
        UNKNOWN_METHOD.into(),
        format!("Unknown method '{member}' on interface '{interface}'"),
    )
}

fn unknown_object(path: &str) -> Refusal {
    Refusal(UNKNOWN_OBJECT.into(), format!("Unknown object '{path}'"))
}

/// The call's arguments are of `signature`, and it passes descriptors only
/// where the signature takes them.
fn check(msg: &Incoming, signature: &str) -> std::result::Result<(), Refusal> {
    if msg.signature != signature {
        return Err(Refusal(
            INVALID_ARGS.into(),
            format!(
                "Invalid arguments: expected signature '{signature}', got '{}'",
                msg.signature
            ),
        ));
    }
    let takes = u32::try_from(signature.bytes().filter(|b| *b == b'h').count()).unwrap_or(0);
    if msg.unix_fds != takes {
        return Err(Refusal(
            INVALID_ARGS.into(),
            format!(
                "Invalid arguments: {} descriptors passed, {takes} expected",
                msg.unix_fds
            ),
        ));
    }
    Ok(())
}

/// Takes a call's arguments in order, once [`check`] has matched their
/// types.
struct Args(std::vec::IntoIter<Value>);

impl Args {
    fn next(&mut self) -> std::result::Result<Value, Refusal> {
        self.0
            .next()
            .ok_or_else(|| Refusal(INVALID_ARGS.into(), "Invalid arguments: too few".into()))
    }

    fn s(&mut self) -> std::result::Result<String, Refusal> {
        match self.next()? {
            Value::Str(s) => Ok(s),
            _ => Err(Refusal(INVALID_ARGS.into(), "Invalid arguments".into())),
        }
    }

    fn bytes(&mut self) -> std::result::Result<Vec<u8>, Refusal> {
        match self.next()? {
            Value::Bytes(b) => Ok(b),
            _ => Err(Refusal(INVALID_ARGS.into(), "Invalid arguments".into())),
        }
    }

    fn strs(&mut self) -> std::result::Result<Vec<String>, Refusal> {
        self.next()?
            .strs()
            .ok_or_else(|| Refusal(INVALID_ARGS.into(), "Invalid arguments".into()))
    }

    /// The descriptor, this process's own (a duplicate if the message's
    /// copy is shared).
    fn fd(&mut self) -> std::result::Result<OwnedFd, Refusal> {
        match self.next()? {
            Value::Fd(fd) => Arc::try_unwrap(fd)
                .or_else(|shared| shared.try_clone())
                .map_err(|e| Refusal::from(mfa_api::Error::Internal(e.to_string()))),
            _ => Err(Refusal(INVALID_ARGS.into(), "Invalid arguments".into())),
        }
    }
}

/// A reply value of one of mfa_api's enums: its string on the wire (the
/// same serde names zbus sends).
fn word<T: serde::Serialize>(t: &T) -> std::result::Result<Value, Refusal> {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => Ok(Value::Str(s)),
        _ => Err(Refusal::from(mfa_api::Error::Internal(
            "a reply value that is not a string".into(),
        ))),
    }
}

/// org.mfad.Mfa1.Login's `member`, through the same [`Context`] methods
/// the bus's handlers call.
async fn login(
    ctx: &Context,
    how: Run,
    caller: u32,
    member: &str,
    msg: Incoming,
) -> std::result::Result<Vec<Value>, Refusal> {
    let signature = match member {
        "Begin" => "sssss",
        "Answer" => "say",
        "AccountCheck" | "EnrollBegin" => "sss",
        "EnrollKinds" | "EnrollResend" | "CloseSession" => "s",
        "OpenSession" => "sssssh",
        "EnrollConfirm" => "sas",
        _ => return Err(unknown_method(mfa_api::LOGIN_INTERFACE, member)),
    };
    check(&msg, signature)?;
    let mut a = Args(msg.body.into_iter());
    let s = Value::Str;
    Ok(match member {
        "Begin" => {
            let req = crate::service::LoginRequest {
                user: a.s()?,
                service: a.s()?,
                rhost: a.s()?,
                tty: a.s()?,
                auth_info: a.s()?,
            };
            let (action, attempt, message) = ctx.login_begin(how, caller, req).await?;
            vec![word(&action)?, s(attempt), s(message)]
        }
        "Answer" => {
            let (attempt, code) = (a.s()?, a.bytes()?);
            let (result, message) = ctx.login_answer(how, caller, attempt, code).await?;
            vec![word(&result)?, s(message)]
        }
        "AccountCheck" => {
            let (user, service, attempt) = (a.s()?, a.s()?, a.s()?);
            let (action, message) = ctx
                .login_account_check(how, caller, user, service, attempt)
                .await?;
            vec![word(&action)?, s(message)]
        }
        "EnrollKinds" => {
            let kinds = ctx.login_enroll_kinds(how, caller, a.s()?).await?;
            vec![Value::Array("s".into(), kinds.into_iter().map(s).collect())]
        }
        "OpenSession" => {
            let login = crate::service::SessionLogin {
                user: a.s()?,
                service: a.s()?,
                attempt: a.s()?,
                tty: a.s()?,
                xdg_session_id: a.s()?,
            };
            let pidfd = a.fd()?;
            let (id, ends, message) = ctx.login_open_session(caller, login, pidfd).await?;
            vec![s(id), Value::I64(ends), s(message)]
        }
        "EnrollBegin" => {
            let (attempt, kind, phone) = (a.s()?, a.s()?, a.s()?);
            let (uri, secret, message) =
                ctx.login_enroll_begin(caller, attempt, kind, phone).await?;
            vec![s(uri), s(secret), s(message)]
        }
        "EnrollResend" => vec![s(ctx.login_enroll_resend(caller, a.s()?).await?)],
        "EnrollConfirm" => {
            let (attempt, codes) = (a.s()?, a.strs()?);
            let (result, message, backup) = ctx
                .login_enroll_confirm(how, caller, attempt, codes)
                .await?;
            vec![
                word(&result)?,
                s(message),
                Value::Array("s".into(), backup.into_iter().map(s).collect()),
            ]
        }
        _ => {
            ctx.login_close_session(how, caller, a.s()?).await?;
            Vec::new()
        }
    })
}

/// One accepted connection: what was read and not yet used, and the
/// descriptors that came with it.
struct Conn {
    stream: UnixStream,
    /// SO_PEERCRED's, at accept.
    uid: u32,
    input: Vec<u8>,
    /// Descriptors received, each with the offset in `input` of the bytes
    /// it came with: it belongs to the message those bytes are part of.
    fds: Vec<(usize, Arc<OwnedFd>)>,
    /// The serial of the last message mfad sent.
    serial: u32,
    /// SASL replies not written yet.
    out: Vec<u8>,
}

/// Failed AUTH commands before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

impl Conn {
    /// Reads more, with the descriptors that come with it.
    async fn fill(&mut self) -> io::Result<()> {
        // The peer may wait for what we owe it before it sends more.
        if !self.out.is_empty() {
            self.send(&[], &[]).await?;
        }
        let mut buf = [0u8; 4096];
        loop {
            self.stream.readable().await?;
            let fd = self.stream.as_raw_fd();
            match self
                .stream
                .try_io(Interest::READABLE, || recv_with_fds(fd, &mut buf))
            {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok((n, fds)) => {
                    let at = self.input.len();
                    self.input.extend_from_slice(&buf[..n]);
                    self.fds
                        .extend(fds.into_iter().map(|fd| (at, Arc::new(fd))));
                    if self.fds.len() > MAX_FDS_PER_READ {
                        return Err(protocol("too many file descriptors"));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The first `n` bytes of the input, and the descriptors that came
    /// with them.
    fn consume(&mut self, n: usize) -> (Vec<u8>, Vec<Arc<OwnedFd>>) {
        let bytes: Vec<u8> = self.input.drain(..n).collect();
        let mut mine = Vec::new();
        let mut rest = Vec::new();
        for (at, fd) in self.fds.drain(..) {
            if at < n {
                mine.push(fd);
            } else {
                rest.push((at - n, fd));
            }
        }
        self.fds = rest;
        (bytes, mine)
    }

    /// One SASL line, without its CR LF; descriptors are refused there.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
                let (mut line, fds) = self.consume(end + 2);
                if !fds.is_empty() {
                    return Err(protocol("descriptors passed during authentication"));
                }
                line.truncate(end);
                return String::from_utf8(line).map_err(|_| protocol("authentication line"));
            }
            if self.input.len() > MAX_SASL_LINE {
                return Err(too_big("authentication line"));
            }
            self.fill().await?;
        }
    }

    /// The server's side of SASL: EXTERNAL only, for the UID the kernel
    /// gives for the socket's other end; then NEGOTIATE_UNIX_FD and BEGIN.
    async fn authenticate(&mut self, guid: &str) -> io::Result<()> {
        while self.input.is_empty() {
            self.fill().await?;
        }
        if self.input[0] != 0 {
            return Err(protocol("no NUL byte before the authentication"));
        }
        if !self.consume(1).1.is_empty() {
            return Err(protocol("descriptors passed during authentication"));
        }
        let (mut authenticated, mut waiting_data, mut failures) = (false, false, 0);
        loop {
            let line = self.line().await?;
            let words: Vec<&str> = line.split(' ').collect();
            let reply = match words.as_slice() {
                ["AUTH", "EXTERNAL"] if !authenticated => {
                    waiting_data = true;
                    "DATA".to_string()
                }
                ["AUTH", "EXTERNAL", id] if !authenticated => self.external(id, guid),
                // An empty response: the socket's credentials.
                ["DATA"] if waiting_data => self.external("", guid),
                ["DATA", id] if waiting_data => self.external(id, guid),
                ["NEGOTIATE_UNIX_FD"] if authenticated => "AGREE_UNIX_FD".to_string(),
                ["BEGIN"] if authenticated => return Ok(()),
                ["AUTH", ..] | ["CANCEL"] | ["ERROR", ..] if !authenticated => {
                    "REJECTED EXTERNAL".to_string()
                }
                _ => "ERROR".to_string(),
            };
            waiting_data &= reply == "DATA";
            if reply.starts_with("OK ") {
                authenticated = true;
            } else if reply.starts_with("REJECTED") {
                failures += 1;
                if failures >= MAX_AUTH_FAILURES {
                    self.send(&[], &[]).await?;
                    return Err(protocol("authentication refused"));
                }
            }
            // Owed, not sent yet: a client that sends its SASL lines and
            // first call at once gets OK, AGREE_UNIX_FD and the reply in
            // one write (see `fill` and `send`).
            self.out
                .extend_from_slice(format!("{reply}\r\n").as_bytes());
        }
    }

    /// EXTERNAL's answer to the identity `id` (hex of the decimal UID;
    /// empty: the socket's): OK when it is the socket's UID.
    fn external(&self, id: &str, guid: &str) -> String {
        if id.is_empty() || hex_uid(id) == Some(self.uid) {
            format!("OK {guid}")
        } else {
            "REJECTED EXTERNAL".to_string()
        }
    }

    /// The next whole message and the descriptors that came with it,
    /// refused from its header when over [`MAX_MESSAGE_SIZE`].
    async fn message(&mut self) -> io::Result<(Vec<u8>, Vec<Arc<OwnedFd>>)> {
        while self.input.len() < 16 {
            self.fill().await?;
        }
        let len =
            message_length(&self.input[..16], MAX_MESSAGE_SIZE).map_err(|_| too_big("message"))?;
        while self.input.len() < len {
            self.fill().await?;
        }
        Ok(self.consume(len))
    }

    /// Writes what is owed (SASL replies) and then `bytes`, in one write
    /// when the socket takes it.
    async fn send(&mut self, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
        let owed;
        let mut bytes = if self.out.is_empty() {
            bytes
        } else if !fds.is_empty() {
            // Descriptors go with their message's bytes alone.
            Box::pin(self.send(&[], &[])).await?;
            bytes
        } else {
            let mut all = std::mem::take(&mut self.out);
            all.extend_from_slice(bytes);
            owed = all;
            &owed[..]
        };
        let mut fds = fds;
        while !bytes.is_empty() {
            self.stream.writable().await?;
            let fd = self.stream.as_raw_fd();
            match self.stream.try_io(Interest::WRITABLE, || {
                let iov = [io::IoSlice::new(bytes)];
                let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() {
                    &[]
                } else {
                    &[ControlMessage::ScmRights(fds)]
                };
                socket::sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            }) {
                Ok(n) => {
                    bytes = &bytes[n..];
                    fds = &[];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The UID that AUTH EXTERNAL names: hex digits of its decimal digits.
fn hex_uid(hex: &str) -> Option<u32> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 20 {
        return None;
    }
    let digits: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(digits?).ok()?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One connection counted against its UID, until dropped.
struct Slot {
    counts: Arc<Mutex<HashMap<u32, usize>>>,
    uid: u32,
}

impl Slot {
    fn take(counts: &Arc<Mutex<HashMap<u32, usize>>>, uid: u32) -> Option<Slot> {
        let limit = if uid == 0 {
            MAX_ROOT_CONNECTIONS
        } else {
            MAX_CONNECTIONS_PER_UID
        };
        let mut map = counts.lock().ok()?;
        let n = map.entry(uid).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: counts.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = match self.counts.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.uid);
            }
        }
    }
}

/// One `recvmsg(2)`: the bytes and the descriptors that came with them
/// (close-on-exec). Truncated descriptors are an error, not a silent loss.
#[allow(unsafe_code)]
fn recv_with_fds(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_READ]);
    let msg = socket::recvmsg::<()>(
        fd,
        &mut iov,
        Some(space.as_mut_slice()),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for r in raw {
                // SAFETY: the kernel just installed `r` in this process
                // for this message (SCM_RIGHTS); nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(r) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many file descriptors in one message",
        ));
    }
    Ok((msg.bytes, fds))
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} longer than the login socket accepts"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::users::Fake;
    use mfa_api::wire::{encode_call, Call, ERROR, METHOD_RETURN};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdStream;

    /// mfad's server on one end of a socket pair, for this process's UID
    /// as SO_PEERCRED gives it; the other end, blocking, with a deadline.
    fn served() -> (StdStream, tokio::task::JoinHandle<io::Result<()>>) {
        let me = nix::unistd::getuid().as_raw();
        let users = Fake::default()
            .with("root", 0, &["root"])
            .with("alice", 4242, &[]);
        let ctx = crate::dbus::tests::context(users, Config::default());
        let (server_end, client) = StdStream::pair().unwrap();
        server_end.set_nonblocking(true).unwrap();
        let server_end = UnixStream::from_std(server_end).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let task = tokio::spawn(async move {
            let server = Server::new(&ctx, Run::Here);
            server.connection(&ctx, server_end, me).await
        });
        (client, task)
    }

    fn hex(uid: u32) -> String {
        uid.to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Reads until `want` lines (CR LF) have come.
    fn lines(s: &mut StdStream, want: usize) -> Vec<String> {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while got.iter().filter(|c| **c == b'\n').count() < want {
            assert_eq!(s.read(&mut b).unwrap(), 1, "closed after {got:?}");
            got.push(b[0]);
        }
        String::from_utf8(got)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn closed(s: &mut StdStream) -> bool {
        let mut b = [0u8; 64];
        matches!(s.read(&mut b), Ok(0)) || matches!(s.read(&mut b), Ok(0))
    }

    fn authenticate(s: &mut StdStream) {
        let me = nix::unistd::getuid().as_raw();
        s.write_all(
            format!(
                "\0AUTH EXTERNAL {}\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
                hex(me)
            )
            .as_bytes(),
        )
        .unwrap();
        let l = lines(s, 2);
        assert!(l[0].starts_with("OK "), "{l:?}");
        assert_eq!(l[1], "AGREE_UNIX_FD");
    }

    /// Sends `bytes` with `fds` (SCM_RIGHTS).
    fn send(s: &StdStream, bytes: &[u8], fds: &[RawFd]) {
        let iov = [io::IoSlice::new(bytes)];
        let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(fds)]
        };
        let n =
            socket::sendmsg::<()>(s.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).unwrap();
        assert_eq!(n, bytes.len());
    }

    fn reply(s: &mut StdStream) -> Incoming {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        let len = message_length(&h, 1 << 20).unwrap();
        let mut m = h.to_vec();
        m.resize(len, 0);
        s.read_exact(&mut m[16..]).unwrap();
        decode(&m, &[]).unwrap()
    }

    /// Calls `interface`.`member` on `path` with `args`, and the
    /// descriptors `extra` besides those the arguments pass.
    fn call(
        s: &mut StdStream,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Value],
        extra: &[RawFd],
    ) -> Incoming {
        let (bytes, fds) = encode_call(
            7,
            &Call {
                destination: None,
                path,
                interface,
                member,
                args,
            },
        )
        .unwrap();
        let mut raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        raw.extend_from_slice(extra);
        send(s, &bytes, &raw);
        let r = reply(s);
        assert_eq!(r.reply_serial, Some(7));
        r
    }

    fn error_name(r: &Incoming) -> &str {
        assert_eq!(r.kind, ERROR, "{r:?}");
        r.error_name.as_deref().unwrap_or("")
    }

    fn strs(n: usize) -> Vec<Value> {
        (0..n).map(|_| Value::Str("x".into())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sasl_is_external_for_the_sockets_own_uid_only() {
        let me = nix::unistd::getuid().as_raw();
        // Another UID, another mechanism, BEGIN before OK: refused, and
        // the connection closed after the third refusal.
        let (mut s, task) = served();
        s.write_all(format!("\0AUTH EXTERNAL {}\r\n", hex(me + 1)).as_bytes())
            .unwrap();
        assert_eq!(lines(&mut s, 1), ["REJECTED EXTERNAL"]);
        s.write_all(b"BEGIN\r\n").unwrap();
        assert_eq!(lines(&mut s, 1), ["ERROR"]);
        s.write_all(b"AUTH DBUS_COOKIE_SHA1 30\r\nAUTH EXTERNAL zz\r\n")
            .unwrap();
        assert_eq!(lines(&mut s, 1), ["REJECTED EXTERNAL"]);
        assert!(closed(&mut s), "open after three refusals");
        assert!(task.await.unwrap().is_err());

        // No NUL byte first: closed at once.
        let (mut s, task) = served();
        s.write_all(format!("AUTH EXTERNAL {}\r\n", hex(me)).as_bytes())
            .unwrap();
        assert!(closed(&mut s));
        assert!(task.await.unwrap().is_err());

        // A line longer than the cap: closed.
        let (mut s, task) = served();
        s.write_all(&[0]).unwrap();
        s.write_all(&vec![b'A'; MAX_SASL_LINE + 16]).unwrap();
        assert!(closed(&mut s));
        assert!(task.await.unwrap().is_err());

        // EXTERNAL without an identity: DATA, then the socket's own.
        let (mut s, _task) = served();
        s.write_all(b"\0AUTH EXTERNAL\r\n").unwrap();
        assert_eq!(lines(&mut s, 1), ["DATA"]);
        s.write_all(b"DATA\r\nBEGIN\r\n").unwrap();
        assert!(lines(&mut s, 1)[0].starts_with("OK "));
        let r = call(&mut s, "/", "org.freedesktop.DBus.Peer", "Ping", &[], &[]);
        assert_eq!(r.kind, METHOD_RETURN, "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_interfaces_members_and_objects_are_unknown() {
        let (mut s, _task) = served();
        authenticate(&mut s);
        let path = mfa_api::OBJECT_PATH;
        let login = mfa_api::LOGIN_INTERFACE;
        let r = call(&mut s, path, login, "Nope", &[], &[]);
        assert_eq!(error_name(&r), "org.freedesktop.DBus.Error.UnknownMethod");
        let r = call(
            &mut s,
            path,
            mfa_api::ACCOUNT_INTERFACE,
            "Status",
            &strs(1),
            &[],
        );
        assert_eq!(
            error_name(&r),
            "org.freedesktop.DBus.Error.UnknownInterface"
        );
        let r = call(&mut s, "/elsewhere", login, "Begin", &strs(5), &[]);
        assert_eq!(error_name(&r), "org.freedesktop.DBus.Error.UnknownObject");
        // Ping and Introspect answer; the connection is still good.
        let r = call(&mut s, path, "org.freedesktop.DBus.Peer", "Ping", &[], &[]);
        assert_eq!((r.kind, r.body.len()), (METHOD_RETURN, 0));
        let r = call(
            &mut s,
            path,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            &[],
            &[],
        );
        let xml = r.body[0].str().unwrap();
        assert!(
            xml.contains("<interface name=\"org.mfad.Mfa1.Login\">"),
            "{xml}"
        );
        assert!(xml.contains("<method name=\"AccountCheck\">"), "{xml}");
        assert!(!xml.contains("org.mfad.Mfa1.Account"), "{xml}");
        let r = call(
            &mut s,
            "/org",
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            &[],
            &[],
        );
        assert!(r.body[0].str().unwrap().contains("<node name=\"mfad\"/>"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_signature_is_invalid_args_and_errors_keep_their_names() {
        let (mut s, _task) = served();
        authenticate(&mut s);
        let path = mfa_api::OBJECT_PATH;
        let login = mfa_api::LOGIN_INTERFACE;
        let invalid = "org.freedesktop.DBus.Error.InvalidArgs";
        let r = call(&mut s, path, login, "Begin", &strs(1), &[]);
        assert_eq!(error_name(&r), invalid);
        let r = call(&mut s, path, login, "Answer", &strs(2), &[]);
        assert_eq!(error_name(&r), invalid);
        let r = call(&mut s, path, login, "Ping", &[], &[]);
        assert_eq!(error_name(&r), "org.freedesktop.DBus.Error.UnknownMethod");
        // A well-formed call gets mfad's own answer under its own name.
        let r = call(
            &mut s,
            path,
            login,
            "Answer",
            &[Value::Str("nope".into()), Value::Bytes(b"123456".to_vec())],
            &[],
        );
        let name = error_name(&r);
        assert!(name.starts_with("org.mfad.Mfa1.Error."), "{name}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn descriptors_where_none_are_expected_are_refused_and_closed() {
        let (mut s, _task) = served();
        authenticate(&mut s);
        let path = mfa_api::OBJECT_PATH;
        let login = mfa_api::LOGIN_INTERFACE;
        let (reader, writer) = nix::unistd::pipe().unwrap();
        // Declared, to a method that takes none.
        let fd = Arc::new(writer.try_clone().unwrap());
        let mut args = strs(5);
        args.push(Value::Fd(fd.clone()));
        let r = call(&mut s, path, login, "Begin", &args, &[]);
        assert_eq!(error_name(&r), "org.freedesktop.DBus.Error.InvalidArgs");
        drop((fd, args));
        // Not declared at all.
        let r = call(
            &mut s,
            path,
            login,
            "Begin",
            &strs(5),
            &[writer.as_raw_fd()],
        );
        assert_eq!(error_name(&r), "org.freedesktop.DBus.Error.InvalidArgs");
        // mfad kept neither: with ours closed, the pipe reads end of file.
        drop(writer);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = tx.send(std::fs::File::from(reader).read(&mut b).ok());
        });
        let got = rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            got,
            Ok(Some(0)),
            "a descriptor passed to mfad is still open"
        );
        let r = call(&mut s, path, "org.freedesktop.DBus.Peer", "Ping", &[], &[]);
        assert_eq!(r.kind, METHOD_RETURN);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_over_the_cap_ends_the_connection_from_its_header() {
        let (mut s, task) = served();
        authenticate(&mut s);
        let mut h = vec![b'l', METHOD_CALL, 0, 1];
        h.extend_from_slice(&u32::try_from(MAX_MESSAGE_SIZE).unwrap().to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&8u32.to_le_bytes());
        s.write_all(&h).unwrap();
        // Closed without waiting for the body.
        assert!(closed(&mut s));
        assert!(task.await.unwrap().is_err());
        // Not a D-Bus message at all: the same.
        let (mut s, task) = served();
        authenticate(&mut s);
        s.write_all(b"xxxxxxxxxxxxxxxx").unwrap();
        assert!(closed(&mut s));
        assert!(task.await.unwrap().is_err());
    }

    /// A gateway that takes each message and answers once opened.
    #[derive(Default)]
    struct Gate {
        sent: Mutex<Vec<String>>,
        open: Mutex<bool>,
        opened: std::sync::Condvar,
    }

    impl crate::gateway::Sender for Gate {
        fn send(
            &self,
            m: &crate::gateway::Message<'_>,
        ) -> std::result::Result<(), crate::gateway::SendError> {
            self.sent.lock().unwrap().push(m.code.to_string());
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            Ok(())
        }
    }

    impl Gate {
        fn set_open(&self, open: bool) {
            *self.open.lock().unwrap() = open;
            self.opened.notify_all();
        }
        fn count(&self) -> usize {
            self.sent.lock().unwrap().len()
        }
    }

    /// The pool serving a socket in a temp dir, over a service whose SMS
    /// goes through `gate` and whose only user (with a phone, no app) is
    /// this process's UID; returns the socket's path and that user.
    fn pool(gate: Arc<Gate>) -> (tempfile::TempDir, PathBuf, String, Pool) {
        use crate::config::LogTarget;
        use crate::service::{Core, Service, Sms};
        let me = nix::unistd::getuid().as_raw();
        let name = if me == 0 { "root" } else { "alice" };
        let mut config = Config::default();
        config.daemon.log = LogTarget::Stderr;
        let service = Arc::new(Service::new(Core {
            config,
            issuer: "test-host".into(),
            store: Arc::new(crate::store::sqlite::SqliteStore::open_in_memory().unwrap()),
            audit: Arc::new(Audit::new(LogTarget::Stderr)),
            users: Box::new(Fake::default().with(name, me, &[])),
            random: Box::new(crate::random::Os),
            keys: Arc::new(crate::seal::Keys::for_tests()),
            sms: Some(Sms {
                sender: gate.clone(),
                code_lifetime: 300,
                limits: crate::store::SendLimits {
                    per_user: 100,
                    total: 100,
                    cooldown: 0,
                },
                allowed_prefixes: Vec::new(),
                // Far longer than the test: a Begin that waited on the
                // socket's thread would hold it throughout.
                login_wait: Duration::from_secs(120),
            }),
        }));
        gate.set_open(true);
        let now = crate::dbus::now();
        let (id, _) = service
            .enroll_sms_begin(me, name, "+37255512345", "", now)
            .unwrap();
        let code = gate.sent.lock().unwrap().last().cloned().unwrap();
        service
            .enroll_sms_confirm(me, name, &id, &code, now)
            .unwrap();
        gate.set_open(false);
        let ctx = Context::new(service.clone(), tokio::runtime::Handle::current());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("login.socket");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let pool = start(listener, ctx, service.audit(), Run::Here).unwrap();
        (dir, path, name.to_string(), pool)
    }

    fn connect(path: &Path) -> StdStream {
        let mut s = StdStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        authenticate(&mut s);
        s
    }

    fn begin_call(user: &str) -> Vec<u8> {
        let args: Vec<Value> = [user, "sshd", "", "", ""]
            .iter()
            .map(|a| Value::Str(a.to_string()))
            .collect();
        encode_call(
            7,
            &Call {
                destination: None,
                path: mfa_api::OBJECT_PATH,
                interface: mfa_api::LOGIN_INTERFACE,
                member: "Begin",
                args: &args,
            },
        )
        .unwrap()
        .0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_begin_that_sends_an_sms_holds_none_of_the_sockets_threads() {
        let gate = Arc::new(Gate::default());
        let (_dir, path, user, pool) = pool(gate.clone());
        let sent = gate.count();
        // One Begin per thread of the pool, each waiting for the gateway.
        let mut waiting: Vec<StdStream> = (0..THREADS).map(|_| connect(&path)).collect();
        for s in &mut waiting {
            s.write_all(&begin_call(&user)).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gate.count() < sent + THREADS {
            assert!(
                std::time::Instant::now() < deadline,
                "the sends never began"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another connection is accepted and served meanwhile.
        let other = tokio::task::spawn_blocking(move || {
            let mut s = connect(&path);
            let r = call(&mut s, "/", "org.freedesktop.DBus.Peer", "Ping", &[], &[]);
            r.kind
        });
        let served = tokio::time::timeout(Duration::from_secs(5), other).await;
        gate.set_open(true);
        assert_eq!(
            served
                .expect("a Begin waiting for the SMS gateway held the socket's threads")
                .unwrap(),
            METHOD_RETURN
        );
        // The Begins answer once the gateway has, each with one code sent.
        for s in &mut waiting {
            let r = reply(s);
            assert_eq!(r.kind, METHOD_RETURN, "{r:?}");
            assert_eq!(r.body[0].str(), Some("challenge"), "{r:?}");
            let prompt = r.body[2].str().unwrap();
            assert!(prompt.starts_with("Code sent by SMS to"), "{prompt}");
        }
        assert_eq!(gate.count(), sent + THREADS, "one SMS per Begin");
        pool.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_mid_message_holds_only_itself() {
        let gate = Arc::new(Gate::default());
        let (_dir, path, user, pool) = pool(gate);
        // More stalled clients than threads: halfway through SASL, through
        // a header, through a body.
        let mut stalled = Vec::new();
        for _ in 0..THREADS {
            let mut s = StdStream::connect(&path).unwrap();
            s.write_all(b"\0AUTH EXTER").unwrap();
            stalled.push(s);
            let mut s = connect(&path);
            s.write_all(&begin_call(&user)[..10]).unwrap();
            stalled.push(s);
            let mut s = connect(&path);
            let call = begin_call(&user);
            s.write_all(&call[..call.len() - 3]).unwrap();
            stalled.push(s);
        }
        let other = tokio::task::spawn_blocking(move || {
            let mut s = connect(&path);
            call(&mut s, "/", "org.freedesktop.DBus.Peer", "Ping", &[], &[]).kind
        });
        let served = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("a stalled client held the socket's threads");
        assert_eq!(served.unwrap(), METHOD_RETURN);
        drop(stalled);
        pool.stop();
    }

    #[test]
    fn connections_are_counted_per_uid() {
        let counts = Arc::default();
        let slots: Vec<Slot> = (0..MAX_CONNECTIONS_PER_UID)
            .map(|_| Slot::take(&counts, 1000).unwrap())
            .collect();
        assert!(Slot::take(&counts, 1000).is_none());
        // Another UID, and root, are not held up by it.
        assert!(Slot::take(&counts, 1001).is_some());
        assert!(Slot::take(&counts, 0).is_some());
        drop(slots);
        assert!(Slot::take(&counts, 1000).is_some());
        assert!(counts.lock().unwrap().is_empty());
    }
}
