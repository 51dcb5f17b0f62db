//! The file backend: one JSON object per line, for development and demos.
//! The file holds codes, so it is created for mfad's user alone, and never
//! written through a symlink or into a file someone else owns or can read.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{FileConfig, SendError};
use crate::error::Error;

pub struct File {
    path: PathBuf,
}

#[derive(Serialize)]
struct Line<'a> {
    time: u64,
    to: &'a str,
    from: &'a str,
    message: &'a str,
}

impl File {
    pub fn new(c: &FileConfig) -> Result<File, Error> {
        if !c.path.parent().is_some_and(|d| d.is_dir()) {
            return Err(Error::Config(format!(
                "[sms.file] path {}: its directory does not exist",
                c.path.display()
            )));
        }
        // An outbox that exists already must pass the checks at start.
        if std::fs::symlink_metadata(&c.path).is_ok() {
            open_outbox(&c.path).map_err(|e| Error::Config(format!("[sms.file] {e}")))?;
        }
        Ok(File {
            path: c.path.clone(),
        })
    }

    pub fn send(&self, to: &str, from: &str, message: &str) -> Result<(), SendError> {
        let path = self.path.display();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // serde_json escapes quotes, backslashes and control characters, so
        // a value can neither end the line nor add a key.
        let mut line = serde_json::to_vec(&Line {
            time,
            to,
            from,
            message,
        })
        .map_err(|e| SendError::Failed(format!("cannot encode the line for {path}: {e}")))?;
        line.push(b'\n');
        let mut file = open_outbox(&self.path).map_err(SendError::Failed)?;
        // One write with O_APPEND: concurrent sends never interleave lines.
        let n = file
            .write(&line)
            .map_err(|e| SendError::Failed(format!("cannot write to {path}: {e}")))?;
        if n != line.len() {
            return Err(SendError::Failed(format!(
                "short write to {path} ({n} of {} bytes)",
                line.len()
            )));
        }
        Ok(())
    }
}

/// Opens the outbox to append, refusing a symlink (O_NOFOLLOW) and, checked
/// on the open descriptor (so nothing can be swapped in between), a file
/// that is not a regular file owned by mfad's user with no access for
/// group or others.
fn open_outbox(path: &Path) -> Result<std::fs::File, String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                format!("path {shown} is a symlink; refusing to write codes through it")
            }
            // mfad has no CAP_DAC_OVERRIDE: another user's file is closed
            // to it. Say whose it is (lstat only names it for the message;
            // the checks below are on the open descriptor).
            Some(code) if code == nix::errno::Errno::EACCES as i32 => {
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() => format!(
                        "path {shown} belongs to UID {}, not to mfad; refusing to write codes to it",
                        m.uid()
                    ),
                    _ => format!("cannot open {shown}: {e}"),
                }
            }
            _ => format!("cannot open {shown}: {e}"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("path {shown} is not a regular file"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(format!(
            "path {shown} belongs to UID {}, not to mfad; refusing to write codes to it",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "path {shown} has mode {:04o}: group or others may read the codes; chmod 600 it",
            meta.mode() & 0o7777
        ));
    }
    Ok(file)
}
