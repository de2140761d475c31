//! What a transfer reports as it goes; the CLI draws it (bars on a
//! terminal, plain lines otherwise).

use berth_store::Digest;

pub trait Progress: Send + Sync {
    /// A blob of `size` bytes starts moving.
    fn start(&self, _digest: &Digest, _size: u64) {}
    /// `n` more bytes of it moved.
    fn advance(&self, _digest: &Digest, _n: u64) {}
    /// It is done; `status` says how, in docker's words ("Pull complete",
    /// "Already exists", "Pushed", "Layer already exists", "Mounted from x").
    fn finish(&self, _digest: &Digest, _status: &str) {}
    /// A line of its own ("Pulling from library/busybox", "Digest: ...").
    fn note(&self, _line: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
