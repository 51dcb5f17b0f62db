//! Trusted devices, pure: which device a login comes from, and whether its
//! trust still holds under the configured lifetime at a given time.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// `[trusted_devices] lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Off,
    Forever,
    Secs(i64),
}

impl Lifetime {
    pub fn parse(s: &str) -> Result<Lifetime, String> {
        match s {
            "off" => Ok(Lifetime::Off),
            "forever" => Ok(Lifetime::Forever),
            _ => humantime::parse_duration(s)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .filter(|secs| *secs > 0)
                .map(Lifetime::Secs)
                .ok_or_else(|| {
                    format!("invalid lifetime {s:?}; use \"off\", \"forever\" or a duration like \"30d\"")
                }),
        }
    }

    /// When trust given at `trusted_at` ends; None for never. Computed from
    /// the lifetime in force now, so shortening it applies at once.
    pub fn expires(self, trusted_at: i64) -> Option<i64> {
        match self {
            Lifetime::Off => Some(trusted_at),
            Lifetime::Forever => None,
            Lifetime::Secs(s) => Some(trusted_at.saturating_add(s)),
        }
    }

    pub fn holds(self, trusted_at: i64, now: i64) -> bool {
        self != Lifetime::Off && self.expires(trusted_at).is_none_or(|e| e > now)
    }
}

/// What a device is recognised by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The SSH public key of the first factor, as `SHA256:<base64>`.
    Key(String),
    /// The remote host, for remote logins without a key.
    Host(String),
}

impl Identity {
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Key(_) => "key",
            Identity::Host(_) => "host",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Identity::Key(v) | Identity::Host(v) => v,
        }
    }
}

/// Longest SSH_AUTH_INFO_0 looked at; real ones are a few hundred bytes
/// (an RSA-16384 key line is about 2.8 KB).
const MAX_AUTH_INFO: usize = 16 * 1024;

/// The device a login comes from: the key that passed sshd's publickey step
/// (from `SSH_AUTH_INFO_0`, lines like `publickey ssh-ed25519 AAAA...`) if
/// any, else the remote host. Local logins (no rhost) have none: a console
/// is never trusted.
pub fn identity(rhost: &str, auth_info: &str) -> Option<Identity> {
    if auth_info.len() <= MAX_AUTH_INFO {
        for line in auth_info.lines() {
            let mut words = line.split_ascii_whitespace();
            if words.next() != Some("publickey") {
                continue;
            }
            let (Some(_key_type), Some(blob)) = (words.next(), words.next()) else {
                continue;
            };
            if let Ok(raw) = STANDARD.decode(blob) {
                return Some(Identity::Key(fingerprint(&raw)));
            }
        }
    }
    let rhost = rhost.trim();
    if rhost.is_empty() {
        None
    } else {
        Some(Identity::Host(rhost.to_string()))
    }
}

/// OpenSSH's SHA256 fingerprint of a public key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ssh-keygen -lf` of this key prints
    // SHA256:dkdXC32RLubLqVP3nqeUoCi0ALPbrFOAn7ox13tn5Vg.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBNtIS6ys3VoapH/tKTx2Y8H3bCnHjpRD+evliKsWIGw";

    #[test]
    fn lifetimes() {
        assert_eq!(Lifetime::parse("off"), Ok(Lifetime::Off));
        assert_eq!(Lifetime::parse("forever"), Ok(Lifetime::Forever));
        assert_eq!(Lifetime::parse("30d"), Ok(Lifetime::Secs(30 * 86400)));
        assert!(Lifetime::parse("0s").is_err());
        assert!(Lifetime::parse("later").is_err());
        let month = Lifetime::Secs(30 * 86400);
        assert!(month.holds(1000, 1000 + 30 * 86400 - 1));
        assert!(!month.holds(1000, 1000 + 30 * 86400));
        assert!(Lifetime::Forever.holds(0, i64::MAX));
        assert!(!Lifetime::Off.holds(1000, 1000));
    }

    #[test]
    fn a_public_key_wins_over_the_host() {
        let info = format!("password\npublickey ssh-ed25519 {KEY}\n");
        let id = identity("10.1.2.3", &info).unwrap();
        assert_eq!(id.kind(), "key");
        assert!(
            id.value().starts_with("SHA256:") && id.value().len() == 50,
            "{id:?}"
        );
        assert_eq!(
            identity("", &info),
            Some(id),
            "the key does not depend on the host"
        );
    }

    #[test]
    fn remote_logins_without_a_key_use_the_host_and_local_ones_have_none() {
        assert_eq!(
            identity("10.1.2.3", ""),
            Some(Identity::Host("10.1.2.3".into()))
        );
        assert_eq!(
            identity("10.1.2.3", "publickey ssh-ed25519 !!!"),
            Some(Identity::Host("10.1.2.3".into()))
        );
        assert_eq!(identity("", ""), None);
        assert_eq!(identity("  ", "password"), None);
    }

    #[test]
    fn fingerprint_matches_openssh() {
        let raw = STANDARD.decode(KEY).unwrap();
        assert_eq!(
            fingerprint(&raw),
            "SHA256:dkdXC32RLubLqVP3nqeUoCi0ALPbrFOAn7ox13tn5Vg"
        );
    }
}
