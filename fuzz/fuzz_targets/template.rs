//! SMS templates: `Template::parse` for both kinds of keys, then `render`.
//! A substituted value is never read as a template again, so rendering
//! with values that look like placeholders grows the text by exactly their
//! length per placeholder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfad::gateway::template::{Template, Values, FIELD_VARS, MESSAGE_VARS};

/// The input: one byte (odd: the `message` key, even: a form field), then
/// the template, then optionally a NUL and a value to render with.
struct Input<'a> {
    source: &'a str,
    message_key: bool,
    value: &'a str,
}

fn input(data: &[u8]) -> Option<Input<'_>> {
    let (kind, rest) = data.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let (source, value) = text.split_once('\0').unwrap_or((text, ""));
    Some(Input {
        source,
        message_key: kind % 2 == 1,
        value,
    })
}

fn all(v: &str) -> Values<'_> {
    Values {
        phone: v,
        sender: v,
        message: v,
        code: v,
        host: v,
        user: v,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = input(data) else {
        return;
    };
    let (key, allowed) = if input.message_key {
        ("sms.message", MESSAGE_VARS)
    } else {
        ("sms.http.form.Body", FIELD_VARS)
    };
    let template = match Template::parse(input.source, key, allowed) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.contains('\n'), "one line: {e:?}");
            assert!(e.starts_with(key), "names the key: {e:?}");
            return;
        }
    };
    assert_eq!(template.to_string(), input.source);
    let base = template.render(&all("")).len();
    let placeholders = template.render(&all("x")).len() - base;
    for v in ["{code}", "{{", "}", input.value] {
        assert_eq!(
            template.render(&all(v)).len(),
            base + placeholders * v.len(),
            "{:?} with {v:?}",
            input.source
        );
    }
    if let Some(literal) = template.literal() {
        assert_eq!(placeholders, 0);
        assert_eq!(template.render(&all("x")), literal);
    }
});
