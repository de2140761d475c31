//! Images as the Engine API spells them.

use super::container::ContainerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One image of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Seconds since the epoch (0 when the config says nothing).
    pub created: i64,
    pub size: u64,
    pub shared_size: i64,
    pub virtual_size: u64,
    pub labels: BTreeMap<String, String>,
    pub containers: i64,
    /// berth's own: the manifest's digest (what `images --digests` shows)
    /// and the creation time as the config has it.
    #[serde(skip)]
    pub manifest_digest: String,
    #[serde(skip)]
    pub created_text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMetadata {
    #[serde(rename = "LastTagTime")]
    pub last_tag_time: String,
}

/// `GET /images/{name}/json`, `berth image inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

/// One row of `GET /images/{name}/history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// The image ID on the newest entry, `<missing>` below it.
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
    #[serde(skip)]
    pub created_text: Option<String>,
}

/// What `rmi` and `image prune` did, in docker's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImageDeleteItem {
    Untagged(String),
    Deleted(String),
}
