//! Unix accounts: names, UIDs and the admin group, from NSS.

use nix::unistd::{Group, Uid, User};

/// Longest user name accepted on the wire; longer than any NSS backend uses.
const MAX_NAME: usize = 256;

/// Whether `name` can be a user name. Deliberately broader than useradd's
/// rules (LDAP and AD names carry '@', '\\' and capitals) but never control
/// characters, white space, ':' or '/', which no NSS backend allows and which
/// would let a caller forge log lines or paths.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '$' | '\\' | '+'))
}

pub fn uid_of(name: &str) -> Option<u32> {
    if !valid_name(name) {
        return None;
    }
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

pub fn name_of(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Whether the user with `uid` is in `group`, as primary or supplementary
/// group.
pub fn in_group(uid: u32, group: &str) -> bool {
    if group.is_empty() {
        return false;
    }
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(Some(g)) = Group::from_name(group) else {
        return false;
    };
    user.gid == g.gid || g.mem.contains(&user.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "alice",
            "a.b-c_d",
            "svc$",
            "user@EXAMPLE.COM",
            "DOM\\bob",
            "Ünïcode",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-rf",
            "a b",
            "a\nb",
            "a:b",
            "../x",
            "a/b",
            &"x".repeat(300),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn root_resolves_both_ways() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(name_of(0).as_deref(), Some("root"));
        assert_eq!(uid_of("no-such-user-mfad-test"), None);
        assert!(in_group(0, "root"));
        assert!(!in_group(0, ""));
        assert!(!in_group(0, "no-such-group-mfad-test"));
    }
}
