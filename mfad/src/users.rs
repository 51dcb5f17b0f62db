//! Unix accounts behind a trait: names, UIDs and group membership. The
//! daemon asks NSS ([`Nss`]); unit tests use [`Fake`] and never depend on
//! the host's accounts.

use nix::unistd::{Group, Uid, User};

/// A Unix account: state is kept by its UID; `name` is the account's
/// canonical name (the one its UID maps back to), whatever name it was
/// looked up by (`ALICE` on a case-insensitive directory, an alias made with
/// `useradd -o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub name: String,
}

/// The user directory mfad consults.
pub trait Directory: Send + Sync {
    fn uid_of(&self, name: &str) -> Option<u32>;
    fn name_of(&self, uid: u32) -> Option<String>;
    /// Whether the user with `uid` is in `group` (primary or supplementary).
    fn in_group(&self, uid: u32, group: &str) -> bool;
    /// The local accounts (the passwd file) with a login shell, one per UID.
    fn login_accounts(&self) -> Vec<Account>;

    /// The account `name` belongs to, by its UID and canonical name.
    fn account(&self, name: &str) -> Option<Account> {
        let uid = self.uid_of(name)?;
        let name = self.name_of(uid)?;
        Some(Account { uid, name })
    }

    /// The account with `uid`.
    fn account_of(&self, uid: u32) -> Option<Account> {
        Some(Account {
            uid,
            name: self.name_of(uid)?,
        })
    }
}

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

/// The system's accounts, through NSS (files, sssd, LDAP, ...).
pub struct Nss;

impl Directory for Nss {
    fn uid_of(&self, name: &str) -> Option<u32> {
        if !valid_name(name) {
            return None;
        }
        if let Some(uid) = files::lookup(|i| i.uid(name)) {
            return Some(uid);
        }
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
    }

    fn name_of(&self, uid: u32) -> Option<String> {
        if let Some(name) = files::lookup(|i| i.name(uid)) {
            return Some(name);
        }
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    /// Through getgrouplist(3): the primary group and every supplementary
    /// group any NSS source knows (sssd and LDAP groups need not list their
    /// members in `gr_mem`).
    fn in_group(&self, uid: u32, group: &str) -> bool {
        if group.is_empty() {
            return false;
        }
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        let Ok(Some(g)) = Group::from_name(group) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|gids| gids.contains(&g.gid))
    }

    fn login_accounts(&self) -> Vec<Account> {
        std::fs::read_to_string(PASSWD)
            .map(|text| login_accounts_in(&text))
            .unwrap_or_default()
    }
}

/// An index of /etc/passwd, as nscd keeps: glibc's `files` source scans
/// the file on every lookup, milliseconds per login on a host with 100,000
/// local users. Used only while nsswitch.conf asks `files` first for
/// passwd and the file has no NIS compat lines, so that it answers exactly
/// what NSS would; re-read whenever the file changes (checked by stat on
/// every lookup). A name or UID not in the file goes to NSS as before.
mod files {
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;

    /// Compact (about 25 bytes a user at 100,000): the names in one
    /// string, and two sorted tables searched by bisection. A name is a
    /// span of that string: its start (up to 16 MiB of names) and its
    /// length (up to 255 bytes) in one u32; a file beyond that is left to
    /// NSS.
    #[derive(Default)]
    pub(super) struct Index {
        /// (inode, size, mtime ns, ctime ns) of the file it was read from.
        stamp: Option<(u64, u64, i64, i64)>,
        usable: bool,
        names: String,
        /// (name span, uid), sorted by name.
        by_name: Vec<(u32, u32)>,
        /// (uid, name span), sorted by uid.
        by_uid: Vec<(u32, u32)>,
    }

    /// The span of `len` bytes from `start`, if it fits.
    fn span(start: usize, len: usize) -> Option<u32> {
        let start = u32::try_from(start).ok().filter(|s| *s < 1 << 24)?;
        let len = u8::try_from(len).ok()?;
        Some(start << 8 | u32::from(len))
    }

    impl Index {
        /// The name at `span` in `names`.
        fn text(names: &str, span: u32) -> &str {
            let (start, len) = ((span >> 8) as usize, (span & 0xff) as usize);
            names.get(start..start + len).unwrap_or("")
        }

        pub(super) fn uid(&self, name: &str) -> Option<u32> {
            let i = self
                .by_name
                .binary_search_by(|&(a, _)| Index::text(&self.names, a).cmp(name))
                .ok()?;
            Some(self.by_name[i].1)
        }

        pub(super) fn name(&self, uid: u32) -> Option<String> {
            let i = self.by_uid.binary_search_by_key(&uid, |e| e.0).ok()?;
            Some(Index::text(&self.names, self.by_uid[i].1).to_string())
        }
    }

    static INDEX: Mutex<Option<Index>> = Mutex::new(None);

    /// `f` on an up-to-date index; None when the index cannot be used or
    /// `f` finds nothing.
    pub(super) fn lookup<T>(f: impl FnOnce(&Index) -> Option<T>) -> Option<T> {
        let meta = std::fs::metadata(super::PASSWD).ok()?;
        let stamp = (
            meta.ino(),
            meta.size(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
            meta.ctime_nsec() + meta.ctime() * 1_000_000_000,
        );
        let mut guard = INDEX.lock().ok()?;
        let index = guard.get_or_insert_with(Index::default);
        if index.stamp != Some(stamp) {
            *index = read(stamp);
        }
        if !index.usable {
            return None;
        }
        f(index)
    }

    fn read(stamp: (u64, u64, i64, i64)) -> Index {
        let files_first = std::fs::read_to_string("/etc/nsswitch.conf")
            .ok()
            .is_some_and(|conf| files_first(&conf));
        // Read line by line: the file of 100,000 users is 5 MB, more than
        // the index.
        match std::fs::File::open(super::PASSWD) {
            Ok(file) if files_first => parse(std::io::BufReader::new(file), stamp),
            _ => Index {
                stamp: Some(stamp),
                ..Index::default()
            },
        }
    }

    /// Whether the `passwd:` line of nsswitch.conf names `files` first
    /// (a missing line means files, glibc's default).
    pub(super) fn files_first(conf: &str) -> bool {
        for line in conf.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(rest) = line.strip_prefix("passwd:") {
                return rest.split_whitespace().next() == Some("files");
            }
        }
        true
    }

    /// The first line of each name and of each UID, as getpwnam and
    /// getpwuid find them; a file with NIS compat lines (`+`, `-`), or one
    /// that cannot be read whole as UTF-8, is left to NSS.
    pub(super) fn parse(mut file: impl std::io::BufRead, stamp: (u64, u64, i64, i64)) -> Index {
        let unusable = Index {
            stamp: Some(stamp),
            ..Index::default()
        };
        let mut index = Index {
            stamp: Some(stamp),
            usable: true,
            ..Index::default()
        };
        let mut line = String::new();
        loop {
            line.clear();
            match file.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return unusable,
            }
            let line = line.trim_end_matches('\n');
            if line.starts_with('+') || line.starts_with('-') {
                return unusable;
            }
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(uid) = uid.parse::<u32>() else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let Some(span) = span(index.names.len(), name.len()) else {
                return unusable;
            };
            index.names.push_str(name);
            index.by_name.push((span, uid));
            index.by_uid.push((uid, span));
        }
        // Spans grow with the line number, so sorting by (key, span) and
        // keeping the first of equals keeps the first line of a name or a
        // UID, as getpwnam and getpwuid do. (Unstable sorts need no
        // buffer.)
        let names = std::mem::take(&mut index.names);
        index.by_name.sort_unstable_by(|x, y| {
            Index::text(&names, x.0)
                .cmp(Index::text(&names, y.0))
                .then(x.0.cmp(&y.0))
        });
        index
            .by_name
            .dedup_by(|later, first| Index::text(&names, later.0) == Index::text(&names, first.0));
        index.by_uid.sort_unstable();
        index.by_uid.dedup_by_key(|e| e.0);
        index.names = names;
        index.names.shrink_to_fit();
        index.by_name.shrink_to_fit();
        index.by_uid.shrink_to_fit();
        index
    }
}

/// The local accounts: NSS has no portable way to list every account of
/// every source (LDAP, sssd), and those log in through mfad, which then
/// knows them.
const PASSWD: &str = "/etc/passwd";

/// The accounts of a passwd file whose shell lets them log in (not
/// `nologin` or `false`), the first name of each UID.
fn login_accounts_in(passwd: &str) -> Vec<Account> {
    let mut seen = std::collections::BTreeSet::new();
    passwd
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let (name, uid, shell) = (*f.first()?, f.get(2)?.parse().ok()?, *f.get(6)?);
            let base = shell.rsplit('/').next().unwrap_or("");
            let login = !shell.is_empty() && !matches!(base, "nologin" | "false");
            (login && valid_name(name) && seen.insert(uid)).then(|| Account {
                uid,
                name: name.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod files_tests {
    use super::files::{files_first, parse};

    #[test]
    fn the_index_answers_as_the_files_source_does() {
        let i = parse(
            "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/h:/bin/sh\nalias:x:1000:1000::/h:/bin/sh\nalice:x:7:7::/:/bin/sh\nbad line\nzed:x:9:9::/:/bin/sh"
                .as_bytes(),
            (1, 2, 3, 4),
        );
        assert_eq!(i.uid("alice"), Some(1000));
        assert_eq!(i.uid("alias"), Some(1000));
        assert_eq!(i.uid("root"), Some(0));
        assert_eq!(i.name(1000).as_deref(), Some("alice"));
        assert_eq!(i.name(0).as_deref(), Some("root"));
        assert_eq!(i.name(7).as_deref(), Some("alice"));
        assert_eq!(i.uid("bad line"), None);
        // The last line needs no newline.
        assert_eq!(i.uid("zed"), Some(9));
        assert_eq!(i.name(9).as_deref(), Some("zed"));
        assert_eq!(i.uid("bob"), None);
        assert_eq!(i.name(4242), None);
        // NIS compat lines: NSS answers, not the index.
        let compat = parse(
            "root:x:0:0::/:/bin/sh\n+@netgroup\n".as_bytes(),
            (1, 2, 3, 4),
        );
        assert_eq!(compat.uid("root"), None);
        // A name longer than the index keeps: NSS answers.
        let long = format!(
            "root:x:0:0::/:/bin/sh\n{}:x:5:5::/:/bin/sh\n",
            "n".repeat(256)
        );
        assert_eq!(parse(long.as_bytes(), (1, 2, 3, 4)).uid("root"), None);
        let longest = format!(
            "root:x:0:0::/:/bin/sh\n{}:x:5:5::/:/bin/sh\n",
            "n".repeat(255)
        );
        assert_eq!(
            parse(longest.as_bytes(), (1, 2, 3, 4)).uid(&"n".repeat(255)),
            Some(5)
        );
        // Not UTF-8: NSS answers.
        let latin1 = parse(
            &b"root:x:0:0::/:/bin/sh\nj\xfcrgen:x:5:5::/:/bin/sh\n"[..],
            (1, 2, 3, 4),
        );
        assert_eq!(latin1.uid("root"), None);
    }

    #[test]
    fn only_files_first_is_indexed() {
        assert!(files_first("passwd:         files systemd\ngroup: files\n"));
        assert!(files_first("# nothing\n"));
        assert!(!files_first("passwd: sss files\n"));
        assert!(!files_first("passwd: compat\n"));
        assert!(files_first("passwd: files # then ldap\n"));
    }
}

/// A fixed directory for unit tests: users and the groups they are in.
#[cfg(test)]
#[derive(Default)]
pub struct Fake {
    users: Vec<(String, u32, Vec<String>)>,
}

#[cfg(test)]
impl Fake {
    pub fn with(mut self, name: &str, uid: u32, groups: &[&str]) -> Fake {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.users.push((name.to_string(), uid, groups));
        self
    }
}

#[cfg(test)]
impl Directory for Fake {
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.users.iter().find(|u| u.0 == name).map(|u| u.1)
    }

    fn name_of(&self, uid: u32) -> Option<String> {
        self.users.iter().find(|u| u.1 == uid).map(|u| u.0.clone())
    }

    fn in_group(&self, uid: u32, group: &str) -> bool {
        !group.is_empty()
            && self
                .users
                .iter()
                .any(|u| u.1 == uid && u.2.iter().any(|g| g == group))
    }

    /// Every fake user but root, as if each had a login shell.
    fn login_accounts(&self) -> Vec<Account> {
        let mut seen = std::collections::BTreeSet::new();
        self.users
            .iter()
            .filter(|u| u.1 != 0 && seen.insert(u.1))
            .map(|u| Account {
                uid: u.1,
                name: u.0.clone(),
            })
            .collect()
    }
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

    /// root (UID 0, group root) is on every Linux system, also in a
    /// build container; no other account is assumed.
    #[test]
    fn nss_resolves_root_both_ways() {
        assert_eq!(Nss.uid_of("root"), Some(0));
        assert_eq!(Nss.name_of(0).as_deref(), Some("root"));
        assert_eq!(Nss.uid_of("no-such-user-mfad-test"), None);
        assert_eq!(Nss.uid_of("bad name"), None);
        assert!(Nss.in_group(0, "root"));
        assert!(!Nss.in_group(0, ""));
        assert!(!Nss.in_group(0, "no-such-group-mfad-test"));
    }

    #[test]
    fn login_accounts_are_those_with_a_login_shell_once_per_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n\
                      sync:x:4:65534:sync:/bin:/bin/sync\n\
                      off:x:5:5::/:/bin/false\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n\
                      alias:x:1000:1000::/home/alice:/bin/sh\n\
                      noshell:x:1001:1001::/:\n\
                      broken line\n\
                      bad:x:nope:1::/:/bin/sh\n";
        let names: Vec<(u32, String)> = login_accounts_in(passwd)
            .into_iter()
            .map(|a| (a.uid, a.name))
            .collect();
        assert_eq!(
            names,
            [
                (0, "root".into()),
                (4, "sync".into()),
                (1000, "alice".into())
            ]
        );
        assert!(Nss.login_accounts().iter().any(|a| a.uid == 0));
    }

    #[test]
    fn the_fake_answers_like_nss() {
        let d = Fake::default().with("alice", 1000, &["wheel"]);
        assert_eq!(d.uid_of("alice"), Some(1000));
        assert_eq!(d.name_of(1000).as_deref(), Some("alice"));
        assert_eq!(d.uid_of("bob"), None);
        assert!(d.in_group(1000, "wheel") && !d.in_group(1000, "") && !d.in_group(1, "wheel"));
    }

    #[test]
    fn every_name_of_a_uid_is_one_account() {
        let d = Fake::default()
            .with("alice", 1000, &[])
            .with("aliceb", 1000, &[]);
        let alice = Account {
            uid: 1000,
            name: "alice".into(),
        };
        assert_eq!(d.account("alice"), Some(alice.clone()));
        assert_eq!(d.account("aliceb"), Some(alice.clone()));
        assert_eq!(d.account_of(1000), Some(alice));
        assert_eq!(d.account("bob"), None);
    }
}
