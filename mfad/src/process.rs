//! The processes of a login session, through /proc, pidfds and signals:
//! who a pidfd is, whether a PID is still the same process (its start
//! time), what the session runs (its descendants and their sessions), and
//! writing a warning to its terminal.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::process::{Pid, PidfdFlags, Signal};

/// What /proc/PID/stat says of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: i32,
    pub sid: i32,
    /// The controlling terminal's device number; 0 for none.
    pub tty_nr: u64,
    /// Field 22: clock ticks after boot it started; with the PID, unique.
    pub start: u64,
}

/// Parses /proc/PID/stat's text: the name in parentheses may hold
/// anything, so the fields are counted after the last ')'.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, so field N is rest's (N - 3).
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        tty_nr: f.get(4)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The real UID a process runs as (the owner of /proc/PID).
pub fn uid(pid: i32) -> Option<u32> {
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The PID a pidfd refers to (its fdinfo's `Pid:` line); None once the
/// process is gone (-1).
pub fn pid_of(pidfd: BorrowedFd<'_>) -> io::Result<i32> {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::other("not a pidfd of a live process"))
}

/// pidfd_open(2): a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("not a PID"))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// pidfd_send_signal(2).
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(pidfd, signal)?)
}

/// Whether the process still runs: a pidfd turns readable when it exits.
pub fn alive(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    matches!(
        rustix::event::poll(&mut fds, Some(&Timespec::default())),
        Ok(0)
    )
}

/// A pidfd for `pid` only if it is still the process that started at
/// `start`: checked before and after opening, so a PID reused in between
/// is never taken for it.
pub fn reopen(pid: i32, start: u64) -> Option<OwnedFd> {
    if stat(pid)?.start != start {
        return None;
    }
    let fd = pidfd_open(pid).ok()?;
    (stat(pid)?.start == start).then_some(fd)
}

/// Every process now: PID, its stat and its UID.
fn all() -> Vec<(i32, Stat, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?, uid(pid)?)))
        .collect()
}

/// What a session runs, followed across signals: the registered process's
/// descendants, and every process of the user in a session (setsid) one of
/// them started, so what was re-parented to init when its parent died is
/// still found.
#[derive(Debug, Default)]
pub struct Tree {
    seen: HashSet<(i32, u64)>,
    sids: HashSet<i32>,
}

impl Tree {
    /// The processes to signal now (not the registered one itself, which is
    /// signalled through its pidfd): PID with start time.
    pub fn members(&mut self, root: i32, user: u32) -> Vec<(i32, u64)> {
        let procs = all();
        let me = std::process::id();
        let own_sid = stat(i32::try_from(me).unwrap_or(0)).map_or(0, |s| s.sid);
        let root_sid = stat(root).map_or(0, |s| s.sid);
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (pid, s, _) in &procs {
            children.entry(s.ppid).or_default().push(*pid);
        }
        let by_pid: HashMap<i32, (Stat, u32)> =
            procs.iter().map(|(p, s, u)| (*p, (*s, *u))).collect();
        let mut stack = children.get(&root).cloned().unwrap_or_default();
        while let Some(pid) = stack.pop() {
            let Some((s, u)) = by_pid.get(&pid) else {
                continue;
            };
            self.seen.insert((pid, s.start));
            // A session of its own, the user's: what the login started.
            if *u == user && s.sid > 1 && s.sid != own_sid && s.sid != root_sid {
                self.sids.insert(s.sid);
            }
            if let Some(c) = children.get(&pid) {
                stack.extend(c);
            }
        }
        let mut out: Vec<(i32, u64)> = procs
            .iter()
            .filter(|(pid, s, u)| {
                *pid > 1
                    && *pid != root
                    && u32::try_from(*pid).ok() != Some(me)
                    && (self.seen.contains(&(*pid, s.start))
                        || (*u == user && self.sids.contains(&s.sid)))
            })
            .map(|(pid, s, _)| (*pid, s.start))
            .collect();
        out.sort_unstable();
        out.dedup();
        for m in &out {
            self.seen.insert(*m);
        }
        out
    }

    /// Sends `signal` to each member still the same process (the start
    /// time is checked just before; a PID is not reused within that).
    pub fn signal(members: &[(i32, u64)], signal: Signal) {
        for &(pid, start) in members {
            if stat(pid).is_some_and(|s| s.start == start) {
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
        }
    }

    /// The terminal of a member run by `user`, as a /dev path.
    pub fn terminal(members: &[(i32, u64)], user: u32) -> Option<String> {
        members.iter().find_map(|&(pid, _)| {
            let s = stat(pid)?;
            (s.tty_nr != 0 && uid(pid)? == user)
                .then(|| tty_path(s.tty_nr))
                .flatten()
        })
    }
}

/// /dev path of a terminal device number (pseudo-terminals, virtual
/// consoles, serial lines).
pub fn tty_path(dev: u64) -> Option<String> {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    match major {
        136..=143 => Some(format!("/dev/pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("/dev/tty{minor}")),
        4 => Some(format!("/dev/ttyS{}", minor - 64)),
        _ => None,
    }
}

/// The /dev path PAM_TTY names, if it names a terminal of the kinds
/// [`tty_path`] knows: "/dev/pts/3", "pts/3", "tty1" and "ttyS0" do;
/// "ssh", "" and any other device ("/dev/watchdog": opening some devices
/// acts) do not. PAM_TTY comes from the caller.
pub fn tty_of(pam_tty: &str) -> Option<String> {
    let name = pam_tty.strip_prefix("/dev/").unwrap_or(pam_tty);
    let number = name
        .strip_prefix("pts/")
        .or_else(|| name.strip_prefix("ttyS"))
        .or_else(|| name.strip_prefix("tty"))?;
    let digits =
        !number.is_empty() && number.len() <= 7 && number.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| format!("/dev/{name}"))
}

/// Writes `text` to the terminal at `path`, only if it is a terminal owned
/// by `user` (a link or a file put there by someone else is refused);
/// never becomes its controlling terminal, never blocks.
pub fn write_tty(path: &str, user: u32, text: &str) -> io::Result<()> {
    // Checked before the open too: opening a device may act by itself.
    let m = fs::symlink_metadata(path)?;
    if !m.file_type().is_char_device()
        || m.uid() != user
        || tty_path(m.rdev()).as_deref() != Some(path)
    {
        return Err(io::Error::other("not a terminal owned by the user"));
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(
            (OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32,
        )
        .open(path)?;
    let m = f.metadata()?;
    if !m.file_type().is_char_device() || m.uid() != user {
        return Err(io::Error::other("not a terminal owned by the user"));
    }
    if !rustix::termios::isatty(&f) {
        return Err(io::Error::other("not a terminal"));
    }
    f.write_all(format!("\r\n*** {text} ***\r\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line =
            "4242 (a) b) c) S 17 4242 4242 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                sid: 4242,
                tty_nr: 34816,
                start: 987654
            })
        );
        assert_eq!(parse_stat("1 (x"), None);
    }

    #[test]
    fn this_process_is_found_by_its_pidfd_and_start_time() {
        let me = i32::try_from(std::process::id()).unwrap();
        let fd = pidfd_open(me).unwrap();
        use std::os::fd::AsFd;
        assert_eq!(pid_of(fd.as_fd()).unwrap(), me);
        assert!(alive(fd.as_fd()));
        let start = stat(me).unwrap().start;
        assert!(reopen(me, start).is_some());
        assert!(reopen(me, start + 1).is_none());
    }

    #[test]
    fn terminal_numbers_and_names() {
        assert_eq!(tty_path(34816).as_deref(), Some("/dev/pts/0"));
        assert_eq!(tty_path((136 << 8) | 5).as_deref(), Some("/dev/pts/5"));
        assert_eq!(tty_path((4 << 8) | 1).as_deref(), Some("/dev/tty1"));
        assert_eq!(tty_path(0), None);
        assert_eq!(tty_of("/dev/pts/3").as_deref(), Some("/dev/pts/3"));
        assert_eq!(tty_of("pts/3").as_deref(), Some("/dev/pts/3"));
        assert_eq!(tty_of("tty1").as_deref(), Some("/dev/tty1"));
        assert_eq!(tty_of("ssh"), None);
        assert_eq!(tty_of("/dev/../etc/shadow"), None);
        assert_eq!(tty_of("ttyS0").as_deref(), Some("/dev/ttyS0"));
        for other in [
            "/dev/watchdog",
            "/dev/sda",
            "/dev/tty",
            "/dev/pts/",
            "pts/3/x",
            "tty1a",
            "/dev/ttyUSB0",
        ] {
            assert_eq!(tty_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "").unwrap();
        let me = nix::unistd::getuid().as_raw();
        assert!(write_tty(p.to_str().unwrap(), me, "x").is_err());
        assert_eq!(fs::read_to_string(&p).unwrap(), "");
    }
}
