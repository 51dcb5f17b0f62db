//! Logging to syslog, facility AUTHPRIV.
//!
//! One logger per authentication, opened at the start and closed (dropped)
//! at the end, so no socket outlives the call. Without /dev/log it logs
//! nothing and says nothing: the module must work on machines without a
//! syslog daemon. Callers never pass a code or an attempt token.

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

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

/// syslog(AUTHPRIV) with the host program as the ident and
/// `pam_mfa(SERVICE:auth): ` before each line, as pam_syslog(3) does.
pub struct Syslog {
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    prefix: String,
    debug: bool,
}

impl Syslog {
    /// Connects to /dev/log; a logger that drops everything if that fails.
    pub fn open(service: &str, phase: &str, debug: bool) -> Syslog {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: program_name(),
            pid: std::process::id(),
        };
        let logger = syslog::unix(formatter).ok().inspect(|l| {
            // A stuck syslog daemon must not hold up a login: drop the line
            // instead of blocking on a full socket buffer.
            if let LoggerBackend::Unix(sock) = &l.backend {
                let _ = sock.set_nonblocking(true);
            }
        });
        Syslog {
            logger,
            prefix: format!("pam_mfa({}:{phase}): ", field(service)),
            debug,
        }
    }
}

impl Log for Syslog {
    fn log(&mut self, level: Level, message: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let Some(logger) = self.logger.as_mut() else {
            return;
        };
        let line = format!("{}{}", self.prefix, one_line(message));
        // A line that cannot be written is lost; logging never fails a login.
        let _ = match level {
            Level::Debug => logger.debug(line),
            Level::Info => logger.info(line),
            Level::Warning => logger.warning(line),
            Level::Error => logger.err(line),
            Level::Critical => logger.crit(line),
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
