//! Backup codes: ten 8-digit one-time codes, given with the first device
//! (and on request), each accepted once. Stored only as salted hashes.

use super::{Accepted, Factor, Input, Outcome};
use crate::codes::{self, Hashed};
use crate::error::Result;
use crate::random::Random;
use crate::seal::Keys;

pub const COUNT: usize = 10;
pub const DIGITS: usize = 8;

/// Ten fresh, distinct codes, and their hashes to store.
pub fn generate(random: &dyn Random, keys: &Keys) -> Result<(Vec<String>, Vec<Hashed>)> {
    let mut plain = Vec::with_capacity(COUNT);
    let mut hashed = Vec::with_capacity(COUNT);
    while plain.len() < COUNT {
        let code = codes::generate_digits(DIGITS, random)?;
        if plain.contains(&code) {
            continue;
        }
        hashed.push(codes::hash(&code, random, keys)?);
        plain.push(code);
    }
    Ok((plain, hashed))
}

pub struct Backup;

impl Factor for Backup {
    fn verify(&self, a: &Input<'_>) -> Result<Outcome> {
        // Only a code of this form reads the backup codes: a login with a
        // 6-digit code never touches them.
        if a.code.len() != DIGITS {
            return Ok(Outcome::NotMine);
        }
        let backup = a.store.backup_codes(a.uid)?;
        let stored: Vec<Hashed> = backup.iter().map(|b| b.code.clone()).collect();
        if let Some(found) = codes::find(a.code, &stored, a.keys).and_then(|i| backup.get(i)) {
            if a.store.use_backup_code(a.uid, found.id, a.now)? {
                return Ok(Outcome::Accepted(Accepted {
                    method: "backup",
                    device: None,
                }));
            }
        }
        Ok(Outcome::Rejected(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Counter;

    #[test]
    fn ten_distinct_eight_digit_codes_each_with_its_hash() {
        let k = Keys::for_tests();
        let (plain, hashed) = generate(&Counter::new(), &k).unwrap();
        assert_eq!((plain.len(), hashed.len()), (COUNT, COUNT));
        for (i, c) in plain.iter().enumerate() {
            assert_eq!(c.len(), DIGITS);
            assert_eq!(codes::find(c, &hashed, &k), Some(i));
        }
    }
}
