//! Logins through libpam, in-process, as a login program does them:
//! pam_start, pam_authenticate (answering the prompt with a valid code),
//! pam_acct_mgmt, pam_end. Each run happens in a worker process (this binary, `mfa-bench
//! pam-worker`), so PAM runs in a process of its own with nothing of the
//! harness in it (no D-Bus connection, no threads), like sshd's.
//!
//! The parent writes one JSON [`WorkerInput`] line to the worker's stdin
//! (secrets travel there, never in arguments); a throughput worker then
//! prints `ready`, waits for `go DEADLINE_NS`, and every worker ends by
//! printing one JSON line: a [`Tally`] per job.

use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use mfa_pam_client::{Conversation, Handle, PAM_SUCCESS};
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::stats::Tally;
use crate::{mono_ns, totp};

/// One login through `service`, answering the one prompt with `answer`
/// (none when `prompts` is 0); Ok(duration of the whole cycle) on
/// PAM_SUCCESS with the expected number of prompts.
fn login(
    service: &CStr,
    user: &CStr,
    answer: CString,
    prompts: usize,
) -> std::result::Result<u64, String> {
    let mut conv = Conversation::new((prompts > 0).then_some(answer));
    let start = Instant::now();
    let mut pam = Handle::start(service, user, &mut conv).map_err(|e| e.to_string())?;
    let mut auth = pam.authenticate(0);
    let mut phase = "pam_authenticate";
    if auth == PAM_SUCCESS {
        // The production stack: `account required pam_mfa.so` too.
        auth = pam.acct_mgmt(0);
        phase = "pam_acct_mgmt";
    }
    let why = if auth == PAM_SUCCESS {
        String::new()
    } else {
        pam.strerror(auth)
    };
    pam.end(auth);
    let elapsed = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let messages: Vec<&str> = conv.messages().iter().map(|m| m.text.as_str()).collect();
    if auth != PAM_SUCCESS {
        return Err(format!("{phase}: {why}; messages: {messages:?}"));
    }
    if conv.prompts().len() != prompts {
        return Err(format!(
            "{} prompts instead of {prompts}; messages: {messages:?}",
            conv.prompts().len()
        ));
    }
    Ok(elapsed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Jobs in turn, `block` logins each, `rounds` times; every login timed.
    Latency,
    /// One job as fast as possible until the deadline or its users run out.
    Throughput,
}

/// A user for a worker: index in the pool, name, secret, last step used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobUser {
    pub idx: usize,
    pub name: String,
    pub secret: String,
    pub last: u64,
}

/// Logins through one PAM service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub service: String,
    /// The module prompts for a code (pam_permit does not).
    pub prompts: bool,
    /// Users may log in more than once (no code, so no replay).
    pub reuse: bool,
    pub users: Vec<JobUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInput {
    pub mode: Mode,
    pub jobs: Vec<Job>,
    /// Untimed logins per job first (libpam and the modules warm up).
    pub warmup: usize,
    pub rounds: usize,
    pub block: usize,
}

/// A job's users, decoded, and how far the job got.
struct Runner {
    service: CString,
    prompts: bool,
    reuse: bool,
    users: Vec<(CString, Vec<u8>, JobUser)>,
    next: usize,
    tally: Tally,
}

impl Runner {
    fn new(job: Job) -> Result<Runner> {
        let service = CString::new(job.service)
            .map_err(|_| Error::Protocol("NUL in a service name".into()))?;
        let mut users = Vec::with_capacity(job.users.len());
        for u in job.users {
            let name = CString::new(u.name.clone())
                .map_err(|_| Error::Protocol("NUL in a user name".into()))?;
            let secret = if job.prompts {
                totp::base32_decode(&u.secret)?
            } else {
                Vec::new()
            };
            users.push((name, secret, u));
        }
        Ok(Runner {
            service,
            prompts: job.prompts,
            reuse: job.reuse,
            users,
            next: 0,
            tally: Tally::default(),
        })
    }

    /// One login with the next user; false when no user is left.
    fn step(&mut self, timed: bool) -> bool {
        if self.next >= self.users.len() {
            if !self.reuse || self.users.is_empty() {
                return false;
            }
            self.next = 0;
        }
        let (name, secret, u) = &self.users[self.next];
        self.next += 1;
        let (answer, step) = if self.prompts {
            let now = totp::now_step();
            let step = now.max(u.last + 1);
            if step > now + 1 {
                self.tally.fail(format!("{}: no usable step left", u.name));
                return true;
            }
            (totp::code(secret, step), step)
        } else {
            (String::new(), 0)
        };
        let Ok(answer) = CString::new(answer) else {
            return true;
        };
        match login(&self.service, name, answer, usize::from(self.prompts)) {
            Ok(ns) => {
                if timed {
                    self.tally.samples_ns.push(ns);
                }
                self.tally.done_at_ns.push(mono_ns());
                self.tally.ok += 1;
                if self.prompts {
                    self.tally.used.push((u.idx, step));
                }
            }
            Err(e) => self.tally.fail(format!(
                "{} as {}: {e}",
                self.service.to_string_lossy(),
                u.name
            )),
        }
        true
    }
}

/// `mfa-bench pam-worker`: runs the input from stdin, prints the tallies.
pub fn worker() -> Result<()> {
    let stdin = std::io::stdin();
    let mut lines = BufReader::new(stdin.lock());
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .map_err(io("cannot read the worker's input"))?;
    let input: WorkerInput = serde_json::from_str(&line)
        .map_err(|e| Error::Protocol(format!("bad worker input: {e}")))?;
    let mut runners = input
        .jobs
        .into_iter()
        .map(Runner::new)
        .collect::<Result<Vec<_>>>()?;
    for r in runners.iter_mut() {
        for _ in 0..input.warmup {
            r.step(false);
        }
        // Warm-up logins count toward the used steps, not the rates.
        r.tally.done_at_ns.clear();
    }
    let mut out = std::io::stdout().lock();
    match input.mode {
        Mode::Latency => {
            for round in 0..input.rounds {
                // Alternate the order, so no service always runs right after
                // another one.
                let n = runners.len();
                for k in 0..n {
                    let j = if round % 2 == 0 { k } else { n - 1 - k };
                    for _ in 0..input.block {
                        if !runners[j].step(true) {
                            break;
                        }
                    }
                }
            }
        }
        Mode::Throughput => {
            writeln!(out, "ready").map_err(io("cannot write to the parent"))?;
            out.flush().map_err(io("cannot write to the parent"))?;
            line.clear();
            lines
                .read_line(&mut line)
                .map_err(io("cannot read the go line"))?;
            let deadline: u64 = line
                .trim()
                .strip_prefix("go ")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| Error::Protocol(format!("bad go line {line:?}")))?;
            for r in runners.iter_mut() {
                while mono_ns() < deadline && r.step(true) {}
            }
        }
    }
    let tallies: Vec<Tally> = runners.into_iter().map(|r| r.tally).collect();
    let json = serde_json::to_string(&tallies)
        .map_err(|e| Error::Protocol(format!("cannot encode the tallies: {e}")))?;
    writeln!(out, "{json}").map_err(io("cannot write to the parent"))?;
    out.flush().map_err(io("cannot write to the parent"))
}

/// A running worker process.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(exe: &Path, input: &WorkerInput) -> Result<Worker> {
        let mut child = Command::new(exe)
            .arg("pam-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io("cannot start a PAM worker"))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Setup("a PAM worker has no pipes".into()));
        };
        let json = serde_json::to_string(input)
            .map_err(|e| Error::Protocol(format!("cannot encode a worker's input: {e}")))?;
        writeln!(stdin, "{json}").map_err(io("cannot write to a PAM worker"))?;
        stdin.flush().map_err(io("cannot write to a PAM worker"))?;
        Ok(Worker {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(io("cannot read from a PAM worker"))?;
        if n == 0 {
            let status = self
                .child
                .wait()
                .map_err(io("cannot wait for a PAM worker"))?;
            return Err(Error::Protocol(format!(
                "a PAM worker ended early ({status}); see its messages above"
            )));
        }
        Ok(line)
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Protocol("a PAM worker's stdin is closed".into()))?;
        writeln!(stdin, "{line}").map_err(io("cannot write to a PAM worker"))?;
        stdin.flush().map_err(io("cannot write to a PAM worker"))
    }

    fn finish(mut self) -> Result<Vec<Tally>> {
        self.stdin = None;
        let line = self.read_line()?;
        let status = self
            .child
            .wait()
            .map_err(io("cannot wait for a PAM worker"))?;
        if !status.success() {
            return Err(Error::Protocol(format!("a PAM worker failed ({status})")));
        }
        serde_json::from_str(&line)
            .map_err(|e| Error::Protocol(format!("a PAM worker printed no tallies: {e}")))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs one latency worker to the end; a tally per job.
pub fn run_latency(exe: &Path, input: &WorkerInput) -> Result<Vec<Tally>> {
    Worker::start(exe, input)?.finish()
}

/// Runs one throughput worker per input, all started together for
/// `seconds`. Returns each worker's tally and the go time (monotonic ns).
pub fn run_throughput(
    exe: &Path,
    inputs: &[WorkerInput],
    seconds: f64,
) -> Result<(Vec<Tally>, u64)> {
    let mut workers = inputs
        .iter()
        .map(|i| Worker::start(exe, i))
        .collect::<Result<Vec<_>>>()?;
    for w in workers.iter_mut() {
        let line = w.read_line()?;
        if line.trim() != "ready" {
            return Err(Error::Protocol(format!(
                "a PAM worker said {line:?} instead of ready"
            )));
        }
    }
    let go = mono_ns();
    let deadline = go + (seconds * 1e9) as u64;
    for w in workers.iter_mut() {
        w.send(&format!("go {deadline}"))?;
    }
    let mut tallies = Vec::with_capacity(workers.len());
    for w in workers {
        let mut t = w.finish()?;
        tallies.push(t.pop().unwrap_or_default());
    }
    Ok((tallies, go))
}
