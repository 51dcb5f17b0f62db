//! `verify::normalize` on any bytes, against a plain statement of the rule:
//! ASCII spaces dropped, then one or more ASCII digits, from at most 64 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad::service::verify::normalize;

fuzz_target!(|raw: &[u8]| {
    let kept: Vec<u8> = raw.iter().copied().filter(|b| *b != b' ').collect();
    let expected = (raw.len() <= 64 && !kept.is_empty() && kept.iter().all(u8::is_ascii_digit))
        .then(|| String::from_utf8(kept).ok())
        .flatten();
    assert_eq!(normalize(raw), expected);
});
