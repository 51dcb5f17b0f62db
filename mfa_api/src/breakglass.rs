//! Break-glass codes: one-time emergency codes for when mfad cannot be
//! asked. `mfactl admin break-glass --generate` writes the file, pam_mfa
//! uses a code up (only when mfad does not answer), mfad reports the uses
//! when it starts. The file is shared by the three, so its format lives
//! here; errors are `std::io::Error`s carrying one line for the log.
//!
//! The file is root's, mode 0600, and holds only salted SHA-256 hashes,
//! one code a line, each line the same length so that using a code is one
//! write in place under an exclusive lock (two logins racing with one code:
//! one wins):
//!
//! ```text
//! - <salt, 32 hex> <hash, 64 hex> 0000000000 <64 spaces>      unused
//! U <salt, 32 hex> <hash, 64 hex> <used at, 10 digits> <user> used
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Where the codes live unless `--file` / `breakglass=` say otherwise.
pub const DEFAULT_PATH: &str = "/etc/mfad/break-glass";
/// Letters a person reads back without doubt (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters of a code, shown in groups of 5: about 99 bits.
const CODE_CHARS: usize = 20;
const SALT_BYTES: usize = 16;
/// The user field: names are padded (or cut) to this.
const USER_WIDTH: usize = 64;
const HEADER: &str =
    "# mfa break-glass codes (salted SHA-256); mfactl admin break-glass --generate\n";

/// A used code, as the file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub used_at: i64,
    pub user: String,
}

fn bad(msg: String) -> io::Error {
    io::Error::other(msg)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is hashed: the code without dashes or white space, in lower case.
fn normalize(code: &[u8]) -> Vec<u8> {
    code.iter()
        .filter(|b| !b.is_ascii_whitespace() && **b != b'-')
        .map(u8::to_ascii_lowercase)
        .collect()
}

fn digest(salt_hex: &str, code: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt_hex.as_bytes());
    h.update(code);
    hex(&h.finalize())
}

/// Constant-time equality of two strings of the same length.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn line(state: char, salt: &str, hash: &str, used_at: i64, user: &str) -> String {
    let user: String = user
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(USER_WIDTH)
        .collect();
    format!(
        "{state} {salt} {hash} {used_at:010} {user:<w$}\n",
        w = USER_WIDTH
    )
}

/// `count` new codes (`abcde-fghjk-mnpqr-stuvw`) and the file text that
/// stores their hashes.
pub fn generate(count: usize) -> io::Result<(Vec<String>, String)> {
    let mut codes = Vec::with_capacity(count);
    let mut text = String::from(HEADER);
    for _ in 0..count {
        let mut code = String::new();
        while code.len() < CODE_CHARS {
            let mut b = [0u8; 1];
            getrandom::fill(&mut b).map_err(|e| bad(format!("no randomness: {e}")))?;
            // 248 is the largest multiple of 31 below 256: no modulo bias.
            if usize::from(b[0]) < 248 {
                code.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
            }
        }
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| bad(format!("no randomness: {e}")))?;
        let salt = hex(&salt);
        text.push_str(&line('-', &salt, &digest(&salt, code.as_bytes()), 0, ""));
        let groups: Vec<&str> = (0..CODE_CHARS / 5)
            .map(|i| &code[i * 5..i * 5 + 5])
            .collect();
        codes.push(groups.join("-"));
    }
    Ok((codes, text))
}

/// Opens the file, refusing anything but a regular file of the caller's
/// own (root's, for sshd, su and mfad) that no one else may read or write.
fn open(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "{} must be a regular file of root's with mode 0600",
            path.display()
        )));
    }
    Ok(file)
}

/// The parsed lines: byte offset, state, salt, hash, used at, user.
fn entries(text: &str) -> Vec<(usize, char, &str, &str, i64, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        let start = offset;
        offset += l.len();
        let mut f = l.trim_end_matches('\n').splitn(5, ' ');
        let (Some(state), Some(salt), Some(hash), Some(at)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let state = match state {
            "-" => '-',
            "U" => 'U',
            _ => continue,
        };
        let Ok(at) = at.parse() else { continue };
        out.push((
            start,
            state,
            salt,
            hash,
            at,
            f.next().unwrap_or("").trim_end(),
        ));
    }
    out
}

/// Uses up `code` for `user` at `now`: true if it was an unused code of the
/// file (now marked used), false if not. The file stays locked from the
/// read to the write, so a code is used once however many logins race.
pub fn consume(path: &Path, code: &[u8], user: &str, now: i64) -> io::Result<bool> {
    let mut file = open(path, true)?;
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let code = normalize(code);
    let mut found = None;
    // Every line is compared, so the time taken does not tell which matched.
    for (offset, state, salt, hash, _, _) in entries(&text) {
        let hit = same(&digest(salt, &code), hash);
        if hit && state == '-' && found.is_none() {
            found = Some((offset, line('U', salt, hash, now, user)));
        }
    }
    let Some((offset, used)) = found else {
        return Ok(false);
    };
    let offset = u64::try_from(offset).map_err(|e| bad(e.to_string()))?;
    file.write_all_at(used.as_bytes(), offset)?;
    file.sync_data()?;
    Ok(true)
}

/// The used codes in the file.
pub fn uses(path: &Path) -> io::Result<Vec<Use>> {
    let mut text = String::new();
    open(path, false)?.read_to_string(&mut text)?;
    Ok(entries(&text)
        .into_iter()
        .filter(|e| e.1 == 'U')
        .map(|e| Use {
            used_at: e.4,
            user: e.5.to_string(),
        })
        .collect())
}

/// Writes `text` (from [`generate`]) to `path`, replacing any codes there:
/// a new file of root's, mode 0600, renamed into place.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| bad(format!("cannot create {}: {e}", tmp.display())))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).map_err(|e| bad(format!("cannot replace {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("break-glass");
        write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn codes_are_long_distinct_and_used_once() {
        let (codes, text) = generate(3).unwrap();
        assert_eq!(codes.len(), 3);
        assert!(codes
            .iter()
            .all(|c| c.len() == 23 && c.matches('-').count() == 3));
        assert_ne!(codes[0], codes[1]);
        for c in &codes {
            assert!(
                !text.contains(&c.replace('-', "")),
                "only hashes are stored"
            );
        }
        let (_d, p) = file_with(&text);
        assert!(!consume(&p, b"aaaaa-aaaaa-aaaaa-aaaaa", "root", 5).unwrap());
        // Dashes, case and spaces do not matter.
        let typed = format!(" {} ", codes[1].to_uppercase().replace('-', ""));
        assert!(consume(&p, typed.as_bytes(), "root", 1234).unwrap());
        assert!(!consume(&p, codes[1].as_bytes(), "root", 1235).unwrap());
        assert!(consume(&p, codes[0].as_bytes(), "alice", 1300).unwrap());
        assert_eq!(
            uses(&p).unwrap(),
            [
                Use {
                    used_at: 1300,
                    user: "alice".into()
                },
                Use {
                    used_at: 1234,
                    user: "root".into()
                }
            ]
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap().len(), text.len());
    }

    /// Many threads racing with one code: exactly one wins.
    #[test]
    fn one_code_racing_logins_one_wins() {
        let (codes, text) = generate(1).unwrap();
        let (_d, p) = file_with(&text);
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| consume(&p, codes[0].as_bytes(), "root", 9).unwrap()))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let (_, text) = generate(1).unwrap();
        let (_d, p) = file_with(&text);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let e = consume(&p, b"x", "root", 1).unwrap_err().to_string();
        assert!(e.contains("mode 0600"), "{e}");
        let missing = consume(Path::new("/nonexistent/bg"), b"x", "root", 1).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/bg"));
    }
}
