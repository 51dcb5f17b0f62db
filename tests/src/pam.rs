//! PAM service files in /etc/pam.d that load the real libpam_mfa.so by
//! absolute path, and pamtester to drive them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proc::{Cmd, Output};
use crate::{paths, random_letters, Env, User};

/// What `pam_authenticate` returned, as pamtester reports it (it prints
/// pam_strerror of the result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PamResult {
    /// PAM_SUCCESS
    Success,
    /// PAM_AUTH_ERR ("Authentication failure")
    AuthErr,
    /// PAM_PERM_DENIED ("Permission denied"): also what libpam returns
    /// when every module in the stack returned PAM_IGNORE.
    PermDenied,
    /// PAM_AUTHINFO_UNAVAIL
    AuthInfoUnavail,
    /// PAM_CONV_ERR: the module asked more questions than we had answers.
    ConvErr,
    /// Anything else: pamtester's last line.
    Other(String),
}

/// pamtester's outcome.
#[derive(Debug, Clone)]
pub struct PamOutcome {
    pub output: Output,
}

impl PamOutcome {
    pub fn result(&self) -> PamResult {
        let o = &self.output;
        // pamtester exits 0 only when every operation succeeded; it says so
        // per operation ("successfully authenticated", "account management
        // done.").
        if o.success()
            && (o.stdout.contains("pamtester: successfully authenticated")
                || o.stdout.contains("pamtester: account management done"))
        {
            return PamResult::Success;
        }
        let last = o
            .stderr
            .rsplit("pamtester: ")
            .next()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        match last.as_str() {
            "Authentication failure" => PamResult::AuthErr,
            "Permission denied" => PamResult::PermDenied,
            "Authentication service cannot retrieve authentication info" => {
                PamResult::AuthInfoUnavail
            }
            "Conversation error" => PamResult::ConvErr,
            _ => PamResult::Other(format!("exit {:?}: {last}", o.code)),
        }
    }

    pub fn authenticated(&self) -> bool {
        self.result() == PamResult::Success
    }

    /// How many times the module prompted `Verification code: `.
    pub fn prompts(&self) -> usize {
        self.output.all().matches(PROMPT).count()
    }

    /// Panics with the transcript unless the result is `expected`.
    #[track_caller]
    pub fn assert_result(&self, expected: PamResult) -> &Self {
        let got = self.result();
        assert_eq!(
            got, expected,
            "pamtester: expected {expected:?}, got {got:?}\n{}",
            self.output
        );
        self
    }

    /// The whole transcript (prompts, messages, result).
    pub fn transcript(&self) -> String {
        self.output.all()
    }
}

/// The prompt pam_mfa shows (the daemon's challenge message).
pub const PROMPT: &str = "Verification code:";

/// pam_unix's prompt (su, sudo and password-then-code stacks).
pub const PASSWORD_PROMPT: &str = "Password:";

/// Runs `pamtester -v SERVICE USER authenticate`, writing answer i only
/// once the module has prompted for the i-th time: the PAM conversation
/// (misc_conv) reads stdin in chunks and would swallow answers written
/// ahead. Stops answering when pamtester exits.
pub fn pamtester(service: &str, user: &str, answers: &[&str], timeout: Duration) -> PamOutcome {
    pamtester_cmd(service, user, answers, timeout, &[])
}

/// `pamtester` with extra environment variables for pamtester (and so for
/// the module inside it).
pub fn pamtester_cmd(
    service: &str,
    user: &str,
    answers: &[&str],
    timeout: Duration,
    envs: &[(&str, &str)],
) -> PamOutcome {
    pamtester_with(
        service,
        user,
        answers,
        &PamtesterOpts {
            envs: envs.to_vec(),
            timeout,
            ..PamtesterOpts::default()
        },
    )
}

/// How to run pamtester beyond service, user and answers.
#[derive(Debug, Clone)]
pub struct PamtesterOpts<'a> {
    /// PAM items set before the operations (`-I rhost=10.9.8.7`,
    /// `-I tty=pts/3`, `-I ruser=bob`).
    pub items: Vec<(&'a str, &'a str)>,
    /// Operations on one PAM handle, in order (default: authenticate).
    pub ops: Vec<&'a str>,
    /// Run pamtester as this user (a screen locker), not as root.
    pub as_user: Option<&'a User>,
    pub envs: Vec<(&'a str, &'a str)>,
    /// PAM environment variables set before the operations (`-E`), as an
    /// earlier phase of the application would have left them.
    pub pam_env: Vec<(&'a str, &'a str)>,
    pub timeout: Duration,
}

impl Default for PamtesterOpts<'_> {
    fn default() -> Self {
        PamtesterOpts {
            items: Vec::new(),
            ops: vec!["authenticate"],
            as_user: None,
            envs: Vec::new(),
            pam_env: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// pamtester with items, several operations, or as a user. Answer i goes
/// out after the i-th prompt of either kind (`Verification code:` or
/// pam_unix's `Password:`).
pub fn pamtester_with(
    service: &str,
    user: &str,
    answers: &[&str],
    opts: &PamtesterOpts<'_>,
) -> PamOutcome {
    let mut args: Vec<String> = vec!["-v".into()];
    for (k, v) in &opts.items {
        args.push("-I".into());
        args.push(format!("{k}={v}"));
    }
    for (k, v) in &opts.pam_env {
        args.push("-E".into());
        args.push(format!("{k}={v}"));
    }
    args.push(service.into());
    args.push(user.into());
    args.extend(opts.ops.iter().map(|s| s.to_string()));
    let mut cmd = Cmd::new(paths::tool("pamtester", "pamtester"))
        .args(&args)
        .timeout(opts.timeout)
        .maybe_as(opts.as_user);
    for (k, v) in &opts.envs {
        cmd = cmd.env(k, v);
    }
    let mut run = cmd.spawn_interactive();
    for (i, a) in answers.iter().enumerate() {
        match run.wait_until_any(&[PROMPT, PASSWORD_PROMPT], i + 1, opts.timeout) {
            Ok(()) => run.send_line(a),
            Err(_) => break,
        }
    }
    let output = run.finish();
    assert!(
        !output.timed_out,
        "pamtester did not finish within {:?}:\n{output}",
        opts.timeout
    );
    PamOutcome { output }
}

impl Env {
    /// `/ABS/target/debug/libpam_mfa.so bus=unix:path=DIR/bus` (the module
    /// part of an `auth` line, before any other argument).
    pub fn pam_module_spec(&self) -> String {
        format!(
            "{} bus={}",
            paths::pam_module().display(),
            self.bus_address()
        )
    }

    /// A service file with `auth required MODULE bus=... ARGS` and
    /// `account required pam_permit.so`; returns the service name.
    pub fn pam_service(&self, args: &str) -> String {
        self.pam_service_raw(&format!(
            "auth required {} {args}\naccount required pam_permit.so\n",
            self.pam_module_spec()
        ))
    }

    /// A service file with exactly these contents; returns its name
    /// (`mfa-test-<random>`). Removed when the Env is dropped.
    pub fn pam_service_raw(&self, contents: &str) -> String {
        let name = format!("mfa-test-{}", random_letters(10));
        let path = Path::new("/etc/pam.d").join(&name);
        std::fs::write(&path, format!("# written by mfa-tests\n{contents}"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self.pam_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
        name
    }

    /// The path of a service file made by this Env.
    pub fn pam_service_path(&self, service: &str) -> PathBuf {
        Path::new("/etc/pam.d").join(service)
    }

    /// pamtester for `user` with these answers (30 s limit).
    pub fn pamtester(&self, service: &str, user: &User, answers: &[&str]) -> PamOutcome {
        pamtester(service, &user.name, answers, Duration::from_secs(30))
    }

    /// [`pamtester_with`] for `user`.
    pub fn pamtester_with(
        &self,
        service: &str,
        user: &User,
        answers: &[&str],
        opts: &PamtesterOpts<'_>,
    ) -> PamOutcome {
        pamtester_with(service, &user.name, answers, opts)
    }
}

/// libpam return codes (Linux-PAM's _pam_types.h).
pub mod rc {
    pub const PAM_SUCCESS: i64 = 0;
    pub const PAM_PERM_DENIED: i64 = 6;
    pub const PAM_AUTH_ERR: i64 = 7;
    pub const PAM_AUTHINFO_UNAVAIL: i64 = 9;
    pub const PAM_CONV_ERR: i64 = 19;
    pub const PAM_IGNORE: i64 = 25;
}

/// The report of the `pam-run` helper (tests/src/bin/pam-run.rs): libpam
/// driven in-process, with thread and fd snapshots around each call.
#[derive(Debug, Clone)]
pub struct PamRun {
    pub json: serde_json::Value,
    pub output: Output,
}

impl PamRun {
    /// What pam_authenticate returned in round `i`.
    pub fn auth_rc(&self, i: usize) -> i64 {
        self.round_rc(i, "authenticate")
    }

    /// A return code (`authenticate`, `setcred`, `acct_mgmt`, `end`).
    #[track_caller]
    pub fn round_rc(&self, i: usize, call: &str) -> i64 {
        self.json["rounds"][i][call]
            .as_i64()
            .unwrap_or_else(|| panic!("pam-run round {i} has no {call} result:\n{}", self.output))
    }

    pub fn rounds(&self) -> usize {
        self.json["rounds"].as_array().map_or(0, Vec::len)
    }

    /// Messages (PAM_ERROR_MSG/PAM_TEXT_INFO) the module showed.
    pub fn messages(&self) -> Vec<String> {
        strings(&self.json["messages"])
    }

    /// Prompts the module asked.
    pub fn prompts(&self) -> Vec<String> {
        strings(&self.json["prompts"])
    }

    /// "echo_off" or "echo_on" for each prompt.
    pub fn prompt_styles(&self) -> Vec<String> {
        strings(&self.json["prompt_styles"])
    }

    /// "error" (PAM_ERROR_MSG) or "info" (PAM_TEXT_INFO) for each message.
    pub fn message_styles(&self) -> Vec<String> {
        strings(&self.json["message_styles"])
    }

    /// Differences in threads or fds between before the first round and
    /// after each pam_authenticate and pam_end; empty when none.
    pub fn leaks(&self) -> Vec<String> {
        let before = &self.json["before"];
        let mut out = Vec::new();
        for i in 0..self.rounds() {
            for when in ["after_authenticate", "after_end"] {
                let snap = &self.json["rounds"][i][when];
                for what in ["threads", "fds"] {
                    if snap[what] != before[what] {
                        out.push(format!(
                            "round {i} {when}: {what} {} (before: {})",
                            snap[what], before[what]
                        ));
                    }
                }
            }
        }
        out
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Env {
    /// Runs `pam-run SERVICE USER FLAGS... ANSWERS...` as root (like sshd).
    #[track_caller]
    pub fn pam_run(&self, service: &str, user: &User, flags: &[&str], answers: &[&str]) -> PamRun {
        let output = Cmd::new(paths::helper("pam-run"))
            .arg(service)
            .arg(&user.name)
            .args(flags)
            .args(answers)
            .timeout(Duration::from_secs(60))
            .run();
        assert!(output.success(), "pam-run failed:\n{output}");
        let json = serde_json::from_str(output.stdout.trim())
            .unwrap_or_else(|e| panic!("pam-run printed no JSON ({e}):\n{output}"));
        PamRun { json, output }
    }
}
