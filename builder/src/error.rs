//! Build errors that say which instruction failed, where, and why.

use berth_grammar::ParseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A step failed: `where_` is `Dockerfile:LINE`, `excerpt` the source
    /// lines around it with the failing one marked, as BuildKit prints them.
    #[error("{where_}: {instruction}: {reason}\n{excerpt}")]
    Step {
        where_: String,
        instruction: String,
        reason: String,
        excerpt: String,
    },
    /// A Dockerfile or flag the build cannot follow (before any step runs).
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    #[error(transparent)]
    Runner(#[from] berth_runner::Error),
    /// A layer the build's cache named could not be had when the image was written.
    #[error("{0}")]
    CacheFetch(String),
    #[error("build interrupted")]
    Interrupted,
}

/// A step's failure before the builder knows which step it is in.
#[derive(Debug)]
pub struct StepFailure(pub String);

impl<E: std::fmt::Display> From<E> for StepFailure {
    fn from(e: E) -> Self {
        StepFailure(e.to_string())
    }
}

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
