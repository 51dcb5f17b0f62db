//! The otpauth URI as a QR code in the terminal: the rendering is shared
//! with pam_mfa (`mfa_api::qr`); on a terminal, `colorize` pins the colours
//! (bright white on black) so the code also scans on dark-text-on-light
//! themes; piped output stays plain text.

use crate::error::Error;

/// Renders `data` (the otpauth URI) as text lines, each ending in '\n'.
pub fn render(data: &str) -> Result<String, Error> {
    mfa_api::qr::render(data).map_err(|e| Error::Qr(e.to_string()))
}

/// Pins each line to bright white on black with ANSI SGR codes, for
/// terminals whose own colours would invert the code.
pub fn colorize(rendered: &str) -> String {
    rendered
        .lines()
        .map(|l| format!("\x1b[97;40m{l}\x1b[0m\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colorize_wraps_each_line() {
        let c = colorize("██\n▀▀\n");
        assert_eq!(c, "\x1b[97;40m██\x1b[0m\n\x1b[97;40m▀▀\x1b[0m\n");
    }

    #[test]
    fn too_much_data_is_an_error_not_a_panic() {
        let huge = "x".repeat(10_000);
        assert!(matches!(render(&huge), Err(Error::Qr(_))));
    }
}
