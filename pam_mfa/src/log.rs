//! Logging to syslog, facility AUTHPRIV.
//!
//! One logger per hook call, dropped at its end, so no socket outlives the
//! call. It connects to /dev/log on the first line it writes, not before:
//! a login with nothing to log (a good one, without `debug`) costs no
//! syslog connection. Without /dev/log it logs nothing and says nothing:
//! the module must work on machines without a syslog daemon. Callers never
//! pass a code or an attempt token.

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Only with the `debug` argument.
    Debug,
    Info,
    Warning,
    Error,
    /// LOG_CRIT: a login without a second factor (break-glass).
    Critical,
}

impl Level {
    /// The syslog severity (RFC 5424).
    fn severity(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Warning => 4,
            Level::Error => 3,
            Level::Critical => 2,
        }
    }
}

/// Where the module's log lines go; a recorder in tests.
pub trait Log {
    fn log(&mut self, level: Level, message: &str);

    fn debug(&mut self, message: &str) {
        self.log(Level::Debug, message);
    }
    fn info(&mut self, message: &str) {
        self.log(Level::Info, message);
    }
    fn warning(&mut self, message: &str) {
        self.log(Level::Warning, message);
    }
    fn error(&mut self, message: &str) {
        self.log(Level::Error, message);
    }
    fn critical(&mut self, message: &str) {
        self.log(Level::Critical, message);
    }
}

/// The syslog socket.
pub const DEV_LOG: &str = "/dev/log";
/// LOG_AUTHPRIV, shifted into the priority.
const AUTHPRIV: u8 = 10 << 3;

/// A connection to the syslog daemon: datagrams, or (a daemon that listens
/// on a stream socket) NUL-terminated lines.
enum Sink {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

/// syslog(AUTHPRIV) in the format of syslog(3), with the host program as
/// the ident and `pam_mfa(SERVICE:auth): ` before each line, as
/// pam_syslog(3) does.
pub struct Syslog {
    path: PathBuf,
    /// None until the first line; then the connection, or None for good
    /// if there is no syslog daemon.
    sink: Option<Option<Sink>>,
    prefix: String,
    debug: bool,
}

impl Syslog {
    /// A logger to /dev/log, connected when it first has a line to write.
    pub fn open(service: &str, phase: &str, debug: bool) -> Syslog {
        Syslog::at(Path::new(DEV_LOG), service, phase, debug)
    }

    /// The same, to the syslog socket at `path` (tests).
    pub fn at(path: &Path, service: &str, phase: &str, debug: bool) -> Syslog {
        Syslog {
            path: path.to_path_buf(),
            sink: None,
            prefix: format!("pam_mfa({}:{phase}): ", field(service)),
            debug,
        }
    }

    /// Whether it has tried to connect (it has had a line to write).
    pub fn connected(&self) -> bool {
        self.sink.is_some()
    }
}

/// Connects to the syslog socket at `path`; a stuck daemon must not hold
/// up a login, so the socket does not block (a line that does not fit is
/// dropped).
fn connect(path: &Path) -> Option<Sink> {
    let sock = UnixDatagram::unbound().ok()?;
    match sock.connect(path) {
        Ok(()) => {
            sock.set_nonblocking(true).ok()?;
            Some(Sink::Datagram(sock))
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            let stream = UnixStream::connect(path).ok()?;
            stream.set_nonblocking(true).ok()?;
            Some(Sink::Stream(stream))
        }
        Err(_) => None,
    }
}

impl Log for Syslog {
    fn log(&mut self, level: Level, message: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let path = &self.path;
        let Some(sink) = self.sink.get_or_insert_with(|| connect(path)) else {
            return;
        };
        let line = format!(
            "<{}>{} {}[{}]: {}{}",
            AUTHPRIV | level.severity(),
            mfa_api::syslog_timestamp(SystemTime::now()),
            program_name(),
            std::process::id(),
            self.prefix,
            one_line(message)
        );
        // A line that cannot be written is lost; logging never fails a login.
        let _ = match sink {
            Sink::Datagram(s) => s.send(line.as_bytes()).map(drop),
            Sink::Stream(s) => s.write_all(format!("{line}\0").as_bytes()),
        };
    }
}

/// The host program's name (sshd, sudo, login), from the executable's
/// path: readlink only, so no descriptor is opened.
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "pam_mfa".to_string())
}

/// A caller-controlled value (user name, service, rhost, tty) in a log
/// line: quoted unless it is a simple token, by the rule mfad's log uses,
/// so a name like `x rhost=10.0.0.1` cannot forge a field.
pub fn field(value: &str) -> String {
    mfa_api::log_field(value)
}

/// One line: control characters (newlines from a daemon message, say)
/// become spaces, so a value cannot forge a second log line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_syslog_socket_is_silent() {
        // Whether or not /dev/log exists here, opening and logging must not
        // fail or panic.
        let mut l = Syslog::open("svc", "auth", true);
        l.debug("debug line");
        l.warning("warning line");
        l.error("error line\nsecond line");
        let mut l = Syslog::at(Path::new("/nonexistent/log"), "svc", "auth", true);
        l.error("nowhere to go");
        assert!(l.connected());
    }

    /// A syslog daemon's socket in a temp dir.
    fn daemon() -> (PathBuf, UnixDatagram) {
        let dir = std::env::temp_dir().join(format!(
            "pam_mfa-log-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        (path, server)
    }

    #[test]
    fn nothing_to_log_is_no_connection() {
        let (path, server) = daemon();
        let mut l = Syslog::at(&path, "sshd", "auth", false);
        l.debug("begin user=alice");
        l.debug("verified; user=alice");
        assert!(!l.connected());
        let mut buf = [0u8; 512];
        assert!(server.recv(&mut buf).is_err(), "nothing was sent");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn lines_go_out_as_syslog_3_writes_them() {
        let (path, server) = daemon();
        let mut l = Syslog::at(&path, "sshd", "auth", false);
        l.warning("denied: locked\nout; user=alice");
        assert!(l.connected());
        l.critical("break-glass");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        // LOG_AUTHPRIV | LOG_WARNING = 84.
        assert!(line.starts_with("<84>"), "{line}");
        let pid = format!("[{}]: ", std::process::id());
        assert!(line.contains(&pid), "{line}");
        assert!(
            line.ends_with("]: pam_mfa(sshd:auth): denied: locked out; user=alice"),
            "{line}"
        );
        let n = server.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"<82>"), "LOG_CRIT");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn one_line_flattens_control_characters() {
        assert_eq!(one_line("a\nb\r\tc\u{1b}[1m"), "a b  c [1m");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn the_prefix_names_service_and_phase() {
        let l = Syslog::open("sshd", "auth", false);
        assert_eq!(l.prefix, "pam_mfa(sshd:auth): ");
        let l = Syslog::open("x): user=root", "auth", false);
        assert_eq!(l.prefix, "pam_mfa(\"x): user=root\":auth): ");
    }

    #[test]
    fn fields_are_quoted_unless_simple() {
        assert_eq!(field("alice"), "alice");
        assert_eq!(field("alice@example.com"), "alice@example.com");
        assert_eq!(field("a b user=root"), "\"a b user=root\"");
        assert_eq!(field(""), "\"\"");
        assert_eq!(field("a\"b"), "\"a\\\"b\"");
    }
}
