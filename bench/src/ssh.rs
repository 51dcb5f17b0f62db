//! Target 6: full SSH logins through the real OpenSSH server and client.
//!
//! Three private sshd on 127.0.0.1, one per PAM service (sshd takes its
//! service name from its program name, so each runs through a symlink to
//! /usr/sbin/sshd), all from one sshd_config and one host key; they differ
//! only in their port and in `AuthenticationMethods`:
//!
//! - the floor: `publickey` alone (PAM's account and session phases only);
//! - `publickey,keyboard-interactive` with pam_google_authenticator;
//! - `publickey,keyboard-interactive` with pam_mfa on the login socket
//!   (`auth` and `account required pam_mfa.so`).
//!
//! Each login is `ssh USER@127.0.0.1 true`, a new ssh process offering the
//! benchmark's key, then answering the code prompt through an SSH_ASKPASS
//! script; it is timed from starting ssh to its exit.
//!
//! Everything is the benchmark's own: the config, the host and client keys
//! and the logs in the temp dir; the authorized_keys file in the
//! namespace's copy of /etc (sshd's StrictModes refuses one below a
//! world-writable directory such as /var/tmp); the PAM services in its
//! /etc/pam.d. Only sshd's privilege separation directory is the host's
//! /run/sshd, which sshd only chroots into; when the host has none, the
//! namespace gets a tmpfs /run of its own with one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{io, io_at, Error, Result};
use crate::pool::{Ticket, User};
use crate::stats::Tally;
use crate::totp;
use crate::world::{self, Mounts};

/// The code prompt of both modules (pam_mfa's and Google Authenticator's
/// both begin so), as ssh passes it to the askpass program.
const CODE_PROMPT: &str = "Verification code";
/// How long one login may take before it is killed and counted failed.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The environment variable that hands the askpass script its answer.
const CODE_VAR: &str = "MFA_BENCH_CODE";
/// Where the authorized_keys file goes, in the namespace's /etc.
const ETC_DIR: &str = "/etc/mfa-bench-ssh";

/// One way to log in: a PAM service and sshd's methods for it.
pub struct Method {
    /// The PAM service, and sshd's program name.
    pub service: &'static str,
    /// `auth` and `account` lines (`session required pam_permit.so` is
    /// added to every service).
    pub stack: String,
    /// Whether a code is asked after the key.
    pub code: bool,
}

/// A running private sshd.
struct Sshd {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    service: &'static str,
    code: bool,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            world::terminate(c);
        }
    }
}

/// The three servers and what the client needs.
pub struct Bench {
    servers: Vec<Sshd>,
    key: PathBuf,
    askpass: PathBuf,
}

impl Bench {
    /// Writes the config, keys and PAM services and starts one sshd per
    /// method.
    pub fn start(dir: &Path, mounts: &Mounts, methods: Vec<Method>) -> Result<Bench> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.is_file() || !Path::new("/usr/bin/ssh").is_file() {
            return Err(Error::Setup(
                "sshd or ssh is missing: install openssh-server and openssh-client \
                 (scripts/install-deps.sh does)"
                    .into(),
            ));
        }
        privsep_dir()?;
        let dir = dir.join("ssh");
        fs::create_dir(&dir).map_err(io_at("cannot create", &dir))?;
        let host_key = dir.join("host_ed25519");
        let key = dir.join("client_ed25519");
        for k in [&host_key, &key] {
            keygen(k)?;
        }
        let public = fs::read_to_string(key.with_extension("pub"))
            .map_err(io_at("cannot read", &key.with_extension("pub")))?;
        let etc = Path::new(ETC_DIR);
        fs::create_dir(etc).map_err(io_at("cannot create", etc))?;
        fs::set_permissions(etc, fs::Permissions::from_mode(0o755))
            .map_err(io_at("cannot chmod", etc))?;
        let authorized = etc.join("authorized_keys");
        fs::write(&authorized, public).map_err(io_at("cannot write", &authorized))?;
        fs::set_permissions(&authorized, fs::Permissions::from_mode(0o644))
            .map_err(io_at("cannot chmod", &authorized))?;

        // One config for every server; the command line adds the port and
        // the methods. VERBOSE, for "Server listening on", the one sign
        // that this sshd (and not another process) has the port.
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "# written by mfa-bench\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile {}\n\
                 PermitRootLogin no\n\
                 StrictModes yes\n\
                 UseDNS no\n\
                 LogLevel VERBOSE\n\
                 PrintMotd no\n\
                 PrintLastLog no\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .map_err(io_at("cannot write", &config))?;

        let askpass = dir.join("askpass");
        fs::write(&askpass, askpass_script()).map_err(io_at("cannot write", &askpass))?;
        fs::set_permissions(&askpass, fs::Permissions::from_mode(0o755))
            .map_err(io_at("cannot chmod", &askpass))?;

        let mut servers = Vec::with_capacity(methods.len());
        for m in methods {
            mounts.pam_service(
                m.service,
                &format!("{}\nsession required pam_permit.so", m.stack),
            )?;
            let program = dir.join(m.service);
            std::os::unix::fs::symlink(sshd, &program)
                .map_err(io_at("cannot make the symlink", &program))?;
            let auth = if m.code {
                "publickey,keyboard-interactive"
            } else {
                "publickey"
            };
            servers.push(start_sshd(
                &program, &config, auth, &dir, m.service, m.code,
            )?);
        }
        Ok(Bench {
            servers,
            key,
            askpass,
        })
    }

    /// `logins` logins with each method, interleaved (the order rotates
    /// each round), after `warmup` untimed ones each. Code logins take
    /// their users from `tickets[k]` (the k-th method's, in order); the
    /// floor logs in as `users[0]`. One tally per method.
    pub fn run(
        &self,
        users: &[User],
        tickets: &[Vec<Ticket>],
        logins: usize,
        warmup: usize,
    ) -> Result<Vec<Tally>> {
        let n = self.servers.len();
        let mut tallies = vec![Tally::default(); n];
        let mut next = vec![0usize; n];
        for round in 0..warmup + logins {
            for k in 0..n {
                let s = (k + round) % n;
                let timed = round >= warmup;
                let ticket = if self.servers[s].code {
                    let t = tickets.get(s).and_then(|t| t.get(next[s])).copied();
                    next[s] += 1;
                    match t {
                        Some(t) => Some(t),
                        None => {
                            return Err(Error::Setup(format!(
                                "no user left for SSH login {} through {}",
                                next[s], self.servers[s].service
                            )))
                        }
                    }
                } else {
                    None
                };
                self.login(s, users, ticket, timed, &mut tallies[s]);
            }
        }
        Ok(tallies)
    }

    /// Before measuring: a login with a wrong code must be refused by
    /// each code method, or the benchmark would not measure a verification.
    /// It uses the last user of each method's tickets, one more than
    /// [`Bench::run`] takes.
    pub fn check_refusal(&self, users: &[User], tickets: &[Vec<Ticket>]) -> Result<()> {
        for (s, server) in self.servers.iter().enumerate() {
            if !server.code {
                continue;
            }
            let t = tickets
                .get(s)
                .and_then(|t| t.last())
                .ok_or_else(|| Error::Setup(format!("no user for {}", server.service)))?;
            let u = &users[t.idx];
            // A code of a step far from now (none of the codes the window
            // could accept).
            let now = totp::now_step();
            let valid: Vec<String> = (now.saturating_sub(4)..=now + 4)
                .map(|st| totp::code(&u.secret, st))
                .collect();
            let wrong = (1000..)
                .map(|k| totp::code(&u.secret, now + k))
                .find(|c| !valid.contains(c))
                .unwrap_or_default();
            let out = self.ssh(server, &u.name, Some(&wrong))?;
            if out.ok {
                return Err(Error::Protocol(format!(
                    "an SSH login through {} with a wrong code succeeded: \
                     the benchmark would not measure a verification",
                    server.service
                )));
            }
        }
        Ok(())
    }

    fn login(
        &self,
        s: usize,
        users: &[User],
        ticket: Option<Ticket>,
        timed: bool,
        tally: &mut Tally,
    ) {
        let server = &self.servers[s];
        let (name, code, step) = match ticket {
            Some(t) => {
                let u = &users[t.idx];
                let Some(step) = t.step() else {
                    tally.fail(format!("{}: no usable step left", u.name));
                    return;
                };
                (
                    &u.name,
                    Some(totp::code(&u.secret, step)),
                    Some((t.idx, step)),
                )
            }
            None => match users.first() {
                Some(u) => (&u.name, None, None),
                None => {
                    tally.fail("no user".into());
                    return;
                }
            },
        };
        match self.ssh(server, name, code.as_deref()) {
            Ok(out) if out.ok => {
                if timed {
                    tally.samples_ns.push(out.ns);
                }
                tally.done_at_ns.push(crate::mono_ns());
                tally.ok += 1;
                if let Some(used) = step {
                    tally.used.push(used);
                }
            }
            Ok(out) => tally.fail(format!(
                "ssh {name}@127.0.0.1 through {}: {}; sshd's log:\n{}",
                server.service,
                out.why,
                world::tail(&server.log)
            )),
            Err(e) => tally.fail(e.to_string()),
        }
    }

    /// One `ssh USER@127.0.0.1 true` to `server`, answering the code
    /// prompt with `code`.
    fn ssh(&self, server: &Sshd, user: &str, code: Option<&str>) -> Result<Outcome> {
        let mut cmd = Command::new("/usr/bin/ssh");
        cmd.arg("-p")
            .arg(server.port.to_string())
            .args(["-F", "/dev/null", "-T"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-o", "IdentityAgent=none"])
            .arg("-o")
            .arg(format!("IdentityFile={}", self.key.display()))
            .args([
                "-o",
                "PreferredAuthentications=publickey,keyboard-interactive",
            ])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(["-o", "ConnectTimeout=10"])
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(c) = code {
            cmd.env(CODE_VAR, c);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(io("cannot start ssh"))?;
        let pid = child.id();
        // A watchdog kills an ssh that hangs; the login is timed by a
        // blocking wait, not by polling.
        let (done, watch) = mpsc::channel::<()>();
        let status = std::thread::scope(|sc| {
            sc.spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(LOGIN_TIMEOUT) {
                    if let Ok(p) = i32::try_from(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            });
            let status = child.wait();
            let _ = done.send(());
            status
        })
        .map_err(io("cannot wait for ssh"))?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        let ok = status.success();
        let why = if start.elapsed() >= LOGIN_TIMEOUT {
            format!("killed after {LOGIN_TIMEOUT:?}")
        } else {
            format!("{status}: {}", err.trim())
        };
        Ok(Outcome { ok, ns, why })
    }
}

/// What one ssh run did.
struct Outcome {
    /// Exit 0: logged in and ran `true`.
    ok: bool,
    ns: u64,
    why: String,
}

/// The askpass program: the code for the code prompt, nothing (and a
/// failure, so that the login fails) for any other.
fn askpass_script() -> String {
    format!(
        "#!/bin/sh\n\
         # written by mfa-bench: answers the code prompt of one SSH login\n\
         case \"$1\" in\n\
         *'{CODE_PROMPT}'*) printf '%s\\n' \"${CODE_VAR}\" ;;\n\
         *) exit 1 ;;\n\
         esac\n"
    )
}

/// sshd needs /run/sshd (root's, not writable by others) to chroot its
/// unprivileged child into. The host's is used as it is; without one the
/// namespace gets a tmpfs /run of its own, so that none is made on the host.
fn privsep_dir() -> Result<()> {
    let dir = Path::new("/run/sshd");
    if dir.is_dir() {
        return Ok(());
    }
    world::tmpfs(Path::new("/run"))?;
    fs::create_dir(dir).map_err(io_at("cannot create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_at("cannot chmod", dir))
}

/// An ed25519 key pair without a passphrase at `path` (and `path`.pub).
fn keygen(path: &Path) -> Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mfa-bench", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(io("cannot run ssh-keygen"))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Starts `program` (a symlink to sshd) on a free port of 127.0.0.1 and
/// waits until it listens; tries another port when one is taken meanwhile.
fn start_sshd(
    program: &Path,
    config: &Path,
    methods: &str,
    dir: &Path,
    service: &'static str,
    code: bool,
) -> Result<Sshd> {
    let mut last = String::new();
    for attempt in 0..10 {
        let port = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(io("cannot find a free port on 127.0.0.1"))?
            .port();
        let log = dir.join(format!("{service}-{attempt}.log"));
        let child = Command::new(program)
            .arg("-D")
            .arg("-f")
            .arg(config)
            .arg("-E")
            .arg(&log)
            .arg("-p")
            .arg(port.to_string())
            .arg("-o")
            .arg(format!("AuthenticationMethods={methods}"))
            .args(["-o", "PidFile=none"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_at("cannot start", program))?;
        let mut s = Sshd {
            child: Some(child),
            port,
            log,
            service,
            code,
        };
        match wait_listening(&mut s) {
            Ok(()) => return Ok(s),
            Err(why) if why.contains("Address already in use") => last = why,
            Err(why) => {
                return Err(Error::Setup(format!(
                    "{service}: sshd did not start: {why}"
                )))
            }
        }
    }
    Err(Error::Setup(format!(
        "{service}: sshd found no free port in 10 tries: {last}"
    )))
}

/// Until sshd's log says it listens; Err with its log when it exits first
/// or takes too long.
fn wait_listening(s: &mut Sshd) -> std::result::Result<(), String> {
    let want = format!("Server listening on 127.0.0.1 port {}.", s.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if fs::read_to_string(&s.log).is_ok_and(|l| l.contains(&want)) {
            return Ok(());
        }
        let exited = match s.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            _ => None,
        };
        if exited.is_some() || Instant::now() >= deadline {
            if exited.is_some() {
                s.child = None;
            }
            return Err(format!(
                "{}; its log:\n{}",
                exited.map_or("not listening after 20 s".into(), |e| format!(
                    "exited ({e})"
                )),
                world::tail(&s.log)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
