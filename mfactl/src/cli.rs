//! The command line. Its shape is a contract with scripts and the
//! integration tests: `mfactl [--bus ADDRESS] [--json] COMMAND`.

use clap::{ArgGroup, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mfactl",
    version,
    about = "Enroll an authenticator app or a phone for two-step login verification, and administer mfad",
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
        /// A current code from the app or SMS, or a backup code (asked for
        /// if omitted; at the prompt, Enter sends one by SMS).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Replace your backup codes with ten new ones (needs a code).
    BackupCodes {
        /// A current code from the app or SMS, or a backup code (asked for
        /// if omitted; at the prompt, Enter sends one by SMS).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Your phone for codes by SMS.
    Phone {
        #[command(subcommand)]
        command: PhoneCommand,
    },
    /// List or remove your trusted devices (those that log in without a code).
    Trusted {
        #[command(subcommand)]
        command: TrustedCommand,
    },
    /// Show how long your verified logins last, or choose a shorter
    /// duration (e.g. "4h", "90m", "3600"; "default" goes back to the
    /// administrator's limit). Applies to sessions opened after the change.
    SessionDuration {
        #[arg(value_name = "DURATION|default")]
        duration: Option<String>,
    },
    /// List your live login sessions that end after their duration.
    Sessions,
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
    /// A phone that receives codes by SMS.
    ///
    /// With PHONE only: sends a code to it and asks for it (an empty answer
    /// sends a new one); if you already have a device, first asks for a
    /// current code. Scripts use PHONE --begin (the current code, when
    /// needed, on stdin), then --resend ID if needed, then --confirm ID CODE
    /// (CODE may come on stdin instead).
    Sms(SmsArgs),
}

#[derive(Debug, Args)]
pub struct SmsArgs {
    /// The phone number in international (E.164) form, e.g. +37255512345.
    #[arg(
        value_name = "PHONE",
        required_unless_present_any = ["resend", "confirm"],
        conflicts_with_all = ["resend", "confirm"]
    )]
    pub phone: Option<String>,

    /// Only start the enrollment: send the code and print the enrollment id.
    #[arg(long, requires = "phone")]
    pub begin: bool,

    /// Send a new code for enrollment ID (the codes sent before keep working).
    #[arg(long, value_name = "ID", conflicts_with_all = ["begin", "confirm"])]
    pub resend: Option<String>,

    /// Finish enrollment ID with the code sent by SMS (read from stdin when
    /// CODE is omitted).
    #[arg(
        long,
        num_args = 1..=2,
        value_names = ["ID", "CODE"],
        conflicts_with = "begin"
    )]
    pub confirm: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
pub enum PhoneCommand {
    /// Change your number: sends a code to the new one and asks for it; the
    /// old number keeps working until then. Needs a current code.
    Set {
        /// The new number in international (E.164) form, e.g. +37255512345.
        #[arg(value_name = "PHONE")]
        phone: String,
    },
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

    /// A current code (authenticator app, SMS or backup code), needed once
    /// you have a device; asked for when omitted. Other users can see
    /// command lines (ps): the prompt or stdin is safer.
    #[arg(long, value_name = "CODE", conflicts_with = "confirm")]
    pub code: Option<String>,

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
    List {
        /// Instead, the users who must use 2-step and have no device, with
        /// the time left of their grace period.
        #[arg(long)]
        missing: bool,
    },
    /// Show one user's devices, backup codes left and lockout state.
    Status {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Remove every device, backup code, trusted device and lockout of a
    /// user (lost phone).
    Reset {
        #[arg(value_name = "USER")]
        user: String,
        /// End the user's limited login sessions too.
        #[arg(long)]
        end_sessions: bool,
    },
    /// List the live limited login sessions of USER, or of everyone.
    Sessions {
        #[arg(value_name = "USER")]
        user: Option<String>,
    },
    /// End a login session now (its id as `admin sessions` shows it).
    EndSession {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Remove one of a user's devices (a lost phone), without a code.
    Remove {
        #[arg(value_name = "USER")]
        user: String,
        /// The device's id, as `admin status USER` shows it.
        #[arg(value_name = "DEVICE_ID")]
        device_id: String,
    },
    /// Emergency codes for when mfad cannot be asked (root only): with
    /// --generate, prints new one-time codes and stores their salted hashes
    /// in a root-only file (the old codes stop working). pam_mfa accepts
    /// them with its `breakglass=PATH` argument.
    BreakGlass {
        /// Make new codes (required: the command only generates).
        #[arg(long, required = true)]
        generate: bool,
        /// How many codes, 1 to 100.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
        count: u16,
        /// Where to store the hashes.
        #[arg(long, value_name = "PATH", default_value = mfa_api::breakglass::DEFAULT_PATH)]
        file: std::path::PathBuf,
    },
    /// Clear a user's failed attempts and lockout.
    Unlock {
        #[arg(value_name = "USER")]
        user: String,
    },
    /// List a user's trusted devices, or remove them with `remove ID|--all`.
    Trusted {
        #[arg(value_name = "USER")]
        user: String,
        /// Without one, the devices are listed.
        #[command(subcommand)]
        command: Option<AdminTrustedCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustedCommand {
    /// Show each trusted device: its SSH key fingerprint or host, first and
    /// last use, and when the trust expires.
    List,
    /// Stop trusting a device, or all of them: their next login asks for a code.
    Remove(TrustedRemove),
}

#[derive(Debug, Subcommand)]
pub enum AdminTrustedCommand {
    /// Stop trusting one of the user's devices, or all of them.
    Remove(TrustedRemove),
}

/// Exactly one of ID and --all (clap enforces it: usage error otherwise).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct TrustedRemove {
    /// The trusted device's id, as `trusted list` shows it.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Every trusted device.
    #[arg(long)]
    pub all: bool,
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

    fn sms(args: &[&str]) -> Result<SmsArgs, clap::Error> {
        let mut all = vec!["enroll", "sms"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Command::Enroll {
                kind: EnrollKind::Sms(a),
            } => Ok(a),
            other => panic!("not enroll sms: {other:?}"),
        }
    }

    #[test]
    fn enroll_sms_forms() {
        let a = sms(&["+37255512345"]).expect("parse");
        assert_eq!(a.phone.as_deref(), Some("+37255512345"));
        assert!(!a.begin && a.resend.is_none() && a.confirm.is_none());
        let a = sms(&["+37255512345", "--begin"]).expect("parse");
        assert!(a.begin);
        let a = sms(&["--resend", "e1"]).expect("parse");
        assert_eq!(a.resend.as_deref(), Some("e1"));
        assert!(a.phone.is_none());
        let a = sms(&["--confirm", "e1"]).expect("parse");
        assert_eq!(a.confirm, Some(vec!["e1".to_string()]));
        let a = sms(&["--confirm", "e1", "123456", "--json"]).expect("parse");
        assert_eq!(
            a.confirm,
            Some(vec!["e1".to_string(), "123456".to_string()])
        );
        for bad in [
            &[][..],
            &["--begin"],
            &["+37255512345", "--resend", "e1"],
            &["+37255512345", "--confirm", "e1"],
            &["--begin", "--confirm", "e1"],
            &["--resend", "e1", "--confirm", "e1"],
            &["--confirm", "e1", "123456", "654321"],
            &["--confirm"],
            &["--resend"],
            &["+37255512345", "+37255512346"],
        ] {
            let e = sms(bad).expect_err("usage error");
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn phone_set() {
        let c = parse(&["phone", "set", "+37255512345"]).expect("parse");
        let Command::Phone {
            command: PhoneCommand::Set { phone },
        } = c.command
        else {
            panic!("not phone set");
        };
        assert_eq!(phone, "+37255512345");
        for bad in [
            &["phone"][..],
            &["phone", "set"],
            &["phone", "set", "+1", "+2"],
        ] {
            assert_eq!(parse(bad).expect_err("usage").exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["frobnicate"][..],
            &["enroll", "sms"],
            &["admin", "reset"],
            &["remove"],
            &[],
            &["trusted"],
            &["trusted", "remove"],
            &["trusted", "remove", "abc", "--all"],
            &["trusted", "remove", "abc", "def"],
            &["trusted", "list", "abc"],
            &["admin", "trusted"],
            &["admin", "trusted", "alice", "remove"],
            &["admin", "trusted", "alice", "remove", "abc", "--all"],
            &["admin", "trusted", "alice", "frobnicate"],
            &["admin", "trusted", "remove", "--all"],
        ] {
            let e = parse(args).expect_err("usage error");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    fn trusted_remove(c: Cli) -> Option<(Option<String>, TrustedRemove)> {
        match c.command {
            Command::Trusted {
                command: TrustedCommand::Remove(r),
            } => Some((None, r)),
            Command::Admin {
                command:
                    AdminCommand::Trusted {
                        user,
                        command: Some(AdminTrustedCommand::Remove(r)),
                    },
            } => Some((Some(user), r)),
            _ => None,
        }
    }

    #[test]
    fn trusted_commands() {
        let c = parse(&["trusted", "list"]).expect("parse");
        assert!(matches!(
            c.command,
            Command::Trusted {
                command: TrustedCommand::List
            }
        ));
        let (user, r) = trusted_remove(parse(&["trusted", "remove", "ab12"]).expect("parse"))
            .expect("trusted remove");
        assert_eq!((user, r.id.as_deref(), r.all), (None, Some("ab12"), false));
        let (user, r) =
            trusted_remove(parse(&["--json", "trusted", "remove", "--all"]).expect("parse"))
                .expect("trusted remove");
        assert_eq!((user, r.id, r.all), (None, None, true));
    }

    #[test]
    fn admin_trusted_commands() {
        let c = parse(&["admin", "trusted", "alice"]).expect("parse");
        let Command::Admin {
            command: AdminCommand::Trusted { user, command },
        } = c.command
        else {
            panic!("not admin trusted");
        };
        assert_eq!(user, "alice");
        assert!(command.is_none());
        let (user, r) =
            trusted_remove(parse(&["admin", "trusted", "alice", "remove", "ab12"]).expect("parse"))
                .expect("admin trusted remove");
        assert_eq!(
            (user.as_deref(), r.id.as_deref(), r.all),
            (Some("alice"), Some("ab12"), false)
        );
        let (user, r) = trusted_remove(
            parse(&["admin", "trusted", "alice", "remove", "--all", "--json"]).expect("parse"),
        )
        .expect("admin trusted remove");
        assert_eq!((user.as_deref(), r.id, r.all), (Some("alice"), None, true));
    }
}
