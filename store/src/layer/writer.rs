//! `LayerWriter`: a directory tree → a deterministic tar stream → compressed
//! blob, with the diff ID and digest computed in the same pass.
//!
//! Entries are sorted by name, owners numeric, user/group names empty, mtimes
//! clamped to `SOURCE_DATE_EPOCH`, so the same tree always gives the same
//! bytes. Overlay whiteouts (0:0 character devices, the opaque xattr) become
//! `.wh.` entries; hard links become tar hard links; xattrs are kept as PAX
//! records (file capabilities included).

use super::chunks::ChunkIndex;
use super::compress::Compressor;
use super::{threads, Layer, LayerOptions};
use crate::blobs::{BlobStore, Ingest};
use crate::digest::TeeHasher;
use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use tar::{EntryType, Header};

type Sink = TeeHasher<Compressor<Ingest>>;

/// Where a layer's tar stream goes: hashed (diff ID), compressed, stored.
pub struct LayerSink {
    sink: Sink,
    index: Option<std::sync::Arc<ChunkIndex>>,
}

impl LayerSink {
    /// Marks a place between tar entries where a compressed member may end
    /// (see `ParallelGzip::boundary`): `name` is the next entry's name,
    /// `size` its size.
    pub fn boundary(&mut self, name: &str, size: u64) -> io::Result<()> {
        let hint = u64::from_le_bytes(
            blake3::hash(name.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        self.sink.inner_mut().boundary(hint, size)
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

fn start(blobs: &BlobStore, opts: &LayerOptions) -> Result<LayerSink> {
    let ingest = blobs.ingest()?;
    let index = (opts.reuse && opts.compression == super::Compression::Gzip)
        .then(|| std::sync::Arc::new(blobs.chunk_index()));
    let compressor = Compressor::new(
        ingest,
        opts.compression,
        threads(opts.threads),
        index.clone(),
    )
    .ctx(|| "cannot start layer compression".to_string())?;
    Ok(LayerSink {
        sink: TeeHasher::new(compressor),
        index,
    })
}

fn finish(blobs: &BlobStore, sink: LayerSink, opts: &LayerOptions) -> Result<Layer> {
    let (compressor, diff_id, diff_size) = sink
        .sink
        .finish()
        .ctx(|| "cannot hash the layer".to_string())?;
    let (ingest, members) = compressor
        .finish()
        .ctx(|| "cannot finish layer compression".to_string())?;
    let (digest, size) = ingest.commit(None)?;
    blobs.record_diff_size(&digest, diff_size)?;
    if let Some(index) = &sink.index {
        // Losing the index only costs a later recompression.
        if let Err(e) = index.record(&digest, &members) {
            tracing::warn!("cannot record the members of {digest}: {e}");
        }
    }
    Ok(Layer {
        digest,
        diff_id,
        size,
        media_type: opts.compression.media_type().to_string(),
    })
}

/// Stores an existing uncompressed tar stream as a layer (`berth import`).
pub fn write_layer_from_tar(
    blobs: &BlobStore,
    tar: &mut dyn Read,
    opts: &LayerOptions,
) -> Result<Layer> {
    let mut sink = start(blobs, opts)?;
    io::copy(tar, &mut sink).ctx(|| "cannot read the layer tarball".to_string())?;
    finish(blobs, sink, opts)
}

/// Writes as a layer the tar stream `produce` writes (a COPY step streams
/// its files straight into the compressed blob this way).
pub fn write_layer_with(
    blobs: &BlobStore,
    opts: &LayerOptions,
    produce: impl FnOnce(&mut LayerSink) -> io::Result<()>,
) -> Result<Layer> {
    let mut sink = start(blobs, opts)?;
    produce(&mut sink).ctx(|| "cannot write the layer".to_string())?;
    finish(blobs, sink, opts)
}

/// Writes the tree under `dir` as a layer.
pub fn write_layer_from_dir(blobs: &BlobStore, dir: &Path, opts: &LayerOptions) -> Result<Layer> {
    write_layer_from_dir_except(blobs, dir, opts, &[])
}

/// Like [`write_layer_from_dir`], leaving out the entries at the paths
/// `except` names (relative to `dir`; a directory with what it holds).
pub fn write_layer_from_dir_except(
    blobs: &BlobStore,
    dir: &Path,
    opts: &LayerOptions,
    except: &[&Path],
) -> Result<Layer> {
    let sink = start(blobs, opts)?;
    let mut builder = tar::Builder::new(sink);
    builder.follow_symlinks(false);
    TreeWriter {
        root: dir,
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
        except,
    }
    .append_tree(&mut builder)?;
    let sink = builder
        .into_inner()
        .ctx(|| format!("cannot write the layer of {}", dir.display()))?;
    finish(blobs, sink, opts)
}

struct TreeWriter<'a> {
    root: &'a Path,
    epoch: Option<i64>,
    /// (device, inode) of files with several links → the first path written.
    links: HashMap<(u64, u64), String>,
    except: &'a [&'a Path],
}

fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).to_string();
        // overlayfs' own attributes describe the upper dir, not the content.
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, name.as_str(), &mut value) {
            value.truncate(len);
            out.push((name, value));
        }
    }
    out.sort();
    out
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 8];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(rustix::fs::lgetxattr(path, *n, &mut v), Ok(1) if v[0] == b'y'))
}

impl TreeWriter<'_> {
    fn header(&self, meta: &std::fs::Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        let mtime = meta.mtime().max(0);
        let mtime = match self.epoch {
            Some(e) if mtime > e => e.max(0),
            _ => mtime,
        };
        h.set_mtime(mtime as u64);
        h.set_size(0);
        h
    }

    /// Writes `rel` as a hard link to the first path of the same inode, if
    /// there was one; true when it did.
    fn hard_link<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        meta: &std::fs::Metadata,
        rel: &str,
    ) -> io::Result<bool> {
        if meta.nlink() < 2 {
            return Ok(false);
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.links.get(&key) {
            let mut h = self.header(meta, EntryType::Link);
            b.append_link(&mut h, rel, first)?;
            return Ok(true);
        }
        self.links.insert(key, rel.to_string());
        Ok(false)
    }

    fn empty_file(&self, meta: &std::fs::Metadata) -> Header {
        let mut h = self.header(meta, EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn append_tree<W: Write>(&mut self, b: &mut tar::Builder<W>) -> Result<()> {
        let walker = walkdir::WalkDir::new(self.root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name();
        let root = self.root;
        let except = self.except;
        let walker = walker.into_iter().filter_entry(|e| {
            e.path()
                .strip_prefix(root)
                .map_or(true, |rel| !except.contains(&rel))
        });
        for entry in walker {
            let entry = entry.map_err(|e| Error::Io {
                context: format!("cannot walk {}", self.root.display()),
                source: e.into(),
            })?;
            let path = entry.path();
            let rel = path.strip_prefix(self.root).map_err(|_| {
                Error::Archive(format!("{} is outside the layer root", path.display()))
            })?;
            let rel_str = rel.to_string_lossy().to_string();
            let meta = entry
                .path()
                .symlink_metadata()
                .ctx(|| format!("cannot stat {}", path.display()))?;
            let ft = meta.file_type();
            let ctx = || format!("cannot add {} to the layer", path.display());

            if ft.is_char_device() && meta.rdev() == 0 {
                // An overlay whiteout: the file was deleted in this layer.
                let name = rel
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let wh = match rel.parent() {
                    Some(p) if !p.as_os_str().is_empty() => format!("{}/.wh.{name}", p.display()),
                    _ => format!(".wh.{name}"),
                };
                let mut h = self.empty_file(&meta);
                b.append_data(&mut h, wh, io::empty()).ctx(ctx)?;
                continue;
            }
            let attrs = xattrs(path);
            if !attrs.is_empty() {
                let pax: Vec<(String, Vec<u8>)> = attrs
                    .into_iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                    .collect();
                b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .ctx(ctx)?;
            }
            if ft.is_dir() {
                let mut h = self.header(&meta, EntryType::Directory);
                b.append_data(&mut h, format!("{rel_str}/"), io::empty())
                    .ctx(ctx)?;
                if is_opaque(path) {
                    let mut h = self.empty_file(&meta);
                    b.append_data(&mut h, format!("{rel_str}/.wh..wh..opq"), io::empty())
                        .ctx(ctx)?;
                }
            } else if ft.is_symlink() {
                // A hard link to a symlink stays one, as docker's archiver
                // writes it.
                if self.hard_link(b, &meta, &rel_str).ctx(ctx)? {
                    continue;
                }
                let target = std::fs::read_link(path).ctx(ctx)?;
                let mut h = self.header(&meta, EntryType::Symlink);
                b.append_link(&mut h, &rel_str, target).ctx(ctx)?;
            } else if ft.is_file() {
                if self.hard_link(b, &meta, &rel_str).ctx(ctx)? {
                    continue;
                }
                let mut h = self.header(&meta, EntryType::Regular);
                h.set_size(meta.len());
                let file = File::open(path).ctx(ctx)?;
                // A file that changes size while read would corrupt the tar.
                b.append_data(&mut h, &rel_str, file.take(meta.len()))
                    .ctx(ctx)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    EntryType::Char
                } else if ft.is_block_device() {
                    EntryType::Block
                } else {
                    EntryType::Fifo
                };
                let mut h = self.header(&meta, kind);
                if kind != EntryType::Fifo {
                    let rdev = meta.rdev();
                    h.set_device_major(rustix::fs::major(rdev)).ctx(ctx)?;
                    h.set_device_minor(rustix::fs::minor(rdev)).ctx(ctx)?;
                }
                b.append_data(&mut h, &rel_str, io::empty()).ctx(ctx)?;
            }
            // Sockets have no place in an image.
        }
        Ok(())
    }
}
