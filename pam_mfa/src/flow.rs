//! The state machine of one authentication, over a [`Pam`] (items and
//! conversation) and a [`Daemon`] (Begin/Answer). No I/O of its own, so the
//! tests drive it with a scripted conversation and a scripted daemon.
//!
//! ```text
//! user? ──no──> UserUnknown
//!   │
//! Begin ──unavailable──> failmode: secure AuthInfoUnavail / safe Ignore
//!   │   ──refused (mfad error)──> show message, AuthErr
//!   ├─ ignore ──> Ignore
//!   ├─ allow ───> show message (info), Success
//!   ├─ deny ────> show message (error), AuthErr
//!   └─ challenge: up to MAX_TRIES times
//!        prompt (echo off) ──conversation fails──> ConvErr
//!        Answer ──success──> Success
//!               ──retry────> show message (error), prompt again
//!               ──deny─────> show message (error), AuthErr
//!               ──refused──> show message (error), AuthErr
//!               ──unavailable──> AuthInfoUnavail (whatever failmode)
//! ```
//!
//! Once mfad has asked for a code, losing it is never PAM_IGNORE, even
//! with `failmode=safe`: otherwise anyone who can stall the daemon
//! mid-login (or make their answer too big for the bus) would skip the
//! code.

use mfa_api::{AnswerResult, BeginAction};

use crate::args::{failmode_name, FailMode};
use crate::client::{BeginRequest, Daemon};
use crate::error::Error;
use crate::handle::Pam;
use crate::log::Log;

/// Tries per authentication (mfad allows 3 per session, too).
pub const MAX_TRIES: usize = 3;
/// The prompt when mfad's challenge comes without one.
pub const DEFAULT_PROMPT: &str = "Verification code: ";
/// What the user sees on `retry` when mfad says nothing.
pub const WRONG_CODE: &str = "Wrong code; try again.";
/// What the user sees with `failmode=secure` when mfad cannot be asked.
pub const UNAVAILABLE: &str = "Two-step verification is unavailable right now; try again later.";
/// What the user sees when mfad goes away after asking for a code.
pub const LOST: &str = "The verification service stopped answering; try again later.";
/// Longest answer sent to mfad: far beyond any code, far below the bus's
/// message limit (an over-long message would drop the connection, which
/// must not be a way to turn a wrong answer into "daemon unavailable").
pub const MAX_CODE_BYTES: usize = 16 * 1024;

/// What `pam_sm_authenticate` returns; see [`Outcome::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Ignore,
    AuthErr,
    AuthInfoUnavail,
    ConvErr,
    UserUnknown,
}

impl Outcome {
    pub fn code(self) -> pam::constants::PamResultCode {
        use pam::constants::PamResultCode as C;
        match self {
            Outcome::Success => C::PAM_SUCCESS,
            Outcome::Ignore => C::PAM_IGNORE,
            Outcome::AuthErr => C::PAM_AUTH_ERR,
            Outcome::AuthInfoUnavail => C::PAM_AUTHINFO_UNAVAIL,
            Outcome::ConvErr => C::PAM_CONV_ERR,
            Outcome::UserUnknown => C::PAM_USER_UNKNOWN,
        }
    }
}

/// How to behave, from the module arguments and the PAM flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub failmode: FailMode,
    /// PAM_SILENT: no PAM_TEXT_INFO. Error messages still show: without
    /// them a user cannot tell a wrong code from a lockout (and sudo passes
    /// PAM_SILENT by default).
    pub silent: bool,
}

/// One authentication, start to end.
pub fn authenticate(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    let user = match pam.user() {
        Ok(u) => u,
        Err(e) => {
            log.error(&e.to_string());
            return Outcome::UserUnknown;
        }
    };
    let request = BeginRequest {
        service: pam.service(),
        rhost: pam.rhost(),
        tty: pam.tty(),
        auth_info: pam.ssh_auth_info(),
        user,
    };
    log.debug(&format!(
        "begin user={} rhost={} tty={} auth_info={}",
        request.user,
        request.rhost,
        request.tty,
        if request.auth_info.is_empty() {
            "no"
        } else {
            "yes"
        }
    ));
    let who = format!("user={} rhost={}", request.user, request.rhost);

    let begin = match daemon.begin(&request) {
        Ok(reply) => reply,
        Err(Error::Refused { kind, message }) => {
            log.warning(&format!(
                "mfad refused the login ({kind}): {message}; {who}"
            ));
            show_error(pam, &message, log);
            return Outcome::AuthErr;
        }
        Err(e) => return unavailable(pam, options, log, &e, &who),
    };
    match begin.action {
        BeginAction::Ignore => {
            log.debug(&format!("not enrolled, ignoring; {who}"));
            Outcome::Ignore
        }
        BeginAction::Allow => {
            log.info(&format!("allowed without a code; {who}"));
            if !options.silent {
                show_info(pam, &begin.message, log);
            }
            Outcome::Success
        }
        BeginAction::Deny => {
            log.warning(&format!("denied: {}; {who}", begin.message));
            show_error(pam, &begin.message, log);
            Outcome::AuthErr
        }
        BeginAction::Challenge => challenge(
            pam,
            daemon,
            options,
            log,
            &begin.session,
            &begin.message,
            &who,
        ),
    }
}

fn challenge(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
    session: &str,
    prompt: &str,
    who: &str,
) -> Outcome {
    let prompt = if prompt.is_empty() {
        DEFAULT_PROMPT
    } else {
        prompt
    };
    for attempt in 1..=MAX_TRIES {
        let mut code = match pam.prompt_secret(prompt) {
            Ok(c) => c,
            Err(e) => {
                log.warning(&format!("{e}; {who}"));
                return Outcome::ConvErr;
            }
        };
        code.truncate(MAX_CODE_BYTES);
        let reply = daemon.answer(session, code.as_bytes());
        drop(code);
        match reply {
            Ok(r) => match r.result {
                AnswerResult::Success => {
                    log.info(&format!("verified; {who}"));
                    if !options.silent {
                        show_info(pam, &r.message, log);
                    }
                    return Outcome::Success;
                }
                AnswerResult::Retry => {
                    log.debug(&format!("wrong code, try {attempt} of {MAX_TRIES}; {who}"));
                    let m = if r.message.is_empty() {
                        WRONG_CODE
                    } else {
                        &r.message
                    };
                    show_error(pam, m, log);
                }
                AnswerResult::Deny => {
                    log.warning(&format!(
                        "denied after {attempt} tries: {}; {who}",
                        r.message
                    ));
                    show_error(pam, &r.message, log);
                    return Outcome::AuthErr;
                }
            },
            Err(Error::Refused { kind, message }) => {
                log.warning(&format!(
                    "mfad refused the answer ({kind}): {message}; {who}"
                ));
                show_error(pam, &message, log);
                return Outcome::AuthErr;
            }
            Err(e) => {
                log.error(&format!(
                    "lost mfad after it asked for a code, refusing (failmode={} does not apply): {e}; {who}",
                    failmode_name(options.failmode)
                ));
                show_error(pam, LOST, log);
                return Outcome::AuthInfoUnavail;
            }
        }
    }
    log.warning(&format!("denied: {MAX_TRIES} wrong codes; {who}"));
    Outcome::AuthErr
}

/// mfad could not be asked before it made a decision: `failmode` decides.
fn unavailable(
    pam: &mut impl Pam,
    options: Options,
    log: &mut impl Log,
    e: &Error,
    who: &str,
) -> Outcome {
    match options.failmode {
        FailMode::Secure => {
            log.error(&format!("{e}; refusing the login (failmode=secure); {who}"));
            show_error(pam, UNAVAILABLE, log);
            Outcome::AuthInfoUnavail
        }
        FailMode::Safe => {
            log.warning(&format!(
                "WARNING: {e}; NO SECOND FACTOR CHECKED, leaving the decision to the rest of the PAM stack (failmode=safe); {who}"
            ));
            Outcome::Ignore
        }
    }
}

fn show_error(pam: &mut impl Pam, message: &str, log: &mut impl Log) {
    if message.is_empty() {
        return;
    }
    if let Err(e) = pam.error_msg(message) {
        log.debug(&e.to_string());
    }
}

fn show_info(pam: &mut impl Pam, message: &str, log: &mut impl Log) {
    if message.is_empty() {
        return;
    }
    if let Err(e) = pam.text_info(message) {
        log.debug(&e.to_string());
    }
}

#[cfg(test)]
mod tests;
