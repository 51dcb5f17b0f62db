//! `/etc/mfad/mfad.toml`. Unknown keys are errors, reported with their line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::policy::Mode;
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
}

impl Default for TrustedDevices {
    fn default() -> Self {
        // Off unless the admin opts in: every login asks for a code.
        TrustedDevices {
            lifetime: Lifetime::Off,
        }
    }
}

fn lifetime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Lifetime, D::Error> {
    let s = String::deserialize(d)?;
    Lifetime::parse(&s).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub max_failures: u32,
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: Daemon::default(),
            policy: Policy {
                mode: Mode::Optional,
            },
            totp: Totp { window: 1 },
            lockout: LockoutConfig::default(),
            trusted_devices: TrustedDevices::default(),
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
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Optional,
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
        }
    }
}

/// Durations as "30s", "15m", "30d".
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); use a form like \"30s\", \"15m\" or \"30d\""
            ))
        })
    }
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
        if !self.daemon.state_dir.is_absolute() {
            return bad("[daemon] state_dir must be an absolute path".into());
        }
        if self.daemon.bus.is_empty() {
            return bad("[daemon] bus must be \"system\" or a D-Bus address".into());
        }
        Ok(())
    }

    pub fn lockout_limits(&self) -> crate::lockout::Limits {
        crate::lockout::Limits {
            max_failures: self.lockout.max_failures,
            duration_secs: i64::try_from(self.lockout.duration.as_secs()).unwrap_or(i64::MAX),
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
