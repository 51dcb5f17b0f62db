//! The command line. Its shape is a contract with scripts and the
//! integration tests: `mfactl [--bus ADDRESS] [--json] COMMAND`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mfactl",
    version,
    about = "Enroll an authenticator app for two-step login verification, and administer mfad",
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The bus where mfad serves org.mfad.Mfa1: "system" or a D-Bus address
    /// such as unix:path=/run/x/bus. The environment is never consulted.
    #[arg(long, global = true, value_name = "ADDRESS", default_value = "system")]
    pub bus: String,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll a second factor for yourself.
    Enroll {
        #[command(subcommand)]
        kind: EnrollKind,
    },
    /// Show your devices, backup codes left and lockout state.
    Status,
    /// Remove one of your devices (needs a current code or a backup code).
    Remove {
        /// The device id, as `mfactl status` shows it.
        #[arg(value_name = "DEVICE_ID")]
        device_id: String,
        /// A current code from the app, or a backup code (asked for if omitted).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Replace your backup codes with ten new ones (needs a code).
    BackupCodes {
        /// A current code from the app, or a backup code (asked for if omitted).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Administer users (root or members of mfad's admin group).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollKind {
    /// An authenticator app (TOTP): Google Authenticator, Aegis, FreeOTP, 1Password, ...
    ///
    /// Without --begin or --confirm: shows a QR code, the secret and the
    /// otpauth URI, asks for two consecutive codes, then shows the backup
    /// codes. Scripts use --begin, then --confirm ID CODE1 CODE2; the codes
    /// may instead come one per line on stdin, since arguments are visible
    /// to other users in `ps`.
    Totp(TotpArgs),
}

#[derive(Debug, Args)]
pub struct TotpArgs {
    /// A name for the device, shown by `mfactl status`.
    #[arg(long, value_name = "NAME", conflicts_with = "confirm")]
    pub name: Option<String>,

    /// Only start the enrollment: print its id, the secret and the otpauth URI.
    #[arg(long, conflicts_with = "confirm")]
    pub begin: bool,

    /// Finish the enrollment ID with two consecutive codes.
    #[arg(long, value_name = "ID")]
    pub confirm: Option<String>,

    /// The code shown now (read from stdin when omitted).
    #[arg(value_name = "CODE1", requires = "confirm", requires = "code2")]
    pub code1: Option<String>,

    /// The next code after CODE1.
    #[arg(value_name = "CODE2", requires = "code1")]
    pub code2: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List every user with a device or lockout state.
    List,
    /// Show one user's devices, backup codes left and lockout state.
    Status {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Remove every device, backup code and lockout of a user (lost phone).
    Reset {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Clear a user's failed attempts and lockout.
    Unlock {
        #[arg(value_name = "USER")]
        user: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mfactl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bus_defaults_to_system_and_is_global() {
        let c = parse(&["status"]).expect("parse");
        assert_eq!(c.bus, "system");
        assert!(!c.json);
        let c = parse(&["admin", "list", "--bus", "unix:path=/x", "--json"]).expect("parse");
        assert_eq!(c.bus, "unix:path=/x");
        assert!(c.json);
    }

    #[test]
    fn confirm_takes_both_codes_or_none() {
        let c = parse(&["enroll", "totp", "--confirm", "id", "1", "2"]).expect("parse");
        let Command::Enroll {
            kind: EnrollKind::Totp(t),
        } = c.command
        else {
            panic!("not enroll totp");
        };
        assert_eq!(t.confirm.as_deref(), Some("id"));
        assert_eq!(t.code1.as_deref(), Some("1"));
        assert_eq!(t.code2.as_deref(), Some("2"));
        assert!(parse(&["enroll", "totp", "--confirm", "id"]).is_ok());
        assert!(parse(&["enroll", "totp", "--confirm", "id", "1"]).is_err());
        assert!(parse(&["enroll", "totp", "1", "2"]).is_err());
        assert!(parse(&["enroll", "totp", "--begin", "--confirm", "id"]).is_err());
        assert!(parse(&["enroll", "totp", "--begin", "--name", "phone"]).is_ok());
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["frobnicate"][..],
            &["enroll", "sms"],
            &["admin", "reset"],
            &["remove"],
            &[],
        ] {
            let e = parse(args).expect_err("usage error");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
