//! A private dbus-daemon, configured by scripts/bus-config.sh from the stock
//! system bus config plus mfa's policy file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::paths;
use crate::proc::Cmd;

/// How long a part may take to come up before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Bus {
    child: Option<Child>,
    /// `unix:path=DIR/bus`
    pub address: String,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Bus {
    /// Writes DIR/bus.conf with the script and starts dbus-daemon on
    /// DIR/bus; returns once a client can connect.
    pub fn start(dir: &Path) -> Bus {
        Bus::start_with_policy(dir, "")
    }

    /// As [`Bus::start`], with `policy` (XML elements) added at the end of
    /// the config, where it overrides the rules before it.
    pub fn start_with_policy(dir: &Path, policy: &str) -> Bus {
        let dbus_daemon = paths::tool("dbus-daemon", "dbus-daemon");
        let script = paths::repo_root().join("scripts").join("bus-config.sh");
        let out = Cmd::new("bash").arg(&script).arg(dir).run();
        assert!(
            out.success(),
            "scripts/bus-config.sh could not write a bus config:\n{out}"
        );
        let mut config = out.stdout.clone();
        if !policy.is_empty() {
            let end = config
                .rfind("</busconfig>")
                .expect("bus-config.sh wrote a config without </busconfig>");
            config.insert_str(end, &format!("  <!-- test -->\n  {policy}\n"));
        }
        let conf = dir.join("bus.conf");
        std::fs::write(&conf, &config).expect("write bus.conf");
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let log = dir.join("dbus-daemon.log");
        let logf = File::create(&log).expect("create dbus-daemon.log");
        let child = Command::new(&dbus_daemon)
            .arg("--nofork")
            .arg("--nopidfile")
            .arg(format!("--config-file={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log fd"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", dbus_daemon.display()));
        let mut bus = Bus {
            child: Some(child),
            address,
            socket,
            log,
        };
        bus.wait_ready();
        bus
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_err = String::new();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "dbus-daemon exited during startup ({status}):\n{}",
                        read_lossy(&self.log)
                    );
                }
            }
            if self.socket.exists() {
                match name_has_owner(&self.address, "org.freedesktop.DBus") {
                    Ok(true) => return,
                    Ok(false) => last_err = "the bus does not own its own name?".into(),
                    Err(e) => last_err = e,
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "dbus-daemon did not accept connections on {} within {START_TIMEOUT:?}: {last_err}\n{}",
                    self.address,
                    read_lossy(&self.log)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, "dbus-daemon");
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks the bus whether `name` has an owner (one fresh connection).
pub fn name_has_owner(address: &str, name: &str) -> Result<bool, String> {
    zbus::block_on(async {
        let conn = mfa_api::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        let name = zbus::names::BusName::try_from(name).map_err(|e| e.to_string())?;
        dbus.name_has_owner(name).await.map_err(|e| e.to_string())
    })
}

/// SIGTERM, then up to 5 s for the exit, then SIGKILL. Never panics (runs
/// from Drop).
pub fn terminate(mut child: Child, what: &str) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // A stopped process (a test paused it) must run to see SIGTERM.
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
    eprintln!("mfa-tests: {what} ignored SIGTERM for 5 s; killing it");
    let _ = child.kill();
    child.wait().ok()
}

pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
