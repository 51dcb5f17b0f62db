//! A user's own account: status, removing a device, new backup codes.

use nix::unistd::geteuid;

use super::trusted::{self, Whose};
use super::{now, Ctx};
use crate::error::Error;
use crate::input::{normalize_code, prompt_code};
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
    let now = now();
    ctx.term.print(&format!(
        "{}{}",
        output::status_text(&s, now, &LocalTime::of),
        output::trusted_count_line(&trusted, now)
    ))
}

/// The code that authorizes a destructive change: `--code`, else root needs
/// none (mfad ignores it for root), else asked for at a `Code: ` prompt.
fn authorizing_code(ctx: &Ctx, given: Option<String>) -> Result<String, Error> {
    if let Some(code) = given {
        return Ok(normalize_code(&code));
    }
    if geteuid().is_root() {
        return Ok(String::new());
    }
    ctx.term
        .say("Enter a current code from your authenticator app, or a backup code.\n")?;
    prompt_code(&ctx.term, "Code: ")?.ok_or_else(|| {
        Error::Input(
            "A code from your authenticator app or a backup code is needed (--code CODE or at the prompt).".into(),
        )
    })
}

pub async fn remove(ctx: &Ctx, device_id: &str, code: Option<String>) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let code = authorizing_code(ctx, code)?;
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
    let code = authorizing_code(ctx, code)?;
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
