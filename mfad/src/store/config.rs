//! `[store]`: where mfad keeps its state, and opening it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::postgres::{self, PostgresStore};
use super::sqlite::SqliteStore;
use super::Store;
use crate::error::Error;
use crate::seal::Keys;
use crate::users::Account;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `STATE_DIR/mfad.db`, this host's alone.
    Sqlite,
    /// One database that every host of the fleet shares.
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: Backend,
    /// postgres: a `postgresql://` URL or `key=value` pairs, no password.
    pub url: String,
    /// postgres: the password's file (root's, mode 0600 or stricter).
    #[serde(deserialize_with = "password_file")]
    pub password_file: Option<PathBuf>,
    /// postgres: connections kept open.
    pub pool_size: usize,
    /// postgres: the longest one operation may take; past it the login is
    /// answered "mfad unavailable". Keep it below pam_mfa's `timeout=`.
    #[serde(deserialize_with = "timeout")]
    pub timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Sqlite,
            url: String::new(),
            password_file: None,
            pool_size: 4,
            timeout: Duration::from_secs(3),
        }
    }
}

/// The longest `[store] timeout`: pam_mfa's default `timeout=` is 10s, and
/// a login that waits longer is a hung login.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_POOL: usize = 100;

fn password_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s = String::deserialize(d)?;
    let p = PathBuf::from(&s);
    if !p.is_absolute() {
        return Err(serde::de::Error::custom(format!(
            "store.password_file must be an absolute path, not {s:?}"
        )));
    }
    Ok(Some(p))
}

fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let t = crate::config::parse_duration(&s).map_err(serde::de::Error::custom)?;
    if t.is_zero() || t > MAX_TIMEOUT {
        return Err(serde::de::Error::custom(format!(
            "store.timeout must be longer than 0s and at most {}",
            humantime::format_duration(MAX_TIMEOUT)
        )));
    }
    Ok(t)
}

impl StoreConfig {
    /// Checks what the parser could not: keys that belong to the other
    /// backend, and the URL (TLS for anything beyond this machine).
    pub fn validate(&self) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => {
                if !self.url.is_empty() || self.password_file.is_some() {
                    return Err(
                        "[store] url and password_file are for backend = \"postgres\"".into(),
                    );
                }
            }
            Backend::Postgres => {
                if self.url.is_empty() {
                    return Err("[store] backend = \"postgres\" needs url".into());
                }
                postgres::parse_url(&self.url)?;
                if self.pool_size == 0 || self.pool_size > MAX_POOL {
                    return Err(format!("[store] pool_size must be 1 to {MAX_POOL}"));
                }
            }
        }
        Ok(())
    }

    /// The PostgreSQL settings, reading the password file; `trust_host` is
    /// the host name trusted devices are kept under ('' for fleet-wide).
    pub fn postgres(&self, trust_host: &str) -> Result<postgres::Settings, Error> {
        let password = match &self.password_file {
            Some(p) => Some(crate::gateway::read_secret_file(
                "[store] password_file",
                p,
            )?),
            None => None,
        };
        Ok(postgres::Settings {
            url: self.url.clone(),
            password,
            pool_size: self.pool_size,
            timeout: self.timeout,
            trust_host: trust_host.into(),
        })
    }
}

/// Opens the configured store: the SQLite database in `state_dir`, or the
/// shared PostgreSQL database (reached now, its schema brought up to date).
/// `keys` seal secrets and key codes; with PostgreSQL they must be the
/// fleet's (every host the same key file).
pub fn open(
    config: &crate::config::Config,
    runtime: &tokio::runtime::Handle,
    account_of: &dyn Fn(&str) -> Option<Account>,
    keys: Arc<Keys>,
) -> Result<Arc<dyn Store>, Error> {
    Ok(match config.store.backend {
        Backend::Sqlite => Arc::new(SqliteStore::open_serving(
            &config.daemon.state_dir,
            account_of,
            keys,
        )?),
        Backend::Postgres => {
            let settings = config.store.postgres(&config.trust_host())?;
            Arc::new(PostgresStore::open(&settings, runtime.clone(), keys)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn postgres_with(password_file: PathBuf) -> StoreConfig {
        StoreConfig {
            backend: Backend::Postgres,
            url: "postgresql://mfad@db.example.org/mfa".into(),
            password_file: Some(password_file),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn the_password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db-password");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = postgres_with(p.clone())
            .postgres("h")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("[store] password_file") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = postgres_with(p).postgres("h").unwrap();
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.trust_host, "h");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "Debug shows no password"
        );
    }
}
