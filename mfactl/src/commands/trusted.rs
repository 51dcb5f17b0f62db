//! Trusted devices: `trusted list|remove` on the caller's own account
//! (Account interface, user "") and `admin trusted USER [remove]` (Admin
//! interface). Both render the same way.

use mfa_api::TrustedDevice;
use zbus::Connection;

use super::{now, Ctx};
use crate::cli::TrustedRemove;
use crate::error::Error;
use crate::output::{self, LocalTime};

/// Whose trusted devices: the caller's, or (as an admin) a named user's.
#[derive(Debug, Clone, Copy)]
pub enum Whose<'a> {
    Own,
    User(&'a str),
}

/// Fetches the devices on an open connection (also used by `status`).
pub async fn fetch(
    ctx: &Ctx,
    conn: &Connection,
    whose: Whose<'_>,
) -> Result<Vec<TrustedDevice>, Error> {
    match whose {
        Whose::Own => ctx.account(conn).await?.trusted_devices("").await,
        Whose::User(user) => ctx.admin(conn).await?.trusted_devices(user).await,
    }
    .map_err(|e| ctx.api(e))
}

pub async fn list(ctx: &Ctx, conn: &Connection, whose: Whose<'_>) -> Result<(), Error> {
    let devices = fetch(ctx, conn, whose).await?;
    if ctx.term.json {
        ctx.term.print_json(&output::trusted_json(&devices))
    } else {
        ctx.term
            .print(&output::trusted_text(&devices, now(), &LocalTime::of))
    }
}

pub async fn remove(
    ctx: &Ctx,
    conn: &Connection,
    whose: Whose<'_>,
    which: TrustedRemove,
) -> Result<(), Error> {
    // clap's argument group makes this exactly one of the two; checked
    // again rather than trusted, since a wrong guess would remove too much.
    let id = match (which.id, which.all) {
        (Some(id), false) => Some(id),
        (None, true) => None,
        _ => return Err(Error::Usage("give a trusted device ID or --all".into())),
    };
    let term = &ctx.term;
    match id {
        Some(id) => {
            match whose {
                Whose::Own => {
                    ctx.account(conn)
                        .await?
                        .remove_trusted_device("", &id)
                        .await
                }
                Whose::User(user) => {
                    ctx.admin(conn)
                        .await?
                        .remove_trusted_device(user, &id)
                        .await
                }
            }
            .map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::ok_json())
            } else {
                term.print(&format!("Removed trusted device {}.\n", output::clean(&id)))
            }
        }
        None => {
            let removed = match whose {
                Whose::Own => {
                    ctx.account(conn)
                        .await?
                        .remove_all_trusted_devices("")
                        .await
                }
                Whose::User(user) => {
                    ctx.admin(conn)
                        .await?
                        .remove_all_trusted_devices(user)
                        .await
                }
            }
            .map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::removed_json(removed))
            } else {
                term.print(&output::removed_text(removed))
            }
        }
    }
}
