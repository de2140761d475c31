//! berth's local image store.
//!
//! One folder (`$BERTH_ROOT`) whose images part is a valid OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/...`), so `skopeo` and `umoci`
//! read it directly. An image is a config plus an ordered list of layers; a
//! layer is known by its compressed `digest` and its uncompressed `diff_id`.

pub mod archive;
mod blob_file;
pub mod blobs;
pub mod cache;
pub mod cache_document;
pub mod digest;
mod error;
pub mod image;
pub mod import;
pub mod layer;
mod lock;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod volume;

pub use blobs::{BlobStore, Ingest, Sealed};
pub use cache::{CacheEntry, CachedLayer};
pub use cache_document::{CacheDocument, CacheDocumentError, CacheRecord, MountRecord};
pub use digest::Digest;
pub use error::{Error, Result};
pub use image::{ImageConfig, StoredImage};
pub use layer::{Compression, Layer, LayerOptions};
pub use reference::ImageRef;
pub use store::Store;
