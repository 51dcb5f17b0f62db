//! The break-glass codes' file behind [`flow::BreakGlass`], from the module
//! arguments `breakglass=PATH` and `breakglass_users=`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::flow::{self, BREAK_GLASS_ACCOUNT_SECS};

pub struct File {
    /// None: `breakglass=` not given, the codes are off.
    path: Option<PathBuf>,
    users: Vec<String>,
}

impl File {
    pub fn new(path: Option<PathBuf>, users: Vec<String>) -> File {
        File { path, users }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl flow::BreakGlass for File {
    fn applies(&self, user: &str) -> bool {
        self.path.is_some() && self.users.iter().any(|u| u == user)
    }

    fn consume(&mut self, user: &str, code: &[u8]) -> Result<bool, String> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        mfa_api::breakglass::consume(path, code, user, now()).map_err(|e| e.to_string())
    }

    fn used_recently(&mut self, user: &str) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let now = now();
        mfa_api::breakglass::uses(path).is_ok_and(|uses| {
            uses.iter().any(|u| {
                u.user == user && u.used_at <= now && now - u.used_at < BREAK_GLASS_ACCOUNT_SECS
            })
        })
    }
}
