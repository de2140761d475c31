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
    /// Puts a layer blob into the store, checked against `layer.digest` and
    /// `diff_id`, and unpacks its snapshot when `unpack`.
    fn fetch_layer(
        &self,
        store: &Store,
        layer: &LayerRef,
        diff_id: &Digest,
        unpack: bool,
    ) -> Result<(), String>;
}

/// Layers fetched at once.
const FETCH_PARALLEL: usize = 3;

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
        self.ensure_layers(&pairs, true)?;
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

    /// Fetches what `pairs` name that the store lacks; `unpack` when the
    /// files are wanted now (not only the blobs, as an exported image).
    pub(crate) fn ensure_layers(
        &self,
        pairs: &[(LayerRef, Digest)],
        unpack: bool,
    ) -> Result<(), StepFailure> {
        let todo: Vec<&(LayerRef, Digest)> = {
            let trusted = self.trusted.lock().map(|t| t.clone()).unwrap_or_default();
            pairs
                .iter()
                .filter(|(l, d)| !trusted.contains(&(l.digest.clone(), d.clone())))
                .collect()
        };
        // A few at a time, as a pull fetches layers.
        for group in todo.chunks(FETCH_PARALLEL) {
            let results: Vec<Result<(), String>> = std::thread::scope(|s| {
                let running: Vec<_> = group
                    .iter()
                    .map(|(l, d)| s.spawn(move || self.check_layer(l, d, unpack)))
                    .collect();
                running
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("the fetch failed".into())))
                    .collect()
            });
            for ((layer, diff_id), checked) in group.iter().zip(results) {
                if let Err(w) = checked {
                    if let Ok(mut p) = self.poisoned.lock() {
                        p.insert(layer.digest.clone());
                    }
                    self.cache_fault.store(true, Ordering::SeqCst);
                    self.progress.warn(&w);
                    return Err(StepFailure(w));
                }
                self.trust(&[(layer.clone(), diff_id.clone())]);
            }
        }
        Ok(())
    }

    /// Fetches one pair's blob when it is missing, and checks the pair. A
    /// fetched blob's diff ID is checked on the way in (unless its snapshot
    /// was already there); a blob already here is hashed.
    fn check_layer(&self, layer: &LayerRef, diff_id: &Digest, unpack: bool) -> Result<(), String> {
        let origin = self
            .layer_origin
            .lock()
            .ok()
            .and_then(|o| o.get(&layer.digest).copied());
        let source = origin.and_then(|i| self.req.cache_from.get(i));
        let name = source
            .map(|s| s.name())
            .unwrap_or_else(|| "the cache".into());
        let checked = (|| -> Result<(), String> {
            let verified = if self.store.blobs().contains(&layer.digest) {
                false
            } else {
                let Some(source) = source else {
                    return Err("no cache source has it".into());
                };
                let unpacked = self.store.has_snapshot(diff_id);
                source.fetch_layer(&self.store, layer, diff_id, unpack)?;
                !unpack || !unpacked
            };
            if !verified {
                self.store
                    .verify_layer(layer, diff_id)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })();
        checked.map_err(|e| format!("ignoring the cached layer {} of {name}: {e}", layer.digest))
    }

    /// Fills a cache mount's new folder from the first source that
    /// exported it; says whether one did.
    pub(crate) fn restore_mount(&self, id: &str, dir: &Path) -> bool {
        for source in &self.req.cache_from {
            let Some(m) = source.mount(id) else { continue };
            let layer = LayerRef::from(&m.layer);
            let restored = (|| -> Result<(), String> {
                if !self.store.blobs().contains(&layer.digest) {
                    source.fetch_layer(&self.store, &layer, &m.diff_id, true)?;
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
