//! The shared backend: one PostgreSQL database for a fleet of hosts, each
//! running its own mfad. Everything that must hold across hosts (replay,
//! lockout counts, one-time codes, SMS quotas) is one statement or one
//! transaction in the database, never a read here and a write there.
//!
//! The [`Store`] trait is synchronous and called from tokio's blocking pool:
//! each operation runs on the daemon's runtime (`Handle::block_on`) within
//! `timeout`, so a slow or unreachable database ends a login as "mfad
//! unavailable" ([`Error::Unavailable`]) before the PAM module gives up.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{
    BackupCode, CodeId, Device, Error, Result, SendId, SendLimits, SendSlot, SessionRecord,
    SmsCode, Store, Summary, Trusted, UserState, SEND_WINDOW_SECS,
};
use crate::codes::Hashed;
use crate::factor::{DeviceData, Kind};
use crate::lockout::{Limits, Lockout};
use crate::seal::Keys;
use crate::users::Account;

/// Schema migrations (`store/migrations/postgres/`), applied in order;
/// `mfad_schema.version` counts those done. Never edit a released one.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001-schema.sql"),
    include_str!("migrations/postgres/0002-sms-codes-grace.sql"),
    include_str!("migrations/postgres/0003-sessions.sql"),
];

/// The advisory lock that lets one mfad of the fleet migrate at a time
/// ("mfa" in ASCII; any constant the fleet agrees on).
const MIGRATION_LOCK: i64 = 0x6d6661;

/// The advisory lock every SMS send reservation of the fleet takes, so the
/// database-wide hourly budget is never overshot ("mfas").
const SEND_LOCK: i64 = 0x6d666173;

/// How to reach the shared database.
#[derive(Clone)]
pub struct Settings {
    /// libpq-style: a `postgresql://` URL or `key=value` pairs.
    pub url: String,
    /// From `[store] password_file`.
    pub password: Option<String>,
    pub pool_size: usize,
    /// The longest one operation may take, waiting for a connection included.
    pub timeout: Duration,
    /// The host whose trusted devices this daemon sees; empty when trust is
    /// fleet-wide.
    pub trust_host: String,
}

impl std::fmt::Debug for Settings {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("trust_host", &self.trust_host)
            .finish_non_exhaustive()
    }
}

/// Parses `url` and applies the TLS rule: a database reached over the
/// network (not a unix socket, not loopback) is spoken to over TLS only.
/// `sslmode=prefer` (libpq's default, which falls back to clear text) is
/// raised to `require`; `sslmode=disable` is refused with the reason.
pub fn parse_url(url: &str) -> std::result::Result<tokio_postgres::Config, String> {
    Ok(parse_url_and_roots(url)?.0)
}

/// [`parse_url`], and the `sslrootcert` file when the string names one
/// (libpq's key, which tokio-postgres does not know: it is taken out).
pub fn parse_url_and_roots(
    url: &str,
) -> std::result::Result<(tokio_postgres::Config, Option<PathBuf>), String> {
    let (url, roots) = take_sslrootcert(url)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("[store] url is not a PostgreSQL connection string: {e}"))?;
    if config.get_password().is_some() {
        return Err("[store] url must not hold a password; put it in [store] password_file".into());
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err("[store] url names no host (use a host name, an address or host=/run/postgresql for the local socket)".into());
    }
    let remote: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            Host::Tcp(name) if !is_loopback(name) => Some(name.clone()),
            _ => None,
        })
        .chain(
            config
                .get_hostaddrs()
                .iter()
                .filter(|a| !a.is_loopback())
                .map(IpAddr::to_string),
        )
        .collect();
    if let Some(host) = remote.first() {
        match config.get_ssl_mode() {
            SslMode::Disable => {
                return Err(format!(
                    "[store] url has sslmode=disable for {host}, which is not this machine: \
                     codes' hashes, secrets and the password would cross the network in clear; \
                     use sslmode=require (TLS is optional only on a unix socket or loopback)"
                ));
            }
            SslMode::Prefer => {
                config.ssl_mode(SslMode::Require);
            }
            _ => {}
        }
    }
    Ok((config, roots))
}

/// Splits `sslrootcert=PATH` off a URL's query or a `key=value` string.
/// `sslrootcert=system` (libpq 16) is the default: the system's roots.
fn take_sslrootcert(url: &str) -> std::result::Result<(String, Option<PathBuf>), String> {
    const KEY: &str = "sslrootcert=";
    let mut found = None;
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None));
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix(KEY) {
                Some(v) => {
                    found = Some(v.replace("%2F", "/").replace("%2f", "/"));
                    false
                }
                None => true,
            })
            .collect();
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        url.split_whitespace()
            .filter(|pair| match pair.strip_prefix(KEY) {
                Some(v) => {
                    found = Some(v.trim_matches('\'').to_owned());
                    false
                }
                None => true,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let roots = match found.as_deref() {
        None | Some("system") => None,
        Some(p) if Path::new(p).is_absolute() => Some(PathBuf::from(p)),
        Some(p) => {
            return Err(format!(
                "[store] url: sslrootcert must be an absolute path, not {p:?}"
            ));
        }
    };
    Ok((rest, roots))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

pub struct PostgresStore {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    trust_host: String,
    /// The fleet's key: every host must use the same key file, or one
    /// host's sealed secrets and keyed codes do not open on another.
    keys: Arc<Keys>,
}

impl PostgresStore {
    /// Sets up the pool and brings the schema up to date (once across the
    /// fleet, under an advisory lock). Fails when the database cannot be
    /// reached now: a daemon that starts must know its schema is right.
    /// Must not be called from inside the runtime's async context.
    pub fn open(
        settings: &Settings,
        runtime: tokio::runtime::Handle,
        keys: Arc<Keys>,
    ) -> Result<PostgresStore> {
        let (mut config, roots) = parse_url_and_roots(&settings.url).map_err(Error::Setup)?;
        if let Some(p) = &settings.password {
            config.password(p.as_bytes());
        }
        config.connect_timeout(settings.timeout);
        // The server gives up on a statement when mfad does (a lock wait
        // behind a stuck session), instead of finishing it unseen.
        let limit = format!(
            "-c statement_timeout={}",
            settings.timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {limit}"),
            _ => limit,
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("mfad");
        }
        let manager = Manager::from_config(
            config,
            RustlsConnect::new(roots.as_deref())?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| Error::Setup(format!("cannot set up the PostgreSQL pool: {e}")))?;
        let store = PostgresStore {
            pool,
            runtime,
            timeout: settings.timeout,
            trust_host: settings.trust_host.clone(),
            keys,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        // Migrations may take longer than one login's operation.
        let timeout = self.timeout.max(Duration::from_secs(60));
        self.run_within(timeout, async |c| {
            c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let done = migrate_locked(c).await;
            // Unlocked either way: a session lock outlives the transaction.
            c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await?;
            done
        })?
    }

    /// Whether the database holds anything only the fleet's key opens (a
    /// device's sealed secret, a keyed backup or SMS code): then a host
    /// without the key file must not make a key of its own.
    pub fn holds_secrets(&self) -> Result<bool> {
        self.run(async |c| {
            let row = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM backup_codes)
                     OR EXISTS (SELECT 1 FROM sms_codes)",
                    &[],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
    }

    /// The schema version, for tests.
    #[cfg(test)]
    pub fn schema_version(&self) -> Result<i64> {
        self.run(async |c| {
            let row = c
                .query_one("SELECT version::BIGINT FROM mfad_schema", &[])
                .await?;
            Ok(row.get::<_, i64>(0))
        })
    }

    fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> PgResult<T>,
    ) -> Result<T> {
        self.run_within(self.timeout, op)
    }

    /// Runs `op` on a pooled connection within `timeout`. A connection that
    /// broke is dropped by the pool (its recycling checks it), so the next
    /// operation after the database is back opens a fresh one.
    fn run_within<T>(
        &self,
        timeout: Duration,
        op: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> PgResult<T>,
    ) -> Result<T> {
        self.runtime.block_on(async {
            let work = async {
                let mut client = self.pool.get().await.map_err(pool_error)?;
                op(&mut client).await
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r.map_err(pg_error),
                Err(_) => Err(Error::Unavailable(format!(
                    "the PostgreSQL database did not answer within {}",
                    humantime::format_duration(timeout)
                ))),
            }
        })
    }
}

/// What [`PostgresStore::import`] did with one account.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Devices added (already-present ones are not counted).
    pub devices: u32,
    /// Of those, added under a new id (the id was another device's).
    pub renamed: u32,
    /// A phone not added: the fleet already has another for the user (at
    /// most one per user).
    pub phones_skipped: u32,
    pub backup_codes: u32,
    pub trusted: u32,
}

impl PostgresStore {
    /// Merges one account's state from another store (a host's SQLite
    /// database) into the shared one, in one transaction: every device and
    /// backup code the shared database does not hold yet, the newest step,
    /// the higher failure count and lock, the trusted devices (under this
    /// daemon's trust host). Running it twice adds nothing the second time.
    /// `backup` are the account's unused backup codes in that store;
    /// `spare_ids` (one per device) name devices whose id is taken.
    pub fn import(
        &self,
        account: &Account,
        state: &UserState,
        backup: &[BackupCode],
        trusted: &[Trusted],
        spare_ids: &[String],
    ) -> Result<Imported> {
        let uid = uid64(account.uid);
        self.run_within(self.timeout.max(Duration::from_secs(60)), async |c| {
            let tx = c.transaction().await?;
            let mut done = Imported::default();
            // Sealed data differs at every write: devices already present
            // are found by what they hold, opened with the fleet's key.
            let mut present = Vec::new();
            for r in query(
                &tx,
                "SELECT id, kind, label, data, created, last_used FROM devices WHERE uid = $1",
                &[&uid],
            )
            .await?
            {
                present.push(device_of(&r, &self.keys, account.uid)?.data);
            }
            exec(
                &tx,
                "INSERT INTO users (uid, name, last_step, failures, locked_until, locks)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (uid) DO UPDATE SET
                 last_step = GREATEST(users.last_step, excluded.last_step),
                 failures = GREATEST(users.failures, excluded.failures),
                 locked_until = GREATEST(users.locked_until, excluded.locked_until),
                 locks = GREATEST(users.locks, excluded.locks)",
                &[
                    &uid,
                    &account.name,
                    &to_i64(state.last_step),
                    &i64::from(state.lockout.failures),
                    &state.lockout.locked_until,
                    &i64::from(state.lockout.locks),
                ],
            )
            .await?;
            for (i, d) in state.devices.iter().enumerate() {
                let kind = d.data.kind().as_str();
                if present.contains(&d.data) {
                    continue;
                }
                if d.data.kind() == Kind::Sms {
                    let phone = query_opt(
                        &tx,
                        "SELECT 1 FROM devices WHERE uid = $1 AND kind = $2",
                        &[&uid, &kind],
                    )
                    .await?;
                    if phone.is_some() {
                        done.phones_skipped += 1;
                        continue;
                    }
                }
                let taken = query_opt(
                    &tx,
                    "SELECT 1 FROM devices WHERE uid = $1 AND id = $2",
                    &[&uid, &d.id],
                )
                .await?
                .is_some();
                let id = match (taken, spare_ids.get(i)) {
                    (false, _) => &d.id,
                    (true, Some(spare)) => {
                        done.renamed += 1;
                        spare
                    }
                    (true, None) => {
                        return Err(PgError::Store(Error::Setup(format!(
                            "device id {} is taken and no spare id was given",
                            d.id
                        ))));
                    }
                };
                let data = d
                    .data
                    .encode(&self.keys, account.uid, id)
                    .map_err(Error::Corrupt)?;
                exec(
                    &tx,
                    "INSERT INTO devices (uid, id, kind, label, data, created, last_used)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&uid, id, &kind, &d.label, &data, &d.created, &d.last_used],
                )
                .await?;
                present.push(d.data.clone());
                done.devices += 1;
            }
            for b in backup {
                let n = exec(
                    &tx,
                    "INSERT INTO backup_codes (uid, salt, hash) SELECT $1, $2, $3
                     WHERE NOT EXISTS (SELECT 1 FROM backup_codes
                                       WHERE uid = $1 AND salt = $2 AND hash = $3)",
                    &[&uid, &b.code.salt, &b.code.hash],
                )
                .await?;
                done.backup_codes += to_u32(i64::try_from(n).unwrap_or(0));
            }
            for t in trusted {
                let n = exec(
                    &tx,
                    "INSERT INTO trusted_devices
                     (host, uid, id, kind, identity, trusted_at, first_used, last_used)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                    &[
                        &self.trust_host,
                        &uid,
                        &t.id,
                        &t.kind,
                        &t.identity,
                        &t.trusted_at,
                        &t.first_used,
                        &t.last_used,
                    ],
                )
                .await?;
                done.trusted += to_u32(i64::try_from(n).unwrap_or(0));
            }
            tx.commit().await?;
            Ok(done)
        })
    }
}

/// Either the operation's own error or a `Setup` one from a migration.
enum PgError {
    Pg(tokio_postgres::Error),
    Store(Error),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Pg(e)
    }
}

impl From<Error> for PgError {
    fn from(e: Error) -> Self {
        PgError::Store(e)
    }
}

type PgResult<T> = std::result::Result<T, PgError>;

async fn migrate_locked(c: &deadpool_postgres::Client) -> PgResult<Result<()>> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS mfad_schema (version INTEGER NOT NULL);
         INSERT INTO mfad_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM mfad_schema)",
    )
    .await?;
    let version: i32 = c
        .query_one("SELECT version FROM mfad_schema", &[])
        .await?
        .get(0);
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Ok(Err(Error::Setup(format!(
            "the PostgreSQL database has schema version {version}, newer than this mfad knows ({}); refusing to touch it",
            MIGRATIONS.len()
        ))));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        // One transaction per migration: PostgreSQL's DDL is transactional.
        c.batch_execute("BEGIN").await?;
        let step = async {
            c.batch_execute(sql).await?;
            let next = i32::try_from(i + 1).unwrap_or(i32::MAX);
            c.execute("UPDATE mfad_schema SET version = $1", &[&next])
                .await?;
            c.batch_execute("COMMIT").await
        };
        if let Err(e) = step.await {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    }
    Ok(Ok(()))
}

/// Connection trouble (the database is down, restarting, full) is
/// `Unavailable`: logins treat it as "mfad unavailable". Anything else the
/// database said is a `Backend` error.
fn pg_error(e: PgError) -> Error {
    let e = match e {
        PgError::Store(e) => return e,
        PgError::Pg(e) => e,
    };
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 08: connection exception; 57P01-57P03: shutdown or not yet up;
        // 57014: statement_timeout ran out; 55P03: a lock not available;
        // 53: insufficient resources (too many connections, disk full).
        if code.starts_with("08")
            || code.starts_with("57P0")
            || code.starts_with("53")
            || code == "57014"
            || code == "55P03"
        {
            return Error::Unavailable(format!("PostgreSQL: {db}"));
        }
        return Error::Backend(format!("PostgreSQL: {db}"));
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<io::Error>());
    if e.is_closed() || io {
        Error::Unavailable(format!("PostgreSQL connection: {}", chain(&e)))
    } else {
        Error::Backend(format!("PostgreSQL: {}", chain(&e)))
    }
}

fn pool_error(e: PoolError) -> PgError {
    match e {
        PoolError::Backend(e) => PgError::Pg(e),
        other => PgError::Store(Error::Unavailable(format!(
            "PostgreSQL connection pool: {other}"
        ))),
    }
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        next = cause.source();
    }
    s
}

// ---- TLS: tokio-postgres over tokio-rustls, with the system's roots ----

#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    /// The server's certificate must chain to the system's roots, or to
    /// those in `roots` (a PEM file) when given; its name is checked too.
    fn new(roots: Option<&Path>) -> Result<RustlsConnect> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use rustls_platform_verifier::BuilderVerifierExt;
        let setup = |e: String| Error::Setup(format!("cannot set up TLS for PostgreSQL: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?;
        let config = match roots {
            None => builder
                .with_platform_verifier()
                .map_err(|e| setup(e.to_string()))?,
            Some(path) => {
                let bad = |e: String| {
                    Error::Setup(format!("[store] url: sslrootcert {}: {e}", path.display()))
                };
                let mut store = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                    store
                        .add(cert.map_err(|e| bad(e.to_string()))?)
                        .map_err(|e| bad(e.to_string()))?;
                }
                if store.is_empty() {
                    return Err(bad("no certificate in it".into()));
                }
                builder.with_root_certificates(store)
            }
        }
        .with_no_client_auth();
        Ok(RustlsConnect(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = io::Error;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<RustlsConnector, Self::Error> {
        // tokio-postgres asks for a connector for a unix socket too (the
        // domain is then its directory) but never uses it there: a name
        // that is not a host name fails only if a handshake is tried.
        Ok(RustlsConnector {
            config: self.0.clone(),
            name: rustls::pki_types::ServerName::try_from(domain.to_owned()).ok(),
        })
    }
}

struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: Option<rustls::pki_types::ServerName<'static>>,
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS needs a host name or an address",
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(TlsStream(tls))
        })
    }
}

struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding: the certificate check already
        // binds the session to the server.
        ChannelBinding::none()
    }
}

// ---- the store ----

/// The host a session runs on: its processes are this machine's, whatever
/// `[daemon] host_name` says, so the kernel's host name.
fn session_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

fn uid64(uid: u32) -> i64 {
    i64::from(uid)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

async fn exec<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<u64> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

async fn query<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

async fn query_opt<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

/// Takes the user's row lock for the rest of the transaction, so that the
/// statements after it see no other host's change to the user in between.
async fn lock_user<C: GenericClient + Sync>(c: &C, uid: i64) -> PgResult<bool> {
    Ok(
        query_opt(c, "SELECT 1 FROM users WHERE uid = $1 FOR UPDATE", &[&uid])
            .await?
            .is_some(),
    )
}

fn device_of(r: &Row, keys: &Keys, uid: u32) -> Result<Device> {
    let id: String = r.get(0);
    let kind: String = r.get(1);
    let kind = Kind::parse(&kind)
        .ok_or_else(|| Error::Corrupt(format!("device {id} has unknown kind {kind:?}")))?;
    let data: Vec<u8> = r.get(3);
    let data = DeviceData::decode(kind, &data, keys, uid, &id)
        .map_err(|e| Error::Corrupt(format!("device {id}: {e}")))?;
    Ok(Device {
        id,
        label: r.get(2),
        data,
        created: r.get(4),
        last_used: r.get(5),
    })
}

fn trusted_of(r: &Row) -> Trusted {
    Trusted {
        id: r.get(0),
        kind: r.get(1),
        identity: r.get(2),
        trusted_at: r.get(3),
        first_used: r.get(4),
        last_used: r.get(5),
    }
}

fn lockout_of(r: &Row, at: usize) -> Lockout {
    Lockout {
        failures: to_u32(r.get(at)),
        locked_until: r.get(at + 1),
        locks: to_u32(r.get(at + 2)),
    }
}

async fn replace_backup_codes<C: GenericClient + Sync>(
    c: &C,
    uid: i64,
    backup: &[Hashed],
) -> PgResult<()> {
    exec(c, "DELETE FROM backup_codes WHERE uid = $1", &[&uid]).await?;
    for code in backup {
        exec(
            c,
            "INSERT INTO backup_codes (uid, salt, hash) VALUES ($1, $2, $3)",
            &[&uid, &code.salt, &code.hash],
        )
        .await?;
    }
    Ok(())
}

const CLEAR_FAILURES: &str =
    "UPDATE users SET failures = 0, locked_until = 0, locks = 0 WHERE uid = $1";

impl Store for PostgresStore {
    fn user(&self, uid: u32) -> Result<UserState> {
        let account = uid;
        let uid = uid64(uid);
        let rows = self.run(async |c| {
            // One snapshot for the three reads.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let base = query_opt(
                &tx,
                "SELECT last_step, name, failures, locked_until, locks FROM users WHERE uid = $1",
                &[&uid],
            )
            .await?;
            let Some(base) = base else {
                return Ok(None);
            };
            let devices = query(
                &tx,
                "SELECT id, kind, label, data, created, last_used FROM devices
                 WHERE uid = $1 ORDER BY created, id",
                &[&uid],
            )
            .await?;
            let sms = query(
                &tx,
                "SELECT salt, hash, expires FROM sms_codes WHERE uid = $1 ORDER BY id",
                &[&uid],
            )
            .await?;
            tx.commit().await?;
            Ok(Some((base, devices, sms)))
        })?;
        let Some((base, devices, sms)) = rows else {
            return Ok(UserState::default());
        };
        Ok(UserState {
            name: base.get(1),
            last_step: to_u64(base.get(0)),
            lockout: lockout_of(&base, 2),
            devices: devices
                .iter()
                .map(|r| device_of(r, &self.keys, account))
                .collect::<Result<_>>()?,
            sms_codes: sms
                .iter()
                .map(|r| SmsCode {
                    code: Hashed {
                        salt: r.get(0),
                        hash: r.get(1),
                    },
                    expires: r.get(2),
                })
                .collect(),
        })
    }

    fn backup_codes(&self, uid: u32) -> Result<Vec<BackupCode>> {
        let uid = uid64(uid);
        let rows = self.run(async |c| {
            query(
                &*c,
                "SELECT id, salt, hash FROM backup_codes WHERE uid = $1 ORDER BY id",
                &[&uid],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| BackupCode {
                id: CodeId(r.get(0)),
                code: Hashed {
                    salt: r.get(1),
                    hash: r.get(2),
                },
            })
            .collect())
    }

    fn accept_totp_step(&self, uid: u32, device_id: &str, step: u64, now: i64) -> Result<bool> {
        let (uid, step) = (uid64(uid), to_i64(step));
        self.run(async |c| {
            let tx = c.transaction().await?;
            // The row lock makes a second host's same step wait, then see
            // the new last_step and match nothing.
            let changed = exec(
                &tx,
                "UPDATE users SET last_step = $2, failures = 0, locked_until = 0, locks = 0
                 WHERE uid = $1 AND last_step < $2 AND locked_until <= $3",
                &[&uid, &step, &now],
            )
            .await?;
            if changed != 1 {
                return Ok(false);
            }
            exec(
                &tx,
                "UPDATE devices SET last_used = $3 WHERE uid = $1 AND id = $2",
                &[&uid, &device_id, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn use_backup_code(&self, uid: u32, id: CodeId, now: i64) -> Result<bool> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            // The user's row first: a lock another host sets meanwhile is seen.
            lock_user(&tx, uid).await?;
            let deleted = exec(
                &tx,
                "DELETE FROM backup_codes WHERE uid = $1 AND id = $2
                 AND NOT EXISTS (SELECT 1 FROM users WHERE uid = $1 AND locked_until > $3)",
                &[&uid, &id.0, &now],
            )
            .await?;
            if deleted != 1 {
                return Ok(false);
            }
            exec(&tx, CLEAR_FAILURES, &[&uid]).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn use_sms_code(&self, uid: u32, device_id: &str, code: &Hashed, now: i64) -> Result<bool> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            lock_user(&tx, uid).await?;
            let deleted = exec(
                &tx,
                "DELETE FROM sms_codes WHERE uid = $1 AND salt = $2 AND hash = $3 AND expires > $4
                 AND NOT EXISTS (SELECT 1 FROM users WHERE uid = $1 AND locked_until > $4)",
                &[&uid, &code.salt, &code.hash, &now],
            )
            .await?;
            if deleted == 0 {
                return Ok(false);
            }
            // One login, one code: the others sent for it die with it.
            exec(&tx, "DELETE FROM sms_codes WHERE uid = $1", &[&uid]).await?;
            exec(&tx, CLEAR_FAILURES, &[&uid]).await?;
            exec(
                &tx,
                "UPDATE devices SET last_used = $3 WHERE uid = $1 AND id = $2",
                &[&uid, &device_id, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn record_failure(&self, uid: u32, now: i64, limits: Limits) -> Result<Lockout> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            // FOR UPDATE: every host's failure is counted, none overwrites
            // another's.
            let current = query_opt(
                &tx,
                "SELECT failures, locked_until, locks FROM users WHERE uid = $1 FOR UPDATE",
                &[&uid],
            )
            .await?;
            let Some(current) = current else {
                // Nothing to lock for a user who never enrolled.
                return Ok(Lockout::default().after_failure(now, limits));
            };
            let next = lockout_of(&current, 0).after_failure(now, limits);
            exec(
                &tx,
                "UPDATE users SET failures = $2, locked_until = $3, locks = $4 WHERE uid = $1",
                &[
                    &uid,
                    &i64::from(next.failures),
                    &next.locked_until,
                    &i64::from(next.locks),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(next)
        })
    }

    fn add_sms_code(&self, uid: u32, code: &Hashed, expires: i64, keep: usize) -> Result<()> {
        let uid = uid64(uid);
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.run(async |c| {
            let tx = c.transaction().await?;
            // Per UID, like reserve_send: two hosts adding at once keep
            // the newest `keep` between them.
            exec(
                &tx,
                "SELECT pg_advisory_xact_lock($1)",
                &[&(MIGRATION_LOCK << 32 | uid)],
            )
            .await?;
            exec(
                &tx,
                "INSERT INTO sms_codes (uid, salt, hash, expires) VALUES ($1, $2, $3, $4)",
                &[&uid, &code.salt, &code.hash, &expires],
            )
            .await?;
            exec(
                &tx,
                "DELETE FROM sms_codes WHERE uid = $1 AND id NOT IN
                 (SELECT id FROM sms_codes WHERE uid = $1 ORDER BY id DESC LIMIT $2)",
                &[&uid, &keep],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn reserve_send(&self, uid: u32, now: i64, limits: SendLimits) -> Result<SendSlot> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            // One reservation at a time across the fleet: the user may have
            // no row (a send before enrolling), and the hourly budget of
            // all users together is the database's, so the counts and the
            // insert are serialised by a transaction-scoped advisory lock.
            // Sends are rare; the lock is held for a few statements.
            exec(&tx, "SELECT pg_advisory_xact_lock($1)", &[&SEND_LOCK]).await?;
            let since = now - SEND_WINDOW_SECS;
            exec(&tx, "DELETE FROM sms_sends WHERE at <= $1", &[&since]).await?;
            let row = query(
                &tx,
                "SELECT count(*), min(at), max(at) FROM sms_sends WHERE uid = $1",
                &[&uid],
            )
            .await?;
            let (count, oldest, newest): (i64, Option<i64>, Option<i64>) = row
                .first()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .unwrap_or((0, None, None));
            if let Some(newest) = newest.filter(|n| now < n + limits.cooldown) {
                return Ok(SendSlot::Cooldown {
                    next_at: newest + limits.cooldown,
                });
            }
            if count >= i64::from(limits.per_user) {
                return Ok(SendSlot::UserFull {
                    next_at: oldest.unwrap_or(now) + SEND_WINDOW_SECS,
                });
            }
            let row = query(&tx, "SELECT count(*), min(at) FROM sms_sends", &[]).await?;
            let (total, oldest): (i64, Option<i64>) = row
                .first()
                .map(|r| (r.get(0), r.get(1)))
                .unwrap_or((0, None));
            if total >= i64::from(limits.total) {
                return Ok(SendSlot::TotalFull {
                    next_at: oldest.unwrap_or(now) + SEND_WINDOW_SECS,
                });
            }
            let id = query(
                &tx,
                "INSERT INTO sms_sends (uid, at) VALUES ($1, $2) RETURNING id",
                &[&uid, &now],
            )
            .await?
            .first()
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
            tx.commit().await?;
            Ok(SendSlot::Granted(SendId(id)))
        })
    }

    fn release_send(&self, id: SendId) -> Result<()> {
        self.run(async |c| {
            exec(&*c, "DELETE FROM sms_sends WHERE id = $1", &[&id.0]).await?;
            Ok(())
        })
    }

    fn add_device(
        &self,
        account: &Account,
        device: &Device,
        step: u64,
        backup: Option<&[Hashed]>,
    ) -> Result<()> {
        let (uid, step) = (uid64(account.uid), to_i64(step));
        let data = device
            .data
            .encode(&self.keys, account.uid, &device.id)
            .map_err(Error::Corrupt)?;
        self.run(async |c| {
            let tx = c.transaction().await?;
            exec(
                &tx,
                "INSERT INTO users (uid, name, last_step) VALUES ($1, $2, $3)
                 ON CONFLICT (uid) DO UPDATE SET name = excluded.name,
                 last_step = GREATEST(users.last_step, excluded.last_step)",
                &[&uid, &account.name, &step],
            )
            .await?;
            exec(
                &tx,
                "INSERT INTO devices (uid, id, kind, label, data, created, last_used)
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
                &[
                    &uid,
                    &device.id,
                    &device.data.kind().as_str(),
                    &device.label,
                    &data,
                    &device.created,
                ],
            )
            .await?;
            if let Some(backup) = backup {
                replace_backup_codes(&tx, uid, backup).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn replace_device_data(&self, uid: u32, device_id: &str, data: &DeviceData) -> Result<bool> {
        let kind = data.kind().as_str();
        let data = data
            .encode(&self.keys, uid, device_id)
            .map_err(Error::Corrupt)?;
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            let n = exec(
                &tx,
                "UPDATE devices SET data = $4 WHERE uid = $1 AND id = $2 AND kind = $3",
                &[&uid, &device_id, &kind, &data],
            )
            .await?;
            exec(&tx, "DELETE FROM sms_codes WHERE uid = $1", &[&uid]).await?;
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    fn remove_device(&self, uid: u32, device_id: &str) -> Result<bool> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            // No other host adds a device between the removal and the count.
            lock_user(&tx, uid).await?;
            let n = exec(
                &tx,
                "DELETE FROM devices WHERE uid = $1 AND id = $2",
                &[&uid, &device_id],
            )
            .await?;
            exec(
                &tx,
                "DELETE FROM backup_codes WHERE uid = $1
                 AND NOT EXISTS (SELECT 1 FROM devices WHERE uid = $1)",
                &[&uid],
            )
            .await?;
            // A code sent to a phone that is gone must not log in.
            exec(
                &tx,
                "DELETE FROM sms_codes WHERE uid = $1
                 AND NOT EXISTS (SELECT 1 FROM devices WHERE uid = $1 AND kind = $2)",
                &[&uid, &Kind::Sms.as_str()],
            )
            .await?;
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    fn replace_backup_codes(&self, uid: u32, backup: &[Hashed]) -> Result<()> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            replace_backup_codes(&tx, uid, backup).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn trusted(&self, uid: u32, kind: &str, identity: &str) -> Result<Option<Trusted>> {
        let uid = uid64(uid);
        self.run(async |c| {
            Ok(query_opt(
                &*c,
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE host = $1 AND uid = $2 AND kind = $3 AND identity = $4",
                &[&self.trust_host, &uid, &kind, &identity],
            )
            .await?
            .as_ref()
            .map(trusted_of))
        })
    }

    fn trusted_list(&self, uid: u32) -> Result<Vec<Trusted>> {
        let uid = uid64(uid);
        self.run(async |c| {
            Ok(query(
                &*c,
                "SELECT id, kind, identity, trusted_at, first_used, last_used FROM trusted_devices
                 WHERE host = $1 AND uid = $2 ORDER BY first_used, id",
                &[&self.trust_host, &uid],
            )
            .await?
            .iter()
            .map(trusted_of)
            .collect())
        })
    }

    fn trust(&self, uid: u32, new_id: &str, kind: &str, identity: &str, now: i64) -> Result<()> {
        let uid = uid64(uid);
        self.run(async |c| {
            exec(
                &*c,
                "INSERT INTO trusted_devices
                 (host, uid, id, kind, identity, trusted_at, first_used, last_used)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
                 ON CONFLICT (host, uid, kind, identity)
                 DO UPDATE SET trusted_at = excluded.trusted_at, last_used = excluded.last_used",
                &[&self.trust_host, &uid, &new_id, &kind, &identity, &now],
            )
            .await?;
            Ok(())
        })
    }

    fn touch_trusted(&self, uid: u32, id: &str, now: i64) -> Result<()> {
        let uid = uid64(uid);
        self.run(async |c| {
            exec(
                &*c,
                "UPDATE trusted_devices SET last_used = $4 WHERE host = $1 AND uid = $2 AND id = $3",
                &[&self.trust_host, &uid, &id, &now],
            )
            .await?;
            Ok(())
        })
    }

    fn untrust(&self, uid: u32, id: Option<&str>) -> Result<u32> {
        let uid = uid64(uid);
        self.run(async |c| {
            let n = match id {
                Some(id) => {
                    exec(
                        &*c,
                        "DELETE FROM trusted_devices WHERE host = $1 AND uid = $2 AND id = $3",
                        &[&self.trust_host, &uid, &id],
                    )
                    .await?
                }
                None => {
                    exec(
                        &*c,
                        "DELETE FROM trusted_devices WHERE host = $1 AND uid = $2",
                        &[&self.trust_host, &uid],
                    )
                    .await?
                }
            };
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn reset(&self, uid: u32) -> Result<bool> {
        let uid = uid64(uid);
        self.run(async |c| {
            let tx = c.transaction().await?;
            lock_user(&tx, uid).await?;
            let devices = exec(&tx, "DELETE FROM devices WHERE uid = $1", &[&uid]).await?;
            let codes = exec(&tx, "DELETE FROM backup_codes WHERE uid = $1", &[&uid]).await?;
            // A reset is fleet-wide: every host's trust in the user's
            // devices goes.
            let trusted = exec(&tx, "DELETE FROM trusted_devices WHERE uid = $1", &[&uid]).await?;
            exec(&tx, "DELETE FROM sms_codes WHERE uid = $1", &[&uid]).await?;
            // The next login that must enroll starts a new grace period.
            let grace = exec(&tx, "DELETE FROM grace WHERE uid = $1", &[&uid]).await?;
            let locks = exec(
                &tx,
                "UPDATE users SET failures = 0, locked_until = 0, locks = 0
                 WHERE uid = $1 AND (failures > 0 OR locked_until > 0 OR locks > 0)",
                &[&uid],
            )
            .await?;
            tx.commit().await?;
            Ok(devices + codes + trusted + locks + grace > 0)
        })
    }

    fn start_grace(&self, uid: u32, now: i64) -> Result<i64> {
        let uid = uid64(uid);
        self.run(async |c| {
            // One statement: the first host to ask stores its `now`, every
            // other gets that start back (the no-op update returns it).
            let row = query(
                &*c,
                "INSERT INTO grace (uid, started) VALUES ($1, $2)
                 ON CONFLICT (uid) DO UPDATE SET started = grace.started RETURNING started",
                &[&uid, &now],
            )
            .await?;
            Ok(row.first().map(|r| r.get::<_, i64>(0)).unwrap_or(now))
        })
    }

    fn grace_starts(&self) -> Result<Vec<(u32, i64)>> {
        self.run(async |c| {
            let rows = query(&*c, "SELECT uid, started FROM grace ORDER BY uid", &[]).await?;
            Ok(rows
                .iter()
                .filter_map(|r| Some((u32::try_from(r.get::<_, i64>(0)).ok()?, r.get(1))))
                .collect())
        })
    }

    fn session_choice(&self, uid: u32) -> Result<Option<i64>> {
        let uid = uid64(uid);
        self.run(async |c| {
            let row = query_opt(
                &*c,
                "SELECT secs FROM session_choice WHERE uid = $1",
                &[&uid],
            )
            .await?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })
    }

    fn set_session_choice(&self, uid: u32, secs: Option<i64>) -> Result<()> {
        let uid = uid64(uid);
        self.run(async |c| {
            match secs {
                Some(secs) => {
                    exec(
                        &*c,
                        "INSERT INTO session_choice (uid, secs) VALUES ($1, $2)
                         ON CONFLICT (uid) DO UPDATE SET secs = EXCLUDED.secs",
                        &[&uid, &secs],
                    )
                    .await?
                }
                None => exec(&*c, "DELETE FROM session_choice WHERE uid = $1", &[&uid]).await?,
            };
            Ok(())
        })
    }

    fn add_session(&self, s: &SessionRecord) -> Result<()> {
        let host = session_host();
        let (uid, pid, pid_start) = (uid64(s.uid), i64::from(s.pid), to_i64(s.pid_start));
        self.run(async |c| {
            exec(
                &*c,
                "INSERT INTO sessions (host, id, uid, \"user\", service, tty, rhost,
                                       xdg_session_id, pid, pid_start, started, ends)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &host,
                    &s.id,
                    &uid,
                    &s.user,
                    &s.service,
                    &s.tty,
                    &s.rhost,
                    &s.xdg_session_id,
                    &pid,
                    &pid_start,
                    &s.started,
                    &s.ends,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn remove_session(&self, id: &str) -> Result<bool> {
        let host = session_host();
        self.run(async |c| {
            Ok(exec(
                &*c,
                "DELETE FROM sessions WHERE host = $1 AND id = $2",
                &[&host, &id],
            )
            .await?
                == 1)
        })
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>> {
        let host = session_host();
        self.run(async |c| {
            let rows = query(
                &*c,
                "SELECT id, uid, \"user\", service, tty, rhost, xdg_session_id, pid, pid_start,
                        started, ends
                 FROM sessions WHERE host = $1 ORDER BY ends, id",
                &[&host],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| SessionRecord {
                    id: r.get(0),
                    uid: to_u32(r.get(1)),
                    user: r.get(2),
                    service: r.get(3),
                    tty: r.get(4),
                    rhost: r.get(5),
                    xdg_session_id: r.get(6),
                    pid: i32::try_from(r.get::<_, i64>(7)).unwrap_or(0),
                    pid_start: to_u64(r.get(8)),
                    started: r.get(9),
                    ends: r.get(10),
                })
                .collect())
        })
    }

    fn unlock(&self, uid: u32) -> Result<bool> {
        let uid = uid64(uid);
        self.run(async |c| Ok(exec(&*c, CLEAR_FAILURES, &[&uid]).await? == 1))
    }

    fn list_users(&self) -> Result<Vec<Summary>> {
        self.run(async |c| {
            let rows = query(
                &*c,
                "SELECT u.name, u.uid,
                        (SELECT count(*) FROM devices d WHERE d.uid = u.uid),
                        (SELECT count(*) FROM backup_codes b WHERE b.uid = u.uid),
                        u.locked_until, u.failures
                 FROM users u ORDER BY u.name COLLATE \"C\", u.uid",
                &[],
            )
            .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        Summary {
                            user: r.get(0),
                            uid: r.get(1),
                            devices: to_u32(r.get(2)),
                            backup_codes_left: to_u32(r.get(3)),
                            locked_until: r.get(4),
                        },
                        r.get::<_, i64>(5),
                    )
                })
                .filter(|(s, failures)| {
                    s.devices > 0 || s.backup_codes_left > 0 || *failures > 0 || s.locked_until > 0
                })
                .map(|(s, _)| s)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_databases_need_tls() {
        for url in [
            "postgresql://mfad@db.example.org/mfa",
            "postgresql://mfad@db.example.org/mfa?sslmode=prefer",
            "host=10.0.0.5 user=mfad dbname=mfa",
        ] {
            let c = parse_url(url).unwrap();
            assert_eq!(c.get_ssl_mode(), SslMode::Require, "{url}");
        }
        let e = parse_url("postgresql://mfad@db.example.org/mfa?sslmode=disable").unwrap_err();
        assert!(
            e.contains("sslmode=disable") && e.contains("db.example.org") && e.contains("in clear"),
            "{e}"
        );
        for url in [
            "postgresql://mfad@localhost/mfa?sslmode=disable",
            "postgresql://mfad@127.0.0.1:5433/mfa?sslmode=disable",
            "host=/run/postgresql user=mfad dbname=mfa sslmode=disable",
        ] {
            let c = parse_url(url).unwrap();
            assert_eq!(c.get_ssl_mode(), SslMode::Disable, "{url}");
        }
        let e = parse_url("postgresql://mfad:hunter2@db.example.org/mfa").unwrap_err();
        assert!(e.contains("password_file") && !e.contains("hunter2"), "{e}");
        assert!(parse_url("not a url at all").is_err());
    }

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let (c, roots) = parse_url_and_roots(
            "postgresql://mfad@db.example.org/mfa?sslrootcert=/etc/mfad/ca.pem&sslmode=require",
        )
        .unwrap();
        assert_eq!(roots, Some(PathBuf::from("/etc/mfad/ca.pem")));
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let (c, roots) =
            parse_url_and_roots("host=db.example.org user=mfad dbname=mfa sslrootcert=/etc/ca.pem")
                .unwrap();
        assert_eq!(roots, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.get_dbname(), Some("mfa"));
        let (_, roots) =
            parse_url_and_roots("postgresql://mfad@db/mfa?sslrootcert=system").unwrap();
        assert_eq!(roots, None);
        let e = parse_url("postgresql://mfad@db/mfa?sslrootcert=ca.pem").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = RustlsConnect::new(Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }
}

/// The conformance suite against a real PostgreSQL server: one private
/// cluster for the test process (unix socket only, in a temp dir, run as
/// the postgres user), one fresh database per test. Needs root; a server
/// that cannot start fails every test, loudly.
#[cfg(all(test, feature = "postgres-tests"))]
mod conformance_on_postgres {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};

    use super::*;

    struct Cluster {
        socket_dir: PathBuf,
        bin: PathBuf,
        // Holds the watchdog's stdin: when this process ends, the pipe
        // closes and the watchdog stops the server and removes its files.
        _watchdog: Mutex<Child>,
        runtime: tokio::runtime::Runtime,
    }

    fn bin_dir() -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect(
                "PostgreSQL is not installed (/usr/lib/postgresql): run scripts/install-deps.sh",
            )
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
            .expect("no initdb under /usr/lib/postgresql/*/bin")
    }

    fn as_postgres(program: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    }

    fn cluster() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            assert!(
                nix::unistd::geteuid().is_root(),
                "the PostgreSQL conformance tests run as root (make test)"
            );
            let bin = bin_dir();
            let top = tempfile::Builder::new()
                .prefix("mfad-pg-")
                .tempdir()
                .unwrap()
                .keep();
            std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
            let data = top.join("data");
            std::fs::create_dir(&data).unwrap();
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&data)
                .status()
                .unwrap();
            assert!(status.success(), "cannot chown {}", data.display());
            let out = as_postgres(&bin.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--locale=C", "--encoding=UTF8", "-N", "-D"])
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut watchdog = Command::new("sh")
                .args([
                    "-c",
                    "setpriv --reuid=postgres --regid=postgres --init-groups -- \"$0\" -D \"$1\" -k \"$1\" \
                     -c listen_addresses= -c fsync=off >\"$2/log\" 2>&1 & pid=$!; read _; \
                     kill -INT $pid; wait $pid; rm -rf \"$2\"",
                ])
                .arg(bin.join("postgres"))
                .arg(&data)
                .arg(&top)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let ready = (0..300).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                Command::new(bin.join("pg_isready"))
                    .arg("-q")
                    .arg("-h")
                    .arg(&data)
                    .status()
                    .is_ok_and(|s| s.success())
            });
            if !ready {
                let log = std::fs::read_to_string(top.join("log")).unwrap_or_default();
                let _ = watchdog.stdin.take().map(|mut s| s.write_all(b"\n"));
                panic!("PostgreSQL did not start within 30s: {log}");
            }
            Cluster {
                socket_dir: data,
                bin,
                _watchdog: Mutex::new(watchdog),
                runtime: tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap(),
            }
        })
    }

    /// A store on a new, empty database of the test cluster.
    pub fn fresh(trust_host: &str) -> PostgresStore {
        static N: AtomicU32 = AtomicU32::new(0);
        let c = cluster();
        let db = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(c.bin.join("psql"))
            .arg("-h")
            .arg(&c.socket_dir)
            .args(["-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!("CREATE DATABASE {db}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PostgresStore::open(
            &Settings {
                url: format!("host={} user=postgres dbname={db}", c.socket_dir.display()),
                password: None,
                pool_size: 4,
                timeout: Duration::from_secs(10),
                trust_host: trust_host.into(),
            },
            c.runtime.handle().clone(),
            Arc::new(Keys::for_tests()),
        )
        .unwrap()
    }

    crate::store::conformance::suite!(fresh("host-a"));

    #[test]
    fn migrations_run_once_and_are_versioned() {
        let s = fresh("");
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        // Another daemon on the same database applies nothing twice.
        assert!(s.migrate().is_ok());
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn trust_is_per_host_unless_fleet_wide_and_reset_clears_every_host() {
        let a = fresh("a");
        let b = PostgresStore {
            pool: a.pool.clone(),
            runtime: a.runtime.clone(),
            timeout: a.timeout,
            trust_host: "b".into(),
            keys: a.keys.clone(),
        };
        let fleet = PostgresStore {
            trust_host: String::new(),
            pool: a.pool.clone(),
            runtime: a.runtime.clone(),
            timeout: a.timeout,
            keys: a.keys.clone(),
        };
        a.add_device(
            &crate::store::conformance::alice(),
            &crate::store::conformance::totp("d1"),
            1,
            None,
        )
        .unwrap();
        let alice = crate::store::conformance::ALICE;
        a.trust(alice, "t1", "key", "SHA256:k", 100).unwrap();
        assert!(a.trusted(alice, "key", "SHA256:k").unwrap().is_some());
        assert!(b.trusted(alice, "key", "SHA256:k").unwrap().is_none());
        assert!(fleet.trusted(alice, "key", "SHA256:k").unwrap().is_none());
        b.trust(alice, "t1", "key", "SHA256:k", 200).unwrap();
        assert_eq!(b.untrust(alice, None).unwrap(), 1);
        assert_eq!(
            a.trusted_list(alice).unwrap().len(),
            1,
            "b's untrust left a alone"
        );
        fleet.trust(alice, "t2", "key", "SHA256:k", 300).unwrap();
        assert!(b.reset(alice).unwrap());
        assert!(a.trusted_list(alice).unwrap().is_empty());
        assert!(fleet.trusted_list(alice).unwrap().is_empty());
    }

    #[test]
    fn an_unreachable_database_is_unavailable_within_the_timeout() {
        let c = cluster();
        let s = PostgresStore {
            pool: Pool::builder(Manager::from_config(
                parse_url("host=/nonexistent/mfa-test user=postgres dbname=x").unwrap(),
                RustlsConnect::new(None).unwrap(),
                ManagerConfig::default(),
            ))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .unwrap(),
            runtime: c.runtime.handle().clone(),
            timeout: Duration::from_secs(2),
            trust_host: String::new(),
            keys: Arc::new(Keys::for_tests()),
        };
        let t = std::time::Instant::now();
        let e = s.user(1000).unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
