//! The build context: a folder filtered by `.dockerignore`, its sources
//! found by path or wildcard, and their content hashed for cache keys.
//!
//! Hashes are remembered per file by (device, inode, size, mtime, ctime) in a
//! per-context cache file under the store, so an unchanged tree costs one
//! `stat` a file and is never read again.

use crate::error::{Error, IoContext, Result};
use crate::ignore::Ignore;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// (device, inode, size, mtime s, mtime ns, ctime s, ctime ns): a tuple, so
/// the cache file stays small and quick to read for big contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64, u64, u64, i64, i64, i64, i64);

impl Stamp {
    fn of(m: &FileInfo) -> Stamp {
        Stamp(
            m.dev, m.ino, m.size, m.mtime, m.mtime_ns, m.ctime, m.ctime_ns,
        )
    }
}

#[derive(Debug, Default)]
struct HashCache {
    files: HashMap<String, (Stamp, [u8; 32])>,
    dirty: bool,
}

/// The cache file: `BHC1`, then per file its path length (u32 LE), path,
/// the seven stamp numbers (i64 LE) and the 32-byte hash. Read in one pass
/// without a parser: a rebuild of a big context must stay cheap.
const CACHE_MAGIC: &[u8; 4] = b"BHC1";

impl HashCache {
    fn decode(data: &[u8]) -> Option<HashCache> {
        let mut rest = data.strip_prefix(CACHE_MAGIC)?;
        let mut files = HashMap::new();
        let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
            if rest.len() < n {
                return None;
            }
            let (a, b) = rest.split_at(n);
            *rest = b;
            Some(a.to_vec())
        };
        let num = |rest: &mut &[u8]| -> Option<i64> {
            Some(i64::from_le_bytes(take(rest, 8)?.try_into().ok()?))
        };
        while !rest.is_empty() {
            let len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
            let path = String::from_utf8(take(&mut rest, len)?).ok()?;
            let mut n = [0i64; 7];
            for v in n.iter_mut() {
                *v = num(&mut rest)?;
            }
            let hash: [u8; 32] = take(&mut rest, 32)?.try_into().ok()?;
            let stamp = Stamp(
                n[0] as u64,
                n[1] as u64,
                n[2] as u64,
                n[3],
                n[4],
                n[5],
                n[6],
            );
            files.insert(path, (stamp, hash));
        }
        Some(HashCache {
            files,
            dirty: false,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = CACHE_MAGIC.to_vec();
        for (path, (st, hash)) in &self.files {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            for v in [
                st.0 as i64,
                st.1 as i64,
                st.2 as i64,
                st.3,
                st.4,
                st.5,
                st.6,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(hash);
        }
        out
    }
}

/// What a file is, as one `stat` says (taken relative to its directory's
/// descriptor when walking: a rebuild of a big context is mostly stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    kind: Kind,
    mode: u32,
    size: u64,
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub fn is_file(self) -> bool {
        self == Kind::File
    }
    pub fn is_dir(self) -> bool {
        self == Kind::Dir
    }
    pub fn is_symlink(self) -> bool {
        self == Kind::Symlink
    }
}

impl From<&fs::Metadata> for FileInfo {
    fn from(m: &fs::Metadata) -> FileInfo {
        let ft = m.file_type();
        FileInfo {
            kind: if ft.is_file() {
                Kind::File
            } else if ft.is_dir() {
                Kind::Dir
            } else if ft.is_symlink() {
                Kind::Symlink
            } else {
                Kind::Other
            },
            mode: m.mode(),
            size: m.size(),
            dev: m.dev(),
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }
}

impl FileInfo {
    fn from_stat(st: &rustix::fs::Stat) -> FileInfo {
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => Kind::File,
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        FileInfo {
            kind,
            mode: st.st_mode,
            size: st.st_size as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            mtime: st.st_mtime,
            mtime_ns: st.st_mtime_nsec as i64,
            ctime: st.st_ctime,
            ctime_ns: st.st_ctime_nsec as i64,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }

    /// The owner a copy of the file gets without `--chown`.
    pub fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// The same file, owned by root: what the build context's files are to
    /// a COPY (BuildKit's context transfer resets owners).
    pub fn without_owner(mut self) -> FileInfo {
        self.uid = 0;
        self.gid = 0;
        self
    }
    pub fn file_type(&self) -> Kind {
        self.kind
    }
    pub fn is_dir(&self) -> bool {
        self.kind.is_dir()
    }
    pub fn is_file(&self) -> bool {
        self.kind.is_file()
    }
    pub fn len(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn mode(&self) -> u32 {
        self.mode
    }
    pub fn mtime(&self) -> i64 {
        self.mtime
    }
}

/// One file found under a source.
#[derive(Debug, Clone)]
pub struct ContextFile {
    /// Path relative to the context root, `/`-separated.
    pub rel: String,
    pub meta: FileInfo,
}

pub struct Context {
    root: PathBuf,
    ignore: Ignore,
    /// Loaded on a helper thread while the tree is walked.
    cache: std::sync::OnceLock<Mutex<HashCache>>,
    loading: Mutex<Option<std::thread::JoinHandle<HashCache>>>,
    cache_path: Option<PathBuf>,
}

/// How the walk opens directories: never through a symlink.
const DIR_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::DIRECTORY)
    .union(rustix::fs::OFlags::CLOEXEC)
    .union(rustix::fs::OFlags::NOFOLLOW);

fn join_rel(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Cleans a source path into a path relative to the context root. `..`
/// stops at the root, as BuildKit reads `../x` as the context's `x`: a
/// source never leaves the context.
pub fn clean_source(src: &str) -> Result<String> {
    Ok(lexical_clean(src, true).unwrap_or_default())
}

/// `path` cleaned lexically (`.`, empty components and `a/..` dropped),
/// relative; `None` when it climbs above its start.
pub fn clean_relative(path: &str) -> Option<String> {
    lexical_clean(path, false)
}

/// `path` cleaned lexically; a `..` above the start is dropped when
/// `clamp`, else the answer is `None`.
fn lexical_clean(path: &str, clamp: bool) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !clamp {
                    return None;
                }
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// True when `s` has a `*`, `?` or `[` not escaped by a backslash. A path
/// without one is taken as written, backslashes and all (BuildKit's
/// `containsWildcards`).
fn has_wildcard(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
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
                .and_then(|d| HashCache::decode(&d))
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

    /// True when `rel` names something, its parents' symlinks followed
    /// inside the root (a stage's `/abs -> /data` means `ROOT/data`).
    fn exists(&self, rel: &str) -> bool {
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        crate::copy::resolve_in(&self.root, parent)
            .is_ok_and(|p| p.join(name).symlink_metadata().is_ok())
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
            let found = self.exists(&clean) && !self.ignored(&clean)?;
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
                    if self.exists(&rel) {
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
                    let Ok(dir) = crate::copy::resolve_in(&self.root, base) else {
                        continue;
                    };
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
        // A wildcard that matches nothing copies nothing, as BuildKit's
        // copy allows empty wildcards (testEmptyWildcard).
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
        let info = FileInfo::from(&meta);
        let dir = if info.is_dir() {
            Some(
                rustix::fs::open(&start, DIR_FLAGS, rustix::fs::Mode::empty()).map_err(|e| {
                    Error::Io {
                        context: format!("cannot open {}", start.display()),
                        source: e.into(),
                    }
                })?,
            )
        } else {
            None
        };
        self.walk_entry(rel.to_string(), info, true, dir)
    }

    /// `rel` and, for a directory (open as `dir`), everything below it in
    /// name order (the order of one sorted walk). Entries are stat'ed
    /// relative to their directory, and directories walked in parallel:
    /// those calls are what a rebuild costs.
    fn walk_entry(
        &self,
        rel: String,
        info: FileInfo,
        include: bool,
        dir: Option<rustix::fd::OwnedFd>,
    ) -> Result<Vec<ContextFile>> {
        let mut out = Vec::new();
        if include {
            out.push(ContextFile {
                rel: rel.clone(),
                meta: info,
            });
        }
        let Some(dir) = dir else {
            return Ok(out);
        };
        let io_err = |what: &str, e: rustix::io::Errno| Error::Io {
            context: format!("cannot {what} {}", self.root.join(&rel).display()),
            source: e.into(),
        };
        let mut names: Vec<std::ffi::CString> = Vec::new();
        let mut listing = rustix::fs::Dir::read_from(&dir).map_err(|e| io_err("list", e))?;
        for e in listing.by_ref() {
            let e = e.map_err(|e| io_err("list", e))?;
            let n = e.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        names.sort();
        let parts: Vec<Vec<ContextFile>> = names
            .par_iter()
            .map(|n| -> Result<Vec<ContextFile>> {
                let child = join_rel(&rel, &n.to_string_lossy());
                let st =
                    rustix::fs::statat(&dir, n.as_c_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err("stat", e))?;
                let info = FileInfo::from_stat(&st);
                let open = |n: &std::ffi::CStr| {
                    rustix::fs::openat(&dir, n, DIR_FLAGS, rustix::fs::Mode::empty())
                        .map_err(|e| io_err("open", e))
                };
                if self.ignored(&child)? {
                    // An exception may bring back something below.
                    if info.is_dir() && self.ignore.may_include_below(&child) {
                        return self.walk_entry(child, info, false, Some(open(n)?));
                    }
                    return Ok(Vec::new());
                }
                let sub = if info.is_dir() { Some(open(n)?) } else { None };
                self.walk_entry(child, info, true, sub)
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
    fn file_hash(&self, f: &ContextFile) -> Result<[u8; 32]> {
        let stamp = Stamp::of(&f.meta);
        if let Ok(cache) = self.cache().lock() {
            if let Some((s, h)) = cache.files.get(&f.rel) {
                if *s == stamp {
                    return Ok(*h);
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
        let hash = *hasher.finalize().as_bytes();
        if let Ok(mut cache) = self.cache().lock() {
            cache.files.insert(f.rel.clone(), (stamp, hash));
            cache.dirty = true;
        }
        Ok(hash)
    }

    /// A digest of what copying `files` gives: names (relative to `base`),
    /// types, modes, link targets and contents; not times or owners.
    pub fn digest(&self, base: &str, files: &[ContextFile]) -> Result<String> {
        let entries: Vec<[u8; 32]> = files
            .par_iter()
            .map(|f| -> Result<[u8; 32]> {
                let name = f.rel.strip_prefix(base).unwrap_or(&f.rel);
                let ft = f.meta.file_type();
                let mut h = blake3::Hasher::new();
                h.update(&(name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
                h.update(&f.meta.mode().to_le_bytes());
                if ft.is_file() {
                    h.update(&self.file_hash(f)?);
                } else if ft.is_symlink() {
                    let t = fs::read_link(self.root.join(&f.rel))
                        .ctx(|| format!("cannot read link {}", f.rel))?;
                    h.update(t.as_os_str().as_encoded_bytes());
                }
                Ok(*h.finalize().as_bytes())
            })
            .collect::<Result<_>>()?;
        let mut h = blake3::Hasher::new();
        for e in entries {
            h.update(&e);
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
        if fs::write(&tmp, cache.encode()).is_ok() {
            let _ = fs::rename(&tmp, path);
        }
    }
}
