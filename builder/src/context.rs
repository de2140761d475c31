//! The build context: a folder filtered by `.dockerignore`, its sources
//! found by path or wildcard, and their content hashed for cache keys.
//!
//! Hashes are remembered per file by (device, inode, size, mtime, ctime) in a
//! per-context cache file under the store, so an unchanged tree costs one
//! `stat` a file and is never read again.

use crate::error::{Error, IoContext, Result};
use crate::ignore::Ignore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// (device, inode, size, mtime s, mtime ns, ctime s, ctime ns): a tuple, so
/// the cache file stays small and quick to read for big contexts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp(u64, u64, u64, i64, i64, i64, i64);

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp(
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HashCache {
    files: HashMap<String, (Stamp, String)>,
    #[serde(skip)]
    dirty: bool,
}

/// One file found under a source.
#[derive(Debug, Clone)]
pub struct ContextFile {
    /// Path relative to the context root, `/`-separated.
    pub rel: String,
    pub meta: fs::Metadata,
}

pub struct Context {
    root: PathBuf,
    ignore: Ignore,
    /// Loaded on a helper thread while the tree is walked.
    cache: std::sync::OnceLock<Mutex<HashCache>>,
    loading: Mutex<Option<std::thread::JoinHandle<HashCache>>>,
    cache_path: Option<PathBuf>,
}

fn join_rel(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Cleans a source path into a path relative to the context root; a path
/// that climbs out of the context is an error, as docker's classic builder
/// says it.
pub fn clean_source(src: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::Invalid(format!(
                        "forbidden path outside the build context: {src}"
                    )));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Context {
    /// Opens the context at `root`; `ignore` is the `.dockerignore` text.
    pub fn open(root: &Path, ignore: Option<&str>, cache_path: Option<PathBuf>) -> Result<Context> {
        let meta = fs::metadata(root).ctx(|| {
            format!(
                "unable to prepare context: path {:?} not found",
                root.display()
            )
        })?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "unable to prepare context: {} is not a directory",
                root.display()
            )));
        }
        let ignore = match ignore {
            Some(text) => Ignore::parse(text)
                .map_err(|e| Error::Invalid(format!("error reading .dockerignore: {e}")))?,
            None => Ignore::new::<&str>(&[])
                .map_err(|e| Error::Invalid(format!("error reading .dockerignore: {e}")))?,
        };
        let path = cache_path.clone();
        let loading = std::thread::spawn(move || {
            path.and_then(|p| fs::read(p).ok())
                .and_then(|d| serde_json::from_slice(&d).ok())
                .unwrap_or_default()
        });
        Ok(Context {
            root: root.to_path_buf(),
            ignore,
            cache: std::sync::OnceLock::new(),
            loading: Mutex::new(Some(loading)),
            cache_path,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ignored(&self, rel: &str) -> Result<bool> {
        if rel.is_empty() {
            return Ok(false);
        }
        self.ignore
            .matches(rel)
            .map_err(|e| Error::Invalid(format!("error reading .dockerignore: {e}")))
    }

    /// The context paths a COPY source names: itself, or every match of a
    /// wildcard, `.dockerignore`d paths left out.
    pub fn resolve(&self, src: &str) -> Result<Vec<String>> {
        let clean = clean_source(src)?;
        if !has_wildcard(&clean) {
            let path = self.root.join(&clean);
            let found = path.symlink_metadata().is_ok() && !self.ignored(&clean)?;
            if !found {
                return Err(Error::Invalid(format!(
                    "failed to compute cache key: \"/{clean}\": not found"
                )));
            }
            return Ok(vec![clean]);
        }
        let mut found = vec![String::new()];
        for comp in clean.split('/') {
            let mut next = Vec::new();
            if !has_wildcard(comp) {
                for base in &found {
                    let rel = join_rel(base, comp);
                    if self.root.join(&rel).symlink_metadata().is_ok() {
                        next.push(rel);
                    }
                }
            } else {
                let glob = globset::GlobBuilder::new(comp)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::Invalid(format!("invalid source pattern {src:?}: {e}")))?
                    .compile_matcher();
                for base in &found {
                    let dir = self.root.join(base);
                    let Ok(rd) = fs::read_dir(&dir) else { continue };
                    let mut names: Vec<String> = rd
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| glob.is_match(n))
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| join_rel(base, &n)));
                }
            }
            found = next;
        }
        let mut out = Vec::new();
        for f in found {
            if !self.ignored(&f)? {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err(Error::Invalid(format!(
                "failed to compute cache key: no source files were specified: \"{src}\" matches nothing in the build context"
            )));
        }
        Ok(out)
    }

    /// Every file under `rel` (itself included), sorted, ignored ones left
    /// out. A directory that is ignored is skipped whole unless an exception
    /// pattern may re-include something below it.
    pub fn walk(&self, rel: &str) -> Result<Vec<ContextFile>> {
        let start = self.root.join(rel);
        let meta = start
            .symlink_metadata()
            .ctx(|| format!("cannot stat {}", start.display()))?;
        self.walk_entry(rel.to_string(), meta, true)
    }

    /// `rel` and, for a directory, everything below it in name order (the
    /// order of one sorted walk). Directories are listed and their entries
    /// stat'ed in parallel: those calls are what a rebuild costs.
    fn walk_entry(
        &self,
        rel: String,
        meta: fs::Metadata,
        include: bool,
    ) -> Result<Vec<ContextFile>> {
        let is_dir = meta.is_dir();
        let mut out = Vec::new();
        if include {
            out.push(ContextFile {
                rel: rel.clone(),
                meta,
            });
        }
        if !is_dir {
            return Ok(out);
        }
        let dir = self.root.join(&rel);
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(&dir)
            .ctx(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .ctx(|| format!("cannot list {}", dir.display()))?;
        names.sort();
        let parts: Vec<Vec<ContextFile>> = names
            .par_iter()
            .map(|n| -> Result<Vec<ContextFile>> {
                let child = join_rel(&rel, &n.to_string_lossy());
                let path = self.root.join(&child);
                let meta = path
                    .symlink_metadata()
                    .ctx(|| format!("cannot stat {}", path.display()))?;
                if self.ignored(&child)? {
                    // An exception may bring back something below.
                    if meta.is_dir() && self.ignore.may_include_below(&child) {
                        return self.walk_entry(child, meta, false);
                    }
                    return Ok(Vec::new());
                }
                self.walk_entry(child, meta, true)
            })
            .collect::<Result<_>>()?;
        out.extend(parts.into_iter().flatten());
        Ok(out)
    }

    fn cache(&self) -> &Mutex<HashCache> {
        self.cache.get_or_init(|| {
            let handle = self.loading.lock().ok().and_then(|mut h| h.take());
            Mutex::new(handle.and_then(|h| h.join().ok()).unwrap_or_default())
        })
    }

    /// The content hash of one file (blake3), from the cache when its stamp
    /// is unchanged.
    fn file_hash(&self, f: &ContextFile) -> Result<String> {
        let stamp = Stamp::of(&f.meta);
        if let Ok(cache) = self.cache().lock() {
            if let Some((s, h)) = cache.files.get(&f.rel) {
                if *s == stamp {
                    return Ok(h.clone());
                }
            }
        }
        let path = self.root.join(&f.rel);
        let mut file = fs::File::open(&path).ctx(|| format!("cannot read {}", path.display()))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .ctx(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hash = hasher.finalize().to_hex().to_string();
        if let Ok(mut cache) = self.cache().lock() {
            cache.files.insert(f.rel.clone(), (stamp, hash.clone()));
            cache.dirty = true;
        }
        Ok(hash)
    }

    /// A digest of what copying `files` gives: names (relative to `base`),
    /// types, modes, link targets and contents; not times or owners.
    pub fn digest(&self, base: &str, files: &[ContextFile]) -> Result<String> {
        let lines: Vec<String> = files
            .par_iter()
            .map(|f| -> Result<String> {
                let name = f.rel.strip_prefix(base).unwrap_or(&f.rel);
                let mode = f.meta.mode();
                let ft = f.meta.file_type();
                let what = if ft.is_file() {
                    self.file_hash(f)?
                } else if ft.is_symlink() {
                    let t = fs::read_link(self.root.join(&f.rel))
                        .ctx(|| format!("cannot read link {}", f.rel))?;
                    format!("link:{}", t.display())
                } else {
                    String::new()
                };
                Ok(format!("{name:?} {mode:o} {what}\n"))
            })
            .collect::<Result<_>>()?;
        let mut h = blake3::Hasher::new();
        for l in lines {
            h.update(l.as_bytes());
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Writes the hash cache back when it learned something.
    pub fn save_cache(&self) {
        let Some(path) = &self.cache_path else { return };
        let Ok(cache) = self.cache().lock() else {
            return;
        };
        if !cache.dirty {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if let Ok(data) = serde_json::to_vec(&*cache) {
            if fs::write(&tmp, data).is_ok() {
                let _ = fs::rename(&tmp, path);
            }
        }
    }
}
