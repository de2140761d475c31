//! Layers: a directory (or an overlay upper dir) to a deterministic tar
//! stream, compressed, hashed twice in one pass (diff ID and digest); and the
//! safe way back from a layer to a directory.

pub mod chunks;
mod compress;
pub mod extract;
pub mod writer;

pub use compress::{decompressed, decompressed_buffered, Compression};
pub use extract::{extract, ExtractOptions, WhiteoutMode};
pub use writer::{
    write_layer_from_dir, write_layer_from_dir_except, write_layer_from_tar, write_layer_with,
    LayerSink,
};

use crate::digest::Digest;

/// How a layer is written.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Clamp every mtime newer than this (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
    /// Compression threads (0: one per core).
    pub threads: usize,
    /// Reuse gzip members of earlier layers with the same bytes.
    pub reuse: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            threads: 0,
            reuse: true,
        }
    }
}

/// A committed layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The digest of the blob as stored (compressed).
    pub digest: Digest,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob's size.
    pub size: u64,
    pub media_type: String,
}

impl Layer {
    pub fn to_ref(&self) -> crate::image::LayerRef {
        crate::image::LayerRef {
            digest: self.digest.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
        }
    }
}

pub(crate) fn threads(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}
