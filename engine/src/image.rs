//! Images: list, inspect, history, tag, remove, prune, import, save, load.

use crate::change;
use crate::error::{fail, Result};
use crate::model::{ContainerConfig, HistoryItem, ImageDeleteItem, ImageInspect, ImageSummary};
use crate::units::parse_time;
use crate::Engine;
use berth_store::archive::{self, SaveItem};
use berth_store::{import, Compression, ImageRef, LayerOptions, Store, StoredImage};
use std::io::{Read, Write};

/// An image's config in the Engine API's shape.
pub(crate) fn api_config(c: Option<&berth_store::image::ContainerConfig>) -> ContainerConfig {
    let c = c.cloned().unwrap_or_default();
    ContainerConfig {
        user: c.user.unwrap_or_default(),
        exposed_ports: c.exposed_ports,
        env: c.env,
        cmd: c.cmd,
        healthcheck: c.healthcheck.and_then(|h| serde_json::from_value(h).ok()),
        args_escaped: c.args_escaped,
        volumes: c.volumes,
        working_dir: c.working_dir.unwrap_or_default(),
        entrypoint: c.entrypoint,
        on_build: c.on_build,
        labels: c.labels,
        stop_signal: c.stop_signal,
        shell: c.shell,
        ..ContainerConfig::default()
    }
}

/// `name@digest` for every repository the image's manifest was pulled from
/// or pushed to, as docker lists them.
fn repo_digests(store: &Store, img: &StoredImage) -> Vec<String> {
    berth_registry::sources::known(store, &img.manifest_digest)
        .iter()
        .filter_map(|repo| repo.parse::<ImageRef>().ok())
        .map(|r| format!("{}@{}", r.familiar_name(), img.manifest_digest))
        .collect()
}

/// Whether tag `t` matches a `reference` filter (`repo` or `repo:tag`).
fn matches_reference(t: &ImageRef, filter: &str) -> bool {
    let (frepo, ftag) = match filter.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
        _ => (filter.to_string(), None),
    };
    let frepo = frepo
        .parse::<ImageRef>()
        .map(|r| r.familiar_name())
        .unwrap_or(frepo);
    frepo == t.familiar_name() && ftag.is_none_or(|f| Some(&f) == t.tag.as_ref())
}

/// What a load brought in.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: String,
    pub tags: Vec<String>,
}

/// The media types of a saved archive's manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    Oci,
    Docker,
}

/// An image name as docker shows it: `busybox` is `busybox:latest`,
/// `localhost:5000/app:v1` stays as it is.
pub fn familiar(name: &str) -> Result<String> {
    Ok(name.parse::<ImageRef>()?.familiar())
}

impl Engine {
    pub(crate) fn emit_image(&self, action: &str, id: &str, name: &str) {
        self.emit(
            "image",
            action,
            id,
            std::collections::BTreeMap::from([("name".to_string(), name.to_string())]),
        );
    }

    /// Every image, newest first; with `reference`, only those with a tag
    /// it matches, and only those tags.
    pub fn image_list(&self, reference: Option<&str>) -> Result<Vec<ImageSummary>> {
        let store = self.store();
        let mut images = store.images()?;
        images.sort_by(|a, b| b.config.created.cmp(&a.config.created));
        let mut out = Vec::new();
        for img in &images {
            let tags: Vec<&ImageRef> = img
                .tags
                .iter()
                .filter(|t| reference.is_none_or(|f| matches_reference(t, f)))
                .collect();
            if reference.is_some() && tags.is_empty() {
                continue;
            }
            let size = store.image_size(img);
            out.push(ImageSummary {
                id: img.id.to_string(),
                parent_id: String::new(),
                repo_tags: tags.iter().map(|t| t.familiar()).collect(),
                repo_digests: repo_digests(store, img),
                created: img
                    .config
                    .created
                    .as_deref()
                    .and_then(parse_time)
                    .unwrap_or(0),
                size,
                shared_size: -1,
                virtual_size: size,
                labels: img
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default(),
                containers: -1,
                manifest_digest: img.manifest_digest.to_string(),
                created_text: img.config.created.clone(),
            });
        }
        Ok(out)
    }

    /// Re-hashes every blob of every image; the problems found.
    pub fn image_verify(&self) -> Result<Vec<String>> {
        Ok(self.store().check(true)?)
    }

    pub fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let store = self.store();
        let img = store.resolve(name)?;
        Ok(ImageInspect {
            id: img.id.to_string(),
            repo_tags: img.tags.iter().map(|t| t.familiar()).collect(),
            // Only a registry gives an image a repo digest (pull or push).
            repo_digests: repo_digests(store, &img),
            parent: String::new(),
            comment: img
                .config
                .history
                .last()
                .and_then(|h| h.comment.clone())
                .unwrap_or_default(),
            created: img.config.created.clone().unwrap_or_default(),
            docker_version: String::new(),
            author: img.config.author.clone().unwrap_or_default(),
            config: api_config(img.config.config.as_ref()),
            architecture: img.config.architecture.clone(),
            variant: img.config.variant.clone(),
            os: img.config.os.clone(),
            size: store.image_size(&img),
            root_fs: crate::model::RootFs {
                kind: img.config.rootfs.kind.clone(),
                layers: img
                    .config
                    .rootfs
                    .diff_ids
                    .iter()
                    .map(|d| d.to_string())
                    .collect(),
            },
            metadata: crate::model::ImageMetadata {
                last_tag_time: "0001-01-01T00:00:00Z".into(),
            },
        })
    }

    /// The image's history, newest first, with each layer's size.
    pub fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let store = self.store();
        let img = store.resolve(name)?;
        let mut layer_sizes = img
            .layers
            .iter()
            .map(|l| store.blobs().diff_size(&l.digest).unwrap_or(l.size))
            .rev()
            .collect::<Vec<_>>()
            .into_iter();
        let mut out = Vec::new();
        for (i, h) in img.config.history.iter().rev().enumerate() {
            let size = if h.empty_layer {
                0
            } else {
                layer_sizes.next().unwrap_or(0)
            };
            out.push(HistoryItem {
                id: if i == 0 {
                    img.id.to_string()
                } else {
                    "<missing>".into()
                },
                created: h.created.as_deref().and_then(parse_time).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: if i == 0 {
                    img.tags.iter().map(|t| t.familiar()).collect()
                } else {
                    Vec::new()
                },
                size,
                comment: h.comment.clone().unwrap_or_default(),
                created_text: h.created.clone(),
            });
        }
        Ok(out)
    }

    /// `docker tag SOURCE TARGET`.
    pub fn image_tag(&self, source: &str, target: &str) -> Result<()> {
        let img = self.store().resolve(source)?;
        let target: ImageRef = target.parse()?;
        if target.digest.is_some() {
            fail!(Invalid, "refusing to create a tag with a digest reference");
        }
        self.store().tag(&img, &target)?;
        self.emit_image("tag", &img.id.to_string(), &target.familiar());
        Ok(())
    }

    /// `docker rmi NAME`: untags it, and deletes the image when that was
    /// its last name (or with `force`).
    pub fn image_remove(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteItem>> {
        let store = self.store();
        let img = store.resolve(name)?;
        let by_tag = name
            .parse::<ImageRef>()
            .ok()
            .filter(|r| img.tags.contains(r));
        let last_name = img.tags.len() <= 1 || by_tag.is_none();
        if !force && last_name && store.holds().contains(&img.manifest_digest) {
            let user = self
                .containers()
                .list()?
                .into_iter()
                .find(|c| c.manifest == img.manifest_digest.to_string())
                .map(|c| c.short_id().to_string())
                .unwrap_or_default();
            fail!(
                Conflict,
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {user} is using its referenced image {}",
                img.id.short()
            );
        }
        let mut done = Vec::new();
        if let Some(r) = by_tag {
            store.untag(&r)?;
            self.emit_image("untag", &img.id.to_string(), &r.familiar());
            done.push(ImageDeleteItem::Untagged(r.familiar()));
            if img.tags.len() > 1 {
                return Ok(done);
            }
        } else if img.tags.len() > 1 && !force {
            fail!(
                Conflict,
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                img.id.short()
            );
        } else {
            for t in &img.tags {
                done.push(ImageDeleteItem::Untagged(t.familiar()));
            }
        }
        store.remove_image(&img)?;
        self.emit_image("delete", &img.id.to_string(), name);
        done.push(ImageDeleteItem::Deleted(img.id.to_string()));
        Ok(done)
    }

    /// Removes the blobs nothing refers to any more; the bytes freed.
    pub fn collect_garbage(&self) -> Result<u64> {
        Ok(self.store().gc()?.bytes_freed)
    }

    /// `docker image prune [-a]`: images no container uses that are
    /// dangling (or, with `all`, every one); then garbage collection.
    pub fn image_prune(&self, all: bool) -> Result<(Vec<ImageDeleteItem>, u64)> {
        let store = self.store();
        let in_use = store.holds();
        let mut done = Vec::new();
        for img in store.images()? {
            if in_use.contains(&img.manifest_digest) {
                continue;
            }
            if img.tags.is_empty() || all {
                for t in &img.tags {
                    done.push(ImageDeleteItem::Untagged(t.familiar()));
                }
                store.remove_image(&img)?;
                self.emit_image("delete", &img.id.to_string(), &img.id.to_string());
                done.push(ImageDeleteItem::Deleted(img.id.to_string()));
            }
        }
        let freed = self.collect_garbage()?;
        Ok((done, freed))
    }

    /// `docker import FILE [REF]`: a tarball as a one-layer image. The
    /// changes are Dockerfile instructions; the message goes in the history
    /// comment, as docker's does.
    pub fn image_import(
        &self,
        input: &mut dyn Read,
        source_name: &str,
        reference: Option<&str>,
        changes: &[String],
        message: Option<String>,
        compression: &str,
    ) -> Result<String> {
        let store = self.store();
        let tags: Vec<ImageRef> = reference
            .iter()
            .map(|r| r.parse())
            .collect::<std::result::Result<_, _>>()?;
        let config = if changes.is_empty() {
            None
        } else {
            Some(change::apply(
                changes,
                berth_store::image::ContainerConfig::default(),
            )?)
        };
        let Some(compression) = Compression::parse(compression) else {
            fail!(
                Invalid,
                "unknown compression {compression:?}: use gzip, zstd or uncompressed"
            );
        };
        let opts = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let mut img = import::import(store, input, source_name, config, &tags, &opts)?;
        if let Some(m) = message {
            if let Some(h) = img.config.history.last_mut() {
                h.comment = Some(m);
                img = store.commit_image(&img.config, &img.layers, &tags)?;
            }
        }
        self.emit_image("import", &img.id.to_string(), source_name);
        Ok(img.id.to_string())
    }

    /// `docker save`: the images as one archive. A name that is one of an
    /// image's tags is saved with that tag.
    pub fn image_save(
        &self,
        names: &[String],
        format: SaveFormat,
        out: &mut dyn Write,
    ) -> Result<()> {
        let store = self.store();
        let mut items = Vec::new();
        for n in names {
            let image = store.resolve(n)?;
            let tags: Vec<ImageRef> = n
                .parse::<ImageRef>()
                .ok()
                .filter(|r| image.tags.contains(r))
                .into_iter()
                .collect();
            items.push(SaveItem { image, tags });
        }
        let types = match format {
            SaveFormat::Oci => archive::MediaTypes::Oci,
            SaveFormat::Docker => archive::MediaTypes::Docker,
        };
        archive::save(store, &items, types, out)?;
        for i in &items {
            self.emit_image("save", &i.image.id.to_string(), &i.image.id.to_string());
        }
        Ok(())
    }

    /// `docker load`: the images of an archive (OCI layout or docker's).
    pub fn image_load(&self, input: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let loaded = archive::load(self.store(), input, &LayerOptions::default())?;
        for l in &loaded {
            let name = l
                .tags
                .first()
                .map(|t| t.familiar())
                .unwrap_or_else(|| l.image.id.to_string());
            self.emit_image("load", &l.image.id.to_string(), &name);
        }
        Ok(loaded
            .into_iter()
            .map(|l| LoadedImage {
                id: l.image.id.to_string(),
                tags: l.tags.iter().map(|t| t.familiar()).collect(),
            })
            .collect())
    }
}
