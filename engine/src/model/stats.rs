//! `GET /containers/{id}/stats`: one sample in docker's shape. Clients
//! compute CPU % from two samples (`cpu_stats` against `precpu_stats`) and
//! memory as `usage` less `stats.inactive_file`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time, nanoseconds (from /proc/stat); none when the
    /// container was not sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_cpu_usage: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_cpus: Option<u32>,
    pub throttling_data: ThrottlingData,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
}

/// Block I/O is not counted: docker's empty lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<serde_json::Value>>,
    pub io_serviced_recursive: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatsResponse {
    pub name: String,
    pub id: String,
    pub read: String,
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
}
