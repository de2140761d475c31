//! What a build is asked to do: the CLI's flags, already parsed.

use crate::progress::ProgressMode;
use berth_store::{Compression, ImageRef};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Where `--secret id=...` takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `--output type=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into the store (the default).
    Image,
    /// An OCI image layout tarball.
    Oci(PathBuf),
    /// A docker-archive tarball (`docker load` reads it).
    Docker(PathBuf),
    /// The target stage's filesystem, into a folder.
    Local(PathBuf),
}

#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context folder.
    pub context: PathBuf,
    /// The Dockerfile's text and the name it is shown as in errors.
    pub dockerfile: String,
    pub dockerfile_name: String,
    /// `.dockerignore` (or `<Dockerfile>.dockerignore`) text.
    pub dockerignore: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub tags: Vec<ImageRef>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub no_cache_filter: BTreeSet<String>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub outputs: Vec<Output>,
    pub progress: ProgressMode,
    pub compression: Compression,
    /// The berth binary, re-executed to run RUN steps (`berth __runtime`).
    pub helper: PathBuf,
}
