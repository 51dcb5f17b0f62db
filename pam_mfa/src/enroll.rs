//! Enrolling inside a login: `Login.Begin` answered `enroll` (the user must
//! use 2-step, has no device, and the caller is root), so the module walks
//! the user through setting up an app or a phone, then lets them in.
//!
//! ```text
//! show mfad's message (info)
//! EnrollKinds ──"sms" offered──> "App or text message" prompt (Enter = app)
//! app:   EnrollBegin(totp) ──> QR code, secret in groups, URI (info)
//!        "Code 1: ", "Code 2: " ──EnrollConfirm──> success: backup codes,
//!        "Press Enter to continue: ", Success (token kept)
//!                                    ──retry──> show message, ask again
//!                                    ──deny (3rd wrong pair)──> AuthErr
//! phone: "Phone number: " ──EnrollBegin(sms)──> bad number: ask again
//!        "Code: " (empty: EnrollResend) ──EnrollConfirm──> as for the app
//! ```
//!
//! All of it is shown even under PAM_SILENT: the user cannot enroll
//! without seeing it. mfad lost midway fails the login whatever
//! `failmode` (it already decided the login needs a second factor); a
//! refusal shows its message and fails.

use mfa_api::AnswerResult;

use crate::client::Daemon;
use crate::error::Error;
use crate::flow::{
    keep_attempt, show_error, show_info, Outcome, LOST, MAX_CODE_BYTES, MAX_PROMPTS, MAX_TRIES,
    NOT_UNDERSTOOD, PASSWORD_NOT_CODE,
};
use crate::handle::{Code, Pam};
use crate::log::Log;

/// The choice when the host sends text messages.
pub const CHOICE_PROMPT: &str =
    "Set up with an authenticator app (press Enter) or text messages (type sms): ";
pub const CODE1_PROMPT: &str = "Code 1: ";
pub const CODE2_PROMPT: &str = "Code 2: ";
pub const PHONE_PROMPT: &str = "Phone number: ";
pub const SMS_CODE_PROMPT: &str = "Code: ";
pub const CONTINUE_PROMPT: &str = "Press Enter to continue: ";
/// After the app's QR code, secret and URI.
pub const APP_STEPS: &str = "Then enter the code the app shows now (Code 1), and after it \
     changes, the next one (Code 2).";
/// Before the phone's code prompt.
pub const SMS_STEPS: &str =
    "Enter the code from the text message; press Enter alone to get a new one.";
const NOT_A_CHOICE: &str = "Type sms for text messages, or press Enter for an app.";

/// How one step ended, when it ends the login.
type Step<T> = Result<T, Outcome>;

/// The whole enrollment, on the attempt `attempt` of `Begin`.
pub fn run(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    log: &mut impl Log,
    attempt: &str,
    message: &str,
    who: &str,
) -> Outcome {
    log.info(&format!("enrolling a device in this login; {who}"));
    show_info(pam, message, log);
    let result = (|| {
        let kinds = daemon
            .enroll_kinds(attempt)
            .map_err(|e| failed(pam, log, &e, who))?;
        let sms = kinds.iter().any(|k| k == "sms") && choose_sms(pam, log, who)?;
        let backup_codes = if sms {
            phone(pam, daemon, log, attempt, who)?
        } else {
            app(pam, daemon, log, attempt, who)?
        };
        Ok(backup_codes)
    })();
    match result {
        Ok(backup_codes) => {
            log.info(&format!("enrolled and verified; {who}"));
            keep_attempt(pam, attempt, log, who);
            show_info(pam, &backup_codes_text(&backup_codes), log);
            // A prompt, so that every client shows the codes (an SSH client
            // shows info text only with a following prompt). Its answer and
            // its failure do not matter: the device is enrolled.
            if let Err(e) = pam.prompt_echo(CONTINUE_PROMPT) {
                log.debug(&format!("{e}; {who}"));
            }
            Outcome::Success
        }
        Err(outcome) => outcome,
    }
}

/// Whether the user chose text messages over an app.
fn choose_sms(pam: &mut impl Pam, log: &mut impl Log, who: &str) -> Step<bool> {
    for _ in 0..MAX_TRIES {
        let answer = ask(pam, log, CHOICE_PROMPT, true, who)?;
        match text(&answer).trim().to_ascii_lowercase().as_str() {
            "" | "app" | "a" | "1" => return Ok(false),
            "sms" | "s" | "text" | "2" => return Ok(true),
            _ => show_error(pam, NOT_A_CHOICE, log),
        }
    }
    Err(Outcome::AuthErr)
}

/// The app: QR code, secret and URI, then two codes, up to mfad's tries.
fn app(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    log: &mut impl Log,
    attempt: &str,
    who: &str,
) -> Step<Vec<String>> {
    let start = daemon
        .enroll_begin(attempt, "totp", "")
        .map_err(|e| failed(pam, log, &e, who))?;
    match mfa_api::qr::render(&start.uri) {
        Ok(qr) => show_info(
            pam,
            &format!(
                "Scan this QR code with your authenticator app \
                 (Google Authenticator, Aegis, FreeOTP, 1Password, ...):\n\n{}",
                qr.trim_end_matches('\n')
            ),
            log,
        ),
        Err(e) => log.warning(&format!("cannot draw the QR code: {e}; {who}")),
    }
    show_info(
        pam,
        &format!(
            "Or type this secret into the app (time-based, SHA1, 6 digits, 30 seconds):\n\n    {}",
            mfa_api::qr::group_secret(&start.secret)
        ),
        log,
    );
    show_info(
        pam,
        &format!("Or open this URI with it:\n\n    {}", start.uri),
        log,
    );
    show_info(pam, APP_STEPS, log);
    for _ in 0..MAX_TRIES {
        let c1 = ask(pam, log, CODE1_PROMPT, false, who)?;
        let c2 = ask(pam, log, CODE2_PROMPT, false, who)?;
        let reply = daemon.enroll_confirm(attempt, &[&text(&c1), &text(&c2)]);
        drop((c1, c2));
        if let Some(codes) = settle(pam, log, reply, who)? {
            return Ok(codes);
        }
    }
    Err(Outcome::AuthErr)
}

/// The phone: its number, then the code sent to it (empty: send again).
fn phone(
    pam: &mut impl Pam,
    daemon: &mut impl Daemon,
    log: &mut impl Log,
    attempt: &str,
    who: &str,
) -> Step<Vec<String>> {
    let mut started = None;
    for _ in 0..MAX_TRIES {
        let number = ask(pam, log, PHONE_PROMPT, true, who)?;
        match daemon.enroll_begin(attempt, "sms", text(&number).trim()) {
            Ok(start) => {
                started = Some(start);
                break;
            }
            // A mistyped number: say why and ask again.
            Err(Error::Refused(r)) if r.kind == "InvalidArgument" => {
                show_error(pam, &r.message, log)
            }
            Err(e) => return Err(failed(pam, log, &e, who)),
        }
    }
    let Some(start) = started else {
        return Err(Outcome::AuthErr);
    };
    show_info(pam, &start.message, log);
    show_info(pam, SMS_STEPS, log);
    let (mut tries, mut resends) = (0, 0);
    while tries < MAX_TRIES {
        let code = ask(pam, log, SMS_CODE_PROMPT, false, who)?;
        let code = text(&code);
        if code.trim().is_empty() {
            resends += 1;
            if resends > MAX_PROMPTS {
                show_error(pam, crate::flow::TOO_MANY_PROMPTS, log);
                return Err(Outcome::AuthErr);
            }
            match daemon.enroll_resend(attempt) {
                Ok(m) => show_info(pam, &m, log),
                // A cooldown or a budget: the codes sent before still work.
                Err(Error::Refused(e)) => show_error(pam, &e.message, log),
                Err(e) => return Err(failed(pam, log, &e, who)),
            }
            continue;
        }
        tries += 1;
        let reply = daemon.enroll_confirm(attempt, &[code.as_str()]);
        if let Some(codes) = settle(pam, log, reply, who)? {
            return Ok(codes);
        }
    }
    Err(Outcome::AuthErr)
}

/// A confirmation's outcome: the backup codes, None to ask again, or the
/// end of the login.
fn settle(
    pam: &mut impl Pam,
    log: &mut impl Log,
    reply: Result<crate::client::EnrollReply, Error>,
    who: &str,
) -> Step<Option<Vec<String>>> {
    let reply = reply.map_err(|e| failed(pam, log, &e, who))?;
    match reply.result {
        AnswerResult::Success => {
            show_info(pam, &reply.message, log);
            Ok(Some(reply.backup_codes))
        }
        AnswerResult::Retry | AnswerResult::Prompt => {
            log.debug(&format!("wrong enrollment code; {who}"));
            show_error(pam, &reply.message, log);
            Ok(None)
        }
        AnswerResult::Deny => {
            log.warning(&format!("enrollment refused: {}; {who}", reply.message));
            show_error(pam, &reply.message, log);
            Err(Outcome::AuthErr)
        }
        AnswerResult::Unknown => {
            log.error(&format!(
                "mfad answered EnrollConfirm with a result this module does not know, \
                 refusing; {who}"
            ));
            show_error(pam, NOT_UNDERSTOOD, log);
            Err(Outcome::AuthErr)
        }
    }
}

/// One prompt, echo on or off. The answer must not be the password (sshd's
/// password method answers every prompt with it): that ends the login
/// before mfad sees it.
fn ask(pam: &mut impl Pam, log: &mut impl Log, prompt: &str, echo: bool, who: &str) -> Step<Code> {
    let answer = if echo {
        pam.prompt_echo(prompt)
    } else {
        pam.prompt_secret(prompt)
    };
    let mut answer = answer.map_err(|e| {
        log.warning(&format!("{e}; {who}"));
        Outcome::ConvErr
    })?;
    if crate::flow::is_password(pam, &answer) {
        log.warning(&format!(
            "an enrollment prompt was answered with the password (sshd's password method \
             answers every prompt with it; use keyboard-interactive), refusing; {who}"
        ));
        show_error(pam, PASSWORD_NOT_CODE, log);
        return Err(Outcome::AuthErr);
    }
    answer.truncate(MAX_CODE_BYTES);
    Ok(answer)
}

/// What the user typed, as text (bytes that are not UTF-8 become U+FFFD,
/// which mfad refuses like any wrong input).
fn text(code: &Code) -> String {
    String::from_utf8_lossy(code.as_bytes()).into_owned()
}

/// A call that failed: a refusal shows its message; mfad lost (or an
/// attempt it forgot, after a restart) fails whatever `failmode`.
fn failed(pam: &mut impl Pam, log: &mut impl Log, e: &Error, who: &str) -> Outcome {
    match e {
        Error::Refused(r) if r.is_not_found() => {
            log.warning(&format!("mfad forgot the login during enrollment; {who}"));
            show_error(pam, LOST, log);
            Outcome::AuthErr
        }
        Error::Refused(e) => {
            let message = e.message.clone();
            log.warning(&format!(
                "mfad refused the enrollment ({}): {message}; {who}",
                e.kind
            ));
            show_error(pam, &message, log);
            Outcome::AuthErr
        }
        e => {
            log.error(&format!(
                "lost mfad during enrollment, refusing (failmode does not apply): {e}; {who}"
            ));
            show_error(pam, LOST, log);
            Outcome::AuthInfoUnavail
        }
    }
}

/// The backup codes, two to a line, as mfactl shows them.
pub fn backup_codes_text(codes: &[String]) -> String {
    let mut out = String::from(
        "Backup codes: each one works once, in place of a verification code.\n\
         Store them now, somewhere safe: they are shown only this once.\n",
    );
    for pair in codes.chunks(2) {
        out.push_str("\n    ");
        out.push_str(&pair.join("    "));
    }
    out
}
