//! Harness for mfa's integration tests: real parts only.
//!
//! An [`Env`] is one private world for one test: a temp dir, a private
//! dbus-daemon, the real mfad serving on it with its own state dir and
//! config, and the Unix users, groups and /etc/pam.d service files the test
//! asks for. Everything is unique per Env (random names), so tests run in
//! parallel threads; dropping the Env stops the processes and removes
//! everything it made.
//!
//! ```no_run
//! use mfa_tests::Env;
//! let env = Env::new();
//! let alice = env.add_user();
//! let dev = env.enroll(&alice);
//! let svc = env.pam_service("");
//! let code = mfa_tests::code_at_offset(&dev.secret, 0);
//! assert!(env.pamtester(&svc, &alice, &[&code]).authenticated());
//! ```
//!
//! Anything missing (not root, no dbus-daemon/pamtester/oathtool, the
//! workspace not built) is a loud panic, never a skip.

pub mod bus;
pub mod calls;
pub mod codes;
pub mod daemon;
pub mod mfactl;
pub mod pam;
pub mod paths;
pub mod postgres;
pub mod proc;
pub mod sms;
pub mod ssh;
pub mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

pub use bus::Bus;
pub use calls::CallResult;
pub use codes::{code_at_offset, totp_code, wrong_code, Clock};
pub use daemon::{DaemonConfig, Policy};
pub use mfactl::{Enrolled, PendingEnrollment};
pub use pam::{PamOutcome, PamResult, PamtesterOpts};
pub use proc::{Cmd, Output};
pub use sms::{
    mask_phone, random_phone, SentSms, Sms, SmsCommand, SmsEnrolled, SmsGateway, SmsOutbox,
    SmsRequest,
};
pub use users::User;

use daemon::Daemon;

/// `n` random lowercase letters (letters only, so names never contain
/// something that looks like a code).
pub fn random_letters(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("randomness");
    b.iter().map(|x| (b'a' + x % 26) as char).collect()
}

/// Settings for a new [`Env`].
#[derive(Debug, Clone)]
pub struct EnvBuilder {
    window: u32,
    policy: Policy,
    policy_toml: String,
    max_failures: u32,
    lockout_duration: String,
    lockout_max_duration: Option<String>,
    admin_group: String,
    issuer: String,
    trusted_lifetime: Option<String>,
    sms: Option<Sms>,
    extra_toml: String,
    start_daemon: bool,
    host_name: Option<String>,
    trusted_scope: Option<String>,
    store: Option<String>,
    daemon_toml: String,
    anyone_may_own_the_name: bool,
}

impl Default for EnvBuilder {
    fn default() -> Self {
        EnvBuilder {
            window: 4,
            policy: Policy::Optional,
            policy_toml: String::new(),
            max_failures: 5,
            lockout_duration: "15m".into(),
            lockout_max_duration: None,
            admin_group: String::new(),
            issuer: "mfa-test".into(),
            trusted_lifetime: None,
            sms: None,
            extra_toml: String::new(),
            start_daemon: true,
            host_name: None,
            trusted_scope: None,
            store: None,
            daemon_toml: String::new(),
            anyone_may_own_the_name: false,
        }
    }
}

impl EnvBuilder {
    /// `[totp] window` (default 4: enrollment uses steps -3 and -2, logins
    /// then have steps -1..=4 to use in order without waiting).
    pub fn window(mut self, w: u32) -> Self {
        self.window = w;
        self
    }
    pub fn policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self
    }
    /// Raw TOML lines for `[policy]` besides `mode`, e.g.
    /// `required_groups = ["staff"]`.
    pub fn policy_toml(mut self, toml: &str) -> Self {
        self.policy_toml = toml.into();
        self
    }
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }
    /// `[lockout] duration`, e.g. "15m".
    pub fn lockout_duration(mut self, d: &str) -> Self {
        self.lockout_duration = d.into();
        self
    }
    pub fn lockout_max_duration(mut self, d: &str) -> Self {
        self.lockout_max_duration = Some(d.into());
        self
    }

    pub fn admin_group(mut self, g: &str) -> Self {
        self.admin_group = g.into();
        self
    }
    pub fn issuer(mut self, i: &str) -> Self {
        self.issuer = i.into();
        self
    }
    /// `[trusted_devices] lifetime`, e.g. "30d", "forever" or "off".
    /// Without it the section is left out (mfad's default: off).
    pub fn trusted_lifetime(mut self, lifetime: &str) -> Self {
        self.trusted_lifetime = Some(lifetime.into());
        self
    }
    /// `[sms]` with this backend: the Env starts the gateway part (an
    /// HTTP server, a recording script or an outbox path in its temp dir)
    /// and reads it with `Env::sms_*`. Without it SMS is off.
    pub fn sms(mut self, sms: Sms) -> Self {
        self.sms = Some(sms);
        self
    }
    /// Raw TOML appended to mfad.toml (for tests of bad configs).
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml = toml.into();
        self
    }
    /// `[daemon] host_name`.
    pub fn host_name(mut self, host: &str) -> Self {
        self.host_name = Some(host.into());
        self
    }
    /// `[trusted_devices] scope`: "host" or "fleet".
    pub fn trusted_scope(mut self, scope: &str) -> Self {
        self.trusted_scope = Some(scope.into());
        self
    }
    /// A whole `[store]` section (see [`postgres::Postgres::store_toml`]).
    pub fn store(mut self, section: &str) -> Self {
        self.store = Some(section.into());
        self
    }
    /// Raw lines added to `[daemon]` (e.g. `key_file = "..."`).
    pub fn daemon_toml(mut self, lines: &str) -> Self {
        self.daemon_toml = lines.into();
        self
    }
    /// A bus whose policy lets any user own org.mfad.Mfa1 (a misconfigured
    /// bus, for an impostor to use; see [`Env::start_impostor`]).
    pub fn anyone_may_own_the_name(mut self) -> Self {
        self.anyone_may_own_the_name = true;
        self
    }
    /// Only the bus; mfad is not started (call [`Env::start_daemon`]).
    pub fn no_daemon(mut self) -> Self {
        self.start_daemon = false;
        self
    }

    pub fn start(self) -> Env {
        Env::start(self)
    }
}

/// One test's private world. See the crate docs.
pub struct Env {
    dir: PathBuf,
    bus: Bus,
    daemon: Option<Daemon>,
    config: DaemonConfig,
    config_path: PathBuf,
    users: Mutex<Vec<String>>,
    groups: Mutex<Vec<String>>,
    pam_files: Mutex<Vec<PathBuf>>,
    /// The SMS gateway part, when the Env has `[sms]`.
    sms: Option<sms::SmsParts>,
}

impl Env {
    /// Defaults: window 4, policy optional, 5 failures lock for 15m, no
    /// admin group, issuer "mfa-test".
    pub fn new() -> Env {
        EnvBuilder::default().start()
    }

    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    fn start(b: EnvBuilder) -> Env {
        paths::require_root();
        // Check the tools up front so a missing one is named clearly.
        paths::tool("dbus-daemon", "dbus-daemon");
        paths::tool("pamtester", "pamtester");
        paths::tool("oathtool", "oathtool");
        paths::tool("setpriv", "util-linux");
        paths::tool("useradd", "passwd");
        paths::mfad();
        paths::mfactl();
        paths::pam_module();

        let dir = std::env::temp_dir().join(format!("mfa-test-{}", random_letters(10)));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        // 0755: the test users must reach the bus socket inside.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let bus = if b.anyone_may_own_the_name {
            Bus::start_with_policy(
                &dir,
                &format!(
                    r#"<policy context="default"><allow own="{}"/></policy>"#,
                    mfa_api::BUS_NAME
                ),
            )
        } else {
            Bus::start(&dir)
        };
        let (sms, sms_section) = match &b.sms {
            Some(s) => {
                let (parts, section) = sms::make(s, &dir);
                (Some(parts), Some(section))
            }
            None => (None, None),
        };
        let config = DaemonConfig {
            bus: bus.address.clone(),
            state_dir: dir.join("state"),
            login_socket: dir.join("login.socket"),
            issuer: b.issuer,
            admin_group: b.admin_group,
            log: "stderr".into(),
            daemon_toml: b.daemon_toml,
            policy: b.policy,
            policy_toml: b.policy_toml,
            window: b.window,
            max_failures: b.max_failures,
            lockout_duration: b.lockout_duration,
            lockout_max_duration: b.lockout_max_duration,
            trusted_lifetime: b.trusted_lifetime,
            sms: sms_section,
            host_name: b.host_name,
            trusted_scope: b.trusted_scope,
            store: b.store,
            extra_toml: b.extra_toml,
        };
        let config_path = dir.join("mfad.toml");
        std::fs::write(&config_path, config.to_toml()).expect("write mfad.toml");
        let mut env = Env {
            dir,
            bus,
            daemon: None,
            config,
            config_path,
            users: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
            pam_files: Mutex::new(Vec::new()),
            sms,
        };
        if b.start_daemon {
            env.start_daemon();
        }
        env
    }

    /// The temp dir (mode 0755) holding the bus socket, configs, logs and
    /// the state dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `unix:path=DIR/bus`
    pub fn bus_address(&self) -> &str {
        &self.bus.address
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// mfad's login socket, `DIR/login.socket`.
    pub fn login_socket(&self) -> &Path {
        &self.config.login_socket
    }

    pub fn window(&self) -> u32 {
        self.config.window
    }

    /// Where mfad's stdout and stderr go.
    pub fn daemon_log_path(&self) -> PathBuf {
        self.dir.join("mfad.log")
    }

    /// Everything mfad has written so far (all its runs in this Env).
    pub fn daemon_log(&self) -> String {
        bus::read_lossy(&self.daemon_log_path())
    }

    /// Starts mfad with this Env's config; returns once it owns the name.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "mfad is already running");
        self.daemon = Some(Daemon::start(
            &self.config_path,
            &self.daemon_log_path(),
            &self.bus.address,
        ));
        // mfad binds its login socket just after it owns the name.
        let socket = self.config.login_socket.clone();
        if !socket.as_os_str().is_empty() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !socket.exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "mfad did not make its login socket {}. Its output:\n{}",
                    socket.display(),
                    self.daemon_log()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// SIGTERM to mfad and wait; its exit status (None if it was not
    /// running).
    pub fn stop_daemon(&mut self) -> Option<ExitStatus> {
        self.daemon.take().and_then(|mut d| d.stop())
    }

    /// SIGKILL to mfad (a crash) and wait; its exit status.
    pub fn kill_daemon(&mut self) -> Option<ExitStatus> {
        self.daemon.take().and_then(|mut d| d.kill())
    }

    /// [`Daemon::wait_exit`] for this Env's mfad.
    pub fn wait_daemon_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.daemon.as_mut().and_then(|d| d.wait_exit(timeout))
    }

    /// Stops the private dbus-daemon for good (the bus is gone).
    pub fn stop_bus(&mut self) {
        self.bus.stop();
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(|d| d.pid())
    }

    /// SIGSTOP to mfad: it keeps its bus name but answers nothing (the
    /// "daemon hangs" case). Drop (or [`Env::resume_daemon`]) continues it.
    pub fn pause_daemon(&self) {
        self.signal_daemon(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn resume_daemon(&self) {
        self.signal_daemon(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal_daemon(&self, sig: nix::sys::signal::Signal) {
        let pid = self.daemon_pid().expect("mfad is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal mfad");
    }

    /// SIGSTOP to the dbus-daemon: connections hang in the handshake (the
    /// "bus hangs" case). Drop (or [`Env::resume_bus`]) continues it.
    pub fn pause_bus(&self) {
        self.signal_bus(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn resume_bus(&self) {
        self.signal_bus(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal_bus(&self, sig: nix::sys::signal::Signal) {
        let pid = self.bus.pid().expect("dbus-daemon is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
            .expect("signal dbus-daemon");
    }

    /// Changes this Env's mfad config and rewrites the file; mfad reads it
    /// when (re)started.
    pub fn set_config(&mut self, f: impl FnOnce(&mut DaemonConfig)) {
        f(&mut self.config);
        std::fs::write(&self.config_path, self.config.to_toml()).expect("write mfad.toml");
    }

    /// Writes a file in the temp dir (e.g. another mfad config).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// Runs another mfad in the foreground with `config` and waits for it
    /// to exit (killed after `timeout`).
    pub fn run_mfad(&self, config: &Path, timeout: Duration) -> Output {
        Cmd::new(paths::mfad())
            .arg("--config")
            .arg(config)
            .timeout(timeout)
            .run()
    }

    /// A new Unix user, removed when the Env is dropped.
    pub fn add_user(&self) -> User {
        let u = users::create_user();
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(u.name.clone());
        u
    }

    /// A new Unix user who can log in for real (sshd, su): shell /bin/sh
    /// and, when given, this password (set with chpasswd). Removed when the
    /// Env is dropped. [`Env::add_user`]'s users have no shell, which sshd
    /// refuses for commands.
    pub fn add_login_user(&self, password: Option<&str>) -> User {
        let u = users::create_user_with_shell("/bin/sh");
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(u.name.clone());
        if let Some(pw) = password {
            users::set_password(&u.name, pw);
        }
        u
    }

    /// A second name for `of`'s UID (`useradd -o`), removed when the Env is
    /// dropped.
    pub fn add_alias(&self, of: &User) -> User {
        let u = users::create_alias(of);
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(u.name.clone());
        u
    }

    /// A new group with these members, removed when the Env is dropped.
    pub fn add_group(&self, members: &[&User]) -> String {
        let g = users::create_group(members);
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(g.clone());
        g
    }

    /// A zbus connection to the private bus (as root, the test process).
    pub async fn connect(&self) -> zbus::Connection {
        mfa_api::connect(&self.bus.address)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.bus.address))
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        self.bus.stop();
        for f in self
            .pam_files
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if let Err(e) = std::fs::remove_file(&f) {
                eprintln!("mfa-tests: cannot remove {}: {e}", f.display());
            }
        }
        for u in self
            .users
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            users::remove_user(&u);
        }
        for g in self
            .groups
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            users::remove_group(&g);
        }
        if std::env::var_os("MFA_TESTS_KEEP").is_some() {
            eprintln!("mfa-tests: keeping {} (MFA_TESTS_KEEP)", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("mfa-tests: cannot remove {}: {e}", self.dir.display());
        }
    }
}
