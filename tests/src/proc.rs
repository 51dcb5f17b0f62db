//! Running real programs: with a timeout, optionally as another user, with
//! stdin fed and stdout/stderr captured.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::users::User;

/// Default limit for one command; nothing in the suite should come close.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables that name a bus. Children never inherit them, so
/// a program that wrongly reads them cannot pass by accident.
const BUS_ENV: [&str; 3] = [
    "DBUS_SYSTEM_BUS_ADDRESS",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_STARTER_ADDRESS",
];

/// A command to run. `as_user` wraps it in `setpriv` (util-linux).
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    user: Option<(u32, u32)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    envs: Vec<(OsString, OsString)>,
}

/// What a finished (or killed) command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The harness killed it after the timeout.
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics unless the command exited with a non-zero code (not a signal,
    /// not a timeout).
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0) && !self.timed_out,
            "command was expected to fail with an error exit code:\n{self}"
        );
        self
    }

    /// stdout and stderr together, for searching.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.code, self.signal) {
            (Some(c), _) => writeln!(f, "exit code {c}")?,
            (None, Some(s)) => writeln!(f, "killed by signal {s}")?,
            (None, None) => writeln!(f, "no exit status")?,
        }
        if self.timed_out {
            writeln!(
                f,
                "TIMED OUT after {:?} (killed by the harness)",
                self.elapsed
            )?;
        } else {
            writeln!(f, "took {:?}", self.elapsed)?;
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl Cmd {
    pub fn new(program: impl AsRef<Path>) -> Cmd {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            user: None,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            envs: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Runs the command as `user` (real and effective uid/gid, with the
    /// user's supplementary groups), the way a login shell would.
    pub fn as_user(mut self, user: &User) -> Cmd {
        self.user = Some((user.uid, user.gid));
        self
    }

    /// Runs it as `user` when given, else as root.
    pub fn maybe_as(self, user: Option<&User>) -> Cmd {
        match user {
            Some(u) => self.as_user(u),
            None => self,
        }
    }

    /// Bytes written to stdin, which is then closed. Without it stdin is
    /// empty (/dev/null).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = timeout;
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some((uid, gid)) = self.user {
            s.push_str(&format!("[as uid {uid} gid {gid}] "));
        }
        s.push_str(&self.program.display().to_string());
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn command(&self) -> Command {
        let mut cmd = match self.user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args);
        for k in BUS_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        // A cwd every test user can enter (the test's own may not be).
        cmd.current_dir("/");
        // SAFETY: setsid is async-signal-safe and touches no memory of the
        // parent. A new session detaches the child from the test's terminal
        // (no /dev/tty to read from) and makes it a process group leader, so
        // a timeout can kill the whole group.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        cmd
    }

    /// Runs to completion or until the timeout, then kills the process group.
    /// Panics only when the program cannot be started at all.
    pub fn run(self) -> Output {
        let command = self.describe();
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let writer = self.stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A child that exits early closes the pipe; that is its business.
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
            })
        });
        let out = reader(child.stdout.take().expect("stdout is piped"));
        let err = reader(child.stderr.take().expect("stderr is piped"));
        let (status, timed_out) = wait_deadline(&mut child, self.timeout);
        let elapsed = start.elapsed();
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Output {
            command,
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            elapsed,
            timed_out,
        }
    }

    /// Starts the command for a conversation: read its output as it comes,
    /// write answers when prompted.
    pub fn spawn_interactive(self) -> Interactive {
        let command = self.describe();
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let out = chunk_reader(child.stdout.take().expect("stdout is piped"), tx.clone(), 1);
        let err = chunk_reader(child.stderr.take().expect("stderr is piped"), tx, 2);
        Interactive {
            command,
            child,
            stdin,
            rx,
            readers: vec![out, err],
            stdout: Vec::new(),
            stderr: Vec::new(),
            start: Instant::now(),
            timeout: self.timeout,
        }
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn chunk_reader(
    mut pipe: impl Read + Send + 'static,
    tx: mpsc::Sender<(u8, Vec<u8>)>,
    tag: u8,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((tag, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Waits for the child until `timeout`; then kills its process group.
fn wait_deadline(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) => {}
            Err(e) => panic!("waiting for a child failed: {e}"),
        }
        if Instant::now() >= deadline {
            kill_group(child.id(), Signal::SIGKILL);
            let status = child.wait().expect("wait after kill");
            return (status, true);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` to the process group led by `pid` (every child here leads
/// its own group, see `Cmd::command`).
pub fn kill_group(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

/// A running command we talk to (mfactl's interactive enrollment).
pub struct Interactive {
    command: String,
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    rx: mpsc::Receiver<(u8, Vec<u8>)>,
    readers: Vec<thread::JoinHandle<()>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    start: Instant,
    timeout: Duration,
}

impl Interactive {
    /// stdout and stderr so far (prompts may go to either).
    pub fn transcript(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Collects output until `needle` has appeared `count` times in stdout
    /// or stderr; panics with the transcript after `timeout` or when the
    /// program exits first.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, count: usize, timeout: Duration) {
        if let Err(why) = self.wait_until(needle, count, timeout) {
            let status = self.child.try_wait().ok().flatten();
            kill_group(self.child.id(), Signal::SIGKILL);
            panic!(
                "`{}`: waited for {needle:?} (occurrence {count}) but {why}; exit status {status:?}\n--- output so far ---\n{}",
                self.command,
                self.transcript()
            );
        }
    }

    /// Like `wait_for`, but says why it stopped instead of panicking:
    /// "timed out ..." or "the program closed its output".
    pub fn wait_until(
        &mut self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_until_any(&[needle], count, timeout)
    }

    /// Like `wait_until`, counting the occurrences of all `needles`
    /// together (a password prompt and a code prompt are both "a prompt").
    pub fn wait_until_any(
        &mut self,
        needles: &[&str],
        count: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = String::from_utf8_lossy(&self.stdout);
            let err = String::from_utf8_lossy(&self.stderr);
            let seen: usize = needles
                .iter()
                .map(|n| out.matches(n).count() + err.matches(n).count())
                .sum();
            if seen >= count {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok((1, chunk)) => self.stdout.extend(chunk),
                Ok((_, chunk)) => self.stderr.extend(chunk),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("timed out after {timeout:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the program closed its output".into())
                }
            }
        }
    }

    /// Writes one line to the program's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| {
                panic!(
                    "`{}`: writing to stdin failed: {e}\n{}",
                    self.command,
                    self.transcript()
                )
            });
    }

    /// Closes stdin and waits for the end (or kills it at the timeout).
    pub fn finish(mut self) -> Output {
        drop(self.stdin.take());
        let left = self.timeout.saturating_sub(self.start.elapsed());
        let (status, timed_out) = wait_deadline(&mut self.child, left);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        while let Ok((tag, chunk)) = self.rx.try_recv() {
            if tag == 1 {
                self.stdout.extend(chunk);
            } else {
                self.stderr.extend(chunk);
            }
        }
        Output {
            command: self.command.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            elapsed: self.start.elapsed(),
            timed_out,
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_group(self.child.id(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
