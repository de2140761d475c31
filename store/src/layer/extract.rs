//! Extracting a layer into a directory that it can never write outside of.
//!
//! Every path is resolved inside the root the way `openat2(RESOLVE_IN_ROOT)`
//! does it (and with it): `..` and absolute symlinks planted by earlier
//! entries or layers stay inside the root. Entries are then created relative
//! to their parent directory's file descriptor, never by path.

use crate::error::{Error, IoContext, Result};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What to do with `.wh.` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Delete what they name (stacking layers into one tree).
    Apply,
    /// Turn them into overlayfs whiteouts (a layer's own snapshot).
    Overlay,
}

/// Limits against hostile layers.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub whiteouts: WhiteoutMode,
    /// Refuse a layer whose content is larger than this many bytes.
    pub max_bytes: u64,
    /// Refuse more entries than this.
    pub max_entries: u64,
    /// Refuse when the uncompressed size exceeds the compressed size read so
    /// far by this factor (beyond the first 64 MiB).
    pub max_ratio: u64,
    /// Counts the compressed bytes read, for the ratio check.
    pub compressed_read: Option<Arc<AtomicU64>>,
    /// Apply ownership from the layer (only possible as root).
    pub chown: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ExtractOptions {
            whiteouts: WhiteoutMode::Apply,
            max_bytes: 1 << 40,
            max_entries: 10_000_000,
            max_ratio: 1000,
            compressed_read: None,
            chown: root,
        }
    }
}

/// A reader that counts the bytes read through it.
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            CountingReader {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.inner.consume(n)
    }
}

fn unsafe_entry(path: &str, why: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        path: path.to_string(),
        why: why.into(),
    }
}

/// The path of an entry as components inside the root. `..` is refused;
/// a leading `/` or `./` is dropped.
fn clean(raw: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().to_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err(unsafe_entry(raw, "path contains `..`")),
            Component::Prefix(_) => return Err(unsafe_entry(raw, "path has a prefix")),
        }
    }
    Ok(out)
}

struct Extractor<'a> {
    root: OwnedFd,
    opts: &'a ExtractOptions,
    /// Paths this layer created, which an opaque whiteout must keep.
    created: HashSet<Vec<String>>,
    /// Directories whose times are set last (creating children changes them).
    dir_times: Vec<(Vec<String>, u64)>,
    /// The directory the last entry went into: a layer lists a directory's
    /// files together, and resolving the parent again for each costs a path
    /// walk. Dropped whenever an entry could replace or remove it.
    last_parent: Option<(Vec<String>, OwnedFd)>,
    /// Whether that directory is setgid (its new files take its group).
    parent_setgid: bool,
    /// Who a new file belongs to unless changed, and the bits of a new
    /// file's mode the umask clears (all when it cannot be read): a file
    /// that would come out right is not chowned or chmodded, two syscalls
    /// (and inode updates) fewer for each of a layer's many small files.
    creator: (u32, u32),
    umask: u32,
    /// The buffer file contents are copied through (fewer, larger writes).
    buf: Vec<u8>,
}

fn in_root_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Extractor<'_> {
    /// Opens (creating as needed) the directory `comps` inside the root.
    fn dir(&self, comps: &[String]) -> Result<OwnedFd> {
        let rel = if comps.is_empty() {
            ".".to_string()
        } else {
            comps.join("/")
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rfs::openat2(
            &self.root,
            rel.as_str(),
            flags,
            Mode::empty(),
            in_root_flags(),
        ) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(unsafe_entry(
                    &rel,
                    format!("cannot open parent directory: {e}"),
                ))
            }
        }
        let mut fd = rfs::openat2(&self.root, ".", flags, Mode::empty(), in_root_flags())
            .ctx(|| "cannot open the extraction root".to_string())?;
        for c in comps {
            match rfs::openat2(&fd, c.as_str(), flags, Mode::empty(), in_root_flags()) {
                Ok(next) => fd = next,
                Err(rustix::io::Errno::NOENT) => {
                    match rfs::mkdirat(&fd, c.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => {
                            return Err(unsafe_entry(&rel, format!("cannot create directory: {e}")))
                        }
                    }
                    fd = rfs::openat2(&fd, c.as_str(), flags, Mode::empty(), in_root_flags())
                        .map_err(|e| {
                            unsafe_entry(&rel, format!("cannot open created directory: {e}"))
                        })?;
                }
                Err(e) => return Err(unsafe_entry(&rel, format!("not a directory: {e}"))),
            }
        }
        Ok(fd)
    }

    /// Runs `make` (a create of `name` in `parent`); when something is in
    /// the way (EEXIST), removes it and runs `make` once more.
    fn replacing(
        &self,
        parent: &OwnedFd,
        name: &str,
        make: impl Fn() -> rustix::io::Result<()>,
    ) -> Result<rustix::io::Result<()>> {
        match make() {
            Err(rustix::io::Errno::EXIST) => {
                self.remove(parent, name)?;
                Ok(make())
            }
            r => Ok(r),
        }
    }

    /// Removes `name` in `parent`, whatever it is.
    fn remove(&self, parent: &OwnedFd, name: &str) -> Result<()> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(_) => Ok(()),
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                let path = format!(
                    "/proc/self/fd/{}/{name}",
                    rustix::fd::AsRawFd::as_raw_fd(parent)
                );
                std::fs::remove_dir_all(&path).ctx(|| format!("cannot remove directory {name}"))
            }
            Ok(_) => rfs::unlinkat(parent, name, AtFlags::empty())
                .ctx(|| format!("cannot remove {name}")),
        }
    }

    fn apply_whiteout(&mut self, parent_comps: &[String], name: &str) -> Result<()> {
        let parent = self.dir(parent_comps)?;
        if name == ".wh..opq" {
            let dirfd = rfs::openat(
                &parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "cannot open opaque directory".to_string())?;
            match self.opts.whiteouts {
                WhiteoutMode::Overlay => {
                    rfs::fsetxattr(
                        &dirfd,
                        "trusted.overlay.opaque",
                        b"y",
                        rfs::XattrFlags::empty(),
                    )
                    .ctx(|| "cannot mark directory opaque".to_string())?;
                }
                WhiteoutMode::Apply => {
                    let mut dir = rfs::Dir::read_from(&dirfd)
                        .ctx(|| "cannot list opaque directory".to_string())?;
                    let mut names = Vec::new();
                    for e in dir.by_ref() {
                        let e = e.ctx(|| "cannot list opaque directory".to_string())?;
                        let n = e.file_name().to_string_lossy().to_string();
                        if n != "." && n != ".." {
                            names.push(n);
                        }
                    }
                    for n in names {
                        let mut path = parent_comps.to_vec();
                        path.push(n.clone());
                        if !self.created.contains(&path) {
                            self.remove(&parent, &n)?;
                        }
                    }
                }
            }
            return Ok(());
        }
        match self.opts.whiteouts {
            WhiteoutMode::Apply => self.remove(&parent, name),
            WhiteoutMode::Overlay => {
                self.remove(&parent, name)?;
                rfs::mknodat(
                    &parent,
                    name,
                    rfs::FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .ctx(|| format!("cannot create whiteout for {name}"))
            }
        }
    }

    fn set_owner_mode(
        &self,
        parent: &OwnedFd,
        name: &str,
        h: &tar::Header,
        symlink: bool,
    ) -> Result<()> {
        let flags = if symlink {
            AtFlags::SYMLINK_NOFOLLOW
        } else {
            AtFlags::empty()
        };
        if self.opts.chown {
            let uid = h.uid().unwrap_or(0) as u32;
            let gid = h.gid().unwrap_or(0) as u32;
            // SAFETY-free conversions: ids are plain numbers here.
            let (u, g) = (
                rustix::fs::Uid::from_raw(uid),
                rustix::fs::Gid::from_raw(gid),
            );
            rfs::chownat(
                parent,
                name,
                Some(u),
                Some(g),
                flags | AtFlags::SYMLINK_NOFOLLOW,
            )
            .ctx(|| format!("cannot chown {name}"))?;
        }
        if !symlink {
            // chmod after chown: chown clears setuid/setgid bits.
            let mode = h.mode().unwrap_or(0o644) & 0o7777;
            rfs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
                .ctx(|| format!("cannot chmod {name}"))?;
        }
        Ok(())
    }

    fn set_mtime(&self, parent: &impl AsFd, name: &str, mtime: u64) -> Result<()> {
        let t = Timespec {
            tv_sec: mtime as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rfs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("cannot set times of {name}"))
    }
}

/// Extracts the tar stream `tar` (already decompressed) into `root`.
pub fn extract(tar: &mut dyn Read, root: &Path, opts: &ExtractOptions) -> Result<()> {
    std::fs::create_dir_all(root).ctx(|| format!("cannot create {}", root.display()))?;
    let root_fd = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("cannot open {}", root.display()))?;
    let mut ex = Extractor {
        root: root_fd,
        opts,
        created: HashSet::new(),
        dir_times: Vec::new(),
        last_parent: None,
        parent_setgid: false,
        creator: (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        ),
        umask: current_umask().unwrap_or(0o777),
        buf: vec![0u8; 128 << 10],
    };
    let mut archive = tar::Archive::new(tar);
    let mut total: u64 = 0;
    let mut count: u64 = 0;
    let is_root = rustix::process::geteuid().is_root();
    let entries = archive
        .entries()
        .ctx(|| "cannot read the layer".to_string())?;
    for entry in entries {
        let mut entry = entry.ctx(|| format!("cannot read the layer after {count} entries"))?;
        count += 1;
        if count > opts.max_entries {
            return Err(Error::LimitExceeded(format!(
                "more than {} entries",
                opts.max_entries
            )));
        }
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let size = entry.header().size().unwrap_or(0);
        total = total.saturating_add(size);
        if total > opts.max_bytes {
            return Err(Error::LimitExceeded(format!(
                "content larger than {} bytes",
                opts.max_bytes
            )));
        }
        if let Some(c) = &opts.compressed_read {
            let compressed = c.load(Ordering::Relaxed);
            if total > 64 << 20 && total / compressed.max(1) > opts.max_ratio {
                return Err(Error::LimitExceeded(format!(
                    "expands more than {}x (decompression bomb?)",
                    opts.max_ratio
                )));
            }
        }
        let comps = clean(&raw_path)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            continue; // the root itself
        };
        let name = name.clone();
        // This entry may replace the cached parent or one of its ancestors.
        if ex
            .last_parent
            .as_ref()
            .is_some_and(|(p, _)| p.starts_with(&comps))
        {
            ex.last_parent = None;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            ex.last_parent = None;
            ex.apply_whiteout(parent_comps, target)?;
            continue;
        }
        if ex.last_parent.as_ref().map(|(p, _)| p.as_slice()) != Some(parent_comps) {
            let fd = ex.dir(parent_comps)?;
            ex.parent_setgid =
                rfs::fstat(&fd).map_or(true, |st| st.st_mode & Mode::SGID.bits() != 0);
            ex.last_parent = Some((parent_comps.to_vec(), fd));
        }
        let Some((_, parent)) = ex.last_parent.as_ref() else {
            continue;
        };
        let kind = kind_of(entry.header());
        let mtime = entry.header().mtime().unwrap_or(0);
        let ctx = || format!("cannot extract {raw_path}");
        // Only a directory merges with what is there; anything else replaces
        // it (found when creating it fails with EEXIST: no stat per entry).
        let exists_as_dir = matches!(kind, EntryKind::Dir)
            && matches!(rfs::statat(parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW),
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory);
        if matches!(kind, EntryKind::Dir) && !exists_as_dir {
            ex.remove(parent, &name)?;
        }
        match kind {
            EntryKind::Dir => {
                if !exists_as_dir {
                    rfs::mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o700)).ctx(ctx)?;
                }
                ex.set_owner_mode(parent, &name, entry.header(), false)?;
                ex.dir_times.push((comps.clone(), mtime));
            }
            EntryKind::File => {
                let h = entry.header();
                let mode = h.mode().unwrap_or(0o644) & 0o7777;
                let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
                // Created with its final mode when the umask leaves it so
                // (and no setuid bits, which a chown would clear).
                let plain = mode & 0o7000 == 0 && mode & ex.umask == 0;
                let owned = !ex.opts.chown || ((uid, gid) == ex.creator && !ex.parent_setgid);
                let create_mode = if plain { mode } else { 0o600 };
                let create = || {
                    rfs::openat(
                        parent,
                        name.as_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(create_mode),
                    )
                };
                let fd = match create() {
                    Err(rustix::io::Errno::EXIST) => {
                        ex.remove(parent, &name)?;
                        create()
                    }
                    other => other,
                }
                .ctx(ctx)?;
                let mut file = std::fs::File::from(fd);
                let mut buf = std::mem::take(&mut ex.buf);
                let copied = copy_with(&mut entry, &mut file, &mut buf);
                ex.buf = buf;
                copied.ctx(ctx)?;
                // Owner and mode first: chown clears setuid bits and file
                // capabilities. Through the descriptor: no path walk.
                if !owned {
                    rfs::fchown(
                        &file,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .ctx(|| format!("cannot chown {name}"))?;
                }
                if !plain {
                    rfs::fchmod(&file, Mode::from_raw_mode(mode))
                        .ctx(|| format!("cannot chmod {name}"))?;
                }
                if let Ok(Some(exts)) = entry.pax_extensions() {
                    for ext in exts.flatten() {
                        if let (Ok(key), value) = (ext.key(), ext.value_bytes()) {
                            if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                                // Unsupported attributes (e.g. security.* without privilege) are skipped.
                                let _ =
                                    rfs::fsetxattr(&file, attr, value, rfs::XattrFlags::empty());
                            }
                        }
                    }
                }
                let t = Timespec {
                    tv_sec: mtime as i64,
                    tv_nsec: 0,
                };
                rfs::futimens(
                    &file,
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                )
                .ctx(|| format!("cannot set times of {name}"))?;
            }
            EntryKind::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_default();
                ex.replacing(parent, &name, || {
                    rfs::symlinkat(target.as_str(), parent, name.as_str())
                })?
                .ctx(ctx)?;
                ex.set_owner_mode(parent, &name, entry.header(), true)?;
                ex.set_mtime(parent, &name, mtime)?;
            }
            EntryKind::HardLink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_default();
                let tcomps = clean(&target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_entry(&raw_path, "hard link to the root"));
                };
                let tparent_fd = ex.dir(tparent)?;
                ex.replacing(parent, &name, || {
                    rfs::linkat(
                        &tparent_fd,
                        tname.as_str(),
                        parent,
                        name.as_str(),
                        AtFlags::empty(),
                    )
                })?
                .map_err(|e| {
                    unsafe_entry(
                        &raw_path,
                        format!("hard link target {target:?} is not in the layer: {e}"),
                    )
                })?;
                // The link's own header sets the shared inode's owner (and,
                // unless it is a symlink, its mode and times), as docker's
                // and BuildKit's unpacking apply it.
                let is_symlink = rfs::statat(parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink)
                    .ctx(ctx)?;
                ex.set_owner_mode(parent, &name, entry.header(), is_symlink)?;
                if !is_symlink {
                    ex.set_mtime(parent, &name, mtime)?;
                }
            }
            EntryKind::Device(ft) => {
                if !is_root {
                    continue; // device nodes need root; a rootless extraction skips them
                }
                let dev = rfs::makedev(
                    entry.header().device_major().ok().flatten().unwrap_or(0),
                    entry.header().device_minor().ok().flatten().unwrap_or(0),
                );
                ex.replacing(parent, &name, || {
                    rfs::mknodat(parent, name.as_str(), ft, Mode::from_raw_mode(0o600), dev)
                })?
                .ctx(ctx)?;
                ex.set_owner_mode(parent, &name, entry.header(), false)?;
                ex.set_mtime(parent, &name, mtime)?;
            }
            EntryKind::Skip => continue,
        }
        // Only an opaque whiteout being applied asks what the layer made.
        if opts.whiteouts == WhiteoutMode::Apply {
            ex.created.insert(comps);
        }
    }
    for (comps, mtime) in ex.dir_times.iter().rev() {
        if let Some((name, parent)) = comps.split_last() {
            if let Ok(p) = ex.dir(parent) {
                let _ = ex.set_mtime(&p, name, *mtime);
            }
        }
    }
    Ok(())
}

/// The process's umask, as the kernel reports it (reading it with umask(2)
/// would set it too, racing other threads).
fn current_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

enum EntryKind {
    Dir,
    File,
    Symlink,
    HardLink,
    Device(rfs::FileType),
    Skip,
}

fn kind_of(h: &tar::Header) -> EntryKind {
    use tar::EntryType as T;
    match h.entry_type() {
        T::Directory => EntryKind::Dir,
        T::Regular | T::Continuous | T::GNUSparse => EntryKind::File,
        T::Symlink => EntryKind::Symlink,
        T::Link => EntryKind::HardLink,
        T::Char => EntryKind::Device(rfs::FileType::CharacterDevice),
        T::Block => EntryKind::Device(rfs::FileType::BlockDevice),
        T::Fifo => EntryKind::Device(rfs::FileType::Fifo),
        _ => EntryKind::Skip,
    }
}

/// Copies `from` to `to` through `buf` (io::copy's 8 KiB buffer makes a
/// write call per 8 KiB of a large file).
fn copy_with(from: &mut dyn Read, to: &mut std::fs::File, buf: &mut [u8]) -> io::Result<u64> {
    use std::io::Write;
    let mut total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Fill the buffer before writing: a tar entry reads in pieces.
        let mut filled = n;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(m) => filled += m,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        to.write_all(&buf[..filled])?;
        total += filled as u64;
        if filled < buf.len() {
            return Ok(total);
        }
    }
}
