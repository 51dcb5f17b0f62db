//! What admins do to other users' accounts: list, inspect, reset after a
//! lost phone, unlock. Trusted-device removal is shared with the account
//! (`account::untrust`), under an admin's grant.

use mfa_api::UserSummary;

use super::authz::{AdminGrant, AdminTarget};
use super::Core;
use crate::error::Result;

pub fn list_users(core: &Core, _grant: &AdminGrant) -> Result<Vec<UserSummary>> {
    Ok(core
        .store
        .list_users()?
        .into_iter()
        .map(|s| UserSummary {
            user: s.user,
            devices: s.devices,
            backup_codes_left: s.backup_codes_left,
            locked_until: s.locked_until,
        })
        .collect())
}

/// Forgets the user's devices, codes, trust and lockout (the caller ends
/// their logins and enrollments in flight).
pub fn reset(core: &Core, target: &AdminTarget) -> Result<()> {
    let user = target.user();
    core.store.reset(target.uid())?;
    core.audit.warn(
        "reset",
        &[("user", user), ("by_uid", &target.caller().to_string())],
    );
    Ok(())
}

pub fn unlock(core: &Core, target: &AdminTarget) -> Result<()> {
    let user = target.user();
    core.store.unlock(target.uid())?;
    core.audit.info(
        "unlock",
        &[("user", user), ("by_uid", &target.caller().to_string())],
    );
    Ok(())
}
