//! Who may do what, checked by the caller's UID (from the bus, never from
//! the message). Each check returns a grant; the operations behind it take
//! the grant as an argument, so none of them can run unchecked.
//!
//! A grant names the account by UID and canonical name, resolved through
//! the user directory once, here: every name of a UID (an alias, another
//! case on a case-insensitive directory) is the same account. A name that
//! resolves to nothing is [`UNKNOWN_UID`] for root (and so looks like a user
//! who has not enrolled: no one learns which names exist) and refused for
//! anyone else.
//!
//! | interface | root | the user themselves | `admin_group` | anyone else |
//! |---|---|---|---|---|
//! | Login | any user | own account | own account | denied |
//! | Login.CloseSession | yes | no | no | denied |
//! | Account | any user | own account | own account | denied |
//! | Admin | yes | no | yes | denied |

use super::Core;
use crate::audit::field;
use crate::error::{Error, Result};
use crate::users::{valid_name, Account};

/// The UID of a name that resolves to no account: `(uid_t)-1`, which no
/// account has, so nothing is ever stored under it.
pub const UNKNOWN_UID: u32 = u32::MAX;

/// Who is acting on which account; every grant but the Admin one holds
/// one, and only this module makes them.
#[derive(Debug)]
pub struct Grantee {
    caller: u32,
    account: Account,
}

impl Grantee {
    pub fn caller(&self) -> u32 {
        self.caller
    }

    /// The account's canonical name.
    pub fn user(&self) -> &str {
        &self.account.name
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn uid(&self) -> u32 {
        self.account.uid
    }

    /// Root need not prove anything with a current code.
    pub fn by_root(&self) -> bool {
        self.caller == 0
    }
}

/// May verify `user`'s codes (Login interface).
#[derive(Debug)]
pub struct LoginGrant(Grantee);

/// May act on `user`'s account (Account interface, or an admin's target).
#[derive(Debug)]
pub struct AccountGrant(Grantee);

/// May use the Admin interface.
#[derive(Debug)]
pub struct AdminGrant {
    caller: u32,
}

/// An admin may change `user`'s account (reset, unlock), and do whatever
/// the user may do to it.
#[derive(Debug)]
pub struct AdminTarget(Grantee);

macro_rules! grantee {
    ($($grant:ident),*) => {$(
        impl std::ops::Deref for $grant {
            type Target = Grantee;
            fn deref(&self) -> &Grantee {
                &self.0
            }
        }
    )*};
}
grantee!(LoginGrant, AccountGrant, AdminTarget);

impl AdminGrant {
    /// The admin looking at `user`'s account.
    pub fn on(&self, core: &Core, user: &str) -> Result<AdminTarget> {
        check_name(user)?;
        Ok(AdminTarget(Grantee {
            caller: self.caller,
            account: resolve(core, user),
        }))
    }

    /// The admin changing `user`'s account (reset, unlock, removing devices
    /// or trust). Only root may change root's or another admin's: an admin
    /// who could reset an admin could take over their account.
    pub fn to_change(&self, core: &Core, user: &str) -> Result<AdminTarget> {
        let target = self.on(core, user)?;
        let uid = target.account.uid;
        let protected = uid == 0 || core.users.in_group(uid, &core.config.daemon.admin_group);
        if self.caller != 0 && protected && uid != UNKNOWN_UID {
            denied(core, "Admin", self.caller, Some(user));
            return Err(Error::AccessDenied(
                "Only root may change root's or an administrator's 2-step verification.".into(),
            ));
        }
        Ok(target)
    }
}

impl AdminTarget {
    /// What the account's owner may do, the admin may do too.
    pub fn as_owner(&self) -> AccountGrant {
        AccountGrant(Grantee {
            caller: self.caller,
            account: self.account.clone(),
        })
    }
}

/// The account `name` belongs to; [`UNKNOWN_UID`] when none.
fn resolve(core: &Core, name: &str) -> Account {
    core.users.account(name).unwrap_or_else(|| Account {
        uid: UNKNOWN_UID,
        name: name.to_string(),
    })
}

fn check_name(user: &str) -> Result<()> {
    if valid_name(user) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{} is not a valid user name.",
            field(user)
        )))
    }
}

/// Login: root for anyone, others for themselves only.
pub fn login(core: &Core, caller: u32, user: &str) -> Result<LoginGrant> {
    let account = resolve(core, user);
    if caller == 0 || account.uid == caller {
        return Ok(LoginGrant(Grantee { caller, account }));
    }
    denied(core, "Login", caller, Some(user));
    Err(Error::AccessDenied(
        "You may only verify your own account.".into(),
    ))
}

/// Enrollment inside a login (`Login.Enroll*`): the account of the login
/// attempt, whose `Begin` answered `enroll`, for the root caller that began
/// it; never anyone else's account, and never for a caller running as the
/// user.
pub fn login_enrollment(core: &Core, caller: u32, account: &Account) -> Result<AccountGrant> {
    if caller != 0 || account.uid == UNKNOWN_UID {
        denied(core, "Login", caller, Some(&account.name));
        return Err(Error::AccessDenied(
            "Only the login program may enroll a device during a login.".into(),
        ));
    }
    Ok(AccountGrant(Grantee {
        caller,
        account: account.clone(),
    }))
}

/// Account: the user named, or the caller when `user` is empty; root for
/// anyone, others for themselves only.
pub fn account(core: &Core, caller: u32, user: &str) -> Result<AccountGrant> {
    if user.is_empty() {
        let account = core
            .users
            .account_of(caller)
            .ok_or_else(|| Error::InvalidArgument(format!("UID {caller} has no user name.")))?;
        return Ok(AccountGrant(Grantee { caller, account }));
    }
    check_name(user)?;
    let account = resolve(core, user);
    if caller == 0 || account.uid == caller {
        return Ok(AccountGrant(Grantee { caller, account }));
    }
    denied(core, "Account", caller, Some(user));
    Err(Error::AccessDenied(
        "You may only manage your own account.".into(),
    ))
}

/// May close a limited session (`Login.CloseSession`): the login programs,
/// which run as root. A user who could would lift their own limit.
#[derive(Debug)]
pub struct SessionCloser(());

pub fn close_session(core: &Core, caller: u32) -> Result<SessionCloser> {
    if caller == 0 {
        return Ok(SessionCloser(()));
    }
    denied(core, "Login", caller, None);
    Err(Error::AccessDenied(
        "Only the login program may close a session.".into(),
    ))
}

/// Admin: root, or a member of `[daemon] admin_group`.
pub fn admin(core: &Core, caller: u32) -> Result<AdminGrant> {
    if caller == 0 || core.users.in_group(caller, &core.config.daemon.admin_group) {
        return Ok(AdminGrant { caller });
    }
    denied(core, "Admin", caller, None);
    Err(Error::AccessDenied(
        "Only root or members of the admin group may use the Admin interface.".into(),
    ))
}

fn denied(core: &Core, interface: &str, caller: u32, user: Option<&str>) {
    let caller = caller.to_string();
    let mut fields = vec![("interface", interface), ("caller_uid", caller.as_str())];
    if let Some(user) = user {
        fields.push(("user", user));
    }
    core.audit.warn("access denied", &fields);
}
