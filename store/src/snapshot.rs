//! Unpacked layers ("snapshots"), keyed by diff ID, kept under the root so
//! that containers and RUN steps stack them as overlayfs lower dirs without
//! unpacking twice. Where overlayfs cannot be mounted, a copy-based fallback
//! extracts the layers into one tree, giving the same view.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::image::{LayerRef, StoredImage};
use crate::layer::extract::CountingReader;
use crate::layer::{decompressed, decompressed_buffered, extract, ExtractOptions, WhiteoutMode};
use crate::store::Store;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// How a prepared root filesystem is put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// overlayfs: the layers' snapshots below, `upper` catches changes.
    Overlay,
    /// All layers extracted into `merged` (no overlayfs here).
    Copy,
}

/// A root filesystem ready for a container or a RUN step.
#[derive(Debug)]
pub struct Mount {
    pub kind: MountKind,
    /// The tree to use as the root filesystem.
    pub merged: PathBuf,
    /// With overlay: the changes made in `merged` (what a RUN step commits).
    pub upper: PathBuf,
    /// The snapshots below, topmost first.
    pub lowers: Vec<PathBuf>,
    dir: PathBuf,
    mounted: bool,
    /// A container's root filesystem: dropping it leaves it in place.
    persistent: bool,
}

impl Mount {
    /// Unmounts and removes the upper, work and merged dirs.
    pub fn remove(mut self) -> Result<()> {
        self.release()
    }

    /// Unmounts the overlay but keeps the upper dir (to commit it as a layer).
    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH)
                .ctx(|| format!("cannot unmount {}", self.merged.display()))?;
            self.mounted = false;
        }
        Ok(())
    }

    fn release(&mut self) -> Result<()> {
        if self.mounted {
            rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH)
                .ctx(|| format!("cannot unmount {}", self.merged.display()))?;
            self.mounted = false;
        }
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)
                .ctx(|| format!("cannot remove {}", self.dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.persistent {
            return;
        }
        let _ = self.release();
    }
}

impl Store {
    fn snapshots_dir(&self) -> PathBuf {
        self.root().join("snapshots")
    }

    /// The snapshot of one layer of `image`, extracted on first use.
    pub fn snapshot(&self, image: &StoredImage, index: usize) -> Result<PathBuf> {
        let (layer, diff_id) = image_layers(image)?
            .into_iter()
            .nth(index)
            .ok_or_else(|| Error::Archive(format!("image {} has no layer {index}", image.id)))?;
        self.layer_snapshot(&layer, &diff_id)
    }

    /// Whether the snapshot of `diff_id` is unpacked.
    pub fn has_snapshot(&self, diff_id: &Digest) -> bool {
        self.snapshots_dir().join(diff_id.hex()).is_dir()
    }

    /// Checks that the layer blob uncompresses to `diff_id` (a pairing
    /// that came from elsewhere, such as an imported build cache).
    pub fn verify_layer(&self, layer: &LayerRef, diff_id: &Digest) -> Result<()> {
        let blob = self.blobs().open(&layer.digest, Some(layer.size))?;
        verify_stream(
            std::io::BufReader::with_capacity(256 << 10, blob),
            diff_id,
            &layer.digest.to_string(),
        )
    }

    /// The snapshot of a layer blob whose uncompressed digest is `diff_id`.
    pub fn layer_snapshot(&self, layer: &LayerRef, diff_id: &Digest) -> Result<PathBuf> {
        let path = self.snapshots_dir().join(diff_id.hex());
        if path.is_dir() {
            return Ok(path);
        }
        let blob = self.blobs().open(&layer.digest, Some(layer.size))?;
        self.snapshot_from(
            std::io::BufReader::with_capacity(256 << 10, blob),
            diff_id,
            &layer.digest.to_string(),
        )
    }

    /// Unpacks a compressed layer stream (as it arrives from a registry)
    /// into the snapshot of `diff_id`. The stream is read to its end and the
    /// snapshot appears only when its uncompressed bytes hash to `diff_id`,
    /// so a reader that fails midway leaves nothing behind.
    pub fn snapshot_from(
        &self,
        compressed: impl std::io::BufRead,
        diff_id: &Digest,
        what: &str,
    ) -> Result<PathBuf> {
        let dir = self.snapshots_dir();
        let path = dir.join(diff_id.hex());
        if path.is_dir() {
            return Ok(path);
        }
        fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let (counting, count) = CountingReader::new(compressed);
            let plain =
                decompressed_buffered(counting).ctx(|| format!("cannot read layer {what}"))?;
            let mut hashing = HashingReader::new(plain);
            let opts = ExtractOptions {
                whiteouts: WhiteoutMode::Overlay,
                compressed_read: Some(count),
                ..ExtractOptions::default()
            };
            extract(&mut hashing, &tmp, &opts)?;
            finish_hash(hashing, diff_id, what)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if fs::rename(&tmp, &path).is_err() {
            // Another process made it first: theirs is as good as ours.
            let _ = fs::remove_dir_all(&tmp);
            if !path.is_dir() {
                return Err(Error::Archive(format!(
                    "cannot create snapshot {}",
                    path.display()
                )));
            }
        }
        Ok(path)
    }

    /// Prepares a writable root filesystem of `image` named `id`: overlayfs
    /// over the layers' snapshots, or the copy-based fallback when overlayfs
    /// cannot be mounted (or `copy` asks for it).
    pub fn prepare_rootfs(&self, image: &StoredImage, id: &str, copy: bool) -> Result<Mount> {
        self.prepare_layers(&image_layers(image)?, id, copy)
    }

    /// Like [`Store::prepare_rootfs`] for a list of (layer, diff ID), oldest
    /// first: what a build step has before it is an image.
    pub fn prepare_layers(
        &self,
        layers: &[(LayerRef, Digest)],
        id: &str,
        copy: bool,
    ) -> Result<Mount> {
        self.prepare_layers_with(layers, id, copy, true)
    }

    /// `volatile`: the changes need not survive a crash (a build step's are
    /// committed as a fsynced blob, a `--rm` container's are thrown away), so
    /// overlayfs may skip syncing the upper dir's filesystem on unmount,
    /// which otherwise costs every container a journal commit.
    fn prepare_layers_with(
        &self,
        layers: &[(LayerRef, Digest)],
        id: &str,
        copy: bool,
        volatile: bool,
    ) -> Result<Mount> {
        let dir = self.root().join("mounts").join(id);
        if dir.exists() {
            return Err(Error::Conflict(format!(
                "a root filesystem named {id} already exists"
            )));
        }
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).ctx(|| format!("cannot create {}", d.display()))?;
        }
        let mut mount = Mount {
            kind: MountKind::Copy,
            merged: merged.clone(),
            upper,
            lowers: Vec::new(),
            dir,
            mounted: false,
            persistent: false,
        };
        if !copy && self.mount_overlay(&mut mount, layers, volatile)? {
            return Ok(mount);
        }
        for (layer, _) in layers {
            let blob = self.blobs().open(&layer.digest, Some(layer.size))?;
            let mut plain =
                decompressed(blob).ctx(|| format!("cannot read layer {}", layer.digest))?;
            extract(&mut plain, &merged, &ExtractOptions::default())?;
        }
        Ok(mount)
    }

    /// Mounts overlayfs over the layers' snapshots at `mount.merged`, with
    /// its upper and work dirs; false when overlayfs cannot be mounted here.
    fn mount_overlay(
        &self,
        mount: &mut Mount,
        layers: &[(LayerRef, Digest)],
        volatile: bool,
    ) -> Result<bool> {
        let mut lowers: Vec<PathBuf> = Vec::new();
        for (layer, diff_id) in layers.iter().rev() {
            let snap = self.layer_snapshot(layer, diff_id)?;
            // overlayfs refuses a lower dir twice. A layer repeated below
            // itself adds nothing: everything it sets, its topmost copy
            // sets again above whatever lies between.
            if !lowers.contains(&snap) {
                lowers.push(snap);
            }
        }
        if lowers.is_empty() {
            let empty = self.snapshots_dir().join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("cannot create {}", empty.display()))?;
            lowers.push(empty);
        }
        let work = mount.dir.join("work");
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            mount.upper.display(),
            work.display()
        );
        let try_mount = |options: String| -> Result<rustix::io::Result<()>> {
            let data = std::ffi::CString::new(options)
                .map_err(|_| Error::Archive("a snapshot path contains a NUL byte".into()))?;
            Ok(rustix::mount::mount(
                "overlay",
                &mount.merged,
                "overlay",
                rustix::mount::MountFlags::empty(),
                Some(data.as_c_str()),
            ))
        };
        // `volatile` is Linux 5.10 and later: without it, a plain mount.
        let mut mounted = Err(rustix::io::Errno::INVAL);
        if volatile {
            mounted = try_mount(format!("{options},volatile"))?;
        }
        if mounted.is_err() {
            mounted = try_mount(options)?;
        }
        if mounted.is_ok() {
            mount.kind = MountKind::Overlay;
            mount.mounted = true;
            mount.lowers = lowers;
        }
        Ok(mounted.is_ok())
    }

    /// The root filesystem of a container that outlives the process that
    /// made it: `mounts/<id>` is made on first use and mounted again over
    /// the same upper dir later (`berth start`), so the container keeps its
    /// changes. The returned mount is not removed when dropped; see
    /// [`Store::unmount_rootfs`] and [`Store::remove_rootfs`].
    /// `keep`: the container's changes are kept (no `--rm`), so they are
    /// synced like any file; else the overlay is volatile.
    pub fn container_rootfs(&self, image: &StoredImage, id: &str, keep: bool) -> Result<Mount> {
        let dir = self.root().join("mounts").join(id);
        let layers = image_layers(image)?;
        if !dir.exists() {
            let mut m = self.prepare_layers_with(&layers, id, false, !keep)?;
            m.persistent = true;
            return Ok(m);
        }
        // A crashed supervisor may have left it mounted.
        self.unmount_rootfs(id)?;
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).ctx(|| format!("cannot create {}", d.display()))?;
        }
        let mut mount = Mount {
            kind: MountKind::Copy,
            merged,
            upper,
            lowers: Vec::new(),
            dir,
            mounted: false,
            persistent: true,
        };
        let upper_empty = fs::read_dir(&mount.upper)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        let merged_empty = fs::read_dir(&mount.merged)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        // A copy-based root (no overlayfs) is its merged tree: nothing to mount.
        if upper_empty && !merged_empty {
            return Ok(mount);
        }
        // A volatile overlay (a `--rm` container's) leaves a mark in its
        // work dir that refuses the next mount; the old mount is gone, so
        // the mark may go.
        let incompat = mount.dir.join("work").join("work").join("incompat");
        if incompat.exists() {
            fs::remove_dir_all(&incompat)
                .ctx(|| format!("cannot remove {}", incompat.display()))?;
        }
        if !self.mount_overlay(&mut mount, &layers, !keep)? {
            return Err(Error::Archive(format!(
                "cannot mount the root filesystem of container {id} again (overlayfs)"
            )));
        }
        Ok(mount)
    }

    /// Unmounts a container's root filesystem, keeping its changes.
    pub fn unmount_rootfs(&self, id: &str) -> Result<()> {
        let merged = self.root().join("mounts").join(id).join("merged");
        // Not mounted (EINVAL) or not there (ENOENT) is what we want already;
        // trying is cheaper than reading the mount table.
        match rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
            // Without root nothing was mounted (the copy-based root).
            Err(rustix::io::Errno::PERM) if !rustix::process::geteuid().is_root() => Ok(()),
            Err(e) => {
                Err(std::io::Error::from(e)).ctx(|| format!("cannot unmount {}", merged.display()))
            }
        }
    }

    /// Unmounts and deletes a container's root filesystem.
    pub fn remove_rootfs(&self, id: &str) -> Result<()> {
        self.unmount_rootfs(id)?;
        let dir = self.root().join("mounts").join(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("cannot remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Unmounts a container's root filesystem and moves it to `to` (a
    /// path on the store's file system), for whoever removed the container
    /// to delete later: it is gone from the store at the cost of a rename.
    pub fn retire_rootfs(&self, id: &str, to: &Path) -> Result<()> {
        self.unmount_rootfs(id)?;
        let dir = self.root().join("mounts").join(id);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).ctx(|| format!("cannot create {}", parent.display()))?;
        }
        match fs::rename(&dir, to) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(_) => self.remove_rootfs(id),
            Ok(()) => Ok(()),
        }
    }

    /// The upper dir of a container's root filesystem: its changes.
    pub fn rootfs_changes(&self, id: &str) -> PathBuf {
        self.root().join("mounts").join(id).join("upper")
    }

    /// Snapshots whose diff ID no image uses any more, and unfinished ones.
    pub(crate) fn prune_snapshots(
        &self,
        live: &std::collections::BTreeSet<Digest>,
    ) -> Result<usize> {
        let dir = self.snapshots_dir();
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let keep = name == "empty"
                || format!("sha256:{name}")
                    .parse::<Digest>()
                    .is_ok_and(|d| live.contains(&d));
            if !keep && remove_tree(&e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An image's layers paired with their diff IDs; a config that lists a
/// different number of diff IDs than the manifest has layers is corrupt.
pub fn image_layers(image: &StoredImage) -> Result<Vec<(LayerRef, Digest)>> {
    if image.layers.len() != image.config.rootfs.diff_ids.len() {
        return Err(Error::Archive(format!(
            "image {} has {} layers but its config lists {} diff IDs",
            image.id,
            image.layers.len(),
            image.config.rootfs.diff_ids.len()
        )));
    }
    Ok(image
        .layers
        .iter()
        .cloned()
        .zip(image.config.rootfs.diff_ids.iter().cloned())
        .collect())
}

fn remove_tree(p: &Path) -> std::io::Result<()> {
    if p.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    }
}

/// Checks that a compressed layer stream uncompresses to `diff_id`, reading
/// it to its end (a layer kept as a blob only, unpacked when first used).
pub fn verify_stream(
    compressed: impl std::io::BufRead,
    diff_id: &Digest,
    what: &str,
) -> Result<()> {
    let plain = decompressed_buffered(compressed).ctx(|| format!("cannot read layer {what}"))?;
    finish_hash(HashingReader::new(plain), diff_id, what)
}

/// Reads what is left of a layer's uncompressed stream and compares its
/// digest with `diff_id`.
fn finish_hash<R: std::io::Read>(
    mut hashing: HashingReader<R>,
    diff_id: &Digest,
    what: &str,
) -> Result<()> {
    std::io::copy(&mut hashing, &mut std::io::sink())
        .ctx(|| format!("cannot read layer {what}"))?;
    let (actual, _) = hashing.finish();
    if actual != *diff_id {
        return Err(Error::DigestMismatch {
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}
