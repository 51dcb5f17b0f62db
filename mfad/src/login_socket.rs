//! The private login socket (`[daemon] login_socket`): the
//! org.mfad.Mfa1.Login interface peer to peer, as systemd serves
//! /run/systemd/private, so that a login costs no trip through
//! dbus-daemon. The caller's UID is the kernel's (SO_PEERCRED), never a
//! claim in a message, and the handlers authorize each call as on the bus.
//!
//! What dbus-daemon enforces on the bus, mfad enforces here: a limit of
//! connections per UID, a deadline for the authentication and a cap on the
//! size of a message (checked from its header, before its body is read).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::connection::AuthMechanism;
use zbus::fdo::ConnectionCredentials;

use crate::audit::Audit;
use crate::dbus::Context;
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

/// Accepts connections for ever, each served on its own task.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    ctx: Arc<Context>,
    audit: Arc<Audit>,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            audit.warn("login socket unusable", &[("error", &e.to_string())]);
            return;
        }
    };
    let counts: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    let mut last_warned = None;
    loop {
        let stream = match listener.accept().await {
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
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let socket = Capped::new(stream, uid, cred.pid());
            let built = tokio::time::timeout(AUTH_TIMEOUT, crate::dbus::serve_login(ctx, socket));
            if let Ok(Ok(conn)) = built.await {
                conn.closed().await;
            }
        });
    }
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

/// An accepted connection as zbus's transport: reads and writes with
/// descriptor passing, the kernel's credentials of the peer, and the
/// message size cap.
#[derive(Debug)]
pub struct Capped {
    stream: Arc<UnixStream>,
    uid: u32,
    pid: Option<i32>,
}

impl Capped {
    pub fn new(stream: UnixStream, uid: u32, pid: Option<i32>) -> Capped {
        Capped {
            stream: Arc::new(stream),
            uid,
            pid,
        }
    }
}

/// The peer's credentials as SO_PEERCRED gave them at accept.
#[derive(Debug, Clone, Copy)]
struct Peer {
    uid: u32,
    pid: Option<i32>,
}

impl Peer {
    fn credentials(self) -> ConnectionCredentials {
        let creds = ConnectionCredentials::default().set_unix_user_id(self.uid);
        match self.pid.and_then(|p| u32::try_from(p).ok()) {
            Some(pid) => creds.set_process_id(pid),
            None => creds,
        }
    }
}

impl Socket for Capped {
    type ReadHalf = Reader;
    type WriteHalf = Writer;

    fn split(self) -> Split<Reader, Writer> {
        let peer = Peer {
            uid: self.uid,
            pid: self.pid,
        };
        Split::new(
            Reader {
                stream: self.stream.clone(),
                peer,
                frames: Frames::default(),
            },
            Writer {
                stream: self.stream,
                peer,
            },
        )
    }
}

#[derive(Debug)]
pub struct Reader {
    stream: Arc<UnixStream>,
    peer: Peer,
    frames: Frames,
}

#[derive(Debug)]
pub struct Writer {
    stream: Arc<UnixStream>,
    peer: Peer,
}

#[zbus::export::async_trait::async_trait]
impl ReadHalf for Reader {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        loop {
            self.stream.readable().await?;
            let fd = self.stream.as_raw_fd();
            match self
                .stream
                .try_io(Interest::READABLE, || recv_with_fds(fd, buf))
            {
                Ok((n, fds)) => {
                    self.frames.feed(&buf[..n])?;
                    return Ok((n, fds));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.peer.credentials())
    }

    fn auth_mechanism(&self) -> AuthMechanism {
        AuthMechanism::External
    }
}

#[zbus::export::async_trait::async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(&mut self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        loop {
            self.stream.writable().await?;
            let fd = self.stream.as_raw_fd();
            match self.stream.try_io(Interest::WRITABLE, || {
                let iov = [io::IoSlice::new(buf)];
                let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() {
                    &[]
                } else {
                    &[ControlMessage::ScmRights(&raw)]
                };
                socket::sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            }) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        socket::shutdown(self.stream.as_raw_fd(), socket::Shutdown::Both).map_err(io::Error::from)
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.peer.credentials())
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

/// Follows the stream as the peer sends it: SASL lines up to BEGIN, then
/// messages, each of whose length its 16-byte primary header gives. A
/// message over [`MAX_MESSAGE_SIZE`] ends the connection before its body
/// is read (zbus reads the header first, so this sees it first).
#[derive(Debug, Default)]
struct Frames {
    /// Past BEGIN.
    messages: bool,
    line: Vec<u8>,
    header: Vec<u8>,
    /// Bytes of the current message still to come after its header.
    remaining: u64,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if !self.messages {
                let (b, rest) = (bytes[0], &bytes[1..]);
                bytes = rest;
                self.line.push(b);
                if b == b'\n' {
                    self.messages = self.line == b"BEGIN\r\n";
                    self.line.clear();
                } else if self.line.len() > MAX_SASL_LINE {
                    return Err(too_big("authentication line"));
                }
            } else if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes = &bytes[n..];
                self.remaining -= n as u64;
            } else {
                let n = (16 - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if self.header.len() == 16 {
                    let total = message_length(&self.header)?;
                    if total > MAX_MESSAGE_SIZE as u64 {
                        return Err(too_big("message"));
                    }
                    self.remaining = total - 16;
                    self.header.clear();
                }
            }
        }
        Ok(())
    }
}

/// The whole length of the message whose primary header is `h`.
fn message_length(h: &[u8]) -> io::Result<u64> {
    let word = |at: usize| -> u64 {
        let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        u64::from(if h[0] == b'B' {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if h[0] != b'l' && h[0] != b'B' {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a D-Bus message",
        ));
    }
    let (body, fields) = (word(4), word(12));
    Ok((16 + fields).div_ceil(8) * 8 + body)
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

    fn header(body: u32, fields: u32) -> Vec<u8> {
        let mut h = vec![b'l', 1, 0, 1];
        h.extend_from_slice(&body.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&fields.to_le_bytes());
        h
    }

    #[test]
    fn frames_follow_sasl_then_messages() {
        let mut f = Frames::default();
        f.feed(b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n")
            .unwrap();
        assert!(f.messages);
        // A message of 16 + 20 (padded to 40) + 8 bytes, fed in pieces.
        let mut m = header(8, 20);
        m.resize(48, 0);
        f.feed(&m[..10]).unwrap();
        f.feed(&m[10..]).unwrap();
        assert_eq!(f.remaining, 0);
        assert!(f.header.is_empty());
        // A big-endian header counts the same.
        let mut be = vec![b'B', 1, 0, 1];
        be.extend_from_slice(&8u32.to_be_bytes());
        be.extend_from_slice(&1u32.to_be_bytes());
        be.extend_from_slice(&20u32.to_be_bytes());
        assert_eq!(message_length(&be).unwrap(), 48);
    }

    #[test]
    fn an_oversized_message_is_refused_from_its_header() {
        let mut f = Frames::default();
        f.feed(b"BEGIN\r\n").unwrap();
        let h = header(MAX_MESSAGE_SIZE as u32, 8);
        assert!(f.feed(&h).is_err());
        let mut f = Frames::default();
        f.feed(b"BEGIN\r\n").unwrap();
        assert!(f.feed(&header(u32::MAX, u32::MAX)).is_err());
        let mut f = Frames::default();
        f.feed(b"BEGIN\r\n").unwrap();
        assert!(f.feed(b"xxxxxxxxxxxxxxxx").is_err(), "no endianness mark");
    }

    #[test]
    fn a_long_sasl_line_is_refused() {
        let mut f = Frames::default();
        assert!(f.feed(&vec![b'A'; MAX_SASL_LINE + 2]).is_err());
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
