//! The daemon's key, and what it protects: TOTP secrets are sealed with it
//! (ChaCha20-Poly1305) and one-time codes are keyed with it (HMAC-SHA256),
//! so a copy of the database alone reveals no secret and allows no offline
//! guessing of backup or SMS codes.
//!
//! The key is 32 random bytes in a root-only file apart from the database
//! (`[daemon] key_file`, default `STATE_DIR/mfad.key`), made at the first
//! start. Two subkeys are derived from it, one per use.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::random::Random;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// The subkeys, wiped from memory when dropped.
pub struct Keys {
    seal: Zeroizing<[u8; KEY_BYTES]>,
    mac: Zeroizing<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<hidden>)")
    }
}

impl Keys {
    /// The subkeys of `master`: HMAC(master, label) per use.
    pub fn from_master(master: &[u8; KEY_BYTES]) -> Keys {
        let derive = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; KEY_BYTES]);
            out.copy_from_slice(&hmac(master, &[label]));
            out
        };
        Keys {
            seal: derive(b"mfad seal v1"),
            mac: derive(b"mfad code mac v1"),
        }
    }

    /// A fresh random key that lives only in memory (an in-memory store for
    /// tests and fuzzing; never the daemon's, which must outlive it).
    pub fn ephemeral() -> Result<Keys, String> {
        let mut master = Zeroizing::new([0u8; KEY_BYTES]);
        crate::random::Os
            .fill(master.as_mut_slice())
            .map_err(|e| e.to_string())?;
        Ok(Keys::from_master(&master))
    }

    /// A fixed key, for unit tests only.
    #[cfg(test)]
    pub fn for_tests() -> Keys {
        Keys::from_master(&[7u8; KEY_BYTES])
    }

    /// Reads the key file; None if it does not exist. Refuses a symlink, a
    /// file that is not root's (mfad's user's) alone, or one of the wrong
    /// length.
    pub fn load(path: &Path) -> Result<Option<Keys>, String> {
        let shown = path.display();
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open the key file {shown}: {e}")),
        };
        check_private(&file, path)?;
        let mut master = Zeroizing::new([0u8; KEY_BYTES]);
        let mut extra = [0u8; 1];
        let complete = file.read_exact(master.as_mut_slice()).is_ok();
        if !complete || file.read(&mut extra).map_or(true, |n| n != 0) {
            return Err(format!(
                "the key file {shown} is not {KEY_BYTES} bytes; it is damaged or not mfad's"
            ));
        }
        Ok(Some(Keys::from_master(&master)))
    }

    /// Makes a new key file (never over an existing one) and returns its
    /// keys.
    pub fn create(path: &Path, random: &dyn Random) -> Result<Keys, String> {
        let shown = path.display();
        let mut master = Zeroizing::new([0u8; KEY_BYTES]);
        random
            .fill(master.as_mut_slice())
            .map_err(|e| e.to_string())?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| format!("cannot create the key file {shown}: {e}"))?;
        file.write_all(master.as_slice())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write the key file {shown}: {e}"))?;
        if let Some(dir) = path.parent() {
            // The name must be durable too, before anything is sealed with it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Keys::from_master(&master))
    }

    /// Seals `plain`, bound to `context` (which must be given again to
    /// open it): the nonce, then the ciphertext with its tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_BYTES];
        crate::random::Os
            .fill(&mut nonce)
            .map_err(|e| e.to_string())?;
        let cipher = ChaCha20Poly1305::new(self.seal.as_slice().into());
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made with the same context; fails
    /// on any change to either, or under another key.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        if sealed.len() < NONCE_BYTES {
            return Err("sealed data is too short".into());
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let cipher = ChaCha20Poly1305::new(self.seal.as_slice().into());
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| "sealed data does not open under this key (wrong key file?)".to_string())
    }

    /// HMAC-SHA256 of the parts, under the code key.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac(self.mac.as_slice(), parts)
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // A key of any length is valid for HMAC; this cannot fail.
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The key file must be a regular file owned by mfad's user, with no access
/// for group or others; checked on the open descriptor.
fn check_private(file: &File, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect the key file {shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("the key file {shown} is not a regular file"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(format!(
            "the key file {shown} belongs to UID {}, not to mfad",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the key file {shown} has mode {:04o}: group or others may read it; chmod 600 it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let k = Keys::for_tests();
        let sealed = k.seal(b"alice/d1", b"secret bytes").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            k.open(b"alice/d1", &sealed).unwrap().as_slice(),
            b"secret bytes"
        );
        assert!(k.open(b"bob/d1", &sealed).is_err(), "another context");
        let other = Keys::from_master(&[8u8; KEY_BYTES]);
        assert!(other.open(b"alice/d1", &sealed).is_err(), "another key");
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(k.open(b"alice/d1", &flipped).is_err(), "tampered");
        assert!(k.open(b"alice/d1", &sealed[..5]).is_err());
        assert_ne!(
            sealed,
            k.seal(b"alice/d1", b"secret bytes").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.key");
        assert!(Keys::load(&path).unwrap().is_none());
        let made = Keys::create(&path, &crate::random::Os).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = Keys::load(&path).unwrap().unwrap();
        assert_eq!(made.mac(&[b"x"]), read.mac(&[b"x"]));
        assert!(
            Keys::create(&path, &crate::random::Os).is_err(),
            "never over one"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keys::load(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, [1u8; 31]).unwrap();
        assert!(Keys::load(&path).unwrap_err().contains("32 bytes"));
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(Keys::load(&link).is_err(), "a symlink");
    }
}
