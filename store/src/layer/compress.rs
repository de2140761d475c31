//! Layer compression: gzip (what every registry and runtime reads) split into
//! independently compressed members so all cores work on a large layer, zstd
//! with its own worker threads, or none.

use super::chunks::{ChunkIndex, ChunkKey};
use flate2::write::GzEncoder;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{mpsc, Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "uncompressed" | "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// Bytes of input per gzip member. Fixed, so the output does not depend on
/// the number of threads.
const GZIP_CHUNK: usize = 1 << 20;

/// The smallest member a content-defined boundary may close.
const MIN_CHUNK: usize = 256 << 10;

type Member = io::Result<(Option<ChunkKey>, Vec<u8>)>;

/// Members written: (key, offset in the blob, length).
pub(crate) type Members = Vec<(ChunkKey, u64, u64)>;

/// Gzip with each 1 MiB of input compressed as its own member by a pool of
/// `threads` workers, while the caller keeps producing input; members are
/// written in order. Concatenated members are one valid gzip stream (RFC 1952).
pub(crate) struct ParallelGzip<W: Write> {
    inner: W,
    current: Vec<u8>,
    jobs: Option<mpsc::SyncSender<(u64, Vec<u8>)>>,
    results: mpsc::Receiver<(u64, Member)>,
    workers: Vec<std::thread::JoinHandle<()>>,
    sent: u64,
    written: u64,
    done: BTreeMap<u64, Member>,
    max_in_flight: u64,
    /// Members written so far: (key, offset, length), for the chunk index.
    pub(crate) members: Members,
    out_offset: u64,
}

/// Compresses one member, or takes it from an earlier layer.
fn member(data: &[u8], index: Option<&ChunkIndex>) -> Member {
    let Some(index) = index else {
        return Ok((None, gzip_member(data)?));
    };
    let key: ChunkKey = *blake3::hash(data).as_bytes();
    let mut crc = flate2::Crc::new();
    crc.update(data);
    if let Some(bytes) = index.lookup(&key, crc.sum(), data.len() as u32) {
        return Ok((Some(key), bytes));
    }
    Ok((Some(key), gzip_member(data)?))
}

fn gzip_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(6),
    );
    e.write_all(data)?;
    e.finish()
}

impl<W: Write> ParallelGzip<W> {
    #[cfg(test)]
    pub fn new(inner: W, threads: usize) -> Self {
        ParallelGzip::with_index(inner, threads, None)
    }

    /// With `index`, members are looked up there before being compressed and
    /// their keys are kept for recording.
    pub fn with_index(inner: W, threads: usize, index: Option<Arc<ChunkIndex>>) -> Self {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(threads);
        let (res_tx, res_rx) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                let index = index.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, data)) = job else { return };
                    if tx.send((seq, member(&data, index.as_deref()))).is_err() {
                        return;
                    }
                })
            })
            .collect();
        ParallelGzip {
            inner,
            current: Vec::with_capacity(GZIP_CHUNK),
            jobs: Some(job_tx),
            results: res_rx,
            workers,
            sent: 0,
            written: 0,
            done: BTreeMap::new(),
            max_in_flight: 2 * threads as u64 + 1,
            members: Vec::new(),
            out_offset: 0,
        }
    }

    /// A place where a member may end (before a tar entry): members end
    /// where the content says, so the same files give the same members
    /// whatever came before them. `hint` is a hash of the entry's name; an
    /// entry of `next_size` bytes or more always starts its own member.
    pub fn boundary(&mut self, hint: u64, next_size: u64) -> io::Result<()> {
        let big = next_size >= GZIP_CHUNK as u64;
        if (!self.current.is_empty() && big)
            || (self.current.len() >= MIN_CHUNK && hint.is_multiple_of(4))
        {
            self.send_current()?;
        }
        Ok(())
    }

    /// Writes finished members in order; waits while too many are in flight
    /// (or, with `all`, until every member is written).
    fn drain(&mut self, all: bool) -> io::Result<()> {
        loop {
            while let Some(out) = self.done.remove(&self.written) {
                let (key, bytes) = out?;
                self.inner.write_all(&bytes)?;
                if let Some(k) = key {
                    self.members.push((k, self.out_offset, bytes.len() as u64));
                }
                self.out_offset += bytes.len() as u64;
                self.written += 1;
            }
            let in_flight = self.sent - self.written;
            let must_wait = if all {
                in_flight > 0
            } else {
                in_flight >= self.max_in_flight
            };
            if must_wait {
                let (seq, out) = self
                    .results
                    .recv()
                    .map_err(|_| io::Error::other("gzip workers stopped"))?;
                self.done.insert(seq, out);
                continue;
            }
            while let Ok((seq, out)) = self.results.try_recv() {
                self.done.insert(seq, out);
            }
            if !self.done.contains_key(&self.written) {
                return Ok(());
            }
        }
    }

    fn send_current(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.current, Vec::with_capacity(GZIP_CHUNK));
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream finished"))?;
        jobs.send((self.sent, chunk))
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.sent += 1;
        self.drain(false)
    }

    #[cfg(test)]
    pub fn finish(self) -> io::Result<W> {
        self.finish_members().map(|(w, _)| w)
    }

    /// Finishes the stream; also returns the members written.
    pub fn finish_members(mut self) -> io::Result<(W, Members)> {
        if !self.current.is_empty() || self.sent == 0 {
            self.send_current()?;
        }
        self.drain(true)?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let members = std::mem::take(&mut self.members);
        Ok((self.inner, members))
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == GZIP_CHUNK {
            self.send_current()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A compressing writer of any kind.
pub(crate) enum Compressor<W: Write> {
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> Compressor<W> {
    pub fn new(
        inner: W,
        compression: Compression,
        threads: usize,
        index: Option<Arc<ChunkIndex>>,
    ) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzip::with_index(inner, threads, index)),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(inner, 3)?;
                if threads > 1 {
                    e.multithread(threads as u32)?;
                }
                Compressor::Zstd(e)
            }
            Compression::None => Compressor::Plain(inner),
        })
    }

    /// Finishes the stream; returns the gzip members written (for reuse).
    pub fn finish(self) -> io::Result<(W, Members)> {
        match self {
            Compressor::Gzip(g) => g.finish_members(),
            Compressor::Zstd(z) => z.finish().map(|w| (w, Vec::new())),
            Compressor::Plain(w) => Ok((w, Vec::new())),
        }
    }

    /// See [`ParallelGzip::boundary`]; other compressions ignore it.
    pub fn boundary(&mut self, hint: u64, next_size: u64) -> io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.boundary(hint, next_size),
            _ => Ok(()),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
            Compressor::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
            Compressor::Plain(w) => w.flush(),
        }
    }
}

/// The uncompressed stream of a layer, whatever its compression (detected by
/// its magic bytes: gzip, zstd, or a plain tar).
pub fn decompressed<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    decompressed_buffered(BufReader::with_capacity(256 * 1024, reader))
}

/// As `decompressed`, for a source with a buffer of its own: the decoder
/// reads straight from it, with no copy into another buffer.
pub fn decompressed_buffered<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_gzip_round_trips_and_is_deterministic() {
        let data: Vec<u8> = (0..3 * GZIP_CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let compress = |threads| {
            let mut g = ParallelGzip::new(Vec::new(), threads);
            g.write_all(&data).unwrap();
            g.finish().unwrap()
        };
        let one = compress(1);
        assert_eq!(one, compress(4));
        let mut back = Vec::new();
        decompressed(&one[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
