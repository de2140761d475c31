use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request that cannot be carried out as given (docker's 400).
    #[error("{0}")]
    Invalid(String),
    /// No such network (docker's 404).
    #[error("{0}")]
    NotFound(String),
    /// A name in use, a network in use, an address taken (docker's 409).
    #[error("{0}")]
    Conflict(String),
    /// netavark or aardvark-dns is not installed.
    #[error("{0}")]
    Missing(String),
    /// netavark said no, or the kernel did.
    #[error("{0}")]
    Backend(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn io_at(verb: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        Error::io(format!("cannot {verb} {}", path.display()))
    }
}
