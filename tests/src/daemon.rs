//! The real mfad: its config file and its process.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bus::{name_has_owner, read_lossy, terminate, START_TIMEOUT};
use crate::paths;

/// `[policy] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Optional,
    Required,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Optional => "optional",
            Policy::Required => "required",
        }
    }
}

/// Everything the harness puts in mfad.toml.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub bus: String,
    pub state_dir: PathBuf,
    /// `[daemon] login_socket`: each test's own, in its temp dir.
    pub login_socket: PathBuf,
    pub issuer: String,
    pub admin_group: String,
    pub log: String,
    /// Raw TOML lines added to `[daemon]` (e.g. `break_glass = "..."`).
    pub daemon_toml: String,
    pub policy: Policy,
    /// Raw TOML lines added to `[policy]` after `mode` (groups, grace).
    pub policy_toml: String,
    pub window: u32,
    pub max_failures: u32,
    pub lockout_duration: String,
    /// `[lockout] max_duration`, when set.
    pub lockout_max_duration: Option<String>,
    /// `[trusted_devices] lifetime`; None leaves the section out (mfad's
    /// default, "off").
    pub trusted_lifetime: Option<String>,
    /// `[sms]` and its backend table; None leaves SMS off.
    pub sms: Option<SmsSection>,
    /// `[daemon] host_name`; None leaves it out (the system's host name).
    pub host_name: Option<String>,
    /// `[trusted_devices] scope`; None leaves it out (mfad's default, host).
    pub trusted_scope: Option<String>,
    /// A whole `[store]` section; None leaves it out (SQLite in state_dir).
    pub store: Option<String>,
    /// Raw TOML appended at the end of the file (bad-config tests).
    pub extra_toml: String,
}

/// `[sms]` as written to mfad.toml; a None key is left out.
#[derive(Debug, Clone, Default)]
pub struct SmsSection {
    pub backend: Option<String>,
    pub code_lifetime: Option<String>,
    pub max_sends_per_hour: Option<u32>,
    pub max_total_sends_per_hour: Option<u32>,
    pub resend_cooldown: Option<String>,
    pub allowed_prefixes: Option<Vec<String>>,
    pub sender: Option<String>,
    pub message: Option<String>,
    pub http: Option<SmsHttpSection>,
    pub command: Option<SmsCommandSection>,
    pub file: Option<SmsFileSection>,
}

/// `[sms.http]`
#[derive(Debug, Clone, Default)]
pub struct SmsHttpSection {
    pub url: String,
    /// An inline table, fields in this order.
    pub form: Option<Vec<(String, String)>>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub timeout: Option<String>,
}

/// `[sms.command]`
#[derive(Debug, Clone, Default)]
pub struct SmsCommandSection {
    pub argv: Vec<String>,
    pub timeout: Option<String>,
}

/// `[sms.file]`
#[derive(Debug, Clone, Default)]
pub struct SmsFileSection {
    pub path: PathBuf,
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl DaemonConfig {
    pub fn to_toml(&self) -> String {
        let mut toml = format!(
            "# written by mfa-tests\n\
             [daemon]\n\
             bus = {}\n\
             state_dir = {}\n\
             login_socket = {}\n\
             issuer = {}\n\
             admin_group = {}\n\
             log = {}\n\
             {}{}\
             \n\
             [policy]\n\
             mode = {}\n\
             {}\n\
             \n\
             [totp]\n\
             window = {}\n\
             \n\
             [lockout]\n\
             max_failures = {}\n\
             duration = {}\n",
            toml_str(&self.bus),
            toml_str(&self.state_dir.to_string_lossy()),
            toml_str(&self.login_socket.to_string_lossy()),
            toml_str(&self.issuer),
            toml_str(&self.admin_group),
            toml_str(&self.log),
            self.host_name
                .as_ref()
                .map(|h| format!("host_name = {}\n", toml_str(h)))
                .unwrap_or_default(),
            self.daemon_toml,
            toml_str(self.policy.as_str()),
            self.policy_toml,
            self.window,
            self.max_failures,
            toml_str(&self.lockout_duration),
        );
        if let Some(max) = &self.lockout_max_duration {
            let _ = writeln!(toml, "max_duration = {}", toml_str(max));
        }
        if self.trusted_lifetime.is_some() || self.trusted_scope.is_some() {
            toml.push_str("\n[trusted_devices]\n");
        }
        if let Some(lifetime) = &self.trusted_lifetime {
            let _ = writeln!(toml, "lifetime = {}", toml_str(lifetime));
        }
        if let Some(scope) = &self.trusted_scope {
            let _ = writeln!(toml, "scope = {}", toml_str(scope));
        }
        if let Some(store) = &self.store {
            toml.push('\n');
            toml.push_str(store);
        }
        if let Some(sms) = &self.sms {
            toml.push_str(&crate::sms::section_toml(sms));
        }
        if !self.extra_toml.is_empty() {
            toml.push('\n');
            toml.push_str(&self.extra_toml);
            toml.push('\n');
        }
        toml
    }
}

/// A running mfad whose stdout and stderr go to a log file.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `mfad --config CONFIG` and returns once it owns org.mfad.Mfa1
    /// on `address` and says it serves (its login socket is open by then);
    /// panics with its log if it exits or is not ready in
    /// time.
    pub fn start(config: &Path, log: &Path, address: &str) -> Daemon {
        let mfad = paths::mfad();
        // Append: a restarted daemon keeps the earlier lines for the test.
        let from = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let logf = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open mfad log");
        let child = Command::new(&mfad)
            .arg("--config")
            .arg(config)
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log fd"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", mfad.display()));
        let mut d = Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        };
        d.wait_ready(address, from);
        d
    }

    /// Waits until mfad owns its name and has announced, after byte `from`
    /// of the log (this start's lines), that it serves.
    fn wait_ready(&mut self, address: &str, from: u64) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "mfad exited during startup ({status}). Its output:\n{}",
                        read_lossy(&self.log)
                    );
                }
            }
            // Ready once it announces itself: it owns its name before it
            // opens the login socket and re-arms sessions.
            let last = match name_has_owner(address, mfa_api::BUS_NAME) {
                Ok(true) if self.announced(from) => return,
                Ok(true) => "mfad has not announced that it serves yet".to_string(),
                Ok(false) => "org.mfad.Mfa1 has no owner yet".to_string(),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "mfad was not serving on {address} within {START_TIMEOUT:?} ({last}). Its output:\n{}",
                    read_lossy(&self.log)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn announced(&self, from: u64) -> bool {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let mine = log
            .get(usize::try_from(from).unwrap_or(usize::MAX)..)
            .unwrap_or(&[]);
        String::from_utf8_lossy(mine).contains("mfad: serving ")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits up to `timeout` for mfad to exit by itself; its status, or
    /// None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM and wait (SIGKILL after 5 s); the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.take().and_then(|c| terminate(c, "mfad"))
    }

    /// SIGKILL, as a crash: no cleanup of any kind; waits for the exit.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        child.kill().ok()?;
        child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
