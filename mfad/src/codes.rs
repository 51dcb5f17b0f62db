//! One-time codes (backup codes, codes sent by SMS): generated uniformly,
//! stored only as HMAC-SHA256(key, SHA-256(salt, code)) under the daemon's
//! code key (so a copy of the database allows no offline guessing), compared
//! in constant time. Pure.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Result;
use crate::random::Random;
use crate::seal::Keys;

const SALT_BYTES: usize = 16;

/// A one-time code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The stored form of `code` with `salt`. The inner SHA-256 is what
/// releases before the key stored, so those hashes could be keyed in place
/// (see [`key_legacy`]).
pub fn hash_with_salt(code: &str, salt: &[u8], keys: &Keys) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    keys.mac(&[&h.finalize()]).to_vec()
}

/// A hash stored before codes were keyed (plain SHA-256 of salt and code),
/// as it is stored now.
pub fn key_legacy(hash: &[u8], keys: &Keys) -> Vec<u8> {
    keys.mac(&[hash]).to_vec()
}

/// Hashes `code` with a fresh salt from `random`.
pub fn hash(code: &str, random: &dyn Random, keys: &Keys) -> Result<Hashed> {
    let mut salt = vec![0u8; SALT_BYTES];
    random.fill(&mut salt)?;
    let hash = hash_with_salt(code, &salt, keys);
    Ok(Hashed { salt, hash })
}

/// A uniform code of `digits` (at most 9) decimal digits from `random`
/// (rejection sampling, no modulo bias).
pub fn generate_digits(digits: usize, random: &dyn Random) -> Result<String> {
    let limit = 10u32.pow(u32::try_from(digits.min(9)).unwrap_or(9));
    // The largest multiple of limit that fits in a u32.
    let zone = u32::MAX - (u32::MAX % limit);
    loop {
        let mut b = [0u8; 4];
        random.fill(&mut b)?;
        let n = u32::from_le_bytes(b);
        if n < zone {
            return Ok(format!("{:0digits$}", n % limit));
        }
    }
}

/// The index of the stored code that `code` matches. Every stored code is
/// compared, so timing does not tell which one matched.
pub fn find(code: &str, stored: &[Hashed], keys: &Keys) -> Option<usize> {
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        let candidate = hash_with_salt(code, &h.salt, keys);
        if bool::from(candidate.ct_eq(&h.hash)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Counter;

    #[test]
    fn generated_codes_have_their_digits() {
        let r = Counter::new();
        for digits in [6, 8] {
            for _ in 0..50 {
                let c = generate_digits(digits, &r).unwrap();
                assert_eq!(c.len(), digits);
                assert!(c.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn hashed_codes_match_only_themselves() {
        let r = Counter::new();
        let k = Keys::for_tests();
        let stored: Vec<Hashed> = ["12345678", "87654321"]
            .iter()
            .map(|c| hash(c, &r, &k).unwrap())
            .collect();
        assert_eq!(find("87654321", &stored, &k), Some(1));
        assert_eq!(find("12345678", &stored, &k), Some(0));
        assert_eq!(find("12345679", &stored, &k), None);
        assert_ne!(
            stored[0].hash,
            hash("12345678", &r, &k).unwrap().hash,
            "salted"
        );
        let other = Keys::from_master(&[9u8; 32]);
        assert_eq!(find("87654321", &stored, &other), None, "keyed");
    }

    #[test]
    fn legacy_hashes_keyed_in_place_still_match() {
        let k = Keys::for_tests();
        let salt = [3u8; 16];
        let mut h = Sha256::new();
        h.update(salt);
        h.update(b"12345678");
        let legacy = h.finalize().to_vec();
        let stored = Hashed {
            salt: salt.to_vec(),
            hash: key_legacy(&legacy, &k),
        };
        assert_eq!(find("12345678", &[stored], &k), Some(0));
    }
}
