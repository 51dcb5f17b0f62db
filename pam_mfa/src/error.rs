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

    /// mfad answered with one of its own errors (`org.mfad.Mfa1.Error.*`);
    /// `message` is its sentence for the user.
    #[error("mfad refused: {kind}: {message}")]
    Refused { kind: &'static str, message: String },
}

impl Error {
    /// Sorts an error from a proxy call: mfad's own errors are answers,
    /// everything else (transport, bus, timeout) means mfad could not be
    /// asked.
    pub fn from_api(e: mfa_api::Error) -> Error {
        use mfa_api::Error as E;
        let kind = match &e {
            E::ZBus(z) => return Error::Unavailable(z.to_string()),
            E::AccessDenied(_) => "AccessDenied",
            E::NotEnrolled(_) => "NotEnrolled",
            E::LockedOut(_) => "LockedOut",
            E::InvalidCode(_) => "InvalidCode",
            E::InvalidArgument(_) => "InvalidArgument",
            E::NotFound(_) => "NotFound",
            E::Expired(_) => "Expired",
            E::RateLimited(_) => "RateLimited",
            E::Unavailable(_) => "Unavailable",
            E::Internal(_) => "Internal",
        };
        Error::Refused {
            kind,
            message: e.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfad_errors_are_refusals_and_transport_errors_are_unavailability() {
        let e = Error::from_api(mfa_api::Error::LockedOut("Too many.".into()));
        assert!(
            matches!(&e, Error::Refused { kind: "LockedOut", message } if message == "Too many.")
        );
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
}
