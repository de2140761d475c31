//! `docker build` as an engine operation: a build request of docker's
//! options (as `POST /build` has them) turned into the builder's request,
//! then the pushes it asks for; and `builder prune`.

use crate::error::{fail, Error, Result};
use crate::progress::ProgressSink;
use crate::registry::{client, push_image, BuildPuller, PushedImage};
use crate::Engine;
use berth_builder::{BuildRequest, Output, Progress};
use berth_store::{Compression, ImageRef};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the build context comes from.
pub enum BuildContext {
    Dir(PathBuf),
    /// A tar archive (plain or compressed), as `docker build -` reads it.
    Tar(Box<dyn Read + Send>),
    /// A tar archive already unpacked (`unpack_build_context`), so that a
    /// bad one is refused before the build starts.
    Unpacked(tempfile::TempDir),
}

/// A context tarball (plain or compressed) unpacked into a temporary
/// folder; a hostile entry (`..`, an absolute path, a link out) is refused.
pub fn unpack_build_context(input: &mut dyn Read) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().map_err(Error::io("cannot create a temporary folder"))?;
    unpack_context(input, dir.path())?;
    Ok(dir)
}

/// Where the Dockerfile comes from.
pub enum DockerfileSource {
    /// A path (relative to the working folder, or to the context when it is
    /// a tarball); none for `Dockerfile` in the context.
    Path(Option<String>),
    /// Its text (`-f -`).
    Text(String),
}

/// A secret given to RUN --mount=type=secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// One `--output`: its type and attributes, as docker's CLI parses them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportEntry {
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

pub struct BuildOptions {
    pub context: BuildContext,
    pub dockerfile: DockerfileSource,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub no_cache_filter: Vec<String>,
    pub pull: bool,
    pub push: bool,
    pub platform: Option<String>,
    /// An output path with no `type=` (`-o DIR`) is a local export.
    pub outputs: Vec<ExportEntry>,
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--network`: default (the host's), host, none, or a network's name.
    pub network: Option<String>,
    /// `--cache-from` and `--cache-to`, as docker's CLI takes them.
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub image_id: String,
    pub pushed: Vec<PushedImage>,
}

/// What an `--output` asks for, and whether it pushes (`type=registry`, or
/// `type=image,push=true`) and under which extra names (`name=a;b`).
fn output(
    e: &ExportEntry,
    compression: &mut Compression,
    push: &mut bool,
    names: &mut Vec<String>,
) -> Result<Output> {
    let kv = &e.attrs;
    if let Some(c) = kv.get("compression") {
        *compression = match c.as_str() {
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            "uncompressed" => Compression::None,
            other => {
                fail!(
                    Invalid,
                    "unsupported compression {other:?}: use gzip, zstd or uncompressed"
                )
            }
        };
    }
    let dest = || -> Result<PathBuf> {
        match kv.get("dest") {
            Some(d) => Ok(PathBuf::from(d)),
            None => fail!(Invalid, "--output type={}: dest=PATH is required", e.kind),
        }
    };
    if let Some(n) = kv.get("name") {
        names.extend(n.split(';').map(String::from));
    }
    if kv.get("push").is_some_and(|v| v == "true") {
        *push = true;
    }
    Ok(match e.kind.as_str() {
        "image" | "moby" => Output::Image,
        "oci" => Output::Oci(dest()?),
        "docker" => Output::Docker(dest()?),
        "local" => Output::Local(dest()?),
        "tar" => fail!(
            Invalid,
            "--output type=tar is not supported yet: use type=local or type=oci"
        ),
        "registry" => {
            *push = true;
            Output::Image
        }
        "" => fail!(Invalid, "--output: type=... is required"),
        other => fail!(
            Invalid,
            "unsupported output type {other:?}: use image, oci, docker or local"
        ),
    })
}

/// Unpacks a context tarball into a temporary folder.
fn unpack_context(input: &mut dyn Read, dir: &std::path::Path) -> Result<()> {
    let mut plain = berth_store::layer::decompressed(input)
        .map_err(Error::io("cannot read the build context"))?;
    let opts = berth_store::layer::ExtractOptions {
        chown: false,
        ..Default::default()
    };
    berth_store::layer::extract(&mut plain, dir, &opts)
        .map_err(|e| crate::Error::Invalid(format!("cannot unpack the build context: {e}")))?;
    Ok(())
}

/// The Dockerfile `name` of an unpacked context: refused when it (or a
/// link on its way) leads out of the context, which holds a client's
/// files only.
fn inside_context(context: &std::path::Path, name: &str) -> Result<PathBuf> {
    let outside = || {
        crate::Error::Invalid(format!(
            "failed to read dockerfile: {name} is outside the build context"
        ))
    };
    let path = context.join(name);
    let root = context
        .canonicalize()
        .map_err(Error::io("cannot read the build context"))?;
    match path.canonicalize() {
        Ok(real) if real.starts_with(&root) => Ok(real),
        Ok(_) => Err(outside()),
        // A missing file is read (and reported) as such, unless its name
        // climbs out.
        Err(_) if name.starts_with('/') || name.split('/').any(|c| c == "..") => Err(outside()),
        Err(_) => Ok(path),
    }
}

impl Engine {
    /// Builds, exports and pushes as `opts` say; every step and transfer
    /// is an event to `progress`.
    pub fn build(&self, opts: BuildOptions, progress: Arc<dyn ProgressSink>) -> Result<Built> {
        let store = self.store();
        let tmp_ctx;
        let (context, from_tar) = match opts.context {
            BuildContext::Tar(mut input) => {
                if matches!(opts.dockerfile, DockerfileSource::Text(_)) {
                    fail!(
                        Invalid,
                        "the context and the Dockerfile cannot both come from STDIN"
                    );
                }
                tmp_ctx = unpack_build_context(&mut input)?;
                (tmp_ctx.path().to_path_buf(), true)
            }
            BuildContext::Unpacked(dir) => {
                tmp_ctx = dir;
                (tmp_ctx.path().to_path_buf(), true)
            }
            BuildContext::Dir(p) => {
                if !p.is_dir() {
                    fail!(
                        Invalid,
                        "unable to prepare context: path {:?} not found",
                        p.display().to_string()
                    );
                }
                (p, false)
            }
        };
        let (dockerfile, dockerfile_name, dockerfile_path) = match opts.dockerfile {
            DockerfileSource::Text(text) => (text, "Dockerfile".to_string(), None),
            DockerfileSource::Path(other) => {
                let path = match other {
                    Some(f) if from_tar => inside_context(&context, &f)?,
                    Some(f) => PathBuf::from(f),
                    None => context.join("Dockerfile"),
                };
                let bytes = std::fs::read(&path).map_err(|e| {
                    crate::Error::Failed(format!(
                        "failed to read dockerfile: open {}: {e}",
                        path.display()
                    ))
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "Dockerfile".into());
                (
                    String::from_utf8_lossy(&bytes).into_owned(),
                    name,
                    Some(path),
                )
            }
        };
        // <Dockerfile>.dockerignore beside the Dockerfile wins over the context's.
        let dockerignore = dockerfile_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(format!("{}.dockerignore", p.display())).ok())
            .or_else(|| std::fs::read_to_string(context.join(".dockerignore")).ok());

        let mut compression = Compression::Gzip;
        let mut push = opts.push;
        let mut names = opts.tags.clone();
        let outputs = opts
            .outputs
            .iter()
            .map(|o| output(o, &mut compression, &mut push, &mut names))
            .collect::<Result<Vec<_>>>()?;
        let tags = names
            .iter()
            .map(|t| t.parse::<ImageRef>())
            .collect::<Result<Vec<_>, _>>()?;
        if push && tags.is_empty() {
            fail!(
                Invalid,
                "--push needs a name for the image: give one with -t NAME"
            );
        }
        if let Some(p) = &opts.platform {
            let (os, arch, _) = berth_store::image::host_platform();
            if p.split(',')
                .any(|p| !p.starts_with(&format!("{os}/{arch}")))
            {
                fail!(
                    Invalid,
                    "--platform {p}: berth builds for the native platform ({os}/{arch}) only"
                );
            }
        }
        let cache_from = opts
            .cache_from
            .iter()
            .map(|s| crate::build_cache::CacheSpec::parse(s, false))
            .collect::<Result<Vec<_>>>()?;
        let cache_to = opts
            .cache_to
            .iter()
            .map(|s| crate::build_cache::CacheSpec::parse(s, true))
            .collect::<Result<Vec<_>>>()?;
        let inline = cache_to
            .iter()
            .any(|s| s.location == crate::build_cache::CacheLocation::Inline);
        let observer = Arc::new(crate::progress::BuildProgress(progress.clone()));
        let build_progress = Progress::new(observer);
        let imports = crate::build_cache::imports(&cache_from, &self.registries(), &build_progress);
        let req = BuildRequest {
            context,
            dockerfile,
            dockerfile_name,
            dockerignore,
            build_args: opts.build_args,
            target: opts.target,
            tags,
            labels: opts.labels,
            no_cache: opts.no_cache,
            no_cache_filter: opts
                .no_cache_filter
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect::<BTreeSet<_>>(),
            secrets: opts
                .secrets
                .into_iter()
                .map(|(id, s)| {
                    let s = match s {
                        SecretSource::File(p) => berth_builder::SecretSource::File(p),
                        SecretSource::Env(e) => berth_builder::SecretSource::Env(e),
                    };
                    (id, s)
                })
                .collect(),
            outputs,
            compression,
            images: Some(Arc::new(BuildPuller {
                store: store.clone(),
                registries: self.registries(),
            })),
            always_pull: opts.pull,
            helper: crate::helper::berth_exe()?,
            network: match opts.network.as_deref() {
                None | Some("") | Some("default") | Some("host") => {
                    berth_builder::BuildNetwork::Host
                }
                Some("none") => berth_builder::BuildNetwork::None,
                Some(name) => berth_builder::BuildNetwork::Named(Arc::new(
                    crate::network::StepNetworkOn::new(self, name)?,
                )),
            },
            cache_from: imports.clone(),
        };
        let mut result = berth_builder::build(store, &req, build_progress.clone())?;
        if inline {
            if req.tags.is_empty() {
                build_progress.warn("--cache-to type=inline needs a name for the image (-t): no inline cache written");
            } else {
                let old = result.image.clone();
                result.image =
                    crate::build_cache::add_inline(store, &result.image, &result, &req.tags)?;
                if old.manifest_digest != result.image.manifest_digest
                    && !store.holds().contains(&old.manifest_digest)
                    && store
                        .get(&old.manifest_digest)
                        .map(|i| i.tags.is_empty())
                        .unwrap_or(false)
                {
                    store.remove_image(&old)?;
                }
            }
        }
        let mut pushed = Vec::new();
        if push {
            let client = client(self)?;
            for t in &req.tags {
                pushed.push(push_image(
                    store,
                    &client,
                    &result.image,
                    t,
                    progress.clone(),
                )?);
            }
        }
        // The image is built, tagged and pushed whatever the export gives.
        crate::build_cache::export_all(
            store,
            &self.registries(),
            &cache_to,
            &result,
            &imports,
            &build_progress,
        )?;
        Ok(Built {
            image_id: result.image.id.to_string(),
            pushed,
        })
    }

    /// `berth builder prune`: drops every cache entry, then collects
    /// garbage. Says how many entries went and how many bytes were freed.
    pub fn build_cache_prune(&self) -> Result<(usize, u64)> {
        let store = self.store();
        let entries = store.cache_clear()?;
        // Cache mounts and the remembered hashes of context files are build
        // cache too.
        for dir in ["cache-mounts", "context-cache"] {
            let path = store.root().join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(Error::io(format!("cannot remove {}", path.display())))?;
            }
        }
        let report = store.gc()?;
        Ok((entries, report.bytes_freed))
    }
}
