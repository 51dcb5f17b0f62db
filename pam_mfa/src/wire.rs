//! The D-Bus connection of the lean client, on a blocking unix socket:
//! SASL EXTERNAL, method calls and their replies, unix descriptors passed
//! with SCM_RIGHTS; the messages themselves are [`mfa_api::wire`]'s. No
//! runtime and no thread: every wait is a poll(2) bounded by the caller's
//! deadline.
//!
//! A new Login method is a [`Conn::call`] with its arguments as
//! [`Value`]s and its reply read from the returned values.

use crate::handle::wipe;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

use mfa_api::wire::{
    decode, encode_call, message_length, Incoming, ERROR, MAX_MESSAGE, METHOD_RETURN,
};
pub use mfa_api::wire::{Call, Value, WireError};

/// Descriptors taken with one read; more are dropped (closed) and an error.
const MAX_FDS: usize = 16;

fn bad(m: impl Into<String>) -> WireError {
    WireError::Protocol(m.into())
}

// ----- the connection --------------------------------------------------------

/// A D-Bus connection over a unix socket. Every send and receive is
/// MSG_DONTWAIT and every wait a poll(2), so the socket's own mode does not
/// matter (and costs no fcntl).
pub struct Conn {
    stream: UnixStream,
    serial: u32,
    input: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// The SASL commands, until they go out with the first call.
    pending: Vec<u8>,
    /// Whether the peer's answers to them (OK, AGREE_UNIX_FD) were read.
    authenticated: bool,
}

impl Conn {
    /// A connection on `stream` that authenticates (SASL EXTERNAL as this
    /// process's UID, unix descriptors negotiated) with its first call: the
    /// commands and the call go out in one write, and the answers to both
    /// come back together, as sd-bus does it. Both servers (dbus-daemon and
    /// mfad's) read them in turn; one round trip per connection instead of
    /// two. Whatever they answer, nothing is read as a reply unless it was
    /// OK and AGREE_UNIX_FD.
    pub fn new(stream: UnixStream) -> Conn {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        Conn {
            stream,
            serial: 0,
            input: Vec::new(),
            fds: Vec::new(),
            pending: format!("\0AUTH EXTERNAL {hex}\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n")
                .into_bytes(),
            authenticated: false,
        }
    }

    /// [`Conn::new`], authenticated by `deadline` before any call.
    pub fn open(stream: UnixStream, deadline: Instant) -> Result<Conn, WireError> {
        let mut c = Conn::new(stream);
        c.authenticate(deadline)?;
        Ok(c)
    }

    /// Sends the SASL commands if they are still pending, and reads the
    /// answers.
    fn authenticate(&mut self, deadline: Instant) -> Result<(), WireError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.send(&pending, &[], deadline)?;
        }
        if self.authenticated {
            return Ok(());
        }
        let ok = self.line(deadline)?;
        if !ok.starts_with("OK ") {
            return Err(bad(format!("authentication refused: {}", ok.trim_end())));
        }
        let agreed = self.line(deadline)?;
        if !agreed.starts_with("AGREE_UNIX_FD") {
            return Err(bad("the peer does not pass descriptors"));
        }
        self.authenticated = true;
        Ok(())
    }

    /// Calls a method and waits for its reply by `deadline`: the reply's
    /// values, or its error as [`WireError::Remote`].
    pub fn call(&mut self, call: &Call<'_>, deadline: Instant) -> Result<Vec<Value>, WireError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let (mut bytes, fds) = encode_call(serial, call)?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let sent = if raw.is_empty() && !self.pending.is_empty() {
            // The SASL commands and the call in one write.
            let mut out = std::mem::take(&mut self.pending);
            out.reserve_exact(bytes.len());
            out.extend_from_slice(&bytes);
            let sent = self.send(&out, &[], deadline);
            wipe(&mut out);
            sent.and_then(|()| self.authenticate(deadline))
        } else {
            // Descriptors must not arrive with the SASL commands (mfad
            // refuses them there): authenticated first.
            self.authenticate(deadline)
                .and_then(|()| self.send(&bytes, &raw, deadline))
        };
        // The call may carry a code (Answer): not left in freed memory.
        wipe(&mut bytes);
        sent?;
        loop {
            let msg = self.message(deadline)?;
            // Signals (NameAcquired) and anything not for this call.
            if msg.reply_serial != Some(serial) {
                continue;
            }
            return match msg.kind {
                METHOD_RETURN => Ok(msg.body),
                ERROR => Err(WireError::Remote {
                    name: msg.error_name.unwrap_or_default(),
                    message: msg
                        .body
                        .first()
                        .and_then(Value::str)
                        .unwrap_or_default()
                        .to_string(),
                }),
                _ => Err(bad("a reply that is neither a return nor an error")),
            };
        }
    }

    fn send(
        &mut self,
        mut bytes: &[u8],
        fds: &[RawFd],
        deadline: Instant,
    ) -> Result<(), WireError> {
        let mut fds = fds;
        while !bytes.is_empty() {
            match send_with_fds(self.stream.as_raw_fd(), bytes, fds) {
                Ok(n) => {
                    bytes = &bytes[n..];
                    fds = &[];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(&self.stream, libc::POLLOUT, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads more input, waiting up to `deadline`. Called only when input
    /// is needed, after a send, when it is seldom there yet: poll first,
    /// which saves a recvmsg that would fail with EAGAIN.
    fn fill(&mut self, deadline: Instant) -> Result<(), WireError> {
        let mut buf = [0u8; 4096];
        loop {
            wait(&self.stream, libc::POLLIN, deadline)?;
            match recv_with_fds(self.stream.as_raw_fd(), &mut buf) {
                Ok((0, _)) => {
                    return Err(WireError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection was closed",
                    )))
                }
                Ok((n, fds)) => {
                    self.input.extend_from_slice(&buf[..n]);
                    self.fds.extend(fds);
                    if self.fds.len() > MAX_FDS {
                        return Err(bad("too many descriptors"));
                    }
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One SASL line, with its CR LF.
    fn line(&mut self, deadline: Instant) -> Result<String, WireError> {
        loop {
            if let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.input.drain(..end + 2).collect();
                return String::from_utf8(line).map_err(|_| bad("SASL line not ASCII"));
            }
            if self.input.len() > 4096 {
                return Err(bad("SASL line too long"));
            }
            self.fill(deadline)?;
        }
    }

    fn message(&mut self, deadline: Instant) -> Result<Incoming, WireError> {
        while self.input.len() < 16 {
            self.fill(deadline)?;
        }
        let len = message_length(&self.input[..16], MAX_MESSAGE)?;
        while self.input.len() < len {
            self.fill(deadline)?;
        }
        let bytes: Vec<u8> = self.input.drain(..len).collect();
        // Descriptors come with the message's first bytes; a client reads
        // one reply at a time, so every one pending belongs to this one.
        let fds: Vec<Arc<OwnedFd>> = self.fds.drain(..).map(Arc::new).collect();
        decode(&bytes, &fds)
    }
}

/// Waits until `stream` is ready for `events`, or the deadline passes.
fn wait(stream: &UnixStream, events: libc::c_short, deadline: Instant) -> Result<(), WireError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::Timeout);
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the call's duration.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
    }
}

/// One sendmsg(2), the descriptors (if any) with SCM_RIGHTS.
fn send_with_fds(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let fds_len = std::mem::size_of_val(fds);
    let fds_len32 = u32::try_from(fds_len).map_err(|_| io::Error::other("too many fds"))?;
    let space = if fds.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE only computes a size.
        unsafe { libc::CMSG_SPACE(fds_len32) as usize }
    };
    // u64 elements: the buffer is aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; zero is a valid value of each field.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if space > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` writable bytes, enough for
        // one cmsghdr with `fds_len` bytes of data (CMSG_SPACE), so
        // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for the fds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fds_len32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fds_len,
            );
        }
    }
    // SAFETY: `msg` points at live buffers (iov, control) for the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(n).map_err(|_| io::Error::other("sendmsg"))
}

/// One recvmsg(2): the bytes, and the descriptors that came with them
/// (close-on-exec, owned from here on).
fn recv_with_fds(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let max = u32::try_from(MAX_FDS * std::mem::size_of::<RawFd>()).unwrap_or(64);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(max) as usize };
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; zero is a valid value of each field.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at live, writable buffers for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // cmsghdrs; the CMSG_* walk stays within them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    // The kernel just installed `raw` for this message:
                    // nothing else owns it.
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were cut off",
        ));
    }
    Ok((usize::try_from(n).unwrap_or(0), fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_api::wire::{decode, encode_return, message_length, MAX_MESSAGE};

    #[test]
    fn a_call_and_its_reply_over_a_socket_pair() {
        let (client, server) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let peer = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = server;
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            // SASL: the three commands, pipelined.
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if got.windows(7).any(|w| w == b"BEGIN\r\n") {
                    break;
                }
            }
            assert!(got.starts_with(b"\0AUTH EXTERNAL "));
            s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\nAGREE_UNIX_FD\r\n")
                .unwrap();
            let at = got.windows(7).position(|w| w == b"BEGIN\r\n").unwrap() + 7;
            got.drain(..at);
            // The call.
            while got.len() < 16 || got.len() < message_length(&got[..16], MAX_MESSAGE).unwrap() {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            let call = decode(&got, &[]).unwrap();
            assert_eq!(call.body[0].str(), Some("ping"));
            // A signal first, then the reply to serial 1.
            let (reply, _) = encode_return(9, 1, &[Value::Str("pong".into())]).unwrap();
            s.write_all(&reply).unwrap();
        });
        let mut c = Conn::open(client, deadline).unwrap();
        let r = c
            .call(
                &Call {
                    destination: None,
                    path: "/",
                    interface: "i.I",
                    member: "Ping",
                    args: &[Value::Str("ping".into())],
                },
                deadline,
            )
            .unwrap();
        assert_eq!(r[0].str(), Some("pong"));
        peer.join().unwrap();
    }

    /// The SASL commands and the first call go out together: a peer that
    /// answers nothing until it has the whole call still gets it.
    #[test]
    fn the_first_call_goes_out_with_the_authentication() {
        let (client, server) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let peer = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = server;
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            let complete = |got: &[u8]| {
                let Some(at) = got.windows(7).position(|w| w == b"BEGIN\r\n") else {
                    return false;
                };
                let call = &got[at + 7..];
                call.len() >= 16 && call.len() >= message_length(&call[..16], MAX_MESSAGE).unwrap()
            };
            while !complete(&got) {
                let n = s
                    .read(&mut buf)
                    .expect("the call came with the SASL commands");
                assert!(n > 0, "closed before the call");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\nAGREE_UNIX_FD\r\n")
                .unwrap();
            let (reply, _) = encode_return(9, 1, &[Value::Str("pong".into())]).unwrap();
            s.write_all(&reply).unwrap();
        });
        let mut c = Conn::new(client);
        let r = c.call(
            &Call {
                destination: None,
                path: "/",
                interface: "i.I",
                member: "Ping",
                args: &[],
            },
            deadline,
        );
        peer.join().unwrap();
        assert_eq!(r.unwrap()[0].str(), Some("pong"));
    }

    #[test]
    fn a_refused_authentication_is_no_reply() {
        let (client, server) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let peer = std::thread::spawn(move || {
            use std::io::Write;
            let mut s = server;
            // A reply that would do, after a refusal: never read as one.
            s.write_all(b"REJECTED EXTERNAL\r\n").unwrap();
            let (reply, _) = encode_return(9, 1, &[Value::Str("pong".into())]).unwrap();
            s.write_all(&reply).unwrap();
            s
        });
        let mut c = Conn::new(client);
        let r = c.call(
            &Call {
                destination: None,
                path: "/",
                interface: "i.I",
                member: "Ping",
                args: &[],
            },
            deadline,
        );
        drop(peer.join().unwrap());
        assert!(
            matches!(&r, Err(WireError::Protocol(m)) if m.contains("authentication refused")),
            "{r:?}"
        );
    }

    #[test]
    fn descriptors_pass_with_scm_rights() {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let sent = send_with_fds(a.as_raw_fd(), b"x", &[file.as_raw_fd()]).unwrap();
        assert_eq!(sent, 1);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_with_fds(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len()), (1, 1));
        let got = std::fs::File::from(fds.into_iter().next().unwrap());
        assert_eq!(
            got.metadata().unwrap().ino(),
            file.metadata().unwrap().ino()
        );
        assert_ne!(got.as_raw_fd(), file.as_raw_fd(), "a new descriptor");
    }

    #[test]
    fn a_silent_peer_is_a_timeout() {
        let (client, _server) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let r = Conn::open(client, start + std::time::Duration::from_millis(200));
        assert!(matches!(r, Err(WireError::Timeout)), "{:?}", r.err());
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
