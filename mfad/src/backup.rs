//! One-time backup codes: 8 digits, stored as salted SHA-256 hashes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Result;

pub const COUNT: usize = 10;
pub const DIGITS: usize = 8;
const SALT_BYTES: usize = 16;

/// A stored backup code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

pub fn hash_with_salt(code: &str, salt: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

/// Hashes `code` with a fresh salt from `random`.
pub fn hash(code: &str, random: &mut dyn FnMut(&mut [u8]) -> Result<()>) -> Result<Hashed> {
    let mut salt = vec![0u8; SALT_BYTES];
    random(&mut salt)?;
    let hash = hash_with_salt(code, &salt);
    Ok(Hashed { salt, hash })
}

/// A uniform 8-digit code from `random`.
pub fn generate(random: &mut dyn FnMut(&mut [u8]) -> Result<()>) -> Result<String> {
    generate_digits(DIGITS, random)
}

/// A uniform code of `digits` (at most 9) decimal digits from `random`
/// (rejection sampling, no modulo bias). Also makes the SMS codes.
pub fn generate_digits(
    digits: usize,
    random: &mut dyn FnMut(&mut [u8]) -> Result<()>,
) -> Result<String> {
    let limit = 10u32.pow(u32::try_from(digits.min(9)).unwrap_or(9));
    // The largest multiple of limit that fits in a u32.
    let zone = u32::MAX - (u32::MAX % limit);
    loop {
        let mut b = [0u8; 4];
        random(&mut b)?;
        let n = u32::from_le_bytes(b);
        if n < zone {
            return Ok(format!("{:0digits$}", n % limit));
        }
    }
}

/// The index of the stored code that `code` matches. Every stored code is
/// compared, so timing does not tell which one matched.
pub fn find(code: &str, stored: &[Hashed]) -> Option<usize> {
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        let candidate = hash_with_salt(code, &h.salt);
        if bool::from(candidate.ct_eq(&h.hash)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_random() -> impl FnMut(&mut [u8]) -> Result<()> {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_add(37);
                *b = n;
            }
            Ok(())
        }
    }

    #[test]
    fn generated_codes_are_eight_digits() {
        let mut r = counter_random();
        for _ in 0..50 {
            let c = generate(&mut r).unwrap();
            assert_eq!(c.len(), DIGITS);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn hashed_codes_match_only_themselves() {
        let mut r = counter_random();
        let stored: Vec<Hashed> = ["12345678", "87654321"]
            .iter()
            .map(|c| hash(c, &mut r).unwrap())
            .collect();
        assert_eq!(find("87654321", &stored), Some(1));
        assert_eq!(find("12345678", &stored), Some(0));
        assert_eq!(find("12345679", &stored), None);
        assert_ne!(
            stored[0].hash,
            hash("12345678", &mut r).unwrap().hash,
            "salted"
        );
    }
}
