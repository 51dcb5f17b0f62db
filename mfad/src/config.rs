//! `/etc/mfad/mfad.toml`. Unknown keys are errors, reported with their line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::gateway::SmsConfig;
use crate::policy::{Mode, Rules};
use crate::store::config::StoreConfig;
use crate::trust::Lifetime;

pub const DEFAULT_PATH: &str = "/etc/mfad/mfad.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: Daemon,
    pub policy: Policy,
    pub totp: Totp,
    pub lockout: LockoutConfig,
    pub trusted_devices: TrustedDevices,
    pub session: SessionConfig,
    /// Absent: SMS is off.
    pub sms: Option<SmsConfig>,
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Daemon {
    /// "system" or a D-Bus address.
    pub bus: String,
    pub state_dir: PathBuf,
    /// Shown in the authenticator app; empty means the host name.
    pub issuer: String,
    /// Members may use the Admin interface besides root.
    pub admin_group: String,
    pub log: LogTarget,
    /// Names this host in the audit log and in its trusted devices; empty
    /// means the system's host name.
    pub host_name: String,
    /// The daemon's key (sealed secrets); empty means STATE_DIR/mfad.key.
    pub key_file: PathBuf,
    /// The break-glass codes (`mfactl admin break-glass`); mfad reports
    /// the used ones when it starts.
    pub break_glass: PathBuf,
    /// The private login socket (org.mfad.Mfa1.Login only, peer to peer);
    /// empty: none. A socket passed by systemd (LISTEN_FDS) wins.
    pub login_socket: PathBuf,
}

impl Daemon {
    /// Where the daemon's key is: `key_file`, or `mfad.key` in the state
    /// directory.
    pub fn key_path(&self) -> PathBuf {
        if self.key_file.as_os_str().is_empty() {
            self.state_dir.join("mfad.key")
        } else {
            self.key_file.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// syslog when /dev/log exists, else stderr.
    Auto,
    Stderr,
    Syslog,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub mode: Mode,
    /// Members must use 2-step whatever the mode.
    pub required_groups: Vec<String>,
    /// Members are never asked (machine accounts); beats everything.
    pub exempt_groups: Vec<String>,
    pub exempt_users: Vec<String>,
    /// How long a user who must use 2-step may still log in without it.
    #[serde(with = "humantime_serde_compat")]
    pub grace_period: Duration,
    /// `[policy.service.NAME]`: overrides for one PAM service.
    pub service: BTreeMap<String, ServicePolicy>,
    /// A user who must use 2-step, has no device and no grace left enrolls
    /// inside the login (root callers only) instead of being refused.
    pub enroll_at_login: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    pub mode: Mode,
}

impl Policy {
    /// The rules `crate::policy` decides by.
    pub fn rules(&self) -> Rules {
        Rules {
            mode: self.mode,
            required_groups: self.required_groups.clone(),
            exempt_groups: self.exempt_groups.clone(),
            exempt_users: self.exempt_users.clone(),
            services: self
                .service
                .iter()
                .map(|(name, s)| (name.clone(), s.mode))
                .collect(),
            grace_secs: i64::try_from(self.grace_period.as_secs()).unwrap_or(i64::MAX),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Totp {
    /// Accepted steps before and after the current one.
    pub window: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustedDevices {
    /// How long a device that passed verification skips the code.
    #[serde(deserialize_with = "lifetime")]
    pub lifetime: Lifetime,
    /// With a shared store: whether a device trusted on one host is trusted
    /// on every host of the fleet.
    pub scope: TrustScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustScope {
    /// Trust is kept under this host's name and used here only.
    Host,
    /// Trust is used by every host sharing the store.
    Fleet,
}

impl Default for TrustedDevices {
    fn default() -> Self {
        // Off unless the admin opts in: every login asks for a code.
        TrustedDevices {
            lifetime: Lifetime::Off,
            scope: TrustScope::Host,
        }
    }
}

fn lifetime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Lifetime, D::Error> {
    let s = String::deserialize(d)?;
    Lifetime::parse(&s).map_err(serde::de::Error::custom)
}

/// `[session]`: how long a login verified with a second factor lasts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// The limit; `None` ("off") leaves sessions unlimited.
    #[serde(deserialize_with = "off_or_duration")]
    pub max_duration: Option<Duration>,
    /// Users may choose a shorter duration (never a longer one).
    pub user_choice: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_duration: None,
            user_choice: true,
        }
    }
}

impl SessionConfig {
    /// The limit in seconds; 0 when off.
    pub fn limit_secs(&self) -> i64 {
        self.max_duration
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// "off", a duration ("12h", "90s"), or a number of seconds.
fn off_or_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let bad = |why: String| {
        serde::de::Error::custom(format!("max_duration must be \"off\" or a duration: {why}"))
    };
    let d = match toml::Value::deserialize(d)? {
        toml::Value::Integer(n) => {
            Duration::from_secs(u64::try_from(n).map_err(|_| bad(format!("{n} is negative")))?)
        }
        toml::Value::String(s) if s.trim() == "off" => return Ok(None),
        toml::Value::String(s) => parse_duration(&s).map_err(bad)?,
        other => return Err(bad(format!("a {} is neither", other.type_str()))),
    };
    if d.as_secs() == 0 {
        return Err(serde::de::Error::custom(
            "max_duration must be at least 1s, or \"off\"",
        ));
    }
    Ok(Some(d))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub max_failures: u32,
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Each new lock of a user doubles `duration`, up to this.
    #[serde(with = "humantime_serde_compat")]
    pub max_duration: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: Daemon::default(),
            policy: Policy::default(),
            totp: Totp { window: 1 },
            lockout: LockoutConfig::default(),
            trusted_devices: TrustedDevices::default(),
            session: SessionConfig::default(),
            sms: None,
            store: StoreConfig::default(),
        }
    }
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            bus: "system".into(),
            state_dir: PathBuf::from("/var/lib/mfad"),
            issuer: String::new(),
            admin_group: String::new(),
            log: LogTarget::Auto,
            host_name: String::new(),
            key_file: PathBuf::new(),
            break_glass: PathBuf::from(mfa_api::breakglass::DEFAULT_PATH),
            login_socket: PathBuf::from(mfa_api::DEFAULT_LOGIN_SOCKET),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Optional,
            required_groups: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_users: Vec::new(),
            grace_period: Duration::ZERO,
            service: BTreeMap::new(),
            enroll_at_login: true,
        }
    }
}

impl Default for Totp {
    fn default() -> Self {
        Totp { window: 1 }
    }
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            duration: Duration::from_secs(15 * 60),
            max_duration: Duration::from_secs(24 * 3600),
        }
    }
}

/// A duration as "30s", "15m", "30d".
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("invalid duration {s:?} ({e}); use a form like \"30s\", \"15m\" or \"30d\"")
    })
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A PAM service name as in /etc/pam.d: no path, no white space.
fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

/// The highest window accepted: 10 steps each way is five minutes of skew,
/// already far more than a phone's clock needs.
const MAX_WINDOW: u32 = 10;

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let what = e.message().replace('\n', " ");
            match line {
                Some(l) => Error::Config(format!("{} line {l}: {what}", path.display())),
                None => Error::Config(format!("{}: {what}", path.display())),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Reads `path`. The default path may be missing (built-in defaults); a
    /// path given with --config may not.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(e) => Err(Error::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(format!("{}: {msg}", path.display())));
        if self.totp.window > MAX_WINDOW {
            return bad(format!("[totp] window must be at most {MAX_WINDOW}"));
        }
        if self.lockout.max_failures == 0 {
            return bad("[lockout] max_failures must be at least 1".into());
        }
        if self.lockout.duration.is_zero() {
            return bad("[lockout] duration must be longer than 0s".into());
        }
        if !self.daemon.key_file.as_os_str().is_empty() && !self.daemon.key_file.is_absolute() {
            return bad("[daemon] key_file must be an absolute path".into());
        }
        if !self.daemon.state_dir.is_absolute() {
            return bad("[daemon] state_dir must be an absolute path".into());
        }
        let socket = &self.daemon.login_socket;
        if !socket.as_os_str().is_empty() && !socket.is_absolute() {
            return bad("[daemon] login_socket must be an absolute path or \"\"".into());
        }
        // sun_path holds 107 bytes and a terminating zero.
        if socket.as_os_str().len() > 107 {
            return bad("[daemon] login_socket must be at most 107 bytes long".into());
        }
        if self.daemon.bus.is_empty() {
            return bad("[daemon] bus must be \"system\" or a D-Bus address".into());
        }
        if let Some(sms) = &self.sms {
            sms.validate().or_else(bad)?;
        }
        if self
            .daemon
            .host_name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad("[daemon] host_name must not contain spaces or control characters".into());
        }
        self.store.validate().or_else(bad)?;
        let p = &self.policy;
        for (key, names) in [
            ("required_groups", &p.required_groups),
            ("exempt_groups", &p.exempt_groups),
            ("exempt_users", &p.exempt_users),
        ] {
            if let Some(n) = names.iter().find(|n| !crate::users::valid_name(n)) {
                return bad(format!("[policy] {key}: {n:?} is not a valid name"));
            }
        }
        if let Some(s) = p.service.keys().find(|s| !valid_service(s)) {
            return bad(format!("[policy.service.{s}]: not a PAM service name"));
        }
        Ok(())
    }

    /// `[daemon] host_name`, or the system's host name.
    pub fn host_name(&self) -> String {
        if !self.daemon.host_name.is_empty() {
            return self.daemon.host_name.clone();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    }

    /// The host trusted devices are kept under: this one, or '' when trust
    /// is fleet-wide.
    pub fn trust_host(&self) -> String {
        match self.trusted_devices.scope {
            TrustScope::Host => self.host_name(),
            TrustScope::Fleet => String::new(),
        }
    }

    pub fn lockout_limits(&self) -> crate::lockout::Limits {
        crate::lockout::Limits {
            max_failures: self.lockout.max_failures,
            duration_secs: i64::try_from(self.lockout.duration.as_secs()).unwrap_or(i64::MAX),
            max_duration_secs: i64::try_from(self.lockout.max_duration.as_secs())
                .unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/etc/mfad/mfad.toml"))
    }

    #[test]
    fn session_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.session, SessionConfig::default());
        assert_eq!(c.session.limit_secs(), 0);
        let c = parse("[session]\nmax_duration = \"12h\"\nuser_choice = false\n").unwrap();
        assert_eq!(c.session.max_duration, Some(Duration::from_secs(12 * 3600)));
        assert!(!c.session.user_choice);
        let c = parse("[session]\nmax_duration = \"3s\"\n").unwrap();
        assert_eq!(c.session.limit_secs(), 3);
        let c = parse("[session]\nmax_duration = \"off\"\n").unwrap();
        assert_eq!(c.session.max_duration, None);
        let c = parse("[session]\nmax_duration = 5\n").unwrap();
        assert_eq!(c.session.limit_secs(), 5);
        for bad in ["\"0s\"", "\"soon\"", "0", "-1", "true"] {
            let e = parse(&format!("[session]\nmax_duration = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("max_duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.daemon.bus, "system");
        assert_eq!(c.policy.mode, Mode::Optional);
        assert_eq!(c.totp.window, 1);
        assert_eq!(c.lockout.max_failures, 5);
        assert_eq!(c.lockout.duration, Duration::from_secs(900));
        assert_eq!(c.trusted_devices.lifetime, Lifetime::Off);
    }

    #[test]
    fn policy_keys() {
        let c = parse(
            "[policy]\nmode = \"optional\"\nrequired_groups = [\"staff\"]\n\
             exempt_groups = [\"robots\", \"ci\"]\nexempt_users = [\"backup\"]\n\
             grace_period = \"7d\"\n[policy.service.sudo]\nmode = \"required\"\n",
        )
        .unwrap();
        let r = c.policy.rules();
        assert_eq!(r.required_groups, ["staff"]);
        assert_eq!(r.exempt_groups, ["robots", "ci"]);
        assert_eq!(r.exempt_users, ["backup"]);
        assert_eq!(r.grace_secs, 7 * 86400);
        assert_eq!(r.services.get("sudo"), Some(&Mode::Required));
        assert!(c.policy.enroll_at_login);
        let d = parse("").unwrap().policy.rules();
        assert_eq!(d, Rules::default());
        assert!(
            !parse("[policy]\nenroll_at_login = false\n")
                .unwrap()
                .policy
                .enroll_at_login
        );
        for (text, want) in [
            ("[policy]\ngrace_period = \"soon\"\n", "line 2"),
            ("[policy]\nexempt_users = [\"a b\"]\n", "exempt_users"),
            ("[policy]\nrequired_groups = \"staff\"\n", "line 2"),
            ("[policy.service.sudo]\nmode = \"maybe\"\n", "line 2"),
            ("[policy.service.sudo]\n", "mode"),
            (
                "[policy.service.sudo]\nmode = \"required\"\nbogus = 1\n",
                "bogus",
            ),
            (
                "[policy.service.\"../x\"]\nmode = \"required\"\n",
                "not a PAM service",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn trusted_device_lifetimes() {
        let c = parse("[trusted_devices]\nlifetime = \"30d\"\n").unwrap();
        assert_eq!(c.trusted_devices.lifetime, Lifetime::Secs(30 * 86400));
        let c = parse("[trusted_devices]\nlifetime = \"forever\"\n").unwrap();
        assert_eq!(c.trusted_devices.lifetime, Lifetime::Forever);
        let e = parse("[trusted_devices]\nlifetime = \"a while\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("forever"), "{e}");
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            "[daemon]\nbus = \"unix:path=/tmp/b\"\nstate_dir = \"/tmp/s\"\nissuer = \"corp\"\n\
             admin_group = \"wheel\"\nlog = \"stderr\"\n[policy]\nmode = \"required\"\n\
             [totp]\nwindow = 2\n[lockout]\nmax_failures = 3\nduration = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(c.daemon.bus, "unix:path=/tmp/b");
        assert_eq!(c.daemon.log, LogTarget::Stderr);
        assert_eq!(c.policy.mode, Mode::Required);
        assert_eq!(c.lockout.duration, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[daemon]\nbus = \"system\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        assert!(!e.contains('\n'));
    }

    const FILE_SMS: &str = "[sms]\nbackend = \"file\"\n[sms.file]\npath = \"/tmp/outbox\"\n";

    #[test]
    fn sms_is_off_without_its_table() {
        assert!(parse("").unwrap().sms.is_none());
    }

    #[test]
    fn sms_defaults() {
        let s = parse(FILE_SMS).unwrap().sms.unwrap();
        assert_eq!(s.backend, crate::gateway::Backend::File);
        assert_eq!(s.code_lifetime, Duration::from_secs(300));
        assert_eq!(s.max_sends_per_hour, 5);
        assert_eq!(s.max_total_sends_per_hour, 100);
        assert_eq!(s.resend_cooldown, Duration::from_secs(30));
        assert!(s.allowed_prefixes.is_empty(), "any number");
        assert_eq!(s.sender, "MFA");
        assert_eq!(
            s.message.to_string(),
            "Your verification code for {host} is {code}"
        );
        assert_eq!(s.file.unwrap().path, PathBuf::from("/tmp/outbox"));
        assert!(s.http.is_none() && s.command.is_none());
    }

    #[test]
    fn sms_cost_limits() {
        let s = parse(
            "[sms]\nbackend = \"file\"\nallowed_prefixes = [\"+372\", \"+1\"]\n\
             max_total_sends_per_hour = 40\nresend_cooldown = \"1m\"\n\
             [sms.file]\npath = \"/tmp/outbox\"\n",
        )
        .unwrap()
        .sms
        .unwrap();
        assert_eq!(s.allowed_prefixes, ["+372", "+1"]);
        assert_eq!(s.max_total_sends_per_hour, 40);
        assert_eq!(s.resend_cooldown, Duration::from_secs(60));
        let none = parse(
            "[sms]\nbackend = \"file\"\nresend_cooldown = \"0s\"\n[sms.file]\npath = \"/x\"\n",
        )
        .unwrap()
        .sms
        .unwrap();
        assert!(none.resend_cooldown.is_zero(), "0s turns the cooldown off");
    }

    #[test]
    fn sms_http_twilio_example() {
        let s = parse(
            "[sms]\nbackend = \"http\"\ncode_lifetime = \"2m\"\nmax_sends_per_hour = 3\n\
             sender = \"+15005550006\"\nmessage = \"{code} is your {{MFA}} code for {user}@{host}\"\n\
             [sms.http]\nurl = \"https://api.twilio.com/2010-04-01/Accounts/ACxxx/Messages.json\"\n\
             username = \"ACxxx\"\npassword_file = \"/etc/mfad/sms-password\"\ntimeout = \"5s\"\n",
        )
        .unwrap()
        .sms
        .unwrap();
        assert_eq!(s.code_lifetime, Duration::from_secs(120));
        assert_eq!(s.max_sends_per_hour, 3);
        assert_eq!(s.sender, "+15005550006");
        let h = s.http.unwrap();
        assert_eq!(h.url.host_str(), Some("api.twilio.com"));
        assert_eq!(h.username.as_deref(), Some("ACxxx"));
        assert_eq!(
            h.password_file,
            Some(PathBuf::from("/etc/mfad/sms-password"))
        );
        assert_eq!(h.timeout, Duration::from_secs(5));
        let form: Vec<(&str, String)> = h
            .form
            .iter()
            .map(|(k, t)| (k.as_str(), t.to_string()))
            .collect();
        assert_eq!(
            form,
            [
                ("To", "{phone}".to_owned()),
                ("From", "{sender}".to_owned()),
                ("Body", "{message}".to_owned())
            ]
        );
    }

    #[test]
    fn sms_http_custom_form_and_loopback() {
        for url in [
            "http://127.0.0.1:8080/send",
            "http://localhost/send",
            "http://[::1]:99/",
            "https://sms.example.com/api?x=1",
        ] {
            let text = format!(
                "[sms]\nbackend = \"http\"\n[sms.http]\nurl = \"{url}\"\n\
                 form = {{ to = \"{{phone}}\", text = \"{{message}}\", tag = \"mfa-{{user}}\" }}\n"
            );
            let h = parse(&text).unwrap().sms.unwrap().http.unwrap();
            assert_eq!(h.form.len(), 3, "{url}");
            assert_eq!(h.timeout, Duration::from_secs(10));
            assert!(h.username.is_none() && h.password_file.is_none());
        }
    }

    #[test]
    fn sms_command_gammu_example() {
        let s = parse(
            "[sms]\nbackend = \"command\"\n[sms.command]\n\
             argv = [\"/usr/bin/gammu-smsd-inject\", \"TEXT\", \"{phone}\", \"-text\", \"{message}\"]\n\
             timeout = \"20s\"\n",
        )
        .unwrap()
        .sms
        .unwrap();
        let c = s.command.unwrap();
        assert_eq!(c.argv.len(), 5);
        assert_eq!(c.argv[0].literal(), Some("/usr/bin/gammu-smsd-inject"));
        assert_eq!(c.timeout, Duration::from_secs(20));
    }

    /// The installed mfad.toml parses, and so does its [sms] example once
    /// uncommented.
    #[test]
    fn packaged_config_parses() {
        let text = include_str!("../../packaging/mfad.toml");
        assert!(parse(text).unwrap().sms.is_none());
        let start = text.find("\n# [sms]\n").unwrap();
        let sms: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let s = parse(&format!("{}{sms}\n", &text[..start]))
            .unwrap()
            .sms
            .unwrap();
        assert_eq!(s.backend, crate::gateway::Backend::Http);
        assert!(s.http.is_some() && s.command.is_some() && s.file.is_some());
    }

    /// Every bad [sms] value is one line naming the file, and the line and
    /// key or placeholder where the parser still knows them.
    #[test]
    fn sms_errors_name_line_and_key() {
        let http = "[sms]\nbackend = \"http\"\n[sms.http]\n";
        let cmd = "[sms]\nbackend = \"command\"\n[sms.command]\n";
        for (text, want) in [
            ("[sms]\ncode_lifetime = \"5m\"\n".to_string(), vec!["line 1", "backend"]),
            ("[sms]\nbackend = \"sms\"\n".into(), vec!["line 2", "sms", "http"]),
            ("[sms]\nbackend = \"file\"\n".into(), vec!["[sms.file]"]),
            ("[sms]\nbackend = \"http\"\n[sms.file]\npath = \"/x\"\n".into(), vec!["[sms.http]"]),
            (format!("{FILE_SMS}bogus = 1\n"), vec!["line 5", "bogus"]),
            ("[sms]\nbackend = \"file\"\nphone = \"1\"\n".into(), vec!["line 3", "phone"]),
            (
                "[sms]\nbackend = \"file\"\nmessage = \"Code {cod}\"\n".into(),
                vec!["line 3", "sms.message", "{cod}", "{code}, {host}, {user}"],
            ),
            (
                "[sms]\nbackend = \"file\"\nmessage = \"To {phone}: {code}\"\n".into(),
                vec!["line 3", "{phone}"],
            ),
            (
                "[sms]\nbackend = \"file\"\nmessage = \"no code here\"\n".into(),
                vec!["line 3", "must contain {code}"],
            ),
            (
                "[sms]\nbackend = \"file\"\nmessage = \"{code\"\n".into(),
                vec!["line 3", "unclosed", "{{"],
            ),
            ("[sms]\nbackend = \"file\"\ncode_lifetime = \"0s\"\n".into(), vec!["line 3", "sms.code_lifetime must be longer than 0s"]),
            ("[sms]\nbackend = \"file\"\ncode_lifetime = \"soon\"\n".into(), vec!["line 3", "invalid duration"]),
            ("[sms]\nbackend = \"file\"\nmax_sends_per_hour = 0\n".into(), vec!["line 3", "sms.max_sends_per_hour must be at least 1"]),
            ("[sms]\nbackend = \"file\"\nmax_total_sends_per_hour = 0\n".into(), vec!["line 3", "sms.max_total_sends_per_hour must be at least 1"]),
            ("[sms]\nbackend = \"file\"\nresend_cooldown = \"2h\"\n".into(), vec!["line 3", "sms.resend_cooldown must be at most 1h"]),
            ("[sms]\nbackend = \"file\"\nresend_cooldown = \"soon\"\n".into(), vec!["line 3", "sms.resend_cooldown", "invalid duration"]),
            ("[sms]\nbackend = \"file\"\nallowed_prefixes = [\"+372\", \"372\"]\n".into(), vec!["line 3", "sms.allowed_prefixes[1]", "\"372\"", "\"+\" and digits"]),
            ("[sms]\nbackend = \"file\"\nallowed_prefixes = [\"+\"]\n".into(), vec!["line 3", "sms.allowed_prefixes[0]"]),
            ("[sms]\nbackend = \"file\"\nallowed_prefixes = [\"+0\"]\n".into(), vec!["line 3", "sms.allowed_prefixes[0]"]),
            ("[sms]\nbackend = \"file\"\nallowed_prefixes = [\"+1 \"]\n".into(), vec!["line 3", "sms.allowed_prefixes[0]"]),
            ("[sms]\nbackend = \"file\"\nallowed_prefixes = \"+372\"\n".into(), vec!["line 3", "allowed_prefixes"]),
            ("[sms]\nbackend = \"file\"\n[sms.file]\npath = \"outbox\"\n".into(), vec!["line 4", "sms.file.path", "absolute"]),
            (format!("{http}url = \"http://sms.example.com/\"\n"), vec!["line 4", "sms.http.url", "https://"]),
            (format!("{http}url = \"http://10.0.0.1/\"\n"), vec!["line 4", "127.0.0.1"]),
            (format!("{http}url = \"ftp://x/\"\n"), vec!["line 4", "scheme"]),
            (format!("{http}url = \"not a url\"\n"), vec!["line 4", "not a URL"]),
            (format!("{http}url = \"https://u:p@x/\"\n"), vec!["line 4", "credentials"]),
            (format!("{http}form = {{ Body = \"{{message}}\" }}\n"), vec!["line 3", "url"]),
            (
                format!("{http}url = \"https://x/\"\nform = {{ To = \"{{phone}}\", Body = \"{{mesage}}\" }}\n"),
                vec!["line 5", "sms.http.form.Body", "{mesage}"],
            ),
            (
                format!("{http}url = \"https://x/\"\nform = {{ To = \"{{phone}}\" }}\n"),
                vec!["line 5", "never be sent"],
            ),
            (format!("{http}url = \"https://x/\"\nusername = \"AC\"\n"), vec!["username and password_file"]),
            (format!("{http}url = \"https://x/\"\npassword_file = \"/p\"\n"), vec!["username and password_file"]),
            (
                format!("{http}url = \"https://x/\"\nusername = \"a:b\"\npassword_file = \"/p\"\n"),
                vec!["':'"],
            ),
            (format!("{http}url = \"https://x/\"\npassword_file = \"p\"\n"), vec!["line 5", "absolute"]),
            (format!("{http}url = \"https://x/\"\ntimeout = \"0s\"\n"), vec!["line 5", "sms.http.timeout must be longer than 0s"]),
            (format!("{http}url = \"https://x/\"\npassword = \"hunter2\"\n"), vec!["line 5", "password"]),
            (format!("{cmd}argv = []\n"), vec!["line 4", "empty"]),
            (
                format!("{cmd}argv = [\"gammu-smsd-inject\", \"{{message}}\"]\n"),
                vec!["line 4", "argv[0]", "absolute"],
            ),
            (
                format!("{cmd}argv = [\"/usr/bin/{{user}}\", \"{{message}}\"]\n"),
                vec!["line 4", "argv[0]", "placeholders"],
            ),
            (
                format!("{cmd}argv = [\"/bin/x\", \"{{phone}}\", \"{{bogus}}\"]\n"),
                vec!["line 4", "sms.command.argv[2]", "{bogus}"],
            ),
            (format!("{cmd}argv = [\"/bin/x\", \"{{phone}}\"]\n"), vec!["line 4", "never be sent"]),
            (format!("{cmd}argv = [\"/bin/x\", \"{{code}}\"]\ntimeout = \"1 week\"\n"), vec!["line 5", "sms.command.timeout must be at most 5m"]),
            (format!("{cmd}argv = [\"/bin/x\", \"{{code}}\"]\ntimeout = \"soon\"\n"), vec!["line 5", "invalid duration"]),
        ] {
            let e = match parse(&text) {
                Ok(c) => panic!("{text:?} parsed: {:?}", c.sms),
                Err(e) => e.to_string(),
            };
            assert!(e.starts_with("/etc/mfad/mfad.toml"), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: {e}");
            for w in want {
                assert!(e.contains(w), "{text:?}: want {w:?} in {e}");
            }
        }
    }

    #[test]
    fn store_defaults_and_postgres() {
        let c = parse("").unwrap();
        assert_eq!(c.store.backend, crate::store::config::Backend::Sqlite);
        assert_eq!(c.trusted_devices.scope, TrustScope::Host);
        let c = parse(
            "[daemon]\nhost_name = \"web1\"\n[trusted_devices]\nscope = \"fleet\"\n\
             [store]\nbackend = \"postgres\"\nurl = \"postgresql://mfad@db.example.org/mfa\"\n\
             password_file = \"/etc/mfad/db-password\"\npool_size = 8\ntimeout = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(c.store.backend, crate::store::config::Backend::Postgres);
        assert_eq!(c.store.pool_size, 8);
        assert_eq!(c.store.timeout, Duration::from_secs(2));
        assert_eq!(c.host_name(), "web1");
        assert_eq!(c.trust_host(), "");
        let c = parse("[daemon]\nhost_name = \"web2\"\n").unwrap();
        assert_eq!(c.trust_host(), "web2");
    }

    #[test]
    fn store_errors_say_why() {
        let pg = "[store]\nbackend = \"postgres\"\n";
        for (text, want) in [
            (pg.to_string(), vec!["needs url"]),
            (
                format!("{pg}url = \"postgresql://mfad@db.example.org/mfa?sslmode=disable\"\n"),
                vec!["sslmode=disable", "in clear"],
            ),
            (
                format!("{pg}url = \"postgresql://mfad:pw@db/mfa\"\n"),
                vec!["password_file"],
            ),
            (
                format!("{pg}url = \"postgresql://mfad@db/mfa\"\npool_size = 0\n"),
                vec!["pool_size"],
            ),
            (
                format!("{pg}url = \"postgresql://mfad@db/mfa\"\ntimeout = \"0s\"\n"),
                vec!["line 4", "store.timeout"],
            ),
            (
                format!("{pg}url = \"postgresql://mfad@db/mfa\"\npassword_file = \"pw\"\n"),
                vec!["line 4", "absolute"],
            ),
            (
                "[store]\nbackend = \"mysql\"\n".into(),
                vec!["line 2", "postgres"],
            ),
            (
                "[store]\nurl = \"postgresql://db/mfa\"\n".into(),
                vec!["backend = \"postgres\""],
            ),
            (
                "[trusted_devices]\nscope = \"site\"\n".into(),
                vec!["line 2", "fleet"],
            ),
            ("[daemon]\nhost_name = \"a b\"\n".into(), vec!["host_name"]),
        ] {
            let e = match parse(&text) {
                Ok(_) => panic!("{text:?} parsed"),
                Err(e) => e.to_string(),
            };
            assert!(!e.contains('\n'), "{text:?}: {e}");
            for w in want {
                assert!(e.contains(w), "{text:?}: want {w:?} in {e}");
            }
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (text, want) in [
            ("[lockout]\nduration = \"soon\"\n", "invalid duration"),
            ("[policy]\nmode = \"maybe\"\n", "line 2"),
            ("[totp]\nwindow = 99\n", "at most"),
            ("[lockout]\nmax_failures = 0\n", "at least 1"),
            ("[daemon]\nstate_dir = \"rel\"\n", "absolute"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
