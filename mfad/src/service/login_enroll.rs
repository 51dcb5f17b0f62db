//! Enrolling inside a login: after `Login.Begin` answered `enroll`, the
//! module walks the user through the enrollment of an app or a phone on
//! the attempt's token. The enrollment itself is the one of
//! `mfactl enroll` ([`super::enroll`], [`super::sms`]: the same checks and
//! limits); this unit binds it to the attempt, counts its tries and, once
//! it is confirmed, makes the login verified, as after a code.
//!
//! A user name without an account is walked through a decoy that looks the
//! same (a fresh secret, "code sent") but stores and sends nothing and
//! never passes, so that enrollment at login does not tell which names
//! exist.

use mfa_api::AnswerResult;

use super::attempts::{Attempts, TRIES};
use super::authz::{self, UNKNOWN_UID};
use super::enroll::{Enrollments, MSG_NO_MATCH, MSG_SIX_DIGITS, MSG_WRONG_SMS};
use super::{owned_state, verify, Core};
use crate::error::{Error, Result};
use crate::factor::{self, Kind};
use crate::users::Account;
use crate::{phone, totp};

/// The pending "enrollment" of a decoy: what follows is the masked number.
const DECOY: &str = "decoy:";

/// What the user is told once the device is enrolled.
pub const MSG_DONE: &str = "2-step verification is set up.";
/// A totp confirmation needs the code shown now and the next one.
const MSG_TWO_CODES: &str = "Enter two consecutive codes from the app.";

/// The kinds of device the login may enroll: the app, and a phone when
/// this host sends text messages.
pub fn kinds(
    core: &Core,
    attempts: &Attempts,
    caller: u32,
    token: &str,
    now: i64,
) -> Result<Vec<String>> {
    attempts.enrolling(caller, token, now)?;
    let mut kinds = vec![Kind::Totp.as_str().to_string()];
    if core.sms.is_some() {
        kinds.push(Kind::Sms.as_str().to_string());
    }
    Ok(kinds)
}

/// Starts the enrollment of a device of `kind` for the attempt's own
/// account: (otpauth URI, secret, message) for an app; for a phone the code
/// is sent to `phone` and the URI and secret are empty.
pub fn begin(
    core: &Core,
    attempts: &Attempts,
    enrollments: &Enrollments,
    (caller, token): (u32, &str),
    kind: &str,
    phone: &str,
    now: i64,
) -> Result<(String, String, String)> {
    let (account, _) = attempts.enrolling(caller, token, now)?;
    if account.uid == UNKNOWN_UID {
        return decoy_begin(core, attempts, token, &account, kind, phone);
    }
    let grant = authz::login_enrollment(core, caller, &account)?;
    // A device enrolled meanwhile (mfactl, another login) is proved with a
    // code, never added to without one.
    if owned_state(core, grant.account())?.enrolled() {
        return Err(Error::AccessDenied(
            "2-step verification is already set up for this account; log in again.".into(),
        ));
    }
    match kind {
        "totp" => {
            attempts.count_enroll_begin(token)?;
            let (id, uri, secret) = enrollments.totp_begin(core, &grant, "", "", now)?;
            attempts.set_enrollment(token, Kind::Totp, id);
            Ok((uri, secret, String::new()))
        }
        "sms" => {
            core.sms()?;
            attempts.count_enroll_begin(token)?;
            let (id, masked) = enrollments.sms_begin(core, &grant, phone, "", now)?;
            attempts.set_enrollment(token, Kind::Sms, id);
            Ok((
                String::new(),
                String::new(),
                format!("Code sent by SMS to {masked}."),
            ))
        }
        other => Err(bad_kind(other)),
    }
}

fn bad_kind(kind: &str) -> Error {
    Error::InvalidArgument(format!(
        "{} is not a kind of device (totp, sms).",
        crate::audit::field(kind)
    ))
}

/// [`begin`] for a name without an account: the same answers, nothing
/// stored, nothing sent.
fn decoy_begin(
    core: &Core,
    attempts: &Attempts,
    token: &str,
    account: &Account,
    kind: &str,
    number: &str,
) -> Result<(String, String, String)> {
    match kind {
        "totp" => {
            attempts.count_enroll_begin(token)?;
            let secret = factor::totp::new_secret(core.random.as_ref())?;
            let uri = totp::otpauth_uri(&core.issuer, &account.name, &secret);
            attempts.set_enrollment(token, Kind::Totp, DECOY.to_string());
            Ok((uri, totp::secret_to_base32(&secret), String::new()))
        }
        "sms" => {
            let sms = core.sms()?;
            attempts.count_enroll_begin(token)?;
            let number = phone::parse(number).map_err(Error::InvalidArgument)?;
            sms.allows(&number).map_err(Error::InvalidArgument)?;
            let masked = phone::mask(&number);
            attempts.set_enrollment(token, Kind::Sms, format!("{DECOY}{masked}"));
            Ok((
                String::new(),
                String::new(),
                format!("Code sent by SMS to {masked}."),
            ))
        }
        other => Err(bad_kind(other)),
    }
}

/// What a decoy's confirmation fails with: what the same wrong codes get
/// from `Enrollments::totp_confirm` or `sms_confirm`.
fn decoy_confirm(kind: Kind, codes: &[String]) -> Error {
    let read = |c: &String| verify::normalize(c.as_bytes());
    let sms = |c: &String| read(c).is_some_and(|c| c.len() == factor::sms::DIGITS);
    Error::InvalidCode(
        match kind {
            Kind::Totp if codes.iter().all(|c| read(c).is_some()) => MSG_NO_MATCH,
            Kind::Totp => MSG_SIX_DIGITS,
            _ if codes.iter().all(sms) => MSG_WRONG_SMS,
            _ => "The code from the text message is 6 digits.",
        }
        .into(),
    )
}

/// Sends a new code for the attempt's phone enrollment.
pub fn resend(
    core: &Core,
    attempts: &Attempts,
    enrollments: &Enrollments,
    (caller, token): (u32, &str),
    now: i64,
) -> Result<String> {
    let (account, pending) = attempts.enrolling(caller, token, now)?;
    let Some((Kind::Sms, id)) = pending else {
        return Err(Error::NotFound("No phone enrollment in this login.".into()));
    };
    if let Some(masked) = id.strip_prefix(DECOY) {
        return Ok(format!("New code sent by SMS to {masked}."));
    }
    let grant = authz::login_enrollment(core, caller, &account)?;
    let masked = enrollments.sms_resend(core, &grant, &id, now)?;
    Ok(format!("New code sent by SMS to {masked}."))
}

/// Confirms the attempt's enrollment with `codes` (two for an app, one for
/// a phone): `success` with the backup codes (the login is now verified),
/// `retry`, or `deny` after [`TRIES`] wrong tries, when the attempt and its
/// enrollment are gone and nothing is enrolled.
pub fn confirm(
    core: &Core,
    attempts: &Attempts,
    enrollments: &Enrollments,
    (caller, token): (u32, &str),
    codes: &[String],
    now: i64,
) -> Result<(AnswerResult, String, Vec<String>)> {
    let (account, pending) = attempts.enrolling(caller, token, now)?;
    let Some((kind, id)) = pending else {
        return Err(Error::NotFound(
            "No enrollment started in this login.".into(),
        ));
    };
    let confirmed = match (kind, codes) {
        _ if id.starts_with(DECOY) => Err(decoy_confirm(kind, codes)),
        (Kind::Totp, [c1, c2]) => {
            let grant = authz::login_enrollment(core, caller, &account)?;
            enrollments.totp_confirm(core, &grant, &id, c1, c2, now)
        }
        (Kind::Totp, _) => Err(Error::InvalidCode(MSG_TWO_CODES.into())),
        (Kind::Sms, [code]) => {
            let grant = authz::login_enrollment(core, caller, &account)?;
            enrollments.sms_confirm(core, &grant, &id, code, now)
        }
        (Kind::Sms, _) => Err(Error::InvalidCode(
            "Enter the code from the text message.".into(),
        )),
    };
    let fields = [("user", account.name.as_str()), ("kind", kind.as_str())];
    match confirmed {
        Ok((device, backup_codes)) => {
            attempts.enroll_done(token, now);
            let mut f = fields.to_vec();
            f.push(("device", &device));
            core.audit.info("enrolled at login", &f);
            Ok((AnswerResult::Success, MSG_DONE.to_string(), backup_codes))
        }
        Err(Error::InvalidCode(message)) => {
            if attempts.enroll_failed(token) {
                enrollments.forget(&id);
                core.audit.warn(
                    "login denied",
                    &[fields.as_slice(), &[("reason", "wrong enrollment codes")]].concat(),
                );
                return Ok((
                    AnswerResult::Deny,
                    format!("{message} No device was set up ({TRIES} tries); log in again to start over."),
                    Vec::new(),
                ));
            }
            Ok((AnswerResult::Retry, message, Vec::new()))
        }
        // An SMS code that expired: not a wrong try; send a new one.
        Err(Error::Expired(message)) if kind == Kind::Sms => {
            Ok((AnswerResult::Retry, message, Vec::new()))
        }
        Err(e) => Err(e),
    }
}
