//! Named volumes: `volumes/<name>/_data` under the store root, as docker's
//! local driver keeps them, with a small record of when each was made and
//! whether it has been seeded from an image yet.

use crate::error::{Error, IoContext, Result};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// A named volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// RFC 3339, as `docker volume inspect` shows it.
    pub created_at: String,
    /// The folder containers see.
    pub mountpoint: PathBuf,
}

/// docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Store {
    fn volumes_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    fn volume_at(&self, name: &str) -> Result<Volume> {
        let dir = self.volumes_dir().join(name);
        let created = fs::metadata(dir.join("_data"))
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| crate::image::rfc3339(d.as_secs() as i64))
            .unwrap_or_default();
        Ok(Volume {
            name: name.to_string(),
            created_at: created,
            mountpoint: dir.join("_data"),
        })
    }

    /// The volume `name`, made when it does not exist. The flag says whether
    /// it was made now.
    pub fn volume_create(&self, name: &str) -> Result<(Volume, bool)> {
        if !valid_name(name) {
            return Err(Error::Conflict(format!(
                "create {name}: {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )));
        }
        let data = self.volumes_dir().join(name).join("_data");
        let made = !data.is_dir();
        if made {
            fs::create_dir_all(&data).ctx(|| format!("cannot create {}", data.display()))?;
        }
        Ok((self.volume_at(name)?, made))
    }

    pub fn volume_get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) || !self.volumes_dir().join(name).join("_data").is_dir() {
            return Err(Error::Conflict(format!("get {name}: no such volume")));
        }
        self.volume_at(name)
    }

    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let mut names: Vec<String> = match fs::read_dir(self.volumes_dir()) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().join("_data").is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names.iter().map(|n| self.volume_at(n)).collect()
    }

    pub fn volume_remove(&self, name: &str) -> Result<()> {
        self.volume_get(name)?;
        let dir = self.volumes_dir().join(name);
        fs::remove_dir_all(&dir).ctx(|| format!("cannot remove {}", dir.display()))
    }

    /// Marks the volume as seeded; true the first time (docker copies the
    /// image's files into a volume only when it is first mounted empty).
    pub fn volume_claim_seed(&self, name: &str) -> Result<bool> {
        let marker = self.volumes_dir().join(name).join("seeded");
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).ctx(|| format!("cannot write {}", marker.display())),
        }
    }
}

/// Whether `dir` is empty (a missing folder counts as empty).
pub fn is_empty(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}
