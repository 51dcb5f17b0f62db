//! TOTP codes (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), computed
//! here rather than by oathtool: a benchmark needs tens of thousands of them.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::error::{Error, Result};

/// Seconds per time step.
pub const STEP: u64 = 30;

/// The time step now.
pub fn now_step() -> u64 {
    crate::unix_now() / STEP
}

/// The 6-digit code of `secret` at time step `step`.
pub fn code(secret: &[u8], step: u64) -> String {
    // HMAC accepts a key of any length; the error case cannot happen.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

/// Decodes RFC 4648 base32 (upper or lower case, padding optional), the
/// form mfad returns a secret in.
pub fn base32_decode(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(Error::Protocol("a secret from mfad is not base32".into())),
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Checks this implementation against the SHA-1 vectors of RFC 6238
/// (appendix B, last 6 digits) before anything is measured with it.
pub fn self_check() -> Result<()> {
    let secret = b"12345678901234567890";
    let vectors = [
        (59u64, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
        (20_000_000_000, "353130"),
    ];
    for (t, want) in vectors {
        let got = code(secret, t / STEP);
        if got != want {
            return Err(Error::Protocol(format!(
                "the TOTP code of this benchmark fails RFC 6238's vector at T={t}"
            )));
        }
    }
    // "12345678901234567890" in base32.
    if base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")? != secret {
        return Err(Error::Protocol(
            "the base32 decoder of this benchmark is wrong".into(),
        ));
    }
    Ok(())
}
