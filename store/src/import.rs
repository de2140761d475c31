//! `berth import`: a root filesystem tarball becomes a one-layer image, as
//! `docker import` does.

use crate::error::{IoContext, Result};
use crate::image::{creation_time, rfc3339, ContainerConfig, History, ImageConfig};
use crate::layer::{decompressed, write_layer_from_tar, LayerOptions};
use crate::reference::ImageRef;
use crate::store::Store;
use crate::StoredImage;
use std::io::Read;

/// Imports `tarball` (plain, gzip or zstd) as a new image.
pub fn import(
    store: &Store,
    tarball: &mut dyn Read,
    source_name: &str,
    config: Option<ContainerConfig>,
    tags: &[ImageRef],
    opts: &LayerOptions,
) -> Result<StoredImage> {
    let _lease = store.lease()?;
    let mut plain = decompressed(tarball).ctx(|| format!("cannot read {source_name}"))?;
    let layer = write_layer_from_tar(store.blobs(), &mut plain, opts)?;
    let created = rfc3339(creation_time());
    let mut image = ImageConfig::new_for_host();
    image.created = Some(created.clone());
    image.config = config;
    image.rootfs.diff_ids = vec![layer.diff_id.clone()];
    image.history = vec![History {
        created: Some(created),
        created_by: None,
        comment: Some(format!("Imported from {source_name}")),
        ..Default::default()
    }];
    store.commit_image(&image, &[layer.to_ref()], tags)
}
