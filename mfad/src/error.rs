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
            Error::Config(_)
            | Error::Storage(_)
            | Error::Bus(_)
            | Error::Io(_)
            | Error::Internal(_) => {
                E::Internal("mfad failed to handle the request; see its log.".into())
            }
        }
    }
}
