//! `enroll sms` (interactive, or scripted as `--begin`, `--resend`,
//! `--confirm`) and `phone set`, the same flow for a new number.

use mfa_api::AccountProxy;

use super::enroll::{show_result, INTERACTIVE_ATTEMPTS};
use super::{current, Ctx};
use crate::cli::SmsArgs;
use crate::error::Error;
use crate::input::{code_from_stdin, normalize_code, prompt_answer};
use crate::output::{self, clean};

pub async fn enroll(ctx: &Ctx, args: SmsArgs) -> Result<(), Error> {
    if let Some(id) = args.resend {
        return resend(ctx, &id).await;
    }
    if let Some(mut confirm_args) = args.confirm {
        // clap gives one or two values: ID [CODE].
        let code = (confirm_args.len() > 1).then(|| confirm_args.remove(1));
        let id = confirm_args.into_iter().next().unwrap_or_default();
        return confirm(ctx, &id, code).await;
    }
    let Some(phone) = args.phone else {
        return Err(Error::Usage(
            "enroll sms needs PHONE, --resend ID or --confirm ID".into(),
        ));
    };
    if args.begin {
        begin(ctx, &phone).await
    } else {
        interactive(ctx, &phone, Purpose::Enroll).await
    }
}

/// `phone set +NEW`: for a user who has a phone.
pub async fn set(ctx: &Ctx, phone: &str) -> Result<(), Error> {
    interactive(ctx, phone, Purpose::Change).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Enroll,
    Change,
}

async fn begin(ctx: &Ctx, phone: &str) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let factors = current::factors(ctx, &account).await?;
    let code = if current::needed(&factors) {
        current::from_stdin(ctx, &account, &factors).await?
    } else {
        String::new()
    };
    let (id, masked) = account
        .enroll_sms_begin("", phone, &code)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        return ctx.term.print_json(&output::sms_begin_json(&id, &masked));
    }
    ctx.term.print(&output::sms_begin_text(&id, &masked))
}

async fn resend(ctx: &Ctx, id: &str) -> Result<(), Error> {
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let masked = account
        .enroll_sms_resend("", id)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        ctx.term.print_json(&output::sms_resend_json(&masked))
    } else {
        ctx.term.print(&output::sms_resent_line(&masked))
    }
}

async fn confirm(ctx: &Ctx, id: &str, code: Option<String>) -> Result<(), Error> {
    let code = match code {
        Some(c) => normalize_code(&c),
        None => code_from_stdin(&ctx.term, "Code: ")?.ok_or_else(|| {
            Error::Usage(
                "enroll sms --confirm ID needs the code sent by SMS, as an argument or on stdin"
                    .into(),
            )
        })?,
    };
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let had_phone = current::factors(ctx, &account).await?.phone.is_some();
    let (device_id, codes) = account
        .enroll_sms_confirm("", id, &code)
        .await
        .map_err(|e| ctx.api(e))?;
    if ctx.term.json {
        return ctx
            .term
            .print_json(&output::confirm_json(&device_id, &codes));
    }
    if had_phone {
        ctx.term.print(&format!(
            "Number changed: codes now go to the new number (device {}).\n",
            clean(&device_id)
        ))
    } else {
        let backup = output::backup_codes_text(&codes);
        ctx.term.print(&format!(
            "Phone enrolled as device {}: logins can now ask for a code by SMS.\n\n{backup}",
            clean(&device_id),
        ))
    }
}

/// Begins the enrollment, asking for a current code first when mfad wants
/// one (a wrong one is shown and asked for again, a few times).
async fn begin_with_code(
    ctx: &Ctx,
    account: &AccountProxy<'_>,
    phone: &str,
    factors: &current::Factors,
) -> Result<(String, String), Error> {
    let term = &ctx.term;
    if !current::needed(factors) {
        return account
            .enroll_sms_begin("", phone, "")
            .await
            .map_err(|e| ctx.api(e));
    }
    let mut attempt = 1;
    loop {
        let code = current::ask(ctx, account, factors).await?;
        match account.enroll_sms_begin("", phone, &code).await {
            Ok(begun) => return Ok(begun),
            Err(mfa_api::Error::InvalidCode(why)) if attempt < INTERACTIVE_ATTEMPTS => {
                attempt += 1;
                term.say(&format!("{}\n", Error::Daemon(why).line()))?;
            }
            Err(e) => return Err(ctx.api(e)),
        }
    }
}

async fn interactive(ctx: &Ctx, phone: &str, purpose: Purpose) -> Result<(), Error> {
    let term = &ctx.term;
    let conn = ctx.connect().await?;
    let account = ctx.account(&conn).await?;
    let factors = current::factors(ctx, &account).await?;
    if purpose == Purpose::Change && factors.phone.is_none() {
        return Err(Error::Input(
            "You have no phone enrolled; enroll one with `mfactl enroll sms +37255512345`.".into(),
        ));
    }
    let (id, masked) = begin_with_code(ctx, &account, phone, &factors).await?;
    term.say(&format!(
        "Code sent by SMS to {}. Type it below, or press Enter to get a new one.\n",
        clean(&masked)
    ))?;

    let no_code = || {
        Error::Input(match purpose {
            Purpose::Enroll => "No code entered; the phone was not enrolled.".into(),
            Purpose::Change => "No code entered; the number was not changed.".into(),
        })
    };
    let mut attempt = 1;
    let (device_id, codes) = loop {
        let code = prompt_answer(term, "Code: ")?.ok_or_else(no_code)?;
        if code.is_empty() {
            match account.enroll_sms_resend("", &id).await {
                Ok(m) => term.say(&output::sms_resent_line(&m))?,
                Err(mfa_api::Error::RateLimited(why)) | Err(mfa_api::Error::Unavailable(why)) => {
                    term.say(&format!("{}\n", Error::Daemon(why).line()))?
                }
                Err(e) => return Err(ctx.api(e)),
            }
            continue;
        }
        match account.enroll_sms_confirm("", &id, &code).await {
            Ok(done) => break done,
            // A code that expired is answered like a wrong one: Enter gets
            // a new one (or says the whole enrollment expired).
            Err(mfa_api::Error::InvalidCode(why)) | Err(mfa_api::Error::Expired(why))
                if attempt < INTERACTIVE_ATTEMPTS =>
            {
                attempt += 1;
                term.say(&format!("{}\n", Error::Daemon(why).line()))?;
            }
            Err(e) => return Err(ctx.api(e)),
        }
    };

    let changed = factors.phone.is_some();
    term.say(&if changed {
        format!(
            "\nYour number is now {} (device {}): codes go there from now on.\n",
            clean(&masked),
            clean(&device_id)
        )
    } else {
        format!(
            "\nYour phone {} is enrolled as device {}: logins can now ask for a code by SMS.\n",
            clean(&masked),
            clean(&device_id)
        )
    })?;
    if !codes.is_empty() && !term.json {
        term.say("\n")?;
    }
    show_result(ctx, &device_id, &codes)
}
