//! The store folder: the OCI layout's `index.json` with one entry per tag
//! (and one per untagged image), blobs, and the locks between processes.

use crate::blobs::{sync_dir, BlobStore};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageConfig, LayerRef, StoredImage};
use crate::lock::FileLock;
use crate::reference::ImageRef;
use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The local image store. Cloning gives another handle on the same folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: BlobStore,
}

/// A held lease: while it lives, GC leaves every blob alone.
pub struct Lease {
    _lock: FileLock,
}

/// What garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub temp_files_removed: usize,
    pub snapshots_removed: usize,
}

impl Store {
    /// The default root: `/var/lib/berth` as root, else
    /// `$XDG_DATA_HOME/berth` or `~/.local/share/berth`.
    pub fn default_root() -> PathBuf {
        if let Some(r) = std::env::var_os("BERTH_ROOT") {
            return PathBuf::from(r);
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/berth");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(x).join("berth");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".local/share/berth")
    }

    /// Opens the store at `root`, creating an empty one if the folder is new.
    pub fn open(root: &Path) -> Result<Store> {
        // Absolute: helpers (supervisors, RUN steps) run in other folders.
        let root = &std::path::absolute(root)
            .ctx(|| format!("cannot resolve store root {}", root.display()))?;
        fs::create_dir_all(root).ctx(|| format!("cannot create store root {}", root.display()))?;
        let blobs = BlobStore::new(root)?;
        let store = Store {
            root: root.to_path_buf(),
            blobs,
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            let _refs = FileLock::exclusive(&root.join("refs.lock"))?;
            if !layout.exists() {
                write_atomic(
                    &root.join("index.json"),
                    &serde_json::to_vec(&empty_index()?).map_err(json_err("index", root))?,
                )?;
                write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Takes a lease for an operation that writes blobs before it records a ref.
    pub fn lease(&self) -> Result<Lease> {
        Ok(Lease {
            _lock: FileLock::shared(&self.root.join("gc.lock"))?,
        })
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let data = fs::read(&path).ctx(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&data).map_err(json_err("index", &path))
    }

    /// Read-modify-write of `index.json` under the refs lock.
    fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        let _lock = FileLock::exclusive(&self.root.join("refs.lock"))?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let out = f(&mut manifests)?;
        index.set_manifests(manifests);
        let data = serde_json::to_vec(&index).map_err(json_err("index", &self.index_path()))?;
        write_atomic(&self.index_path(), &data)?;
        Ok(out)
    }

    /// Writes a config and manifest for `layers` and records the image,
    /// tagged with `tags` (untagged when empty). Layer blobs must already be in.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerRef],
        tags: &[ImageRef],
    ) -> Result<StoredImage> {
        let config_json = serde_json::to_vec(config).map_err(json_err("config", &self.root))?;
        self.commit_config_bytes(&config_json, layers, tags)
    }

    /// Like [`Store::commit_image`] with the config's exact bytes (so that a
    /// loaded image keeps its ID).
    pub fn commit_config_bytes(
        &self,
        config_json: &[u8],
        layers: &[LayerRef],
        tags: &[ImageRef],
    ) -> Result<StoredImage> {
        let _lease = self.lease()?;
        let (config_digest, config_size) = self.blobs.put(config_json, None)?;
        let mut layer_descs = Vec::new();
        for l in layers {
            if !self.blobs.contains(&l.digest) {
                return Err(Error::MissingBlob(l.digest.to_string()));
            }
            layer_descs.push(descriptor(
                MediaType::Other(oci_layer_type(&l.media_type).to_string()),
                &l.digest,
                l.size,
            )?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(
                MediaType::ImageConfig,
                &config_digest,
                config_size,
            )?)
            .layers(layer_descs)
            .build()
            .map_err(|e| Error::Archive(format!("cannot build manifest: {e}")))?;
        let manifest_json =
            serde_json::to_vec(&manifest).map_err(json_err("manifest", &self.root))?;
        let (manifest_digest, manifest_size) = self.blobs.put(&manifest_json, None)?;
        self.record(&manifest_digest, manifest_size, tags)?;
        self.get(&manifest_digest)
    }

    /// Records a manifest already in the blobs, tagged with `tags`. A tag
    /// names one image: it moves from whichever image had it, and an image
    /// that loses its last tag stays listed untagged (dangling), as in docker.
    pub fn record(&self, manifest: &Digest, size: u64, tags: &[ImageRef]) -> Result<()> {
        let m = manifest.to_string();
        // The entry's media type is the manifest's own (a pulled image keeps
        // its Docker schema2 manifest byte for byte, so its digest stays).
        let media_type = self
            .blobs
            .read(manifest)
            .ok()
            .and_then(|data| serde_json::from_slice::<serde_json::Value>(&data).ok())
            .and_then(|v| v.get("mediaType")?.as_str().map(String::from))
            .map(|t| MediaType::from(t.as_str()))
            .unwrap_or(MediaType::ImageManifest);
        let index_entry = |manifest: &Digest, size: u64, name: Option<&str>| {
            index_entry(media_type.clone(), manifest, size, name)
        };
        self.update_index(|entries| {
            let mut orphans = Vec::new();
            for t in tags {
                let name = t.to_string();
                if let Some(pos) = entries
                    .iter()
                    .position(|d| ref_name(d).as_deref() == Some(name.as_str()))
                {
                    let old = entries.remove(pos);
                    if old.digest().to_string() != m {
                        orphans.push(old);
                    }
                }
                entries.push(index_entry(manifest, size, Some(&name))?);
            }
            let tagged = entries
                .iter()
                .any(|d| d.digest().to_string() == m && ref_name(d).is_some());
            if tagged {
                entries.retain(|d| !(d.digest().to_string() == m && ref_name(d).is_none()));
            } else if !entries.iter().any(|d| d.digest().to_string() == m) {
                entries.push(index_entry(manifest, size, None)?);
            }
            for mut old in orphans {
                let od = old.digest().to_string();
                if !entries.iter().any(|d| d.digest().to_string() == od) {
                    old.set_annotations(None);
                    entries.push(old);
                }
            }
            Ok(())
        })
    }

    /// Every image, one per manifest, with its tags.
    pub fn images(&self) -> Result<Vec<StoredImage>> {
        let index = self.read_index()?;
        let mut tags: BTreeMap<String, Vec<ImageRef>> = BTreeMap::new();
        let mut order = Vec::new();
        for d in index.manifests() {
            let key = d.digest().to_string();
            if !tags.contains_key(&key) {
                order.push(key.clone());
            }
            let entry = tags.entry(key).or_default();
            if let Some(name) = ref_name(d) {
                if let Ok(r) = name.parse() {
                    entry.push(r);
                }
            }
        }
        let mut out = Vec::new();
        for key in order {
            let digest: Digest = key.parse()?;
            let mut img = self.load_image(&digest)?;
            img.tags = tags.remove(&key).unwrap_or_default();
            out.push(img);
        }
        Ok(out)
    }

    /// Loads the image whose manifest is `manifest`.
    pub fn get(&self, manifest: &Digest) -> Result<StoredImage> {
        let mut img = self.load_image(manifest)?;
        let index = self.read_index()?;
        img.tags = index
            .manifests()
            .iter()
            .filter(|d| d.digest().to_string() == manifest.to_string())
            .filter_map(|d| ref_name(d)?.parse().ok())
            .collect();
        Ok(img)
    }

    pub(crate) fn load_image(&self, manifest_digest: &Digest) -> Result<StoredImage> {
        let data = self.blobs.read(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&data)
            .map_err(json_err("manifest", &self.blobs.path(manifest_digest)))?;
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let config_data = self.blobs.read(&config_digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_data)
            .map_err(json_err("config", &self.blobs.path(&config_digest)))?;
        let layers = manifest
            .layers()
            .iter()
            .map(|l| {
                Ok(LayerRef {
                    digest: Digest::from_oci(l.digest())?,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StoredImage {
            id: config_digest,
            manifest_digest: manifest_digest.clone(),
            manifest_size: data.len() as u64,
            tags: Vec::new(),
            config,
            layers,
        })
    }

    /// The image's size as docker reports it: its layers unpacked.
    pub fn image_size(&self, image: &StoredImage) -> u64 {
        image
            .layers
            .iter()
            .map(|l| self.blobs.diff_size(&l.digest).unwrap_or(l.size))
            .sum()
    }

    /// Finds an image by name (`busybox`, `app:v1`, `name@sha256:...`), by
    /// ID or by an unambiguous ID prefix, as docker does.
    pub fn resolve(&self, name: &str) -> Result<StoredImage> {
        let images = self.images()?;
        if let Ok(r) = name.parse::<ImageRef>() {
            if let Some(d) = &r.digest {
                if let Some(img) = images
                    .iter()
                    .find(|i| i.manifest_digest == *d || i.id == *d)
                {
                    return Ok(img.clone());
                }
            } else if let Some(img) = images.iter().find(|i| i.tags.contains(&r)) {
                return Ok(img.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let found: Vec<&StoredImage> = images
                .iter()
                .filter(|i| i.id.hex().starts_with(&hex))
                .collect();
            let ids: BTreeSet<&Digest> = found.iter().map(|i| &i.id).collect();
            match ids.len() {
                1 => return Ok(found[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::Conflict(format!(
                        "image ID prefix {name:?} is ambiguous"
                    )))
                }
            }
        }
        Err(Error::NoSuchImage(name.to_string()))
    }

    /// Adds a tag to an image.
    pub fn tag(&self, image: &StoredImage, tag: &ImageRef) -> Result<()> {
        self.record(
            &image.manifest_digest,
            image.manifest_size,
            std::slice::from_ref(tag),
        )
    }

    /// Removes a tag. Returns true when the image lost its last tag and was
    /// removed from the index.
    pub fn untag(&self, tag: &ImageRef) -> Result<Option<Digest>> {
        let name = tag.to_string();
        self.update_index(|entries| {
            let before = entries.len();
            let mut digest = None;
            entries.retain(|d| {
                if ref_name(d).as_deref() == Some(name.as_str()) {
                    digest = Some(d.digest().to_string());
                    false
                } else {
                    true
                }
            });
            if entries.len() == before {
                return Err(Error::NoSuchImage(tag.familiar()));
            }
            let digest = digest.map(|d| d.parse::<Digest>()).transpose()?;
            Ok(digest.filter(|d| {
                !entries
                    .iter()
                    .any(|e| e.digest().to_string() == d.to_string())
            }))
        })
    }

    /// Removes an image and all its tags from the index.
    pub fn remove_image(&self, image: &StoredImage) -> Result<()> {
        let m = image.manifest_digest.to_string();
        self.update_index(|entries| {
            entries.retain(|d| d.digest().to_string() != m);
            Ok(())
        })
    }

    fn holds_dir(&self) -> PathBuf {
        self.root.join("holds")
    }

    /// Keeps the image with manifest `manifest` (blobs and snapshots) through
    /// garbage collection while hold `name` exists, even untagged: a
    /// container's root filesystem stands on its image's snapshots.
    pub fn hold(&self, name: &str, manifest: &Digest) -> Result<()> {
        let dir = self.holds_dir();
        fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        // Not synced: it costs a container's start a disk flush, and after a
        // crash `berth rm` of the container ends it anyway.
        let path = dir.join(name);
        fs::write(&path, manifest.to_string()).ctx(|| format!("cannot write {}", path.display()))
    }

    /// Ends hold `name`.
    pub fn release(&self, name: &str) -> Result<()> {
        let path = self.holds_dir().join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The manifests held.
    pub fn holds(&self) -> Vec<Digest> {
        fs::read_dir(self.holds_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    }

    /// Removes blobs no image reaches and temp files of dead operations.
    /// Waits for running writers (their leases) to finish first.
    pub fn gc(&self) -> Result<GcReport> {
        let gc = FileLock::exclusive(&self.root.join("gc.lock"))?;
        self.collect(gc)
    }

    /// Like [`Store::gc`], but only when no other operation is running; a
    /// later GC frees what this one leaves (`rmi` must not wait for a build).
    pub fn gc_if_idle(&self) -> Result<Option<GcReport>> {
        match FileLock::try_exclusive(&self.root.join("gc.lock"))? {
            Some(gc) => self.collect(gc).map(Some),
            None => Ok(None),
        }
    }

    fn collect(&self, _gc: FileLock) -> Result<GcReport> {
        let _refs = FileLock::exclusive(&self.root.join("refs.lock"))?;
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        let index = self.read_index()?;
        let mut roots = Vec::new();
        for d in index.manifests() {
            roots.push(Digest::from_oci(d.digest())?);
        }
        roots.extend(self.holds());
        for digest in roots {
            live.insert(digest.clone());
            let Ok(data) = self.blobs.read(&digest) else {
                continue;
            };
            if let Ok(m) = serde_json::from_slice::<ImageManifest>(&data) {
                live.insert(Digest::from_oci(m.config().digest())?);
                for l in m.layers() {
                    live.insert(Digest::from_oci(l.digest())?);
                }
            }
        }
        let mut report = GcReport::default();
        let mut live_diffs = BTreeSet::new();
        for entry in self.cache_entries() {
            live.extend(entry.layers.iter().map(|l| l.digest.clone()));
            live_diffs.extend(entry.config.rootfs.diff_ids);
        }
        for d in &live {
            if let Ok(c) = self.blobs.read(d).and_then(|data| {
                serde_json::from_slice::<ImageConfig>(&data).map_err(json_err("config", &self.root))
            }) {
                live_diffs.extend(c.rootfs.diff_ids);
            }
        }
        report.snapshots_removed = self.prune_snapshots(&live_diffs)?;
        for d in self.blobs.list()? {
            if !live.contains(&d) {
                report.bytes_freed += self.blobs.size(&d).unwrap_or(0);
                self.blobs.remove(&d)?;
                report.blobs_removed += 1;
            }
        }
        self.blobs.prune_chunk_index()?;
        // Holding gc.lock exclusively means no writer is running: every temp
        // file left is from a process that died.
        if let Ok(rd) = fs::read_dir(self.blobs.ingest_dir()) {
            for e in rd.flatten() {
                let path = e.path();
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                if removed.is_ok() {
                    report.temp_files_removed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Checks that every ref points at a complete image whose blobs match
    /// their digests (`full` re-hashes layers too).
    pub fn check(&self, full: bool) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for d in self.read_index()?.manifests() {
            let digest = Digest::from_oci(d.digest())?;
            match self.load_image(&digest) {
                Err(e) => problems.push(format!(
                    "{}: {e}",
                    ref_name(d).unwrap_or_else(|| digest.to_string())
                )),
                Ok(img) => {
                    for l in &img.layers {
                        let r = if full {
                            self.blobs.verify(&l.digest)
                        } else {
                            self.blobs.open(&l.digest, Some(l.size)).map(|_| ())
                        };
                        if let Err(e) = r {
                            problems.push(format!("{}: layer {}: {e}", img.id, l.digest));
                        }
                    }
                }
            }
        }
        Ok(problems)
    }
}

/// The OCI name of a layer media type (a layer of a pulled Docker image
/// keeps its bytes in an OCI manifest built on it).
pub fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        other => other,
    }
}

pub(crate) fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations().as_ref()?.get(REF_NAME).cloned()
}

pub(crate) fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Result<Descriptor> {
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest.to_oci())
        .size(size)
        .build()
        .map_err(|e| Error::Archive(format!("cannot build descriptor: {e}")))
}

fn index_entry(
    media_type: MediaType,
    manifest: &Digest,
    size: u64,
    name: Option<&str>,
) -> Result<Descriptor> {
    let mut d = descriptor(media_type, manifest, size)?;
    if let Some(n) = name {
        d.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), n.to_string())])));
    }
    Ok(d)
}

fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .map_err(|e| Error::Archive(format!("cannot build index: {e}")))
}

pub(crate) fn json_err<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl FnOnce(serde_json::Error) -> Error + 'p {
    move |source| Error::Json {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Writes a file so that readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Threads of one process may write the same file at once (two build
    // stages recording the same cache entry): the temp name is theirs alone.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut f = fs::File::create(&tmp).ctx(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(data)
        .ctx(|| format!("cannot write {}", tmp.display()))?;
    f.sync_all()
        .ctx(|| format!("cannot sync {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).ctx(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir)
}
