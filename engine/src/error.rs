/// Why an engine operation failed. The first variants are docker's error
/// kinds (what the Engine API answers 404, 409, 400 or 500 for), each with
/// docker's words; the others carry a lower crate's error unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container, image or volume.
    #[error("{0}")]
    NotFound(String),
    /// What an object's state forbids: a name in use, a running container.
    #[error("{0}")]
    Conflict(String),
    /// A request that cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// Anything else that went wrong while doing it.
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C during a pull or a push: everything unfinished was dropped.
    #[error("interrupted: nothing was tagged")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    #[error(transparent)]
    Runner(#[from] berth_runner::Error),
    #[error(transparent)]
    Registry(#[from] berth_registry::Error),
    #[error(transparent)]
    Build(#[from] berth_builder::Error),
    #[error(transparent)]
    Parse(#[from] berth_grammar::ParseError),
}

impl From<berth_network::Error> for Error {
    fn from(e: berth_network::Error) -> Error {
        use berth_network::Error as N;
        match e {
            N::Invalid(m) => Error::Invalid(m),
            N::NotFound(m) => Error::NotFound(m),
            N::Conflict(m) => Error::Conflict(m),
            N::Missing(m) | N::Backend(m) => Error::Failed(m),
            N::Io { what, source } => Error::Io {
                context: what,
                source,
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status the Engine API gives this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_)
            | Error::Store(berth_store::Error::NoSuchImage(_))
            | Error::Runner(berth_runner::Error::NotFound(_)) => 404,
            Error::Conflict(_)
            | Error::Store(berth_store::Error::Conflict(_))
            | Error::Runner(berth_runner::Error::Conflict(_)) => 409,
            Error::Invalid(_)
            | Error::Parse(_)
            | Error::Store(berth_store::Error::InvalidReference(..)) => 400,
            _ => 500,
        }
    }

    /// An I/O error with what was being done: `.map_err(Error::io("..."))`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// `bail!` for engine errors: `fail!(Invalid, "bad {x}")`.
macro_rules! fail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$kind(format!($($arg)*)))
    };
}
pub(crate) use fail;
