//! The audit log: syslog (AUTHPRIV) or stderr. One line per event,
//! `EVENT key=value ...`; never a code or a secret, which is why callers pass
//! only the fields below and never free text from a request.

use std::sync::Mutex;

use crate::config::LogTarget;

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

enum Sink {
    Syslog(SyslogLogger),
    Stderr,
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
        let use_syslog = match target {
            LogTarget::Stderr => false,
            LogTarget::Syslog => true,
            LogTarget::Auto => std::path::Path::new("/dev/log").exists(),
        };
        let sink = if use_syslog {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "mfad".into(),
                pid: std::process::id(),
            };
            match syslog::unix(formatter) {
                Ok(logger) => Sink::Syslog(logger),
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
        let mut line = String::from(event);
        for (k, v) in fields {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(&field(v));
        }
        if let Some(host) = &self.host {
            line.push_str(" host=");
            line.push_str(&field(host));
        }
        self.line(level, &line);
    }

    fn line(&self, level: Level, line: &str) {
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let failed = match &mut *sink {
            Sink::Syslog(logger) => match level {
                Level::Info => logger.info(line).is_err(),
                Level::Warning => logger.warning(line).is_err(),
            },
            Sink::Stderr => {
                eprintln!("mfad: {line}");
                false
            }
        };
        if failed {
            // syslogd went away: keep the record on stderr rather than lose it.
            eprintln!("mfad: {line}");
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
