//! What mfad does, independent of D-Bus: each public method of [`Service`]
//! is one call of the interface, given the caller's UID and the time. Each
//! first gets a grant from [`authz`], then hands the work to the unit that
//! owns it:
//!
//! | unit | owns |
//! |---|---|
//! | [`authz`] | who may do what (typed grants) |
//! | [`attempts`] | login attempts: Begin, Answer, AccountCheck, trust |
//! | [`verify`] | checking a code against the user's factors, lockout |
//! | [`enroll`] | pending enrollments of every factor |
//! | [`login_enroll`] | enrolling inside a login (`Login.Enroll*`) |
//! | [`sms`] | sending codes by SMS, the hourly quota |
//! | [`account`] | a user's own devices, backup codes, trusted devices |
//! | [`admin`] | listing, resetting and unlocking users |
//! | [`sessions`] | limited login sessions: their records, timers and end |
//!
//! The units share a [`Core`]: configuration, the store, the audit log, the
//! user directory, randomness and the SMS gateway.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use mfa_api::{
    AccountAction, AnswerResult, BeginAction, MissingUser, SessionDuration, SessionInfo,
    TrustedDevice, UserStatus, UserSummary,
};

use crate::audit::Audit;
use crate::config::Config;
use crate::error::Error;
use crate::error::Result;
use crate::factor::View;
use crate::random::Random;
use crate::seal::Keys;
use crate::store::{Store, UserState};
use crate::users::{Account, Directory};

pub mod account;
pub mod admin;
pub mod attempts;
pub mod authz;
pub mod enroll;
pub mod login_enroll;
pub mod sessions;
pub mod sms;
pub mod verify;

#[cfg(test)]
mod tests;

pub use sms::{Sms, LOGIN_SEND_WAIT};

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

/// One `Login.OpenSession` request.
#[derive(Debug, Clone, Default)]
pub struct SessionLogin {
    pub user: String,
    pub service: String,
    /// Begin's token, or empty (see [`attempts::Attempts::take_passed`]).
    pub attempt: String,
    pub tty: String,
    pub xdg_session_id: String,
}

/// What every unit works with.
pub struct Core {
    pub config: Config,
    /// The name shown in authenticator apps.
    pub issuer: String,
    pub store: Arc<dyn Store>,
    pub audit: Arc<Audit>,
    pub users: Box<dyn Directory>,
    pub random: Box<dyn Random>,
    /// The daemon's key (sealed secrets, keyed codes).
    pub keys: Arc<Keys>,
    /// `[sms]`, when configured.
    pub sms: Option<Sms>,
}

pub struct Service {
    /// Replaced as a whole only by [`Service::reload`].
    core: RwLock<Core>,
    attempts: attempts::Attempts,
    enrollments: enroll::Enrollments,
    sessions: sessions::Sessions,
}

/// Why an account whose UID enrolled under another name is refused.
pub const MSG_RESET_NEEDED: &str = "2-step verification for this account was set up by another \
     account with the same UID (or under its old name); an administrator must reset it.";

/// The state of `account`, refused (and logged for the admin) when its UID
/// was enrolled under another account name: a renamed account, or a UID
/// that now belongs to someone else. Never silently "not enrolled".
pub fn owned_state(core: &Core, account: &Account) -> Result<UserState> {
    let state = core.store.user(account.uid)?;
    if state.enrolled() && state.name != account.name {
        let uid = account.uid.to_string();
        let fix = format!(
            "check the account, then reset it: mfactl admin reset {}",
            account.name
        );
        core.audit.warn(
            "account changed",
            &[
                ("user", &account.name),
                ("uid", &uid),
                ("enrolled_as", &state.name),
                ("action", &fix),
            ],
        );
        return Err(Error::AccessDenied(MSG_RESET_NEEDED.into()));
    }
    Ok(state)
}

/// Locks one of the in-memory tables. A panic while holding the lock cannot
/// leave them half-updated in a way that matters (each update is one insert
/// or remove), so carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// `[daemon] issuer`, else the host name.
fn issuer(config: &Config) -> String {
    if config.daemon.issuer.is_empty() {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "mfa".into())
    } else {
        config.daemon.issuer.clone()
    }
}

impl Service {
    pub fn new(mut core: Core) -> Service {
        if core.issuer.is_empty() {
            core.issuer = issuer(&core.config);
        }
        Service {
            core: RwLock::new(core),
            attempts: attempts::Attempts::new(),
            enrollments: enroll::Enrollments::new(),
            sessions: sessions::Sessions::new(),
        }
    }

    pub fn audit(&self) -> Arc<Audit> {
        self.core().audit.clone()
    }

    /// The core for one call. A reload waits for calls in flight.
    fn core(&self) -> RwLockReadGuard<'_, Core> {
        match self.core.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes a re-read configuration (SIGHUP). Logins and enrollments in
    /// flight stay; what is fixed at start (`[daemon] bus`, `state_dir`,
    /// `log`, and `[sms]`, whose gateway is built then) keeps its old value,
    /// and the keys that would need a restart are returned.
    pub fn reload(&self, mut config: Config) -> Vec<&'static str> {
        let mut core = match self.core.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let old = &core.config;
        let mut kept = Vec::new();
        if config.daemon.bus != old.daemon.bus {
            kept.push("[daemon] bus");
        }
        if config.daemon.state_dir != old.daemon.state_dir {
            kept.push("[daemon] state_dir");
        }
        if config.daemon.log != old.daemon.log {
            kept.push("[daemon] log");
        }
        if config.daemon.login_socket != old.daemon.login_socket {
            kept.push("[daemon] login_socket");
        }
        // SmsConfig holds no secret (the password stays in its file).
        if format!("{:?}", config.sms) != format!("{:?}", old.sms) {
            kept.push("[sms]");
        }
        // The capabilities to end sessions were dropped at the start.
        if old.session.max_duration.is_none() && config.session.max_duration.is_some() {
            kept.push("[session] max_duration (from \"off\")");
            config.session = old.session.clone();
        }
        config.daemon.bus = old.daemon.bus.clone();
        config.daemon.state_dir = old.daemon.state_dir.clone();
        config.daemon.log = old.daemon.log;
        config.daemon.login_socket = old.daemon.login_socket.clone();
        config.sms = old.sms.clone();
        core.issuer = issuer(&config);
        core.config = config;
        kept
    }

    // ----- Login -------------------------------------------------------------

    pub fn login_begin(
        &self,
        caller: u32,
        req: &LoginRequest,
        now: i64,
    ) -> Result<(BeginAction, String, String)> {
        let grant = authz::login(&self.core(), caller, &req.user)?;
        self.attempts.begin(&self.core(), &grant, req, now)
    }

    /// The grant was checked at Begin: an attempt answers only to the
    /// caller that began it.
    pub fn login_answer(
        &self,
        caller: u32,
        token: &str,
        code: &[u8],
        now: i64,
    ) -> Result<(AnswerResult, String)> {
        self.attempts.answer(&self.core(), caller, token, code, now)
    }

    pub fn account_check(
        &self,
        caller: u32,
        user: &str,
        service: &str,
        token: &str,
        now: i64,
    ) -> Result<(AccountAction, String)> {
        let grant = authz::login(&self.core(), caller, user)?;
        self.attempts
            .account_check(&self.core(), &grant, service, token, now)
    }

    /// The `Login.Enroll*` calls: the attempt's token names the account
    /// (the grant, from authz, is for the root caller that began it).
    pub fn login_enroll_kinds(&self, caller: u32, token: &str, now: i64) -> Result<Vec<String>> {
        login_enroll::kinds(&self.core(), &self.attempts, caller, token, now)
    }

    pub fn login_enroll_begin(
        &self,
        caller: u32,
        token: &str,
        kind: &str,
        phone: &str,
        now: i64,
    ) -> Result<(String, String, String)> {
        login_enroll::begin(
            &self.core(),
            &self.attempts,
            &self.enrollments,
            (caller, token),
            kind,
            phone,
            now,
        )
    }

    /// Limits the session of a login that passed 2-step (or a trusted
    /// device); other logins get an empty id. Only the caller that made
    /// the login may take it.
    pub fn open_session(
        &self,
        caller: u32,
        login: &SessionLogin,
        pidfd: std::os::fd::OwnedFd,
        now: i64,
    ) -> Result<(String, i64, String)> {
        let grant = authz::login(&self.core(), caller, &login.user)?;
        let passed = self
            .attempts
            .take_passed(&grant, &login.service, &login.attempt, now);
        self.sessions.open(
            &self.core(),
            passed,
            &login.tty,
            &login.xdg_session_id,
            pidfd,
            now,
        )
    }

    pub fn login_enroll_resend(&self, caller: u32, token: &str, now: i64) -> Result<String> {
        login_enroll::resend(
            &self.core(),
            &self.attempts,
            &self.enrollments,
            (caller, token),
            now,
        )
    }

    pub fn login_enroll_confirm(
        &self,
        caller: u32,
        token: &str,
        codes: &[String],
        now: i64,
    ) -> Result<(AnswerResult, String, Vec<String>)> {
        login_enroll::confirm(
            &self.core(),
            &self.attempts,
            &self.enrollments,
            (caller, token),
            codes,
            now,
        )
    }

    pub fn close_session(&self, caller: u32, id: &str, now: i64) -> Result<()> {
        let grant = authz::close_session(&self.core(), caller)?;
        self.sessions.close(&self.core(), &grant, id, now)
    }

    /// Arms session timers on `runtime` from now on, and re-arms the
    /// sessions recorded before a restart.
    pub fn start_sessions(&self, runtime: tokio::runtime::Handle, now: i64) -> Result<()> {
        self.sessions.start(runtime);
        self.sessions.rearm(&self.core(), now)
    }

    // ----- Account -----------------------------------------------------------

    pub fn session_duration(&self, caller: u32, user: &str) -> Result<SessionDuration> {
        let grant = authz::account(&self.core(), caller, user)?;
        sessions::duration(&self.core(), &grant)
    }

    pub fn set_session_duration(&self, caller: u32, user: &str, secs: i64) -> Result<()> {
        let grant = authz::account(&self.core(), caller, user)?;
        sessions::choose(&self.core(), &grant, secs)
    }

    pub fn sessions(&self, caller: u32, user: &str) -> Result<Vec<SessionInfo>> {
        let grant = authz::account(&self.core(), caller, user)?;
        sessions::list(&self.core(), Some(grant.uid()))
    }

    pub fn enroll_totp_begin(
        &self,
        caller: u32,
        user: &str,
        name: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, String, String)> {
        let grant = authz::account(&self.core(), caller, user)?;
        self.enrollments
            .totp_begin(&self.core(), &grant, name, code, now)
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
        let grant = authz::account(&self.core(), caller, user)?;
        self.enrollments
            .totp_confirm(&self.core(), &grant, enrollment_id, code1, code2, now)
    }

    pub fn enroll_sms_begin(
        &self,
        caller: u32,
        user: &str,
        number: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, String)> {
        let grant = authz::account(&self.core(), caller, user)?;
        self.enrollments
            .sms_begin(&self.core(), &grant, number, code, now)
    }

    pub fn enroll_sms_resend(
        &self,
        caller: u32,
        user: &str,
        enrollment_id: &str,
        now: i64,
    ) -> Result<String> {
        let grant = authz::account(&self.core(), caller, user)?;
        self.enrollments
            .sms_resend(&self.core(), &grant, enrollment_id, now)
    }

    pub fn enroll_sms_confirm(
        &self,
        caller: u32,
        user: &str,
        enrollment_id: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, Vec<String>)> {
        let grant = authz::account(&self.core(), caller, user)?;
        self.enrollments
            .sms_confirm(&self.core(), &grant, enrollment_id, code, now)
    }

    pub fn send_code(&self, caller: u32, user: &str, now: i64) -> Result<String> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::send_code(&self.core(), &grant, now)
    }

    pub fn status(&self, caller: u32, user: &str) -> Result<UserStatus> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::status(&self.core(), &grant, View::Owner)
    }

    pub fn remove_device(
        &self,
        caller: u32,
        user: &str,
        device_id: &str,
        code: &str,
        now: i64,
    ) -> Result<()> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::remove_device(&self.core(), &grant, device_id, code, now)
    }

    pub fn regenerate_backup_codes(
        &self,
        caller: u32,
        user: &str,
        code: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::regenerate_backup_codes(&self.core(), &grant, code, now)
    }

    pub fn trusted_devices(&self, caller: u32, user: &str) -> Result<Vec<TrustedDevice>> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::trusted_devices(&self.core(), &grant)
    }

    /// Removing trust only makes logins stricter, so the user needs no code.
    pub fn remove_trusted_device(&self, caller: u32, user: &str, id: &str) -> Result<()> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::untrust(&self.core(), &grant, Some(id)).map(|_| ())
    }

    pub fn remove_all_trusted_devices(&self, caller: u32, user: &str) -> Result<u32> {
        let grant = authz::account(&self.core(), caller, user)?;
        account::untrust(&self.core(), &grant, None)
    }

    // ----- Admin -------------------------------------------------------------

    fn admin_target(&self, caller: u32, user: &str) -> Result<authz::AdminTarget> {
        let core = self.core();
        authz::admin(&core, caller)?.on(&core, user)
    }

    fn admin_change(&self, caller: u32, user: &str) -> Result<authz::AdminTarget> {
        let core = self.core();
        authz::admin(&core, caller)?.to_change(&core, user)
    }

    pub fn admin_trusted_devices(&self, caller: u32, user: &str) -> Result<Vec<TrustedDevice>> {
        let target = self.admin_target(caller, user)?;
        account::trusted_devices(&self.core(), &target.as_owner())
    }

    pub fn admin_remove_trusted_device(&self, caller: u32, user: &str, id: &str) -> Result<()> {
        let target = self.admin_change(caller, user)?;
        account::untrust(&self.core(), &target.as_owner(), Some(id)).map(|_| ())
    }

    pub fn admin_remove_all_trusted_devices(&self, caller: u32, user: &str) -> Result<u32> {
        let target = self.admin_change(caller, user)?;
        account::untrust(&self.core(), &target.as_owner(), None)
    }

    pub fn list_users(&self, caller: u32) -> Result<Vec<UserSummary>> {
        let grant = authz::admin(&self.core(), caller)?;
        admin::list_users(&self.core(), &grant)
    }

    pub fn user_status(&self, caller: u32, user: &str) -> Result<UserStatus> {
        let target = self.admin_target(caller, user)?;
        account::status(&self.core(), &target.as_owner(), View::Admin)
    }

    /// "Lost phone": the user's state goes, and so do their logins and
    /// enrollments in flight.
    pub fn reset(&self, caller: u32, user: &str) -> Result<()> {
        let target = self.admin_change(caller, user)?;
        admin::reset(&self.core(), &target)?;
        self.attempts.forget_user(target.uid());
        self.enrollments.forget_user(target.uid());
        Ok(())
    }

    pub fn unlock(&self, caller: u32, user: &str) -> Result<()> {
        let target = self.admin_change(caller, user)?;
        admin::unlock(&self.core(), &target)
    }

    pub fn list_missing(&self, caller: u32, now: i64) -> Result<Vec<MissingUser>> {
        let grant = authz::admin(&self.core(), caller)?;
        admin::list_missing(&self.core(), &grant, now)
    }

    /// Every user's sessions for an empty `user`.
    pub fn admin_sessions(&self, caller: u32, user: &str) -> Result<Vec<SessionInfo>> {
        if user.is_empty() {
            authz::admin(&self.core(), caller)?;
            return sessions::list(&self.core(), None);
        }
        let target = self.admin_target(caller, user)?;
        sessions::list(&self.core(), Some(target.uid()))
    }

    pub fn end_session(&self, caller: u32, id: &str, now: i64) -> Result<()> {
        let core = self.core();
        let grant = authz::admin(&core, caller)?;
        self.sessions.end(&core, &grant, id, now)
    }

    /// "Lost phone", the sessions too.
    pub fn end_sessions(&self, caller: u32, user: &str, now: i64) -> Result<u32> {
        let target = self.admin_change(caller, user)?;
        self.sessions.end_all(&self.core(), target.uid(), now)
    }

    /// An admin removes a device the user lost; no code, as for a reset.
    pub fn admin_remove_device(&self, caller: u32, user: &str, device_id: &str) -> Result<()> {
        let target = self.admin_change(caller, user)?;
        account::delete_device(&self.core(), &target.as_owner(), device_id)
    }
}
