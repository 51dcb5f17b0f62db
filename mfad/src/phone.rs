//! Phone numbers for SMS: E.164 only, and the masked form users see.

/// Shown with every refused number.
pub const EXAMPLE: &str = "+37255512345";
/// E.164 allows at most 15 digits; the shortest numbers in use have 7.
const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 15;
/// Digits kept visible at each end of a masked number.
const SHOWN: usize = 3;

/// The number if `input` is E.164: `+`, a digit 1-9, then digits only, 7 to
/// 15 digits in all. No spaces or dashes: the number is stored and sent
/// exactly as given, so it has one form.
pub fn parse(input: &str) -> Result<String, String> {
    let refuse = || {
        Err(format!(
            "{} is not a phone number in international (E.164) form; write it like {EXAMPLE}.",
            crate::audit::field(input)
        ))
    };
    let Some(digits) = input.strip_prefix('+') else {
        return refuse();
    };
    if digits.len() < MIN_DIGITS
        || digits.len() > MAX_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return refuse();
    }
    Ok(input.to_string())
}

/// `+37255512345` -> `+372*****345`: enough to recognise one's own phone,
/// not enough to learn someone else's.
pub fn mask(phone: &str) -> String {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    let n = digits.chars().count();
    if n <= 2 * SHOWN {
        return "*".repeat(n.max(1));
    }
    let head: String = digits.chars().take(SHOWN).collect();
    let tail: String = digits.chars().skip(n - SHOWN).collect();
    format!("+{head}{}{tail}", "*".repeat(n - 2 * SHOWN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_as_given() {
        for ok in [
            "+37255512345",
            "+14155550100",
            "+6831234",
            "+123456789012345",
        ] {
            assert_eq!(parse(ok).unwrap(), ok);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_example() {
        for bad in [
            "",
            "+",
            "37255512345",
            "0555",
            "+0123456789",
            "+1 555 1234",
            "+1-555-0100",
            "+1555abc0100",
            "+123456",
            "+1234567890123456",
            "++37255512345",
            "+37255512345\n",
            "+３７２５５５１２３４５",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(EXAMPLE), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn masks_keep_three_digits_at_each_end() {
        assert_eq!(mask("+37255512345"), "+372*****345");
        assert_eq!(mask("+14155550100"), "+141*****100");
        assert_eq!(mask("+6831234"), "+683*234");
    }
}
