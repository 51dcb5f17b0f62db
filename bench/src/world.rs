//! The benchmark's private world: a private mount namespace in which
//! /etc/passwd, /etc/pam.d and /dev are the benchmark's own (with a syslog
//! sink at /dev/log), private dbus-daemons, and the real (release) mfad on
//! each, with its own state directory. Nothing outside the namespace and the temp dir is touched:
//! when the benchmark's process ends, the kernel drops the mounts, and the
//! PID namespace that `scripts/bench.sh` starts it in takes every process
//! it started with it.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{io, io_at, Error, Result};

/// How long a part may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// First UID of the benchmark's users (in the private /etc/passwd only).
pub const UID_BASE: u32 = 2_000_000;

/// Where the parts are, from the command line.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Temp dir for everything (on the disk under test: mfad's fsyncs land there).
    pub dir: PathBuf,
    /// The repository (for scripts/bus-config.sh).
    pub repo: PathBuf,
    pub mfad: PathBuf,
    pub module: PathBuf,
    /// `readlink /proc/self/ns/mnt` of the shell that started us: ours must
    /// differ before anything is mounted.
    pub host_mnt_ns: String,
}

/// The mount side: our /etc/passwd, /etc/pam.d and /dev/log.
pub struct Mounts {
    passwd: PathBuf,
    /// The real /etc/passwd as it was (root, messagebus, ...), kept first.
    base_passwd: String,
    pam_dir: PathBuf,
    /// Messages the syslog sink received.
    pub syslog_messages: Arc<AtomicU64>,
}

impl Mounts {
    /// Checks that this process is in a private mount namespace, then
    /// mounts: a copy of /etc/passwd, a copy of /etc/pam.d (the stock
    /// files, so libpam finds `other` as on a real host), and a /dev of
    /// its own with a syslog sink at /dev/log.
    pub fn new(paths: &Paths) -> Result<Mounts> {
        let ns = fs::read_link("/proc/self/ns/mnt")
            .map_err(io("cannot read /proc/self/ns/mnt"))?
            .to_string_lossy()
            .into_owned();
        if paths.host_mnt_ns.is_empty() || ns == paths.host_mnt_ns {
            return Err(Error::Setup(
                "not in a private mount namespace: run the benchmark with `make bench` \
                 (scripts/bench.sh), never mfa-bench directly"
                    .into(),
            ));
        }
        let base_passwd =
            fs::read_to_string("/etc/passwd").map_err(io("cannot read /etc/passwd"))?;
        // A copy of all of /etc, not a bind mount on /etc/passwd alone:
        // useradd on the host (tests running beside the benchmark) renames
        // a new file over /etc/passwd, which would silently drop a mount
        // on that one file.
        let etc = paths.dir.join("etc");
        let copied = Command::new("cp")
            .args(["-a", "/etc/.", path_str(&etc)?])
            .status()
            .map_err(io("cannot run cp"))?;
        if !copied.success() && !etc.join("passwd").is_file() {
            return Err(Error::Setup("cannot copy /etc".into()));
        }
        let passwd = etc.join("passwd");
        fs::write(&passwd, &base_passwd).map_err(io_at("cannot write", &passwd))?;
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644))
            .map_err(io_at("cannot chmod", &passwd))?;
        let pam_dir = etc.join("pam.d");
        mount(&["--bind", path_str(&etc)?, "/etc"])?;

        let syslog_messages = private_dev(&paths.dir)?;
        Ok(Mounts {
            passwd,
            base_passwd,
            pam_dir,
            syslog_messages,
        })
    }

    /// Makes exactly these users (index `first`.. in the benchmark's
    /// numbering) exist besides the system's: mfad looks a user up when it
    /// is enrolled and at every login (its state is kept by UID). While
    /// enrolling, a batch at a time keeps the file short.
    pub fn set_users(&self, first: usize, names: &[String]) -> Result<()> {
        let mut text = self.base_passwd.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // A shell and a home that exist: the SSH phase's logins run `true`
        // through the user's shell, in its home.
        for (i, name) in names.iter().enumerate() {
            let uid = UID_BASE as usize + first + i;
            text.push_str(&format!("{name}:x:{uid}:{uid}:mfa-bench:/:/bin/sh\n"));
        }
        // In place: the bind mount holds this inode, so no rename.
        fs::write(&self.passwd, text).map_err(io_at("cannot write", &self.passwd))?;
        if let Some(name) = names.first() {
            match nix::unistd::User::from_name(name) {
                Ok(Some(_)) => {}
                _ => {
                    return Err(Error::Setup(format!(
                        "{name} is in the private /etc/passwd but cannot be looked up \
                         (is nscd running? it would answer from the real file)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Writes /etc/pam.d/SERVICE (in the namespace).
    pub fn pam_service(&self, name: &str, contents: &str) -> Result<()> {
        let path = self.pam_dir.join(name);
        fs::write(&path, format!("# written by mfa-bench\n{contents}\n"))
            .map_err(io_at("cannot write", &path))
    }
}

/// A tmpfs at `dir` (in the namespace only), for the comparison run
/// without fsync costs.
pub fn tmpfs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_at("cannot create", dir))?;
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "mode=0755",
        "mfa-bench-ram",
        path_str(dir)?,
    ])
}

/// Copies the files of directory `from` into a new directory `to` (mode
/// 0700, like mfad's state directory).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(io_at("cannot create", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))
        .map_err(io_at("cannot chmod", to))?;
    for e in fs::read_dir(from)
        .map_err(io_at("cannot list", from))?
        .flatten()
    {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            let dest = to.join(e.file_name());
            fs::copy(e.path(), &dest).map_err(io_at("cannot copy to", &dest))?;
        }
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| Error::Setup(format!("{} is not UTF-8", p.display())))
}

/// Runs `mount ARGS`.
fn mount(args: &[&str]) -> Result<()> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(io("cannot run mount"))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "mount {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Device nodes a /dev of our own keeps from the real one.
const DEV_NODES: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "console",
];

/// Gives the namespace a /dev of its own (a tmpfs with the real device
/// nodes bound in) with a syslog sink at /dev/log that reads and drops
/// every message, as a syslog daemon would take them. This machine may
/// have no /dev/log: then glibc writes the messages of modules that open
/// syslog with LOG_CONS (Google Authenticator logs every login) to the
/// console, at milliseconds each, which is not what a login costs on a
/// host with a syslog daemon. Returns the sink's message counter.
fn private_dev(dir: &Path) -> Result<Arc<AtomicU64>> {
    let real = dir.join("real-dev");
    fs::create_dir(&real).map_err(io_at("cannot create", &real))?;
    let real_s = path_str(&real)?;
    mount(&["--rbind", "/dev", real_s])?;
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "mode=0755,size=1m",
        "mfa-bench-dev",
        "/dev",
    ])?;
    for n in DEV_NODES {
        // Only null and urandom are needed by everything; the others are
        // kept when the host has them.
        if !real.join(n).exists() && !matches!(*n, "null" | "urandom") {
            continue;
        }
        let to = Path::new("/dev").join(n);
        File::create(&to).map_err(io_at("cannot create", &to))?;
        mount(&["--bind", &format!("{real_s}/{n}"), path_str(&to)?])?;
    }
    for d in ["pts", "shm"] {
        if !real.join(d).is_dir() {
            continue;
        }
        let to = Path::new("/dev").join(d);
        fs::create_dir(&to).map_err(io_at("cannot create", &to))?;
        mount(&["--rbind", &format!("{real_s}/{d}"), path_str(&to)?])?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let at = Path::new("/dev").join(link);
        std::os::unix::fs::symlink(target, &at).map_err(io_at("cannot create", &at))?;
    }
    // The real /dev stays reachable only through the nodes bound above.
    mount(&["--make-rprivate", real_s])?;
    let out = Command::new("umount")
        .args(["-l", real_s])
        .output()
        .map_err(io("cannot run umount"))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "umount -l {real_s} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }

    let sock = std::os::unix::net::UnixDatagram::bind("/dev/log")
        .map_err(io("cannot bind the syslog sink at /dev/log"))?;
    fs::set_permissions("/dev/log", fs::Permissions::from_mode(0o666))
        .map_err(io("cannot chmod /dev/log"))?;
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    thread::Builder::new()
        .name("syslog-sink".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while sock.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        })
        .map_err(io("cannot start the syslog sink"))?;
    Ok(count)
}

/// A private dbus-daemon configured like the tests' (scripts/bus-config.sh).
pub struct Bus {
    child: Option<Child>,
    pub address: String,
}

impl Bus {
    pub fn start(paths: &Paths, dir: &Path) -> Result<Bus> {
        fs::create_dir_all(dir).map_err(io_at("cannot create", dir))?;
        let script = paths.repo.join("scripts").join("bus-config.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(dir)
            .output()
            .map_err(io_at("cannot run", &script))?;
        if !out.status.success() {
            return Err(Error::Setup(format!(
                "scripts/bus-config.sh failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let conf = dir.join("bus.conf");
        fs::write(&conf, &out.stdout).map_err(io_at("cannot write", &conf))?;
        let address = format!("unix:path={}", dir.join("bus").display());
        let log = dir.join("dbus-daemon.log");
        let child = spawn_logged(
            Command::new("dbus-daemon")
                .arg("--nofork")
                .arg("--nopidfile")
                .arg(format!("--config-file={}", conf.display())),
            &log,
        )?;
        let mut bus = Bus {
            child: Some(child),
            address,
        };
        let address = bus.address.clone();
        wait_for_name(&mut bus.child, &address, "org.freedesktop.DBus", &log)?;
        Ok(bus)
    }
}

impl Bus {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }
}

/// The real mfad, release build, on one private bus.
pub struct Mfad {
    child: Option<Child>,
    mfad: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub address: String,
    /// `socket:DIR/login.socket`, mfad's login socket as the clients name it.
    pub socket: String,
    pub state_dir: PathBuf,
}

impl Mfad {
    /// Writes DIR/mfad.toml (stock settings: window 1, optional policy,
    /// lockout 5 in 15 minutes; the audit log to syslog, as installed) and
    /// starts mfad; its own output goes to DIR/mfad.log.
    pub fn start(paths: &Paths, dir: &Path, bus: &Bus) -> Result<Mfad> {
        Mfad::start_with(paths, dir, bus, "", "")
    }

    /// [`Mfad::start`] with `daemon` lines added to `[daemon]` (the fleet's
    /// `key_file`) and `extra` appended to its config (a `[store]`).
    pub fn start_with(
        paths: &Paths,
        dir: &Path,
        bus: &Bus,
        daemon: &str,
        extra: &str,
    ) -> Result<Mfad> {
        fs::create_dir_all(dir).map_err(io_at("cannot create", dir))?;
        let state_dir = dir.join("state");
        let config = dir.join("mfad.toml");
        let toml = format!(
            "# written by mfa-bench\n\
             [daemon]\n\
             bus = {bus}\n\
             state_dir = {state}\n\
             login_socket = {socket}\n\
             issuer = \"mfa-bench\"\n\
             log = \"syslog\"\n\
             {daemon}\
             [policy]\n\
             mode = \"optional\"\n\
             [totp]\n\
             window = 1\n\
             [lockout]\n\
             max_failures = 5\n\
             duration = \"15m\"\n",
            bus = toml_str(&bus.address),
            state = toml_str(&state_dir.to_string_lossy()),
            socket = toml_str(&dir.join("login.socket").to_string_lossy()),
        );
        fs::write(&config, format!("{toml}{extra}")).map_err(io_at("cannot write", &config))?;
        let mut m = Mfad {
            child: None,
            mfad: paths.mfad.clone(),
            config,
            log: dir.join("mfad.log"),
            address: bus.address.clone(),
            socket: format!("socket:{}", dir.join("login.socket").display()),
            state_dir,
        };
        m.launch()?;
        Ok(m)
    }

    fn launch(&mut self) -> Result<()> {
        let child = spawn_logged(
            Command::new(&self.mfad)
                .arg("--config")
                .arg(&self.config)
                .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
                .env_remove("DBUS_SESSION_BUS_ADDRESS"),
            &self.log,
        )?;
        self.child = Some(child);
        let address = self.address.clone();
        wait_for_name(&mut self.child, &address, mfa_api::BUS_NAME, &self.log)?;
        // The socket is bound just after the name is owned.
        let path = PathBuf::from(self.socket.trim_start_matches("socket:"));
        let start = std::time::Instant::now();
        while !path.exists() {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                return Err(Error::Setup(format!(
                    "mfad made no login socket at {}",
                    path.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    }

    /// Stops and starts mfad: its login sessions (memory only) are gone,
    /// its state (the database) stays.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
        self.launch()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }

    /// (VmRSS, VmHWM) in bytes, from /proc.
    pub fn memory(&self) -> Result<(u64, u64)> {
        let pid = self
            .pid()
            .ok_or_else(|| Error::Setup("mfad is not running".into()))?;
        let path = PathBuf::from(format!("/proc/{pid}/status"));
        let status = fs::read_to_string(&path).map_err(io_at("cannot read", &path))?;
        let field = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss), Some(hwm)) => Ok((rss, hwm)),
            _ => Err(Error::Protocol(format!(
                "no VmRSS/VmHWM in {}",
                path.display()
            ))),
        }
    }

    /// Bytes of the database and its WAL.
    pub fn db_bytes(&self) -> u64 {
        ["mfad.db", "mfad.db-wal"]
            .iter()
            .filter_map(|f| fs::metadata(self.state_dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Drop for Mfad {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_at("cannot open", log))?;
    let f2 = f.try_clone().map_err(io_at("cannot dup", log))?;
    cmd.stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .map_err(|e| Error::Setup(format!("cannot start {:?}: {e}", cmd.get_program())))
}

/// Waits until `name` has an owner on `address`, or fails with the log.
fn wait_for_name(child: &mut Option<Child>, address: &str, name: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                *child = None;
                return Err(Error::Setup(format!(
                    "{name}'s process exited during startup ({status}); its log:\n{}",
                    tail(log)
                )));
            }
        }
        let last = match name_has_owner(address, name) {
            Ok(true) => return Ok(()),
            Ok(false) => format!("{name} has no owner yet"),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(Error::Setup(format!(
                "{name} did not appear on {address} within {START_TIMEOUT:?} ({last}); log:\n{}",
                tail(log)
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn name_has_owner(address: &str, name: &str) -> std::result::Result<bool, String> {
    zbus::block_on(async {
        let conn = mfa_api::connect(address).await.map_err(|e| e.to_string())?;
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        let name = zbus::names::BusName::try_from(name).map_err(|e| e.to_string())?;
        dbus.name_has_owner(name).await.map_err(|e| e.to_string())
    })
}

/// The last lines of a log, for an error message.
pub fn tail(log: &Path) -> String {
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM, up to 5 s, then SIGKILL; never fails (runs from Drop).
pub fn terminate(mut child: Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Writes a file readable by root only (Google Authenticator's state files).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(io_at("cannot create", path))?;
    f.write_all(contents.as_bytes())
        .map_err(io_at("cannot write", path))
}

/// CPU time (user + system) that process `pid` used so far, in ns; 0 if
/// it cannot be read.
pub fn cpu_ns(pid: u32) -> u64 {
    ticks_to_ns(stat_ticks(&format!("/proc/{pid}/stat"), false))
}

/// utime + stime of the process whose stat file is `path`, in clock ticks,
/// with `children`: plus the times of the children it waited for (cutime,
/// cstime); 0 if it cannot be read.
fn stat_ticks(path: &str, children: bool) -> u64 {
    fs::read_to_string(path).map_or(0, |stat| ticks_in_stat(&stat, children))
}

/// [`stat_ticks`] of the text of a stat file.
fn ticks_in_stat(stat: &str, children: bool) -> u64 {
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let own = ticks(11) + ticks(12);
    if children {
        own + ticks(13) + ticks(14)
    } else {
        own
    }
}

/// CPU time that the processes in /proc used so far, with the children
/// they waited for, in ns. The benchmark runs in a PID namespace of its
/// own with its own /proc: these are all its processes, and only those.
pub fn namespace_cpu_ns() -> u64 {
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let ticks = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| stat_ticks(&format!("/proc/{pid}/stat"), true))
        .sum();
    ticks_to_ns(ticks)
}

/// Busy CPU time of the whole machine so far (every CPU: user, nice,
/// system, interrupts, and the time the hypervisor gave other guests), in
/// ns; 0 if /proc/stat cannot be read.
pub fn machine_busy_ns() -> u64 {
    fs::read_to_string("/proc/stat").map_or(0, |stat| ticks_to_ns(busy_ticks(&stat)))
}

/// The busy clock ticks of all CPUs in the text of /proc/stat.
fn busy_ticks(stat: &str) -> u64 {
    let Some(cpu) = stat.lines().find_map(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = cpu
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum()
}

fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    ticks * (1_000_000_000 / hz)
}

/// CPU time of this process's children that have been waited for, in ns.
pub fn children_cpu_ns() -> u64 {
    // SAFETY: rusage is plain data; zeroed is a valid value to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_usec).unwrap_or(0) * 1000
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A private PostgreSQL server (Debian's binaries) with its data on disk in
/// DIR/data, durable as installed (fsync on), on a unix socket in DIR/sock
/// only (not in the data directory: that is postgres's, mode 0700, and
/// mfad keeps no capability to pass it).
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
}

impl Postgres {
    pub fn start(dir: &Path) -> Result<Postgres> {
        let mut bins: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .map_err(io("PostgreSQL is not installed (scripts/install-deps.sh)"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins
            .pop()
            .ok_or_else(|| Error::Setup("no /usr/lib/postgresql/*/bin/initdb".into()))?;
        let data = dir.join("data");
        fs::create_dir_all(&data).map_err(io_at("cannot create", &data))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(io_at("cannot chmod", dir))?;
        let sock = dir.join("sock");
        fs::create_dir_all(&sock).map_err(io_at("cannot create", &sock))?;
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o755))
            .map_err(io_at("cannot chmod", &sock))?;
        let pg = Postgres { bin, data, sock };
        for d in [&pg.data, &pg.sock] {
            pg.run("chown", &["postgres:postgres", path_str(d)?], false)?;
        }
        let initdb = pg.bin.join("initdb");
        pg.run(
            path_str(&initdb)?,
            &[
                "--auth=trust",
                "--username=postgres",
                "--locale=C",
                "-D",
                path_str(&pg.data)?,
            ],
            true,
        )?;
        let pg_ctl = pg.bin.join("pg_ctl");
        let log = pg.data.join("server.log");
        let opts = format!(
            "-k {} -c listen_addresses= -c max_connections=100",
            pg.sock.display()
        );
        pg.run(
            path_str(&pg_ctl)?,
            &[
                "-D",
                path_str(&pg.data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &opts,
                "-w",
                "start",
            ],
            true,
        )?;
        let psql = pg.bin.join("psql");
        pg.run(
            path_str(&psql)?,
            &[
                "-h",
                path_str(&pg.sock)?,
                "-U",
                "postgres",
                "-qc",
                "CREATE DATABASE mfa",
            ],
            false,
        )?;
        Ok(pg)
    }

    fn run(&self, program: &str, args: &[&str], as_postgres: bool) -> Result<()> {
        let mut cmd = if as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
                program,
            ]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(io("cannot run a PostgreSQL tool"))?;
        if !out.status.success() {
            return Err(Error::Setup(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// `[store]` for an mfad on this server.
    /// `[daemon]` lines for each mfad on this database: one key file for
    /// them all (the first makes it), as every host of a fleet must share.
    pub fn daemon_toml(&self) -> String {
        format!(
            "key_file = {}\n",
            toml_str(&self.data.with_file_name("fleet.key").to_string_lossy())
        )
    }

    pub fn store_toml(&self) -> String {
        format!(
            "[store]\nbackend = \"postgres\"\nurl = {}\npool_size = 16\n",
            toml_str(&format!(
                "host={} user=postgres dbname=mfa",
                self.sock.display()
            ))
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        if let (Ok(ctl), Ok(data)) = (path_str(&pg_ctl), path_str(&self.data)) {
            let _ = self.run(ctl, &["-D", data, "-m", "immediate", "-w", "stop"], true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  10 2 30 1000 50 4 5 6 7 0\ncpu0 5 1 15 500 25 2 2 3 3 0\nintr 1\n";
        assert_eq!(busy_ticks(stat), 10 + 2 + 30 + 4 + 5 + 6);
        assert_eq!(busy_ticks("intr 1\n"), 0);
    }

    #[test]
    fn stat_ticks_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 20 11 20 0 1 0 5 0 0";
        assert_eq!(ticks_in_stat(stat, false), 7 + 3);
        assert_eq!(ticks_in_stat(stat, true), 7 + 3 + 20 + 11);
        assert_eq!(ticks_in_stat("garbage", true), 0);
    }
}
