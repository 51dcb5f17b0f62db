//! The audit log: syslog (AUTHPRIV) or stderr. One line per event,
//! `EVENT key=value ...`; never a code or a secret, which is why callers pass
//! only the fields below and never free text from a request.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::LogTarget;

/// The syslog socket.
const DEV_LOG: &str = "/dev/log";
/// LOG_AUTHPRIV, shifted into the priority.
const AUTHPRIV: u8 = 10 << 3;
/// How long a line may wait for a stuck syslog daemon before it goes to
/// stderr instead: mfad may block, but never for ever.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

enum Sink {
    Syslog(Syslog),
    Stderr,
}

/// mfad's own syslog(3): lines as RFC 3164 has them,
/// `<PRI>Mmm dd hh:mm:ss mfad[PID]: line`, to the daemon's socket.
struct Syslog {
    path: PathBuf,
    /// None after a failed reconnection; the next line tries again.
    conn: Option<Conn>,
    pid: u32,
    /// The line being written, kept between lines so that writing one
    /// allocates nothing once it has grown.
    buf: String,
    /// Where the message starts in `buf`, after the tag.
    message_start: usize,
}

/// A connection to the syslog daemon: datagrams, or (a daemon that listens
/// on a stream socket) NUL-terminated lines.
enum Conn {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

impl Conn {
    /// Connects to the syslog socket at `path`, with [`SEND_TIMEOUT`].
    fn open(path: &Path) -> io::Result<Conn> {
        let sock = UnixDatagram::unbound()?;
        match sock.connect(path) {
            Ok(()) => {
                sock.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(Conn::Datagram(sock))
            }
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                let stream = UnixStream::connect(path)?;
                stream.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(Conn::Stream(stream))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `line`, which ends with a NUL: a stream sends it whole, a
    /// datagram without the NUL.
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Conn::Datagram(s) => {
                let datagram = line.strip_suffix(b"\0").unwrap_or(line);
                let sent = s.send(datagram)?;
                if sent == datagram.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::WriteZero, "datagram cut"))
                }
            }
            Conn::Stream(s) => s.write_all(line),
        }
    }
}

impl Syslog {
    fn open(path: &Path) -> io::Result<Syslog> {
        Ok(Syslog {
            path: path.to_path_buf(),
            conn: Some(Conn::open(path)?),
            pid: std::process::id(),
            buf: String::new(),
            message_start: 0,
        })
    }

    /// Starts a line in `buf`: the priority, the timestamp and the tag.
    fn begin(&mut self, level: Level) {
        let severity = match level {
            Level::Info => 6,
            Level::Warning => 4,
        };
        self.buf.clear();
        // Writing to a String does not fail.
        let _ = write!(
            self.buf,
            "<{}>{} mfad[{}]: ",
            AUTHPRIV | severity,
            mfa_api::syslog_timestamp(SystemTime::now()),
            self.pid
        );
        self.message_start = self.buf.len();
    }

    /// Sends the line in `buf`; when that fails (syslogd restarted),
    /// connects again once and resends. Returns whether it went out.
    fn send(&mut self) -> bool {
        self.buf.push('\0');
        let line = self.buf.as_bytes();
        let first = match &mut self.conn {
            Some(conn) => conn.send(line),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        let Err(e) = first else {
            return true;
        };
        self.conn = None;
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            // A stuck daemon: a new connection would wait as long again.
            return false;
        }
        match Conn::open(&self.path) {
            Ok(mut conn) => {
                let sent = conn.send(line).is_ok();
                if sent {
                    self.conn = Some(conn);
                }
                sent
            }
            Err(_) => false,
        }
    }

    /// The message of the line in `buf`, after the tag, without the NUL.
    fn message(&self) -> &str {
        let end = self.buf.len() - usize::from(self.buf.ends_with('\0'));
        self.buf.get(self.message_start..end).unwrap_or_default()
    }
}

pub struct Audit {
    sink: Mutex<Sink>,
    /// Set when hosts share a store: every line ends with `host=NAME`, so a
    /// fleet's logs gathered in one place say where each event happened.
    host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
}

/// A value as it goes into a log line: see [`mfa_api::log_field`] (the
/// rule pam_mfa uses too).
pub fn field(value: &str) -> String {
    mfa_api::log_field(value)
}

impl Audit {
    pub fn new(target: LogTarget) -> Audit {
        Audit::logging_to(target, Path::new(DEV_LOG))
    }

    /// The same, with the syslog socket at `path` (tests).
    fn logging_to(target: LogTarget, path: &Path) -> Audit {
        let use_syslog = match target {
            LogTarget::Stderr => false,
            LogTarget::Syslog => true,
            LogTarget::Auto => path.exists(),
        };
        let sink = if use_syslog {
            match Syslog::open(path) {
                Ok(syslog) => Sink::Syslog(syslog),
                Err(e) => {
                    eprintln!("mfad: syslog unavailable ({e}); logging to stderr");
                    Sink::Stderr
                }
            }
        } else {
            Sink::Stderr
        };
        Audit {
            sink: Mutex::new(sink),
            host: None,
        }
    }

    /// Names `host` on every line from now on.
    pub fn naming_host(mut self, host: &str) -> Audit {
        self.host = Some(host.to_owned());
        self
    }

    /// Logs `event` with `fields`, each value escaped by [`field`].
    pub fn event(&self, level: Level, event: &str, fields: &[(&str, &str)]) {
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &mut *sink {
            Sink::Syslog(syslog) => {
                syslog.begin(level);
                self.write_message(&mut syslog.buf, event, fields);
                if !syslog.send() {
                    // syslogd went away: keep the record on stderr rather
                    // than lose it.
                    eprintln!("mfad: {}", syslog.message());
                }
            }
            Sink::Stderr => {
                let mut line = String::new();
                self.write_message(&mut line, event, fields);
                eprintln!("mfad: {line}");
            }
        }
    }

    /// `EVENT key=value ...` (and `host=NAME`) at the end of `out`.
    fn write_message(&self, out: &mut String, event: &str, fields: &[(&str, &str)]) {
        out.push_str(event);
        for (k, v) in fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            out.push_str(&field(v));
        }
        if let Some(host) = &self.host {
            out.push_str(" host=");
            out.push_str(&field(host));
        }
    }

    pub fn info(&self, event: &str, fields: &[(&str, &str)]) {
        self.event(Level::Info, event, fields);
    }

    pub fn warn(&self, event: &str, fields: &[(&str, &str)]) {
        self.event(Level::Warning, event, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syslog daemon's socket in a temp dir.
    fn daemon(dir: &Path) -> UnixDatagram {
        let server = UnixDatagram::bind(dir.join("log")).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        server
    }

    fn recv(server: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        let n = server.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn nothing_waits(server: &UnixDatagram) {
        server.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1024];
        let got = server.recv(&mut buf);
        assert!(got.is_err(), "{got:?}");
        server.set_nonblocking(false).unwrap();
    }

    /// `<PRI>Mmm dd hh:mm:ss mfad[PID]: ` and what follows it.
    fn message(line: &str, pri: &str) -> String {
        let rest = line.strip_prefix(pri).unwrap_or_else(|| panic!("{line}"));
        let (stamp, rest) = rest.split_at(15);
        let b = stamp.as_bytes();
        assert!(
            b[0].is_ascii_uppercase()
                && b[3] == b' '
                && b[6] == b' '
                && b[9] == b':'
                && b[12] == b':',
            "{line}"
        );
        let tag = format!(" mfad[{}]: ", std::process::id());
        rest.strip_prefix(&tag)
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned()
    }

    #[test]
    fn lines_go_out_as_syslog_3164_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let server = daemon(dir.path());
        let audit =
            Audit::logging_to(LogTarget::Syslog, &dir.path().join("log")).naming_host("web 1");
        audit.info("verify ok", &[("user", "alice"), ("service", "sshd")]);
        audit.warn("verify failed", &[("user", "a b\nverify ok")]);
        // LOG_AUTHPRIV | LOG_INFO = 86, | LOG_WARNING = 84.
        assert_eq!(
            message(&recv(&server), "<86>"),
            "verify ok user=alice service=sshd host=\"web 1\""
        );
        assert_eq!(
            message(&recv(&server), "<84>"),
            "verify failed user=\"a b\\nverify ok\" host=\"web 1\""
        );
        nothing_waits(&server);
    }

    #[test]
    fn auto_is_syslog_when_its_socket_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let audit = Audit::logging_to(LogTarget::Auto, &path);
        assert!(matches!(*audit.sink.lock().unwrap(), Sink::Stderr));
        let server = daemon(dir.path());
        let audit = Audit::logging_to(LogTarget::Auto, &path);
        assert!(matches!(*audit.sink.lock().unwrap(), Sink::Syslog(_)));
        audit.info("start", &[]);
        assert_eq!(message(&recv(&server), "<86>"), "start");
        // syslog asked for, none there: stderr.
        let audit = Audit::logging_to(LogTarget::Syslog, &dir.path().join("none"));
        assert!(matches!(*audit.sink.lock().unwrap(), Sink::Stderr));
    }

    #[test]
    fn a_restarted_syslogd_gets_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = daemon(dir.path());
        let audit = Audit::logging_to(LogTarget::Syslog, &path);
        audit.info("before", &[]);
        assert_eq!(message(&recv(&server), "<86>"), "before");
        // syslogd restarts: its old socket is gone, a new one is bound.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = daemon(dir.path());
        audit.warn("after", &[("user", "alice")]);
        assert_eq!(message(&recv(&server), "<84>"), "after user=alice");
        audit.info("again", &[]);
        assert_eq!(message(&recv(&server), "<86>"), "again");
        nothing_waits(&server);
    }

    #[test]
    fn a_syslogd_away_for_a_while_gets_the_lines_after_its_return() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = daemon(dir.path());
        let audit = Audit::logging_to(LogTarget::Syslog, &path);
        drop(server);
        std::fs::remove_file(&path).unwrap();
        // Nowhere to go: stderr (see the test below), and no panic.
        audit.info("while away", &[]);
        audit.info("still away", &[]);
        let server = daemon(dir.path());
        audit.info("back", &[]);
        assert_eq!(message(&recv(&server), "<86>"), "back");
        nothing_waits(&server);
    }

    /// Where a line goes when syslogd is gone and stays away: to stderr,
    /// seen by running this test again in a child process of its own
    /// (so that its stderr is not the test harness's capture).
    #[test]
    fn a_line_syslogd_cannot_take_goes_to_stderr() {
        const CHILD: &str = "MFAD_AUDIT_STDERR_CHILD";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        if let Some(child_dir) = std::env::var_os(CHILD) {
            let path = Path::new(&child_dir).join("log");
            let server = daemon(Path::new(&child_dir));
            let audit = Audit::logging_to(LogTarget::Syslog, &path);
            drop(server);
            std::fs::remove_file(&path).unwrap();
            audit.warn("verify ok", &[("user", "alice"), ("service", "sshd")]);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "audit::tests::a_line_syslogd_cannot_take_goes_to_stderr",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        assert_eq!(
            stderr.lines().collect::<Vec<_>>(),
            ["mfad: verify ok user=alice service=sshd"],
            "{stderr}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_stream_syslogd_gets_nul_terminated_lines() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let audit = Audit::logging_to(LogTarget::Syslog, &path);
        assert!(matches!(
            *audit.sink.lock().unwrap(),
            Sink::Syslog(Syslog {
                conn: Some(Conn::Stream(_)),
                ..
            })
        ));
        audit.info("one", &[]);
        audit.warn("two", &[("user", "bob")]);
        drop(audit);
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        let lines: Vec<&str> = got.split_terminator('\0').collect();
        assert_eq!(lines.len(), 2, "{got:?}");
        assert_eq!(message(lines[0], "<86>"), "one");
        assert_eq!(message(lines[1], "<84>"), "two user=bob");
    }

    #[test]
    fn a_stuck_syslogd_holds_a_line_for_a_while_not_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = daemon(dir.path());
        let audit = Audit::logging_to(LogTarget::Syslog, &path);
        // The daemon reads nothing: fill its queue.
        let filler = UnixDatagram::unbound().unwrap();
        filler.connect(&path).unwrap();
        filler.set_nonblocking(true).unwrap();
        while filler.send(b"<86>filler").is_ok() {}
        let start = std::time::Instant::now();
        audit.info("stuck", &[]);
        let took = start.elapsed();
        assert!(took >= SEND_TIMEOUT / 2, "{took:?}");
        assert!(took < SEND_TIMEOUT * 3, "{took:?}");
        drop(server);
    }

    #[test]
    fn fields_cannot_forge_lines() {
        assert_eq!(field("alice"), "alice");
        assert_eq!(field("10.0.0.1"), "10.0.0.1");
        assert_eq!(
            field("a b\nverify ok user=root"),
            "\"a b\\nverify ok user=root\""
        );
        assert_eq!(field(""), "\"\"");
        assert_eq!(field(&"x".repeat(500)).len(), mfa_api::MAX_LOG_FIELD);
    }
}
