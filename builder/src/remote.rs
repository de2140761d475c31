//! Steps' results from exported caches (`--cache-from`): looked up by key
//! after the store's own index, in the order the sources were given. A hit
//! takes the result's config and layer list only; a layer's blob is fetched
//! when something needs the files (a step that runs on top of it, a
//! `COPY --from`, the exported image), so a build that hits everywhere
//! downloads only its image's layers. A blob that cannot be fetched or does
//! not match what the cache says poisons every entry naming it, and the build
//! starts over without them.

use crate::build::Builder;
use crate::error::StepFailure;
use crate::state::State;
use berth_store::image::LayerRef;
use berth_store::{CacheEntry, Digest, MountRecord, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

/// An exported build cache a build may take results from: the front end
/// reads its document; the builder asks it for keys and, only when a
/// result's files are needed, for layers.
pub trait CacheImport: Send + Sync + std::fmt::Debug {
    /// How warnings name it (`type=registry,ref=...`).
    fn name(&self) -> String;
    /// The result recorded under `key`.
    fn entry(&self, key: &str) -> Option<CacheEntry>;
    /// The cache-mount folder exported under `id`.
    fn mount(&self, id: &str) -> Option<MountRecord>;
    /// Puts a layer blob into the store and unpacks its snapshot, both
    /// checked against `layer.digest` and `diff_id`.
    fn fetch_layer(&self, store: &Store, layer: &LayerRef, diff_id: &Digest) -> Result<(), String>;
}

/// A step of this build and the result it ended with (ran or cached).
#[derive(Debug, Clone)]
pub struct BuiltStep {
    pub stage: usize,
    pub key: String,
    pub entry: CacheEntry,
}

impl Builder {
    /// The first `--cache-from` source with a usable entry for `key`.
    pub(crate) fn remote_lookup(&self, key: &str) -> Option<CacheEntry> {
        let poisoned = self.poisoned.lock().map(|p| p.clone()).unwrap_or_default();
        for (i, source) in self.req.cache_from.iter().enumerate() {
            let Some(entry) = source.entry(key) else {
                continue;
            };
            if entry.layers.iter().any(|l| poisoned.contains(&l.digest)) {
                continue;
            }
            if let Ok(mut origin) = self.layer_origin.lock() {
                for l in &entry.layers {
                    if !self.store.blobs().contains(&l.digest) {
                        origin.entry(l.digest.clone()).or_insert(i);
                    }
                }
            }
            return Some(entry);
        }
        None
    }

    /// A state's layers with their diff IDs, every blob in the store
    /// (fetched from the cache that gave it when it is not).
    pub(crate) fn local_layers(
        &self,
        state: &State,
    ) -> Result<Vec<(LayerRef, Digest)>, StepFailure> {
        let pairs = state.layer_pairs();
        self.ensure_layers(&pairs)?;
        Ok(pairs)
    }

    /// Pairs of layer blob and diff ID this build may rely on: the base
    /// images' (checked when pulled), the store's cache entries' and the
    /// steps' it ran (made here), and imported ones once checked.
    pub(crate) fn trust(&self, pairs: &[(LayerRef, Digest)]) {
        if let Ok(mut t) = self.trusted.lock() {
            for (l, d) in pairs {
                t.insert((l.digest.clone(), d.clone()));
            }
        }
    }

    pub(crate) fn ensure_layers(&self, pairs: &[(LayerRef, Digest)]) -> Result<(), StepFailure> {
        for (layer, diff_id) in pairs {
            let trusted = self
                .trusted
                .lock()
                .map(|t| t.contains(&(layer.digest.clone(), diff_id.clone())))
                .unwrap_or(false);
            if trusted {
                continue;
            }
            let origin = self
                .layer_origin
                .lock()
                .ok()
                .and_then(|o| o.get(&layer.digest).copied());
            let source = origin.and_then(|i| self.req.cache_from.get(i));
            let name = source
                .map(|s| s.name())
                .unwrap_or_else(|| "the cache".into());
            // Unpacking a fetched blob checks its diff ID; a blob already here,
            // or one whose snapshot already is, is checked by hashing it.
            let checked = (|| -> Result<(), String> {
                let fetched = if self.store.blobs().contains(&layer.digest) {
                    false
                } else {
                    let Some(source) = source else {
                        return Err("no cache source has it".into());
                    };
                    let unpacked = self.store.has_snapshot(diff_id);
                    source.fetch_layer(&self.store, layer, diff_id)?;
                    !unpacked
                };
                if !fetched {
                    self.store
                        .verify_layer(layer, diff_id)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })();
            if let Err(e) = checked {
                if let Ok(mut p) = self.poisoned.lock() {
                    p.insert(layer.digest.clone());
                }
                self.cache_fault.store(true, Ordering::SeqCst);
                let w = format!("ignoring the cached layer {} of {name}: {e}", layer.digest);
                self.progress.warn(&w);
                return Err(StepFailure(w));
            }
            self.trust(&[(layer.clone(), diff_id.clone())]);
        }
        Ok(())
    }

    /// Fills a cache mount's new folder from the first source that
    /// exported it; says whether one did.
    pub(crate) fn restore_mount(&self, id: &str, dir: &Path) -> bool {
        for source in &self.req.cache_from {
            let Some(m) = source.mount(id) else { continue };
            let layer = LayerRef::from(&m.layer);
            let restored = (|| -> Result<(), String> {
                if !self.store.blobs().contains(&layer.digest) {
                    source.fetch_layer(&self.store, &layer, &m.diff_id)?;
                }
                let snap = self
                    .store
                    .layer_snapshot(&layer, &m.diff_id)
                    .map_err(|e| e.to_string())?;
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                crate::copy::copy_tree(&snap, dir).map_err(|e| e.to_string())
            })();
            match restored {
                Ok(()) => return true,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(dir);
                    self.progress.warn(&format!(
                        "cache mount {id:?} of {} not restored: {e}",
                        source.name()
                    ));
                }
            }
        }
        false
    }

    /// Remembers what a step ended with, for the cache exports.
    pub(crate) fn note_step(&self, state: &State, key: &str, settle: Option<&str>) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.push(BuiltStep {
                stage: state.stage,
                key: key.to_string(),
                entry: CacheEntry {
                    config: state.config.clone(),
                    layers: state
                        .layers
                        .iter()
                        .map(berth_store::CachedLayer::from)
                        .collect(),
                    settle: settle.map(String::from),
                },
            });
        }
    }

    pub(crate) fn note_mount(&self, id: &str) {
        if let Ok(mut m) = self.mounts_used.lock() {
            m.insert(id.to_string());
        }
    }

    /// The target stage and the stages it is built on (`FROM <stage>`):
    /// the steps whose layers the image holds (`mode=min`).
    pub(crate) fn final_chain(&self, target: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut at = Some(target);
        while let Some(i) = at {
            if !out.insert(i) {
                break;
            }
            at = self
                .plan
                .stages
                .get(i)
                .and_then(|s| match self.plan.source(&s.base, s.index) {
                    crate::plan::Source::Stage(p) => Some(p),
                    _ => None,
                });
        }
        out
    }
}
