//! A network's record, in the shape of docker's `GET /networks/{id}`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The option that names a bridge network's interface on the host.
pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkRecord {
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    pub created: String,
    pub scope: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigFrom,
    pub config_only: bool,
    /// The running containers on it, by ID (filled in when inspected).
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    pub subnet: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigFrom {
    pub network: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

impl NetworkRecord {
    /// One of the three networks every engine has (`bridge`, `host`,
    /// `none`): they cannot be removed.
    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// Whether containers on it get interfaces from the backend.
    pub fn bridged(&self) -> bool {
        self.driver == "bridge"
    }

    /// Whether its containers find each other by name: user-defined
    /// bridge networks, not docker's default one.
    pub fn dns(&self) -> bool {
        self.bridged() && self.name != "bridge"
    }

    /// The bridge interface on the host.
    pub fn interface(&self) -> String {
        self.options
            .get(BRIDGE_NAME)
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &self.id[..12.min(self.id.len())]))
    }
}
