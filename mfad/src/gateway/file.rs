//! The file backend: one JSON object per line, for development and demos.
//! The file holds codes, so it is created for mfad's user alone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

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
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| SendError::Failed(format!("cannot open {path}: {e}")))?;
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
