//! mfad: the mfa daemon on the system D-Bus.

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use zbus::fdo::{RequestNameFlags, RequestNameReply};

use mfad::audit::Audit;
use mfad::config::{self, Config};
use mfad::error::{Error, Result};
use mfad::login_socket::{self, Listener as LoginListener};
use mfad::seal::Keys;
use mfad::service::{self, Core, Service};
use mfad::store;
use mfad::store::config::Backend;
use mfad::store::postgres::PostgresStore;
use mfad::store::sqlite::SqliteStore;
use mfad::users::{self, Directory};
use mfad::{dbus, gateway, random, totp};

const USAGE: &str = "usage: mfad [--check-config] [--config PATH] [migrate --to-postgres]";

/// What the command line asks for.
struct Args {
    config: PathBuf,
    /// The path was given with --config (so it must exist).
    explicit: bool,
    check: bool,
    /// `migrate --to-postgres`
    migrate: bool,
}

fn parse_args() -> std::result::Result<Option<Args>, String> {
    let mut args = std::env::args_os().skip(1);
    let mut config = None;
    let mut check = false;
    let mut migrate = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--check-config") => check = true,
            Some("migrate") if !migrate => match args.next().as_ref().and_then(|a| a.to_str()) {
                Some("--to-postgres") => migrate = true,
                _ => return Err("migrate needs --to-postgres".into()),
            },
            Some("--config") => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return Err("--config needs a path".into()),
            },
            Some("--help" | "-h") => {
                println!(
                    "{USAGE}\nServes org.mfad.Mfa1; see mfad.toml(5) and docs/configuration.md."
                );
                return Ok(None);
            }
            Some("--version" | "-V") => {
                println!("mfad {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if check && migrate {
        return Err("--check-config and migrate do not go together".into());
    }
    let explicit = config.is_some();
    Ok(Some(Args {
        config: config.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH)),
        explicit,
        check,
        migrate,
    }))
}

fn main() -> ExitCode {
    mfad::limit_malloc_arenas();
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfad: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Everything mfad creates (database, WAL, lock file) is for root alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let result = if args.check {
        check_config(&args.config, args.explicit)
    } else if args.migrate {
        migrate_to_postgres(&args.config)
    } else {
        run(&args.config, args.explicit)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfad: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: validates the file and prints what it would do; the
/// state database, when there is one, says who has a device.
fn check_config(path: &Path, explicit: bool) -> Result<()> {
    let config = Config::load(path, explicit)?;
    let db = config.daemon.state_dir.join("mfad.db");
    let runtime = runtime()?;
    // Never makes a key file: reads the one there is, if any.
    let keys = Arc::new(
        match Keys::load(&config.daemon.key_path()).map_err(Error::Io)? {
            Some(keys) => keys,
            None if config.store.backend == Backend::Sqlite
                && SqliteStore::holds_sealed_secrets(&config.daemon.state_dir)? =>
            {
                return Err(Error::Io(format!(
                    "the key file {} is missing; the database cannot be read without it",
                    config.daemon.key_path().display()
                )))
            }
            None => Keys::ephemeral().map_err(Error::Io)?,
        },
    );
    let store: Arc<dyn store::Store> = if config.store.backend == Backend::Postgres {
        store::config::open(
            &config,
            runtime.handle(),
            &|name| users::Nss.account(name),
            keys.clone(),
        )?
    } else if db.exists() {
        Arc::new(SqliteStore::open(
            &config.daemon.state_dir,
            &|name| users::Nss.account(name),
            keys.clone(),
        )?)
    } else {
        Arc::new(SqliteStore::open_in_memory()?)
    };
    let service = Service::new(Core {
        config: config.clone(),
        issuer: String::new(),
        store,
        audit: Arc::new(Audit::new(config::LogTarget::Stderr)),
        users: Box::new(users::Nss),
        random: Box::new(random::Os),
        keys,
        sms: None,
    });
    let missing = service.list_missing(0, dbus::now())?;
    print!(
        "{}",
        mfad::check::report(&config, path, &missing, &users::Nss)
    );
    Ok(())
}

fn run(path: &Path, explicit: bool) -> Result<()> {
    // No core dumps: a dump of mfad would hold the key and TOTP secrets.
    // Non-dumpable also keeps other processes of root's from ptrace-ing it
    // without CAP_SYS_PTRACE.
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| Error::Io(format!("cannot turn core dumps off: {e}")))?;
    let config = Config::load(path, explicit)?;
    let shared = config.store.backend == Backend::Postgres;
    let mut audit = Audit::new(config.daemon.log);
    if shared {
        audit = audit.naming_host(&config.host_name());
    }
    report_break_glass(&config.daemon.break_glass, &audit);
    let state_dir = config.daemon.state_dir.clone();
    let _lock = lock_state_dir(&state_dir)?;
    let bus = config.daemon.bus.clone();
    // Capabilities are per thread and new threads inherit them: dropped
    // here, before the runtime starts its threads, they are gone from all.
    drop_capabilities(&audit, config.session.max_duration.is_some());
    let runtime = runtime()?;
    let keys = Arc::new(daemon_key(&config, runtime.handle())?);
    let store = store::config::open(
        &config,
        runtime.handle(),
        &|name| users::Nss.account(name),
        keys.clone(),
    )?;
    if let Some(step) = store.refused_through() {
        // Codes of later steps work again from when the first of them is
        // current (earlier inside a wider window).
        let until = (step + 1).saturating_mul(totp::STEP_SECONDS);
        let now = u64::try_from(dbus::now()).unwrap_or(0);
        audit.warn(
            &format!(
                "mfad did not stop cleanly: authenticator codes of time steps up to {step} are refused; backup codes and SMS codes work"
            ),
            &[("seconds_left", &until.saturating_sub(now).to_string())],
        );
    }
    if shared {
        audit.info(
            "store",
            &[
                ("backend", "postgres"),
                (
                    "trust",
                    &format!("{:?}", config.trusted_devices.scope).to_lowercase(),
                ),
            ],
        );
    }
    let sms = match &config.sms {
        Some(sms) => Some(service::Sms {
            sender: Arc::new(gateway::Gateway::new(sms, runtime.handle().clone())?),
            code_lifetime: i64::try_from(sms.code_lifetime.as_secs()).unwrap_or(i64::MAX),
            limits: mfad::store::SendLimits {
                per_user: sms.max_sends_per_hour,
                total: sms.max_total_sends_per_hour,
                cooldown: i64::try_from(sms.resend_cooldown.as_secs()).unwrap_or(i64::MAX),
            },
            allowed_prefixes: sms.allowed_prefixes.clone(),
            login_wait: service::LOGIN_SEND_WAIT,
        }),
        None => None,
    };
    let login_socket = config.daemon.login_socket.clone();
    // PostgreSQL's calls wait on the network, on the main runtime: only
    // SQLite's run on the login socket's own threads.
    let login_calls = if shared {
        dbus::Run::Blocking
    } else {
        dbus::Run::Here
    };
    let service = Arc::new(Service::new(Core {
        config,
        issuer: String::new(),
        store: store.clone(),
        audit: Arc::new(audit),
        users: Box::new(users::Nss),
        random: Box::new(random::Os),
        keys,
        sms,
    }));
    let served = runtime.block_on(serve(
        service,
        &bus,
        (&login_socket, login_calls),
        path,
        explicit,
    ));
    // The service is not dropped at exit (calls may be in flight): the
    // store learns of the stop here, whatever ended the serving.
    store.stop_cleanly();
    served
}

/// Threads tokio's blocking pool may have (its default is 512): the bus's
/// calls, the login socket's that may wait (an SMS sent, PostgreSQL), and
/// what the runtime itself runs there (name lookups). More wait their
/// turn; each thread's memory stays until it has been idle for 10 s.
const MAX_BLOCKING_THREADS: usize = 32;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the runtime: {e}")))
}

/// One daemon (or migration) per state directory, whatever bus it serves;
/// the lock is taken before the database is opened, so two never migrate
/// it at once.
fn lock_state_dir(state_dir: &Path) -> Result<Flock<File>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| {
            Error::Io(format!(
                "cannot create state directory {}: {e}",
                state_dir.display()
            ))
        })?;
    let lock_path = state_dir.join("mfad.lock");
    let lock_file = File::create(&lock_path)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", lock_path.display())))?;
    Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| Error::Io(format!("{} is in use by another mfad", state_dir.display())))
}

/// `migrate --to-postgres`: the host's SQLite state into the shared
/// database, opened and sealed with the host's key file (the fleet's).
fn migrate_to_postgres(path: &Path) -> Result<()> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| Error::Io(format!("cannot turn core dumps off: {e}")))?;
    let config = Config::load(path, true)?;
    let _lock = lock_state_dir(&config.daemon.state_dir)?;
    let runtime = runtime()?;
    let keys = Arc::new(daemon_key(&config, runtime.handle())?);
    store::migrate::to_postgres(
        &config,
        runtime.handle(),
        &|name| users::Nss.account(name),
        keys,
        &mut std::io::stdout(),
    )
}

/// Logs every break-glass code used (by pam_mfa, while mfad could not be
/// asked), at each start until new codes are made.
fn report_break_glass(path: &Path, audit: &Audit) {
    match mfa_api::breakglass::uses(path) {
        Ok(uses) => {
            for u in uses {
                audit.warn(
                    "break-glass code was used",
                    &[("user", &u.user), ("at", &u.used_at.to_string())],
                );
            }
        }
        Err(e) if path.exists() => {
            audit.warn("break-glass codes unreadable", &[("error", &e.to_string())])
        }
        Err(_) => {}
    }
}

/// SIGHUP: re-reads the file. A bad one is refused and logged, and the
/// configuration in force stays.
fn reload(service: &Service, path: &Path, explicit: bool) {
    let audit = service.audit();
    match Config::load(path, explicit) {
        Ok(config) => {
            let kept = service.reload(config);
            audit.info("config reloaded", &[("path", &path.to_string_lossy())]);
            if !kept.is_empty() {
                audit.warn("config needs a restart", &[("unchanged", &kept.join(", "))]);
            }
        }
        Err(e) => audit.warn("config refused", &[("error", &e.to_string())]),
    }
}

async fn serve(
    service: Arc<Service>,
    bus: &str,
    (login_socket, login_calls): (&Path, dbus::Run),
    path: &Path,
    explicit: bool,
) -> Result<()> {
    // Before the name is owned: whoever sees mfad on the bus may stop it,
    // and SIGTERM must then end it cleanly, not by the default action.
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let conn = mfa_api::connect(bus)
        .await
        .map_err(|e| Error::Io(format!("cannot connect to the D-Bus bus {bus}: {e}")))?;
    let ctx = dbus::Context::new(service.clone(), tokio::runtime::Handle::current());
    let server = conn.object_server();
    server
        .at(mfa_api::OBJECT_PATH, dbus::Login(ctx.clone()))
        .await?;
    server
        .at(mfa_api::OBJECT_PATH, dbus::Account(ctx.clone()))
        .await?;
    server
        .at(mfa_api::OBJECT_PATH, dbus::Admin(ctx.clone()))
        .await?;
    // No replacement either way: a second mfad must fail, not take over.
    let taken = || {
        Error::Io(format!(
            "{} is already owned on {bus}; is another mfad running?",
            mfa_api::BUS_NAME
        ))
    };
    match conn
        .request_name_with_flags(mfa_api::BUS_NAME, RequestNameFlags::DO_NOT_QUEUE)
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {}
        Ok(_) | Err(zbus::Error::NameTaken) => return Err(taken()),
        Err(e) => {
            return Err(Error::Io(format!(
                "cannot own {} on {bus}: {e}",
                mfa_api::BUS_NAME
            )));
        }
    }
    // Once the name is owned: a second mfad has failed by now, before it
    // could take the socket of the first.
    let listener = LoginListener::open(login_socket)?;
    let socket_name = match &listener {
        Some(LoginListener {
            bound: Some(path), ..
        }) => path.display().to_string(),
        Some(_) => "passed by systemd".to_string(),
        None => "none".to_string(),
    };
    let accepting = match &listener {
        Some(l) => {
            let std = l
                .listener
                .try_clone()
                .map_err(|e| Error::Io(format!("cannot use the login socket: {e}")))?;
            Some(login_socket::start(std, ctx, service.audit(), login_calls)?)
        }
        None => None,
    };
    // On the blocking pool: the store's calls may block (PostgreSQL runs
    // them on this runtime).
    let sessions = service.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || sessions.start_sessions(runtime, dbus::now()))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    eprintln!("mfad: serving {} on {bus}", mfa_api::BUS_NAME);
    service
        .audit()
        .info("started", &[("bus", bus), ("login_socket", &socket_name)]);

    let lost = bus_lost(&conn);
    tokio::pin!(lost);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let service = service.clone();
                let path = path.to_path_buf();
                // The new config waits for the calls in flight: off the
                // runtime's threads.
                let _ = tokio::task::spawn_blocking(move || reload(&service, &path, explicit)).await;
            }
            why = &mut lost => {
                // Logins would wait for an mfad that no longer answers: better
                // to exit and be restarted (systemd) or activated again.
                // An error here is the bus going away while the watch was
                // being set up.
                let why = why.unwrap_or_else(|e| format!("lost the bus connection: {e}"));
                service.audit().warn("stopped", &[("reason", &why)]);
                return Err(Error::Io(format!("stopping: {why}")));
            }
        }
    }
    service.audit().info("stopped", &[]);
    if let Some(pool) = accepting {
        pool.stop();
    }
    drop(listener);
    let _ = conn.release_name(mfa_api::BUS_NAME).await;
    Ok(())
}

/// The daemon's key: read from `[daemon] key_file`, or made there at the
/// first start. A database that holds sealed secrets is useless without its
/// key, so a missing key file is then an error, never replaced by a new
/// key: the SQLite database in the state directory, and with PostgreSQL the
/// shared database, whose secrets are under the fleet's one key file.
fn daemon_key(config: &Config, runtime: &tokio::runtime::Handle) -> Result<Keys> {
    let path = config.daemon.key_path();
    let state_dir = &config.daemon.state_dir;
    if let Some(keys) = Keys::load(&path).map_err(Error::Io)? {
        return Ok(keys);
    }
    if SqliteStore::holds_sealed_secrets(state_dir)? {
        return Err(Error::Io(format!(
            "the key file {} is missing, and the database in {} cannot be read without it; \
             restore the key file from a backup",
            path.display(),
            state_dir.display()
        )));
    }
    if config.store.backend == Backend::Postgres {
        let settings = config.store.postgres(&config.trust_host())?;
        let probe = PostgresStore::open(
            &settings,
            runtime.clone(),
            Arc::new(Keys::ephemeral().map_err(Error::Io)?),
        )?;
        if probe.holds_secrets()? {
            return Err(Error::Io(format!(
                "the key file {} is missing, and the shared PostgreSQL database holds secrets \
                 sealed with the fleet's key; copy the key file of the other hosts there",
                path.display()
            )));
        }
    }
    Keys::create(&path, &random::Os).map_err(Error::Io)
}

/// Resolves when mfad loses its bus name (NameLost) or its connection to
/// the bus; says which.
async fn bus_lost(conn: &zbus::Connection) -> std::result::Result<String, zbus::Error> {
    use futures_core::Stream;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .member("NameLost")
        .add_arg(mfa_api::BUS_NAME)
        .build()?;
    let mut stream = zbus::MessageStream::for_match_rule(rule, conn, None).await?;
    let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await;
    Ok(match next {
        Some(Ok(_)) => format!("lost the bus name {}", mfa_api::BUS_NAME),
        Some(Err(e)) => format!("lost the bus connection: {e}"),
        None => "lost the bus connection".to_string(),
    })
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).map_err(|e| Error::Io(format!("cannot handle signals: {e}")))
}

/// mfad needs no capability: its files (configuration, key, database, lock)
/// belong to root, NSS files and the bus and PostgreSQL sockets are open to
/// all. Dropping them all limits what a bug in a handler could do.
/// With `[session] max_duration` on, two stay: CAP_KILL, to end a user's
/// session, and CAP_DAC_OVERRIDE, to write the warning on the user's
/// terminal (mode 0620, the user's).
fn drop_capabilities(audit: &Audit, sessions: bool) {
    use caps::{CapSet, Capability};
    let keep: &[Capability] = if sessions {
        &[Capability::CAP_KILL, Capability::CAP_DAC_OVERRIDE]
    } else {
        &[]
    };
    let mut failed = Vec::new();
    if let Ok(all) = caps::read(None, CapSet::Bounding) {
        for cap in all.into_iter().filter(|c| !keep.contains(c)) {
            if caps::drop(None, CapSet::Bounding, cap).is_err() {
                failed.push("bounding");
                break;
            }
        }
    }
    for (set, name) in [
        (CapSet::Ambient, "ambient"),
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        let kept = keep.iter().copied().collect();
        let done = if keep.is_empty() || matches!(set, CapSet::Ambient | CapSet::Inheritable) {
            caps::clear(None, set)
        } else {
            caps::set(None, set, &kept)
        };
        if done.is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        audit.warn("capabilities not dropped", &[("sets", &failed.join(","))]);
    }
}
