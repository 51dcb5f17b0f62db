//! `enroll totp`: interactive, or scripted as `--begin` then `--confirm`.
//! `enroll sms` and `phone set` live in `sms`.

use super::{current, sms, Ctx};
use crate::cli::{EnrollKind, TotpArgs};
use crate::error::Error;
use crate::input::{code_from_stdin, normalize_code, prompt_code};
use crate::output;
use crate::qr;

/// Wrong codes (or code pairs) the interactive enrollments let the user
/// retry (mfad drops the pending enrollment after a few more).
pub const INTERACTIVE_ATTEMPTS: u32 = 3;

pub async fn run(ctx: &Ctx, kind: EnrollKind) -> Result<(), Error> {
    match kind {
        EnrollKind::Totp(args) => totp(ctx, args).await,
        EnrollKind::Sms(args) => sms::enroll(ctx, args).await,
    }
}

async fn totp(ctx: &Ctx, args: TotpArgs) -> Result<(), Error> {
    let name = args.name.unwrap_or_default();
    if args.begin {
        begin(ctx, &name, args.code).await
    } else if let Some(id) = args.confirm {
        confirm(ctx, &id, args.code1, args.code2).await
    } else {
        interactive(ctx, &name, args.code).await
    }
}

/// The QR code, the secret in groups and the URI: three ways into the app.
fn enrollment_text(uri: &str, secret: &str, color: bool) -> Result<String, Error> {
    let mut code = qr::render(uri)?;
    if color {
        code = qr::colorize(&code);
    }
    Ok(format!(
        "Scan this QR code with your authenticator app \
         (Google Authenticator, Aegis, FreeOTP, 1Password, ...):\n\n\
         {code}\n\
         Or type this secret into the app (time-based, SHA1, 6 digits, 30 seconds):\n\n    \
         {}\n\n\
         Or open this URI with it:\n\n    {uri}\n\n",
        output::group_secret(secret)
    ))
}

/// Colours pin the QR code's contrast on a terminal (see `qr`); never in a
/// pipe, nor when the user asked for none.
fn want_color(ctx: &Ctx) -> bool {
    ctx.term.say_is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The current code mfad wants before a further device: `--code`, else
/// (once the caller has a device) asked for, from the prompt when
/// `interactive`, else from stdin.
async fn current_code(
    ctx: &Ctx,
    account: &mfa_api::AccountProxy<'_>,
    given: Option<String>,
    interactive: bool,
) -> Result<String, Error> {
    if let Some(code) = given {
        return Ok(normalize_code(&code));
    }
    let factors = current::factors(ctx, account).await?;
    if !current::needed(&factors) {
        return Ok(String::new());
    }
    if interactive {
        ctx.term
            .say("You already have a device: confirm this change with a current code.\n")?;
        current::ask(ctx, account, &factors).await
    } else {
        current::from_stdin(ctx, account, &factors).await
    }
}

async fn begin(ctx: &Ctx, name: &str, code: Option<String>) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let code = current_code(ctx, &account, code, false).await?;
    let (id, uri, secret) = account
        .enroll_totp_begin("", name, &code)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        return ctx.term.print_json(&output::begin_json(&id, &uri, &secret));
    }
    let text = enrollment_text(&uri, &secret, want_color(ctx))?;
    ctx.term.print(&format!(
        "{text}Enrollment {id} started; it expires in 10 minutes. Finish it with\n\n    \
         mfactl enroll totp --confirm {id}\n\n\
         and type the code the app shows now, then the next one.\n",
        id = output::clean(&id)
    ))
}

async fn confirm(
    ctx: &Ctx,
    id: &str,
    code1: Option<String>,
    code2: Option<String>,
) -> Result<(), Error> {
    // Codes on the command line are visible in `ps`; stdin is the quiet way.
    let (c1, c2) = match (code1, code2) {
        (Some(a), Some(b)) => (normalize_code(&a), normalize_code(&b)),
        _ => {
            let missing = || {
                Error::Usage(
                    "enroll totp --confirm ID needs CODE1 and CODE2, as arguments or one per line on stdin".into(),
                )
            };
            let a = code_from_stdin(&ctx.term, "Code 1: ")?.ok_or_else(missing)?;
            let b = code_from_stdin(&ctx.term, "Code 2: ")?.ok_or_else(missing)?;
            (a, b)
        }
    };
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let (device_id, codes) = account
        .enroll_totp_confirm("", id, &c1, &c2)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        return ctx
            .term
            .print_json(&output::confirm_json(&device_id, &codes));
    }
    let backup = output::backup_codes_text(&codes);
    ctx.term.print(&format!(
        "Device {} enrolled: from now on, logins ask for a code from it.\n\n{backup}",
        output::clean(&device_id),
    ))
}

async fn interactive(ctx: &Ctx, name: &str, code: Option<String>) -> Result<(), Error> {
    let term = &ctx.term;
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let code = current_code(ctx, &account, code, true).await?;
    let (id, uri, secret) = account
        .enroll_totp_begin("", name, &code)
        .await
        .map_err(|e| ctx.api(e))?;
    term.say(&enrollment_text(&uri, &secret, want_color(ctx))?)?;

    let no_code = || Error::Input("No code entered; the enrollment was not finished.".into());
    let mut attempt = 1;
    let (device_id, codes) = loop {
        term.say("Enter the code shown now, then wait for the next one.\n")?;
        let c1 = prompt_code(term, "Code 1: ")?.ok_or_else(no_code)?;
        let c2 = prompt_code(term, "Code 2: ")?.ok_or_else(no_code)?;
        match account.enroll_totp_confirm("", &id, &c1, &c2).await {
            Ok(done) => break done,
            Err(mfa_api::Error::InvalidCode(why)) if attempt < INTERACTIVE_ATTEMPTS => {
                attempt += 1;
                term.say(&format!("\n{why}\n\n"))?;
            }
            Err(e) => return Err(ctx.api(e)),
        }
    };

    // The device id is left to `mfactl status`: it is not needed now, and
    // the backup codes should be the only numbers on screen.
    term.say("\nYour authenticator app is enrolled: from now on, logins ask for its code.\n\n")?;
    show_result(ctx, &device_id, &codes)
}

/// The end of an interactive enrollment: the JSON document, or the backup
/// codes (if it made any) for the person to store.
pub fn show_result(ctx: &Ctx, device_id: &str, codes: &[String]) -> Result<(), Error> {
    if ctx.term.json {
        ctx.term.print_json(&output::confirm_json(device_id, codes))
    } else {
        ctx.term.print(&output::backup_codes_text(codes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_text_shows_qr_grouped_secret_and_uri() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let uri = format!("otpauth://totp/host:alice?secret={secret}&issuer=host");
        let text = enrollment_text(&uri, secret, false).expect("text");
        assert!(text.lines().filter(|l| l.contains('█')).count() > 10);
        assert!(text.contains("    JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP\n"));
        assert!(text.split_whitespace().any(|w| w == uri));
        assert!(!text.contains('\x1b'));
        assert!(enrollment_text(&uri, secret, true)
            .expect("text")
            .contains("\x1b[97;40m"));
    }
}
