//! Named volumes, as docker's local driver keeps them.

use crate::error::{fail, Error, Result};
use crate::model::{Volume, VolumeCreate, VolumePruneReport};
use crate::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What docker keeps of a volume beyond its folder: labels and driver
/// options, beside the folder (`<volume>/berth.json`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct VolumeMeta {
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
}

fn meta_path(v: &berth_store::volume::Volume) -> PathBuf {
    v.mountpoint
        .parent()
        .unwrap_or(&v.mountpoint)
        .join("berth.json")
}

fn model(v: berth_store::volume::Volume) -> Volume {
    let meta: VolumeMeta = std::fs::read(meta_path(&v))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    Volume {
        created_at: v.created_at,
        driver: "local".into(),
        labels: meta.labels,
        mountpoint: v.mountpoint.display().to_string(),
        name: v.name,
        options: meta.options,
        scope: "local".into(),
    }
}

/// 64 random hex digits: docker's names for anonymous volumes and its IDs.
pub(crate) fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| crate::Error::Failed(format!("cannot read /dev/urandom: {e}")))?,
        &mut bytes,
    )
    .map_err(|e| crate::Error::Failed(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Engine {
    pub(crate) fn emit_volume(&self, action: &str, name: &str) {
        self.emit(
            "volume",
            action,
            name,
            std::collections::BTreeMap::from([("driver".to_string(), "local".to_string())]),
        );
    }

    /// `docker volume create [NAME]`: a name in use is that volume.
    pub fn volume_create(&self, name: Option<&str>) -> Result<Volume> {
        self.volume_create_with(&VolumeCreate {
            name: name.unwrap_or_default().to_string(),
            ..Default::default()
        })
    }

    /// `POST /volumes/create`: docker's local driver, with labels and
    /// options kept; an existing name is that volume, as it is.
    pub fn volume_create_with(&self, req: &VolumeCreate) -> Result<Volume> {
        if !matches!(req.driver.as_str(), "" | "local") {
            fail!(
                NotFound,
                "error looking up volume plugin {}: plugin \"{}\" not found",
                req.driver,
                req.driver
            );
        }
        let name = match req.name.as_str() {
            "" => random_id()?,
            n => n.to_string(),
        };
        let (v, made) = self.store().volume_create(&name)?;
        if made {
            let meta = VolumeMeta {
                labels: req.labels.clone(),
                options: req.driver_opts.clone(),
            };
            if !meta.labels.is_empty() || !meta.options.is_empty() {
                let p = meta_path(&v);
                let data = serde_json::to_vec(&meta)
                    .map_err(|e| Error::Failed(format!("cannot encode {}: {e}", p.display())))?;
                std::fs::write(&p, data)
                    .map_err(Error::io(format!("cannot write {}", p.display())))?;
            }
            self.emit_volume("create", &v.name);
        }
        Ok(model(v))
    }

    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        self.volume_list_filtered(&BTreeMap::new())
    }

    /// `docker volume ls --filter`: name (a part of it), label (each
    /// given), driver, dangling (used by no container).
    pub fn volume_list_filtered(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<Volume>> {
        for k in filters.keys() {
            if !matches!(k.as_str(), "name" | "label" | "driver" | "dangling") {
                fail!(Invalid, "invalid filter '{k}'");
            }
        }
        let used = if filters.contains_key("dangling") {
            self.volumes_in_use()?
        } else {
            BTreeMap::new()
        };
        let vols = self.store().volumes()?.into_iter().map(model);
        Ok(vols
            .filter(|v| {
                filters.iter().all(|(k, vals)| {
                    let one = |x: &String| match k.as_str() {
                        "name" => v.name.contains(x.as_str()),
                        "driver" => v.driver == *x,
                        "label" => match x.split_once('=') {
                            Some((lk, lv)) => v.labels.get(lk).map(String::as_str) == Some(lv),
                            None => v.labels.contains_key(x.as_str()),
                        },
                        "dangling" => {
                            let dangling = !used.contains_key(&v.name);
                            matches!(x.as_str(), "true" | "1") == dangling
                        }
                        _ => true,
                    };
                    if k == "label" {
                        vals.iter().all(one)
                    } else {
                        vals.iter().any(one)
                    }
                })
            })
            .collect())
    }

    /// Every volume a container mounts (anonymous ones, `-v NAME:` and
    /// `--mount type=volume`), with the containers that do.
    pub(crate) fn volumes_in_use(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rec in self.containers().list()? {
            let mut names: BTreeSet<String> = rec
                .anonymous_volumes
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            for b in &rec.binds {
                let mut parts = b.split(':');
                if let (Some(src), Some(_)) = (parts.next(), parts.next()) {
                    if !src.starts_with('/') {
                        names.insert(src.to_string());
                    }
                }
            }
            let req = self.create_request(&rec.id);
            for m in &req.host_config.mounts {
                if m.kind == "volume" && !m.source.is_empty() {
                    names.insert(m.source.clone());
                }
            }
            for n in names {
                used.entry(n).or_default().push(rec.id.clone());
            }
        }
        Ok(used)
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        match self.store().volume_get(name) {
            Ok(v) => Ok(model(v)),
            Err(_) => fail!(NotFound, "No such volume: {name}"),
        }
    }

    /// `docker volume rm [-f]`: a volume a container mounts stays (409),
    /// as docker's, even with force.
    pub fn volume_remove(&self, name: &str) -> Result<()> {
        if self.store().volume_get(name).is_err() {
            fail!(NotFound, "No such volume: {name}");
        }
        if let Some(ids) = self.volumes_in_use()?.get(name) {
            fail!(
                Conflict,
                "remove {name}: volume is in use - [{}]",
                ids.join(", ")
            );
        }
        self.store().volume_remove(name)?;
        self.emit_volume("destroy", name);
        Ok(())
    }

    /// `docker volume prune` (API 1.41: every volume no container uses),
    /// with `label` filters; the names removed and the bytes freed.
    pub fn volume_prune(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<VolumePruneReport> {
        let mut f = filters.clone();
        f.retain(|k, _| k == "label");
        f.insert("dangling".into(), vec!["true".into()]);
        let mut report = VolumePruneReport::default();
        for v in self.volume_list_filtered(&f)? {
            let size = walkdir::WalkDir::new(&v.mountpoint)
                .into_iter()
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum::<u64>();
            if self.volume_remove(&v.name).is_ok() {
                report.volumes_deleted.push(v.name);
                report.space_reclaimed += size;
            }
        }
        Ok(report)
    }
}
