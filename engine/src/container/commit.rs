//! `docker commit`: a container's changes as a new layer on its image.

use crate::change;
use crate::error::{Error, Result};
use crate::Engine;
use berth_store::{ImageRef, Store, StoredImage};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
    pub author: Option<String>,
    /// Dockerfile instructions applied to the new image's config.
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// Whether the image itself has `rel`.
fn image_has(store: &Store, image: &StoredImage, rel: &Path) -> bool {
    (0..image.layers.len()).any(|i| {
        store
            .snapshot(image, i)
            .map(|s| s.join(rel).symlink_metadata().is_ok())
            .unwrap_or(false)
    })
}

/// A mount point the runtime made: an empty file or folder the image lacks.
fn is_stub(path: &Path) -> bool {
    match path.symlink_metadata() {
        Ok(m) if m.is_file() => m.len() == 0,
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false),
        _ => false,
    }
}

impl Engine {
    /// Makes the image; its ID.
    pub fn container_commit(&self, key: &str, opts: &CommitOptions) -> Result<String> {
        let store = self.store();
        let rec = self.container(key)?;
        let manifest = rec
            .manifest
            .parse()
            .map_err(|e| Error::Failed(format!("container {} has a bad record: {e}", rec.id)))?;
        let image = store.get(&manifest)?;
        let tags: Vec<ImageRef> = opts
            .reference
            .iter()
            .map(|r| r.parse())
            .collect::<std::result::Result<_, _>>()?;
        let upper = store.rootfs_changes(&rec.id);
        // The files and folders the runtime made as mount points are not the
        // container's changes (docker keeps them in an init layer of its own).
        let stubs: Vec<&Path> = [
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "proc",
            "sys",
            "dev",
        ]
        .iter()
        .map(Path::new)
        .filter(|rel| !image_has(store, &image, rel) && is_stub(&upper.join(rel)))
        .collect();
        let _lease = store.lease()?;
        let layer = berth_store::layer::write_layer_from_dir_except(
            store.blobs(),
            &upper,
            &berth_store::layer::LayerOptions::default(),
            &stubs,
        )?;
        let mut config = image.config.clone();
        let mut cc = config.config.clone().unwrap_or_default();
        if !opts.changes.is_empty() {
            cc = change::apply(&opts.changes, cc)?;
        }
        config.config = Some(cc);
        let now = berth_runner::log::now();
        config.created = Some(now.clone());
        if let Some(a) = &opts.author {
            config.author = Some(a.clone());
        }
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.history.push(berth_store::image::History {
            created: Some(now),
            created_by: Some(rec.args.join(" ")),
            author: opts.author.clone(),
            comment: opts.message.clone(),
            empty_layer: false,
        });
        let mut layers = image.layers.clone();
        layers.push(layer.to_ref());
        let img = store.commit_image(&config, &layers, &tags)?;
        Ok(img.id.to_string())
    }
}
