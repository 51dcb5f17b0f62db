//! The command backend: a program run with argv, no shell, for a GSM modem
//! (gammu-smsd-inject) or a site's own script.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use super::template::{Template, Values};
use super::{CommandConfig, SendError};
use crate::error::Error;

/// The program gets nothing of mfad's environment but a standard PATH.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Command {
    program: PathBuf,
    args: Vec<Template>,
    timeout: Duration,
}

impl Command {
    pub fn new(c: &CommandConfig) -> Result<Command, Error> {
        let (first, args) = c
            .argv
            .split_first()
            .ok_or_else(|| Error::Config("[sms.command] argv is empty".into()))?;
        let program = PathBuf::from(first.literal().ok_or_else(|| {
            Error::Config("[sms.command] argv[0] must not contain placeholders".into())
        })?);
        // Found now rather than at the first login that needs it.
        match std::fs::metadata(&program) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "[sms.command] argv[0] {} is not a file",
                    program.display()
                )));
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "[sms.command] argv[0] {}: {e}",
                    program.display()
                )));
            }
        }
        Ok(Command {
            program,
            args: args.to_vec(),
            timeout: c.timeout,
        })
    }

    pub async fn send(&self, values: &Values<'_>) -> Result<(), SendError> {
        let program = self.program.display();
        let mut cmd = tokio::process::Command::new(&self.program);
        // Each element is one argument whatever it contains: no shell splits
        // or expands it.
        cmd.args(self.args.iter().map(|t| t.render(values)))
            .env_clear()
            .env("PATH", PATH)
            .current_dir("/")
            // Its output may echo the message, so it is never read or logged.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| SendError::Failed(format!("cannot run {program}: {e}")))?;
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(SendError::Failed(format!("{program} {}", describe(status)))),
            Ok(Err(e)) => Err(SendError::Uncertain(format!(
                "cannot wait for {program}, so the message may have been sent: {e}"
            ))),
            Err(_) => {
                if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                    // The child is not reaped yet, so its pid (and group id)
                    // cannot have been reused.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill().await;
                Err(SendError::Uncertain(format!(
                    "{program} did not finish within {}s and was killed; the message may have been sent",
                    self.timeout.as_secs_f64()
                )))
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("failed ({status})"),
    }
}
