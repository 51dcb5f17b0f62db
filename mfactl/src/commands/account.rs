//! A user's own account: status, removing a device, new backup codes.

use mfa_api::AccountProxy;
use nix::unistd::geteuid;

use super::current;
use super::trusted::{self, Whose};
use super::{now, Ctx};
use crate::error::Error;
use crate::input::normalize_code;
use crate::output::{self, LocalTime};

pub async fn status(ctx: &Ctx) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let s = account.status("").await.map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        // The agreed status document has no trusted devices; `trusted list` has them.
        return ctx.term.print_json(&output::status_json(&s));
    }
    let trusted = trusted::fetch(ctx, &conn, Whose::Own).await?;
    let duration = account.session_duration("").await.map_err(|e| ctx.api(e))?;
    let now = now();
    ctx.term.print(&format!(
        "{}{}{}",
        output::status_text(&s, now, &LocalTime::of),
        output::trusted_count_line(&trusted, now),
        super::session::duration_text(&duration)
    ))
}

/// The code that authorizes a destructive change: `--code`, else root needs
/// none (mfad ignores it for root), else asked for at a prompt (where Enter
/// sends one by SMS to a user with a phone).
async fn authorizing_code(
    ctx: &Ctx,
    account: &AccountProxy<'_>,
    given: Option<String>,
) -> Result<String, Error> {
    if let Some(code) = given {
        return Ok(normalize_code(&code));
    }
    if geteuid().is_root() {
        return Ok(String::new());
    }
    let factors = current::factors(ctx, account).await?;
    current::ask(ctx, account, &factors).await
}

pub async fn remove(ctx: &Ctx, device_id: &str, code: Option<String>) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let code = authorizing_code(ctx, &account, code).await?;
    account
        .remove_device("", device_id, &code)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term.print_json(&output::ok_json())
    } else {
        ctx.term
            .print(&format!("Removed device {}.\n", output::clean(device_id)))
    }
}

pub async fn backup_codes(ctx: &Ctx, code: Option<String>) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let code = authorizing_code(ctx, &account, code).await?;
    let codes = account
        .regenerate_backup_codes("", &code)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term.print_json(&output::backup_codes_json(&codes))
    } else {
        ctx.term.print(&format!(
            "New backup codes; the old ones no longer work.\n\n{}",
            output::backup_codes_text(&codes)
        ))
    }
}
