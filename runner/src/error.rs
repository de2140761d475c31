/// Why a container could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid runtime spec: {0}")]
    Spec(String),
    #[error("container setup failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Exec(String),
    /// A container that does not exist, in docker's words.
    #[error("{0}")]
    NotFound(String),
    /// What a container's state forbids (docker's "conflict" errors).
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
