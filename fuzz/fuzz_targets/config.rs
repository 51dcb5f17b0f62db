//! `Config::parse` on any text: a config or a one-line error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mfad::config::Config;

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new("/etc/mfad/mfad.toml")) {
        // What parses must pass its own checks again (no state in parse).
        Ok(config) => {
            let limits = config.lockout_limits();
            assert!(limits.max_failures >= 1);
            assert!(limits.duration_secs >= 0);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "a config error is one line: {msg:?}");
            assert!(
                msg.contains("/etc/mfad/mfad.toml"),
                "names the file: {msg:?}"
            );
        }
    }
});
