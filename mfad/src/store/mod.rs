//! Persistent state behind one trait, in the daemon's own terms.
//!
//! State is kept by UID: every name of an account shares it. The name that
//! enrolled is kept beside it, for display and to notice when the UID has
//! come to belong to another account.
//!
//! [`Store`] is everything mfad keeps across restarts: enrollments (devices
//! with their kind-specific data), backup codes, the last accepted TOTP step,
//! lockout counts, the live SMS codes, SMS sends, trusted devices. Each method
//! is one atomic operation: whatever must not race (replay, the lockout
//! count, using a one-time code, the SMS quota) is decided inside the
//! backend's transaction, never by a read here and a write there. No backend
//! type (SQL, rows, driver errors) crosses this boundary.
//!
//! Backends: [`sqlite::SqliteStore`] (the embedded default) and
//! [`postgres::PostgresStore`] (one database for a fleet). Every backend
//! passes the suite in [`conformance`].

use crate::codes::Hashed;
use crate::factor::DeviceData;
use crate::lockout::{Limits, Lockout};
use crate::users::Account;

pub mod config;
#[cfg(test)]
pub mod conformance;
pub mod migrate;
pub mod postgres;
#[cfg(test)]
mod properties;
pub mod sqlite;

/// How long a send counts toward `max_sends_per_hour`.
pub const SEND_WINDOW_SECS: i64 = 3600;

/// The store's one error type: what went wrong, in words for the log. The
/// D-Bus caller never sees it (see `crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed (I/O, a constraint, a driver error).
    #[error("state database: {0}")]
    Backend(String),
    /// The files or the schema are not what this mfad can use.
    #[error("{0}")]
    Setup(String),
    /// The database cannot be reached now (down, restarting, too slow):
    /// callers must treat it as "mfad unavailable", not as a refusal.
    #[error("state database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be read back (a device's data, a number).
    #[error("state database holds an unreadable value: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a login needs to know about one account, read at once. Backup
/// codes are not in it: a login reads them ([`Store::backup_codes`]) only
/// when the typed code can be one.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// The account name that enrolled (empty when the UID never did).
    pub name: String,
    /// The newest TOTP step accepted for the user (replay protection spans
    /// all of the user's apps).
    pub last_step: u64,
    pub lockout: Lockout,
    pub devices: Vec<Device>,
    /// The SMS login codes sent and not yet used (at most
    /// [`crate::factor::sms::KEEP`]), oldest first; some may have expired.
    pub sms_codes: Vec<SmsCode>,
}

impl UserState {
    /// At least one device: the user is enrolled.
    pub fn enrolled(&self) -> bool {
        !self.devices.is_empty()
    }

    /// The enrolled phone (at most one per user) and its number.
    pub fn phone(&self) -> Option<(&Device, &str)> {
        self.devices.iter().find_map(|d| match &d.data {
            DeviceData::Sms { phone } => Some((d, phone.as_str())),
            _ => None,
        })
    }

    /// Whether the user has an authenticator app.
    pub fn has_app(&self) -> bool {
        self.devices
            .iter()
            .any(|d| matches!(d.data, DeviceData::Totp { .. }))
    }
}

/// An enrolled device: an authenticator app or a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Short id, unique for the user.
    pub id: String,
    /// The name the user gave it (empty where the kind names itself).
    pub label: String,
    /// What this kind of device needs to produce or receive codes.
    pub data: DeviceData,
    pub created: i64,
    /// Unix time of the last login with it; 0 for never.
    pub last_used: i64,
}

/// Identifies one stored one-time code to the store that handed it out.
/// Only the store makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeId(i64);

/// An unused backup code.
#[derive(Debug, Clone)]
pub struct BackupCode {
    pub id: CodeId,
    pub code: Hashed,
}

/// An SMS login code sent to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsCode {
    pub code: Hashed,
    /// Unix time it stops working.
    pub expires: i64,
}

/// One recorded SMS send; only the store makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendId(i64);

/// The limits [`Store::reserve_send`] checks, all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Sends per user in [`SEND_WINDOW_SECS`].
    pub per_user: u32,
    /// Sends of all users together in [`SEND_WINDOW_SECS`].
    pub total: u32,
    /// Seconds between two sends to one user (at most
    /// [`SEND_WINDOW_SECS`]); 0 for none.
    pub cooldown: i64,
}

/// The outcome of [`Store::reserve_send`]. A refusal says when the next
/// send is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSlot {
    /// A send is recorded; give it to `release_send` if nothing went out.
    Granted(SendId),
    /// The user's last send was less than the cooldown ago.
    Cooldown { next_at: i64 },
    /// The user's sends of the hour are used up.
    UserFull { next_at: i64 },
    /// The machine's sends of the hour are used up.
    TotalFull { next_at: i64 },
}

/// A trusted device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub id: String,
    /// `key` or `host` (see `crate::trust::Identity`).
    pub kind: String,
    pub identity: String,
    /// When the device last passed verification; trust runs from here.
    pub trusted_at: i64,
    pub first_used: i64,
    pub last_used: i64,
}

/// One line of the user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The name that enrolled.
    pub user: String,
    pub uid: i64,
    pub devices: u32,
    pub backup_codes_left: u32,
    pub locked_until: i64,
}

/// A login session mfad limits, as stored so that a restart re-arms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Short id, unique on this host.
    pub id: String,
    pub uid: u32,
    /// The account name, for display and the log.
    pub user: String,
    pub service: String,
    pub tty: String,
    pub rhost: String,
    /// systemd-logind's session id (XDG_SESSION_ID), or empty.
    pub xdg_session_id: String,
    /// The process whose session it is, and its start time (field 22 of
    /// /proc/PID/stat), which tells it from a later process with the same
    /// PID.
    pub pid: i32,
    pub pid_start: u64,
    pub started: i64,
    pub ends: i64,
}

/// The daemon's persistent state. Every method is atomic on its own; callers
/// never need a lock around two of them for correctness.
pub trait Store: Send + Sync {
    /// The account's state but its backup codes; a default (unenrolled)
    /// one when unknown.
    fn user(&self, uid: u32) -> Result<UserState>;

    /// The account's unused backup codes (none when unknown), read at once.
    fn backup_codes(&self, uid: u32) -> Result<Vec<BackupCode>>;

    /// Accepts TOTP `step` for `user` if it is newer than every step accepted
    /// before and the user is not locked at `now`; then failures are cleared
    /// and the device marked used. False, changing nothing, otherwise.
    fn accept_totp_step(&self, uid: u32, device_id: &str, step: u64, now: i64) -> Result<bool>;

    /// Set when this start found that mfad had not stopped cleanly, and
    /// accepts of TOTP steps may have been lost: every step up to this one
    /// is refused for every user (the SQLite backend, which commits
    /// accepts without an fsync; see docs/architecture.md).
    fn refused_through(&self) -> Option<u64> {
        None
    }

    /// mfad stops: makes everything committed durable and records a clean
    /// stop, after which every write is durable on its own. A backend whose
    /// commits are all durable has nothing to do.
    fn stop_cleanly(&self) {}

    /// Uses up a backup code and clears failures, unless the code is gone or
    /// the user is locked at `now`.
    fn use_backup_code(&self, uid: u32, id: CodeId, now: i64) -> Result<bool>;

    /// Uses up the SMS login code `code` (still stored, still live) with
    /// every other code of the user (one login, one code) and clears
    /// failures, unless the user is locked at `now`.
    fn use_sms_code(&self, uid: u32, device_id: &str, code: &Hashed, now: i64) -> Result<bool>;

    /// Counts one failure at `now` and returns the new state (locked once
    /// `limits` say so), read and written in one step. Users without a row
    /// (never enrolled) are not counted: their state stays the default.
    fn record_failure(&self, uid: u32, now: i64, limits: Limits) -> Result<Lockout>;

    /// Adds `code` to the user's SMS login codes, keeping the newest `keep`
    /// (older ones die), so a late message still works after "send again".
    fn add_sms_code(&self, uid: u32, code: &Hashed, expires: i64, keep: usize) -> Result<()>;

    /// Records a send for `uid` unless one of `limits` forbids it at `now`:
    /// the user's cooldown, then the user's and then the machine's sends of
    /// the last [`SEND_WINDOW_SECS`]. Check and record are one step, so
    /// parallel sends cannot overshoot any limit.
    fn reserve_send(&self, uid: u32, now: i64, limits: SendLimits) -> Result<SendSlot>;

    /// Takes back a send that certainly went nowhere (the gateway refused).
    fn release_send(&self, id: SendId) -> Result<()>;

    /// Adds a confirmed device, marks TOTP steps up to `step` used and, when
    /// `backup` is given, replaces the backup codes with it; one step. The
    /// account's name is recorded as the one that enrolled.
    fn add_device(
        &self,
        account: &Account,
        device: &Device,
        step: u64,
        backup: Option<&[Hashed]>,
    ) -> Result<()>;

    /// Replaces a device's data (a phone's new number). Any SMS code sent
    /// before dies with it. False if there is no such device.
    fn replace_device_data(&self, uid: u32, device_id: &str, data: &DeviceData) -> Result<bool>;

    /// Removes a device; with the last one go the backup codes, and with the
    /// phone its live SMS codes. False if there was no such device.
    fn remove_device(&self, uid: u32, device_id: &str) -> Result<bool>;

    fn replace_backup_codes(&self, uid: u32, backup: &[Hashed]) -> Result<()>;

    /// The trusted device with this identity, if any.
    fn trusted(&self, uid: u32, kind: &str, identity: &str) -> Result<Option<Trusted>>;

    fn trusted_list(&self, uid: u32) -> Result<Vec<Trusted>>;

    /// Trusts a device from `now` on: a new entry with `new_id`, or a renewal
    /// of the one with the same identity (which keeps its id).
    fn trust(&self, uid: u32, new_id: &str, kind: &str, identity: &str, now: i64) -> Result<()>;

    fn touch_trusted(&self, uid: u32, id: &str, now: i64) -> Result<()>;

    /// Removes one trusted device (`Some(id)`) or all of the user's; returns
    /// how many went.
    fn untrust(&self, uid: u32, id: Option<&str>) -> Result<u32>;

    /// Forgets the user's devices, backup codes, SMS codes, trusted devices,
    /// grace period and lockout. The last accepted step stays, so codes seen before the
    /// reset stay dead. False if there was nothing to forget.
    fn reset(&self, uid: u32) -> Result<bool>;

    /// Clears failures and lock. False for an unknown user.
    fn unlock(&self, uid: u32) -> Result<bool>;

    /// Accounts with a device, a backup code or a failure count, by name.
    fn list_users(&self) -> Result<Vec<Summary>>;

    /// When the account's grace period for enrolling started: the stored
    /// start, or `now`, stored, if there is none; one step.
    fn start_grace(&self, uid: u32, now: i64) -> Result<i64>;

    /// Every stored grace period start, by UID.
    fn grace_starts(&self) -> Result<Vec<(u32, i64)>>;

    /// The session duration the user chose, in seconds; None for none.
    fn session_choice(&self, uid: u32) -> Result<Option<i64>>;

    /// Records (`Some`) or forgets (`None`) the user's choice.
    fn set_session_choice(&self, uid: u32, secs: Option<i64>) -> Result<()>;

    /// Records a limited session of this host.
    fn add_session(&self, session: &SessionRecord) -> Result<()>;

    /// Forgets a session; false if it was not there (already ended).
    fn remove_session(&self, id: &str) -> Result<bool>;

    /// This host's recorded sessions, by end time.
    fn sessions(&self) -> Result<Vec<SessionRecord>>;
}
