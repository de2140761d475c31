//! `berth save` and `berth load`: docker-archive tarballs (as docker 25+
//! writes them: `manifest.json` and `repositories`, with the OCI layout's
//! `index.json` and `oci-layout` beside them) and OCI archives.

use crate::blobs::BlobStore;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageConfig, LayerRef, StoredImage};
use crate::layer::{decompressed, write_layer_from_tar, Compression, LayerOptions};
use crate::reference::ImageRef;
use crate::store::{descriptor, json_err, ref_name, Store};
use oci_spec::image::{
    ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

/// One image in `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An image to save, and the names it is saved under.
pub struct SaveItem {
    pub image: StoredImage,
    pub tags: Vec<ImageRef>,
}

fn entry_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    let mut h = entry_header(data.len() as u64);
    b.append_data(&mut h, path, data)
        .ctx(|| format!("cannot write {path} to the archive"))
}

/// Which media types the archive's manifests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    #[default]
    Oci,
    /// Docker's v2 schema 2 types, for tools that want them.
    Docker,
}

impl MediaTypes {
    fn manifest(self) -> MediaType {
        match self {
            MediaTypes::Oci => MediaType::ImageManifest,
            MediaTypes::Docker => MediaType::Other(crate::store::DOCKER_MANIFEST.into()),
        }
    }
    fn config(self) -> MediaType {
        match self {
            MediaTypes::Oci => MediaType::ImageConfig,
            MediaTypes::Docker => {
                MediaType::Other("application/vnd.docker.container.image.v1+json".into())
            }
        }
    }
    fn layer(self) -> MediaType {
        match self {
            MediaTypes::Oci => MediaType::ImageLayer,
            MediaTypes::Docker => {
                MediaType::Other("application/vnd.docker.image.rootfs.diff.tar".into())
            }
        }
    }
}

/// Writes a docker-archive of `items` to `out`. Layers are stored
/// uncompressed under their diff IDs, as docker does.
pub fn save(
    store: &Store,
    items: &[SaveItem],
    types: MediaTypes,
    out: &mut dyn Write,
) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut manifests = Vec::new();
    let mut index_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = dir_header();
        b.append_data(&mut h, dir, io::empty())
            .ctx(|| "cannot write the archive".to_string())?;
    }
    for item in items {
        let img = &item.image;
        let config = store.blobs().read(&img.id)?;
        if written.insert(img.id.clone()) {
            add_bytes(&mut b, &format!("blobs/sha256/{}", img.id.hex()), &config)?;
        }
        let mut layer_paths = Vec::new();
        let mut layer_descs = Vec::new();
        for (layer, diff_id) in img.layers.iter().zip(&img.config.rootfs.diff_ids) {
            let path = format!("blobs/sha256/{}", diff_id.hex());
            // Uncompress to a temp file first: a tar entry needs its size up front.
            let mut tmp = tempfile_in(store.blobs().ingest_dir())?;
            let blob = store.blobs().open(&layer.digest, Some(layer.size))?;
            let mut plain = HashingReader::new(
                decompressed(blob).ctx(|| format!("cannot read layer {}", layer.digest))?,
            );
            let size = io::copy(&mut plain, &mut tmp.0)
                .ctx(|| format!("cannot uncompress layer {}", layer.digest))?;
            let (actual, _) = plain.finish();
            if actual != *diff_id {
                return Err(Error::CorruptBlob {
                    digest: layer.digest.to_string(),
                    why: format!("uncompresses to {actual}, the config says {diff_id}"),
                });
            }
            if written.insert(diff_id.clone()) {
                tmp.0
                    .rewind()
                    .ctx(|| "cannot rewind temp file".to_string())?;
                let mut h = entry_header(size);
                b.append_data(&mut h, &path, &mut tmp.0)
                    .ctx(|| format!("cannot write {path}"))?;
            }
            layer_descs.push(descriptor(types.layer(), diff_id, size)?);
            layer_paths.push(path);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(types.manifest())
            .config(descriptor(types.config(), &img.id, config.len() as u64)?)
            .layers(layer_descs)
            .build()
            .map_err(|e| Error::Archive(format!("cannot build manifest: {e}")))?;
        let manifest_json =
            serde_json::to_vec(&manifest).map_err(json_err("manifest", store.root()))?;
        let manifest_digest = Digest::of(&manifest_json);
        if written.insert(manifest_digest.clone()) {
            add_bytes(
                &mut b,
                &format!("blobs/sha256/{}", manifest_digest.hex()),
                &manifest_json,
            )?;
        }
        let tags: Vec<String> = item.tags.iter().map(|t| t.familiar()).collect();
        let names: Vec<Option<&ImageRef>> = if item.tags.is_empty() {
            vec![None]
        } else {
            item.tags.iter().map(Some).collect()
        };
        for name in names {
            let mut d = descriptor(
                types.manifest(),
                &manifest_digest,
                manifest_json.len() as u64,
            )?;
            if let Some(r) = name {
                let mut ann = HashMap::new();
                ann.insert("io.containerd.image.name".to_string(), r.to_string());
                if let Some(t) = &r.tag {
                    ann.insert("org.opencontainers.image.ref.name".to_string(), t.clone());
                }
                d.set_annotations(Some(ann));
                if let (Some(t), Some(last)) = (&r.tag, img.config.rootfs.diff_ids.last()) {
                    repositories
                        .entry(r.familiar_name())
                        .or_default()
                        .insert(t.clone(), last.hex().to_string());
                }
            }
            index_entries.push(d);
        }
        manifests.push(ArchiveManifest {
            config: format!("blobs/sha256/{}", img.id.hex()),
            repo_tags: (!tags.is_empty()).then_some(tags),
            layers: layer_paths,
        });
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries)
        .build()
        .map_err(|e| Error::Archive(format!("cannot build index: {e}")))?;
    add_bytes(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).map_err(json_err("index", store.root()))?,
    )?;
    add_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifests).map_err(json_err("manifest", store.root()))?,
    )?;
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        add_bytes(
            &mut b,
            "repositories",
            &serde_json::to_vec(&repositories).map_err(json_err("repositories", store.root()))?,
        )?;
    }
    b.into_inner()
        .and_then(|w| w.flush())
        .ctx(|| "cannot finish the archive".to_string())
}

/// A temp file that is removed when dropped.
struct TempFile(File, PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.1);
    }
}

fn tempfile_in(dir: &Path) -> Result<TempFile> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = dir.join(format!(
        "archive-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx(|| format!("cannot create {}", path.display()))?;
    Ok(TempFile(f, path))
}

/// The files of an archive, spooled to a private temp folder.
struct Spool {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Spool {
    fn read(reader: &mut dyn Read, under: &Path) -> Result<Spool> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = under.join(format!(
            "load-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let mut spool = Spool {
            dir,
            files: BTreeMap::new(),
        };
        let mut plain = decompressed(reader).ctx(|| "cannot read the archive".to_string())?;
        let mut archive = tar::Archive::new(&mut plain);
        for (n, entry) in archive
            .entries()
            .ctx(|| "cannot read the archive".to_string())?
            .enumerate()
        {
            let mut entry =
                entry.ctx(|| "cannot read the archive: truncated or not a tar".to_string())?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
            let clean: Vec<String> = Path::new(&raw)
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(Ok(s.to_string_lossy().to_string())),
                    Component::ParentDir => Some(Err(())),
                    _ => None,
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::Archive(format!("entry {raw:?} escapes the archive")))?;
            let name = clean.join("/");
            let path = spool.dir.join(format!("f{n}"));
            let mut f = File::create(&path).ctx(|| format!("cannot create {}", path.display()))?;
            io::copy(&mut entry, &mut f).ctx(|| format!("cannot read {name} from the archive"))?;
            spool.files.insert(name, path);
        }
        Ok(spool)
    }

    fn open(&self, name: &str) -> Result<File> {
        let clean = name.trim_start_matches("./");
        let path = self
            .files
            .get(clean)
            .ok_or_else(|| Error::Archive(format!("the archive has no file {name:?}")))?;
        File::open(path).ctx(|| format!("cannot open {name}"))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open(name)?
            .read_to_end(&mut data)
            .ctx(|| format!("cannot read {name}"))?;
        Ok(data)
    }
}

/// What `load` recorded.
pub struct Loaded {
    pub image: StoredImage,
    pub tags: Vec<ImageRef>,
}

/// Loads a docker-archive or an OCI archive into the store.
pub fn load(store: &Store, reader: &mut dyn Read, opts: &LayerOptions) -> Result<Vec<Loaded>> {
    let _lease = store.lease()?;
    let spool = Spool::read(reader, store.blobs().ingest_dir())?;
    if spool.files.contains_key("manifest.json") {
        load_docker(store, &spool, opts)
    } else if spool.files.contains_key("index.json") {
        load_oci(store, &spool)
    } else {
        Err(Error::Archive(
            "neither manifest.json nor index.json found: not an image archive".into(),
        ))
    }
}

fn load_docker(store: &Store, spool: &Spool, opts: &LayerOptions) -> Result<Vec<Loaded>> {
    let manifests: Vec<ArchiveManifest> = serde_json::from_slice(&spool.bytes("manifest.json")?)
        .map_err(json_err("manifest.json", Path::new("manifest.json")))?;
    let mut out = Vec::new();
    for m in manifests {
        let config_bytes = spool.bytes(&m.config)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(json_err("config", Path::new(&m.config)))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(Error::Archive(format!(
                "{}: the config lists {} layers, manifest.json {}",
                m.config,
                config.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            layers.push(store_layer(
                store.blobs(),
                spool.open(path)?,
                diff_id,
                path,
                opts,
            )?);
        }
        let tags: Vec<ImageRef> = m
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse())
            .collect::<Result<_>>()?;
        let image = store.commit_config_bytes(&config_bytes, &layers, &tags)?;
        out.push(Loaded { image, tags });
    }
    Ok(out)
}

/// Compresses a layer of an archive into the store, checking its diff ID.
fn store_layer(
    blobs: &BlobStore,
    file: File,
    diff_id: &Digest,
    path: &str,
    opts: &LayerOptions,
) -> Result<LayerRef> {
    let mut plain = decompressed(file).ctx(|| format!("cannot read layer {path}"))?;
    let opts = LayerOptions {
        compression: if opts.compression == Compression::None {
            Compression::Gzip
        } else {
            opts.compression
        },
        ..opts.clone()
    };
    let layer = write_layer_from_tar(blobs, &mut plain, &opts)?;
    if layer.diff_id != *diff_id {
        return Err(Error::DigestMismatch {
            expected: diff_id.to_string(),
            actual: layer.diff_id.to_string(),
        });
    }
    Ok(layer.to_ref())
}

fn copy_blob(store: &Store, spool: &Spool, digest: &Digest) -> Result<()> {
    if store.blobs().contains(digest) {
        return Ok(());
    }
    let mut f = spool.open(&format!("blobs/sha256/{}", digest.hex()))?;
    let mut ingest = store.blobs().ingest()?;
    io::copy(&mut f, &mut ingest).ctx(|| format!("cannot copy blob {digest}"))?;
    ingest.commit(Some(digest))?;
    Ok(())
}

fn load_oci(store: &Store, spool: &Spool) -> Result<Vec<Loaded>> {
    let index: ImageIndex = serde_json::from_slice(&spool.bytes("index.json")?)
        .map_err(json_err("index", Path::new("index.json")))?;
    let mut out = Vec::new();
    let mut queue: Vec<(oci_spec::image::Descriptor, Option<String>)> = index
        .manifests()
        .iter()
        .map(|d| {
            (
                d.clone(),
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get("io.containerd.image.name").cloned())
                    .or_else(|| ref_name(d)),
            )
        })
        .collect();
    while let Some((d, name)) = queue.pop() {
        let digest = Digest::from_oci(d.digest())?;
        copy_blob(store, spool, &digest)?;
        let data = store.blobs().read(&digest)?;
        if matches!(d.media_type(), MediaType::ImageIndex)
            || d.media_type().to_string().contains("manifest.list")
        {
            let nested: ImageIndex =
                serde_json::from_slice(&data).map_err(json_err("index", Path::new("index")))?;
            let (os, arch, _) = crate::image::host_platform();
            for n in nested.manifests() {
                let fits = n.platform().as_ref().is_none_or(|p| {
                    p.os().to_string() == os && p.architecture().to_string() == arch
                });
                if fits {
                    queue.push((n.clone(), name.clone()));
                }
            }
            continue;
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&data).map_err(json_err("manifest", Path::new("manifest")))?;
        copy_blob(store, spool, &Digest::from_oci(manifest.config().digest())?)?;
        for l in manifest.layers() {
            copy_blob(store, spool, &Digest::from_oci(l.digest())?)?;
        }
        let tags: Vec<ImageRef> = name.iter().filter_map(|n| n.parse().ok()).collect();
        store.record(&digest, data.len() as u64, &tags)?;
        let image = store.get(&digest)?;
        out.push(Loaded { image, tags });
    }
    Ok(out)
}
