//! A new blob's file: written through the page cache, or past it
//! (`O_DIRECT`) when the blob is not read back soon.
//!
//! A blob is fsynced at commit anyway. A pulled one is seldom read right
//! after it is written (the pull unpacks from the stream, not from the
//! blob): copying it into the page cache first costs about as much CPU as
//! unpacking the layer does on a small machine, and the fsync then waits
//! for all of it; a direct write hands the disk the bytes from our own
//! buffer instead. A built layer is unpacked from its blob by the next step,
//! so it stays in the page cache. Where the filesystem refuses `O_DIRECT`
//! (tmpfs of an older kernel, some FUSE and network filesystems) or a
//! direct write is refused, the file is written through the page cache.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Direct writes are this aligned (memory, offset and length): the largest
/// logical block size of common disks.
const ALIGN: usize = 4096;
/// Bytes handed to the disk in one write: a few milliseconds of a disk's
/// streaming throughput.
const CHUNK: usize = 2 << 20;

pub(crate) struct BlobFile {
    file: File,
    direct: bool,
    /// Direct writes only: `CHUNK + ALIGN` bytes, of which
    /// `chunk_at..chunk_at + CHUNK` is aligned.
    buf: Vec<u8>,
    chunk_at: usize,
    len: usize,
    /// Bytes that went through the page cache, and how many of those have
    /// been handed to writeback.
    buffered: u64,
    written_back: u64,
    /// Bytes written directly, and how many of those are synced.
    direct_written: u64,
    synced: u64,
}

/// How much buffered writing is done before its writeback is started, so the
/// fsync at commit finds little left to do.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Direct writes are synced every this many bytes. A direct write reaches
/// the disk's (or the hypervisor's) cache, not its media; the sync at commit
/// would then flush a whole blob at once, and a long flush holds up every
/// read behind it — the inode-table reads that creating a snapshot's files
/// needs among them. Flushing in steps keeps each hold-up short: on a 2-core
/// VM pulling ten 63 MB layers, 16 MiB steps were 5-10% faster than either
/// one flush per blob or 64 MiB steps.
const SYNC_STEP: u64 = 16 << 20;

impl BlobFile {
    /// Creates `path`, which must not exist; `direct`: past the page cache
    /// where the filesystem allows.
    pub(crate) fn create_new(path: &Path, direct: bool) -> io::Result<BlobFile> {
        let open = |flags| {
            File::options()
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(path)
        };
        let (file, direct) = match direct.then(|| open(libc::O_DIRECT)) {
            Some(Ok(f)) => (f, true),
            Some(Err(e)) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
            _ => (open(0)?, false),
        };
        let buf = if direct {
            vec![0u8; CHUNK + ALIGN]
        } else {
            Vec::new()
        };
        let chunk_at = match buf.as_ptr().align_offset(ALIGN) {
            n if n < ALIGN => n,
            _ => 0,
        };
        Ok(BlobFile {
            file,
            direct,
            buf,
            chunk_at,
            len: 0,
            buffered: 0,
            written_back: 0,
            direct_written: 0,
            synced: 0,
        })
    }

    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.direct {
            if self.len > 0 {
                self.flush_chunk()?;
            }
            return self.write_buffered(data);
        }
        // Aligned memory of whole blocks goes to the disk as it is.
        if self.direct
            && self.len == 0
            && data.len().is_multiple_of(ALIGN)
            && data.as_ptr().align_offset(ALIGN) == 0
        {
            match self.file.write(data) {
                Ok(n) => {
                    data = &data[n..];
                    self.direct_done(n)?;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        while !data.is_empty() {
            let n = (CHUNK - self.len).min(data.len());
            let at = self.chunk_at + self.len;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        let chunk = &self.buf[self.chunk_at..self.chunk_at + self.len];
        if self.direct && self.len.is_multiple_of(ALIGN) {
            match self.file.write(chunk) {
                Ok(n) if n == chunk.len() => {
                    self.len = 0;
                    return self.direct_done(n);
                }
                // A short direct write leaves the offset unaligned, and a
                // refused one says the filesystem will not: the rest goes
                // through the page cache.
                Ok(n) => {
                    self.buf
                        .copy_within(self.chunk_at + n..self.chunk_at + self.len, self.chunk_at);
                    self.len -= n;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        if self.direct {
            self.stop_direct()?;
        }
        let chunk = std::mem::take(&mut self.buf);
        let written = self.write_buffered(&chunk[self.chunk_at..self.chunk_at + self.len]);
        self.buf = chunk;
        self.len = 0;
        written
    }

    fn direct_done(&mut self, n: usize) -> io::Result<()> {
        self.direct_written += n as u64;
        if self.direct_written - self.synced >= SYNC_STEP {
            self.file.sync_data()?;
            self.synced = self.direct_written;
        }
        Ok(())
    }

    fn write_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.buffered += data.len() as u64;
        if self.buffered - self.written_back >= WRITEBACK_STEP {
            start_writeback(
                &self.file,
                self.written_back,
                self.buffered - self.written_back,
            );
            self.written_back = self.buffered;
        }
        Ok(())
    }

    fn stop_direct(&mut self) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        // SAFETY: plain fcntl calls on a descriptor we own; no memory is passed.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.direct = false;
        Ok(())
    }

    /// Writes what is left (a direct write's unaligned tail through the page
    /// cache) and gives back the file, not yet synced.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        if self.len > 0 {
            if self.direct {
                self.stop_direct()?;
            }
            self.flush_chunk()?;
        }
        Ok(self.file)
    }
}

/// Starts writing `len` bytes at `offset` to disk without waiting.
fn start_writeback(f: &File, offset: u64, len: u64) {
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the call's duration; the call only
    // schedules writeback and reads no memory of ours. Failure is harmless:
    // the fsync at commit writes everything anyway.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize, direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut f = BlobFile::create_new(&path, direct).unwrap();
        // Odd pieces, so chunks fill across calls.
        for piece in data.chunks(100_003) {
            f.write_all(piece).unwrap();
        }
        f.finish().unwrap().sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data, "length {len}");
    }

    #[test]
    fn writes_every_length_back_exactly() {
        let lens = [
            0,
            1,
            4095,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 12345,
        ];
        for direct in [true, false] {
            for len in lens {
                round_trip(len, direct);
            }
        }
    }

    #[test]
    fn writes_aligned_pieces_in_place_and_unaligned_ones_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 3 * CHUNK + 777;
        let mut storage: Vec<u8> = (0..len + ALIGN).map(|i| (i % 253) as u8).collect();
        let at = storage.as_ptr().align_offset(ALIGN);
        let data = &mut storage[at..at + len];
        data[0] = 1;
        let data = &*data;
        let mut f = BlobFile::create_new(&path, true).unwrap();
        // Aligned whole blocks, then a piece that breaks the alignment, then more.
        f.write_all(&data[..CHUNK]).unwrap();
        f.write_all(&data[CHUNK..CHUNK + 100]).unwrap();
        f.write_all(&data[CHUNK + 100..2 * CHUNK]).unwrap();
        f.write_all(&data[2 * CHUNK..]).unwrap();
        f.finish().unwrap().sync_all().unwrap();
        assert!(std::fs::read(&path).unwrap() == data);
    }

    #[test]
    fn refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        assert!(BlobFile::create_new(&path, true).is_err());
        assert!(BlobFile::create_new(&path, false).is_err());
    }
}
