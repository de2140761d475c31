//! What a build is asked to do: the CLI's flags, already parsed.

use berth_store::{Compression, ImageRef, StoredImage};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Where `--secret id=...` takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// Where images named by FROM, `COPY --from` and `RUN --mount=from=` come
/// from when the store does not have them (the CLI gives a registry puller).
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// Fetches `name` into the store and returns it; the error says why not.
    /// Without `unpack` the layers are kept as checked blobs only, unpacked
    /// when a step first needs their files.
    fn pull(&self, name: &str, unpack: bool) -> Result<StoredImage, String>;
}

/// The network a RUN step without `--network=` gets: `berth build
/// --network default|host|none|NAME` (default and host are the host's, as
/// buildkitd's).
#[derive(Debug, Clone, Default)]
pub enum BuildNetwork {
    #[default]
    Host,
    None,
    /// One of the engine's networks, joined per step.
    Named(std::sync::Arc<dyn StepNetwork>),
}

/// Gives RUN steps a place on a network (the engine's networks; the builder
/// knows none itself).
pub trait StepNetwork: Send + Sync + std::fmt::Debug {
    /// The network's name (in the steps' cache keys).
    fn name(&self) -> &str;
    /// A network namespace on the network for step `id`.
    fn join(&self, id: &str) -> Result<JoinedStep, String>;
    /// Takes step `id`'s place away again.
    fn leave(&self, id: &str);
}

/// What a step joined: the namespace file it enters and its resolv.conf.
#[derive(Debug, Clone)]
pub struct JoinedStep {
    pub netns: PathBuf,
    pub resolv_conf: String,
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
    pub compression: Compression,
    /// Fetches images the store lacks; `None` builds from local images only.
    pub images: Option<std::sync::Arc<dyn ImageSource>>,
    /// `--pull`: fetch every named image again, even when the store has it.
    pub always_pull: bool,
    /// The berth binary, re-executed to run RUN steps (`berth __runtime`).
    pub helper: PathBuf,
    /// `--network`: what RUN steps get unless they say.
    pub network: BuildNetwork,
    /// `--cache-from`: exported caches tried after the store's own, in order.
    pub cache_from: Vec<std::sync::Arc<dyn crate::remote::CacheImport>>,
}
