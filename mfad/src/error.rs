//! mfad's one error type, and how it reaches D-Bus callers.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotEnrolled(String),
    #[error("{0}")]
    LockedOut(String),
    #[error("{0}")]
    InvalidCode(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] crate::store::Error),
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Internal(String),
    /// A call reached a wait on the outside world (the SMS gateway) on a
    /// thread that must not wait: nothing was done, and the caller runs
    /// the call again where it may (see `service::sms::without_waiting`).
    #[error("the call must wait for the SMS gateway, and may not on this thread")]
    WouldWait,
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        Error::Bus(zbus::Error::FDO(Box::new(e)))
    }
}

impl From<Error> for mfa_api::Error {
    /// Callers see one sentence. Internal failures are not described to them
    /// (the audit log has the detail), so nothing about storage leaks.
    fn from(e: Error) -> Self {
        use mfa_api::Error as E;
        match e {
            Error::AccessDenied(m) => E::AccessDenied(m),
            Error::NotEnrolled(m) => E::NotEnrolled(m),
            Error::LockedOut(m) => E::LockedOut(m),
            Error::InvalidCode(m) => E::InvalidCode(m),
            Error::InvalidArgument(m) => E::InvalidArgument(m),
            Error::NotFound(m) => E::NotFound(m),
            Error::Expired(m) => E::Expired(m),
            Error::RateLimited(m) => E::RateLimited(m),
            Error::Unavailable(m) => E::Unavailable(m),
            // Not an answer of mfad's own (org.mfad.Mfa1.Error.*): the PAM
            // module then treats mfad as unavailable and its failmode
            // decides, as when mfad is down; a refusal would lock users out
            // of every host while the shared database is away.
            Error::Storage(crate::store::Error::Unavailable(_)) => {
                E::ZBus(zbus::Error::FDO(Box::new(zbus::fdo::Error::NoServer(
                    "mfad cannot reach its state database; see its log.".into(),
                ))))
            }
            Error::Config(_)
            | Error::Storage(_)
            | Error::Bus(_)
            | Error::Io(_)
            | Error::Internal(_)
            | Error::WouldWait => {
                E::Internal("mfad failed to handle the request; see its log.".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailability_not_a_refusal() {
        let e = mfa_api::Error::from(Error::Storage(crate::store::Error::Unavailable(
            "connection refused".into(),
        )));
        assert!(!e.is_refusal(), "{}", e.error_name());
        assert!(!e.error_name().starts_with(mfa_api::ERROR_PREFIX));
        assert!(!e.message().contains("connection refused"));
        let e = mfa_api::Error::from(Error::Storage(crate::store::Error::Backend("x".into())));
        assert!(e.is_refusal());
    }
}
