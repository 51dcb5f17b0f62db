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
    #[error("mfad refused: {}: {}", .0.kind, .0.message)]
    Refused(Refusal),
}

/// One of mfad's own errors, as its reply carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The name after `org.mfad.Mfa1.Error.` (`"LockedOut"`).
    pub kind: String,
    /// A sentence for the user.
    pub message: String,
}

impl Refusal {
    pub fn new(kind: &str, message: &str) -> Refusal {
        Refusal {
            kind: kind.to_string(),
            message: message.to_string(),
        }
    }

    /// mfad does not know the attempt (`NotFound`): it restarted during
    /// the login.
    pub fn is_not_found(&self) -> bool {
        self.kind == "NotFound"
    }
}

impl Error {
    /// Sorts an error reply by its D-Bus name: mfad's own errors
    /// (`org.mfad.Mfa1.Error.*`, see [`mfa_api::error_kind`]) are answers,
    /// any other (from the bus, say) means mfad could not be asked.
    pub fn from_reply(what: &str, name: &str, message: &str) -> Error {
        match mfa_api::error_kind(name) {
            Some(kind) => Error::Refused(Refusal::new(kind, message)),
            None => Error::Unavailable(format!("{what}: {name}: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfad_errors_are_refusals_and_other_errors_are_unavailability() {
        let e = Error::from_reply("Login.Begin", "org.mfad.Mfa1.Error.LockedOut", "Too many.");
        assert_eq!(e.to_string(), "mfad refused: LockedOut: Too many.");
        assert!(matches!(&e, Error::Refused(r) if *r == Refusal::new("LockedOut", "Too many.")));
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.mfad.Mfa1.ErrorX.LockedOut",
            "org.mfad.Mfa1.Errors",
            "",
        ] {
            let e = Error::from_reply("Login.Begin", name, "The name is not activatable");
            assert!(
                matches!(&e, Error::Unavailable(m) if m.contains("Login.Begin") && m.contains(name)),
                "{name:?}: {e:?}"
            );
        }
    }

    #[test]
    fn an_mfad_error_this_version_does_not_know_is_a_refusal() {
        let e = Error::from_reply(
            "Login.Answer",
            "org.mfad.Mfa1.Error.Bogus",
            "Something new.",
        );
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
        assert_eq!(e.to_string(), "mfad refused: Bogus: Something new.");
    }

    #[test]
    fn not_found_is_told_apart() {
        assert!(Refusal::new("NotFound", "No such attempt.").is_not_found());
        assert!(!Refusal::new("Expired", "Too slow.").is_not_found());
    }
}
