//! berth-engine: docker's object model — images, containers, volumes — as
//! typed operations on one store. Every front end (the `berth` command,
//! later the Engine API service and `berth compose`) calls these and
//! nothing else decides docker's semantics; the engine drives the builder,
//! the registry client, the runner and the store below it.
//!
//! Requests and responses have the Engine API's JSON shapes (`model`).
//! Operations that use the caller's terminal (a foreground `run`, `exec`,
//! `logs`) take the process's own stdio for now.

pub mod build;
pub mod build_cache;
mod change;
pub mod container;
mod error;
pub mod events;
pub mod helper;
pub mod image;
pub mod model;
pub mod network;
pub mod progress;
pub mod registry;
pub mod system;
pub mod units;
pub mod volume;

pub use error::{Error, Result};
pub use progress::{ProgressEvent, ProgressSink};

use berth_store::Store;
use std::path::{Path, PathBuf};

/// Settings an engine is opened with.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Registries reached over plain HTTP or with an unchecked certificate.
    pub insecure_registries: Vec<String>,
}

/// One store and the operations on what it holds.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    config: EngineConfig,
    execs: container::ExecTable,
}

impl Engine {
    /// The store folder when none is given: /var/lib/berth as root, else
    /// ~/.local/share/berth.
    pub fn default_root() -> PathBuf {
        Store::default_root()
    }

    /// Opens (or makes) the store at `root`.
    pub fn open(root: &Path, config: EngineConfig) -> Result<Engine> {
        let store = Store::open(root).map_err(|e| {
            Error::Failed(format!("cannot open the store at {}: {e}", root.display()))
        })?;
        Ok(Engine {
            store,
            config,
            execs: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        self.store.root()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// What every registry command needs without a store (`login`, `logout`).
pub fn registry_only(config: EngineConfig) -> registry::Registries {
    registry::Registries::new(config.insecure_registries)
}
