//! mfactl's one error type. Every variant displays as one sentence on one
//! line; `main` prints it after `mfactl: ` and exits with `exit_code()`.

use std::io;

use zbus::fdo;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing owns org.mfad.Mfa1, or the bus itself is not there.
    #[error("mfad is not running (nothing serves {} on {})", mfa_api::BUS_NAME, bus_label(.bus))]
    NotRunning { bus: String },

    /// The daemon (or the bus, for its own policy) refused: its message.
    #[error("{0}")]
    Daemon(String),

    /// Any other trouble talking to the bus.
    #[error("cannot talk to mfad on {}: {detail}", bus_label(.bus))]
    Bus { bus: String, detail: String },

    /// The user gave no (or unusable) input at a prompt.
    #[error("{0}")]
    Input(String),

    /// Wrong use of the command line that clap cannot see (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file mfactl reads or writes itself (the break-glass codes).
    #[error("{0}")]
    File(String),

    #[error("cannot draw the QR code: {0}")]
    Qr(String),

    #[error("cannot read standard input: {0}")]
    Stdin(io::Error),

    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl Error {
    /// 2 for usage errors (as clap), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The message as printed: one line, whatever the daemon or bus sent.
    pub fn line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// "the system bus" for "system", else the address as given.
fn bus_label(bus: &str) -> String {
    if bus == "system" {
        "the system bus".to_string()
    } else {
        bus.to_string()
    }
}

/// Collapses line breaks and runs of white space, so a message from
/// elsewhere can never become several lines of output.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Maps an error of a call to mfad. The daemon's own errors (also ones this
/// version does not know) carry a sentence meant for the user; everything
/// else is the transport's.
pub fn from_api(e: mfa_api::Error, bus: &str) -> Error {
    if !e.is_refusal() {
        if let mfa_api::Error::ZBus(z) = e {
            return from_zbus(z, bus);
        }
    }
    let m = e.message();
    if m.trim().is_empty() {
        Error::Daemon(format!("mfad refused the request ({})", e.error_name()))
    } else {
        Error::Daemon(m)
    }
}

/// Maps a transport error (connecting, the bus's own replies).
pub fn from_zbus(e: zbus::Error, bus: &str) -> Error {
    let bus = bus.to_string();
    match e {
        zbus::Error::FDO(f) => from_fdo(*f, bus),
        zbus::Error::InputOutput(io) | zbus::Error::Connection(io, _) => from_io(&io, bus),
        zbus::Error::Address(detail) => {
            Error::Usage(format!("invalid bus address {bus:?}: {detail}"))
        }
        zbus::Error::Handshake(detail) => Error::Bus {
            bus,
            detail: format!("the bus refused the connection ({detail})"),
        },
        zbus::Error::MethodError(name, desc, _) => {
            Error::Daemon(desc.unwrap_or_else(|| name.to_string()))
        }
        other => Error::Bus {
            bus,
            detail: other.to_string(),
        },
    }
}

/// Connecting failed, or the connection broke.
fn from_io(io: &io::Error, bus: String) -> Error {
    match io.kind() {
        // No socket file, or nobody listening on it: no bus, so no mfad.
        io::ErrorKind::NotFound
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Error::NotRunning { bus },
        io::ErrorKind::PermissionDenied => Error::Bus {
            bus,
            detail: "permission denied on the bus socket".into(),
        },
        _ => Error::Bus {
            bus,
            detail: io.to_string(),
        },
    }
}

/// The bus daemon's standard errors (org.freedesktop.DBus.Error.*).
fn from_fdo(e: fdo::Error, bus: String) -> Error {
    match e {
        // No owner of the name; on the real system bus, activation failed.
        fdo::Error::ServiceUnknown(_)
        | fdo::Error::NameHasNoOwner(_)
        | fdo::Error::NoServer(_)
        | fdo::Error::Disconnected(_)
        | fdo::Error::SpawnExecFailed(_)
        | fdo::Error::SpawnForkFailed(_)
        | fdo::Error::SpawnChildExited(_)
        | fdo::Error::SpawnChildSignaled(_)
        | fdo::Error::SpawnFailed(_)
        | fdo::Error::SpawnFailedToSetup(_)
        | fdo::Error::SpawnConfigInvalid(_)
        | fdo::Error::SpawnServiceNotValid(_)
        | fdo::Error::SpawnServiceNotFound(_)
        | fdo::Error::SpawnPermissionsInvalid(_)
        | fdo::Error::SpawnFileInvalid(_)
        | fdo::Error::SpawnNoMemory(_) => Error::NotRunning { bus },
        // The bus policy refused the call; its message says which rule.
        fdo::Error::AccessDenied(m) => Error::Daemon(m),
        fdo::Error::NoReply(_) | fdo::Error::Timeout(_) | fdo::Error::TimedOut(_) => Error::Bus {
            bus,
            detail: "it did not answer (it may have stopped)".into(),
        },
        fdo::Error::UnknownMethod(_)
        | fdo::Error::UnknownInterface(_)
        | fdo::Error::UnknownObject(_)
        | fdo::Error::InvalidArgs(_) => Error::Bus {
            bus,
            detail: "it does not offer this call (is it another version than mfactl?)".into(),
        },
        other => Error::Bus {
            bus,
            detail: zbus::DBusError::description(&other)
                .unwrap_or("unknown error")
                .to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const BUS: &str = "unix:path=/tmp/x/bus";

    fn fdo_err(e: fdo::Error) -> mfa_api::Error {
        mfa_api::Error::ZBus(zbus::Error::FDO(Box::new(e)))
    }

    fn io_err(kind: io::ErrorKind) -> zbus::Error {
        zbus::Error::InputOutput(Arc::new(io::Error::from(kind)))
    }

    #[test]
    fn no_owner_or_no_bus_is_mfad_not_running() {
        let expected = "mfad is not running (nothing serves org.mfad.Mfa1 on unix:path=/tmp/x/bus)";
        for e in [
            fdo_err(fdo::Error::ServiceUnknown(
                "The name is not activatable".into(),
            )),
            fdo_err(fdo::Error::NameHasNoOwner("no owner".into())),
            mfa_api::Error::ZBus(io_err(io::ErrorKind::NotFound)),
            mfa_api::Error::ZBus(io_err(io::ErrorKind::ConnectionRefused)),
            mfa_api::Error::ZBus(zbus::Error::Connection(
                Arc::new(io::Error::from(io::ErrorKind::NotFound)),
                Box::new(BUS.parse().expect("address")),
            )),
        ] {
            let m = from_api(e, BUS);
            assert_eq!(m.line(), expected);
            assert_eq!(m.exit_code(), 1);
        }
        assert_eq!(
            from_zbus(io_err(io::ErrorKind::NotFound), "system").line(),
            "mfad is not running (nothing serves org.mfad.Mfa1 on the system bus)"
        );
    }

    #[test]
    fn daemon_errors_are_their_message() {
        for e in [
            mfa_api::Error::AccessDenied("Only root may act for another user.".into()),
            mfa_api::Error::InvalidCode("That code is wrong.".into()),
            mfa_api::Error::Expired("The enrollment expired.".into()),
            mfa_api::Error::NotFound("No device x.".into()),
            mfa_api::Error::LockedOut("Too many failed attempts.".into()),
            mfa_api::Error::Unavailable(
                "SMS is not configured on this host; ask the administrator.".into(),
            ),
            mfa_api::Error::RateLimited("Too many codes sent; try again later.".into()),
            mfa_api::Error::InvalidArgument(
                "Give the phone number in international form, like +37255512345.".into(),
            ),
        ] {
            let want = e.message();
            let m = from_api(e, BUS);
            assert_eq!(m.line(), want);
            assert_eq!(m.exit_code(), 1);
        }
    }

    #[test]
    fn errors_of_a_newer_mfad_are_its_message_or_name() {
        let reply = |desc: Option<&str>| {
            mfa_api::Error::ZBus(zbus::Error::MethodError(
                zbus::names::OwnedErrorName::try_from("org.mfad.Mfa1.Error.Bogus").expect("name"),
                desc.map(String::from),
                zbus::message::Message::method_call("/", "Status")
                    .build(&())
                    .expect("message"),
            ))
        };
        let m = from_api(reply(Some("Something new.")), BUS);
        assert_eq!(m.line(), "Something new.");
        assert_eq!(m.exit_code(), 1);
        let m = from_api(reply(None), BUS);
        assert_eq!(
            m.line(),
            "mfad refused the request (org.mfad.Mfa1.Error.Bogus)"
        );
        let m = from_api(mfa_api::Error::Internal(" ".into()), BUS);
        assert_eq!(
            m.line(),
            "mfad refused the request (org.mfad.Mfa1.Error.Internal)"
        );
    }

    #[test]
    fn bus_access_denied_is_its_message_on_one_line() {
        let m = from_api(
            fdo_err(fdo::Error::AccessDenied(
                "Rejected send message,\n2 rules".into(),
            )),
            BUS,
        );
        assert_eq!(m.line(), "Rejected send message, 2 rules");
    }

    #[test]
    fn other_transport_errors_name_the_bus() {
        let m = from_api(fdo_err(fdo::Error::NoReply("gone".into())), BUS);
        assert!(m
            .line()
            .starts_with("cannot talk to mfad on unix:path=/tmp/x/bus: "));
        let m = from_zbus(io_err(io::ErrorKind::PermissionDenied), BUS);
        assert!(m.line().contains("permission denied"), "{}", m.line());
        let m = from_zbus(zbus::Error::Address("bad".into()), "nonsense");
        assert_eq!(m.exit_code(), 2);
        assert!(m.line().starts_with("invalid bus address \"nonsense\""));
    }

    #[test]
    fn messages_are_one_line_and_have_no_debug_output() {
        let m = Error::Daemon("a\nb\r\n c".into());
        assert_eq!(m.line(), "a b c");
        let m = from_zbus(zbus::Error::InvalidReply, BUS);
        assert!(!m.line().contains("InvalidReply"), "{}", m.line());
    }
}
