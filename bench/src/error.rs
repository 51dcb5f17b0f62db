//! The benchmark's one error type: anything that keeps it from measuring.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A part could not be set up (not root, a tool or file missing, a
    /// process that did not start).
    #[error("{0}")]
    Setup(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A D-Bus call failed.
    #[error("{what}: {source}")]
    Bus {
        what: String,
        #[source]
        source: mfa_api::Error,
    },
    /// Something answered other than it must for a valid code (a wrong
    /// result, a worker's bad output).
    #[error("{0}")]
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `map_err` helper: an I/O error about `path`.
pub fn io_at(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |source| Error::Io { what, source }
}

/// `map_err` helper: an I/O error described by `what`.
pub fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

/// `map_err` helper: a failed D-Bus call.
pub fn bus<E: Into<mfa_api::Error>>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Bus {
        what: what.to_string(),
        source: e.into(),
    }
}
