//! The Admin interface: list, status, reset, unlock, trusted devices.

use super::trusted::{self, Whose};
use super::{now, Ctx};
use crate::cli::{AdminCommand, AdminTrustedCommand};
use crate::error::Error;
use crate::output::{self, LocalTime};

pub async fn run(ctx: &Ctx, command: AdminCommand) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let admin = ctx.admin(&conn).await?;
    let term = &ctx.term;
    match command {
        AdminCommand::List { missing: true } => {
            let users = admin.list_missing().await.map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::missing_json(&users))
            } else {
                term.print(&output::missing_text(&users))
            }
        }
        AdminCommand::Remove { user, device_id } => {
            admin
                .remove_device(&user, &device_id)
                .await
                .map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::ok_json())
            } else {
                term.print(&format!(
                    "Removed device {} of {}.\n",
                    output::clean(&device_id),
                    output::clean(&user)
                ))
            }
        }
        AdminCommand::List { missing: false } => {
            let users = admin.list_users().await.map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::list_json(&users))
            } else {
                term.print(&output::list_text(&users, now(), &LocalTime::of))
            }
        }
        AdminCommand::Status { user } => {
            let s = admin.user_status(&user).await.map_err(|e| ctx.api(e))?;
            if term.json {
                return term.print_json(&output::status_json(&s));
            }
            let trusted = trusted::fetch(ctx, &conn, Whose::User(&user)).await?;
            let now = now();
            term.print(&format!(
                "{}{}",
                output::status_text(&s, now, &LocalTime::of),
                output::trusted_count_line(&trusted, now)
            ))
        }
        AdminCommand::Reset { user } => {
            admin.reset(&user).await.map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::ok_json())
            } else {
                term.print(&format!(
                    "Reset {}: every device, backup code, trusted device and lockout removed.\n",
                    output::clean(&user)
                ))
            }
        }
        AdminCommand::Unlock { user } => {
            admin.unlock(&user).await.map_err(|e| ctx.api(e))?;
            if term.json {
                term.print_json(&output::ok_json())
            } else {
                term.print(&format!(
                    "Unlocked {}: failed attempts cleared.\n",
                    output::clean(&user)
                ))
            }
        }
        AdminCommand::Trusted { user, command } => match command {
            None => trusted::list(ctx, &conn, Whose::User(&user)).await,
            Some(AdminTrustedCommand::Remove(which)) => {
                trusted::remove(ctx, &conn, Whose::User(&user), which).await
            }
        },
    }
}
