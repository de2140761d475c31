//! Content-addressed blobs under `blobs/sha256/`.
//!
//! A blob is streamed into a temp file under `ingest/`, hashed on the way,
//! fsynced and renamed into place only when its digest is known (and matches
//! the expected one): a blob is invisible until committed, so a crash leaves
//! only temp files, which GC removes.

use crate::blob_file::BlobFile;
use crate::digest::{Digest, HashingReader, Offload};
use crate::error::{Error, IoContext, Result};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    ingest: PathBuf,
    /// Uncompressed sizes of layer blobs (docker reports image sizes
    /// unpacked), one small file per blob, outside the OCI layout.
    sizes: PathBuf,
    /// Where the gzip members of written layers are indexed for reuse.
    chunks: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// fsyncs a directory so that a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("cannot sync directory {}", dir.display()))
}

impl BlobStore {
    pub(crate) fn new(root: &Path) -> Result<BlobStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        let sizes = root.join("sizes");
        for d in [&blobs, &ingest, &sizes] {
            fs::create_dir_all(d).ctx(|| format!("cannot create {}", d.display()))?;
        }
        Ok(BlobStore {
            blobs,
            ingest,
            sizes,
            chunks: root.join("chunks.idx"),
        })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The index of reusable compressed members.
    pub fn chunk_index(&self) -> crate::layer::chunks::ChunkIndex {
        crate::layer::chunks::ChunkIndex::load(&self.chunks, &self.blobs)
    }

    /// Forgets members of blobs GC removed.
    pub(crate) fn prune_chunk_index(&self) -> Result<()> {
        crate::layer::chunks::ChunkIndex::prune(&self.chunks, &self.blobs)
            .ctx(|| format!("cannot prune {}", self.chunks.display()))
    }

    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The size of a committed blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::MissingBlob(digest.to_string()))
            }
            Err(e) => Err(e).ctx(|| format!("cannot stat blob {digest}")),
        }
    }

    /// Opens a blob, checking its size when the caller knows it.
    pub fn open(&self, digest: &Digest, expected_size: Option<u64>) -> Result<File> {
        let file = match File::open(self.path(digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(digest.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("cannot open blob {digest}")),
        };
        if let Some(want) = expected_size {
            let have = file
                .metadata()
                .ctx(|| format!("cannot stat blob {digest}"))?
                .len();
            if have != want {
                return Err(Error::CorruptBlob {
                    digest: digest.to_string(),
                    why: format!("size is {have} bytes, expected {want}"),
                });
            }
        }
        Ok(file)
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open(digest, None)?
            .read_to_end(&mut data)
            .ctx(|| format!("cannot read blob {digest}"))?;
        if Digest::of(&data) != *digest {
            return Err(Error::CorruptBlob {
                digest: digest.to_string(),
                why: "content does not match its digest".into(),
            });
        }
        Ok(data)
    }

    /// Re-hashes a blob.
    pub fn verify(&self, digest: &Digest) -> Result<()> {
        let mut r = HashingReader::new(self.open(digest, None)?);
        io::copy(&mut r, &mut io::sink()).ctx(|| format!("cannot read blob {digest}"))?;
        let (actual, _) = r.finish();
        if actual != *digest {
            return Err(Error::CorruptBlob {
                digest: digest.to_string(),
                why: format!("content hashes to {actual}"),
            });
        }
        Ok(())
    }

    /// Remembers the uncompressed size of a layer blob.
    pub fn record_diff_size(&self, digest: &Digest, size: u64) -> Result<()> {
        crate::store::write_atomic(&self.sizes.join(digest.hex()), size.to_string().as_bytes())
    }

    /// The uncompressed size of a layer blob: remembered, or counted once by
    /// decompressing it.
    pub fn diff_size(&self, digest: &Digest) -> Result<u64> {
        if let Some(n) = fs::read_to_string(self.sizes.join(digest.hex()))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok(n);
        }
        let blob = self.open(digest, None)?;
        let mut plain =
            crate::layer::decompressed(blob).ctx(|| format!("cannot read layer {digest}"))?;
        let n =
            io::copy(&mut plain, &mut io::sink()).ctx(|| format!("cannot read layer {digest}"))?;
        self.record_diff_size(digest, n)?;
        Ok(n)
    }

    /// Starts writing a new blob.
    pub fn ingest(&self) -> Result<Ingest> {
        self.start_ingest(false)
    }

    /// Starts writing a new blob that will not be read back soon (a pulled
    /// layer, unpacked from the stream): written past the page cache.
    pub fn ingest_uncached(&self) -> Result<Ingest> {
        self.start_ingest(true)
    }

    fn start_ingest(&self, uncached: bool) -> Result<Ingest> {
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            INGEST_SEQ.fetch_add(1, Ordering::Relaxed),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let path = self.ingest.join(name);
        let file = BlobFile::create_new(&path, uncached)
            .ctx(|| format!("cannot create {}", path.display()))?;
        // Hashing and writing run on a helper thread, overlapping the
        // producer's work (compression, reading the source).
        let mut file = Some(file);
        let mut sha = Sha256::new();
        let mut size = 0u64;
        let writer = Offload::new(move |batch| {
            let Some(f) = file.as_mut() else {
                return Err(io::Error::other("blob writer already finished"));
            };
            Ok(match batch {
                Some(b) => {
                    f.write_all(b)?;
                    sha.update(b);
                    size += b.len() as u64;
                    None
                }
                None => {
                    let digest = Digest::from_sha256(&std::mem::take(&mut sha).finalize());
                    match file.take() {
                        Some(f) => Some((f.finish()?, digest, size)),
                        None => None,
                    }
                }
            })
        });
        Ok(Ingest {
            writer: Some(writer),
            path,
            blobs: self.blobs.clone(),
        })
    }

    /// Writes a small blob from memory.
    pub fn put(&self, data: &[u8], expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.put_sealed(data, expected)?.commit()
    }

    /// Writes `data` as a blob to be committed later (with others, by
    /// `Sealed::commit_all`).
    pub fn put_sealed(&self, data: &[u8], expected: Option<&Digest>) -> Result<Sealed> {
        let mut ingest = self.ingest()?;
        ingest
            .write_all(data)
            .ctx(|| "cannot write blob".to_string())?;
        ingest.seal(expected)
    }

    /// All committed blobs.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in
            fs::read_dir(&self.blobs).ctx(|| format!("cannot list {}", self.blobs.display()))?
        {
            let entry = entry.ctx(|| format!("cannot list {}", self.blobs.display()))?;
            if let Ok(d) = format!("sha256:{}", entry.file_name().to_string_lossy()).parse() {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        let _ = fs::remove_file(self.sizes.join(digest.hex()));
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("cannot remove blob {digest}"))
            }
            _ => Ok(()),
        }
    }
}

/// A blob being written. Dropped without `commit`, it leaves nothing behind.
pub struct Ingest {
    writer: Option<Offload<(File, Digest, u64)>>,
    path: PathBuf,
    blobs: PathBuf,
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write_all(buf).map(|_| buf.len()),
            None => Err(io::Error::other("blob already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Ingest {
    /// Whether writing `len` bytes may wait for the disk.
    pub fn may_block(&self, len: usize) -> bool {
        self.writer.as_ref().is_some_and(|w| w.may_block(len))
    }

    /// Makes the blob visible under its digest; fails, leaving nothing, when
    /// `expected` is given and differs.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.seal(expected)?.commit()
    }

    /// Finishes writing and checks the digest, without making the blob
    /// durable yet: what waits only for the digest (unpacking a layer) can
    /// go on while `Sealed::commit` syncs.
    pub fn seal(mut self, expected: Option<&Digest>) -> Result<Sealed> {
        let Some(writer) = self.writer.take() else {
            return Err(Error::Archive("blob committed twice".into()));
        };
        let path = std::mem::take(&mut self.path);
        let (file, digest, size) = match writer.finish() {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e).ctx(|| format!("cannot write {}", path.display()));
            }
        };
        if let Some(want) = expected {
            if *want != digest {
                let _ = fs::remove_file(&path);
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        Ok(Sealed {
            file: Some(file),
            path,
            blobs: self.blobs.clone(),
            digest,
            size,
        })
    }
}

/// A blob written in full whose digest is known, not committed yet. Dropped
/// without `commit`, it leaves nothing behind.
pub struct Sealed {
    file: Option<File>,
    path: PathBuf,
    blobs: PathBuf,
    digest: Digest,
    size: u64,
}

impl Sealed {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Syncs the blob and makes it visible under its digest.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let mut done = Sealed::commit_all(vec![self])?;
        done.pop()
            .ok_or_else(|| Error::Archive("blob commit gave no result".into()))
    }

    /// Reads the blob back before it is committed.
    pub fn reader(&self) -> Result<File> {
        File::open(&self.path).ctx(|| format!("cannot open {}", self.path.display()))
    }

    /// Commits blobs together: their syncs run at once (one cache flush of
    /// the disk serves many), and their directory is synced once. Each sync
    /// is a flush of the disk's cache, which holds up every other request
    /// (the reads of inode tables that creating a snapshot's files needs
    /// among them): a pull pays a couple of flushes, not two per blob. A
    /// blob whose sync or rename fails is removed, the others are committed,
    /// and the first error is returned.
    pub fn commit_all(mut sealed: Vec<Sealed>) -> Result<Vec<(Digest, u64)>> {
        let done: Vec<(Digest, u64)> = sealed.iter().map(|s| (s.digest.clone(), s.size)).collect();
        // A blob already there (another pull, or a layer listed twice) is
        // as good as this one; only the first of several copies is kept.
        let mut seen = std::collections::HashSet::new();
        for s in sealed.iter_mut() {
            if s.blobs.join(s.digest.hex()).exists() || !seen.insert(s.digest.clone()) {
                s.discard();
            }
        }
        sealed.retain(|s| s.file.is_some());
        let synced = sync_files(&sealed);
        let mut first_error = None;
        let mut dirs = Vec::new();
        for (s, result) in sealed.iter_mut().zip(synced) {
            let renamed = result
                .ctx(|| format!("cannot sync {}", s.path.display()))
                .and_then(|()| {
                    fs::rename(&s.path, s.blobs.join(s.digest.hex()))
                        .ctx(|| format!("cannot commit blob {}", s.digest))
                });
            match renamed {
                Ok(()) => {
                    s.file = None;
                    if !dirs.contains(&s.blobs) {
                        dirs.push(s.blobs.clone());
                    }
                }
                Err(e) => {
                    s.discard();
                    first_error.get_or_insert(e);
                }
            }
        }
        for dir in &dirs {
            if let Err(e) = sync_dir(dir) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Removes the temporary file: the blob is not committed.
    fn discard(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsyncs every file of `sealed`, several at once.
fn sync_files(sealed: &[Sealed]) -> Vec<io::Result<()>> {
    const AT_ONCE: usize = 8;
    let sync = |s: &Sealed| match &s.file {
        Some(f) => f.sync_all(),
        None => Ok(()),
    };
    if sealed.len() <= 1 {
        return sealed.iter().map(sync).collect();
    }
    let per_thread = sealed.len().div_ceil(AT_ONCE);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sealed
            .chunks(per_thread)
            .map(|chunk| {
                let n = chunk.len();
                (
                    n,
                    scope.spawn(move || chunk.iter().map(sync).collect::<Vec<_>>()),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                h.join().unwrap_or_else(|_| {
                    (0..n)
                        .map(|_| Err(io::Error::other("sync thread panicked")))
                        .collect()
                })
            })
            .collect()
    })
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_verify_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        let (d, n) = store.put(b"hello", None).unwrap();
        assert_eq!(n, 5);
        assert_eq!(store.read(&d).unwrap(), b"hello");
        store.verify(&d).unwrap();
        let wrong = Digest::of(b"other");
        assert!(matches!(
            store.put(b"hello!", Some(&wrong)),
            Err(Error::DigestMismatch { .. })
        ));
        assert_eq!(
            fs::read_dir(store.ingest_dir()).unwrap().count(),
            0,
            "nothing left behind"
        );
        let ingest = store.ingest().unwrap();
        drop(ingest);
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
        fs::write(store.path(&d), b"tampered").unwrap();
        assert!(store.verify(&d).is_err());
        assert!(store.open(&d, Some(5)).is_err());
    }

    #[test]
    fn blobs_committed_together_appear_at_once_and_read_back_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        let blobs: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 1000 + i as usize]).collect();
        store.put(&blobs[3], None).unwrap();
        let mut sealed: Vec<Sealed> = blobs
            .iter()
            .map(|b| store.put_sealed(b, None).unwrap())
            .collect();
        // The same blob twice, as an image listing one layer twice.
        sealed.push(store.put_sealed(&blobs[5], None).unwrap());
        let mut back = Vec::new();
        sealed[7].reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, blobs[7], "a sealed blob reads back");
        assert!(!store.contains(&Digest::of(&blobs[7])));
        let done = Sealed::commit_all(sealed).unwrap();
        assert_eq!(done.len(), 13);
        for b in &blobs {
            assert_eq!(&store.read(&Digest::of(b)).unwrap(), b);
        }
        assert_eq!(store.list().unwrap().len(), 12);
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }

    #[test]
    fn uncached_blobs_seal_then_commit_and_leave_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        let data: Vec<u8> = (0..(5 << 20) + 321).map(|i| (i % 241) as u8).collect();
        let expected = Digest::of(&data);
        let mut ingest = store.ingest_uncached().unwrap();
        for piece in data.chunks(70_000) {
            ingest.write_all(piece).unwrap();
        }
        let sealed = ingest.seal(Some(&expected)).unwrap();
        assert_eq!(sealed.digest(), &expected);
        assert!(!store.contains(&expected), "invisible until committed");
        sealed.commit().unwrap();
        assert_eq!(store.read(&expected).unwrap(), data);

        let mut ingest = store.ingest_uncached().unwrap();
        ingest.write_all(&data).unwrap();
        drop(ingest.seal(None).unwrap());
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }
}
