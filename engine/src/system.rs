//! `docker system df`: what images, containers, volumes and the build
//! cache take on disk.

use crate::error::Result;
use crate::model::{ContainerSummary, ImageSummary, Volume};
use crate::Engine;
use serde::Serialize;
use std::path::Path;

/// A volume with docker's `UsageData`.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeUsage {
    #[serde(flatten)]
    pub volume: Volume,
    #[serde(rename = "UsageData")]
    pub usage: UsageData,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UsageData {
    pub size: i64,
    pub ref_count: i64,
}

/// `GET /system/df`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<ContainerSummary>,
    pub volumes: Vec<VolumeUsage>,
    pub build_cache: Vec<serde_json::Value>,
}

fn tree_size(dir: &Path) -> i64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len() as i64)
        .sum()
}

impl Engine {
    pub fn system_df(&self) -> Result<DiskUsage> {
        let containers = self.container_list(true)?;
        let mut images = self.image_list(None)?;
        for i in &mut images {
            i.containers = containers.iter().filter(|c| c.image_id == i.id).count() as i64;
        }
        let volumes = self
            .volume_list()?
            .into_iter()
            .map(|v| {
                let ref_count = containers
                    .iter()
                    .filter(|c| c.mounts.iter().any(|m| m.name == v.name))
                    .count() as i64;
                let size = tree_size(Path::new(&v.mountpoint));
                VolumeUsage {
                    volume: v,
                    usage: UsageData { size, ref_count },
                }
            })
            .collect();
        Ok(DiskUsage {
            // Unpacked sizes, as the images' own `Size` (what the CLI
            // weighs the used share against).
            layers_size: images.iter().map(|i| i.size as i64).sum(),
            images,
            containers,
            volumes,
            build_cache: Vec::new(),
        })
    }
}
