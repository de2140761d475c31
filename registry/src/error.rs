use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a registry. Messages name the registry and the
/// repository or digest involved, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry answered with an error; `code` is its own error code
    /// (`MANIFEST_UNKNOWN`, `UNAUTHORIZED`, ...) when it sent one.
    #[error("{what}: {status}{}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Registry {
        what: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// The registry could not be reached or dropped the connection, after retries.
    /// The message holds the whole cause chain, so the cause is not also a
    /// `source` (anyhow would print it twice).
    #[error("{what}: {}{}", Chain(cause), Retry(*retried))]
    Transport {
        what: String,
        retried: u32,
        cause: reqwest::Error,
    },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    #[error("interrupted")]
    Interrupted,
}

struct Retry(u32);

/// An error and its causes, `a: b: c` (reqwest's own message alone says
/// only "error sending request").
struct Chain<'a>(&'a reqwest::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut e: Option<&dyn std::error::Error> = Some(self.0);
        let mut first = true;
        let mut last = String::new();
        while let Some(cur) = e {
            let text = cur.to_string();
            // Layers often repeat their cause's text: print it once.
            if !last.contains(&text) {
                if !first {
                    f.write_str(": ")?;
                }
                f.write_str(&text)?;
                first = false;
            }
            last = text;
            e = cur.source();
        }
        Ok(())
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " (gave up after {} attempts)", n + 1),
        }
    }
}

impl Error {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { status, .. } => *status == 429 || *status >= 500,
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status the registry answered, if this is a registry error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry { status, .. } => Some(*status),
            _ => None,
        }
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
