use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the store, with the path, digest or name involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} is corrupt: {why}")]
    CorruptBlob { digest: String, why: String },
    #[error("blob {0} is not in the store")]
    MissingBlob(String),
    #[error("invalid reference format {0:?}: {1}")]
    InvalidReference(String, String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid {what} JSON in {path}: {source}")]
    Json {
        what: &'static str,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsafe layer entry {path:?}: {why}")]
    UnsafeEntry { path: String, why: String },
    #[error("layer refused: {0}")]
    LimitExceeded(String),
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("not a berth store: {0}")]
    NotAStore(PathBuf),
}

/// Adds the context of an I/O error: what was being done to which path.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: what(),
            source: e.into(),
        })
    }
}
