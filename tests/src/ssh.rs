//! The real OpenSSH server and client: a private sshd on 127.0.0.1 with its
//! own config, host key, port and PAM service, and `ssh` answering
//! keyboard-interactive prompts through an SSH_ASKPASS script.
//!
//! ```no_run
//! use mfa_tests::ssh::{SshOpts, SshSetup};
//! use mfa_tests::{Clock, Env};
//! let env = Env::new();
//! let alice = env.add_login_user(None);
//! let dev = env.enroll_raw(&alice);
//! let key = env.ssh_key();
//! let sshd = env.sshd(SshSetup::key_then_code(&env));
//! sshd.authorize(&alice, &[&key]);
//! let code = Clock::now().code(&dev.secret, 0);
//! let r = sshd.ssh(&alice, &SshOpts { key: Some(&key), codes: vec![code], ..SshOpts::default() });
//! r.assert_logged_in();
//! ```
//!
//! Facts this lives with (OpenSSH 9.2, Debian 12):
//! - sshd takes its PAM service name from its program name, so it is started
//!   through a symlink `DIR/sshd-mfat<random>` -> /usr/sbin/sshd, by
//!   absolute path (sshd re-executes itself), with /etc/pam.d/<that name>;
//! - sshd needs /run/sshd (its privilege separation directory);
//! - sshd clears the environment of PAM, so the bus address goes to the
//!   module as `bus=`;
//! - with StrictModes (the default, kept on as in production) sshd refuses
//!   an authorized_keys file below a group- or world-writable directory
//!   such as /tmp, so the key files live in /run/mfa-test-<random>/ (root,
//!   0755), not in the Env's temp dir;
//! - ssh without a terminal reads answers from SSH_ASKPASS when
//!   SSH_ASKPASS_REQUIRE=force; it shows keyboard-interactive prompts as
//!   "(user@host) <PAM messages and prompt>".

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::bus::{read_lossy, terminate, START_TIMEOUT};
use crate::proc::{Cmd, Output};
use crate::{paths, random_letters, Env, User};

/// The remote command the tests run after logging in, and what it prints.
pub const REMOTE_COMMAND: &str = "echo mfa-ok";
pub const REMOTE_OUTPUT: &str = "mfa-ok";

/// The code prompt as the ssh client sees it (inside the askpass prompt).
pub const CODE_PROMPT: &str = "Verification code";
/// The prompts of an enrollment at login (pam_mfa's `Code 1: `, `Code 2: `),
/// answered like code prompts.
pub const ENROLL_CODE_PROMPTS: [&str; 2] = ["Code 1: ", "Code 2: "];

/// Whether the askpass script answers `prompt` as a code prompt.
fn is_code_prompt(prompt: &str) -> bool {
    prompt.contains(CODE_PROMPT) || ENROLL_CODE_PROMPTS.iter().any(|p| prompt.ends_with(p))
}

fn sshd_bin() -> PathBuf {
    let p = PathBuf::from("/usr/sbin/sshd");
    assert!(
        p.is_file(),
        "\n\n*** /usr/sbin/sshd is not installed. The SSH tests run the real OpenSSH \
         server: install the Debian package `openssh-server` (scripts/install-deps.sh does). ***\n"
    );
    p
}

fn ssh_bin() -> PathBuf {
    let p = PathBuf::from("/usr/bin/ssh");
    assert!(
        p.is_file(),
        "\n\n*** /usr/bin/ssh is not installed. The SSH tests run the real OpenSSH \
         client: install the Debian package `openssh-client` (scripts/install-deps.sh does). ***\n"
    );
    p
}

fn ssh_keygen() -> PathBuf {
    paths::tool("ssh-keygen", "openssh-client")
}

/// One sshd setup: `AuthenticationMethods` and the PAM stacks of its
/// service file. Public key and password authentication are on when the
/// methods name them.
#[derive(Debug, Clone)]
pub struct SshSetup {
    pub methods: String,
    /// `auth` lines of the PAM service.
    pub auth: String,
    /// `account` lines of the PAM service.
    pub account: String,
    /// `session` lines of the PAM service.
    pub session: String,
}

impl SshSetup {
    /// Any methods and stacks. The account stack defaults to pam_unix
    /// alone, as Debian's common-account.
    pub fn new(methods: &str, auth: &str) -> SshSetup {
        SshSetup {
            methods: methods.into(),
            auth: auth.into(),
            account: "account required pam_unix.so".into(),
            session: "session required pam_permit.so".into(),
        }
    }

    /// Replaces the `session` lines.
    pub fn session(mut self, lines: &str) -> SshSetup {
        self.session = lines.into();
        self
    }

    /// Replaces the `account` lines.
    pub fn account(mut self, lines: &str) -> SshSetup {
        self.account = lines.into();
        self
    }

    /// The code as the credential of keyboard-interactive, the only method:
    ///
    /// ```text
    /// auth required pam_mfa.so bus=...
    /// auth optional pam_permit.so
    /// ```
    ///
    /// pam_mfa decides whenever it has an opinion: a right code succeeds,
    /// a wrong one fails the `required` line, and an `optional` module
    /// cannot undo that. Only when it steps aside (PAM_IGNORE: user not
    /// enrolled, policy optional) is the `optional` pam_permit the one
    /// result left, and the user gets in. Without a second module an
    /// unenrolled user would be refused (every module ignored =
    /// PAM_PERM_DENIED), and `sufficient pam_permit` placed before pam_mfa
    /// would let everyone in without a code. pam_permit stands in for the
    /// first factor a real site keeps in front (see
    /// [`SshSetup::password_then_code`] and [`SshSetup::key_then_code`]);
    /// on its own this setup lets unenrolled users in with nothing, which
    /// is what a test of the keyboard-interactive path alone needs.
    pub fn kbd_int(env: &Env) -> SshSetup {
        SshSetup::new(
            "keyboard-interactive",
            &format!(
                "auth required {}\nauth optional pam_permit.so",
                env.pam_module_spec()
            ),
        )
    }

    /// `AuthenticationMethods publickey,keyboard-interactive`: the key is
    /// the first factor (sshd checks it before PAM runs), the code the
    /// second; same stack as [`SshSetup::kbd_int`], so unenrolled users get
    /// in on their key alone under policy optional.
    pub fn key_then_code(env: &Env) -> SshSetup {
        SshSetup {
            methods: "publickey,keyboard-interactive".into(),
            ..SshSetup::kbd_int(env)
        }
    }

    /// Password, then code, in one keyboard-interactive exchange:
    ///
    /// ```text
    /// auth required pam_unix.so nodelay
    /// auth required pam_mfa.so bus=...
    /// ```
    ///
    /// Both `required`: a wrong password still goes on to the code prompt,
    /// so the client cannot tell which of the two was wrong, and neither
    /// line alone can let the user in (`sufficient` on either would).
    /// `nodelay` only skips pam_unix's 2 s delay after a failure, to keep
    /// the suite fast.
    pub fn password_then_code(env: &Env) -> SshSetup {
        SshSetup::new(
            "keyboard-interactive",
            &format!(
                "auth required pam_unix.so nodelay\nauth required {}",
                env.pam_module_spec()
            ),
        )
    }

    /// `AuthenticationMethods publickey` only: PAM auth never runs (sshd
    /// does only account and session with PAM), so only an account-phase
    /// guard can stop an enrolled user:
    ///
    /// ```text
    /// account required pam_unix.so
    /// account required pam_mfa.so bus=...
    /// ```
    pub fn key_only_with_account_guard(env: &Env) -> SshSetup {
        SshSetup::new("publickey", "auth required pam_deny.so").account(&account_guard(env))
    }
}

/// `account required pam_unix.so` + `account required pam_mfa.so bus=...`.
pub fn account_guard(env: &Env) -> String {
    format!(
        "account required pam_unix.so\naccount required {}",
        env.pam_module_spec()
    )
}

/// An ed25519 key pair made with ssh-keygen (no passphrase), private key
/// 0600 in the Env's temp dir.
#[derive(Debug, Clone)]
pub struct SshKey {
    pub path: PathBuf,
    /// The `.pub` line: `ssh-ed25519 AAAA... comment`.
    pub public: String,
    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// A free TCP port on 127.0.0.1 right now (the kernel picks it; another
/// process may take it before sshd binds, so [`Sshd`] retries).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A private sshd. Dropping it stops sshd and removes its PAM service file
/// and key directory.
pub struct Sshd {
    /// Program and PAM service name: `sshd-mfat<random>`.
    pub name: String,
    pub port: u16,
    dir: PathBuf,
    keys_dir: PathBuf,
    pam_file: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Env {
    /// Starts a private sshd for `setup`; see [`Sshd`].
    pub fn sshd(&self, setup: SshSetup) -> Sshd {
        Sshd::start(self.dir(), &setup)
    }

    /// A new key pair for the ssh client.
    pub fn ssh_key(&self) -> SshKey {
        let dir = self.dir().join("client-keys");
        std::fs::create_dir_all(&dir).expect("create client-keys");
        let name = format!("id-{}", random_letters(8));
        let path = dir.join(&name);
        Cmd::new(ssh_keygen())
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &name, "-f"])
            .arg(&path)
            .run()
            .assert_success();
        let pub_path = path.with_extension("pub");
        let public = std::fs::read_to_string(&pub_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", pub_path.display()))
            .trim()
            .to_string();
        let fingerprint = key_fingerprint(&pub_path);
        SshKey {
            path,
            public,
            fingerprint,
        }
    }
}

/// `ssh-keygen -lf FILE`'s fingerprint (`SHA256:...`).
pub fn key_fingerprint(pub_path: &Path) -> String {
    let out = Cmd::new(ssh_keygen()).arg("-lf").arg(pub_path).run();
    out.assert_success();
    out.stdout
        .split_whitespace()
        .nth(1)
        .filter(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("ssh-keygen -lf printed no SHA256 fingerprint:\n{out}"))
        .to_string()
}

impl Sshd {
    fn start(env_dir: &Path, setup: &SshSetup) -> Sshd {
        let real = sshd_bin();
        ssh_bin();
        let id = random_letters(10);
        let name = format!("sshd-mfat{id}");
        let dir = env_dir.join(&name);
        std::fs::create_dir(&dir).expect("create sshd dir");

        // The privilege separation directory; sshd refuses to start
        // without it. Root-owned, not group/world-writable.
        let privsep = Path::new("/run/sshd");
        std::fs::create_dir_all(privsep).expect("create /run/sshd");
        std::fs::set_permissions(privsep, std::fs::Permissions::from_mode(0o755))
            .expect("chmod /run/sshd");

        let keys_dir = PathBuf::from(format!("/run/mfa-test-{id}"));
        std::fs::create_dir(&keys_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", keys_dir.display()));
        std::fs::set_permissions(&keys_dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod keys dir");

        let host_key = dir.join("host_ed25519");
        Cmd::new(ssh_keygen())
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .run()
            .assert_success();

        let pam_file = Path::new("/etc/pam.d").join(&name);
        std::fs::write(
            &pam_file,
            format!(
                "# written by mfa-tests for {name}\n{}\n{}\n{}\n",
                setup.auth.trim_end(),
                setup.account.trim_end(),
                setup.session.trim_end()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", pam_file.display()));

        let program = dir.join(&name);
        std::os::unix::fs::symlink(&real, &program).expect("symlink to /usr/sbin/sshd");

        let mut sshd = Sshd {
            name,
            port: 0,
            dir,
            keys_dir,
            pam_file,
            log: PathBuf::new(),
            child: Mutex::new(None),
        };
        // Retry with another port if one was taken between free_port() and
        // sshd's bind (parallel tests).
        for attempt in 0..10 {
            let port = free_port();
            let config = sshd.dir.join("sshd_config");
            std::fs::write(&config, sshd.config(setup, port, &host_key)).expect("sshd_config");
            let log = sshd.dir.join(format!("sshd-{attempt}.log"));
            let stderr = File::create(sshd.dir.join(format!("sshd-{attempt}.stderr")))
                .expect("sshd stderr file");
            let child = Command::new(&program)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .current_dir("/")
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            sshd.port = port;
            sshd.log = log;
            *sshd.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
            match sshd.wait_listening() {
                Ok(()) => return sshd,
                Err(why) if why.contains("Address already in use") => {
                    sshd.kill();
                    continue;
                }
                Err(why) => {
                    sshd.kill();
                    panic!("sshd did not start: {why}");
                }
            }
        }
        panic!("sshd found no free port in 10 tries");
    }

    fn config(&self, setup: &SshSetup, port: u16, host_key: &Path) -> String {
        let on = |method: &str| {
            if setup.methods.contains(method) {
                "yes"
            } else {
                "no"
            }
        };
        let pubkey = on("publickey");
        // The "password" method is on only in the test that shows what it
        // does to the code prompt.
        let password = on("password");
        format!(
            "# written by mfa-tests\n\
             ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {}\n\
             PidFile {}\n\
             UsePAM yes\n\
             KbdInteractiveAuthentication yes\n\
             PasswordAuthentication {password}\n\
             PubkeyAuthentication {pubkey}\n\
             AuthorizedKeysFile {}/%u\n\
             AuthenticationMethods {}\n\
             PermitRootLogin no\n\
             StrictModes yes\n\
             LogLevel VERBOSE\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n",
            host_key.display(),
            self.dir.join("sshd.pid").display(),
            self.keys_dir.display(),
            setup.methods,
        )
    }

    /// Until the log says it listens on our port; Err with the reason
    /// (log and stderr) when sshd exits first or takes too long.
    fn wait_listening(&self) -> Result<(), String> {
        let want = format!("Server listening on 127.0.0.1 port {}.", self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(&want) {
                return Ok(());
            }
            let exited = {
                let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
                match child.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(Some(status))) => Some(status.to_string()),
                    _ => None,
                }
            };
            if exited.is_some() || Instant::now() >= deadline {
                let why = match exited {
                    Some(s) => format!("sshd exited ({s})"),
                    None => format!("sshd was not listening after {START_TIMEOUT:?}"),
                };
                return Err(format!(
                    "{why}\n--- {} ---\n{}\n--- stderr ---\n{}",
                    self.log.display(),
                    read_lossy(&self.log),
                    read_lossy(&self.log.with_extension("stderr"))
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&self) {
        if let Some(c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            terminate(c, "sshd");
        }
    }

    /// sshd (the listener) has not exited.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The listener's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// Where the authorized_keys files are (`%u` in it is the user name).
    pub fn keys_dir(&self) -> &Path {
        &self.keys_dir
    }

    /// What sshd logged so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Lets `keys` log in as `user`: writes the user's authorized_keys
    /// file (root-owned, 0644, in a root-owned 0755 directory: what
    /// StrictModes wants).
    pub fn authorize(&self, user: &User, keys: &[&SshKey]) {
        let path = self.keys_dir.join(&user.name);
        let mut text = String::new();
        for k in keys {
            text.push_str(&k.public);
            text.push('\n');
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod authorized keys");
    }

    /// Runs the ssh client to completion; see [`SshOpts`].
    pub fn ssh(&self, user: &User, opts: &SshOpts<'_>) -> SshOutcome {
        self.spawn_ssh(user, opts, Askpass::Free).finish()
    }

    /// Starts ssh in the background; the askpass script stops at the first
    /// code prompt until [`PendingSsh::release`] (to do something to the
    /// daemon in the middle of a login).
    pub fn ssh_held(&self, user: &User, opts: &SshOpts<'_>) -> PendingSsh {
        self.spawn_ssh(user, opts, Askpass::Hold)
    }

    /// Starts ssh in the background; the askpass script answers each code
    /// prompt only once the test has said what ([`PendingSsh::code_prompt`],
    /// then [`PendingSsh::answer`]), for codes the test learns during the
    /// login (sent by SMS). `opts.codes` is not used.
    pub fn ssh_stepped(&self, user: &User, opts: &SshOpts<'_>) -> PendingSsh {
        self.spawn_ssh(user, opts, Askpass::Stepped)
    }

    fn spawn_ssh(&self, user: &User, opts: &SshOpts<'_>, mode: Askpass) -> PendingSsh {
        let run = self.dir.join(format!("ssh-{}", random_letters(8)));
        std::fs::create_dir(&run).expect("create ssh run dir");
        let codes: String = opts.codes.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(run.join("codes"), codes).expect("write codes");
        if let Some(pw) = opts.password {
            std::fs::write(run.join("password"), format!("{pw}\n")).expect("write password");
        }
        match mode {
            Askpass::Free => {}
            Askpass::Hold => std::fs::write(run.join("hold"), "").expect("write hold"),
            Askpass::Stepped => std::fs::write(run.join("asked"), "0\n").expect("write asked"),
        }
        let askpass = run.join("askpass");
        std::fs::write(&askpass, askpass_script(&run)).expect("write askpass");
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755))
            .expect("chmod askpass");
        // A path that does not exist: with an IdentityFile given, ssh does
        // not fall back to ~/.ssh/id_*, so "no key" means no key.
        let identity = match opts.key {
            Some(k) => k.path.clone(),
            None => run.join("no-key"),
        };
        let cmd = Cmd::new(ssh_bin())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-F", "/dev/null", if opts.tty { "-tt" } else { "-T" }])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-o", "IdentityAgent=none"])
            .arg("-o")
            .arg(format!("IdentityFile={}", identity.display()))
            .arg("-o")
            .arg(format!("PreferredAuthentications={}", opts.preferred))
            .arg("-o")
            .arg(format!("NumberOfPasswordPrompts={}", opts.attempts))
            .args(["-o", "ConnectTimeout=10"])
            .arg(format!("{}@127.0.0.1", user.name))
            .arg(opts.command)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .timeout(opts.timeout);
        let worker = thread::spawn(move || cmd.run());
        PendingSsh {
            run,
            worker: Some(worker),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = std::fs::remove_file(&self.pam_file) {
            eprintln!("mfa-tests: cannot remove {}: {e}", self.pam_file.display());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.keys_dir) {
            eprintln!("mfa-tests: cannot remove {}: {e}", self.keys_dir.display());
        }
    }
}

/// How the askpass script answers code prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Askpass {
    /// From `codes`, at once.
    Free,
    /// From `codes`, the first one after the test releases it.
    Hold,
    /// Each one as the test says, when it says.
    Stepped,
}

/// The askpass script for one ssh run: logs each prompt (ended by an ASCII
/// record separator, since prompts may hold newlines), then answers by its
/// kind: a code prompt gets the next line of `codes` (empty when none is
/// left), a password prompt `password`, anything else an empty line. With
/// `hold` present it waits at a code prompt until `hold` is removed. With
/// `asked` present (stepped) it counts code prompts there and answers the
/// n-th with the file `answer-n` once the test wrote it (an empty line if
/// `done` appears first).
fn askpass_script(run: &Path) -> String {
    let r = run.display().to_string().replace('\'', "'\\''");
    format!(
        r#"#!/bin/sh
# written by mfa-tests: answers ssh's keyboard-interactive prompts
R='{r}'
printf '%s\036' "$1" >> "$R/prompts"
case "$1" in
*'{CODE_PROMPT}'*|*'Code 1: '|*'Code 2: ')
    if [ -e "$R/asked" ]; then
        n=$(( $(cat "$R/asked") + 1 ))
        echo "$n" > "$R/asked"
        while [ ! -e "$R/answer-$n" ] && [ ! -e "$R/done" ]; do sleep 0.02; done
        if [ -e "$R/answer-$n" ]; then cat "$R/answer-$n"; else echo; fi
        exit 0
    fi
    if [ -e "$R/hold" ]; then
        : > "$R/held"
        while [ -e "$R/hold" ]; do sleep 0.02; done
    fi
    if [ -s "$R/codes" ]; then
        head -n 1 "$R/codes"
        tail -n +2 "$R/codes" > "$R/codes.next"
        mv "$R/codes.next" "$R/codes"
    else
        echo
    fi
    ;;
*[Pp]assword*)
    if [ -e "$R/password" ]; then cat "$R/password"; else echo; fi
    ;;
*)
    echo
    ;;
esac
"#
    )
}

/// What the ssh client does.
#[derive(Debug, Clone)]
pub struct SshOpts<'a> {
    /// The key to offer (None: no key at all).
    pub key: Option<&'a SshKey>,
    /// The answer to every password prompt.
    pub password: Option<&'a str>,
    /// Answers to the code prompts, in order; an empty answer when none
    /// is left.
    pub codes: Vec<String>,
    /// The remote command (default `echo mfa-ok`).
    pub command: &'a str,
    /// `PreferredAuthentications` (default publickey,keyboard-interactive).
    pub preferred: &'a str,
    /// `NumberOfPasswordPrompts`: how many keyboard-interactive attempts
    /// ssh makes (default 3, ssh's own default).
    pub attempts: u32,
    pub timeout: Duration,
    /// `-tt`: a terminal on the server, though ssh has none here (default
    /// `-T`, none).
    pub tty: bool,
}

impl Default for SshOpts<'_> {
    fn default() -> Self {
        SshOpts {
            key: None,
            password: None,
            codes: Vec::new(),
            command: REMOTE_COMMAND,
            preferred: "publickey,keyboard-interactive",
            attempts: 3,
            timeout: Duration::from_secs(30),
            tty: false,
        }
    }
}

/// An ssh client running in the background.
pub struct PendingSsh {
    run: PathBuf,
    worker: Option<thread::JoinHandle<Output>>,
}

impl PendingSsh {
    /// Waits until the askpass script holds at a code prompt (only with
    /// [`Sshd::ssh_held`]); panics after `timeout` or if ssh ends first.
    #[track_caller]
    pub fn wait_for_code_prompt(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.run.join("held").exists() {
            let done = self.worker.as_ref().is_none_or(|w| w.is_finished());
            if done || Instant::now() >= deadline {
                panic!(
                    "ssh never reached a code prompt ({}); prompts so far: {:?}",
                    if done { "ssh ended" } else { "timed out" },
                    read_prompts(&self.run)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets the askpass script answer.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.run.join("hold"));
    }

    /// Waits until ssh asked the `n`-th code prompt (1-based; only with
    /// [`Sshd::ssh_stepped`]) and returns its text; panics after `timeout`
    /// or if ssh ends first.
    #[track_caller]
    pub fn code_prompt(&self, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let asked: usize = std::fs::read_to_string(self.run.join("asked"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if asked >= n {
                let code_prompts: Vec<String> = read_prompts(&self.run)
                    .into_iter()
                    .filter(|p| is_code_prompt(p))
                    .collect();
                return code_prompts.get(n - 1).cloned().unwrap_or_else(|| {
                    panic!("code prompt {n} was counted but not logged: {code_prompts:?}")
                });
            }
            let done = self.worker.as_ref().is_none_or(|w| w.is_finished());
            if done || Instant::now() >= deadline {
                panic!(
                    "ssh never asked code prompt {n} ({}); prompts so far: {:?}",
                    if done { "ssh ended" } else { "timed out" },
                    read_prompts(&self.run)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The answer to the `n`-th code prompt (with [`Sshd::ssh_stepped`]);
    /// written whole before the script can see it.
    pub fn answer(&self, n: usize, answer: &str) {
        let tmp = self.run.join(format!("answer-{n}.tmp"));
        std::fs::write(&tmp, format!("{answer}\n")).expect("write answer");
        std::fs::rename(&tmp, self.run.join(format!("answer-{n}"))).expect("rename answer");
    }

    /// Waits for ssh to end.
    pub fn finish(mut self) -> SshOutcome {
        self.release();
        // A stepped script still waiting answers empty.
        let _ = std::fs::write(self.run.join("done"), "");
        let output = self
            .worker
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_else(|_| panic!("the ssh runner thread panicked"));
        SshOutcome {
            prompts: read_prompts(&self.run),
            output,
        }
    }
}

fn read_prompts(run: &Path) -> Vec<String> {
    let raw = std::fs::read(run.join("prompts")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .split('\u{1e}')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// What one ssh run did.
#[derive(Debug, Clone)]
pub struct SshOutcome {
    pub output: Output,
    /// Every prompt the askpass script was asked, in order.
    pub prompts: Vec<String>,
}

impl SshOutcome {
    /// Prompts asking for a verification code.
    pub fn code_prompts(&self) -> usize {
        self.prompts
            .iter()
            .filter(|p| p.contains(CODE_PROMPT))
            .count()
    }

    /// Prompts asking for a password.
    pub fn password_prompts(&self) -> usize {
        self.prompts
            .iter()
            .filter(|p| p.to_lowercase().contains("password"))
            .count()
    }

    /// Exit 0 with the remote command's output.
    pub fn logged_in(&self) -> bool {
        self.output.success() && self.output.stdout.trim() == REMOTE_OUTPUT
    }

    #[track_caller]
    pub fn assert_logged_in(&self) -> &Self {
        assert!(
            self.logged_in(),
            "ssh was expected to log in and run `{REMOTE_COMMAND}`:\n{self}"
        );
        self
    }

    /// ssh's "could not log in": exit 255, the remote command never ran.
    #[track_caller]
    pub fn assert_refused(&self) -> &Self {
        assert!(
            self.output.code == Some(255)
                && !self.output.timed_out
                && !self.output.stdout.contains(REMOTE_OUTPUT),
            "ssh was expected to be refused (exit 255, no output):\n{self}"
        );
        self
    }
}

impl std::fmt::Display for SshOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.output)?;
        write!(f, "--- askpass prompts ---\n{:#?}", self.prompts)
    }
}
