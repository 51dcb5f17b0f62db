//! The crate's one error type.

/// What can go wrong in one authentication or account check, sorted by
/// what the module does about it (see [`crate::flow`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libpam would not tell us who is logging in.
    #[error("cannot get the user name: {0}")]
    User(String),

    /// The conversation failed: the user hit Ctrl-D, the client went away,
    /// or there is no conversation function.
    #[error("the conversation failed: {0}")]
    Conversation(String),

    /// The PAM environment could not be read or changed (pam_putenv
    /// failed). Names the variable only, never its value.
    #[error("cannot change the PAM environment: {0}")]
    Environment(String),

    /// mfad could not be asked: no bus, no owner for org.mfad.Mfa1, a
    /// timeout, a dropped connection, a protocol error. `failmode` decides.
    #[error("mfad is unavailable: {0}")]
    Unavailable(String),

    /// The module's arguments are unsafe to act on: a `bus=` that is not
    /// one `unix:path=` address. Refused in either failmode: `failmode=safe`
    /// must not turn a bad service file into logins without a code.
    #[error("configuration error: {0}")]
    Config(String),

    /// Whoever owns org.mfad.Mfa1 is not root: an impostor that could
    /// answer `ignore` or `allow`. Refused in either failmode.
    #[error("refusing an impostor: {0}")]
    Impostor(String),

    /// mfad answered with one of its own errors (`org.mfad.Mfa1.Error.*`,
    /// also ones this version does not know); its message is a sentence
    /// for the user.
    #[error("mfad refused: {}: {}", .0.kind().unwrap_or_default(), .0.message())]
    Refused(mfa_api::Error),
}

impl Error {
    /// Sorts an error from a proxy call: mfad's own errors are answers,
    /// everything else (transport, bus, timeout) means mfad could not be
    /// asked.
    pub fn from_api(e: mfa_api::Error) -> Error {
        if e.is_refusal() {
            Error::Refused(e)
        } else {
            Error::Unavailable(e.message())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfad_errors_are_refusals_and_transport_errors_are_unavailability() {
        let e = Error::from_api(mfa_api::Error::LockedOut("Too many.".into()));
        assert!(matches!(&e, Error::Refused(mfa_api::Error::LockedOut(m)) if m == "Too many."));
        assert_eq!(e.to_string(), "mfad refused: LockedOut: Too many.");
        let e = Error::from_api(mfa_api::Error::ZBus(zbus::Error::InterfaceNotFound));
        assert!(matches!(e, Error::Unavailable(_)));
        let e = Error::from_api(mfa_api::Error::ZBus(zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.DBus.Error.ServiceUnknown")
                .unwrap(),
            Some("The name is not activatable".into()),
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        )));
        assert!(matches!(e, Error::Unavailable(_)));
    }

    #[test]
    fn an_mfad_error_this_version_does_not_know_is_a_refusal() {
        let e = Error::from_api(mfa_api::Error::ZBus(zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.mfad.Mfa1.Error.Bogus").unwrap(),
            Some("Something new.".into()),
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        )));
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
        assert_eq!(e.to_string(), "mfad refused: Bogus: Something new.");
    }
}
