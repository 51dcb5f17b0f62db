//! `phone::parse` and `phone::mask` on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad::phone;

fuzz_target!(|input: &str| {
    match phone::parse(input) {
        Ok(number) => {
            // Stored exactly as given, and E.164.
            assert_eq!(number, input);
            let digits = &number[1..];
            assert!(number.starts_with('+'));
            assert!((7..=15).contains(&digits.len()));
            assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'));
            // The mask keeps the length, three digits at each end, and hides
            // the rest.
            let masked = phone::mask(&number);
            assert_eq!(masked.len(), number.len());
            assert_eq!(masked[..4], number[..4]);
            assert_eq!(masked[masked.len() - 3..], number[number.len() - 3..]);
            assert!(masked[4..masked.len() - 3].bytes().all(|b| b == b'*'));
        }
        Err(e) => assert!(!e.contains('\n'), "one line: {e:?}"),
    }
    // Whatever is stored, masking never panics nor shows more than six
    // characters of it.
    let masked = phone::mask(input);
    let shown = masked.chars().filter(|c| *c != '*' && *c != '+').count();
    assert!(shown <= 6, "{masked:?}");
});
