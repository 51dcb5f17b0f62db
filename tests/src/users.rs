//! Real Unix users and groups for a test, removed when the test ends.

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::proc::Cmd;
use crate::random_letters;

/// useradd/groupadd lock /etc/passwd and /etc/group; tests run in parallel
/// threads, so the harness takes turns itself rather than fail on the lock.
static PASSWD_LOCK: Mutex<()> = Mutex::new(());

/// A Unix user created for one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Runs a shadow-utils command, retrying while another process holds the
/// passwd/group lock (exit code 10 for useradd/groupadd, 10 for userdel).
fn shadow(cmd: &str, args: &[&str]) -> crate::proc::Output {
    shadow_stdin(cmd, args, None)
}

/// [`shadow`] with `input` on stdin (chpasswd reads `user:password`).
fn shadow_stdin(cmd: &str, args: &[&str], input: Option<&str>) -> crate::proc::Output {
    let tool = crate::paths::tool(cmd, "passwd");
    let mut last = None;
    for _ in 0..50 {
        let out = {
            let _guard = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let mut c = Cmd::new(&tool).args(args);
            if let Some(input) = input {
                c = c.stdin(input);
            }
            c.run()
        };
        if out.success() {
            return out;
        }
        let locked = out.stderr.contains("lock") || out.code == Some(10);
        last = Some(out);
        if !locked {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    last.expect("at least one attempt")
}

/// Creates `mfat<random>` without home directory or group of its own, with
/// no login shell. Letters only, so a user name never looks like a code.
pub fn create_user() -> User {
    create_user_with_shell("/usr/sbin/nologin")
}

/// Like [`create_user`], with this login shell (sshd runs commands with
/// it, so SSH test users need a real one).
pub fn create_user_with_shell(shell: &str) -> User {
    let name = format!("mfat{}", random_letters(12));
    let out = shadow("useradd", &["-M", "-N", "-s", shell, &name]);
    assert!(out.success(), "cannot create test user {name}:\n{out}");
    lookup(&name).unwrap_or_else(|| panic!("useradd made {name} but it cannot be looked up"))
}

/// Another name for `of`'s UID (`useradd -o`): `mfat<random>`, listed after
/// `of` in /etc/passwd, so the UID's own name stays `of`'s.
pub fn create_alias(of: &User) -> User {
    let name = format!("mfat{}", random_letters(12));
    let (uid, gid) = (of.uid.to_string(), of.gid.to_string());
    let out = shadow(
        "useradd",
        &[
            "-o",
            "-u",
            &uid,
            "-g",
            &gid,
            "-M",
            "-N",
            "-s",
            "/usr/sbin/nologin",
            &name,
        ],
    );
    assert!(
        out.success(),
        "cannot create {name} as an alias of {}:\n{out}",
        of.name
    );
    lookup(&name).unwrap_or_else(|| panic!("useradd made {name} but it cannot be looked up"))
}

/// Sets a user's password with chpasswd (on stdin, never in arguments).
pub fn set_password(name: &str, password: &str) {
    let out = shadow_stdin("chpasswd", &[], Some(&format!("{name}:{password}\n")));
    assert!(out.success(), "cannot set the password of {name}:\n{out}");
}

/// The uid and gid of an existing user.
pub fn lookup(name: &str) -> Option<User> {
    let u = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(User {
        name: name.to_string(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    })
}

/// Removes a user; reports (never panics: this runs in Drop).
pub fn remove_user(name: &str) {
    let out = shadow("userdel", &["-f", name]);
    if !out.success() {
        eprintln!("mfa-tests: could not remove test user {name}:\n{out}");
    }
}

/// Creates a group `mfag<random>` with the given members.
pub fn create_group(members: &[&User]) -> String {
    let name = format!("mfag{}", random_letters(12));
    let out = shadow("groupadd", &[&name]);
    assert!(out.success(), "cannot create test group {name}:\n{out}");
    for m in members {
        let out = shadow("gpasswd", &["-a", &m.name, &name]);
        assert!(
            out.success(),
            "cannot add {} to group {name}:\n{out}",
            m.name
        );
    }
    name
}

pub fn remove_group(name: &str) {
    let out = shadow("groupdel", &[name]);
    if !out.success() {
        eprintln!("mfa-tests: could not remove test group {name}:\n{out}");
    }
}
