//! One module per command group; each command connects, makes its calls and
//! renders the result through `Term`.

mod account;
mod admin;
mod current;
mod enroll;
mod session;
mod sms;
mod trusted;

use std::time::{SystemTime, UNIX_EPOCH};

use mfa_api::{AccountProxy, AdminProxy};
use zbus::proxy::CacheProperties;
use zbus::Connection;

use crate::cli::{Cli, Command, PhoneCommand, TrustedCommand};
use crate::error::{self, Error};
use crate::output::Term;

/// What every command needs: where mfad is, and how to talk back.
pub struct Ctx {
    pub bus: String,
    pub term: Term,
}

impl Ctx {
    pub async fn connect(&self) -> Result<Connection, Error> {
        mfa_api::connect(&self.bus)
            .await
            .map_err(|e| error::from_zbus(e, &self.bus))
    }

    /// The Account interface. No property cache: mfad has no properties,
    /// and a cache would cost a bus round trip.
    pub async fn account<'c>(&self, conn: &'c Connection) -> Result<AccountProxy<'c>, Error> {
        AccountProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| error::from_zbus(e, &self.bus))
    }

    pub async fn admin<'c>(&self, conn: &'c Connection) -> Result<AdminProxy<'c>, Error> {
        AdminProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| error::from_zbus(e, &self.bus))
    }

    /// Maps the error of a call to mfad.
    pub fn api(&self, e: mfa_api::Error) -> Error {
        error::from_api(e, &self.bus)
    }
}

/// Now, as Unix seconds (for "locked until" against today).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let ctx = Ctx {
        bus: cli.bus,
        term: Term { json: cli.json },
    };
    // Reading stdin inside the future blocks the thread that also drives
    // the connection; that is fine, as no reply is awaited meanwhile.
    zbus::block_on(async {
        match cli.command {
            Command::Enroll { kind } => enroll::run(&ctx, kind).await,
            Command::Status => account::status(&ctx).await,
            Command::Remove { device_id, code } => account::remove(&ctx, &device_id, code).await,
            Command::BackupCodes { code } => account::backup_codes(&ctx, code).await,
            Command::Phone {
                command: PhoneCommand::Set { phone },
            } => sms::set(&ctx, &phone).await,
            Command::Trusted { command } => {
                let conn = ctx.connect().await?;
                let own = trusted::Whose::Own;
                match command {
                    TrustedCommand::List => trusted::list(&ctx, &conn, own).await,
                    TrustedCommand::Remove(which) => trusted::remove(&ctx, &conn, own, which).await,
                }
            }
            Command::SessionDuration { duration } => {
                session::duration(&ctx, duration.as_deref()).await
            }
            Command::Sessions => session::own(&ctx).await,
            Command::Admin { command } => admin::run(&ctx, command).await,
        }
    })
}
