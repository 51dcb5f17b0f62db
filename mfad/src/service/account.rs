//! A user's own account: status, removing a device, new backup codes, a
//! code by SMS for these changes, and trusted devices. Changes that weaken
//! the account need a current code unless root asks; changes that only make
//! logins stricter (removing trust) do not.

use mfa_api::{Device as WireDevice, TrustedDevice, UserStatus};

use super::authz::AccountGrant;
use super::{owned_state, sms, verify, Core};
use crate::audit::field;
use crate::error::{Error, Result};
use crate::factor::{self, View};
use crate::phone;
use crate::store::{Trusted, UserState};
use crate::trust::Lifetime;

pub fn status(core: &Core, grant: &AccountGrant, view: View) -> Result<UserStatus> {
    let state = match view {
        View::Owner => owned_state(core, grant.account())?,
        View::Admin => core.store.user(grant.uid())?,
    };
    let backup_codes = core.store.backup_codes(grant.uid())?.len();
    Ok(status_of(grant.user(), &state, backup_codes, view))
}

pub fn remove_device(
    core: &Core,
    grant: &AccountGrant,
    device_id: &str,
    code: &str,
    now: i64,
) -> Result<()> {
    has_device(core, grant, device_id)?;
    if !grant.by_root() {
        verify::require_code(core, grant.account(), code, now)?;
    }
    remove_known_device(core, grant, device_id)
}

/// Fails unless the account has the device `device_id`.
fn has_device(core: &Core, grant: &AccountGrant, device_id: &str) -> Result<()> {
    let state = owned_state(core, grant.account())?;
    if state.devices.iter().any(|d| d.id == device_id) {
        Ok(())
    } else {
        Err(no_device(grant, device_id))
    }
}

fn no_device(grant: &AccountGrant, device_id: &str) -> Error {
    Error::NotFound(format!(
        "No device {} for {}.",
        field(device_id),
        grant.user()
    ))
}

/// Removes a device without asking for a code: for root, and for an admin
/// whose grant was checked by `AdminGrant::to_change`.
pub fn delete_device(core: &Core, grant: &AccountGrant, device_id: &str) -> Result<()> {
    has_device(core, grant, device_id)?;
    remove_known_device(core, grant, device_id)
}

/// Removes a device [`has_device`] found, and logs it.
fn remove_known_device(core: &Core, grant: &AccountGrant, device_id: &str) -> Result<()> {
    let user = grant.user();
    if !core.store.remove_device(grant.uid(), device_id)? {
        return Err(no_device(grant, device_id));
    }
    core.audit.info(
        "remove",
        &[
            ("user", user),
            ("device", device_id),
            ("by_uid", &grant.caller().to_string()),
        ],
    );
    Ok(())
}

pub fn regenerate_backup_codes(
    core: &Core,
    grant: &AccountGrant,
    code: &str,
    now: i64,
) -> Result<Vec<String>> {
    let user = grant.user();
    if !owned_state(core, grant.account())?.enrolled() {
        return Err(Error::NotEnrolled(format!(
            "{user} has no device enrolled."
        )));
    }
    if !grant.by_root() {
        verify::require_code(core, grant.account(), code, now)?;
    }
    let (codes, hashed) = factor::backup::generate(core.random.as_ref(), &core.keys)?;
    core.store.replace_backup_codes(grant.uid(), &hashed)?;
    core.audit.info(
        "backup codes regenerated",
        &[("user", user), ("by_uid", &grant.caller().to_string())],
    );
    Ok(codes)
}

/// Sends a code to the user's phone, good as a current code for account
/// changes (and at login). Returns the number, masked.
pub fn send_code(core: &Core, grant: &AccountGrant, now: i64) -> Result<String> {
    let user = grant.user();
    core.sms()?;
    let state = owned_state(core, grant.account())?;
    let Some((_, number)) = state.phone() else {
        return Err(Error::NotEnrolled(format!("{user} has no phone enrolled.")));
    };
    if state.lockout.is_locked(now) {
        return Err(Error::LockedOut(state.lockout.message(now)));
    }
    sms::send_login_code(core, grant.account(), number, now, None)?;
    Ok(phone::mask(number))
}

pub fn trusted_devices(core: &Core, grant: &AccountGrant) -> Result<Vec<TrustedDevice>> {
    let lifetime = core.config.trusted_devices.lifetime;
    let rows = core.store.trusted_list(grant.uid())?;
    Ok(rows.iter().map(|t| trusted_to_wire(t, lifetime)).collect())
}

/// Stops trusting one device (`Some(id)`) or all; returns how many.
pub fn untrust(core: &Core, grant: &AccountGrant, id: Option<&str>) -> Result<u32> {
    let user = grant.user();
    let n = core.store.untrust(grant.uid(), id)?;
    if let Some(id) = id {
        if n == 0 {
            return Err(Error::NotFound(format!(
                "No trusted device {} for {user}.",
                field(id)
            )));
        }
    }
    core.audit.info(
        "trusted device removed",
        &[
            ("user", user),
            ("device", id.unwrap_or("all")),
            ("by_uid", &grant.caller().to_string()),
        ],
    );
    Ok(n)
}

fn device_to_wire(d: &crate::store::Device, view: View) -> WireDevice {
    WireDevice {
        id: d.id.clone(),
        kind: d.data.kind().as_str().to_string(),
        name: factor::display_name(d, view),
        created: d.created,
        last_used: d.last_used,
    }
}

fn trusted_to_wire(t: &Trusted, lifetime: Lifetime) -> TrustedDevice {
    TrustedDevice {
        id: t.id.clone(),
        kind: t.kind.clone(),
        identity: t.identity.clone(),
        first_used: t.first_used,
        last_used: t.last_used,
        expires: lifetime.expires(t.trusted_at).unwrap_or(0),
    }
}

fn status_of(user: &str, state: &UserState, backup_codes: usize, view: View) -> UserStatus {
    UserStatus {
        user: user.to_string(),
        enrolled: state.enrolled(),
        devices: state
            .devices
            .iter()
            .map(|d| device_to_wire(d, view))
            .collect(),
        backup_codes_left: u32::try_from(backup_codes).unwrap_or(u32::MAX),
        failures: state.lockout.failures,
        locked_until: state.lockout.locked_until,
    }
}
