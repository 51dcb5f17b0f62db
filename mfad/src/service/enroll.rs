//! Pending enrollments of every factor: started, confirmed with codes from
//! the new device, or dropped after too many wrong tries or ten minutes.
//! They live in memory only; a restart ends them.

use std::collections::HashMap;
use std::sync::Mutex;

use super::authz::{AccountGrant, UNKNOWN_UID};
use super::{lock, owned_state, sms, verify, Core};
use crate::audit::field;
use crate::error::{Error, Result};
use crate::factor::{self, DeviceData, Kind};
use crate::phone;
use crate::random;
use crate::store::{Device, SmsCode};
use crate::totp;

/// A pending enrollment lives this long.
pub const ENROLLMENT_SECS: i64 = 600;
/// Bounds on what a caller can make us hold.
const MAX_ENROLLMENTS: usize = 1_000;
const MAX_ENROLLMENTS_PER_USER: usize = 3;
/// Wrong confirmations before a pending enrollment is dropped.
const ENROLLMENT_TRIES: u32 = 5;
const DEFAULT_DEVICE_NAME: &str = "authenticator";
pub const MSG_SIX_DIGITS: &str = "Codes are 6 digits.";
pub const MSG_NO_MATCH: &str =
    "The codes do not match: enter the code shown now, then wait for the next one. \
     Check that the clock of this machine and of your phone are right.";
pub const MSG_WRONG_SMS: &str = "Wrong code; check the text message, or send a new code.";
const MAX_DEVICE_NAME: usize = 64;

struct Pending {
    uid: u32,
    data: PendingData,
    tries: u32,
    expires: i64,
}

/// What each factor's enrollment holds until it is confirmed.
enum PendingData {
    Totp(factor::totp::Pending),
    Sms(factor::sms::Pending),
}

impl PendingData {
    fn kind(&self) -> Kind {
        match self {
            PendingData::Totp(_) => Kind::Totp,
            PendingData::Sms(_) => Kind::Sms,
        }
    }
}

pub struct Enrollments {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Default for Enrollments {
    fn default() -> Self {
        Enrollments::new()
    }
}

impl Enrollments {
    pub fn new() -> Enrollments {
        Enrollments {
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Starts an authenticator-app enrollment: (id, otpauth URI, secret in
    /// base32). A user who already has a device proves it with a current
    /// code first (root need not): nothing running as the user may add its
    /// own app.
    pub fn totp_begin(
        &self,
        core: &Core,
        grant: &AccountGrant,
        name: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, String, String)> {
        let user = grant.user();
        require_account(grant)?;
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
        if !grant.by_root() && owned_state(core, grant.account())?.enrolled() {
            verify::require_code(core, grant.account(), code, now)?;
        }
        let secret = factor::totp::new_secret(core.random.as_ref())?;
        let uri = totp::otpauth_uri(&core.issuer, user, &secret);
        let secret_b32 = totp::secret_to_base32(&secret);
        let id = self.add(
            core,
            grant.uid(),
            PendingData::Totp(factor::totp::Pending {
                name: name.to_string(),
                secret,
            }),
            now,
        )?;
        core.audit.info(
            "enroll started",
            &[("user", user), ("kind", Kind::Totp.as_str())],
        );
        Ok((id, uri, secret_b32))
    }

    /// Confirms an app with two consecutive codes: the new device's id and
    /// new backup codes.
    pub fn totp_confirm(
        &self,
        core: &Core,
        grant: &AccountGrant,
        enrollment_id: &str,
        code1: &str,
        code2: &str,
        now: i64,
    ) -> Result<(String, Vec<String>)> {
        let user = grant.user();
        let (secret, name) =
            self.live(
                grant.uid(),
                enrollment_id,
                Kind::Totp,
                now,
                |data| match data {
                    PendingData::Totp(p) => Some((p.secret.clone(), p.name.clone())),
                    PendingData::Sms(_) => None,
                },
            )?;
        let (Some(c1), Some(c2)) = (
            verify::normalize(code1.as_bytes()),
            verify::normalize(code2.as_bytes()),
        ) else {
            return Err(Error::InvalidCode(MSG_SIX_DIGITS.into()));
        };
        let state = owned_state(core, grant.account())?;
        let Some(step) = totp::find_consecutive(
            &secret,
            &c1,
            &c2,
            now,
            core.config.totp.window,
            state.last_step,
        ) else {
            self.failed(enrollment_id);
            core.audit.warn(
                "enroll failed",
                &[("user", user), ("reason", "wrong codes")],
            );
            return Err(Error::InvalidCode(MSG_NO_MATCH.into()));
        };
        // Taken out first: two confirmations of one enrollment cannot both pass.
        self.take(enrollment_id, Kind::Totp)?;
        let device_id = new_device_id(core, &state.devices)?;
        let (codes, hashed) = first_backup_codes(core, state.enrolled())?;
        let device = Device {
            id: device_id.clone(),
            label: name,
            data: DeviceData::Totp { secret },
            created: now,
            last_used: 0,
        };
        core.store
            .add_device(grant.account(), &device, step, hashed.as_deref())?;
        core.audit.info(
            "enroll",
            &[
                ("user", user),
                ("kind", Kind::Totp.as_str()),
                ("device", &device_id),
            ],
        );
        Ok((device_id, codes))
    }

    /// Starts a phone enrollment or a change of number. A user who already
    /// has a device proves it with a current code first (root need not).
    /// Returns the enrollment id and the number, masked.
    pub fn sms_begin(
        &self,
        core: &Core,
        grant: &AccountGrant,
        number: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, String)> {
        let user = grant.user();
        require_account(grant)?;
        let sms = core.sms()?;
        let number = phone::parse(number).map_err(Error::InvalidArgument)?;
        sms.allows(&number).map_err(Error::InvalidArgument)?;
        let state = owned_state(core, grant.account())?;
        let current = state.phone().map(|(_, p)| p);
        if current == Some(number.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "{} is already your enrolled number.",
                phone::mask(&number)
            )));
        }
        if !grant.by_root() && state.enrolled() {
            verify::require_code(core, grant.account(), code, now)?;
        }
        let (hashed, _) = sms::send(core, grant.account(), &number, now, None)?;
        let lifetime = core.sms()?.code_lifetime;
        let id = self.add(
            core,
            grant.uid(),
            PendingData::Sms(factor::sms::Pending::new(
                number.clone(),
                SmsCode {
                    code: hashed,
                    expires: now + lifetime,
                },
            )),
            now,
        )?;
        let change = if current.is_some() { "change" } else { "new" };
        core.audit.info(
            "enroll started",
            &[
                ("user", user),
                ("kind", Kind::Sms.as_str()),
                ("phone", &phone::mask(&number)),
                ("number", change),
            ],
        );
        Ok((id, phone::mask(&number)))
    }

    /// Sends a new code for a phone enrollment; the ones before stay live
    /// (the newest `factor::sms::KEEP`).
    pub fn sms_resend(
        &self,
        core: &Core,
        grant: &AccountGrant,
        enrollment_id: &str,
        now: i64,
    ) -> Result<String> {
        let number = self.live(
            grant.uid(),
            enrollment_id,
            Kind::Sms,
            now,
            |data| match data {
                PendingData::Sms(p) => Some(p.phone.clone()),
                PendingData::Totp(_) => None,
            },
        )?;
        let (hashed, _) = sms::send(core, grant.account(), &number, now, None)?;
        let lifetime = core.sms()?.code_lifetime;
        if let Some(Pending {
            data: PendingData::Sms(p),
            ..
        }) = lock(&self.pending).get_mut(enrollment_id)
        {
            p.resent(SmsCode {
                code: hashed,
                expires: now + lifetime,
            });
        }
        Ok(phone::mask(&number))
    }

    /// Confirms the number with the code sent to it: a new phone device
    /// (with new backup codes, as for an app), or the new number of the
    /// existing one (same id, no codes).
    pub fn sms_confirm(
        &self,
        core: &Core,
        grant: &AccountGrant,
        enrollment_id: &str,
        code: &str,
        now: i64,
    ) -> Result<(String, Vec<String>)> {
        let user = grant.user();
        let (number, sent) =
            self.live(
                grant.uid(),
                enrollment_id,
                Kind::Sms,
                now,
                |data| match data {
                    PendingData::Sms(p) => Some((p.phone.clone(), p.codes.clone())),
                    PendingData::Totp(_) => None,
                },
            )?;
        let Some(code) =
            verify::normalize(code.as_bytes()).filter(|c| c.len() == factor::sms::DIGITS)
        else {
            return Err(Error::InvalidCode(
                "The code from the text message is 6 digits.".into(),
            ));
        };
        let checked = factor::sms::check(&code, &sent, now, &core.keys);
        if matches!(checked, Err(false)) {
            self.failed(enrollment_id);
            core.audit.warn(
                "enroll failed",
                &[("user", user), ("reason", "wrong SMS code")],
            );
            return Err(Error::InvalidCode(MSG_WRONG_SMS.into()));
        }
        if checked.is_err() {
            return Err(Error::Expired("That code expired; send a new one.".into()));
        }
        self.take(enrollment_id, Kind::Sms)?;
        let state = owned_state(core, grant.account())?;
        let data = DeviceData::Sms {
            phone: number.clone(),
        };
        if let Some((device, _)) = state.phone() {
            core.store
                .replace_device_data(grant.uid(), &device.id, &data)?;
            core.audit.info(
                "phone changed",
                &[
                    ("user", user),
                    ("device", &device.id),
                    ("phone", &phone::mask(&number)),
                ],
            );
            return Ok((device.id.clone(), Vec::new()));
        }
        let device_id = new_device_id(core, &state.devices)?;
        let (codes, hashed) = first_backup_codes(core, state.enrolled())?;
        let device = Device {
            id: device_id.clone(),
            label: String::new(),
            data,
            created: now,
            last_used: 0,
        };
        core.store
            .add_device(grant.account(), &device, 0, hashed.as_deref())?;
        core.audit.info(
            "enroll",
            &[
                ("user", user),
                ("kind", Kind::Sms.as_str()),
                ("device", &device_id),
                ("phone", &phone::mask(&number)),
            ],
        );
        Ok((device_id, codes))
    }

    /// Drops one pending enrollment (a login that enrolled too many wrong
    /// codes).
    pub fn forget(&self, enrollment_id: &str) {
        lock(&self.pending).remove(enrollment_id);
    }

    /// Ends the pending enrollments of `user` (an admin reset).
    pub fn forget_user(&self, uid: u32) {
        lock(&self.pending).retain(|_, p| p.uid != uid);
    }

    /// Remembers a pending enrollment for ten minutes; returns its id.
    fn add(&self, core: &Core, uid: u32, data: PendingData, now: i64) -> Result<String> {
        let id = random::hex(core.random.as_ref(), 8)?;
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.expires > now);
        // Keep the newest few per user: starting over is normal, hoarding is not.
        let mut mine: Vec<(String, i64)> = pending
            .iter()
            .filter(|(_, p)| p.uid == uid)
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
                uid,
                data,
                tries: 0,
                expires: now + ENROLLMENT_SECS,
            },
        );
        Ok(id)
    }

    /// What `pick` takes from `user`'s live pending enrollment of `kind`.
    fn live<T>(
        &self,
        uid: u32,
        enrollment_id: &str,
        kind: Kind,
        now: i64,
        pick: impl FnOnce(&PendingData) -> Option<T>,
    ) -> Result<T> {
        let mut pending = lock(&self.pending);
        let found = pending.get(enrollment_id).filter(|p| p.uid == uid);
        let Some((picked, expires)) = found.and_then(|p| Some((pick(&p.data)?, p.expires))) else {
            return Err(Error::NotFound(format!(
                "No such enrollment; start again with `mfactl enroll {}`.",
                kind.as_str()
            )));
        };
        if expires <= now {
            pending.remove(enrollment_id);
            return Err(Error::Expired(format!(
                "The enrollment expired after 10 minutes; start again with `mfactl enroll {}`.",
                kind.as_str()
            )));
        }
        Ok(picked)
    }

    /// Removes a confirmed enrollment; fails if a concurrent confirmation
    /// took it first.
    fn take(&self, enrollment_id: &str, kind: Kind) -> Result<()> {
        let mut pending = lock(&self.pending);
        match pending.get(enrollment_id) {
            Some(p) if p.data.kind() == kind => {
                pending.remove(enrollment_id);
                Ok(())
            }
            _ => Err(Error::NotFound(format!(
                "No such enrollment; start again with `mfactl enroll {}`.",
                kind.as_str()
            ))),
        }
    }

    /// Counts a wrong confirmation; enough of them end the enrollment.
    fn failed(&self, enrollment_id: &str) {
        let mut pending = lock(&self.pending);
        if let Some(p) = pending.get_mut(enrollment_id) {
            p.tries += 1;
            if p.tries >= ENROLLMENT_TRIES {
                pending.remove(enrollment_id);
            }
        }
    }
}

/// Enrollment is for accounts that exist.
fn require_account(grant: &AccountGrant) -> Result<()> {
    if grant.uid() == UNKNOWN_UID {
        return Err(Error::InvalidArgument(format!(
            "No such user: {}.",
            field(grant.user())
        )));
    }
    Ok(())
}

/// Backup codes come with the first device only; later devices leave them
/// as they are (never replaced silently: new ones only on request).
fn first_backup_codes(
    core: &Core,
    enrolled: bool,
) -> Result<(Vec<String>, Option<Vec<crate::codes::Hashed>>)> {
    if enrolled {
        return Ok((Vec::new(), None));
    }
    let (codes, hashed) = factor::backup::generate(core.random.as_ref(), &core.keys)?;
    Ok((codes, Some(hashed)))
}

/// A device id not yet used by the user.
fn new_device_id(core: &Core, devices: &[Device]) -> Result<String> {
    loop {
        let id = random::hex(core.random.as_ref(), 4)?;
        if !devices.iter().any(|d| d.id == id) {
            return Ok(id);
        }
    }
}
