//! Named volumes, as docker's local driver keeps them.

use crate::error::{fail, Result};
use crate::model::Volume;
use crate::Engine;

fn model(v: berth_store::volume::Volume) -> Volume {
    Volume {
        created_at: v.created_at,
        driver: "local".into(),
        labels: Default::default(),
        mountpoint: v.mountpoint.display().to_string(),
        name: v.name,
        options: Default::default(),
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
        let name = match name {
            Some(n) => n.to_string(),
            None => random_id()?,
        };
        let (v, made) = self.store().volume_create(&name)?;
        if made {
            self.emit_volume("create", &v.name);
        }
        Ok(model(v))
    }

    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        Ok(self.store().volumes()?.into_iter().map(model).collect())
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        match self.store().volume_get(name) {
            Ok(v) => Ok(model(v)),
            Err(_) => fail!(NotFound, "No such volume: {name}"),
        }
    }

    pub fn volume_remove(&self, name: &str) -> Result<()> {
        match self.store().volume_remove(name) {
            Ok(()) => {
                self.emit_volume("destroy", name);
                Ok(())
            }
            Err(_) => fail!(NotFound, "No such volume: {name}"),
        }
    }
}
