//! Reuse of compressed layer bytes: every gzip member a layer writer
//! produces is remembered by the blake3 hash of its uncompressed bytes, with
//! the blob and offset it sits at. A later layer that contains the same bytes
//! (a COPY in which a few files changed) copies the member instead of
//! compressing it again. Members are independent and deterministic, so the
//! result is the same blob a fresh compression would give.

use crate::digest::Digest;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub type ChunkKey = [u8; 32];

/// Where a compressed member is.
#[derive(Debug, Clone)]
struct Location {
    blob: PathBuf,
    offset: u64,
    len: u64,
}

/// The members known from earlier layers, and an append-only file of them.
#[derive(Debug)]
pub struct ChunkIndex {
    path: PathBuf,
    blobs_dir: PathBuf,
    known: HashMap<ChunkKey, Location>,
    /// Open blob files, so a layer's members cost one open per blob.
    files: Mutex<HashMap<PathBuf, File>>,
}

fn parse_line(line: &str, blobs_dir: &Path) -> Option<(ChunkKey, Location)> {
    let mut it = line.split(' ');
    let key: ChunkKey = hex::decode(it.next()?).ok()?.try_into().ok()?;
    let digest: Digest = it.next()?.parse().ok()?;
    let offset = it.next()?.parse().ok()?;
    let len = it.next()?.parse().ok()?;
    Some((
        key,
        Location {
            blob: blobs_dir.join(digest.hex()),
            offset,
            len,
        },
    ))
}

impl ChunkIndex {
    /// Reads the index at `path`; lines it cannot read are skipped (a torn
    /// last line after a crash is just a member that is compressed again).
    pub fn load(path: &Path, blobs_dir: &Path) -> ChunkIndex {
        let mut known = HashMap::new();
        if let Ok(f) = File::open(path) {
            for line in io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Some((k, loc)) = parse_line(&line, blobs_dir) {
                    known.insert(k, loc);
                }
            }
        }
        ChunkIndex {
            path: path.to_path_buf(),
            blobs_dir: blobs_dir.to_path_buf(),
            known,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The compressed member for `key`, if an earlier layer has one whose
    /// gzip trailer matches `crc` and `size` of the data (a stale or damaged
    /// entry is a miss, never a wrong layer).
    pub fn lookup(&self, key: &ChunkKey, crc: u32, size: u32) -> Option<Vec<u8>> {
        let loc = self.known.get(key)?;
        if loc.len < 18 || loc.len > (64 << 20) {
            return None;
        }
        let mut buf = vec![0u8; loc.len as usize];
        {
            let mut files = self.files.lock().ok()?;
            if !files.contains_key(&loc.blob) {
                files.insert(loc.blob.clone(), File::open(&loc.blob).ok()?);
            }
            files
                .get(&loc.blob)?
                .read_exact_at(&mut buf, loc.offset)
                .ok()?;
        }
        let n = buf.len();
        let trailer_crc = u32::from_le_bytes(buf[n - 8..n - 4].try_into().ok()?);
        let trailer_size = u32::from_le_bytes(buf[n - 4..].try_into().ok()?);
        (buf.starts_with(&[0x1f, 0x8b]) && trailer_crc == crc && trailer_size == size)
            .then_some(buf)
    }

    /// Records the members of the blob `digest` just committed.
    pub fn record(&self, digest: &Digest, members: &[(ChunkKey, u64, u64)]) -> io::Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut text = String::new();
        for (k, offset, len) in members {
            if self.known.contains_key(k) {
                continue;
            }
            text.push_str(&format!("{} {digest} {offset} {len}\n", hex::encode(k)));
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(text.as_bytes())
    }

    /// Drops the entries of blobs that are gone (after GC).
    pub fn prune(path: &Path, blobs_dir: &Path) -> io::Result<()> {
        let Ok(f) = File::open(path) else {
            return Ok(());
        };
        let mut keep = String::new();
        for line in io::BufReader::new(f).lines().map_while(Result::ok) {
            if let Some((_, loc)) = parse_line(&line, blobs_dir) {
                if loc.blob.exists() {
                    keep.push_str(&line);
                    keep.push('\n');
                }
            }
        }
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, keep)?;
        fs::rename(&tmp, path)
    }

    pub fn blobs_dir(&self) -> &Path {
        &self.blobs_dir
    }
}
