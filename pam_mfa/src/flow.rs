//! The state machines of one authentication ([`authenticate`]) and one
//! account check ([`account`]), over a [`Pam`] (items, environment and
//! conversation) and a [`Daemon`] (Begin/Answer/AccountCheck). No I/O of
//! their own, so the tests drive them with a scripted conversation and a
//! scripted daemon.
//!
//! ```text
//! drop any PAM_MFA_ATTEMPT (or old PAM_MFA_SESSION) left from an earlier
//! authentication
//! user? ──no──> UserUnknown
//!   │
//! Begin ──unavailable──> failmode: secure AuthInfoUnavail / safe Ignore
//!   │   ──bad bus= (not unix:path=), or org.mfad.Mfa1 not owned by root──>
//!   │       AuthInfoUnavail (whatever failmode), logged
//!   │   ──refused (mfad error)──> show message, AuthErr
//!   │   ──unavailable, user in breakglass_users──> prompt for a break-glass
//!   │       code: used up ──> Success (LOG_CRIT); wrong/used ──> AuthErr;
//!   │       file unusable ──> failmode
//!   ├─ ignore ──> show message, if any (info, also under PAM_SILENT), Ignore
//!   ├─ allow ───> keep the attempt in PAM_MFA_ATTEMPT, show message (info), Success
//!   ├─ deny ────> show message (error), AuthErr
//!   ├─ enroll ──> set up a device in this login (see crate::enroll; also
//!   │             under PAM_SILENT), then as after a right code
//!   ├─ unknown ─> show "refused" note (error), AuthErr
//!   └─ challenge: up to MAX_TRIES wrong answers
//!        prompt (echo off) ──conversation fails──> ConvErr
//!        Answer ──success──> keep the attempt in PAM_MFA_ATTEMPT, Success
//!               ──retry────> show message (error), prompt again
//!               ──prompt───> prompt again with the message as the prompt
//!                            (a code went out by SMS; up to MAX_PROMPTS)
//!               ──deny─────> show message (error), AuthErr
//!               ──unknown──> show "refused" note (error), AuthErr
//!               ──refused──> show message (error), AuthErr
//!               ──unavailable──> AuthInfoUnavail (whatever failmode)
//! ```
//!
//! `unknown` is any action or result this version does not know (a newer
//! mfad): it is a refusal, never "unavailable", so `failmode=safe` cannot
//! turn version skew into a login without a code.
//!
//! Once mfad has asked for a code, losing it is never PAM_IGNORE, even
//! with `failmode=safe`: otherwise anyone who can stall the daemon
//! mid-login (or make their answer too big for the bus) would skip the
//! code.
//!
//! The account phase (`account required pam_mfa.so`) asks mfad whether this
//! login passed the code step. The auth phase leaves the attempt token in
//! the PAM environment, because sshd runs keyboard-interactive
//! authentication in a child process: `pam_set_data` stays in the child,
//! the PAM environment is handed back to the parent.
//!
//! ```text
//! take PAM_MFA_ATTEMPT, else the old PAM_MFA_SESSION (missing = ""), and
//! remove both from the environment
//! user? ──no──> UserUnknown
//! AccountCheck ──allow──> Success
//!              ──ignore─> Ignore
//!              ──deny───> show message (error), PermDenied
//!              ──unknown──> show "did not pass" note (error), PermDenied
//!              ──refused (mfad error)──> show message (error), PermDenied
//!              ──unavailable──> failmode: secure PermDenied / safe Ignore
//!              ──bad bus=, or an impostor──> PermDenied (whatever failmode)
//! ```
//!
//! The token is removed whatever happens, so it never reaches the user's
//! session environment, and it is never logged.

use mfa_api::{AccountAction, AnswerResult, BeginAction};

use crate::args::{failmode_name, FailMode};
use crate::client::{AccountReply, BeginRequest, Daemon};
use crate::error::Error;
use crate::handle::{Code, Pam};
use crate::log::{field, Log};

/// Tries per authentication (mfad allows 3 per attempt, too).
pub const MAX_TRIES: usize = 3;
/// New prompts (an empty answer sent a code by SMS) per authentication;
/// mfad limits the sends, this bounds the loop whatever it says.
pub const MAX_PROMPTS: usize = 5;
/// The prompt when mfad's challenge comes without one.
pub const DEFAULT_PROMPT: &str = "Verification code: ";
/// What the user sees on `retry` when mfad says nothing.
pub const WRONG_CODE: &str = "Wrong code; try again.";
/// What the user sees with `failmode=secure` when mfad cannot be asked.
pub const UNAVAILABLE: &str = "Two-step verification is unavailable right now; try again later.";
/// What the user sees when mfad goes away after asking for a code.
pub const LOST: &str = "The verification service stopped answering; try again later.";
/// What the user sees when the answer to the code prompt was the password.
pub const PASSWORD_NOT_CODE: &str =
    "The password is not a verification code; this login method cannot ask for one.";
/// What the user sees after more than [`MAX_PROMPTS`] new prompts.
pub const TOO_MANY_PROMPTS: &str = "Too many new codes asked for in one login; start again.";
/// What the user sees when the account phase refuses and mfad says nothing.
pub const ACCOUNT_DENIED: &str = "This login did not pass two-step verification.";
/// What the user sees when mfad answers with an action or result this
/// module does not know (a newer mfad).
pub const NOT_UNDERSTOOD: &str =
    "The verification service gave an answer this login cannot use; the login is refused.";
/// The PAM environment variable that carries the attempt token from the
/// auth phase to the account phase. A bearer token: never logged.
pub const ATTEMPT_ENV: &str = "PAM_MFA_ATTEMPT";
/// The pam_set_data name under which the auth and account phases keep the
/// attempt token of a login that passed, for the session phase in the same
/// process (sshd runs its account and session phases in one process).
pub const ATTEMPT_DATA: &str = "attempt";
/// The pam_set_data name of the session id mfad gave, for close_session.
pub const SESSION_DATA: &str = "session";
/// What the user sees with `failmode=secure` when mfad cannot register the
/// session.
pub const SESSION_UNAVAILABLE: &str =
    "The session cannot be limited to its duration right now; try again later.";
/// Its earlier name, read (after [`ATTEMPT_ENV`]) and removed for one more
/// release, so that an auth phase run by the older module still counts.
pub const OLD_ATTEMPT_ENV: &str = "PAM_MFA_SESSION";
/// Longest answer sent to mfad: far beyond any code, far below the bus's
/// message limit (an over-long message would drop the connection, which
/// must not be a way to turn a wrong answer into "daemon unavailable").
pub const MAX_CODE_BYTES: usize = 16 * 1024;

/// What `pam_sm_authenticate` or `pam_sm_acct_mgmt` returns; see
/// [`Outcome::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Ignore,
    AuthErr,
    AuthInfoUnavail,
    ConvErr,
    UserUnknown,
    /// The account phase refuses the login.
    PermDenied,
    /// The session phase refuses the session.
    SessionErr,
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
            Outcome::PermDenied => C::PAM_PERM_DENIED,
            Outcome::SessionErr => C::PAM_SESSION_ERR,
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

/// Break-glass codes (`breakglass=PATH`): used only when mfad cannot be
/// asked, never on one of its refusals.
pub trait BreakGlass {
    /// Whether `user` may use a code (`breakglass_users=`) at all.
    fn applies(&self, user: &str) -> bool;
    /// Uses up `code` for `user`: Ok(true) if it was an unused code, now
    /// used; Err with a line for the log if the file cannot be used.
    fn consume(&mut self, user: &str, code: &[u8]) -> Result<bool, String>;
    /// Whether `user` used a code in the last [`BREAK_GLASS_ACCOUNT_SECS`]
    /// (the account phase after the auth phase that used it).
    fn used_recently(&mut self, user: &str) -> bool;
}

/// No `breakglass=`: nobody may use a code.
pub struct NoBreakGlass;

impl BreakGlass for NoBreakGlass {
    fn applies(&self, _: &str) -> bool {
        false
    }
    fn consume(&mut self, _: &str, _: &[u8]) -> Result<bool, String> {
        Ok(false)
    }
    fn used_recently(&mut self, _: &str) -> bool {
        false
    }
}

/// How long after a break-glass login its account phase passes without mfad.
pub const BREAK_GLASS_ACCOUNT_SECS: i64 = 600;
/// The prompt for a break-glass code.
pub const BREAK_GLASS_PROMPT: &str =
    "Two-step verification is unavailable. Emergency (break-glass) code: ";
/// What the user sees after a wrong break-glass code.
pub const BREAK_GLASS_WRONG: &str = "Wrong or used emergency code.";

/// One authentication, start to end, without break-glass codes.
pub fn authenticate(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    authenticate_with(pam, daemon, &mut NoBreakGlass, options, log)
}

/// One authentication, start to end.
pub fn authenticate_with(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    glass: &mut impl BreakGlass,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    // A token from an earlier authentication on this handle must not vouch
    // for this one.
    forget_attempt(pam, log);
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
        field(&request.user),
        field(&request.rhost),
        field(&request.tty),
        if request.auth_info.is_empty() {
            "no"
        } else {
            "yes"
        }
    ));
    let who = who(&request.user, &request.rhost);

    let begin = match daemon.begin(&request) {
        Ok(reply) => reply,
        Err(Error::Refused(e)) => {
            let message = e.message.clone();
            log.warning(&format!(
                "mfad refused the login ({}): {message}; {who}",
                e.kind
            ));
            show_error(pam, &message, log);
            return Outcome::AuthErr;
        }
        // Break-glass is for mfad being down, never for a refusal (nor a
        // bad bus= or an impostor).
        Err(e) if !refused_in_any_failmode(&e) && glass.applies(&request.user) => {
            return break_glass(pam, glass, options, log, &e, &request.user, &who)
        }
        Err(e) => return unavailable(pam, options, log, &e, &who),
    };
    match begin.action {
        BeginAction::Ignore => {
            log.debug(&format!("not enrolled, ignoring; {who}"));
            // A message here is the grace-period notice (enroll by when, and
            // how), shown even under PAM_SILENT: sudo passes it by default,
            // and a user who never sees it is locked out when it ends.
            if !begin.message.is_empty() {
                show_info(pam, &begin.message, log);
            }
            Outcome::Ignore
        }
        BeginAction::Allow => {
            // mfad's audit log has it ("login allowed"); a line here
            // would cost a syslog connection on every such login.
            log.debug(&format!("allowed without a code; {who}"));
            keep_attempt(pam, &begin.attempt, log, &who);
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
            &begin.attempt,
            &begin.message,
            &who,
        ),
        // Shown even under PAM_SILENT: the user cannot enroll unseen.
        BeginAction::Enroll => {
            crate::enroll::run(pam, daemon, log, &begin.attempt, &begin.message, &who)
        }
        BeginAction::Unknown => {
            log.error(&format!(
                "mfad answered Begin with an action this module does not know \
                 (is mfad newer than pam_mfa?), refusing; {who}"
            ));
            show_error(pam, NOT_UNDERSTOOD, log);
            Outcome::AuthErr
        }
    }
}

fn challenge(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
    attempt: &str,
    prompt: &str,
    who: &str,
) -> Outcome {
    let mut prompt = if prompt.is_empty() {
        DEFAULT_PROMPT.to_string()
    } else {
        prompt.to_string()
    };
    let mut tries = 0;
    let mut prompts = 0;
    while tries < MAX_TRIES {
        let mut code = match pam.prompt_secret(&prompt) {
            Ok(c) => c,
            Err(e) => {
                log.warning(&format!("{e}; {who}"));
                return Outcome::ConvErr;
            }
        };
        // sshd's password method (PasswordAuthentication) answers every
        // prompt with the password. Sending it on would count failures
        // toward the user's lockout and show mfad the password.
        if is_password(pam, &code) {
            log.warning(&format!(
                "the answer to the code prompt was the password (sshd's password method \
                 answers every prompt with it; use keyboard-interactive), refusing; {who}"
            ));
            show_error(pam, PASSWORD_NOT_CODE, log);
            return Outcome::AuthErr;
        }
        code.truncate(MAX_CODE_BYTES);
        let reply = daemon.answer(attempt, code.as_bytes());
        drop(code);
        match reply {
            Ok(r) => match r.result {
                AnswerResult::Success => {
                    // mfad's audit log has it ("verify ok").
                    log.debug(&format!("verified; {who}"));
                    keep_attempt(pam, attempt, log, who);
                    if !options.silent {
                        show_info(pam, &r.message, log);
                    }
                    return Outcome::Success;
                }
                AnswerResult::Prompt => {
                    prompts += 1;
                    if prompts > MAX_PROMPTS {
                        log.warning(&format!(
                            "denied: more than {MAX_PROMPTS} new prompts; {who}"
                        ));
                        show_error(pam, TOO_MANY_PROMPTS, log);
                        return Outcome::AuthErr;
                    }
                    log.debug(&format!("new prompt; {who}"));
                    if !r.message.is_empty() {
                        prompt = r.message;
                    }
                }
                AnswerResult::Retry => {
                    tries += 1;
                    log.debug(&format!("wrong code, try {tries} of {MAX_TRIES}; {who}"));
                    let m = if r.message.is_empty() {
                        WRONG_CODE
                    } else {
                        &r.message
                    };
                    show_error(pam, m, log);
                }
                AnswerResult::Deny => {
                    log.warning(&format!(
                        "denied after {} tries: {}; {who}",
                        tries + 1,
                        r.message
                    ));
                    show_error(pam, &r.message, log);
                    return Outcome::AuthErr;
                }
                AnswerResult::Unknown => {
                    log.error(&format!(
                        "mfad answered Answer with a result this module does not know \
                         (is mfad newer than pam_mfa?), refusing; {who}"
                    ));
                    show_error(pam, NOT_UNDERSTOOD, log);
                    return Outcome::AuthErr;
                }
            },
            Err(Error::Refused(e)) => {
                let message = e.message.clone();
                log.warning(&format!(
                    "mfad refused the answer ({}): {message}; {who}",
                    e.kind
                ));
                // mfad forgot the attempt: it restarted during the login.
                let m = if e.is_not_found() { LOST } else { &message };
                show_error(pam, m, log);
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

/// Whether `answer` is the password an earlier module read (PAM_AUTHTOK).
pub(crate) fn is_password(pam: &impl Pam, answer: &Code) -> bool {
    pam.password()
        .is_some_and(|p| !p.as_bytes().is_empty() && same_bytes(p.as_bytes(), answer.as_bytes()))
}

/// Compares in time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// For `pam_sm_setcred` (and the start of an authentication): drops the
/// attempt token, under either name, if the account phase did not (a stack
/// without `account ... pam_mfa.so`), so it does not reach the user's
/// session environment. Never fails the login.
pub fn forget_attempt(pam: &mut impl Pam, log: &mut impl Log) {
    let _ = take_attempt(pam, log);
}

/// One account check, start to end.
pub fn account(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    account_with(pam, daemon, &mut NoBreakGlass, options, log)
}

/// The account phase; a login whose auth phase used a break-glass code
/// (recorded in the root-only file, so nobody can fake it) passes while
/// mfad still cannot be asked.
pub fn account_with(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    glass: &mut impl BreakGlass,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    // First, so that no path below leaves it for the user's session.
    let attempt = take_attempt(pam, log);
    let user = match pam.user() {
        Ok(u) => u,
        Err(e) => {
            log.error(&e.to_string());
            return Outcome::UserUnknown;
        }
    };
    let service = pam.service();
    let who = who(&user, &pam.rhost());
    log.debug(&format!(
        "account check; attempt from the auth phase: {}; {who}",
        if attempt.is_empty() { "no" } else { "yes" }
    ));
    match daemon.account_check(&user, &service, &attempt) {
        Ok(AccountReply { action, message }) => match action {
            AccountAction::Allow => {
                log.debug(&format!("account allowed; {who}"));
                keep_for_session(pam, &attempt, log);
                Outcome::Success
            }
            AccountAction::Ignore => {
                log.debug(&format!("not enrolled, ignoring; {who}"));
                Outcome::Ignore
            }
            AccountAction::Deny => {
                log.warning(&format!("account denied: {message}; {who}"));
                show_error(pam, or_default(&message, ACCOUNT_DENIED), log);
                Outcome::PermDenied
            }
            // A newer mfad's answer is never a way in.
            AccountAction::Unknown => {
                log.error(&format!(
                    "mfad answered the account check with an action this module does not \
                     know (is mfad newer than pam_mfa?), refusing; {who}"
                ));
                show_error(pam, ACCOUNT_DENIED, log);
                Outcome::PermDenied
            }
        },
        Err(Error::Refused(e)) => {
            let message = e.message.clone();
            log.warning(&format!(
                "mfad refused the account check ({}): {message}; {who}",
                e.kind
            ));
            show_error(pam, or_default(&message, ACCOUNT_DENIED), log);
            Outcome::PermDenied
        }
        Err(e) if refused_in_any_failmode(&e) => {
            log.error(&format!(
                "{e}; refusing the login in either failmode; {who}"
            ));
            show_error(pam, UNAVAILABLE, log);
            Outcome::PermDenied
        }
        Err(e) if glass.applies(&user) && glass.used_recently(&user) => {
            log.critical(&format!(
                "{e}; account allowed after a break-glass code in the auth phase; {who}"
            ));
            Outcome::Success
        }
        Err(e) => match options.failmode {
            FailMode::Secure => {
                log.error(&format!("{e}; refusing the login (failmode=secure); {who}"));
                show_error(pam, UNAVAILABLE, log);
                Outcome::PermDenied
            }
            FailMode::Safe => {
                log.warning(&format!(
                    "WARNING: {e}; NO SECOND FACTOR CHECKED in the account phase, leaving the decision to the rest of the PAM stack (failmode=safe); {who}"
                ));
                Outcome::Ignore
            }
        },
    }
}

/// The `user=... rhost=...` tail of each log line; both quoted when not
/// simple, as the caller controls them.
fn who(user: &str, rhost: &str) -> String {
    format!("user={} rhost={}", field(user), field(rhost))
}

/// Leaves a verified attempt in the PAM environment for the account phase.
/// Failing that is logged only: the authentication itself passed, and an
/// `account pam_mfa.so` line will refuse the login without the token.
pub(crate) fn keep_attempt(pam: &mut impl Pam, attempt: &str, log: &mut impl Log, who: &str) {
    if attempt.is_empty() {
        log.debug(&format!("mfad gave no attempt token to keep; {who}"));
        return;
    }
    if let Err(e) = pam.setenv(ATTEMPT_ENV, attempt) {
        log.warning(&format!(
            "{e}; the account phase will not see this verification; {who}"
        ));
    }
    keep_for_session(pam, attempt, log);
}

/// Keeps the token of a login that passed for the session phase.
fn keep_for_session(pam: &mut impl Pam, attempt: &str, log: &mut impl Log) {
    if attempt.is_empty() {
        return;
    }
    if let Err(e) = pam.keep(ATTEMPT_DATA, attempt) {
        log.debug(&format!("{e}; the session phase will not see this login"));
    }
}

/// `pam_sm_open_session`: a login that passed 2-step (or a trusted device)
/// in this PAM transaction is registered with mfad, which ends it after the
/// user's session duration. Other logins are not limited (Ignore). The
/// attempt token kept by the auth or account phase names the login; sshd
/// runs those phases in a child process, so without one mfad takes the
/// login of this user and service that passed with this caller.
///
/// ```text
/// user? ──no──> UserUnknown
/// OpenSession ──id──> keep the id, show message (info), Success
///             ──no id (not limited)──> Ignore
///             ──refused (mfad error)──> show message (error), SessionErr
///             ──unavailable──> failmode: secure SessionErr / safe Ignore,
///                              the session unlimited, logged
///             ──bad bus=, or an impostor──> SessionErr (whatever failmode)
/// ```
pub fn open_session(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    options: Options,
    log: &mut impl Log,
) -> Outcome {
    let attempt = pam.kept(ATTEMPT_DATA).unwrap_or_default();
    let user = match pam.user() {
        Ok(u) => u,
        Err(e) => {
            log.error(&e.to_string());
            return Outcome::UserUnknown;
        }
    };
    let who = who(&user, &pam.rhost());
    let xdg = pam.getenv("XDG_SESSION_ID").unwrap_or_default();
    match daemon.open_session(&user, &pam.service(), &attempt, &pam.tty(), &xdg) {
        Ok(reply) if reply.id.is_empty() => {
            log.debug(&format!("session not limited; {who}"));
            Outcome::Ignore
        }
        Ok(reply) => {
            if let Err(e) = pam.keep(SESSION_DATA, &reply.id) {
                log.warning(&format!("{e}; close_session cannot tell mfad; {who}"));
            }
            log.info(&format!("session limited, ends at {}; {who}", reply.ends));
            if !options.silent {
                show_info(pam, &reply.message, log);
            }
            Outcome::Success
        }
        Err(Error::Refused(e)) => {
            let message = e.message.clone();
            log.warning(&format!(
                "mfad refused the session ({}): {message}; {who}",
                e.kind
            ));
            show_error(pam, or_default(&message, SESSION_UNAVAILABLE), log);
            Outcome::SessionErr
        }
        Err(e) if refused_in_any_failmode(&e) => {
            log.error(&format!(
                "{e}; refusing the session in either failmode; {who}"
            ));
            show_error(pam, SESSION_UNAVAILABLE, log);
            Outcome::SessionErr
        }
        Err(e) => match options.failmode {
            FailMode::Secure => {
                log.error(&format!(
                    "{e}; refusing the session (failmode=secure); {who}"
                ));
                show_error(pam, SESSION_UNAVAILABLE, log);
                Outcome::SessionErr
            }
            FailMode::Safe => {
                log.warning(&format!(
                    "WARNING: {e}; the session opens WITHOUT ITS DURATION LIMIT (failmode=safe); {who}"
                ));
                Outcome::Ignore
            }
        },
    }
}

/// `pam_sm_close_session`: tells mfad the session it limits is over. Never
/// fails the logout: mfad also notices the process end.
pub fn close_session(pam: &mut impl Pam, daemon: &mut impl Daemon, log: &mut impl Log) -> Outcome {
    let Some(id) = pam.kept(SESSION_DATA).filter(|i| !i.is_empty()) else {
        return Outcome::Ignore;
    };
    match daemon.close_session(&id) {
        Ok(()) => Outcome::Success,
        Err(e) => {
            log.warning(&format!("{e}; mfad forgets the session when it ends"));
            Outcome::Ignore
        }
    }
}

/// The attempt the auth phase left (empty if none): the new name first,
/// then the old one. Both are removed from the PAM environment.
fn take_attempt(pam: &mut impl Pam, log: &mut impl Log) -> String {
    let mut attempt = None;
    for name in [ATTEMPT_ENV, OLD_ATTEMPT_ENV] {
        if let Some(value) = pam.getenv(name) {
            attempt.get_or_insert(value);
            if let Err(e) = pam.unsetenv(name) {
                log.error(&e.to_string());
            }
        }
    }
    attempt.unwrap_or_default()
}

fn or_default<'a>(message: &'a str, default: &'a str) -> &'a str {
    if message.is_empty() {
        default
    } else {
        message
    }
}

/// A bad `bus=` or an impostor on mfad's name: not mfad being down, so
/// `failmode=safe` does not step aside for it.
fn refused_in_any_failmode(e: &Error) -> bool {
    matches!(e, Error::Config(_) | Error::Impostor(_))
}

/// mfad cannot be asked and `user` may use a break-glass code: one prompt,
/// one try. A file that cannot be used leaves it to `failmode`.
fn break_glass(
    pam: &mut impl Pam,
    glass: &mut impl BreakGlass,
    options: Options,
    log: &mut impl Log,
    e: &Error,
    user: &str,
    who: &str,
) -> Outcome {
    log.warning(&format!("{e}; asking for a break-glass code; {who}"));
    let code = match pam.prompt_secret(BREAK_GLASS_PROMPT) {
        Ok(c) => c,
        Err(e) => {
            log.warning(&format!("{e}; {who}"));
            return Outcome::ConvErr;
        }
    };
    match glass.consume(user, code.as_bytes()) {
        Ok(true) => {
            log.critical(&format!(
                "BREAK-GLASS CODE USED: logged in without a second factor while mfad could \
                 not be asked; make new codes (mfactl admin break-glass --generate); {who}"
            ));
            Outcome::Success
        }
        Ok(false) => {
            log.warning(&format!("wrong or used break-glass code; {who}"));
            show_error(pam, BREAK_GLASS_WRONG, log);
            Outcome::AuthErr
        }
        Err(why) => {
            log.error(&format!("break-glass codes cannot be used: {why}; {who}"));
            unavailable(pam, options, log, e, who)
        }
    }
}

/// mfad could not be asked before it made a decision: `failmode` decides,
/// unless the module's configuration or mfad's identity is wrong.
fn unavailable(
    pam: &mut impl Pam,
    options: Options,
    log: &mut impl Log,
    e: &Error,
    who: &str,
) -> Outcome {
    if refused_in_any_failmode(e) {
        log.error(&format!(
            "{e}; refusing the login in either failmode; {who}"
        ));
        show_error(pam, UNAVAILABLE, log);
        return Outcome::AuthInfoUnavail;
    }
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

pub(crate) fn show_error(pam: &mut impl Pam, message: &str, log: &mut impl Log) {
    if message.is_empty() {
        return;
    }
    if let Err(e) = pam.error_msg(message) {
        log.debug(&e.to_string());
    }
}

pub(crate) fn show_info(pam: &mut impl Pam, message: &str, log: &mut impl Log) {
    if message.is_empty() {
        return;
    }
    if let Err(e) = pam.text_info(message) {
        log.debug(&e.to_string());
    }
}

#[cfg(test)]
mod tests;
