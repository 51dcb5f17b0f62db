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
    Ok(to_hex(&buf))
}

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `N` bytes written by [`to_hex`]: exactly `2 * N` lowercase hex
/// digits, else None.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
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

    #[test]
    fn from_hex_reads_back_to_hex_only() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x1a];
        assert_eq!(from_hex::<5>(&to_hex(&bytes)), Some(bytes));
        for bad in [
            "",
            "007f80ff1",
            "007f80ff1a00",
            "007F80FF1A",
            "+07f80ff1a",
            "007f80ff1g",
        ] {
            assert_eq!(from_hex::<5>(bad), None, "{bad}");
        }
    }
}
