//! The D-Bus wire protocol, as much as the module needs, on a blocking
//! unix socket: SASL EXTERNAL, method calls and their replies, values of
//! the basic types, arrays, structs, dict entries, variants, and unix
//! descriptors (`h`, passed with SCM_RIGHTS). No runtime and no thread:
//! every wait is a poll(2) bounded by the caller's deadline.
//!
//! A new Login method is a [`Conn::call`] with its arguments as
//! [`Value`]s and its reply read from the returned values.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

/// The longest message the module accepts from mfad or the bus; replies
/// are a few strings.
const MAX_MESSAGE: usize = 1 << 20;
/// Descriptors taken with one read; more are dropped (closed) and an error.
const MAX_FDS: usize = 16;
/// Containers nested deeper than this are refused (the spec's limit is 64).
const MAX_DEPTH: u32 = 32;

/// One D-Bus value.
#[derive(Debug, Clone)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// `h`: sent with SCM_RIGHTS; the caller keeps its own descriptor.
    Fd(Arc<OwnedFd>),
    /// `ay`, the common case of an array.
    Bytes(Vec<u8>),
    /// `a` + the element signature, and the elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    /// `{kv}`, inside an array only.
    DictEntry(Box<Value>, Box<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The value's type signature.
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Fd(_) => "h".into(),
            Value::Bytes(_) => "ay".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }

    pub fn i64(&self) -> Option<i64> {
        match self {
            Value::I64(n) => Some(*n),
            _ => None,
        }
    }

    /// An `as`: its strings.
    pub fn strs(&self) -> Option<Vec<String>> {
        match self {
            Value::Array(elem, items) if elem == "s" => {
                items.iter().map(|v| v.str().map(str::to_string)).collect()
            }
            _ => None,
        }
    }
}

/// What went wrong on the wire.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The deadline passed.
    Timeout,
    /// The peer broke the protocol (a bad message, a refused handshake).
    Protocol(String),
    /// An error reply: its name and message.
    Remote {
        name: String,
        message: String,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Timeout => write!(f, "timed out"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::Remote { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

fn bad(m: impl Into<String>) -> WireError {
    WireError::Protocol(m.into())
}

// ----- marshalling -----------------------------------------------------------

fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// Little-endian, offsets from the message's start (or from an 8-aligned
/// point of it, such as the body).
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
    fds: Vec<Arc<OwnedFd>>,
}

impl Enc {
    fn pad(&mut self, a: usize) {
        while !self.buf.len().is_multiple_of(a) {
            self.buf.push(0);
        }
    }

    fn u32_at(&mut self, at: usize, n: u32) {
        self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> Result<(), WireError> {
        if s.contains('\0') {
            return Err(bad("a string holds a NUL byte"));
        }
        self.pad(4);
        let len = u32::try_from(s.len()).map_err(|_| bad("string too long"))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn sig(&mut self, s: &str) -> Result<(), WireError> {
        let len = u8::try_from(s.len()).map_err(|_| bad("signature too long"))?;
        self.buf.push(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn put(&mut self, v: &Value) -> Result<(), WireError> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.fixed(4, &u32::from(*b).to_le_bytes()),
            Value::I16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::U16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::I32(n) => self.fixed(4, &n.to_le_bytes()),
            Value::U32(n) => self.fixed(4, &n.to_le_bytes()),
            Value::I64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::U64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::Double(d) => self.fixed(8, &d.to_le_bytes()),
            Value::Str(s) | Value::Path(s) => self.string(s)?,
            Value::Sig(s) => self.sig(s)?,
            Value::Fd(fd) => {
                let index = u32::try_from(self.fds.len()).map_err(|_| bad("too many fds"))?;
                self.fds.push(fd.clone());
                self.fixed(4, &index.to_le_bytes());
            }
            Value::Bytes(bytes) => {
                self.pad(4);
                let len = u32::try_from(bytes.len()).map_err(|_| bad("array too long"))?;
                self.buf.extend_from_slice(&len.to_le_bytes());
                self.buf.extend_from_slice(bytes);
            }
            Value::Array(elem, items) => {
                let code = *elem
                    .as_bytes()
                    .first()
                    .ok_or_else(|| bad("empty signature"))?;
                self.pad(4);
                let at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                self.pad(alignment(code));
                let start = self.buf.len();
                for item in items {
                    if item.signature() != *elem {
                        return Err(bad("array elements of another type"));
                    }
                    self.put(item)?;
                }
                let len = u32::try_from(self.buf.len() - start).map_err(|_| bad("too long"))?;
                self.u32_at(at, len);
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f)?;
                }
            }
            Value::DictEntry(k, v) => {
                self.pad(8);
                self.put(k)?;
                self.put(v)?;
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature())?;
                self.put(inner)?;
            }
        }
        Ok(())
    }

    fn fixed(&mut self, a: usize, bytes: &[u8]) {
        self.pad(a);
        self.buf.extend_from_slice(bytes);
    }
}

/// The length of the first complete type in `sig`.
fn first_type(sig: &[u8], depth: u32) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(bad("signature nested too deep"));
    }
    match sig.first() {
        None => Err(bad("signature ends early")),
        Some(b'a') => Ok(1 + first_type(&sig[1..], depth + 1)?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut at = 1;
            while sig.get(at) != Some(&close) {
                if at >= sig.len() {
                    return Err(bad("signature ends early"));
                }
                at += first_type(&sig[at..], depth + 1)?;
            }
            Ok(at + 1)
        }
        Some(
            b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
            | b'h' | b'v',
        ) => Ok(1),
        Some(c) => Err(bad(format!("unknown type code {:?}", char::from(*c)))),
    }
}

/// Reads values from a whole message (`buf`), from `pos`.
struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
    fds: &'a [Arc<OwnedFd>],
}

impl Dec<'_> {
    fn pad(&mut self, a: usize) -> Result<(), WireError> {
        while !self.pos.is_multiple_of(a) {
            if self.take(1)?[0] != 0 {
                return Err(bad("non-zero padding"));
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| bad("message ends early"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.pad(N)?;
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        if self.big {
            b.reverse();
        }
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = usize::try_from(self.u32()?).map_err(|_| bad("length"))?;
        let bytes = self.take(len)?.to_vec();
        if self.take(1)? != [0] {
            return Err(bad("string without its NUL"));
        }
        String::from_utf8(bytes).map_err(|_| bad("string not UTF-8"))
    }

    fn sig(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.take(1)?[0]);
        let bytes = self.take(len)?.to_vec();
        if self.take(1)? != [0] {
            return Err(bad("signature without its NUL"));
        }
        String::from_utf8(bytes).map_err(|_| bad("signature not ASCII"))
    }

    /// All the values of signature `sig`.
    fn values(&mut self, sig: &str, depth: u32) -> Result<Vec<Value>, WireError> {
        let mut out = Vec::new();
        let mut rest = sig.as_bytes();
        while !rest.is_empty() {
            let n = first_type(rest, depth)?;
            out.push(self.value(&rest[..n], depth)?);
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// One value of the complete type `t`.
    fn value(&mut self, t: &[u8], depth: u32) -> Result<Value, WireError> {
        if depth > MAX_DEPTH {
            return Err(bad("value nested too deep"));
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(match t[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(bad("a boolean that is neither 0 nor 1")),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed::<2>()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed::<2>()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed::<4>()?)),
            b'u' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed::<8>()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed::<8>()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed::<8>()?)),
            b's' => Value::Str(self.string()?),
            b'o' => Value::Path(self.string()?),
            b'g' => Value::Sig(self.sig()?),
            b'h' => {
                let i = usize::try_from(self.u32()?).map_err(|_| bad("fd index"))?;
                Value::Fd(self.fds.get(i).cloned().ok_or_else(|| bad("missing fd"))?)
            }
            b'v' => {
                let sig = self.sig()?;
                if first_type(sig.as_bytes(), depth + 1)? != sig.len() {
                    return Err(bad("a variant of more than one type"));
                }
                Value::Variant(Box::new(self.value(sig.as_bytes(), depth + 1)?))
            }
            b'a' => {
                let len = usize::try_from(self.u32()?).map_err(|_| bad("length"))?;
                if len > MAX_MESSAGE {
                    return Err(bad("array too long"));
                }
                let elem = &t[1..];
                self.pad(alignment(elem[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return Err(bad("message ends early"));
                }
                if elem == b"y" {
                    return Ok(Value::Bytes(self.take(len)?.to_vec()));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                if self.pos != end {
                    return Err(bad("array length mismatch"));
                }
                Value::Array(text(elem), items)
            }
            b'(' => {
                self.pad(8)?;
                let inner = std::str::from_utf8(&t[1..t.len() - 1]).map_err(|_| bad("sig"))?;
                Value::Struct(self.values(inner, depth + 1)?)
            }
            b'{' => {
                self.pad(8)?;
                let inner = std::str::from_utf8(&t[1..t.len() - 1]).map_err(|_| bad("sig"))?;
                let mut kv = self.values(inner, depth + 1)?.into_iter();
                match (kv.next(), kv.next(), kv.next()) {
                    (Some(k), Some(v), None) => Value::DictEntry(Box::new(k), Box::new(v)),
                    _ => return Err(bad("a dict entry is not a key and a value")),
                }
            }
            c => return Err(bad(format!("unknown type code {:?}", char::from(c)))),
        })
    }
}

// ----- messages --------------------------------------------------------------

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

/// A method call to send.
pub struct Call<'a> {
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: &'a [Value],
}

/// `call` as bytes, with the descriptors it passes.
fn encode_call(serial: u32, call: &Call<'_>) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), WireError> {
    let mut body = Enc::default();
    for a in call.args {
        body.put(a)?;
    }
    let signature: String = call.args.iter().map(Value::signature).collect();
    let field =
        |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
    let mut fields = vec![
        field(1, Value::Path(call.path.into())),
        field(2, Value::Str(call.interface.into())),
        field(3, Value::Str(call.member.into())),
    ];
    if let Some(d) = call.destination {
        fields.push(field(6, Value::Str(d.into())));
    }
    if !signature.is_empty() {
        fields.push(field(8, Value::Sig(signature)));
    }
    if !body.fds.is_empty() {
        let n = u32::try_from(body.fds.len()).map_err(|_| bad("too many fds"))?;
        fields.push(field(9, Value::U32(n)));
    }
    let body_len = u32::try_from(body.buf.len()).map_err(|_| bad("body too long"))?;
    let mut msg = Enc::default();
    msg.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    msg.buf.extend_from_slice(&body_len.to_le_bytes());
    msg.buf.extend_from_slice(&serial.to_le_bytes());
    msg.put(&Value::Array("(yv)".into(), fields))?;
    msg.pad(8);
    msg.buf.extend_from_slice(&body.buf);
    if msg.buf.len() > MAX_MESSAGE {
        return Err(bad("message too long"));
    }
    Ok((msg.buf, body.fds))
}

/// A received message, as far as a client looks at it.
struct Incoming {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    body: Vec<Value>,
}

/// The length of the message whose first 16 bytes are `h`.
fn message_length(h: &[u8]) -> Result<usize, WireError> {
    let big = match h[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err(bad("not a D-Bus message")),
    };
    let word = |at: usize| {
        let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        let n = if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    let fields = word(12);
    let body = word(4);
    let header = 16usize.saturating_add(fields).div_ceil(8).saturating_mul(8);
    let total = header.saturating_add(body);
    if total > MAX_MESSAGE {
        return Err(bad("message too long"));
    }
    Ok(total)
}

fn decode(buf: &[u8], fds: &[Arc<OwnedFd>]) -> Result<Incoming, WireError> {
    let big = buf[0] == b'B';
    let mut d = Dec {
        buf,
        pos: 12,
        big,
        fds,
    };
    let fields = d.value(b"a(yv)", 0)?;
    let mut msg = Incoming {
        kind: buf[1],
        reply_serial: None,
        error_name: None,
        body: Vec::new(),
    };
    let mut signature = String::new();
    if let Value::Array(_, fields) = fields {
        for f in fields {
            let Value::Struct(parts) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (parts.first(), parts.get(1))
            else {
                continue;
            };
            match (code, v.as_ref()) {
                (4, Value::Str(name)) => msg.error_name = Some(name.clone()),
                (5, Value::U32(n)) => msg.reply_serial = Some(*n),
                (8, Value::Sig(s)) => signature = s.clone(),
                _ => {}
            }
        }
    }
    d.pad(8)?;
    msg.body = d.values(&signature, 0)?;
    if d.pos != buf.len() {
        return Err(bad("body longer than its signature"));
    }
    Ok(msg)
}

// ----- the connection --------------------------------------------------------

/// A blocking D-Bus connection over a unix socket, authenticated.
pub struct Conn {
    stream: UnixStream,
    serial: u32,
    input: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Conn {
    /// Authenticates on `stream` (SASL EXTERNAL as this process's UID, unix
    /// descriptors negotiated) by `deadline`.
    pub fn open(stream: UnixStream, deadline: Instant) -> Result<Conn, WireError> {
        stream.set_nonblocking(true)?;
        let mut c = Conn {
            stream,
            serial: 0,
            input: Vec::new(),
            fds: Vec::new(),
        };
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        // All three commands at once, as sd-bus does: the servers (both
        // dbus-daemon and mfad's) read them in turn, and two round trips
        // per connection are saved. Whatever they answer, the module
        // refuses to go on unless it was OK and AGREE_UNIX_FD.
        c.send(
            format!("\0AUTH EXTERNAL {hex}\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n").as_bytes(),
            &[],
            deadline,
        )?;
        let ok = c.line(deadline)?;
        if !ok.starts_with("OK ") {
            return Err(bad(format!("authentication refused: {}", ok.trim_end())));
        }
        let agreed = c.line(deadline)?;
        if !agreed.starts_with("AGREE_UNIX_FD") {
            return Err(bad("the peer does not pass descriptors"));
        }
        Ok(c)
    }

    /// Calls a method and waits for its reply by `deadline`: the reply's
    /// values, or its error as [`WireError::Remote`].
    pub fn call(&mut self, call: &Call<'_>, deadline: Instant) -> Result<Vec<Value>, WireError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let (bytes, fds) = encode_call(serial, call)?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.send(&bytes, &raw, deadline)?;
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

    /// Reads more input, waiting up to `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), WireError> {
        let mut buf = [0u8; 4096];
        loop {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(&self.stream, libc::POLLIN, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
        let len = message_length(&self.input[..16])?;
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

    fn round_trip(values: Vec<Value>) -> Vec<Value> {
        let call = Call {
            destination: Some("org.example"),
            path: "/x",
            interface: "org.example.I",
            member: "M",
            args: &values,
        };
        let (bytes, fds) = encode_call(7, &call).unwrap();
        assert_eq!(message_length(&bytes[..16]).unwrap(), bytes.len());
        let msg = decode(&bytes, &fds).unwrap();
        assert_eq!(msg.kind, METHOD_CALL);
        msg.body
    }

    #[test]
    fn values_survive_a_round_trip() {
        let values = vec![
            Value::Str("alice".into()),
            Value::Bytes(b"123456".to_vec()),
            Value::Byte(7),
            Value::I64(-5),
            Value::Bool(true),
            Value::U16(9),
            Value::Array(
                "s".into(),
                vec![Value::Str("a".into()), Value::Str("bc".into())],
            ),
            Value::Array("s".into(), vec![]),
            Value::Struct(vec![
                Value::U32(1),
                Value::Double(2.5),
                Value::Path("/o".into()),
            ]),
            Value::Array(
                "{sv}".into(),
                vec![Value::DictEntry(
                    Box::new(Value::Str("k".into())),
                    Box::new(Value::Variant(Box::new(Value::I32(-1)))),
                )],
            ),
            Value::Sig("a(sx)".into()),
        ];
        let sig: String = values.iter().map(Value::signature).collect();
        let back = round_trip(values);
        let back_sig: String = back.iter().map(Value::signature).collect();
        assert_eq!(sig, back_sig);
        assert_eq!(back[0].str(), Some("alice"));
        assert!(matches!(&back[1], Value::Bytes(b) if b == b"123456"));
        assert!(matches!(back[3], Value::I64(-5)));
        assert!(matches!(&back[6], Value::Array(_, v) if v.len() == 2 && v[1].str() == Some("bc")));
        assert!(
            matches!(&back[8], Value::Struct(f) if matches!(f[1], Value::Double(d) if d == 2.5))
        );
    }

    #[test]
    fn a_descriptor_travels_by_index() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = Arc::new(OwnedFd::from(file));
        let back = round_trip(vec![Value::Str("x".into()), Value::Fd(fd.clone())]);
        assert!(matches!(&back[1], Value::Fd(f) if f.as_raw_fd() == fd.as_raw_fd()));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (bytes, fds) = encode_call(
            1,
            &Call {
                destination: None,
                path: "/x",
                interface: "i.I",
                member: "M",
                args: &[
                    Value::Str("hello".into()),
                    Value::Array("u".into(), vec![Value::U32(3)]),
                ],
            },
        )
        .unwrap();
        for cut in 16..bytes.len() {
            let _ = decode(&bytes[..cut], &fds);
        }
        let mut flipped = bytes.clone();
        for i in 16..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(&flipped, &fds);
            flipped[i] ^= 0xff;
        }
        assert!(message_length(b"xxxxxxxxxxxxxxxx").is_err());
        let mut huge = bytes[..16].to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message_length(&huge).is_err());
        assert!(first_type(b"a", 0).is_err());
        assert!(first_type(b"(ss", 0).is_err());
        assert!(first_type(&[b'a'; 100], 0).is_err());
        assert!(Enc::default().put(&Value::Str("a\0b".into())).is_err());
    }

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
            while got.len() < 16 || got.len() < message_length(&got[..16]).unwrap() {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            let call = decode(&got, &[]).unwrap();
            assert_eq!(call.body[0].str(), Some("ping"));
            // A signal first, then the reply to serial 1.
            let mut reply = Enc::default();
            reply.buf.extend_from_slice(&[b'l', METHOD_RETURN, 0, 1]);
            let mut body = Enc::default();
            body.put(&Value::Str("pong".into())).unwrap();
            reply
                .buf
                .extend_from_slice(&u32::try_from(body.buf.len()).unwrap().to_le_bytes());
            reply.buf.extend_from_slice(&9u32.to_le_bytes());
            let field = |code: u8, v: Value| {
                Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
            };
            reply
                .put(&Value::Array(
                    "(yv)".into(),
                    vec![field(5, Value::U32(1)), field(8, Value::Sig("s".into()))],
                ))
                .unwrap();
            reply.pad(8);
            reply.buf.extend_from_slice(&body.buf);
            s.write_all(&reply.buf).unwrap();
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
