//! Layer compression: gzip (what every registry and runtime reads) split into
//! independently compressed members so all cores work on a large layer, zstd
//! with its own worker threads, or none.

use flate2::write::GzEncoder;
use std::io::{self, BufRead, BufReader, Read, Write};

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

/// Gzip with each 1 MiB of input compressed as its own member, `threads` at a
/// time. Concatenated members are one valid gzip stream (RFC 1952).
pub(crate) struct ParallelGzip<W: Write> {
    inner: W,
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    threads: usize,
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
    pub fn new(inner: W, threads: usize) -> Self {
        ParallelGzip {
            inner,
            pending: Vec::new(),
            current: Vec::with_capacity(GZIP_CHUNK),
            threads: threads.max(1),
        }
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.pending);
        let outputs: Vec<io::Result<Vec<u8>>> = if chunks.len() == 1 {
            vec![gzip_member(&chunks[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunks
                    .iter()
                    .map(|c| s.spawn(move || gzip_member(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")))
                    })
                    .collect()
            })
        };
        for out in outputs {
            self.inner.write_all(&out?)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || self.pending.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.pending.push(last);
        }
        self.flush_pending()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == GZIP_CHUNK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(GZIP_CHUNK));
            self.pending.push(full);
            if self.pending.len() >= self.threads {
                self.flush_pending()?;
            }
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
    pub fn new(inner: W, compression: Compression, threads: usize) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzip::new(inner, threads)),
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

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
            Compressor::Plain(w) => Ok(w),
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
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
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
