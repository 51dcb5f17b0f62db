//! Raw D-Bus calls as any user, through the `mfa-call` helper binary
//! (tests/src/bin/mfa-call.rs) run under setpriv: the daemon sees that
//! user's uid, exactly as with a real client.

use serde_json::Value;

use crate::proc::Cmd;
use crate::{paths, Env, User};

/// One call's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    /// The method's return value as JSON.
    Ok(Value),
    /// A D-Bus error reply: its name and message.
    Err { name: String, message: String },
}

impl CallResult {
    #[track_caller]
    pub fn ok(&self) -> &Value {
        match self {
            CallResult::Ok(v) => v,
            CallResult::Err { name, message } => {
                panic!("expected success, got D-Bus error {name}: {message}")
            }
        }
    }

    /// The error's name and message; panics on success.
    #[track_caller]
    pub fn err(&self) -> (&str, &str) {
        match self {
            CallResult::Err { name, message } => (name, message),
            CallResult::Ok(v) => panic!("expected a D-Bus error, got success: {v}"),
        }
    }

    /// Panics unless this is the error `org.mfad.Mfa1.Error.<short>`.
    #[track_caller]
    pub fn assert_error(&self, short: &str) -> &str {
        let (name, message) = self.err();
        assert_eq!(
            name,
            format!("{}.{short}", mfa_api::ERROR_PREFIX),
            "wrong error (message: {message})"
        );
        message
    }
}

impl Env {
    /// Runs `mfa-call BUS ARGS...` as `user` (root when None). See
    /// tests/src/bin/mfa-call.rs for the commands.
    #[track_caller]
    pub fn call(&self, user: Option<&User>, args: &[&str]) -> CallResult {
        self.call_at(self.bus_address(), user, args)
    }

    /// [`Env::call`] over mfad's login socket, peer to peer.
    #[track_caller]
    pub fn call_on_socket(&self, user: Option<&User>, args: &[&str]) -> CallResult {
        let target = format!("socket:{}", self.login_socket().display());
        self.call_at(&target, user, args)
    }

    /// Runs `mfa-call TARGET ARGS...` as `user` (root when None).
    #[track_caller]
    pub fn call_at(&self, target: &str, user: Option<&User>, args: &[&str]) -> CallResult {
        let out = Cmd::new(paths::helper("mfa-call"))
            .arg(target)
            .args(args)
            .maybe_as(user)
            .run();
        let v: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("mfa-call printed no JSON ({e}):\n{out}"));
        match (out.code, v.get("ok"), v.get("error")) {
            (Some(0), Some(ok), _) => CallResult::Ok(ok.clone()),
            (Some(3), _, Some(name)) => CallResult::Err {
                name: name.as_str().unwrap_or_default().to_string(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            },
            _ => panic!("mfa-call failed:\n{out}"),
        }
    }
}

impl Env {
    /// Enrollment straight over D-Bus as the user (EnrollTotpBegin and
    /// EnrollTotpConfirm through mfa-call), for tests whose subject is not
    /// mfactl. Same codes as [`Env::enroll`].
    #[track_caller]
    pub fn enroll_raw(&self, user: &User) -> crate::Enrolled {
        let begin = self.call(Some(user), &["enroll-begin", "", "test device"]);
        let v = begin.ok();
        let id = crate::mfactl::json_str(v, "enrollment_id");
        let secret = crate::mfactl::json_str(v, "secret");
        let codes = self.confirm_codes(&secret);
        let confirm = self.call(
            Some(user),
            &["enroll-confirm", "", &id, &codes[0], &codes[1]],
        );
        let v = confirm.ok();
        let backup_codes: Vec<String> = v["backup_codes"]
            .as_array()
            .unwrap_or_else(|| panic!("no backup_codes: {v}"))
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_string())
            .collect();
        crate::Enrolled {
            secret,
            device_id: crate::mfactl::json_str(v, "device_id"),
            backup_codes,
            confirm_codes: codes,
        }
    }
}

/// A fake mfad (`mfa-call impostor`) running as a test user, stopped when
/// dropped.
pub struct Impostor {
    child: Option<std::process::Child>,
}

impl Drop for Impostor {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::bus::terminate(child, "mfa-call impostor");
        }
    }
}

impl Env {
    /// Starts `mfa-call impostor` as `user`, owning org.mfad.Mfa1 and
    /// answering every Begin `ignore`; returns once it owns the name. Needs
    /// [`crate::EnvBuilder::anyone_may_own_the_name`] and no mfad.
    #[track_caller]
    pub fn start_impostor(&self, user: &User) -> Impostor {
        let guard = spawn_as(user, self.bus_address(), "impostor", "serving");
        assert_eq!(
            crate::bus::name_has_owner(self.bus_address(), mfa_api::BUS_NAME),
            Ok(true),
            "the impostor does not own the name"
        );
        guard
    }

    /// `mfa-call PATH socket-listen` as `user`: someone who is not root
    /// listening on a socket the module is pointed at. Returns once it
    /// listens.
    #[track_caller]
    pub fn start_socket_impostor(&self, user: &User, path: &std::path::Path) -> Impostor {
        spawn_as(user, &path.to_string_lossy(), "socket-listen", "listening")
    }
}

/// Starts `mfa-call TARGET COMMAND` as `user` and waits for the line with
/// `ready` it prints once it serves.
#[track_caller]
fn spawn_as(user: &User, target: &str, command: &str, ready: &str) -> Impostor {
    use std::io::BufRead;
    let mut child = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(paths::helper("mfa-call"))
        .arg(target)
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start mfa-call {command}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = Impostor { child: Some(child) };
    let mut line = String::new();
    // It prints one line once it serves, or an error and exits.
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read mfa-call {command}: {e}"));
    assert!(
        line.contains(ready),
        "mfa-call {command} did not start: {line}"
    );
    guard
}
