//! Content digests. berth writes sha256 only.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    pub fn from_sha256(bytes: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(bytes),
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(&Sha256::digest(data))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as docker shows image IDs.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // A validated sha256 digest is always a valid OCI digest.
        oci_spec::image::Digest::from_str(&self.to_string())
            .unwrap_or_else(|_| unreachable!("validated digest"))
    }

    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest> {
        d.to_string().parse()
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::InvalidDigest(s.to_string()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::InvalidDigest(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bytes are handed to helper threads in batches of this size.
const BATCH: usize = 1 << 20;
/// Where a batch starts in memory: a page boundary, so a blob writer can
/// hand a batch to the disk as it is (direct I/O wants aligned memory).
const PAGE: usize = 4096;

/// Up to `BATCH` bytes starting on a page boundary.
struct Batch {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        let storage = vec![0u8; BATCH + PAGE];
        // Unaligned only if the platform cannot say; then writers copy.
        let start = match storage.as_ptr().align_offset(PAGE) {
            n if n < PAGE => n,
            _ => 0,
        };
        Batch {
            storage,
            start,
            len: 0,
        }
    }

    /// Takes as much of `data` as fits; returns how much.
    fn push(&mut self, data: &[u8]) -> usize {
        let n = (BATCH - self.len).min(data.len());
        let at = self.start + self.len;
        self.storage[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }
}

/// A consumer of bytes running on its own thread, so that its work (hashing,
/// writing) overlaps the producer's. Batches are bounded: memory stays small.
pub(crate) struct Offload<T: Send + 'static> {
    tx: Option<std::sync::mpsc::SyncSender<Batch>>,
    /// Batches the thread is done with, to be filled again: a fresh batch
    /// each time would be mapped, faulted in page by page and unmapped.
    spent: std::sync::mpsc::Receiver<Batch>,
    buf: Batch,
    /// Batches sent and not yet consumed.
    queued: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<io::Result<T>>>,
}

/// Batches queued for the thread at most.
const QUEUED: usize = 4;

impl<T: Send + 'static> Offload<T> {
    /// Starts `consume` on a thread: it gets every batch, then `None`.
    pub fn new(
        mut consume: impl FnMut(Option<&[u8]>) -> io::Result<Option<T>> + Send + 'static,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(QUEUED);
        let (give_back, spent) = std::sync::mpsc::sync_channel::<Batch>(QUEUED + 1);
        let queued = Arc::new(AtomicUsize::new(0));
        let in_queue = queued.clone();
        let handle = std::thread::spawn(move || {
            for mut batch in rx.iter() {
                in_queue.fetch_sub(1, Ordering::Relaxed);
                consume(Some(batch.bytes()))?;
                batch.len = 0;
                // The producer may be gone, or have enough: then it is freed.
                let _ = give_back.try_send(batch);
            }
            consume(None)?.ok_or_else(|| io::Error::other("background writer gave no result"))
        });
        Offload {
            tx: Some(tx),
            spent,
            buf: Batch::new(),
            queued,
            handle: Some(handle),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let next = self.spent.try_recv().unwrap_or_else(|_| Batch::new());
        let batch = std::mem::replace(&mut self.buf, next);
        self.queued.fetch_add(1, Ordering::Relaxed);
        match &self.tx {
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            // The thread stopped early: its error is reported by finish.
            _ => Err(self
                .stop()
                .err()
                .unwrap_or_else(|| io::Error::other("background writer stopped"))),
        }
    }

    fn stop(&mut self) -> io::Result<T> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("background writer panicked"))),
            None => Err(io::Error::other("background writer already finished")),
        }
    }

    /// Whether `write_all` of `len` bytes may wait for the thread (an async
    /// caller then steps off its executor first).
    pub fn may_block(&self, len: usize) -> bool {
        let spare = BATCH - self.buf.len;
        len > spare && (len > BATCH || self.queued.load(Ordering::Relaxed) + 1 >= QUEUED)
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut data = data;
        while !data.is_empty() {
            let n = self.buf.push(data);
            data = &data[n..];
            if self.buf.is_full() {
                self.send()?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<T> {
        if self.buf.len > 0 {
            self.send()?;
        }
        self.stop()
    }
}

impl<T: Send + 'static> Drop for Offload<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A writer that passes everything to `inner` and hashes a copy of it on a
/// helper thread.
pub struct TeeHasher<W> {
    inner: W,
    hasher: Offload<(Digest, u64)>,
}

impl<W: Write> TeeHasher<W> {
    pub fn new(inner: W) -> Self {
        let mut sha = Sha256::new();
        let mut count = 0u64;
        let hasher = Offload::new(move |batch| {
            Ok(match batch {
                Some(b) => {
                    sha.update(b);
                    count += b.len() as u64;
                    None
                }
                None => Some((
                    Digest::from_sha256(&std::mem::take(&mut sha).finalize()),
                    count,
                )),
            })
        });
        TeeHasher { inner, hasher }
    }

    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer, and the digest and size of what went through.
    pub fn finish(self) -> io::Result<(W, Digest, u64)> {
        let (digest, count) = self.hasher.finish()?;
        Ok((self.inner, digest, count))
    }
}

impl<W: Write> Write for TeeHasher<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: io::Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(&self.hasher.finalize()), self.count)
    }
}

impl<R: io::Read> io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        assert!("md5:abc".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<Digest>()
            .is_err());
    }
}
