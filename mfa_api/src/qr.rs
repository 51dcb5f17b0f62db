//! The otpauth URI as a QR code in text, two modules per character cell
//! with Unicode half blocks; shared by mfactl (`mfactl enroll totp`) and
//! pam_mfa (enrollment at login), so both draw the same code.
//!
//! Which colour is which: a scanner needs dark modules on a light ground.
//! We draw LIGHT modules (and the quiet zone) with the block characters, in
//! the terminal's foreground colour, and leave DARK modules as blank cells
//! in its background colour — the usual approach (`qrencode -t UTF8` does
//! the same), right on the common light-text-on-dark terminal.

use qrcode::{Color, QrCode};

pub use qrcode::types::QrError;

/// Light modules around the code; the QR specification asks for 4.
pub const QUIET_ZONE: usize = 4;

/// Renders `data` (the otpauth URI) as text lines, each ending in '\n'.
pub fn render(data: &str) -> Result<String, QrError> {
    let code = QrCode::new(data.as_bytes())?;
    let dark: Vec<bool> = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok(render_modules(&dark, code.width()))
}

/// Renders a square of `width` x `width` modules (row-major, true = dark)
/// with the quiet zone. Each text line holds two module rows: the upper one
/// in the top half of the cell, the lower one in the bottom half. Below the
/// last row (the padded size is odd) the cell half is left blank.
pub fn render_modules(dark: &[bool], width: usize) -> String {
    let size = width + 2 * QUIET_ZONE;
    let light = |x: usize, y: usize| -> bool {
        if x < QUIET_ZONE || y < QUIET_ZONE {
            return true;
        }
        let (cx, cy) = (x - QUIET_ZONE, y - QUIET_ZONE);
        if cx >= width || cy >= width {
            return true;
        }
        !dark.get(cy * width + cx).copied().unwrap_or(false)
    };
    let mut out = String::with_capacity(size.div_ceil(2) * (size * 3 + 1));
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let top = light(x, y);
            let bottom = y + 1 < size && light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

/// The secret in groups of 4, for typing it into an app by hand.
pub fn group_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a rendering back into module rows (true = light), padded size
    /// `size`.
    fn decode(text: &str, size: usize) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let mut top = Vec::new();
            let mut bottom = Vec::new();
            for c in line.chars() {
                let (t, b) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?}"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows.truncate(size);
        rows
    }

    #[test]
    fn dimensions_and_quiet_zone() {
        let uri = "otpauth://totp/host:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=host&algorithm=SHA1&digits=6&period=30";
        let code = QrCode::new(uri.as_bytes()).expect("qr");
        let w = code.width();
        let size = w + 2 * QUIET_ZONE;
        let text = render(uri).expect("render");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), size.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == size));
        // Two full lines of quiet zone on top (4 module rows).
        assert!(lines[..QUIET_ZONE / 2]
            .iter()
            .all(|l| l.chars().all(|c| c == '█')));
        // Quiet zone left and right on every line.
        for l in &lines {
            let chars: Vec<char> = l.chars().collect();
            assert!(chars[..QUIET_ZONE].iter().all(|&c| c == '█' || c == '▀'));
            assert!(chars[size - QUIET_ZONE..]
                .iter()
                .all(|&c| c == '█' || c == '▀'));
        }
        // The size is odd, so the last line carries the last light row on
        // top and nothing below.
        assert_eq!(size % 2, 1);
        assert!(lines[lines.len() - 1].chars().all(|c| c == '▀'));
    }

    #[test]
    fn modules_round_trip() {
        let code = QrCode::new(b"otpauth://totp/x:y?secret=AAAA").expect("qr");
        let w = code.width();
        let dark: Vec<bool> = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        let size = w + 2 * QUIET_ZONE;
        let rows = decode(&render_modules(&dark, w), size);
        for y in 0..size {
            for x in 0..size {
                let inside = (QUIET_ZONE..QUIET_ZONE + w).contains(&x)
                    && (QUIET_ZONE..QUIET_ZONE + w).contains(&y);
                let want_light = !inside || !dark[(y - QUIET_ZONE) * w + (x - QUIET_ZONE)];
                assert_eq!(rows[y][x], want_light, "module ({x}, {y})");
            }
        }
    }

    #[test]
    fn finder_pattern_corner_is_dark() {
        // The top-left module of every QR code belongs to a finder pattern.
        let text = render("otpauth://totp/a:b?secret=AAAA").expect("render");
        let line = text.lines().nth(QUIET_ZONE / 2).expect("line");
        let c = line.chars().nth(QUIET_ZONE).expect("cell");
        // Rows 4 and 5 at column 4 are both dark (the finder's outer ring).
        assert_eq!(c, ' ');
    }

    #[test]
    fn secret_groups() {
        assert_eq!(
            group_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
        );
        assert_eq!(group_secret("ABCDEF"), "ABCD EF");
        assert_eq!(group_secret(""), "");
    }

    #[test]
    fn too_much_data_is_an_error_not_a_panic() {
        let huge = "x".repeat(10_000);
        assert!(render(&huge).is_err());
    }
}
