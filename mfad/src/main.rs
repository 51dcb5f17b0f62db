//! mfad: the mfa daemon on the system D-Bus.

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};

use mfad::audit::Audit;
use mfad::config::{self, Config};
use mfad::error::{Error, Result};
use mfad::service::{self, Core, Service};
use mfad::store;
use mfad::store::config::Backend;
use mfad::users::{self, Directory};
use mfad::{dbus, gateway, random};

const USAGE: &str = "usage: mfad [--config PATH] [migrate --to-postgres]";

/// What mfad was asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Serve,
    /// `migrate --to-postgres`
    MigrateToPostgres,
}

fn parse_args() -> std::result::Result<Option<(PathBuf, bool, Command)>, String> {
    let mut args = std::env::args_os().skip(1);
    let mut config = None;
    let mut command = Command::Serve;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("migrate") if command == Command::Serve => {
                match args.next().as_ref().and_then(|a| a.to_str()) {
                    Some("--to-postgres") => command = Command::MigrateToPostgres,
                    _ => return Err("migrate needs --to-postgres".into()),
                }
            }
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
    Ok(Some(match config {
        Some(p) => (p, true, command),
        None => (PathBuf::from(config::DEFAULT_PATH), false, command),
    }))
}

fn main() -> ExitCode {
    let (path, explicit, command) = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfad: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Everything mfad creates (database, WAL, lock file) is for root alone.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let result = match command {
        Command::Serve => run(&path, explicit),
        Command::MigrateToPostgres => migrate_to_postgres(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfad: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One daemon (or migration) per state directory, whatever bus it serves;
/// the lock is taken before the database is opened, so two never migrate
/// it at once.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<Flock<File>> {
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

fn migrate_to_postgres(path: &std::path::Path) -> Result<()> {
    let config = Config::load(path, true)?;
    let _lock = lock_state_dir(&config.daemon.state_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the runtime: {e}")))?;
    store::migrate::to_postgres(
        &config,
        runtime.handle(),
        &|name| users::Nss.account(name),
        &mut std::io::stdout(),
    )
}

fn run(path: &std::path::Path, explicit: bool) -> Result<()> {
    let config = Config::load(path, explicit)?;
    let shared = config.store.backend == Backend::Postgres;
    let mut audit = Audit::new(config.daemon.log);
    if shared {
        audit = audit.naming_host(&config.host_name());
    }
    let state_dir = config.daemon.state_dir.clone();
    let _lock = lock_state_dir(&state_dir)?;
    let bus = config.daemon.bus.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the runtime: {e}")))?;
    let store = store::config::open(&config, runtime.handle(), &|name| users::Nss.account(name))?;
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
            max_sends_per_hour: sms.max_sends_per_hour,
            login_wait: service::LOGIN_SEND_WAIT,
        }),
        None => None,
    };
    let service = Arc::new(Service::new(Core {
        config,
        issuer: String::new(),
        store,
        audit: Arc::new(audit),
        users: Box::new(users::Nss),
        random: Box::new(random::Os),
        sms,
    }));
    runtime.block_on(serve(service, &bus))
}

async fn serve(service: Arc<Service>, bus: &str) -> Result<()> {
    // Before the name is owned: whoever sees mfad on the bus may stop it,
    // and SIGTERM must then end it cleanly, not by the default action.
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let conn = mfa_api::connect(bus)
        .await
        .map_err(|e| Error::Io(format!("cannot connect to the D-Bus bus {bus}: {e}")))?;
    let proxy = DBusProxy::new(&conn).await?;
    let ctx = dbus::Context::new(service.clone(), proxy, tokio::runtime::Handle::current());
    let server = conn.object_server();
    server
        .at(mfa_api::OBJECT_PATH, dbus::Login(ctx.clone()))
        .await?;
    server
        .at(mfa_api::OBJECT_PATH, dbus::Account(ctx.clone()))
        .await?;
    server.at(mfa_api::OBJECT_PATH, dbus::Admin(ctx)).await?;
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
    drop_capabilities(service.audit());
    eprintln!("mfad: serving {} on {bus}", mfa_api::BUS_NAME);
    service.audit().info("started", &[("bus", bus)]);

    let lost = bus_lost(&conn);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        why = lost => {
            // Logins would wait for an mfad that no longer answers: better
            // to exit and be restarted (systemd) or activated again.
            let why = why.unwrap_or_else(|e| e.to_string());
            service.audit().warn("stopped", &[("reason", &why)]);
            return Err(Error::Io(format!("stopping: {why}")));
        }
    }
    service.audit().info("stopped", &[]);
    let _ = conn.release_name(mfa_api::BUS_NAME).await;
    Ok(())
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

/// mfad needs no capability once its files are open and its name is owned:
/// the database and lock file belong to root, and NSS files are world
/// readable. Dropping them all limits what a bug in a handler could do.
fn drop_capabilities(audit: &Audit) {
    use caps::CapSet;
    let mut failed = Vec::new();
    if let Ok(all) = caps::read(None, CapSet::Bounding) {
        for cap in all {
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
        if caps::clear(None, set).is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        audit.warn("capabilities not dropped", &[("sets", &failed.join(","))]);
    }
}
