//! The `org.mfad.Mfa1` D-Bus interface, defined once for mfad, mfactl and pam_mfa.
//!
//! Everything that crosses the bus lives here: the well-known name, the object
//! path, the three interfaces as proxy traits, the wire types and the error
//! names. mfad implements the interfaces with exactly these signatures; a test
//! in `tests/` compares the live introspection data with `docs/dbus-api.md`.
//! Besides the bus, [`breakglass`]: the emergency codes' file, which mfactl
//! writes, pam_mfa uses and mfad reports on; [`qr`]: the enrollment's QR
//! code as text, drawn alike by mfactl and pam_mfa; [`wire`]: the D-Bus wire
//! format of pam_mfa's lean client and mfad's login socket server.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

pub mod breakglass;
pub mod qr;
pub mod wire;
use zbus::{proxy, Type};

/// The daemon's well-known bus name. Only root may own it (D-Bus policy).
pub const BUS_NAME: &str = "org.mfad.Mfa1";
/// The one object mfad serves; all three interfaces live on it.
pub const OBJECT_PATH: &str = "/org/mfad/Mfa1";
pub const LOGIN_INTERFACE: &str = "org.mfad.Mfa1.Login";
pub const ACCOUNT_INTERFACE: &str = "org.mfad.Mfa1.Account";
pub const ADMIN_INTERFACE: &str = "org.mfad.Mfa1.Admin";
/// Prefix of every error name the daemon returns.
pub const ERROR_PREFIX: &str = "org.mfad.Mfa1.Error";
/// Where the system bus listens on Debian and Fedora. Clients and the PAM
/// module use this unless given another address; never the environment.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// mfad's private login socket: org.mfad.Mfa1.Login peer to peer, the
/// caller known by SO_PEERCRED (`[daemon] login_socket`, `socket=`).
pub const DEFAULT_LOGIN_SOCKET: &str = "/run/mfad/login.socket";

/// Errors the daemon returns, as `org.mfad.Mfa1.Error.<Variant>`.
///
/// The message is one sentence meant for the user; it never holds a code or
/// a secret.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.mfad.Mfa1.Error")]
pub enum Error {
    /// A transport or protocol error on the client side (not sent by mfad);
    /// also an `org.mfad.Mfa1.Error.*` name this version has no variant for
    /// (see [`Error::is_refusal`]).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not act on this user or interface.
    AccessDenied(String),
    /// The user has no active device.
    NotEnrolled(String),
    /// Too many failed attempts; the user is locked for a while.
    LockedOut(String),
    /// A verification code was wrong, reused or malformed.
    InvalidCode(String),
    /// An argument was malformed (user name, device id, name, ...).
    InvalidArgument(String),
    /// A device, enrollment or login attempt that does not exist.
    NotFound(String),
    /// A pending enrollment or login attempt that timed out.
    Expired(String),
    /// Too many requests in a short time.
    RateLimited(String),
    /// Something the request needs is not there: SMS is not configured on
    /// this host, or the SMS gateway could not send the code.
    Unavailable(String),
    /// The daemon failed (storage, randomness); details are in its log.
    Internal(String),
}

impl Error {
    /// Whether mfad itself answered with this error: one of the variants
    /// above, or a name under [`ERROR_PREFIX`] that this version does not
    /// know (a newer mfad). Anything else means the call did not reach a
    /// decision (no bus, no owner, a timeout, a broken connection).
    pub fn is_refusal(&self) -> bool {
        self.kind().is_some()
    }

    /// The error's name under [`ERROR_PREFIX`] (`"LockedOut"`), also for
    /// names this version does not know; `None` for transport errors.
    pub fn kind(&self) -> Option<String> {
        error_kind(&self.error_name()).map(str::to_string)
    }

    /// The full D-Bus error name, as the reply carried it.
    pub fn error_name(&self) -> String {
        match self {
            Error::ZBus(zbus::Error::MethodError(name, _, _)) => name.to_string(),
            other => zbus::DBusError::name(other).to_string(),
        }
    }

    /// The human-readable sentence, without the D-Bus error name.
    pub fn message(&self) -> String {
        match self {
            Error::ZBus(zbus::Error::MethodError(_, description, _)) if self.is_refusal() => {
                description.clone().unwrap_or_default()
            }
            Error::ZBus(e) => e.to_string(),
            other => zbus::DBusError::description(other)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// The part of a D-Bus error name after [`ERROR_PREFIX`] (`"LockedOut"`
/// for `org.mfad.Mfa1.Error.LockedOut`), also for names this version has
/// no [`Error`] variant for; `None` when mfad did not send it (a bus or
/// transport error). Without zbus, for pam_mfa's own wire client.
pub fn error_kind(name: &str) -> Option<&str> {
    name.strip_prefix(ERROR_PREFIX)
        .and_then(|n| n.strip_prefix('.'))
        .filter(|n| !n.is_empty())
}

/// Reads an action or result string as serde does for the enums below
/// (an unknown value is `Unknown`), without serde: for pam_mfa's own wire
/// client. A test checks that both agree.
macro_rules! from_wire_str {
    ($t:ty { $($wire:literal => $v:ident),* $(,)? }) => {
        impl std::str::FromStr for $t {
            type Err = std::convert::Infallible;

            fn from_str(s: &str) -> Result<$t, Self::Err> {
                Ok(match s {
                    $($wire => <$t>::$v,)*
                    _ => <$t>::Unknown,
                })
            }
        }
    };
}

/// What `Login.Begin` tells the PAM module to do.
///
/// Any other value (from a newer mfad) decodes as [`BeginAction::Unknown`],
/// which the module treats as `deny`: version skew must never read as
/// "daemon unavailable", which `failmode=safe` would let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[zbus(signature = "s")]
#[serde(rename_all = "lowercase")]
pub enum BeginAction {
    /// No code asked (not enrolled and not required, exempt, or in the grace
    /// period to enroll): PAM_IGNORE. A non-empty message is a notice to
    /// show as info text (the grace period's time left).
    Ignore,
    /// No code needed (trusted device): PAM_SUCCESS.
    Allow,
    /// Refuse the login (locked out, or enrollment required): PAM_AUTH_ERR.
    Deny,
    /// Prompt for a code with the message and call `Login.Answer`.
    Challenge,
    /// The user must use 2-step and has no device: enroll one now, through
    /// `Login.EnrollKinds`, `EnrollBegin` and `EnrollConfirm` on the
    /// attempt; the message is shown first. Only a root caller gets it (an
    /// older module reads it as `Unknown`: a refusal).
    Enroll,
    /// A value this version does not know: a refusal. Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// What `Login.Answer` says about a code. Unknown values decode as
/// [`AnswerResult::Unknown`], a refusal (see [`BeginAction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[zbus(signature = "s")]
#[serde(rename_all = "lowercase")]
pub enum AnswerResult {
    /// The code was right: PAM_SUCCESS.
    Success,
    /// Wrong; show the message and prompt again.
    Retry,
    /// Wrong and no tries left (or now locked out): PAM_AUTH_ERR.
    Deny,
    /// No code was checked (the answer was empty and a code went out by
    /// SMS): prompt again with the message as the new prompt. Not a try.
    Prompt,
    /// A value this version does not know: a refusal. Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// What `Login.AccountCheck` says about a login. Unknown values decode as
/// [`AccountAction::Unknown`], a refusal (see [`BeginAction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[zbus(signature = "s")]
#[serde(rename_all = "lowercase")]
pub enum AccountAction {
    /// This login passed the code step (or came from a trusted device):
    /// PAM_SUCCESS.
    Allow,
    /// Not enrolled and the policy is optional: PAM_IGNORE.
    Ignore,
    /// Refuse the login: PAM_PERM_DENIED.
    Deny,
    /// A value this version does not know: a refusal. Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

from_wire_str!(BeginAction {
    "ignore" => Ignore,
    "allow" => Allow,
    "deny" => Deny,
    "challenge" => Challenge,
    "enroll" => Enroll,
});
from_wire_str!(AnswerResult {
    "success" => Success,
    "retry" => Retry,
    "deny" => Deny,
    "prompt" => Prompt,
});
from_wire_str!(AccountAction {
    "allow" => Allow,
    "ignore" => Ignore,
    "deny" => Deny,
});

/// One enrolled device: an authenticator app or a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Device {
    /// Short id, unique for the user, used by `RemoveDevice`.
    pub id: String,
    /// `"totp"` (authenticator app) or `"sms"` (phone).
    pub kind: String,
    /// totp: the name the user gave it. sms: the phone number, masked
    /// (`+372*****345`) on the Account interface, in full on Admin.
    pub name: String,
    /// Unix time of enrollment.
    pub created: i64,
    /// Unix time of the last successful login with it; 0 for never.
    pub last_used: i64,
}

/// The kinds of [`Device`], as `Device::kind` names them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An authenticator app (`"totp"`).
    Totp,
    /// A phone for codes by SMS (`"sms"`).
    Sms,
    /// A kind this version does not know (a newer mfad).
    Other,
}

impl DeviceKind {
    pub fn of(kind: &str) -> DeviceKind {
        match kind {
            "totp" => DeviceKind::Totp,
            "sms" => DeviceKind::Sms,
            _ => DeviceKind::Other,
        }
    }
}

impl Device {
    pub fn device_kind(&self) -> DeviceKind {
        DeviceKind::of(&self.kind)
    }
}

/// One user's enrollment and lockout state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UserStatus {
    pub user: String,
    /// At least one active device.
    pub enrolled: bool,
    pub devices: Vec<Device>,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Unix time the lockout ends; 0 when not locked.
    pub locked_until: i64,
}

/// A device that passed verification and may log in without a code while
/// the configured lifetime lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TrustedDevice {
    /// Short id, unique for the user.
    pub id: String,
    /// `"key"` (an SSH public key) or `"host"` (the remote host).
    pub kind: String,
    /// The key's `SHA256:` fingerprint, or the host.
    pub identity: String,
    /// Unix time of the first verification from it.
    pub first_used: i64,
    /// Unix time of the last login from it.
    pub last_used: i64,
    /// Unix time the trust ends; 0 for never (lifetime "forever").
    pub expires: i64,
}

/// One line of `Admin.ListUsers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UserSummary {
    pub user: String,
    pub devices: u32,
    pub backup_codes_left: u32,
    pub locked_until: i64,
}

/// One line of `Admin.ListMissing`: a user who must use 2-step and has no
/// device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MissingUser {
    pub user: String,
    /// Seconds of their grace period left; -1 when it has not started (it
    /// starts at their next login), 0 when it is over or there is none.
    pub grace_left: i64,
}

/// One live login session whose duration mfad limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SessionInfo {
    /// Short id, unique on this host.
    pub id: String,
    pub user: String,
    /// The PAM service (`sshd`, `login`, `su`).
    pub service: String,
    pub tty: String,
    /// The remote host; empty for a local login.
    pub rhost: String,
    /// Unix time the session opened.
    pub started: i64,
    /// Unix time mfad ends it.
    pub ends: i64,
}

/// A user's session duration (`Account.SessionDuration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SessionDuration {
    pub user: String,
    /// Seconds a new session of the user lasts; 0 when not limited.
    pub duration: i64,
    /// The user's own choice in seconds; 0 when none (the limit applies).
    pub chosen: i64,
    /// `[session] max_duration` in seconds; 0 when "off".
    pub limit: i64,
    /// `[session] user_choice`: whether users may choose a shorter one.
    pub user_choice: bool,
}

/// Used by the PAM module: one authentication is `Begin` then `Answer`s.
///
/// root may verify any user; any other caller only itself (screen lockers).
#[proxy(
    interface = "org.mfad.Mfa1.Login",
    default_service = "org.mfad.Mfa1",
    default_path = "/org/mfad/Mfa1"
)]
pub trait Login {
    /// Starts a login. `auth_info` is sshd's `SSH_AUTH_INFO_0` or empty.
    /// Returns the action, an attempt token for `Answer` (empty unless
    /// challenge or allow) and a message: the prompt, or why the login is
    /// refused.
    fn begin(
        &self,
        user: &str,
        service: &str,
        rhost: &str,
        tty: &str,
        auth_info: &str,
    ) -> Result<(BeginAction, String, String), Error>;

    /// Checks a code typed by the user, as the raw bytes they typed.
    fn answer(&self, attempt: &str, code: &[u8]) -> Result<(AnswerResult, String), Error>;

    /// The account phase: did the login attempt with this token (from
    /// `Begin`, after `success` or `allow`) pass the code step? Returns
    /// `allow` (once per attempt), `ignore` (not enrolled, policy optional)
    /// or `deny` with a message.
    fn account_check(
        &self,
        user: &str,
        service: &str,
        attempt: &str,
    ) -> Result<(AccountAction, String), Error>;

    /// After `enroll`: the kinds of device the user may enroll now,
    /// `"totp"` first, then `"sms"` when this host sends text messages.
    fn enroll_kinds(&self, attempt: &str) -> Result<Vec<String>, Error>;

    /// Starts enrolling a device of `kind` for the attempt's own account.
    /// totp: returns the otpauth URI and the secret in base32 (`phone`
    /// empty); sms: sends a code to `phone` and returns empty URI and
    /// secret. `message` is for the user.
    fn enroll_begin(
        &self,
        attempt: &str,
        kind: &str,
        phone: &str,
    ) -> Result<(String, String, String), Error>;

    /// sms: sends a new code for the enrollment; returns a message.
    fn enroll_resend(&self, attempt: &str) -> Result<String, Error>;

    /// Confirms the enrollment: two consecutive codes (totp) or the code
    /// sent (sms). `success` (the device is enrolled, the attempt is
    /// verified; the backup codes, shown this once), `retry` with a message,
    /// or `deny` after the third wrong try (nothing is enrolled).
    fn enroll_confirm(
        &self,
        attempt: &str,
        codes: &[&str],
    ) -> Result<(AnswerResult, String, Vec<String>), Error>;

    /// The session phase: registers the login session of `user` through
    /// `service` whose login passed 2-step (or a trusted device), so that
    /// mfad ends it after the user's session duration. `attempt` is the
    /// token from `Begin` when the caller still has it; empty, the login
    /// that passed with this caller, user and service in the last 10
    /// minutes counts (sshd runs the auth and account phases in another
    /// process than the session phase). `pidfd` is a pidfd of the process
    /// whose session it is (the caller's own process for the PAM module);
    /// `tty` and `xdg_session_id` may be empty. Returns the session id and
    /// the Unix time it ends (empty and 0: not limited, the login did not
    /// pass 2-step or `[session] max_duration` is off) and a message for
    /// the user.
    #[allow(clippy::too_many_arguments)]
    fn open_session(
        &self,
        user: &str,
        service: &str,
        attempt: &str,
        tty: &str,
        xdg_session_id: &str,
        pidfd: zbus::Fd<'_>,
    ) -> Result<(String, i64, String), Error>;

    /// The session `id` (from `OpenSession`) ended: mfad forgets it.
    fn close_session(&self, id: &str) -> Result<(), Error>;
}

/// A user's own enrollment. `user` may be empty for "the caller"; only root
/// may name another user.
#[proxy(
    interface = "org.mfad.Mfa1.Account",
    default_service = "org.mfad.Mfa1",
    default_path = "/org/mfad/Mfa1"
)]
pub trait Account {
    /// Starts an authenticator-app enrollment that expires after 10 minutes.
    fn enroll_totp_begin(
        &self,
        user: &str,
        name: &str,
        code: &str,
    ) -> Result<(String, String, String), Error>;

    /// Completes it with two consecutive codes; returns the new device id and
    /// ten backup codes, shown this once.
    fn enroll_totp_confirm(
        &self,
        user: &str,
        enrollment_id: &str,
        code1: &str,
        code2: &str,
    ) -> Result<(String, Vec<String>), Error>;

    /// Starts a phone enrollment, or a change of number: checks that
    /// `phone` is E.164 (`+37255512345`) and sends a code to it by SMS. A
    /// caller other than root who already has a device must give a current
    /// code (app, backup or SMS code, see `SendCode`); otherwise `code` is
    /// empty. The enrolled number, if any, keeps working until the new one
    /// is confirmed. Returns the enrollment id (valid 10 minutes) and the
    /// number, masked.
    fn enroll_sms_begin(
        &self,
        user: &str,
        phone: &str,
        code: &str,
    ) -> Result<(String, String), Error>;

    /// Sends a new code for the enrollment; the ones before keep working
    /// (the last 3). Limited by `[sms] resend_cooldown`, `max_sends_per_hour`
    /// and `max_total_sends_per_hour`. Returns the number, masked.
    fn enroll_sms_resend(&self, user: &str, enrollment_id: &str) -> Result<String, Error>;

    /// Completes the enrollment with the code sent by SMS. Returns the
    /// device id and, for a first phone, ten new backup codes (shown this
    /// once); a change of number keeps the device id and returns no codes.
    fn enroll_sms_confirm(
        &self,
        user: &str,
        enrollment_id: &str,
        code: &str,
    ) -> Result<(String, Vec<String>), Error>;

    /// Sends a code to the user's enrolled phone, to give as the current
    /// code to `RemoveDevice`, `RegenerateBackupCodes` or `EnrollSmsBegin`.
    /// Returns the number, masked.
    fn send_code(&self, user: &str) -> Result<String, Error>;

    /// Devices, backup codes left and lockout state.
    fn status(&self, user: &str) -> Result<UserStatus, Error>;

    /// Removes a device. The user must give a current code (app, SMS or
    /// backup code); root passes an empty code.
    fn remove_device(&self, user: &str, device_id: &str, code: &str) -> Result<(), Error>;

    /// Replaces all backup codes with ten new ones; needs a code like
    /// `RemoveDevice`.
    fn regenerate_backup_codes(&self, user: &str, code: &str) -> Result<Vec<String>, Error>;

    /// The user's trusted devices.
    fn trusted_devices(&self, user: &str) -> Result<Vec<TrustedDevice>, Error>;

    /// Stops trusting one device; its next login asks for a code.
    fn remove_trusted_device(&self, user: &str, id: &str) -> Result<(), Error>;

    /// Stops trusting all of the user's devices; returns how many.
    fn remove_all_trusted_devices(&self, user: &str) -> Result<u32, Error>;

    /// The user's session duration and the administrator's limit.
    fn session_duration(&self, user: &str) -> Result<SessionDuration, Error>;

    /// Chooses the duration of the user's next sessions in seconds, at
    /// most `[session] max_duration`; 0 goes back to the limit.
    fn set_session_duration(&self, user: &str, duration: i64) -> Result<(), Error>;

    /// The user's live limited sessions.
    fn sessions(&self, user: &str) -> Result<Vec<SessionInfo>, Error>;
}

/// For root and members of the configured admin group.
#[proxy(
    interface = "org.mfad.Mfa1.Admin",
    default_service = "org.mfad.Mfa1",
    default_path = "/org/mfad/Mfa1"
)]
pub trait Admin {
    /// Every user with an enrollment or lockout state.
    fn list_users(&self) -> Result<Vec<UserSummary>, Error>;

    fn user_status(&self, user: &str) -> Result<UserStatus, Error>;

    /// Removes every device, backup code, trusted device and lockout of the
    /// user ("lost phone").
    fn reset(&self, user: &str) -> Result<(), Error>;

    /// Clears the failure count and lockout.
    fn unlock(&self, user: &str) -> Result<(), Error>;

    /// As `Account.TrustedDevices`, for any user.
    fn trusted_devices(&self, user: &str) -> Result<Vec<TrustedDevice>, Error>;

    fn remove_trusted_device(&self, user: &str, id: &str) -> Result<(), Error>;

    fn remove_all_trusted_devices(&self, user: &str) -> Result<u32, Error>;

    /// Users who must use 2-step and have no device: local accounts with a
    /// login shell and anyone seen at login, by name.
    fn list_missing(&self) -> Result<Vec<MissingUser>, Error>;

    /// Removes one device of the user, without a code (the user lost it).
    fn remove_device(&self, user: &str, device_id: &str) -> Result<(), Error>;

    /// Live limited sessions of `user`, or of everyone when empty.
    fn sessions(&self, user: &str) -> Result<Vec<SessionInfo>, Error>;

    /// Ends one session now, as its end time would.
    fn end_session(&self, id: &str) -> Result<(), Error>;

    /// Ends every limited session of the user; returns how many.
    fn end_sessions(&self, user: &str) -> Result<u32, Error>;
}

/// Longest log field value written; enough for any host name.
pub const MAX_LOG_FIELD: usize = 200;

/// A caller-controlled value (user name, rhost, service, tty) as it goes
/// into a log line, by the one rule mfad and pam_mfa share: plain when it
/// is a simple token, otherwise quoted with escapes, so a hostile value
/// cannot forge a line or a `key=value` field for log parsers.
pub fn log_field(value: &str) -> String {
    let value: String = value.chars().take(MAX_LOG_FIELD).collect();
    let simple = !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '/' | '$')
        });
    if simple {
        value
    } else {
        format!("{value:?}")
    }
}

/// RFC 3164's timestamp (`Dec  7 02:50:09`: the day padded with a space),
/// in UTC, as mfad's audit lines and pam_mfa's syslog lines carry it: no
/// time zone is read; the syslog daemon stamps lines on arrival anyway.
/// A value to format (`{}`), so a line built in place allocates nothing
/// for it.
pub fn syslog_timestamp(now: std::time::SystemTime) -> SyslogTimestamp {
    SyslogTimestamp(now)
}

/// See [`syslog_timestamp`].
#[derive(Debug, Clone, Copy)]
pub struct SyslogTimestamp(std::time::SystemTime);

impl std::fmt::Display for SyslogTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let secs = self
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
        let z = i64::try_from(days).unwrap_or(0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let name = usize::try_from(month - 1)
            .ok()
            .and_then(|m| MONTHS.get(m))
            .unwrap_or(&"Jan");
        write!(
            f,
            "{name} {day:>2} {:02}:{:02}:{:02}",
            rest / 3600,
            rest / 60 % 60,
            rest % 60
        )
    }
}

/// The D-Bus address `address` names: `"system"` is [`SYSTEM_BUS_ADDRESS`],
/// anything else is taken as a D-Bus address as it is. Never consults the
/// environment.
pub fn bus_address(address: &str) -> &str {
    if address == "system" {
        SYSTEM_BUS_ADDRESS
    } else {
        address
    }
}

/// Connects to `address`: `"system"` for the system bus, or a D-Bus address
/// such as `unix:path=/run/x/bus`. Never consults the environment.
pub async fn connect(address: &str) -> zbus::Result<zbus::Connection> {
    zbus::connection::Builder::address(bus_address(address))
        .build()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_kinds_are_named_once() {
        assert_eq!(DeviceKind::of("totp"), DeviceKind::Totp);
        assert_eq!(DeviceKind::of("sms"), DeviceKind::Sms);
        assert_eq!(DeviceKind::of("fido2"), DeviceKind::Other);
    }

    #[test]
    fn syslog_timestamps_are_rfc_3164() {
        let at = |secs| {
            syslog_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .to_string()
        };
        assert_eq!(at(0), "Jan  1 00:00:00");
        // 2026-12-07 02:50:09 UTC.
        assert_eq!(at(1_796_611_809), "Dec  7 02:50:09");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(at(1_709_251_199), "Feb 29 23:59:59");
        assert_eq!(at(1_709_251_200), "Mar  1 00:00:00");
        // Before 1970: the epoch, never a panic.
        assert_eq!(
            syslog_timestamp(std::time::UNIX_EPOCH - std::time::Duration::from_secs(5)).to_string(),
            "Jan  1 00:00:00"
        );
    }

    #[test]
    fn system_names_the_system_bus_and_anything_else_is_kept() {
        assert_eq!(bus_address("system"), SYSTEM_BUS_ADDRESS);
        assert_eq!(bus_address("unix:path=/tmp/x/bus"), "unix:path=/tmp/x/bus");
        assert_eq!(bus_address(""), "");
    }

    use zbus::wire::{serialized::Context, to_bytes, LE};

    /// Encodes `value` as D-Bus does and decodes it as `T`.
    fn roundtrip<V, T>(value: &V) -> zbus::Result<T>
    where
        V: Serialize + Type,
        T: for<'de> Deserialize<'de> + Type,
    {
        let data = to_bytes(Context::new(LE, 0), value)?;
        data.deserialize::<T>().map(|(v, _)| v)
    }

    #[test]
    fn known_values_decode_as_themselves() {
        for (wire, want) in [
            ("ignore", BeginAction::Ignore),
            ("allow", BeginAction::Allow),
            ("deny", BeginAction::Deny),
            ("challenge", BeginAction::Challenge),
            ("enroll", BeginAction::Enroll),
        ] {
            assert_eq!(roundtrip::<_, BeginAction>(&wire).unwrap(), want);
            assert_eq!(roundtrip::<_, String>(&want).unwrap(), wire);
        }
        for (wire, want) in [
            ("success", AnswerResult::Success),
            ("retry", AnswerResult::Retry),
            ("deny", AnswerResult::Deny),
            ("prompt", AnswerResult::Prompt),
        ] {
            assert_eq!(roundtrip::<_, AnswerResult>(&wire).unwrap(), want);
            assert_eq!(roundtrip::<_, String>(&want).unwrap(), wire);
        }
        for (wire, want) in [
            ("allow", AccountAction::Allow),
            ("ignore", AccountAction::Ignore),
            ("deny", AccountAction::Deny),
        ] {
            assert_eq!(roundtrip::<_, AccountAction>(&wire).unwrap(), want);
            assert_eq!(roundtrip::<_, String>(&want).unwrap(), wire);
        }
    }

    #[test]
    fn unknown_values_decode_as_unknown() {
        // "challenge" is a Begin action, never an AccountCheck one; case
        // matters; "unknown" itself is not special.
        for wire in ["bogus", "", "Allow", "unknown", "allow ", "challenge"] {
            assert_eq!(
                roundtrip::<_, AccountAction>(&wire).unwrap(),
                AccountAction::Unknown,
                "{wire:?}"
            );
        }
        for wire in ["bogus", "", "ALLOW", "unknown", "success"] {
            assert_eq!(
                roundtrip::<_, BeginAction>(&wire).unwrap(),
                BeginAction::Unknown,
                "{wire:?}"
            );
        }
        for wire in ["bogus", "", "Success", "unknown", "allow"] {
            assert_eq!(
                roundtrip::<_, AnswerResult>(&wire).unwrap(),
                AnswerResult::Unknown,
                "{wire:?}"
            );
        }
        // The whole reply of each method, as the proxies decode it.
        let begin: (BeginAction, String, String) = roundtrip(&("bogus", "t0k", "Hello.")).unwrap();
        assert_eq!(begin, (BeginAction::Unknown, "t0k".into(), "Hello.".into()));
        let answer: (AnswerResult, String) = roundtrip(&("bogus", "Hi.")).unwrap();
        assert_eq!(answer, (AnswerResult::Unknown, "Hi.".into()));
        let check: (AccountAction, String) = roundtrip(&("bogus", "Hi.")).unwrap();
        assert_eq!(check, (AccountAction::Unknown, "Hi.".into()));
    }

    /// `FromStr` (pam_mfa's reading, without serde) and serde (the
    /// proxies') agree on every known value and on unknown ones.
    #[test]
    fn from_str_reads_as_serde_does() {
        fn same<T>(wire: &str)
        where
            T: std::str::FromStr<Err = std::convert::Infallible>
                + for<'de> Deserialize<'de>
                + Type
                + PartialEq
                + std::fmt::Debug,
        {
            let Ok(parsed) = wire.parse::<T>();
            assert_eq!(parsed, roundtrip::<_, T>(&wire).unwrap(), "{wire:?}");
        }
        for wire in [
            "ignore",
            "allow",
            "deny",
            "challenge",
            "enroll",
            "success",
            "retry",
            "prompt",
            "bogus",
            "",
            "Allow",
            "unknown",
            "allow ",
        ] {
            same::<BeginAction>(wire);
            same::<AnswerResult>(wire);
            same::<AccountAction>(wire);
        }
        assert_eq!("enroll".parse(), Ok(BeginAction::Enroll));
        assert_eq!("prompt".parse(), Ok(AnswerResult::Prompt));
        assert_eq!("challenge".parse(), Ok(AccountAction::Unknown));
    }

    #[test]
    fn error_kinds_are_names_under_the_prefix() {
        assert_eq!(
            error_kind("org.mfad.Mfa1.Error.LockedOut"),
            Some("LockedOut")
        );
        assert_eq!(error_kind("org.mfad.Mfa1.Error.Bogus"), Some("Bogus"));
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.mfad.Mfa1.ErrorX.LockedOut",
            "org.mfad.Mfa1.Errors",
            "org.mfad.Mfa1.Error",
            "org.mfad.Mfa1.Error.",
            "",
        ] {
            assert_eq!(error_kind(name), None, "{name:?}");
        }
    }

    #[test]
    fn unknown_is_never_sent() {
        assert!(roundtrip::<_, String>(&BeginAction::Unknown).is_err());
        assert!(roundtrip::<_, String>(&AnswerResult::Unknown).is_err());
        assert!(roundtrip::<_, String>(&AccountAction::Unknown).is_err());
    }

    /// An error reply named `name` with `description`, decoded as a proxy
    /// call decodes it.
    fn reply_error(name: &str, description: &str) -> Error {
        let call = zbus::message::Message::method_call(OBJECT_PATH, "Begin")
            .build(&())
            .unwrap();
        let reply = zbus::message::Message::error(&call.header(), name)
            .build(&(description,))
            .unwrap();
        Error::from(zbus::Error::from(reply))
    }

    #[test]
    fn mfad_errors_are_refusals_with_their_name_and_message() {
        let e = reply_error("org.mfad.Mfa1.Error.LockedOut", "Too many failed attempts.");
        assert!(matches!(&e, Error::LockedOut(m) if m == "Too many failed attempts."));
        assert!(e.is_refusal());
        assert_eq!(e.kind().as_deref(), Some("LockedOut"));
        assert_eq!(e.error_name(), "org.mfad.Mfa1.Error.LockedOut");
        assert_eq!(e.message(), "Too many failed attempts.");

        let e = Error::NotFound("No such login attempt.".into());
        assert!(e.is_refusal());
        assert_eq!(e.kind().as_deref(), Some("NotFound"));
        assert_eq!(e.message(), "No such login attempt.");
    }

    #[test]
    fn an_error_from_a_newer_mfad_is_still_a_refusal() {
        let e = reply_error("org.mfad.Mfa1.Error.Bogus", "Something new.");
        assert!(matches!(e, Error::ZBus(_)), "{e:?}");
        assert!(e.is_refusal());
        assert_eq!(e.kind().as_deref(), Some("Bogus"));
        assert_eq!(e.error_name(), "org.mfad.Mfa1.Error.Bogus");
        assert_eq!(e.message(), "Something new.");
    }

    #[test]
    fn bus_and_transport_errors_are_not_refusals() {
        for e in [
            reply_error("org.freedesktop.DBus.Error.ServiceUnknown", "No owner."),
            reply_error("org.freedesktop.DBus.Error.Failed", "no"),
            reply_error("org.mfad.Mfa1.ErrorX.LockedOut", "Not ours."),
            reply_error("org.mfad.Mfa1.Errors", "Not ours."),
            Error::ZBus(zbus::Error::InterfaceNotFound),
        ] {
            assert!(!e.is_refusal(), "{e:?}");
            assert_eq!(e.kind(), None, "{e:?}");
            assert!(!e.message().is_empty(), "{e:?}");
        }
    }
}
