//! The build cache index: a content-addressed cache key → the image state a
//! build step produced (config plus layers). Entries are GC roots, so a cached
//! step keeps its layers until `berth builder prune` drops the entry.

use crate::blobs::sync_dir;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageConfig, LayerRef};
use crate::store::{write_atomic, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

/// What one build step left behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub config: ImageConfig,
    pub layers: Vec<CachedLayer>,
    /// The key later steps chain to when it is not the one the entry is
    /// stored under (a `COPY --from` found by its origin's key chains to its
    /// content's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<String>,
}

/// A layer as a cache entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

impl From<&LayerRef> for CachedLayer {
    fn from(l: &LayerRef) -> Self {
        CachedLayer {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

impl From<&CachedLayer> for LayerRef {
    fn from(l: &CachedLayer) -> Self {
        LayerRef {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

fn valid_key(key: &str) -> Result<()> {
    if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Archive(format!("invalid build cache key {key:?}")))
    }
}

impl Store {
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.root().join("buildcache")
    }

    /// The folder of the `RUN --mount=type=cache` mount `id`.
    pub fn cache_mount_dir(&self, id: &str) -> PathBuf {
        self.root()
            .join("cache-mounts")
            .join(blake3::hash(id.as_bytes()).to_hex().as_str())
    }

    /// The entry for `key` (64 hex digits), when every blob it names is
    /// still in the store.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>> {
        valid_key(key)?;
        let path = self.cache_dir().join(key);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("cannot read {}", path.display()),
                    source: e,
                })
            }
        };
        // A damaged entry is a miss, not a failed build: the step runs again.
        let Ok(entry) = serde_json::from_slice::<CacheEntry>(&data) else {
            tracing::warn!("ignoring damaged build cache entry {}", path.display());
            return Ok(None);
        };
        if entry.layers.len() != entry.config.rootfs.diff_ids.len()
            || !entry
                .layers
                .iter()
                .all(|l| self.blobs().contains(&l.digest))
        {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Records `entry` under `key`. The caller holds a lease from before its
    /// layers were written until this returns, so GC cannot take them between.
    pub fn cache_put(&self, key: &str, entry: &CacheEntry) -> Result<()> {
        valid_key(key)?;
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let data = serde_json::to_vec(entry).map_err(|source| Error::Json {
            what: "build cache entry",
            path: dir.display().to_string(),
            source,
        })?;
        write_atomic(&dir.join(key), &data)?;
        sync_dir(&dir)
    }

    /// Every cache entry (for GC), skipping damaged ones.
    pub(crate) fn cache_entries(&self) -> Vec<CacheEntry> {
        let Ok(rd) = fs::read_dir(self.cache_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| valid_key(&e.file_name().to_string_lossy()).is_ok())
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|d| serde_json::from_slice(&d).ok())
            .collect()
    }

    /// Drops every build cache entry; returns how many there were. The
    /// blobs they kept go with the next GC.
    pub fn cache_clear(&self) -> Result<usize> {
        let dir = self.cache_dir();
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in rd.flatten() {
            fs::remove_file(e.path()).ctx(|| format!("cannot remove {}", e.path().display()))?;
            n += 1;
        }
        Ok(n)
    }
}
