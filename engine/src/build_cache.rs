//! `--cache-from` and `--cache-to`: berth's build cache documents read from
//! and written to a registry, an OCI layout folder, or an image's own
//! manifest (inline). The builder looks keys up through [`CacheImport`];
//! layers move only when a build needs their files. Exports merge with what
//! the destination holds.

use crate::error::{fail, Error, Result};
use crate::registry::Registries;
use berth_builder::{BuildResult, CacheImport, Progress};
use berth_registry::artifact;
use berth_store::cache_document::{
    CACHE_CONFIG_MEDIA_TYPE, DEFAULT_MAX_ENTRIES, INLINE_CACHE_ANNOTATION,
};
use berth_store::image::LayerRef;
use berth_store::{
    CacheDocument, CacheRecord, CachedLayer, Compression, Digest, ImageRef, LayerOptions,
    MountRecord, Store, StoredImage,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    Registry(ImageRef),
    /// An OCI image layout folder (`dest=` to write, `src=` to read).
    Local(PathBuf),
    /// In the built image's manifest.
    Inline,
}

/// One `--cache-from` or `--cache-to`, as docker's CLI writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub location: CacheLocation,
    /// `mode=max`: every stage's steps, not only the image's.
    pub max: bool,
    pub compression: Option<Compression>,
    pub ignore_error: bool,
    pub max_entries: usize,
    /// Entries exported longer ago than this many seconds are dropped.
    pub max_age: Option<u64>,
    /// `cache-mounts=true`: `RUN --mount=type=cache` folders travel too.
    pub cache_mounts: bool,
}

/// Thirty days: what an export keeps unless `max-age=` says.
const DEFAULT_MAX_AGE: u64 = 30 * 24 * 3600;
/// Read-merge-write rounds an export tries before it gives up.
const EXPORT_ROUNDS: usize = 8;

fn parse_duration(s: &str) -> Option<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return None,
    })
}

impl CacheSpec {
    /// Parses `type=registry,ref=R,mode=max,...`; `--cache-from NAME` alone
    /// is `type=registry,ref=NAME`.
    pub fn parse(text: &str, export: bool) -> Result<CacheSpec> {
        let flag = if export { "--cache-to" } else { "--cache-from" };
        let mut kv = BTreeMap::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => {
                    kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                None if !text.contains('=') => {
                    kv.insert("type".into(), "registry".into());
                    kv.insert("ref".into(), part.trim().to_string());
                }
                None => fail!(Invalid, "{flag} {text}: {part:?} is not key=value"),
            }
        }
        let bool_of = |k: &str| -> Result<bool> {
            match kv.get(k).map(String::as_str) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(v) => fail!(Invalid, "{flag} {text}: {k}={v} must be true or false"),
            }
        };
        let location = match kv.get("type").map(String::as_str) {
            Some("registry") => match kv.get("ref") {
                Some(r) => CacheLocation::Registry(r.parse()?),
                None => fail!(Invalid, "{flag} {text}: type=registry needs ref=REPO:TAG"),
            },
            Some("local") => {
                let key = if export { "dest" } else { "src" };
                match kv.get(key) {
                    Some(d) => CacheLocation::Local(PathBuf::from(d)),
                    None => fail!(Invalid, "{flag} {text}: type=local needs {key}=DIR"),
                }
            }
            Some("inline") => CacheLocation::Inline,
            Some(other) => fail!(
                Invalid,
                "{flag} {text}: unsupported cache type {other:?}: use registry, local or inline"
            ),
            None => fail!(Invalid, "{flag} {text}: type=... is required"),
        };
        let max = match kv.get("mode").map(String::as_str) {
            None | Some("min") => false,
            Some("max") => true,
            Some(m) => fail!(Invalid, "{flag} {text}: mode={m}: use min or max"),
        };
        if max && location == CacheLocation::Inline {
            fail!(
                Invalid,
                "{flag} {text}: an inline cache holds the image's own steps only (mode=min)"
            );
        }
        let compression = match kv.get("compression").map(String::as_str) {
            None => None,
            Some("gzip") => Some(Compression::Gzip),
            Some("zstd") => Some(Compression::Zstd),
            Some(c) => fail!(Invalid, "{flag} {text}: compression={c}: use gzip or zstd"),
        };
        let max_entries = match kv.get("max-entries") {
            None => DEFAULT_MAX_ENTRIES,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => fail!(
                    Invalid,
                    "{flag} {text}: max-entries={n} is not a positive number"
                ),
            },
        };
        let max_age = match kv.get("max-age") {
            None => Some(DEFAULT_MAX_AGE),
            Some(a) if a == "0" => None,
            Some(a) => match parse_duration(a) {
                Some(s) => Some(s),
                None => fail!(
                    Invalid,
                    "{flag} {text}: max-age={a}: give it as 90m, 48h or 7d"
                ),
            },
        };
        Ok(CacheSpec {
            location,
            max,
            compression,
            ignore_error: bool_of("ignore-error")?,
            max_entries,
            max_age,
            cache_mounts: bool_of("cache-mounts")?,
        })
    }

    fn name(&self) -> String {
        match &self.location {
            CacheLocation::Registry(r) => format!("type=registry,ref={r}"),
            CacheLocation::Local(d) => format!("type=local,{}", d.display()),
            CacheLocation::Inline => "type=inline".into(),
        }
    }
}

/// Registry work from a thread of its own (the build's stages run on a
/// runtime of their own, which cannot block on another).
fn on_own_runtime<T: Send>(fut: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| Error::Failed(format!("cannot start the network runtime: {e}")))?;
            rt.block_on(fut)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Failed("the registry thread failed".into())))
    })
}

fn now() -> String {
    berth_store::image::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

fn ago(secs: u64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    berth_store::image::rfc3339(t.saturating_sub(secs) as i64)
}

// ---- reading -------------------------------------------------------------

/// What a registry reference holds: berth's cache manifest, or an image
/// whose manifest carries an inline cache. `None` when the tag is missing.
async fn read_registry(
    client: &berth_registry::Client,
    r: &ImageRef,
) -> Result<Option<(Digest, CacheDocument)>> {
    let Some(m) = artifact::get_manifest(client, r).await? else {
        return Ok(None);
    };
    let doc = if let Some(digest) = cache_config(&m.json)? {
        let data = artifact::get_small_blob(client, r, &digest).await?;
        parse_document(&data)?
    } else if let Some(inline) = m
        .json
        .get("annotations")
        .and_then(|a| a.get(INLINE_CACHE_ANNOTATION))
        .and_then(|v| v.as_str())
    {
        parse_document(inline.as_bytes())?
    } else {
        fail!(
            Failed,
            "it is neither a berth build cache nor an image with an inline one"
        )
    };
    Ok(Some((m.digest, doc)))
}

/// The config digest of a manifest whose config is a berth cache document;
/// `None` for any other manifest.
fn cache_config(manifest: &serde_json::Value) -> Result<Option<Digest>> {
    let config = manifest.get("config");
    let media_type = config
        .and_then(|c| c.get("mediaType"))
        .and_then(|t| t.as_str());
    if media_type != Some(CACHE_CONFIG_MEDIA_TYPE) {
        return Ok(None);
    }
    config
        .and_then(|c| c.get("digest"))
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .parse()
        .map(Some)
        .map_err(|_| Error::Failed("the cache manifest has no valid config digest".into()))
}

fn parse_document(data: &[u8]) -> Result<CacheDocument> {
    CacheDocument::parse(data).map_err(|e| Error::Failed(e.to_string()))
}

fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(d.hex())
}

/// Reads a blob of a layout folder, checked against its digest.
fn read_layout_blob(dir: &Path, d: &Digest) -> Result<Vec<u8>> {
    let path = layout_blob(dir, d);
    let data =
        std::fs::read(&path).map_err(Error::io(format!("cannot read {}", path.display())))?;
    if Digest::of(&data) != *d {
        fail!(Failed, "{} does not match its digest", path.display());
    }
    Ok(data)
}

/// The cache a layout folder holds (its index's first berth cache manifest).
fn read_local(dir: &Path) -> Result<Option<(Digest, CacheDocument)>> {
    let index_path = dir.join("index.json");
    let index = match std::fs::read(&index_path) {
        Ok(i) => i,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => fail!(Failed, "cannot read {}: {e}", index_path.display()),
    };
    let index: serde_json::Value = serde_json::from_slice(&index)
        .map_err(|e| Error::Failed(format!("{}: {e}", index_path.display())))?;
    let Some(m) = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .and_then(|m| m.first())
        .and_then(|m| m.get("digest"))
        .and_then(|d| d.as_str())
        .and_then(|d| d.parse::<Digest>().ok())
    else {
        return Ok(None);
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read_layout_blob(dir, &m)?)
        .map_err(|e| Error::Failed(format!("manifest {m}: {e}")))?;
    let Some(cd) = cache_config(&manifest)? else {
        fail!(Failed, "it is not a berth build cache");
    };
    Ok(Some((m, parse_document(&read_layout_blob(dir, &cd)?)?)))
}

/// Where an imported document's blobs are.
#[derive(Debug)]
enum BlobSource {
    Registry { registries: Registries, r: ImageRef },
    Layout { dir: PathBuf },
}

/// A cache document read from `source`, as the builder sees it.
#[derive(Debug)]
struct DocumentImport {
    doc: CacheDocument,
    source: BlobSource,
}

impl CacheImport for DocumentImport {
    fn name(&self) -> String {
        match &self.source {
            BlobSource::Registry { r, .. } => format!("type=registry,ref={r}"),
            BlobSource::Layout { dir } => format!("type=local,src={}", dir.display()),
        }
    }
    fn entry(&self, key: &str) -> Option<berth_store::CacheEntry> {
        self.doc.entries.get(key).map(|r| r.entry.clone())
    }
    fn mount(&self, id: &str) -> Option<MountRecord> {
        self.doc.mounts.get(id).cloned()
    }
    fn fetch_layer(
        &self,
        store: &Store,
        layer: &LayerRef,
        diff_id: &Digest,
        unpack: bool,
    ) -> std::result::Result<(), String> {
        match &self.source {
            BlobSource::Registry { registries, r } => on_own_runtime(async {
                let client = registries.client()?;
                Ok(artifact::fetch_layer(&client, r, store, layer, diff_id, unpack).await?)
            })
            .map_err(|e| e.to_string()),
            BlobSource::Layout { dir } => layout_fetch(dir, store, layer, diff_id, unpack),
        }
    }
}

/// A layer blob of a layout folder into the store, checked against its
/// digest and diff ID (unpacked, when `unpack`) before it is kept.
fn layout_fetch(
    dir: &Path,
    store: &Store,
    layer: &LayerRef,
    diff_id: &Digest,
    unpack: bool,
) -> std::result::Result<(), String> {
    let path = layout_blob(dir, &layer.digest);
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ingest = store.blobs().ingest().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        ingest
            .write_all(&buf[..n])
            .map_err(|e| format!("cannot write blob: {e}"))?;
    }
    let sealed = ingest
        .seal(Some(&layer.digest))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Its diff ID checked (unpacked, when asked) before the blob is kept.
    let reader = std::io::BufReader::new(sealed.reader().map_err(|e| e.to_string())?);
    let name = layer.digest.to_string();
    if unpack {
        store
            .snapshot_from(reader, diff_id, &name)
            .map_err(|e| e.to_string())?;
    } else {
        berth_store::snapshot::verify_stream(reader, diff_id, &name).map_err(|e| e.to_string())?;
    }
    sealed.commit().map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads every `--cache-from`, in order; one that cannot be read is a
/// warning and is left out.
pub(crate) fn imports(
    specs: &[CacheSpec],
    registries: &Registries,
    progress: &Progress,
) -> Vec<Arc<dyn CacheImport>> {
    let mut out: Vec<Arc<dyn CacheImport>> = Vec::new();
    for spec in specs {
        let step = progress.step(&format!("importing cache manifest from {}", spec.name()));
        let read: Result<Option<Arc<dyn CacheImport>>> = match &spec.location {
            CacheLocation::Registry(r) => on_own_runtime(async {
                let client = registries.client()?;
                Ok(read_registry(&client, r).await?.map(|(_, doc)| {
                    let source = BlobSource::Registry {
                        registries: registries.clone(),
                        r: r.clone(),
                    };
                    Arc::new(DocumentImport { doc, source }) as Arc<dyn CacheImport>
                }))
            }),
            CacheLocation::Local(dir) => read_local(dir).map(|found| {
                found.map(|(_, doc)| {
                    let source = BlobSource::Layout { dir: dir.clone() };
                    Arc::new(DocumentImport { doc, source }) as Arc<dyn CacheImport>
                })
            }),
            CacheLocation::Inline => Ok(None),
        };
        match read {
            Ok(Some(i)) => out.push(i),
            Ok(None) => progress.warn(&format!(
                "cache {} not found: the build goes on without it",
                spec.name()
            )),
            Err(e) => progress.warn(&format!(
                "cannot import cache {}: {e}: the build goes on without it",
                spec.name()
            )),
        }
        step.done();
    }
    out
}

// ---- writing -------------------------------------------------------------

/// The document a build exports under `spec`: its steps (the image's own,
/// or every stage's with `mode=max`) and, when asked, its cache mounts.
fn document(store: &Store, spec: &CacheSpec, built: &BuildResult) -> Result<CacheDocument> {
    let mut doc = CacheDocument::new();
    let exported = now();
    for s in &built.steps {
        if spec.max || built.final_stages.contains(&s.stage) {
            doc.entries.insert(
                s.key.clone(),
                CacheRecord {
                    exported: exported.clone(),
                    entry: s.entry.clone(),
                },
            );
        }
    }
    if spec.cache_mounts {
        for id in &built.cache_mounts {
            let dir = store.cache_mount_dir(id);
            if !dir.is_dir() {
                continue;
            }
            let opts = LayerOptions {
                compression: spec.compression.unwrap_or(Compression::Gzip),
                ..LayerOptions::default()
            };
            let layer = berth_store::layer::write_layer_from_dir(store.blobs(), &dir, &opts)?;
            doc.mounts.insert(
                id.clone(),
                MountRecord {
                    exported: exported.clone(),
                    layer: CachedLayer {
                        digest: layer.digest.clone(),
                        size: layer.size,
                        media_type: layer.media_type.clone(),
                    },
                    diff_id: layer.diff_id.clone(),
                },
            );
        }
    }
    Ok(doc)
}

/// Makes sure every blob `doc` names that the destination lacks is in the
/// store: fetched through the imports that named it (a lazily imported
/// step's layers are not local).
fn gather(
    store: &Store,
    doc: &CacheDocument,
    imports: &[Arc<dyn CacheImport>],
    has: &dyn Fn(&Digest) -> bool,
) -> Result<()> {
    for l in doc.blobs() {
        if store.blobs().contains(&l.digest) || has(&l.digest) {
            continue;
        }
        let Some(diff_id) = doc.diff_id_of(&l.digest) else {
            continue;
        };
        let layer = LayerRef::from(&l);
        let mut last = None;
        for i in imports {
            match i.fetch_layer(store, &layer, &diff_id, false) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            fail!(Failed, "layer {} is not at hand: {e}", l.digest);
        }
    }
    Ok(())
}

fn merged(
    mut ours: CacheDocument,
    theirs: Option<CacheDocument>,
    spec: &CacheSpec,
) -> CacheDocument {
    if let Some(t) = theirs {
        let mut t = t;
        t.merge(ours);
        ours = t;
    }
    let oldest = spec.max_age.map(ago);
    ours.prune(spec.max_entries, oldest.as_deref());
    ours
}

async fn export_registry(
    store: &Store,
    registries: &Registries,
    r: &ImageRef,
    spec: &CacheSpec,
    ours: &CacheDocument,
    imports: &[Arc<dyn CacheImport>],
) -> Result<usize> {
    let client = registries.client()?;
    for round in 0..EXPORT_ROUNDS {
        let before = match read_registry(&client, r).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("replacing the unreadable cache at {r}: {e}");
                None
            }
        };
        let before_digest = before.as_ref().map(|(d, _)| d.clone());
        let doc = merged(ours.clone(), before.map(|(_, d)| d), spec);
        // Blobs the registry has are not sent again (push HEADs each one).
        let mut missing_locally = Vec::new();
        for l in doc.blobs() {
            if !store.blobs().contains(&l.digest)
                && !artifact::has_blob(&client, r, &l.digest).await?
            {
                missing_locally.push(l.digest.clone());
            }
        }
        if !missing_locally.is_empty() {
            let store2 = store.clone();
            let doc2 = doc.clone();
            let imports2 = imports.to_vec();
            tokio::task::spawn_blocking(move || {
                gather(&store2, &doc2, &imports2, &|d| !missing_locally.contains(d))
            })
            .await
            .map_err(|e| Error::Failed(format!("gather task failed: {e}")))??;
        }
        let blobs: Vec<(Digest, u64)> = doc
            .blobs()
            .iter()
            .filter(|l| store.blobs().contains(&l.digest))
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        artifact::push_blobs(&client, store, r, &blobs).await?;
        let config = bytes::Bytes::from(doc.to_json());
        let config_size = config.len() as u64;
        let config_digest = artifact::push_small_blob(&client, r, config).await?;
        let manifest = doc.manifest(&config_digest, config_size);
        // Read-merge-write: when another export moved the tag meanwhile,
        // merge again with what it wrote.
        let now_digest = artifact::get_manifest(&client, r).await?.map(|m| m.digest);
        if now_digest != before_digest {
            continue;
        }
        artifact::put_manifest(
            &client,
            r,
            bytes::Bytes::from(manifest),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await?;
        // Another export may have put its own between our check and our
        // put, and a slow one (a stalled or retried request) may land well
        // after: look twice, the second time after a longer wait, and merge
        // again if ours is gone.
        let pause = 150 + (std::process::id() as u64 * 37 + round as u64 * 91) % 250;
        if still_holds(&client, r, ours, pause).await
            && still_holds(&client, r, ours, 2 * pause).await
        {
            return Ok(doc.entries.len());
        }
    }
    fail!(
        Failed,
        "{r} kept changing under {EXPORT_ROUNDS} exports in a row"
    )
}

/// Whether `r` still holds every entry of `ours` after `pause_ms`.
async fn still_holds(
    client: &berth_registry::Client,
    r: &ImageRef,
    ours: &CacheDocument,
    pause_ms: u64,
) -> bool {
    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
    matches!(read_registry(client, r).await,
        Ok(Some((_, now))) if ours.entries.keys().all(|k| now.entries.contains_key(k)))
}

/// Writes the cache into an OCI layout folder, merged with what it holds,
/// under a lock so two builds on one machine do not interleave.
fn export_local(
    store: &Store,
    dir: &Path,
    spec: &CacheSpec,
    ours: &CacheDocument,
    imports: &[Arc<dyn CacheImport>],
) -> Result<usize> {
    let io = |what: String| Error::io(what);
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .map_err(io(format!("cannot create {}", dir.display())))?;
    let lock_path = dir.join(".berth-cache.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(format!("cannot open {}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::Failed(format!("cannot lock {}: {e}", lock_path.display())))?;
    let before = match read_local(dir) {
        Ok(found) => found.map(|(_, d)| d),
        Err(e) => {
            tracing::warn!("replacing the unreadable cache in {}: {e}", dir.display());
            None
        }
    };
    let doc = merged(ours.clone(), before, spec);
    gather(store, &doc, imports, &|d| layout_blob(dir, d).is_file())?;
    let write_blob = |d: &Digest, data: &[u8]| -> Result<()> {
        let path = layout_blob(dir, d);
        if path.is_file() {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, data).map_err(io(format!("cannot write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("cannot write {}", path.display())))
    };
    for l in doc.blobs() {
        let path = layout_blob(dir, &l.digest);
        if path.is_file() {
            continue;
        }
        let src = store.blobs().path(&l.digest);
        let tmp = path.with_extension("tmp");
        if std::fs::hard_link(&src, &tmp).is_err() {
            std::fs::copy(&src, &tmp).map_err(io(format!("cannot copy {}", src.display())))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(format!("cannot write {}", path.display())))?;
    }
    let config = doc.to_json();
    let config_digest = Digest::of(&config);
    write_blob(&config_digest, &config)?;
    let manifest = doc.manifest(&config_digest, config.len() as u64);
    let manifest_digest = Digest::of(&manifest);
    write_blob(&manifest_digest, &manifest)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
        }],
    });
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io(format!("cannot write {}", layout.display())))?;
    let index_path = dir.join("index.json");
    let tmp = dir.join("index.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&index).unwrap_or_default())
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &index_path)
        .map_err(io(format!("cannot write {}", index_path.display())))?;
    Ok(doc.entries.len())
}

/// Puts the image's own steps (those whose layers are all the image's) into
/// its manifest's annotations, and moves its tags to that manifest. The
/// image ID (its config) does not change.
pub(crate) fn add_inline(
    store: &Store,
    image: &StoredImage,
    built: &BuildResult,
    tags: &[ImageRef],
) -> Result<StoredImage> {
    let mut doc = CacheDocument::new();
    let exported = now();
    let image_layers: Vec<&Digest> = image.layers.iter().map(|l| &l.digest).collect();
    for s in &built.steps {
        let prefix = s.entry.layers.len() <= image_layers.len()
            && s.entry
                .layers
                .iter()
                .zip(&image_layers)
                .all(|(a, b)| &a.digest == *b);
        if built.final_stages.contains(&s.stage) && prefix {
            doc.entries.insert(
                s.key.clone(),
                CacheRecord {
                    exported: exported.clone(),
                    entry: s.entry.clone(),
                },
            );
        }
    }
    let bytes = store.blobs().read(&image.manifest_digest)?;
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Failed(format!("invalid manifest of {}: {e}", image.id)))?;
    let text = String::from_utf8_lossy(&doc.to_json()).into_owned();
    if let Some(m) = manifest.as_object_mut() {
        let ann = m
            .entry("annotations")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(
                INLINE_CACHE_ANNOTATION.into(),
                serde_json::Value::String(text),
            );
        }
    }
    let data = serde_json::to_vec(&manifest).unwrap_or_default();
    let (digest, size) = store.blobs().put(&data, None)?;
    store.record(&digest, size, tags)?;
    Ok(store.get(&digest)?)
}

/// Writes every `--cache-to` but inline (done before the push); the first
/// failure is returned after all were tried, unless `ignore-error=true`
/// makes it a warning.
pub(crate) fn export_all(
    store: &Store,
    registries: &Registries,
    specs: &[CacheSpec],
    built: &BuildResult,
    imports: &[Arc<dyn CacheImport>],
    progress: &Progress,
) -> Result<()> {
    let mut first_error = None;
    for spec in specs {
        let title = match &spec.location {
            CacheLocation::Registry(_) => "exporting cache to registry",
            CacheLocation::Local(_) => "exporting cache to client directory",
            CacheLocation::Inline => continue,
        };
        let step = progress.step(title);
        let result = document(store, spec, built).and_then(|doc| {
            step.note(&format!(
                "preparing build cache for export ({} steps{})",
                doc.entries.len(),
                if doc.mounts.is_empty() {
                    String::new()
                } else {
                    format!(", {} cache mounts", doc.mounts.len())
                }
            ));
            match &spec.location {
                CacheLocation::Registry(r) => {
                    on_own_runtime(export_registry(store, registries, r, spec, &doc, imports))
                        .map(|n| (n, r.to_string()))
                }
                CacheLocation::Local(d) => export_local(store, d, spec, &doc, imports)
                    .map(|n| (n, d.display().to_string())),
                CacheLocation::Inline => Ok((0, String::new())),
            }
        });
        match result {
            Ok((n, at)) => {
                step.note(&format!(
                    "writing cache manifest to {at} ({n} entries) done"
                ));
                step.done();
            }
            Err(e) => {
                let msg = format!("failed to export cache {}: {e}", spec.name());
                if spec.ignore_error {
                    step.done();
                    progress.warn(&msg);
                } else {
                    step.error(&msg);
                    if first_error.is_none() {
                        first_error = Some(Error::Failed(msg));
                    }
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_docker_writes_them() {
        let s =
            CacheSpec::parse("type=registry,ref=localhost:5000/app:cache,mode=max", true).unwrap();
        assert!(s.max);
        assert!(matches!(s.location, CacheLocation::Registry(_)));
        let s = CacheSpec::parse("localhost:5000/app:cache", false).unwrap();
        assert!(!s.max && matches!(s.location, CacheLocation::Registry(_)));
        let s = CacheSpec::parse("type=local,src=/tmp/c", false).unwrap();
        assert_eq!(s.location, CacheLocation::Local("/tmp/c".into()));
        assert!(CacheSpec::parse("type=local,src=/tmp/c", true).is_err());
        assert!(CacheSpec::parse("localhost:5000/app:cache", true).is_ok());
        assert!(CacheSpec::parse("type=gha", true).is_err());
        assert!(CacheSpec::parse("type=inline,mode=max", true).is_err());
        let s = CacheSpec::parse(
            "type=local,dest=/c,max-entries=5,max-age=2h,ignore-error=true,cache-mounts=true",
            true,
        )
        .unwrap();
        assert_eq!((s.max_entries, s.max_age), (5, Some(7200)));
        assert!(s.ignore_error && s.cache_mounts);
        assert!(CacheSpec::parse("type=local,dest=/c,mode=most", true).is_err());
    }
}
