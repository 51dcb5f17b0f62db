//! What mfad does, independent of D-Bus: each public method is one call of
//! the interface, given the caller's UID and the time. Authorization is
//! checked here, first, in every method.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mfa_api::{
    AccountAction, AnswerResult, BeginAction, Device, TrustedDevice, UserStatus, UserSummary,
};

use crate::audit::Audit;
use crate::backup;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::gateway::{Message, SendError, Sender};
use crate::lockout::Lockout;
use crate::phone;
use crate::policy::{self, Decision};
use crate::ratelimit::RateLimit;
use crate::store::{DeviceRow, SendSlot, Store, TrustedRow, UserRow};
use crate::totp;
use crate::trust::{self, Identity, Lifetime};
use crate::users;

/// Tries per login session before the module is told to give up.
pub const SESSION_TRIES: u32 = 3;
/// A login session lives this long (sshd's LoginGraceTime is 2 minutes).
const SESSION_SECS: i64 = 300;
/// A verified session waits this long for the account phase.
const VERIFIED_SECS: i64 = 600;
/// A pending enrollment lives this long.
pub const ENROLLMENT_SECS: i64 = 600;
/// Bounds on in-memory state a caller can make us hold.
const MAX_SESSIONS: usize = 10_000;
const MAX_ENROLLMENTS: usize = 1_000;
const MAX_ENROLLMENTS_PER_USER: usize = 3;
/// Wrong confirmations before a pending enrollment is dropped.
const ENROLLMENT_TRIES: u32 = 5;
/// Non-root callers (screen lockers) may start this many logins a minute.
const SELF_LOGINS_PER_MINUTE: u32 = 10;
/// Longer input is not a code; it is rejected before any parsing.
const MAX_CODE_INPUT: usize = 64;
const DEFAULT_DEVICE_NAME: &str = "authenticator";
const MAX_DEVICE_NAME: usize = 64;

pub const PROMPT: &str = "Verification code: ";
/// The prompt for a user with an app and a phone.
pub const PROMPT_APP_OR_SMS: &str = "Verification code (press Enter to get a code by SMS): ";
/// SMS codes have the digits of an app code, so the prompt takes either.
const SMS_DIGITS: usize = totp::DIGITS;
const MSG_SMS_NOT_CONFIGURED: &str = "SMS is not configured on this host; ask the administrator.";
const MSG_SMS_FAILED: &str = "Could not send the code by SMS; try again later.";
const MSG_SMS_EXPIRED: &str = "That SMS code expired; press Enter to get a new one.";
/// How long a login waits for the SMS gateway before answering the module
/// anyway (the send goes on in the background). A Begin that outlasted the
/// module's `timeout=` (1 s at the least) would read as "mfad unavailable",
/// which `failmode=safe` lets through without a code, so this stays well
/// under a second.
pub const LOGIN_SEND_WAIT: std::time::Duration = std::time::Duration::from_millis(600);
const MSG_WRONG_RETRY: &str = "Wrong code, try again.";
const MSG_WRONG: &str = "Wrong code.";
const MSG_MALFORMED: &str = "A code is 6 digits (or an 8-digit backup code).";
const MSG_REPLAY: &str = "That code was already used; wait for the next one.";
const MSG_TRUSTED: &str = "This device is trusted; no verification code needed.";
const MSG_NOT_VERIFIED: &str = "2-step verification did not take place in this login.";

/// One `Login.Begin` request.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// sshd's SSH_AUTH_INFO_0: the first factor's public key, if any.
    pub auth_info: String,
}

struct Session {
    user: String,
    caller: u32,
    service: String,
    rhost: String,
    tty: String,
    /// The device to trust once the code is right (None: never trusted).
    identity: Option<Identity>,
    tries: u32,
    /// Passed the code step (or came from a trusted device): waits for
    /// `AccountCheck`, and takes no more answers.
    verified: bool,
    expires: i64,
}

struct Pending {
    user: String,
    kind: PendingKind,
    tries: u32,
    expires: i64,
}

enum PendingKind {
    Totp {
        name: String,
        secret: Vec<u8>,
    },
    /// A phone number to confirm with the code last sent to it.
    Sms {
        phone: String,
        code: backup::Hashed,
        code_expires: i64,
    },
}

/// How a code was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verified {
    Totp(String),
    Sms(String),
    Backup,
}

/// Whether a code went out by SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
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

/// SMS sending, when `[sms]` is configured.
pub struct Sms {
    pub sender: Arc<dyn Sender>,
    pub code_lifetime: i64,
    pub max_sends_per_hour: u32,
    /// How long a login waits for the gateway ([`LOGIN_SEND_WAIT`]).
    pub login_wait: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    Ok(Verified),
    Wrong {
        lockout: Lockout,
        message: &'static str,
    },
    Locked(Lockout),
}

pub struct Service {
    config: Config,
    issuer: String,
    store: Mutex<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    enrollments: Mutex<HashMap<String, Pending>>,
    self_logins: Mutex<RateLimit>,
    sms: Option<Sms>,
    pub audit: Arc<Audit>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave these maps half-updated in a
    // way that matters (each update is one insert or remove), so carry on.
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Internal(format!("no randomness from the kernel: {e}")))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    random(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The digits of a typed code: ASCII spaces are dropped ("123 456"); any
/// other non-digit, non-UTF-8 input or overlong input gives None.
fn normalize_code(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_CODE_INPUT {
        return None;
    }
    let digits: Vec<u8> = raw.iter().copied().filter(|b| *b != b' ').collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    String::from_utf8(digits).ok()
}

/// How much of a phone number a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phones {
    Masked,
    Full,
}

fn device_to_wire(d: &DeviceRow, phones: Phones) -> Device {
    let name = if d.kind == phone::DEVICE_KIND && phones == Phones::Masked {
        phone::mask(&d.name)
    } else {
        d.name.clone()
    };
    Device {
        id: d.id.clone(),
        kind: d.kind.clone(),
        name,
        created: d.created,
        last_used: d.last_used,
    }
}

fn trusted_to_wire(t: &TrustedRow, lifetime: Lifetime) -> TrustedDevice {
    TrustedDevice {
        id: t.id.clone(),
        kind: t.kind.clone(),
        identity: t.identity.clone(),
        first_used: t.first_used,
        last_used: t.last_used,
        expires: lifetime.expires(t.trusted_at).unwrap_or(0),
    }
}

fn status_of(user: &str, row: &UserRow, phones: Phones) -> UserStatus {
    UserStatus {
        user: user.to_string(),
        enrolled: !row.devices.is_empty(),
        devices: row
            .devices
            .iter()
            .map(|d| device_to_wire(d, phones))
            .collect(),
        backup_codes_left: u32::try_from(row.backup_codes.len()).unwrap_or(u32::MAX),
        failures: row.lockout.failures,
        locked_until: row.lockout.locked_until,
    }
}

impl Service {
    pub fn new(config: Config, store: Store, audit: Audit, sms: Option<Sms>) -> Service {
        let issuer = if config.daemon.issuer.is_empty() {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "mfa".into())
        } else {
            config.daemon.issuer.clone()
        };
        Service {
            config,
            issuer,
            store: Mutex::new(store),
            sessions: Mutex::new(HashMap::new()),
            enrollments: Mutex::new(HashMap::new()),
            self_logins: Mutex::new(RateLimit::new(SELF_LOGINS_PER_MINUTE, 60)),
            sms,
            audit: Arc::new(audit),
        }
    }

    // ----- authorization -------------------------------------------------

    /// Login: root for anyone, others for themselves only.
    fn authorize_login(&self, caller: u32, user: &str) -> Result<()> {
        if caller == 0 || users::uid_of(user) == Some(caller) {
            return Ok(());
        }
        self.audit.warn(
            "access denied",
            &[
                ("interface", "Login"),
                ("caller_uid", &caller.to_string()),
                ("user", user),
            ],
        );
        Err(Error::AccessDenied(
            "You may only verify your own account.".into(),
        ))
    }

    /// Account: the user named (or the caller when empty); root for anyone,
    /// others for themselves only.
    fn account_user(&self, caller: u32, user: &str) -> Result<String> {
        if user.is_empty() {
            return users::name_of(caller)
                .ok_or_else(|| Error::InvalidArgument(format!("UID {caller} has no user name.")));
        }
        if !users::valid_name(user) {
            return Err(Error::InvalidArgument(format!(
                "{} is not a valid user name.",
                crate::audit::field(user)
            )));
        }
        if caller == 0 || users::uid_of(user) == Some(caller) {
            return Ok(user.to_string());
        }
        self.audit.warn(
            "access denied",
            &[
                ("interface", "Account"),
                ("caller_uid", &caller.to_string()),
                ("user", user),
            ],
        );
        Err(Error::AccessDenied(
            "You may only manage your own account.".into(),
        ))
    }

    fn authorize_admin(&self, caller: u32) -> Result<()> {
        if caller == 0 || users::in_group(caller, &self.config.daemon.admin_group) {
            return Ok(());
        }
        self.audit.warn(
            "access denied",
            &[("interface", "Admin"), ("caller_uid", &caller.to_string())],
        );
        Err(Error::AccessDenied(
            "Only root or members of the admin group may use the Admin interface.".into(),
        ))
    }

    fn admin_target(user: &str) -> Result<&str> {
        if users::valid_name(user) {
            Ok(user)
        } else {
            Err(Error::InvalidArgument(format!(
                "{} is not a valid user name.",
                crate::audit::field(user)
            )))
        }
    }

    // ----- verification --------------------------------------------------

    /// Checks a typed code for `user` and records the outcome: success uses
    /// the step or backup code up and clears failures; anything else counts
    /// as one failure. One store lock around read and write keeps it atomic.
    fn check_code(&self, user: &str, raw: &[u8], now: i64) -> Result<Check> {
        let mut store = lock(&self.store);
        let row = store.user(user)?;
        if row.lockout.is_locked(now) {
            return Ok(Check::Locked(row.lockout));
        }
        let mut message = MSG_WRONG_RETRY;
        match normalize_code(raw) {
            Some(code) if code.len() == totp::DIGITS => {
                for device in row.devices.iter().filter(|d| d.kind == totp::DEVICE_KIND) {
                    let window = self.config.totp.window;
                    if let Some(step) = totp::find_step(&device.secret, &code, now, window, 0) {
                        if step > row.last_step && store.accept_totp(user, &device.id, step, now)? {
                            return Ok(Check::Ok(Verified::Totp(device.id.clone())));
                        }
                        message = MSG_REPLAY;
                    }
                }
                if let (Some(sent), Some(device)) = (&row.sms_code, row.phone()) {
                    if backup::find(&code, std::slice::from_ref(&sent.code)).is_some() {
                        if sent.expires <= now {
                            message = MSG_SMS_EXPIRED;
                        } else if store.accept_sms(user, &device.id, &sent.code, now)? {
                            return Ok(Check::Ok(Verified::Sms(device.id.clone())));
                        }
                    }
                }
            }
            Some(code) if code.len() == backup::DIGITS => {
                let stored: Vec<_> = row.backup_codes.iter().map(|b| b.code.clone()).collect();
                if let Some(i) = backup::find(&code, &stored) {
                    if store.accept_backup(user, row.backup_codes[i].rowid)? {
                        return Ok(Check::Ok(Verified::Backup));
                    }
                }
            }
            _ => message = MSG_MALFORMED,
        }
        let lockout = row.lockout.after_failure(now, self.config.lockout_limits());
        store.set_lockout(user, lockout)?;
        Ok(Check::Wrong { lockout, message })
    }

    /// For destructive account changes by the user: a current code is
    /// required, and a wrong one counts toward the lockout like at login.
    fn require_code(&self, user: &str, code: &str, now: i64) -> Result<()> {
        match self.check_code(user, code.as_bytes(), now)? {
            Check::Ok(_) => Ok(()),
            Check::Locked(l) => Err(Error::LockedOut(l.message(now))),
            Check::Wrong { lockout, message } => {
                self.audit
                    .warn("verify failed", &[("user", user), ("service", "mfactl")]);
                if lockout.is_locked(now) {
                    self.audit.warn("lockout", &[("user", user)]);
                    return Err(Error::LockedOut(lockout.message(now)));
                }
                let message = if message == MSG_WRONG_RETRY {
                    "Wrong code; give a current code from your authenticator app or by SMS, or a backup code."
                } else {
                    message
                };
                Err(Error::InvalidCode(message.into()))
            }
        }
    }

    // ----- SMS -------------------------------------------------------------

    fn sms(&self) -> Result<&Sms> {
        self.sms
            .as_ref()
            .ok_or_else(|| Error::Unavailable(MSG_SMS_NOT_CONFIGURED.into()))
    }

    /// Sends a fresh code to `number` and returns it hashed, for the caller
    /// to store. Counts toward the user's sends per hour; a send the
    /// gateway refused outright does not. With `wait`, gives up waiting for
    /// the gateway after that long (the send goes on).
    fn send_sms(
        &self,
        user: &str,
        number: &str,
        now: i64,
        wait: Option<std::time::Duration>,
    ) -> Result<(backup::Hashed, Delivery)> {
        let sms = self.sms()?;
        let masked = phone::mask(number);
        let slot = lock(&self.store).reserve_send(user, now, sms.max_sends_per_hour)?;
        let slot = match slot {
            SendSlot::Granted(slot) => slot,
            SendSlot::Full { next_at } => {
                self.audit.warn(
                    "sms refused",
                    &[
                        ("user", user),
                        ("phone", &masked),
                        ("reason", "max_sends_per_hour reached"),
                    ],
                );
                return Err(Error::RateLimited(format!(
                    "Too many codes sent by SMS; try again in {}.",
                    crate::lockout::minutes(next_at - now)
                )));
            }
        };
        let mut rng = |buf: &mut [u8]| random(buf);
        let code = backup::generate_digits(SMS_DIGITS, &mut rng)?;
        let hashed = backup::hash(&code, &mut rng)?;
        let outgoing = Outgoing {
            sender: sms.sender.clone(),
            audit: self.audit.clone(),
            phone: number.to_string(),
            masked: masked.clone(),
            code,
            user: user.to_string(),
            host: self.issuer.clone(),
        };
        let sent = match wait {
            None => outgoing.send(),
            Some(wait) => {
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
                    Ok(sent) => sent,
                    Err(_) => {
                        self.audit.info(
                            "sms pending",
                            &[
                                ("user", user),
                                ("phone", &masked),
                                ("waited_secs", &wait.as_secs().to_string()),
                            ],
                        );
                        return Ok((hashed, Delivery::OnItsWay));
                    }
                }
            }
        };
        match sent {
            Ok(()) => Ok((hashed, Delivery::Sent)),
            Err(e) => {
                if matches!(e, SendError::Failed(_)) {
                    lock(&self.store).release_send(slot)?;
                }
                Err(Error::Unavailable(MSG_SMS_FAILED.into()))
            }
        }
    }

    /// Sends a login code to the user's enrolled phone and makes it the
    /// one that works (stored before the gateway answers, so a late
    /// delivery still works). Returns what the user is told: where it went.
    fn send_login_code(
        &self,
        user: &str,
        number: &str,
        now: i64,
        wait: Option<std::time::Duration>,
    ) -> Result<String> {
        let lifetime = self.sms()?.code_lifetime;
        let (hashed, delivery) = self.send_sms(user, number, now, wait)?;
        lock(&self.store).set_sms_code(user, &hashed, now + lifetime)?;
        let masked = phone::mask(number);
        Ok(match delivery {
            Delivery::Sent => format!("Code sent by SMS to {masked}."),
            Delivery::OnItsWay => format!("A code is on its way by SMS to {masked}."),
        })
    }

    // ----- Login -----------------------------------------------------------

    pub fn login_begin(
        &self,
        caller: u32,
        req: &LoginRequest,
        now: i64,
    ) -> Result<(BeginAction, String, String)> {
        self.authorize_login(caller, &req.user)?;
        if caller != 0 && !lock(&self.self_logins).hit(&req.user, now) {
            return Err(Error::RateLimited(
                "Too many verification attempts; wait a minute.".into(),
            ));
        }
        let fields = [
            ("user", req.user.as_str()),
            ("service", &req.service),
            ("rhost", &req.rhost),
            ("tty", &req.tty),
        ];
        // Names that cannot exist are looked up like any other (and found
        // unenrolled), so the answer does not reveal which users exist.
        let lifetime = self.config.trusted_devices.lifetime;
        let identity = match lifetime {
            Lifetime::Off => None,
            _ => trust::identity(&req.rhost, &req.auth_info),
        };
        let (row, trusted) = {
            let store = lock(&self.store);
            let row = store.user(&req.user)?;
            let trusted = match &identity {
                Some(id) if !row.devices.is_empty() => store
                    .trusted(&req.user, id.kind(), id.value())?
                    .filter(|t| lifetime.holds(t.trusted_at, now)),
                _ => None,
            };
            (row, trusted)
        };
        let enrolled = !row.devices.is_empty();
        match policy::begin(
            self.config.policy.mode,
            enrolled,
            trusted.is_some(),
            row.lockout,
            now,
        ) {
            Decision::Ignore => Ok((BeginAction::Ignore, String::new(), String::new())),
            Decision::Allow => {
                if let Some(t) = &trusted {
                    lock(&self.store).touch_trusted(&req.user, &t.id, now)?;
                    let mut f = fields.to_vec();
                    f.push(("trusted_device", &t.id));
                    self.audit.info("login allowed", &f);
                }
                let token = self.new_session(caller, req, None, true, now)?;
                Ok((BeginAction::Allow, token, MSG_TRUSTED.to_string()))
            }
            Decision::Deny(message) => {
                let reason = if row.devices.is_empty() {
                    "not enrolled"
                } else {
                    "locked out"
                };
                let mut f = fields.to_vec();
                f.push(("reason", reason));
                self.audit.warn("login denied", &f);
                Ok((BeginAction::Deny, String::new(), message))
            }
            Decision::Challenge => {
                let prompt = match self.begin_prompt(&row, &req.user, now)? {
                    Ok(prompt) => prompt,
                    Err(message) => {
                        let mut f = fields.to_vec();
                        f.push(("reason", "no code could be sent by SMS"));
                        self.audit.warn("login denied", &f);
                        return Ok((BeginAction::Deny, String::new(), message));
                    }
                };
                let token = self.new_session(caller, req, identity, false, now)?;
                Ok((BeginAction::Challenge, token, prompt))
            }
        }
    }

    /// The prompt of a challenge. A user with a phone and no app gets a
    /// code by SMS now; if none can be sent, a backup code is the way left,
    /// and without one the login is refused (`Err` holds why).
    fn begin_prompt(
        &self,
        row: &UserRow,
        user: &str,
        now: i64,
    ) -> Result<std::result::Result<String, String>> {
        let has_app = row.devices.iter().any(|d| d.kind == totp::DEVICE_KIND);
        let Some(device) = row.phone() else {
            return Ok(Ok(PROMPT.to_string()));
        };
        if has_app {
            return Ok(Ok(if self.sms.is_some() {
                PROMPT_APP_OR_SMS.to_string()
            } else {
                PROMPT.to_string()
            }));
        }
        match self.send_login_code(user, &device.name, now, Some(self.sms()?.login_wait)) {
            Ok(sent) => Ok(Ok(format!("{sent} Verification code: "))),
            // A code sent earlier still works until it expires.
            Err(Error::RateLimited(m) | Error::Unavailable(m)) => Ok(
                match (
                    row.sms_code.as_ref().filter(|c| c.expires > now),
                    row.backup_codes.is_empty(),
                ) {
                    (Some(_), _) => Ok(format!(
                        "{m} Verification code (the last one sent by SMS, or a backup code): "
                    )),
                    (None, false) => Ok(format!("{m} Backup code: ")),
                    (None, true) => Err(m),
                },
            ),
            Err(e) => Err(e),
        }
    }

    /// An empty answer from a user with a phone asks for a code by SMS: the
    /// module prompts again (`prompt`). Neither a failure nor a try. None
    /// when the answer should be checked as a code after all.
    fn answer_blank(&self, user: &str, now: i64) -> Result<Option<(AnswerResult, String)>> {
        if self.sms.is_none() {
            return Ok(None);
        }
        let row = lock(&self.store).user(user)?;
        let Some(device) = row.phone() else {
            return Ok(None);
        };
        if row.lockout.is_locked(now) {
            return Ok(None);
        }
        match self.send_login_code(user, &device.name, now, Some(self.sms()?.login_wait)) {
            Ok(sent) => Ok(Some((
                AnswerResult::Prompt,
                format!("{sent} Verification code: "),
            ))),
            Err(Error::RateLimited(m) | Error::Unavailable(m)) => {
                let has_app = row.devices.iter().any(|d| d.kind == totp::DEVICE_KIND);
                let other = match (has_app, row.backup_codes.is_empty()) {
                    (true, _) => " Use your authenticator app or a backup code.",
                    (false, false) => " Use a backup code.",
                    (false, true) => "",
                };
                Ok(Some((AnswerResult::Retry, format!("{m}{other}"))))
            }
            Err(e) => Err(e),
        }
    }

    fn new_session(
        &self,
        caller: u32,
        req: &LoginRequest,
        identity: Option<Identity>,
        verified: bool,
        now: i64,
    ) -> Result<String> {
        let token = random_hex(16)?;
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS {
                evict_oldest(&mut sessions);
            }
        }
        let lifetime = if verified {
            VERIFIED_SECS
        } else {
            SESSION_SECS
        };
        sessions.insert(
            token.clone(),
            Session {
                user: req.user.clone(),
                caller,
                service: req.service.clone(),
                rhost: req.rhost.clone(),
                tty: req.tty.clone(),
                identity,
                tries: 0,
                verified,
                expires: now + lifetime,
            },
        );
        Ok(token)
    }

    /// The account phase: did this login pass the code step? `token` is the
    /// session `Begin` gave, carried from the auth phase by the module (in
    /// the PAM environment, which survives sshd's separate auth process).
    /// Each verified session answers once.
    pub fn account_check(
        &self,
        caller: u32,
        user: &str,
        service: &str,
        token: &str,
        now: i64,
    ) -> Result<(AccountAction, String)> {
        self.authorize_login(caller, user)?;
        let enrolled = !lock(&self.store).user(user)?.devices.is_empty();
        let verified = {
            let mut sessions = lock(&self.sessions);
            let ok = sessions.get(token).is_some_and(|s| {
                s.verified && s.user == user && s.caller == caller && s.expires > now
            });
            if ok {
                sessions.remove(token)
            } else {
                None
            }
        };
        if let Some(session) = verified {
            // Trust is given here, not at Answer: the account phase runs only
            // once the whole auth stack passed, so a right code with a wrong
            // password never makes a device trusted.
            if let Some(id) = &session.identity {
                self.trust_device(user, id, now)?;
            }
            return Ok((AccountAction::Allow, String::new()));
        }
        match policy::begin(
            self.config.policy.mode,
            enrolled,
            false,
            Lockout::default(),
            now,
        ) {
            Decision::Ignore => Ok((AccountAction::Ignore, String::new())),
            Decision::Deny(message) => {
                self.audit.warn(
                    "account denied",
                    &[
                        ("user", user),
                        ("service", service),
                        ("reason", "not enrolled"),
                    ],
                );
                Ok((AccountAction::Deny, message))
            }
            _ => {
                self.audit.warn(
                    "account denied",
                    &[
                        ("user", user),
                        ("service", service),
                        (
                            "reason",
                            "no verification code in this login: put pam_mfa.so in the auth stack \
                             and make sshd use keyboard-interactive (AuthenticationMethods)",
                        ),
                    ],
                );
                Ok((AccountAction::Deny, MSG_NOT_VERIFIED.to_string()))
            }
        }
    }

    pub fn login_answer(
        &self,
        caller: u32,
        token: &str,
        code: &[u8],
        now: i64,
    ) -> Result<(AnswerResult, String)> {
        let (user, service, rhost, tty) = {
            let mut sessions = lock(&self.sessions);
            let Some(s) = sessions.get(token) else {
                return Err(Error::NotFound("No such login session.".into()));
            };
            // Sessions are bound to the caller that began them: a token seen
            // by someone else is useless to them.
            if s.caller != caller || s.verified {
                return Err(Error::NotFound("No such login session.".into()));
            }
            if s.expires <= now {
                sessions.remove(token);
                return Err(Error::Expired(
                    "The login took too long; start again.".into(),
                ));
            }
            (
                s.user.clone(),
                s.service.clone(),
                s.rhost.clone(),
                s.tty.clone(),
            )
        };
        let fields = [
            ("user", user.as_str()),
            ("service", service.as_str()),
            ("rhost", rhost.as_str()),
            ("tty", tty.as_str()),
        ];
        if code.iter().all(|b| b.is_ascii_whitespace()) {
            if let Some(reply) = self.answer_blank(&user, now)? {
                return Ok(reply);
            }
        }
        let check = self.check_code(&user, code, now)?;
        let mut sessions = lock(&self.sessions);
        match check {
            Check::Ok(how) => {
                if let Some(s) = sessions.get_mut(token) {
                    s.verified = true;
                    s.expires = now + VERIFIED_SECS;
                }
                let (method, device) = match &how {
                    Verified::Totp(id) => ("totp", id.as_str()),
                    Verified::Sms(id) => ("sms", id.as_str()),
                    Verified::Backup => ("backup", ""),
                };
                let mut f = fields.to_vec();
                f.push(("method", method));
                if !device.is_empty() {
                    f.push(("device", device));
                }
                self.audit.info("verify ok", &f);
                drop(sessions);
                Ok((AnswerResult::Success, String::new()))
            }
            Check::Locked(lockout) => {
                sessions.remove(token);
                self.audit.warn(
                    "login denied",
                    &[fields.as_slice(), &[("reason", "locked out")]].concat(),
                );
                Ok((AnswerResult::Deny, lockout.message(now)))
            }
            Check::Wrong { lockout, message } => {
                self.audit.warn("verify failed", &fields);
                if lockout.is_locked(now) {
                    sessions.remove(token);
                    self.audit.warn(
                        "lockout",
                        &[
                            fields.as_slice(),
                            &[("failures", &lockout.failures.to_string())],
                        ]
                        .concat(),
                    );
                    return Ok((AnswerResult::Deny, lockout.message(now)));
                }
                let tries = match sessions.get_mut(token) {
                    Some(s) => {
                        s.tries += 1;
                        s.tries
                    }
                    None => SESSION_TRIES,
                };
                if tries >= SESSION_TRIES {
                    sessions.remove(token);
                    let message = if message == MSG_WRONG_RETRY {
                        MSG_WRONG
                    } else {
                        message
                    };
                    return Ok((AnswerResult::Deny, message.to_string()));
                }
                Ok((AnswerResult::Retry, message.to_string()))
            }
        }
    }

    fn trust_device(&self, user: &str, id: &Identity, now: i64) -> Result<()> {
        let new_id = random_hex(4)?;
        lock(&self.store).trust(user, &new_id, id.kind(), id.value(), now)?;
        self.audit.info(
            "device trusted",
            &[
                ("user", user),
                ("kind", id.kind()),
                ("identity", id.value()),
            ],
        );
        Ok(())
    }

    // ----- Account ---------------------------------------------------------

    pub fn enroll_totp_begin(
        &self,
        caller: u32,
        user: &str,
        name: &str,
        now: i64,
    ) -> Result<(String, String, String)> {
        let user = self.account_user(caller, user)?;
        if users::uid_of(&user).is_none() {
            return Err(Error::InvalidArgument(format!(
                "No such user: {}.",
                crate::audit::field(&user)
            )));
        }
        let name = if name.is_empty() {
            DEFAULT_DEVICE_NAME
        } else {
            name
        };
        if name.chars().count() > MAX_DEVICE_NAME || name.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(format!(
                "A device name is at most {MAX_DEVICE_NAME} printable characters."
            )));
        }
        let mut secret = vec![0u8; totp::SECRET_BYTES];
        random(&mut secret)?;
        let uri = totp::otpauth_uri(&self.issuer, &user, &secret);
        let secret_b32 = totp::secret_to_base32(&secret);
        let id = self.add_pending(
            &user,
            PendingKind::Totp {
                name: name.to_string(),
                secret,
            },
            now,
        )?;
        self.audit.info(
            "enroll started",
            &[("user", &user), ("kind", totp::DEVICE_KIND)],
        );
        Ok((id, uri, secret_b32))
    }

    /// Remembers a pending enrollment for ten minutes; returns its id.
    fn add_pending(&self, user: &str, kind: PendingKind, now: i64) -> Result<String> {
        let id = random_hex(8)?;
        let mut pending = lock(&self.enrollments);
        pending.retain(|_, p| p.expires > now);
        // Keep the newest few per user: starting over is normal, hoarding is not.
        let mut mine: Vec<(String, i64)> = pending
            .iter()
            .filter(|(_, p)| p.user == user)
            .map(|(k, p)| (k.clone(), p.expires))
            .collect();
        mine.sort_by_key(|(_, e)| *e);
        while mine.len() >= MAX_ENROLLMENTS_PER_USER {
            let (oldest, _) = mine.remove(0);
            pending.remove(&oldest);
        }
        if pending.len() >= MAX_ENROLLMENTS {
            return Err(Error::RateLimited(
                "Too many enrollments in progress; try again shortly.".into(),
            ));
        }
        pending.insert(
            id.clone(),
            Pending {
                user: user.to_string(),
                kind,
                tries: 0,
                expires: now + ENROLLMENT_SECS,
            },
        );
        Ok(id)
    }

    /// Counts a wrong confirmation; enough of them end the enrollment.
    fn pending_failed(&self, enrollment_id: &str) {
        let mut pending = lock(&self.enrollments);
        if let Some(p) = pending.get_mut(enrollment_id) {
            p.tries += 1;
            if p.tries >= ENROLLMENT_TRIES {
                pending.remove(enrollment_id);
            }
        }
    }

    pub fn enroll_totp_confirm(
        &self,
        caller: u32,
        user: &str,
        enrollment_id: &str,
        code1: &str,
        code2: &str,
        now: i64,
    ) -> Result<(String, Vec<String>)> {
        let user = self.account_user(caller, user)?;
        let (secret, name) =
            self.live_pending(&user, enrollment_id, now, "totp", |kind| match kind {
                PendingKind::Totp { name, secret } => Some((secret.clone(), name.clone())),
                PendingKind::Sms { .. } => None,
            })?;
        let codes = (
            normalize_code(code1.as_bytes()),
            normalize_code(code2.as_bytes()),
        );
        let (Some(c1), Some(c2)) = codes else {
            return Err(Error::InvalidCode("Codes are 6 digits.".into()));
        };
        let mut store = lock(&self.store);
        let row = store.user(&user)?;
        let Some(step) = totp::find_consecutive(
            &secret,
            &c1,
            &c2,
            now,
            self.config.totp.window,
            row.last_step,
        ) else {
            drop(store);
            self.pending_failed(enrollment_id);
            self.audit.warn(
                "enroll failed",
                &[("user", &user), ("reason", "wrong codes")],
            );
            return Err(Error::InvalidCode(
                "The codes do not match: enter the code shown now, then wait for the next one. \
                 Check that the clock of this machine and of your phone are right."
                    .into(),
            ));
        };
        let mut device_id = random_hex(4)?;
        while row.devices.iter().any(|d| d.id == device_id) {
            device_id = random_hex(4)?;
        }
        let (codes, hashed) = new_backup_codes()?;
        let device = DeviceRow {
            id: device_id.clone(),
            kind: totp::DEVICE_KIND.into(),
            name,
            secret,
            created: now,
            last_used: 0,
        };
        store.add_device(&user, &device, step, &hashed)?;
        drop(store);
        lock(&self.enrollments).remove(enrollment_id);
        self.audit.info(
            "enroll",
            &[("user", &user), ("kind", "totp"), ("device", &device_id)],
        );
        Ok((device_id, codes))
    }

    /// Starts a phone enrollment or a change of number. A user who already
    /// has a device proves it with a current code first (root need not).
    pub fn enroll_sms_begin(
        &self,
        caller: u32,
        user: &str,
        number: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, String)> {
        let user = self.account_user(caller, user)?;
        if users::uid_of(&user).is_none() {
            return Err(Error::InvalidArgument(format!(
                "No such user: {}.",
                crate::audit::field(&user)
            )));
        }
        self.sms()?;
        let number = phone::parse(number).map_err(Error::InvalidArgument)?;
        let row = lock(&self.store).user(&user)?;
        if row.phone().is_some_and(|d| d.name == number) {
            return Err(Error::InvalidArgument(format!(
                "{} is already your enrolled number.",
                phone::mask(&number)
            )));
        }
        if caller != 0 && !row.devices.is_empty() {
            self.require_code(&user, code, now)?;
        }
        let (hashed, _) = self.send_sms(&user, &number, now, None)?;
        let lifetime = self.sms()?.code_lifetime;
        let id = self.add_pending(
            &user,
            PendingKind::Sms {
                phone: number.clone(),
                code: hashed,
                code_expires: now + lifetime,
            },
            now,
        )?;
        let change = if row.phone().is_some() {
            "change"
        } else {
            "new"
        };
        self.audit.info(
            "enroll started",
            &[
                ("user", &user),
                ("kind", phone::DEVICE_KIND),
                ("phone", &phone::mask(&number)),
                ("number", change),
            ],
        );
        Ok((id, phone::mask(&number)))
    }

    /// What `pick` takes from `user`'s live pending enrollment of the kind
    /// it accepts (`command` names it in the errors: `mfactl enroll ...`).
    fn live_pending<T>(
        &self,
        user: &str,
        enrollment_id: &str,
        now: i64,
        command: &str,
        pick: impl FnOnce(&PendingKind) -> Option<T>,
    ) -> Result<T> {
        let mut pending = lock(&self.enrollments);
        let found = pending.get(enrollment_id).filter(|p| p.user == user);
        let Some((picked, expires)) = found.and_then(|p| Some((pick(&p.kind)?, p.expires))) else {
            return Err(Error::NotFound(format!(
                "No such enrollment; start again with `mfactl enroll {command}`."
            )));
        };
        if expires <= now {
            pending.remove(enrollment_id);
            return Err(Error::Expired(format!(
                "The enrollment expired after 10 minutes; start again with `mfactl enroll {command}`."
            )));
        }
        Ok(picked)
    }

    /// The phone of a live pending SMS enrollment of `user`.
    fn pending_phone(&self, user: &str, enrollment_id: &str, now: i64) -> Result<String> {
        self.live_pending(user, enrollment_id, now, "sms", |kind| match kind {
            PendingKind::Sms { phone, .. } => Some(phone.clone()),
            PendingKind::Totp { .. } => None,
        })
    }

    pub fn enroll_sms_resend(
        &self,
        caller: u32,
        user: &str,
        enrollment_id: &str,
        now: i64,
    ) -> Result<String> {
        let user = self.account_user(caller, user)?;
        let number = self.pending_phone(&user, enrollment_id, now)?;
        let (hashed, _) = self.send_sms(&user, &number, now, None)?;
        let lifetime = self.sms()?.code_lifetime;
        if let Some(Pending {
            kind: PendingKind::Sms {
                code, code_expires, ..
            },
            ..
        }) = lock(&self.enrollments).get_mut(enrollment_id)
        {
            *code = hashed;
            *code_expires = now + lifetime;
        }
        Ok(phone::mask(&number))
    }

    /// Confirms the number with the code sent to it: a new phone device
    /// (with new backup codes, as for an app), or the new number of the
    /// existing one.
    pub fn enroll_sms_confirm(
        &self,
        caller: u32,
        user: &str,
        enrollment_id: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, Vec<String>)> {
        let user = self.account_user(caller, user)?;
        let (number, stored, code_expires) =
            self.live_pending(&user, enrollment_id, now, "sms", |kind| match kind {
                PendingKind::Sms {
                    phone,
                    code,
                    code_expires,
                } => Some((phone.clone(), code.clone(), *code_expires)),
                PendingKind::Totp { .. } => None,
            })?;
        let Some(code) = normalize_code(code.as_bytes()).filter(|c| c.len() == SMS_DIGITS) else {
            return Err(Error::InvalidCode(
                "The code from the text message is 6 digits.".into(),
            ));
        };
        if backup::find(&code, std::slice::from_ref(&stored)).is_none() {
            self.pending_failed(enrollment_id);
            self.audit.warn(
                "enroll failed",
                &[("user", &user), ("reason", "wrong SMS code")],
            );
            return Err(Error::InvalidCode(
                "Wrong code; check the text message, or send a new code.".into(),
            ));
        }
        if code_expires <= now {
            return Err(Error::Expired("That code expired; send a new one.".into()));
        }
        // Taken out first: two confirmations of one enrollment cannot both pass.
        if lock(&self.enrollments).remove(enrollment_id).is_none() {
            return Err(Error::NotFound(
                "No such enrollment; start again with `mfactl enroll sms`.".into(),
            ));
        }
        let mut store = lock(&self.store);
        let row = store.user(&user)?;
        if let Some(device) = row.phone() {
            let id = device.id.clone();
            store.set_phone(&user, &id, &number)?;
            drop(store);
            self.audit.info(
                "phone changed",
                &[
                    ("user", &user),
                    ("device", &id),
                    ("phone", &phone::mask(&number)),
                ],
            );
            return Ok((id, Vec::new()));
        }
        let mut device_id = random_hex(4)?;
        while row.devices.iter().any(|d| d.id == device_id) {
            device_id = random_hex(4)?;
        }
        let (codes, hashed) = new_backup_codes()?;
        let device = DeviceRow {
            id: device_id.clone(),
            kind: phone::DEVICE_KIND.into(),
            name: number.clone(),
            secret: Vec::new(),
            created: now,
            last_used: 0,
        };
        store.add_device(&user, &device, 0, &hashed)?;
        drop(store);
        self.audit.info(
            "enroll",
            &[
                ("user", &user),
                ("kind", phone::DEVICE_KIND),
                ("device", &device_id),
                ("phone", &phone::mask(&number)),
            ],
        );
        Ok((device_id, codes))
    }

    /// Sends a code to the user's phone, good as a current code for
    /// account changes (and at login).
    pub fn send_code(&self, caller: u32, user: &str, now: i64) -> Result<String> {
        let user = self.account_user(caller, user)?;
        self.sms()?;
        let row = lock(&self.store).user(&user)?;
        let Some(device) = row.phone() else {
            return Err(Error::NotEnrolled(format!("{user} has no phone enrolled.")));
        };
        if row.lockout.is_locked(now) {
            return Err(Error::LockedOut(row.lockout.message(now)));
        }
        self.send_login_code(&user, &device.name, now, None)?;
        Ok(phone::mask(&device.name))
    }

    pub fn status(&self, caller: u32, user: &str) -> Result<UserStatus> {
        let user = self.account_user(caller, user)?;
        let row = lock(&self.store).user(&user)?;
        Ok(status_of(&user, &row, Phones::Masked))
    }

    pub fn remove_device(
        &self,
        caller: u32,
        user: &str,
        device_id: &str,
        code: &str,
        now: i64,
    ) -> Result<()> {
        let user = self.account_user(caller, user)?;
        let row = lock(&self.store).user(&user)?;
        if !row.devices.iter().any(|d| d.id == device_id) {
            return Err(Error::NotFound(format!(
                "No device {} for {user}.",
                crate::audit::field(device_id)
            )));
        }
        if caller != 0 {
            self.require_code(&user, code, now)?;
        }
        if !lock(&self.store).remove_device(&user, device_id)? {
            return Err(Error::NotFound(format!(
                "No device {} for {user}.",
                crate::audit::field(device_id)
            )));
        }
        self.audit.info(
            "remove",
            &[
                ("user", &user),
                ("device", device_id),
                ("by_uid", &caller.to_string()),
            ],
        );
        Ok(())
    }

    pub fn regenerate_backup_codes(
        &self,
        caller: u32,
        user: &str,
        code: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let user = self.account_user(caller, user)?;
        if lock(&self.store).user(&user)?.devices.is_empty() {
            return Err(Error::NotEnrolled(format!(
                "{user} has no device enrolled."
            )));
        }
        if caller != 0 {
            self.require_code(&user, code, now)?;
        }
        let (codes, hashed) = new_backup_codes()?;
        lock(&self.store).replace_backup_codes(&user, &hashed)?;
        self.audit.info(
            "backup codes regenerated",
            &[("user", &user), ("by_uid", &caller.to_string())],
        );
        Ok(codes)
    }

    pub fn trusted_devices(&self, caller: u32, user: &str) -> Result<Vec<TrustedDevice>> {
        let user = self.account_user(caller, user)?;
        self.trusted_of(&user)
    }

    /// Removing trust only makes logins stricter, so the user needs no code.
    pub fn remove_trusted_device(&self, caller: u32, user: &str, id: &str) -> Result<()> {
        let user = self.account_user(caller, user)?;
        self.untrust(caller, &user, Some(id)).map(|_| ())
    }

    pub fn remove_all_trusted_devices(&self, caller: u32, user: &str) -> Result<u32> {
        let user = self.account_user(caller, user)?;
        self.untrust(caller, &user, None)
    }

    fn trusted_of(&self, user: &str) -> Result<Vec<TrustedDevice>> {
        let lifetime = self.config.trusted_devices.lifetime;
        let rows = lock(&self.store).trusted_list(user)?;
        Ok(rows.iter().map(|t| trusted_to_wire(t, lifetime)).collect())
    }

    fn untrust(&self, caller: u32, user: &str, id: Option<&str>) -> Result<u32> {
        let n = lock(&self.store).untrust(user, id)?;
        if let Some(id) = id {
            if n == 0 {
                return Err(Error::NotFound(format!(
                    "No trusted device {} for {user}.",
                    crate::audit::field(id)
                )));
            }
        }
        self.audit.info(
            "trusted device removed",
            &[
                ("user", user),
                ("device", id.unwrap_or("all")),
                ("by_uid", &caller.to_string()),
            ],
        );
        Ok(n)
    }

    // ----- Admin -------------------------------------------------------------

    pub fn admin_trusted_devices(&self, caller: u32, user: &str) -> Result<Vec<TrustedDevice>> {
        self.authorize_admin(caller)?;
        self.trusted_of(Self::admin_target(user)?)
    }

    pub fn admin_remove_trusted_device(&self, caller: u32, user: &str, id: &str) -> Result<()> {
        self.authorize_admin(caller)?;
        self.untrust(caller, Self::admin_target(user)?, Some(id))
            .map(|_| ())
    }

    pub fn admin_remove_all_trusted_devices(&self, caller: u32, user: &str) -> Result<u32> {
        self.authorize_admin(caller)?;
        self.untrust(caller, Self::admin_target(user)?, None)
    }

    pub fn list_users(&self, caller: u32) -> Result<Vec<UserSummary>> {
        self.authorize_admin(caller)?;
        let rows = lock(&self.store).list_users()?;
        Ok(rows
            .into_iter()
            .map(|s| UserSummary {
                user: s.user,
                devices: s.devices,
                backup_codes_left: s.backup_codes_left,
                locked_until: s.locked_until,
            })
            .collect())
    }

    pub fn user_status(&self, caller: u32, user: &str) -> Result<UserStatus> {
        self.authorize_admin(caller)?;
        let user = Self::admin_target(user)?;
        let row = lock(&self.store).user(user)?;
        Ok(status_of(user, &row, Phones::Full))
    }

    pub fn reset(&self, caller: u32, user: &str) -> Result<()> {
        self.authorize_admin(caller)?;
        let user = Self::admin_target(user)?;
        lock(&self.store).reset(user)?;
        // Logins and enrollments in flight end with the reset.
        lock(&self.sessions).retain(|_, s| s.user != user);
        lock(&self.enrollments).retain(|_, p| p.user != user);
        self.audit
            .warn("reset", &[("user", user), ("by_uid", &caller.to_string())]);
        Ok(())
    }

    pub fn unlock(&self, caller: u32, user: &str) -> Result<()> {
        self.authorize_admin(caller)?;
        let user = Self::admin_target(user)?;
        lock(&self.store).unlock(user)?;
        self.audit
            .info("unlock", &[("user", user), ("by_uid", &caller.to_string())]);
        Ok(())
    }
}

/// Makes room in a full session table by dropping the sessions closest to
/// expiry, a hundredth of them at once (so the scan is rare). Refusing new
/// logins instead would let a table filled by verified sessions that no
/// account phase collects (stacks with only an auth line) lock everyone
/// out. A dropped login fails closed: its next call finds no session.
fn evict_oldest(sessions: &mut HashMap<String, Session>) {
    let mut by_expiry: Vec<(i64, String)> = sessions
        .iter()
        .map(|(token, s)| (s.expires, token.clone()))
        .collect();
    let n = (MAX_SESSIONS / 100).clamp(1, by_expiry.len());
    by_expiry.select_nth_unstable(n - 1);
    for (_, token) in by_expiry.into_iter().take(n) {
        sessions.remove(&token);
    }
}

/// Ten fresh backup codes and their hashes.
fn new_backup_codes() -> Result<(Vec<String>, Vec<backup::Hashed>)> {
    let mut rng = |buf: &mut [u8]| random(buf);
    let mut codes = Vec::with_capacity(backup::COUNT);
    let mut hashed = Vec::with_capacity(backup::COUNT);
    while codes.len() < backup::COUNT {
        let code = backup::generate(&mut rng)?;
        if codes.contains(&code) {
            continue;
        }
        hashed.push(backup::hash(&code, &mut rng)?);
        codes.push(code);
    }
    Ok((codes, hashed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogTarget;
    use crate::policy::Mode;

    const NOW: i64 = 2_000_000_000;
    /// A user that exists on every Linux system and is not root.
    const USER: &str = "daemon";
    const USER_UID: u32 = 1;

    fn service(mode: Mode) -> Service {
        service_with(mode, Lifetime::Off)
    }

    fn service_with(mode: Mode, lifetime: Lifetime) -> Service {
        let mut config = Config::default();
        config.trusted_devices.lifetime = lifetime;
        config.policy.mode = mode;
        config.lockout.max_failures = 4;
        config.daemon.log = LogTarget::Stderr;
        Service::new(
            config,
            Store::open_in_memory().unwrap(),
            Audit::new(LogTarget::Stderr),
            None,
        )
    }

    /// Records what would go out by SMS; fails while `down` is set.
    #[derive(Default)]
    struct Outbox {
        sent: Mutex<Vec<(String, String)>>,
        down: std::sync::atomic::AtomicBool,
        slow: std::sync::atomic::AtomicBool,
    }

    impl Sender for Outbox {
        fn send(&self, m: &Message<'_>) -> std::result::Result<(), SendError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SendError::Failed("HTTP 503".into()));
            }
            if self.slow.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
            self.sent
                .lock()
                .unwrap()
                .push((m.phone.to_string(), m.code.to_string()));
            Ok(())
        }
    }

    impl Outbox {
        fn count(&self) -> usize {
            self.sent.lock().unwrap().len()
        }
        fn last(&self) -> (String, String) {
            self.sent.lock().unwrap().last().cloned().unwrap()
        }
        fn set_down(&self, down: bool) {
            self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        }
    }

    const PHONE: &str = "+37255512345";
    const MASKED: &str = "+372*****345";

    fn sms_service(max_sends: u32) -> (Service, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::default());
        let mut config = Config::default();
        config.lockout.max_failures = 4;
        let s = Service::new(
            config,
            Store::open_in_memory().unwrap(),
            Audit::new(LogTarget::Stderr),
            Some(Sms {
                sender: outbox.clone(),
                code_lifetime: 120,
                max_sends_per_hour: max_sends,
                login_wait: std::time::Duration::from_millis(300),
            }),
        );
        (s, outbox)
    }

    /// Enrolls USER's phone as root; returns the backup codes.
    fn enroll_phone(s: &Service, outbox: &Outbox, number: &str, now: i64) -> Vec<String> {
        let (id, masked) = s.enroll_sms_begin(0, USER, number, "", now).unwrap();
        assert_eq!(masked, phone::mask(number));
        let (to, code) = outbox.last();
        assert_eq!(to, number);
        s.enroll_sms_confirm(0, USER, &id, &code, now).unwrap().1
    }

    #[test]
    fn sms_only_login_sends_a_code_at_begin_and_it_works_once() {
        let (s, outbox) = sms_service(10);
        let backup = enroll_phone(&s, &outbox, PHONE, NOW);
        assert_eq!(backup.len(), backup::COUNT);
        let status = s.status(0, USER).unwrap();
        assert_eq!(status.devices[0].kind, "sms");
        assert_eq!(status.devices[0].name, MASKED);
        assert_eq!(s.user_status(0, USER).unwrap().devices[0].name, PHONE);

        let (action, token, prompt) = begin(&s);
        assert_eq!(action, BeginAction::Challenge);
        assert_eq!(
            prompt,
            format!("Code sent by SMS to {MASKED}. Verification code: ")
        );
        assert_eq!(outbox.count(), 2);
        let (_, code) = outbox.last();
        let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Success);
        // One-time: the same code fails in the next login.
        let (_, token, _) = begin(&s);
        let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Retry);
    }

    #[test]
    fn a_new_sms_code_replaces_the_old_and_codes_expire() {
        let (s, outbox) = sms_service(10);
        enroll_phone(&s, &outbox, PHONE, NOW);
        let (_, token, _) = begin(&s);
        let (_, old) = outbox.last();
        let (r, prompt) = s.login_answer(0, &token, b"", NOW).unwrap();
        assert_eq!(r, AnswerResult::Prompt);
        assert!(prompt.contains(MASKED), "{prompt}");
        let (_, new) = outbox.last();
        if old != new {
            let (r, _) = s.login_answer(0, &token, old.as_bytes(), NOW).unwrap();
            assert_eq!(r, AnswerResult::Retry);
        }
        let (r, msg) = s
            .login_answer(0, &token, new.as_bytes(), NOW + 121)
            .unwrap();
        assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_SMS_EXPIRED));
    }

    #[test]
    fn app_and_phone_users_get_sms_on_an_empty_answer_only() {
        let (s, outbox) = sms_service(2);
        let (secret, _) = enroll(&s);
        let (id, _) = s.enroll_sms_begin(0, USER, PHONE, "", NOW).unwrap();
        s.enroll_sms_confirm(0, USER, &id, &outbox.last().1, NOW)
            .unwrap();
        let (_, token, prompt) = begin(&s);
        assert_eq!(prompt, PROMPT_APP_OR_SMS);
        assert_eq!(outbox.count(), 1, "no SMS until asked");
        assert_eq!(
            s.login_answer(0, &token, b"  ", NOW).unwrap().0,
            AnswerResult::Prompt
        );
        // The hour's two sends are used: a clear retry, no failure counted.
        let (r, msg) = s.login_answer(0, &token, b"", NOW).unwrap();
        assert_eq!(r, AnswerResult::Retry);
        assert!(
            msg.contains("Too many codes") && msg.contains("app"),
            "{msg}"
        );
        assert_eq!(outbox.count(), 2);
        assert_eq!(s.user_status(0, USER).unwrap().failures, 0);
        let (r, _) = s
            .login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap();
        assert_eq!(r, AnswerResult::Success);
    }

    #[test]
    fn gateway_down_leaves_backup_codes_or_denies() {
        let (s, outbox) = sms_service(10);
        let backup = enroll_phone(&s, &outbox, PHONE, NOW);
        outbox.set_down(true);
        let (action, token, prompt) = begin(&s);
        assert_eq!(action, BeginAction::Challenge);
        assert!(prompt.contains("Could not send") && prompt.contains("Backup code"));
        let (r, _) = s
            .login_answer(0, &token, backup[0].as_bytes(), NOW)
            .unwrap();
        assert_eq!(r, AnswerResult::Success);
        lock(&s.store).replace_backup_codes(USER, &[]).unwrap();
        let (action, token, msg) = begin(&s);
        assert_eq!(action, BeginAction::Deny);
        assert!(token.is_empty());
        assert_eq!(msg, MSG_SMS_FAILED);
        // A refused send does not use up the hour's sends.
        outbox.set_down(false);
        assert_eq!(begin(&s).0, BeginAction::Challenge);
    }

    #[test]
    fn a_slow_gateway_does_not_hold_up_the_login() {
        let (s, outbox) = sms_service(10);
        enroll_phone(&s, &outbox, PHONE, NOW);
        outbox.slow.store(true, std::sync::atomic::Ordering::SeqCst);
        let started = std::time::Instant::now();
        let (action, token, prompt) = begin(&s);
        assert!(started.elapsed() < std::time::Duration::from_millis(2500));
        assert_eq!(action, BeginAction::Challenge);
        assert_eq!(
            prompt,
            format!("A code is on its way by SMS to {MASKED}. Verification code: ")
        );
        // The code was stored before the gateway answered: once it arrives,
        // it works.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while outbox.count() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (_, code) = outbox.last();
        let (r, _) = s.login_answer(0, &token, code.as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Success);
    }

    #[test]
    fn wrong_sms_codes_lock_the_user() {
        let (s, outbox) = sms_service(10);
        enroll_phone(&s, &outbox, PHONE, NOW);
        for _ in 0..4 {
            let (action, token, _) = begin(&s);
            assert_eq!(action, BeginAction::Challenge);
            let (_, right) = outbox.last();
            let wrong = if right == "000000" {
                "000001"
            } else {
                "000000"
            };
            s.login_answer(0, &token, wrong.as_bytes(), NOW).unwrap();
        }
        let sent = outbox.count();
        assert_eq!(begin(&s).0, BeginAction::Deny);
        assert_eq!(outbox.count(), sent, "no SMS to a locked user");
    }

    #[test]
    fn a_new_number_needs_a_code_and_the_old_one_works_until_confirmed() {
        let (s, outbox) = sms_service(10);
        enroll_phone(&s, &outbox, PHONE, NOW);
        let new = "+14155550100";
        // USER_UID is not root: a current code is needed.
        assert!(matches!(
            s.enroll_sms_begin(USER_UID, USER, new, "", NOW),
            Err(Error::InvalidCode(_))
        ));
        assert_eq!(s.send_code(USER_UID, USER, NOW).unwrap(), MASKED);
        let (to, current) = outbox.last();
        assert_eq!(to, PHONE);
        let (id, masked) = s
            .enroll_sms_begin(USER_UID, USER, new, &current, NOW)
            .unwrap();
        assert_eq!(masked, "+141*****100");
        let (to, new_code) = outbox.last();
        assert_eq!(to, new);
        // Not confirmed yet: logins still go to the old number.
        begin(&s);
        assert_eq!(outbox.last().0, PHONE);
        let device = s.status(0, USER).unwrap().devices[0].id.clone();
        let (kept, codes) = s
            .enroll_sms_confirm(USER_UID, USER, &id, &new_code, NOW)
            .unwrap();
        assert_eq!((kept, codes.len()), (device, 0));
        begin(&s);
        assert_eq!(outbox.last().0, new);
        assert_eq!(s.user_status(0, USER).unwrap().devices.len(), 1);
    }

    #[test]
    fn bad_numbers_and_missing_sms_config_are_clear_errors() {
        let (s, outbox) = sms_service(10);
        for bad in ["0555", "+1 555 0100", "", "+0123456789"] {
            match s.enroll_sms_begin(0, USER, bad, "", NOW) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(phone::EXAMPLE), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(outbox.count(), 0);
        let plain = service(Mode::Optional);
        assert!(matches!(
            plain.enroll_sms_begin(0, USER, PHONE, "", NOW),
            Err(Error::Unavailable(_))
        ));
    }

    fn secret_of(uri: &str) -> Vec<u8> {
        let b32 = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        totp_rs::Secret::try_from_base32(b32)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn code(secret: &[u8], offset: i64) -> String {
        totp::code_at_step(secret, (totp::step_at(NOW) as i64 + offset) as u64)
    }

    /// Enrolls USER with steps now-1 and now; returns secret and backup codes.
    fn enroll(s: &Service) -> (Vec<u8>, Vec<String>) {
        let (id, uri, _) = s.enroll_totp_begin(0, USER, "phone", NOW).unwrap();
        let secret = secret_of(&uri);
        let (_, backup) = s
            .enroll_totp_confirm(0, USER, &id, &code(&secret, -1), &code(&secret, 0), NOW)
            .unwrap();
        (secret, backup)
    }

    fn begin(s: &Service) -> (BeginAction, String, String) {
        let req = LoginRequest {
            user: USER.into(),
            service: "sshd".into(),
            ..Default::default()
        };
        s.login_begin(0, &req, NOW).unwrap()
    }

    #[test]
    fn unenrolled_users_follow_policy() {
        assert_eq!(begin(&service(Mode::Optional)).0, BeginAction::Ignore);
        assert_eq!(begin(&service(Mode::Required)).0, BeginAction::Deny);
    }

    #[test]
    fn enrolled_login_succeeds_once_per_step() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        let (action, token, prompt) = begin(&s);
        assert_eq!((action, prompt.as_str()), (BeginAction::Challenge, PROMPT));
        // The enrollment's own steps are used up.
        let (r, msg) = s
            .login_answer(0, &token, code(&secret, 0).as_bytes(), NOW)
            .unwrap();
        assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_REPLAY));
        let spaced = code(&secret, 1);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        let (r, _) = s.login_answer(0, &token, spaced.as_bytes(), NOW).unwrap();
        assert_eq!(r, AnswerResult::Success);
        // The session is gone, and the same code does not work again.
        assert!(matches!(
            s.login_answer(0, &token, b"000000", NOW),
            Err(Error::NotFound(_))
        ));
        let (_, token, _) = begin(&s);
        let (r, msg) = s
            .login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
            .unwrap();
        assert_eq!((r, msg.as_str()), (AnswerResult::Retry, MSG_REPLAY));
    }

    #[test]
    fn three_wrong_tries_end_the_session_and_enough_lock_the_user() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin(&s);
        assert_eq!(
            s.login_answer(0, &token, b"abc", NOW).unwrap().0,
            AnswerResult::Retry
        );
        assert_eq!(
            s.login_answer(0, &token, b"\xff\xfe", NOW).unwrap().0,
            AnswerResult::Retry
        );
        assert_eq!(
            s.login_answer(0, &token, &[b'1'; 10_000], NOW).unwrap().0,
            AnswerResult::Deny
        );
        let (_, token, _) = begin(&s);
        let (r, msg) = s.login_answer(0, &token, b"000000", NOW).unwrap();
        assert_eq!(r, AnswerResult::Deny, "fourth failure locks");
        assert!(msg.contains("Too many failed attempts"), "{msg}");
        // Locked: Begin denies and a correct code does not help.
        assert_eq!(begin(&s).0, BeginAction::Deny);
        assert!(matches!(
            s.require_code(USER, &code(&secret, 1), NOW),
            Err(Error::LockedOut(_))
        ));
        s.unlock(0, USER).unwrap();
        let (_, token, _) = begin(&s);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
    }

    #[test]
    fn backup_codes_work_once() {
        let s = service(Mode::Optional);
        let (_, backup) = enroll(&s);
        assert_eq!(backup.len(), 10);
        let (_, token, _) = begin(&s);
        assert_eq!(
            s.login_answer(0, &token, backup[3].as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        let (_, token, _) = begin(&s);
        assert_eq!(
            s.login_answer(0, &token, backup[3].as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Retry
        );
        assert_eq!(s.status(0, USER).unwrap().backup_codes_left, 9);
    }

    #[test]
    fn users_act_only_on_themselves() {
        let s = service(Mode::Optional);
        let req = LoginRequest {
            user: "root".into(),
            ..Default::default()
        };
        assert!(matches!(
            s.login_begin(USER_UID, &req, NOW),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.enroll_totp_begin(USER_UID, "root", "", NOW),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.status(USER_UID, "root"),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.reset(USER_UID, "root"),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            s.list_users(USER_UID),
            Err(Error::AccessDenied(_))
        ));
        // Their own account is fine.
        assert_eq!(s.status(USER_UID, "").unwrap().user, USER);
        let own = LoginRequest {
            user: USER.into(),
            ..Default::default()
        };
        assert_eq!(
            s.login_begin(USER_UID, &own, NOW).unwrap().0,
            BeginAction::Ignore
        );
    }

    #[test]
    fn a_session_belongs_to_its_caller() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin(&s);
        let stolen = s.login_answer(USER_UID, &token, code(&secret, 1).as_bytes(), NOW);
        assert!(matches!(stolen, Err(Error::NotFound(_))));
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
    }

    #[test]
    fn removing_a_device_as_the_user_needs_a_code() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        let id = s.status(0, USER).unwrap().devices[0].id.clone();
        assert!(matches!(
            s.remove_device(USER_UID, "", &id, "123456", NOW),
            Err(Error::InvalidCode(_))
        ));
        assert!(matches!(
            s.remove_device(USER_UID, "", "nope", "", NOW),
            Err(Error::NotFound(_))
        ));
        s.remove_device(USER_UID, "", &id, &code(&secret, 1), NOW)
            .unwrap();
        let st = s.status(0, USER).unwrap();
        assert!(!st.enrolled);
        assert_eq!(st.backup_codes_left, 0);
    }

    #[test]
    fn enrollment_needs_two_consecutive_codes_and_expires() {
        let s = service(Mode::Optional);
        let (id, uri, b32) = s.enroll_totp_begin(0, USER, "", NOW).unwrap();
        assert!(uri.contains(&format!("secret={b32}")));
        let secret = secret_of(&uri);
        let wrong = s.enroll_totp_confirm(0, USER, &id, &code(&secret, 0), &code(&secret, 0), NOW);
        assert!(matches!(wrong, Err(Error::InvalidCode(_))));
        let late = s.enroll_totp_confirm(
            0,
            USER,
            &id,
            &code(&secret, 0),
            &code(&secret, 1),
            NOW + ENROLLMENT_SECS,
        );
        assert!(matches!(late, Err(Error::Expired(_))));
        assert!(matches!(
            s.enroll_totp_confirm(0, USER, &id, "1", "2", NOW),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.enroll_totp_begin(0, "no-such-user-x", "", NOW),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn reset_forgets_everything_but_used_steps() {
        let s = service(Mode::Optional);
        enroll(&s);
        s.reset(0, USER).unwrap();
        let st = s.status(0, USER).unwrap();
        assert!(!st.enrolled && st.devices.is_empty() && st.backup_codes_left == 0);
        assert!(s.list_users(0).unwrap().is_empty());
        assert_eq!(begin(&s).0, BeginAction::Ignore);
    }

    fn begin_from(
        s: &Service,
        rhost: &str,
        auth_info: &str,
        now: i64,
    ) -> (BeginAction, String, String) {
        let req = LoginRequest {
            user: USER.into(),
            service: "sshd".into(),
            rhost: rhost.into(),
            auth_info: auth_info.into(),
            ..Default::default()
        };
        s.login_begin(0, &req, now).unwrap()
    }

    #[test]
    fn a_verified_device_is_trusted_for_the_lifetime() {
        let s = service_with(Mode::Optional, Lifetime::Secs(3600));
        let (secret, _) = enroll(&s);
        let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNtIS6ys3VoapH/tKTx2Y8H3bCnHjpRD+evliKsWIGw";
        let (action, token, _) = begin_from(&s, "10.0.0.9", key, NOW);
        assert_eq!(action, BeginAction::Challenge);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        // Not trusted until the account phase says the whole login passed.
        assert_eq!(
            begin_from(&s, "10.0.0.7", key, NOW + 5).0,
            BeginAction::Challenge
        );
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Allow
        );
        // Same key from another host: trusted. No key, same host: not.
        assert_eq!(
            begin_from(&s, "10.0.0.7", key, NOW + 10).0,
            BeginAction::Allow
        );
        assert_eq!(
            begin_from(&s, "10.0.0.9", "", NOW + 10).0,
            BeginAction::Challenge
        );
        // Local logins are never trusted.
        assert_eq!(begin_from(&s, "", "", NOW + 10).0, BeginAction::Challenge);
        // Expired trust asks again.
        assert_eq!(
            begin_from(&s, "10.0.0.7", key, NOW + 3600).0,
            BeginAction::Challenge
        );
        let listed = s.trusted_devices(USER_UID, "").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].kind.as_str(), listed[0].expires),
            ("key", NOW + 3600)
        );
        assert_eq!(listed[0].last_used, NOW + 10);
        // Another user gets nothing from it.
        assert!(matches!(
            s.trusted_devices(USER_UID, "root"),
            Err(Error::AccessDenied(_))
        ));
        s.remove_trusted_device(USER_UID, "", &listed[0].id)
            .unwrap();
        assert_eq!(
            begin_from(&s, "10.0.0.7", key, NOW + 20).0,
            BeginAction::Challenge
        );
        assert!(matches!(
            s.remove_trusted_device(USER_UID, "", &listed[0].id),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn host_trust_without_a_key_and_reset_clears_it() {
        let s = service_with(Mode::Optional, Lifetime::Forever);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Allow
        );
        assert_eq!(
            begin_from(&s, "10.0.0.9", "", NOW + 1_000_000).0,
            BeginAction::Allow
        );
        assert_eq!(s.admin_trusted_devices(0, USER).unwrap()[0].expires, 0);
        assert!(matches!(
            s.admin_trusted_devices(USER_UID, USER),
            Err(Error::AccessDenied(_))
        ));
        s.reset(0, USER).unwrap();
        assert!(s.admin_trusted_devices(0, USER).unwrap().is_empty());
    }

    #[test]
    fn a_right_code_without_the_account_phase_trusts_nothing() {
        // e.g. `auth required pam_unix.so` failed after pam_mfa's success:
        // the application never runs the account phase.
        let s = service_with(Mode::Optional, Lifetime::Forever);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin_from(&s, "10.3.3.3", "", NOW);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        assert_eq!(
            begin_from(&s, "10.3.3.3", "", NOW + 1).0,
            BeginAction::Challenge
        );
        assert!(s.trusted_devices(0, USER).unwrap().is_empty());
    }

    #[test]
    fn trust_is_off_by_default() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        assert_eq!(
            begin_from(&s, "10.0.0.9", "", NOW).0,
            BeginAction::Challenge
        );
        assert!(s.trusted_devices(0, USER).unwrap().is_empty());
    }

    #[test]
    fn the_account_phase_needs_a_verified_session_once() {
        let s = service(Mode::Optional);
        // Not enrolled: no opinion.
        assert_eq!(
            s.account_check(0, USER, "sshd", "", NOW).unwrap().0,
            AccountAction::Ignore
        );
        let (secret, _) = enroll(&s);
        // Enrolled, but no code step in this login (sshd with publickey only).
        let (action, msg) = s.account_check(0, USER, "sshd", "", NOW).unwrap();
        assert_eq!(
            (action, msg.as_str()),
            (AccountAction::Deny, MSG_NOT_VERIFIED)
        );
        let (_, token, _) = begin(&s);
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Deny,
            "not yet verified"
        );
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        // A verified session takes no more answers.
        assert!(matches!(
            s.login_answer(0, &token, b"123456", NOW),
            Err(Error::NotFound(_))
        ));
        assert_eq!(
            s.account_check(0, "root", "sshd", &token, NOW).unwrap().0,
            AccountAction::Ignore,
            "other user"
        );
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Allow
        );
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Deny,
            "used once"
        );
    }

    #[test]
    fn a_trusted_login_passes_the_account_phase() {
        let s = service_with(Mode::Optional, Lifetime::Forever);
        let (secret, _) = enroll(&s);
        let (_, token, _) = begin_from(&s, "10.0.0.9", "", NOW);
        assert_eq!(
            s.login_answer(0, &token, code(&secret, 1).as_bytes(), NOW)
                .unwrap()
                .0,
            AnswerResult::Success
        );
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW).unwrap().0,
            AccountAction::Allow
        );
        let (action, token, _) = begin_from(&s, "10.0.0.9", "", NOW + 5);
        assert_eq!(action, BeginAction::Allow);
        assert_eq!(
            s.account_check(0, USER, "sshd", &token, NOW + 6).unwrap().0,
            AccountAction::Allow
        );
        // Unenrolled users under "required" are refused here too.
        let r = service(Mode::Required);
        assert_eq!(
            r.account_check(0, USER, "sshd", "", NOW).unwrap().0,
            AccountAction::Deny
        );
    }

    #[test]
    fn a_full_session_table_drops_its_oldest_sessions_not_new_logins() {
        let s = service(Mode::Optional);
        let (secret, _) = enroll(&s);
        // Verified sessions no account phase collects, as with an auth-only
        // stack (a trusted device's Allow makes the same kind).
        let req = LoginRequest {
            user: USER.into(),
            ..Default::default()
        };
        let first = s.new_session(0, &req, None, true, NOW).unwrap();
        for i in 1..MAX_SESSIONS as i64 {
            s.new_session(0, &req, None, true, NOW + i / 100).unwrap();
        }
        let later = NOW + 200;
        let (action, token, _) = s.login_begin(0, &req, later).unwrap();
        assert_eq!(action, BeginAction::Challenge);
        assert!(lock(&s.sessions).len() <= MAX_SESSIONS);
        assert!(!lock(&s.sessions).contains_key(&first), "the oldest went");
        let (r, _) = s
            .login_answer(0, &token, code(&secret, 7).as_bytes(), later)
            .unwrap();
        assert_eq!(r, AnswerResult::Success);
    }

    #[test]
    fn code_input_normalization() {
        assert_eq!(normalize_code(b"123 456").as_deref(), Some("123456"));
        assert_eq!(normalize_code(b" 12345678 ").as_deref(), Some("12345678"));
        for bad in [
            &b""[..],
            b"   ",
            b"12a456",
            b"\xff123456",
            b"123\t456",
            &[b'1'; 65],
        ] {
            assert_eq!(normalize_code(bad), None, "{bad:?}");
        }
    }
}
