//! The Admin interface: list, status, reset, unlock, trusted devices.

use super::session;
use super::trusted::{self, Whose};
use super::{now, Ctx};
use crate::cli::{AdminCommand, AdminTrustedCommand};
use crate::error::Error;
use crate::output::{self, LocalTime};

pub async fn run(ctx: &Ctx, command: AdminCommand) -> Result<(), Error> {
    if let AdminCommand::BreakGlass { count, file, .. } = &command {
        return break_glass(ctx, usize::from(*count), file);
    }
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
        AdminCommand::Reset {
            user,
            end_sessions: false,
        } => {
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
        AdminCommand::Reset {
            user,
            end_sessions: true,
        } => session::reset_and_end(ctx, &admin, &user).await,
        AdminCommand::Sessions { user } => {
            session::admin_list(ctx, &admin, user.as_deref().unwrap_or("")).await
        }
        AdminCommand::EndSession { id } => session::end(ctx, &admin, &id).await,
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
        AdminCommand::BreakGlass { .. } => Ok(()),
        AdminCommand::Trusted { user, command } => match command {
            None => trusted::list(ctx, &conn, Whose::User(&user)).await,
            Some(AdminTrustedCommand::Remove(which)) => {
                trusted::remove(ctx, &conn, Whose::User(&user), which).await
            }
        },
    }
}

/// Writes new break-glass codes to `file` and prints them: the only time
/// they are seen. No call to mfad: it is for when mfad cannot be asked.
fn break_glass(ctx: &Ctx, count: usize, file: &std::path::Path) -> Result<(), Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::File(
            "Only root may make break-glass codes.".to_string(),
        ));
    }
    let (codes, text) =
        mfa_api::breakglass::generate(count).map_err(|e| Error::File(e.to_string()))?;
    mfa_api::breakglass::write(file, &text).map_err(|e| Error::File(e.to_string()))?;
    let term = &ctx.term;
    if term.json {
        term.print_json(&serde_json::json!({"file": file, "codes": codes}))
    } else {
        term.print(&format!(
            "Break-glass codes, each good for one login while mfad cannot be asked \
             (stored hashed in {}; earlier codes no longer work). Keep them offline:\n{}\n",
            file.display(),
            codes.join("\n")
        ))
    }
}
