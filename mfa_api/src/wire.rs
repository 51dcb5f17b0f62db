//! The D-Bus wire format, as much as mfa needs: values of the basic
//! types, arrays, structs, dict entries, variants and unix descriptors
//! (`h`, by index), and method calls, returns and errors. No I/O: pam_mfa's
//! blocking client and mfad's login socket server move the bytes and the
//! descriptors themselves.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The longest message the module accepts from mfad or the bus; replies
/// are a few strings. mfad's login socket has its own, smaller cap.
pub const MAX_MESSAGE: usize = 1 << 20;
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
            // An empty struct is not a D-Bus type; an array of them would
            // hold items of no size, and no length would ever end it.
            if sig.get(1) == Some(&close) {
                return Err(bad("empty struct or dict entry"));
            }
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
                    let before = self.pos;
                    items.push(self.value(elem, depth + 1)?);
                    if self.pos == before {
                        return Err(bad("array item of no size"));
                    }
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

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
/// The header flag of a call that wants no reply.
pub const NO_REPLY_EXPECTED: u8 = 1;

/// A method call to send.
pub struct Call<'a> {
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: &'a [Value],
}

fn field(code: u8, v: Value) -> Value {
    Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
}

/// `call` as bytes, with the descriptors it passes.
pub fn encode_call(
    serial: u32,
    call: &Call<'_>,
) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), WireError> {
    let mut fields = vec![
        field(1, Value::Path(call.path.into())),
        field(2, Value::Str(call.interface.into())),
        field(3, Value::Str(call.member.into())),
    ];
    if let Some(d) = call.destination {
        fields.push(field(6, Value::Str(d.into())));
    }
    encode(METHOD_CALL, serial, fields, call.args)
}

/// The return of the call numbered `reply_serial`, with `args`.
pub fn encode_return(
    serial: u32,
    reply_serial: u32,
    args: &[Value],
) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), WireError> {
    encode(
        METHOD_RETURN,
        serial,
        vec![field(5, Value::U32(reply_serial))],
        args,
    )
}

/// The error reply `name` (a D-Bus error name) to the call numbered
/// `reply_serial`, its one argument the message.
pub fn encode_error(
    serial: u32,
    reply_serial: u32,
    name: &str,
    message: &str,
) -> Result<Vec<u8>, WireError> {
    let fields = vec![
        field(4, Value::Str(name.into())),
        field(5, Value::U32(reply_serial)),
    ];
    encode(ERROR, serial, fields, &[Value::Str(message.into())]).map(|(bytes, _)| bytes)
}

/// A message of `kind` with header `fields` (the signature and the count
/// of descriptors are added from `args`).
fn encode(
    kind: u8,
    serial: u32,
    mut fields: Vec<Value>,
    args: &[Value],
) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), WireError> {
    let mut body = Enc::default();
    for a in args {
        body.put(a)?;
    }
    let signature: String = args.iter().map(Value::signature).collect();
    if !signature.is_empty() {
        fields.push(field(8, Value::Sig(signature)));
    }
    if !body.fds.is_empty() {
        let n = u32::try_from(body.fds.len()).map_err(|_| bad("too many fds"))?;
        fields.push(field(9, Value::U32(n)));
    }
    let body_len = u32::try_from(body.buf.len()).map_err(|_| bad("body too long"))?;
    let mut msg = Enc::default();
    msg.buf.extend_from_slice(&[b'l', kind, 0, 1]);
    msg.buf.extend_from_slice(&body_len.to_le_bytes());
    msg.buf.extend_from_slice(&serial.to_le_bytes());
    msg.put(&Value::Array("(yv)".into(), fields))?;
    msg.pad(8);
    // Grown before the body goes in, so that no copy of it (a code in
    // Answer) is left in a freed buffer; the body's own buffer is zeroed.
    msg.buf.reserve_exact(body.buf.len());
    msg.buf.extend_from_slice(&body.buf);
    body.buf.fill(0);
    std::hint::black_box(&body.buf);
    if msg.buf.len() > MAX_MESSAGE {
        return Err(bad("message too long"));
    }
    Ok((msg.buf, body.fds))
}

/// A received message: its header fields and its values.
#[derive(Debug, Default)]
pub struct Incoming {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    /// The body's signature ("" for none).
    pub signature: String,
    /// The descriptors the message says it carries.
    pub unix_fds: u32,
    pub body: Vec<Value>,
}

/// The length of the message whose first 16 bytes are `h`; longer than
/// `max` is an error, found before the rest is read.
pub fn message_length(h: &[u8], max: usize) -> Result<usize, WireError> {
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
    if total > max {
        return Err(bad("message too long"));
    }
    Ok(total)
}

/// The message `buf` (whole, as [`message_length`] measured it), with the
/// descriptors received since the previous one, first ones first: a
/// message may use as many of them as its header says it carries.
pub fn decode(buf: &[u8], fds: &[Arc<OwnedFd>]) -> Result<Incoming, WireError> {
    if buf.len() < 16 {
        return Err(bad("message ends early"));
    }
    let big = buf[0] == b'B';
    let mut d = Dec {
        buf,
        pos: 12,
        big,
        fds: &[],
    };
    let fields = d.value(b"a(yv)", 0)?;
    let mut serial = [buf[8], buf[9], buf[10], buf[11]];
    if big {
        serial.reverse();
    }
    let mut msg = Incoming {
        kind: buf[1],
        flags: buf[2],
        serial: u32::from_le_bytes(serial),
        ..Incoming::default()
    };
    if let Value::Array(_, fields) = fields {
        for f in fields {
            let Value::Struct(parts) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (parts.first(), parts.get(1))
            else {
                continue;
            };
            match (code, v.as_ref()) {
                (1, Value::Path(p)) => msg.path = Some(p.clone()),
                (2, Value::Str(i)) => msg.interface = Some(i.clone()),
                (3, Value::Str(m)) => msg.member = Some(m.clone()),
                (4, Value::Str(name)) => msg.error_name = Some(name.clone()),
                (5, Value::U32(n)) => msg.reply_serial = Some(*n),
                (8, Value::Sig(s)) => msg.signature = s.clone(),
                (9, Value::U32(n)) => msg.unix_fds = *n,
                _ => {}
            }
        }
    }
    let carried = usize::try_from(msg.unix_fds).map_err(|_| bad("fd count"))?;
    d.fds = fds
        .get(..carried)
        .ok_or_else(|| bad("fewer descriptors than the message carries"))?;
    d.pad(8)?;
    let signature = msg.signature.clone();
    msg.body = d.values(&signature, 0)?;
    if d.pos != buf.len() {
        return Err(bad("body longer than its signature"));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn round_trip(values: Vec<Value>) -> Vec<Value> {
        let call = Call {
            destination: Some("org.example"),
            path: "/x",
            interface: "org.example.I",
            member: "M",
            args: &values,
        };
        let (bytes, fds) = encode_call(7, &call).unwrap();
        assert_eq!(
            message_length(&bytes[..16], MAX_MESSAGE).unwrap(),
            bytes.len()
        );
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
        assert!(message_length(b"xxxxxxxxxxxxxxxx", MAX_MESSAGE).is_err());
        let mut huge = bytes[..16].to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(message_length(&huge, MAX_MESSAGE).is_err());
        assert!(first_type(b"a", 0).is_err());
        assert!(first_type(b"(ss", 0).is_err());
        assert!(first_type(b"()", 0).is_err());
        assert!(first_type(b"a{}", 0).is_err());
        // An array of empty structs, 8 bytes long: an error, not a loop
        // that never ends (any local user can send it to mfad).
        let mut d = Dec {
            buf: &[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            pos: 0,
            big: false,
            fds: &[],
        };
        assert!(d.value(b"a()", 0).is_err());
        assert!(first_type(&[b'a'; 100], 0).is_err());
        assert!(Enc::default().put(&Value::Str("a\0b".into())).is_err());
    }

    #[test]
    fn replies_carry_their_serial_and_error_name() {
        let (bytes, _) = encode_return(9, 4, &[Value::Str("ok".into())]).unwrap();
        let msg = decode(&bytes, &[]).unwrap();
        assert_eq!(
            (msg.kind, msg.serial, msg.reply_serial),
            (METHOD_RETURN, 9, Some(4))
        );
        assert_eq!(msg.body[0].str(), Some("ok"));
        let bytes = encode_error(10, 5, "org.example.Error.No", "no").unwrap();
        let msg = decode(&bytes, &[]).unwrap();
        assert_eq!((msg.kind, msg.reply_serial), (ERROR, Some(5)));
        assert_eq!(msg.error_name.as_deref(), Some("org.example.Error.No"));
        assert_eq!(
            (msg.signature.as_str(), msg.body[0].str()),
            ("s", Some("no"))
        );
    }

    #[test]
    fn a_call_names_its_target_and_counts_its_descriptors() {
        let fd = Arc::new(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()));
        let (bytes, fds) = encode_call(
            3,
            &Call {
                destination: None,
                path: "/p",
                interface: "i.I",
                member: "M",
                args: &[Value::Fd(fd)],
            },
        )
        .unwrap();
        let msg = decode(&bytes, &fds).unwrap();
        assert_eq!(msg.path.as_deref(), Some("/p"));
        assert_eq!(msg.interface.as_deref(), Some("i.I"));
        assert_eq!(msg.member.as_deref(), Some("M"));
        assert_eq!((msg.serial, msg.unix_fds, msg.flags), (3, 1, 0));
        // The descriptor it says it carries did not come: an error.
        assert!(decode(&bytes, &[]).is_err());
    }
}
