//! berth's exported build cache: one document mapping step cache keys to
//! what the steps produced (config, layers), and cache-mount folders to the
//! layers holding them. It travels as the config blob of an OCI image
//! manifest whose layers are every blob the document names, so any registry
//! (and any OCI layout tool) stores it as an ordinary image.

use crate::cache::{CacheEntry, CachedLayer};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The config media type that marks a manifest as a berth cache.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.berth.cache.v1+json";
/// The manifest annotation an image carries its inline cache in.
pub const INLINE_CACHE_ANNOTATION: &str = "dev.berth.cache.v1";
/// The document's own layout; a reader refuses any other.
pub const CACHE_FORMAT: u32 = 1;
/// How the builder computes keys (the first field of every key); a cache
/// written under another scheme is a clean miss, never a wrong hit.
pub const KEY_SCHEME: &str = "berth-cache-v1";

/// One step's result as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// When it was last exported (RFC 3339): the age bound drops old ones.
    pub exported: String,
    #[serde(flatten)]
    pub entry: CacheEntry,
}

/// A `RUN --mount=type=cache` folder as exported: one layer of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    pub exported: String,
    pub layer: CachedLayer,
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheDocument {
    pub format: u32,
    #[serde(rename = "keyScheme")]
    pub key_scheme: String,
    #[serde(default)]
    pub entries: BTreeMap<String, CacheRecord>,
    /// Cache mounts by their id.
    #[serde(default)]
    pub mounts: BTreeMap<String, MountRecord>,
}

/// Why a document is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheDocumentError {
    #[error("not a berth build cache: {0}")]
    Invalid(String),
    #[error("written by another berth (cache format {format}, key scheme {scheme:?}; this berth reads format {CACHE_FORMAT}, key scheme {KEY_SCHEME:?})")]
    OtherVersion { format: u32, scheme: String },
}

/// How many entries an export keeps unless told (`max-entries=`).
pub const DEFAULT_MAX_ENTRIES: usize = 2000;

impl CacheDocument {
    pub fn new() -> CacheDocument {
        CacheDocument {
            format: CACHE_FORMAT,
            key_scheme: KEY_SCHEME.to_string(),
            ..Default::default()
        }
    }

    /// Parses and checks a document: the version, then every entry's shape
    /// (one diff ID per layer, keys of 64 hex digits). An entry that is not
    /// well formed makes the whole document suspect.
    pub fn parse(data: &[u8]) -> Result<CacheDocument, CacheDocumentError> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<u32>,
            #[serde(rename = "keyScheme")]
            key_scheme: Option<String>,
        }
        let head: Head = serde_json::from_slice(data)
            .map_err(|e| CacheDocumentError::Invalid(format!("invalid JSON: {e}")))?;
        let (Some(format), Some(scheme)) = (head.format, head.key_scheme) else {
            return Err(CacheDocumentError::Invalid(
                "no format or keyScheme field".into(),
            ));
        };
        if format != CACHE_FORMAT || scheme != KEY_SCHEME {
            return Err(CacheDocumentError::OtherVersion { format, scheme });
        }
        let doc: CacheDocument = serde_json::from_slice(data)
            .map_err(|e| CacheDocumentError::Invalid(format!("invalid document: {e}")))?;
        for (key, r) in &doc.entries {
            let hex = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || r.entry.layers.len() != r.entry.config.rootfs.diff_ids.len() {
                return Err(CacheDocumentError::Invalid(format!(
                    "entry {key:?} is not well formed"
                )));
            }
        }
        Ok(doc)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Adds `other`'s entries and mounts; for a key both have, the more
    /// recently exported one wins.
    pub fn merge(&mut self, other: CacheDocument) {
        for (k, r) in other.entries {
            match self.entries.get(&k) {
                Some(mine) if mine.exported >= r.exported => {}
                _ => {
                    self.entries.insert(k, r);
                }
            }
        }
        for (k, m) in other.mounts {
            match self.mounts.get(&k) {
                Some(mine) if mine.exported >= m.exported => {}
                _ => {
                    self.mounts.insert(k, m);
                }
            }
        }
    }

    /// Drops entries exported before `oldest` (RFC 3339; none when `None`),
    /// then the oldest ones beyond `max_entries`.
    pub fn prune(&mut self, max_entries: usize, oldest: Option<&str>) {
        if let Some(oldest) = oldest {
            self.entries.retain(|_, r| r.exported.as_str() >= oldest);
            self.mounts.retain(|_, m| m.exported.as_str() >= oldest);
        }
        if self.entries.len() > max_entries {
            let mut by_age: Vec<(String, String)> = self
                .entries
                .iter()
                .map(|(k, r)| (r.exported.clone(), k.clone()))
                .collect();
            by_age.sort();
            let drop = by_age.len() - max_entries;
            for (_, k) in by_age.into_iter().take(drop) {
                self.entries.remove(&k);
            }
        }
    }

    /// Every blob the document names, each once, in a stable order.
    pub fn blobs(&self) -> Vec<CachedLayer> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let layers = self
            .entries
            .values()
            .flat_map(|r| r.entry.layers.iter())
            .chain(self.mounts.values().map(|m| &m.layer));
        for l in layers {
            if seen.insert(l.digest.clone()) {
                out.push(l.clone());
            }
        }
        out
    }

    /// The diff ID the document gives a layer blob (for unpacking it).
    pub fn diff_id_of(&self, digest: &Digest) -> Option<Digest> {
        for r in self.entries.values() {
            let cfg = &r.entry.config.rootfs.diff_ids;
            if let Some(i) = r.entry.layers.iter().position(|l| &l.digest == digest) {
                return cfg.get(i).cloned();
            }
        }
        self.mounts
            .values()
            .find(|m| &m.layer.digest == digest)
            .map(|m| m.diff_id.clone())
    }

    /// The OCI image manifest that carries the document (`config` is its
    /// bytes' descriptor: digest and size).
    pub fn manifest(&self, config_digest: &Digest, config_size: u64) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = self
            .blobs()
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": crate::store::oci_layer_type(&l.media_type),
                    "digest": l.digest.to_string(),
                    "size": l.size,
                })
            })
            .collect();
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": CACHE_CONFIG_MEDIA_TYPE,
                "digest": config_digest.to_string(),
                "size": config_size,
            },
            "layers": layers,
        });
        serde_json::to_vec(&m).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageConfig;

    fn record(exported: &str, layers: usize) -> CacheRecord {
        let mut config = ImageConfig::new_for_host();
        let mut ls = Vec::new();
        for i in 0..layers {
            let d = Digest::of(format!("layer{i}").as_bytes());
            config.rootfs.diff_ids.push(d.clone());
            ls.push(CachedLayer {
                digest: d,
                size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            });
        }
        CacheRecord {
            exported: exported.into(),
            entry: CacheEntry {
                config,
                layers: ls,
                settle: None,
            },
        }
    }

    #[test]
    fn round_trip_merge_and_prune() {
        let mut a = CacheDocument::new();
        a.entries
            .insert("a".repeat(64), record("2026-01-01T00:00:00Z", 1));
        let mut b = CacheDocument::new();
        b.entries
            .insert("b".repeat(64), record("2026-02-01T00:00:00Z", 2));
        a.merge(CacheDocument::parse(&b.to_json()).unwrap());
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.blobs().len(), 2);
        a.prune(1, None);
        assert!(a.entries.contains_key(&"b".repeat(64)));
        a.prune(10, Some("2026-03-01T00:00:00Z"));
        assert!(a.entries.is_empty());
    }

    #[test]
    fn other_versions_and_broken_entries_are_refused() {
        let mut d = CacheDocument::new();
        d.key_scheme = "berth-cache-v0".into();
        assert!(matches!(
            CacheDocument::parse(&d.to_json()),
            Err(CacheDocumentError::OtherVersion { .. })
        ));
        let mut d = CacheDocument::new();
        let mut r = record("2026-01-01T00:00:00Z", 1);
        r.entry.layers.clear();
        d.entries.insert("c".repeat(64), r);
        assert!(matches!(
            CacheDocument::parse(&d.to_json()),
            Err(CacheDocumentError::Invalid(_))
        ));
        assert!(CacheDocument::parse(b"{\"mediaType\":1}").is_err());
    }
}
