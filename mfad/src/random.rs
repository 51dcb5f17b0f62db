//! Randomness behind a trait: the kernel's CSPRNG in the daemon, a
//! deterministic source where a unit test needs one.

use crate::error::{Error, Result};

pub trait Random: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<()>;
}

/// The kernel's CSPRNG (getrandom(2)).
pub struct Os;

impl Random for Os {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf)
            .map_err(|e| Error::Internal(format!("no randomness from the kernel: {e}")))
    }
}

/// `bytes` random bytes as lowercase hex (ids and tokens).
pub fn hex(random: &dyn Random, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    random.fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A predictable source for tests: a counter, never the same byte twice in
/// a row.
#[cfg(test)]
#[derive(Default)]
pub struct Counter(std::sync::Mutex<u8>);

#[cfg(test)]
impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }
}

#[cfg(test)]
impl Random for Counter {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        let mut n = self.0.lock().unwrap();
        for b in buf.iter_mut() {
            *n = n.wrapping_add(37);
            *b = *n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_two_digits_a_byte() {
        let h = hex(&Os, 8).unwrap();
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(h, hex(&Os, 8).unwrap());
    }
}
