//! What admins do to other users' accounts: list, inspect, reset after a
//! lost phone, unlock. Trusted-device removal is shared with the account
//! (`account::untrust`), under an admin's grant.

use std::collections::BTreeMap;

use mfa_api::{MissingUser, UserSummary};

use super::authz::{AdminGrant, AdminTarget};
use super::Core;
use crate::error::Result;
use crate::policy::{self, Mode, Need};

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

/// Users who must use 2-step and have no device, with their grace time left:
/// local accounts with a login shell, and every account mfad has state for
/// (seen at login). A user counts when the policy requires them for logins
/// in general or for any service with its own `mode = "required"`.
pub fn list_missing(core: &Core, _grant: &AdminGrant, now: i64) -> Result<Vec<MissingUser>> {
    let rules = core.config.policy.rules();
    let starts: BTreeMap<u32, i64> = core.store.grace_starts()?.into_iter().collect();
    let mut names: BTreeMap<u32, String> = core
        .users
        .login_accounts()
        .into_iter()
        .map(|a| (a.uid, a.name))
        .collect();
    let seen = core.store.list_users()?.into_iter().map(|s| s.uid);
    for uid in seen
        .filter_map(|u| u32::try_from(u).ok())
        .chain(starts.keys().copied())
    {
        if let Some(name) = core.users.name_of(uid) {
            names.entry(uid).or_insert(name);
        }
    }
    let some_service_requires = rules.services.values().any(|m| *m == Mode::Required);
    let mut missing = Vec::new();
    for (uid, name) in names {
        let must = match policy::need(&rules, &name, "", |g| core.users.in_group(uid, g)) {
            Need::Exempt(_) => false,
            Need::Required => true,
            Need::Optional => some_service_requires,
        };
        if !must || core.store.user(uid)?.enrolled() {
            continue;
        }
        let grace_left = match starts.get(&uid) {
            _ if rules.grace_secs == 0 => 0,
            None => -1,
            Some(&start) => policy::grace_left(rules.grace_secs, start, now),
        };
        missing.push(MissingUser {
            user: name,
            grace_left,
        });
    }
    missing.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(missing)
}
