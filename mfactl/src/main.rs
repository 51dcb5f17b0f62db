//! mfactl: enroll an authenticator app for two-step login verification and
//! administer mfad, over the org.mfad.Mfa1 D-Bus interface.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod error;
mod input;
mod output;
mod qr;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2 (0 for --help).
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing more to do if even stderr is gone.
            let _ = writeln!(std::io::stderr(), "mfactl: {}", e.line());
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
