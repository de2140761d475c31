//! Networks in the Engine API's shapes: the record is `GET
//! /networks/{id}`'s body, kept by the network crate.

use super::EndpointSettings;
pub use berth_network::record::NetworkRecord as Network;
pub use berth_network::record::{ConfigFrom, Ipam, IpamConfig, NetworkContainer};
pub use berth_network::store::NetworkCreate;
use serde::{Deserialize, Serialize};

/// `POST /networks/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// `POST /networks/{id}/connect`'s body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnect {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`'s body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnect {
    pub container: String,
    pub force: bool,
}

/// `POST /networks/prune`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
}
