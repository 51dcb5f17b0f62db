//! The current code that authorizes a change to an account (remove,
//! backup-codes, enrolling or changing a phone): asked for at a prompt,
//! where an empty answer sends one by SMS to a user who has a phone.

use mfa_api::{AccountProxy, DeviceKind, UserStatus};
use nix::unistd::geteuid;

use super::Ctx;
use crate::error::Error;
use crate::input::{code_from_stdin, prompt_answer};

/// What the caller has enrolled, as far as asking for a code goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factors {
    /// Any active device: mfad wants a current code from a user (not root).
    pub any_device: bool,
    pub app: bool,
    /// The enrolled phone, masked as mfad shows it.
    pub phone: Option<String>,
}

impl Factors {
    pub fn of(s: &UserStatus) -> Factors {
        Factors {
            any_device: !s.devices.is_empty(),
            app: s
                .devices
                .iter()
                .any(|d| d.device_kind() == DeviceKind::Totp),
            phone: s
                .devices
                .iter()
                .find(|d| d.device_kind() == DeviceKind::Sms)
                .map(|d| d.name.clone()),
        }
    }

    /// The prompt: what counts as a current code, and that Enter sends one
    /// by SMS when there is a phone to send it to.
    pub fn prompt(&self) -> &'static str {
        match (self.phone.is_some(), self.app) {
            (true, true) => {
                "Current code (authenticator app or backup code; press Enter to get one by SMS): "
            }
            (true, false) => "Current code (SMS or backup code; press Enter to get one by SMS): ",
            (false, _) => "Current code (authenticator app or backup code): ",
        }
    }
}

/// The caller's factors, from `Account.Status`.
pub async fn factors(ctx: &Ctx, account: &AccountProxy<'_>) -> Result<Factors, Error> {
    let s = account.status("").await.map_err(|e| ctx.api(e))?;
    Ok(Factors::of(&s))
}

/// Whether mfad will want a current code: root never gives one (mfad
/// ignores it), a user only once they have a device.
pub fn needed(f: &Factors) -> bool {
    f.any_device && !geteuid().is_root()
}

fn missing() -> Error {
    Error::Input(
        "A current code is needed: from your authenticator app, by SMS, or a backup code.".into(),
    )
}

/// Asks for a current code until one is typed. An empty answer sends a
/// code by SMS when the user has a phone (a refused send is shown and the
/// prompt repeats, since another kind of code still works); without a
/// phone it just asks again. End of input is an error.
pub async fn ask(ctx: &Ctx, account: &AccountProxy<'_>, f: &Factors) -> Result<String, Error> {
    let term = &ctx.term;
    loop {
        let answer = prompt_answer(term, f.prompt())?.ok_or_else(missing)?;
        if !answer.is_empty() {
            return Ok(answer);
        }
        if f.phone.is_none() {
            continue;
        }
        match account.send_code("").await {
            Ok(masked) => term.say(&format!(
                "Code sent by SMS to {}.\n",
                crate::output::clean(&masked)
            ))?,
            Err(mfa_api::Error::RateLimited(why)) | Err(mfa_api::Error::Unavailable(why)) => {
                term.say(&format!("{}\n", Error::Daemon(why).line()))?
            }
            Err(e) => return Err(ctx.api(e)),
        }
    }
}

/// For scripts: the current code on stdin, one line, no prompt. On a
/// terminal it is asked for as by `ask`.
pub async fn from_stdin(
    ctx: &Ctx,
    account: &AccountProxy<'_>,
    f: &Factors,
) -> Result<String, Error> {
    if crate::input::stdin_is_terminal() {
        return ask(ctx, account, f).await;
    }
    code_from_stdin(&ctx.term, "")?.ok_or_else(|| {
        Error::Usage(
            "you already have a device, so a current code (authenticator app, SMS or backup code) is needed on stdin".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_api::Device;

    fn device(kind: &str, name: &str) -> Device {
        Device {
            id: format!("{kind}1"),
            kind: kind.into(),
            name: name.into(),
            created: 1,
            last_used: 0,
        }
    }

    fn status(devices: Vec<Device>) -> UserStatus {
        UserStatus {
            user: "alice".into(),
            enrolled: !devices.is_empty(),
            devices,
            backup_codes_left: 10,
            failures: 0,
            locked_until: 0,
        }
    }

    #[test]
    fn prompts_follow_the_devices() {
        let none = Factors::of(&status(vec![]));
        assert!(!none.any_device && none.phone.is_none());
        let app = Factors::of(&status(vec![device("totp", "phone")]));
        assert_eq!(
            app.prompt(),
            "Current code (authenticator app or backup code): "
        );
        let both = Factors::of(&status(vec![
            device("totp", "phone"),
            device("sms", "+372*****345"),
        ]));
        assert_eq!(both.phone.as_deref(), Some("+372*****345"));
        assert_eq!(
            both.prompt(),
            "Current code (authenticator app or backup code; press Enter to get one by SMS): "
        );
        let sms = Factors::of(&status(vec![device("sms", "+372*****345")]));
        assert!(sms.any_device && !sms.app);
        assert!(sms.prompt().contains("press Enter to get one by SMS"));
        assert!(!sms.prompt().contains("authenticator app"));
    }
}
