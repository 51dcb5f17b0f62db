//! Sending codes by SMS: the limits (the allowed prefixes, the cooldown
//! between two sends to a user, the per-user and machine-wide hourly
//! budgets, counted in the store so they survive a restart), the gateway
//! call on its own thread, and how long a login waits for it.

use std::sync::Arc;
use std::time::Duration;

use super::Core;
use crate::audit::Audit;
use crate::codes::{self, Hashed};
use crate::error::{Error, Result};
use crate::factor;
use crate::gateway::{Message, SendError, Sender};
use crate::lockout::{minutes, seconds};
use crate::phone;
use crate::store::{SendId, SendLimits, SendSlot};
use crate::users::Account;

/// How long a login waits for the SMS gateway before answering the module
/// anyway (the send goes on in the background). A Begin that outlasted the
/// module's `timeout=` (1 s at the least) would read as "mfad unavailable",
/// which `failmode=safe` lets through without a code, so this stays well
/// under a second.
pub const LOGIN_SEND_WAIT: Duration = Duration::from_millis(600);
const MSG_NOT_CONFIGURED: &str = "SMS is not configured on this host; ask the administrator.";
pub const MSG_FAILED: &str = "Could not send the code by SMS; try again later.";

thread_local! {
    /// Set while a call runs where it must not wait for the gateway (the
    /// login socket's own threads): see [`without_waiting`].
    static NO_WAITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on this thread with every send refused before it starts
/// ([`Error::WouldWait`], nothing reserved or stored): a thread that serves
/// every login must never wait for a gateway. The caller runs a call that
/// failed so again where it may wait.
pub fn without_waiting<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_WAITING.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(NO_WAITING.with(|w| w.replace(true)));
    f()
}

/// SMS sending, when `[sms]` is configured.
pub struct Sms {
    pub sender: Arc<dyn Sender>,
    pub code_lifetime: i64,
    /// The hourly budgets and the cooldown, in seconds.
    pub limits: SendLimits,
    /// Numbers that may be enrolled start with one of these; empty: any.
    pub allowed_prefixes: Vec<String>,
    /// How long a login waits for the gateway ([`LOGIN_SEND_WAIT`]).
    pub login_wait: Duration,
}

/// Whether a code went out by SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The gateway took it.
    Sent,
    /// The gateway has not answered yet; the send goes on in the background.
    OnItsWay,
}

/// One SMS on its way, owned so it can finish on its own thread.
struct Outgoing {
    sender: Arc<dyn Sender>,
    audit: Arc<Audit>,
    phone: String,
    masked: String,
    code: String,
    user: String,
    host: String,
}

impl Outgoing {
    /// Sends and logs the outcome (the number masked, never the code).
    fn send(&self) -> std::result::Result<(), SendError> {
        let sent = self.sender.send(&Message {
            phone: &self.phone,
            code: &self.code,
            user: &self.user,
            host: &self.host,
        });
        match &sent {
            Ok(()) => self
                .audit
                .info("sms sent", &[("user", &self.user), ("phone", &self.masked)]),
            Err(e) => self.audit.warn(
                "sms failed",
                &[
                    ("user", &self.user),
                    ("phone", &self.masked),
                    ("error", &e.to_string()),
                ],
            ),
        }
        sent
    }

    /// The login that asked stopped waiting; the outcome is logged only.
    fn log_late(&self, sent: &std::result::Result<(), SendError>) {
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        self.audit.info(
            "sms finished after the login stopped waiting",
            &[("user", &self.user), ("outcome", outcome)],
        );
    }
}

impl Sms {
    /// Whether `number` (E.164) may be enrolled: the one-line refusal,
    /// naming the rule, otherwise.
    pub fn allows(&self, number: &str) -> std::result::Result<(), String> {
        if self.allowed_prefixes.is_empty()
            || self.allowed_prefixes.iter().any(|p| number.starts_with(p))
        {
            return Ok(());
        }
        Err(format!(
            "{} is not allowed: this host sends codes only to numbers starting with {} ([sms] allowed_prefixes).",
            phone::mask(number),
            self.allowed_prefixes.join(", ")
        ))
    }
}

impl Core {
    /// The SMS configuration, or the error every SMS call gives without it.
    pub fn sms(&self) -> Result<&Sms> {
        self.sms
            .as_ref()
            .ok_or_else(|| Error::Unavailable(MSG_NOT_CONFIGURED.into()))
    }
}

/// Sends a fresh code to `number` and returns it hashed, for the caller to
/// store. Waits for the user's cooldown and counts toward the user's and
/// the machine's sends per hour; a send the gateway refused outright does
/// not. With `wait`, gives up waiting for the gateway after that long (the
/// send goes on).
pub fn send(
    core: &Core,
    account: &Account,
    number: &str,
    now: i64,
    wait: Option<Duration>,
) -> Result<(Hashed, Delivery)> {
    let sms = core.sms()?;
    if NO_WAITING.with(std::cell::Cell::get) {
        return Err(Error::WouldWait);
    }
    let masked = phone::mask(number);
    let slot = reserve(core, account, &masked, now)?;
    let code = factor::sms::new_code(core.random.as_ref())?;
    let hashed = codes::hash(&code, core.random.as_ref(), &core.keys)?;
    let outgoing = Outgoing {
        sender: sms.sender.clone(),
        audit: core.audit.clone(),
        phone: number.to_string(),
        masked,
        code,
        user: account.name.clone(),
        host: core.issuer.clone(),
    };
    let sent = match wait {
        None => outgoing.send(),
        Some(wait) => match send_waiting(core, outgoing, wait)? {
            Some(sent) => sent,
            None => return Ok((hashed, Delivery::OnItsWay)),
        },
    };
    match sent {
        Ok(()) => Ok((hashed, Delivery::Sent)),
        Err(e) => {
            if matches!(e, SendError::Failed(_)) {
                core.store.release_send(slot)?;
            }
            Err(Error::Unavailable(MSG_FAILED.into()))
        }
    }
}

/// Records one send for `account` within the cooldown and the hourly
/// budgets (the user's and the host's), or says which one refuses it.
fn reserve(core: &Core, account: &Account, masked: &str, now: i64) -> Result<SendId> {
    let limits = core.sms()?.limits;
    let refused = |reason: &str| {
        core.audit.warn(
            "sms refused",
            &[
                ("user", &account.name),
                ("phone", masked),
                ("reason", reason),
            ],
        );
    };
    match core.store.reserve_send(account.uid, now, limits)? {
        SendSlot::Granted(slot) => Ok(slot),
        SendSlot::Cooldown { next_at } => {
            refused("resend_cooldown");
            Err(Error::RateLimited(format!(
                "Wait {} before asking for another code.",
                seconds(next_at - now)
            )))
        }
        SendSlot::UserFull { next_at } => {
            refused("max_sends_per_hour reached");
            Err(Error::RateLimited(format!(
                "Too many codes sent by SMS; try again in {}.",
                minutes(next_at - now)
            )))
        }
        SendSlot::TotalFull { next_at } => {
            // Every user is refused until the hour frees a send: the admin
            // must hear of it (a flood, or a budget too small).
            refused("max_total_sends_per_hour reached for the whole host");
            Err(Error::RateLimited(format!(
                "This host has sent too many codes by SMS; try again in {}, or ask the administrator.",
                minutes(next_at - now)
            )))
        }
    }
}

/// Sends on a thread of its own and waits at most `wait` for the gateway;
/// None when it has not answered by then (the send goes on, and its
/// outcome is logged when it comes).
fn send_waiting(
    core: &Core,
    outgoing: Outgoing,
    wait: Duration,
) -> Result<Option<std::result::Result<(), SendError>>> {
    let (user, masked) = (outgoing.user.clone(), outgoing.masked.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mfad-sms".into())
        .spawn(move || {
            let sent = outgoing.send();
            if let Err(late) = tx.send(sent) {
                outgoing.log_late(&late.0);
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start an SMS thread: {e}")))?;
    match rx.recv_timeout(wait) {
        Ok(sent) => Ok(Some(sent)),
        Err(_) => {
            core.audit.info(
                "sms pending",
                &[
                    ("user", &user),
                    ("phone", &masked),
                    ("waited_secs", &wait.as_secs().to_string()),
                ],
            );
            Ok(None)
        }
    }
}

/// Sends a login code to the user's phone and adds it to the ones that work
/// (stored before the gateway answers, so a late delivery still works; the
/// codes sent before stay live, the newest `factor::sms::KEEP`). Returns
/// what the user is told: where it went.
pub fn send_login_code(
    core: &Core,
    account: &Account,
    number: &str,
    now: i64,
    wait: Option<Duration>,
) -> Result<String> {
    let lifetime = core.sms()?.code_lifetime;
    let (hashed, delivery) = send(core, account, number, now, wait)?;
    core.store
        .add_sms_code(account.uid, &hashed, now + lifetime, factor::sms::KEEP)?;
    let masked = phone::mask(number);
    Ok(match delivery {
        Delivery::Sent => format!("Code sent by SMS to {masked}."),
        Delivery::OnItsWay => format!("A code is on its way by SMS to {masked}."),
    })
}
