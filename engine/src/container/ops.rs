//! The other operations on containers: restart, rename, pause, unpause,
//! top, stats, prune.

use crate::error::{fail, Error, Result};
use crate::Engine;
use berth_runner::container::Status;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerTop {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// One sample of `docker stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// Percent of one CPU, times the CPUs used (docker's CPU %).
    pub cpu_percent: f64,
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub pids: u64,
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .unwrap_or(0)
        * 1024
}

/// The host's CPU time so far, nanoseconds, and its CPUs: the `cpu` line
/// of /proc/stat (in USER_HZ ticks, 100 a second) and its `cpuN` lines.
fn host_cpu() -> (u64, u32) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0;
    let mut cpus = 0;
    for l in stat.lines() {
        let mut fields = l.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal
                total = fields
                    .take(8)
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000;
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus.max(1))
}

impl Engine {
    /// One `GET /containers/{id}/stats` sample; `previous` (the last one
    /// sent) is its `precpu_stats`. A container that is not running has
    /// zeros, as docker's.
    pub fn container_stats_sample(
        &self,
        key: &str,
        previous: Option<&crate::model::ContainerStatsResponse>,
    ) -> Result<crate::model::ContainerStatsResponse> {
        use crate::model::{ContainerStatsResponse, CpuStats, CpuUsage, MemoryStats, PidsStats};
        let rec = self.container(key)?;
        let mut out = ContainerStatsResponse {
            name: format!("/{}", rec.name),
            id: rec.id.clone(),
            read: "0001-01-01T00:00:00Z".into(),
            preread: "0001-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        if let Some(p) = previous {
            out.precpu_stats = p.cpu_stats.clone();
            out.preread = p.read.clone();
        }
        let usage = match berth_runner::cgroup::usage(&rec.id) {
            Some(u) if rec.running() => u,
            _ => return Ok(out),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        out.read = crate::units::rfc3339_nano(now);
        let (system, cpus) = host_cpu();
        out.cpu_stats = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: usage.cpu_ns,
                usage_in_kernelmode: usage.cpu_system_ns,
                usage_in_usermode: usage.cpu_user_ns,
            },
            system_cpu_usage: Some(system),
            online_cpus: Some(cpus),
            throttling_data: Default::default(),
        };
        let host = host_memory();
        out.memory_stats = MemoryStats {
            usage: Some(usage.memory),
            stats: [("inactive_file".to_string(), usage.inactive_file)].into(),
            limit: Some(usage.memory_limit.unwrap_or(host).min(host.max(1))),
        };
        out.pids_stats = PidsStats {
            current: Some(usage.pids),
        };
        Ok(out)
    }

    /// docker restart: stop (if running), then start.
    pub fn container_restart(&self, key: &str, grace: Duration) -> Result<()> {
        let rec = self.container(key)?;
        self.container_stop(&rec.id, grace)?;
        self.container_start(&rec.id)?;
        self.emit_container(&self.container(&rec.id)?, "restart", &[]);
        Ok(())
    }

    /// docker rename.
    pub fn container_rename(&self, key: &str, new_name: &str) -> Result<()> {
        let rec = self.container(key)?;
        let name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !berth_runner::container::valid_name(name) {
            fail!(
                Invalid,
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            );
        }
        if rec.name == name {
            fail!(
                Conflict,
                "Renaming a container with the same name as its current name"
            );
        }
        if let Some(other) = self.containers().named(name)? {
            fail!(
                Conflict,
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            );
        }
        let renamed = self
            .containers()
            .update(&rec.id, |r| r.name = name.to_string())?;
        self.emit_container(&renamed, "rename", &[("oldName", format!("/{}", rec.name))]);
        Ok(())
    }

    /// Whether container `id` is frozen (its cgroup's freezer says so).
    pub(crate) fn paused(&self, id: &str) -> bool {
        berth_runner::cgroup::is_frozen(id)
    }

    /// docker pause: every process of the container frozen.
    pub fn container_pause(&self, key: &str) -> Result<()> {
        let rec = self.container(key)?;
        if !rec.running() {
            fail!(Conflict, "Container {} is not running", rec.id);
        }
        if self.paused(&rec.id) {
            fail!(Conflict, "Container {} is already paused", rec.id);
        }
        berth_runner::cgroup::freeze(&rec.id, true)?;
        self.emit_container(&rec, "pause", &[]);
        Ok(())
    }

    /// docker unpause.
    pub fn container_unpause(&self, key: &str) -> Result<()> {
        let rec = self.container(key)?;
        if !rec.running() || !self.paused(&rec.id) {
            fail!(Conflict, "Container {} is not paused", rec.id);
        }
        berth_runner::cgroup::freeze(&rec.id, false)?;
        self.emit_container(&rec, "unpause", &[]);
        Ok(())
    }

    /// docker top: the host's `ps` (with `ps_args`, `-ef` by default) for
    /// the container's processes only.
    pub fn container_top(&self, key: &str, ps_args: &[String]) -> Result<ContainerTop> {
        let rec = self.container(key)?;
        if !rec.running() {
            fail!(Conflict, "Container {} is not running", rec.id);
        }
        let pids = berth_runner::cgroup::processes(&rec.id);
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| Error::Failed(format!("cannot run ps: {e}")))?;
        if !out.status.success() {
            fail!(
                Invalid,
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("");
        let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
        let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
            fail!(Invalid, "Couldn't find PID field in ps output");
        };
        let mut processes = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            if !pids.contains(&pid) {
                continue;
            }
            // The last column (the command) keeps its spaces.
            let mut row: Vec<String> = fields
                .iter()
                .take(titles.len().saturating_sub(1))
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len().saturating_sub(1).min(fields.len())..].join(" "));
            processes.push(row);
        }
        Ok(ContainerTop { titles, processes })
    }

    /// docker stats --no-stream: one sample of each running container
    /// (`keys`, or all of them), CPU measured over `window`.
    pub fn container_stats(
        &self,
        keys: &[String],
        window: Duration,
    ) -> Result<Vec<ContainerStats>> {
        let recs = if keys.is_empty() {
            self.containers()
                .list()?
                .into_iter()
                .filter(|r| r.running())
                .collect::<Vec<_>>()
        } else {
            keys.iter()
                .map(|k| self.container(k))
                .collect::<Result<Vec<_>>>()?
        };
        let first: Vec<Option<berth_runner::cgroup::Usage>> = recs
            .iter()
            .map(|r| berth_runner::cgroup::usage(&r.id))
            .collect();
        let started = Instant::now();
        std::thread::sleep(window);
        let elapsed = started.elapsed().as_nanos().max(1) as f64;
        let host = host_memory();
        Ok(recs
            .iter()
            .zip(first)
            .map(|(r, before)| {
                let now = berth_runner::cgroup::usage(&r.id);
                let running = r.running() && now.is_some();
                let (cpu, mem, limit, pids) = match (before, now) {
                    (Some(b), Some(n)) if running => (
                        n.cpu_ns.saturating_sub(b.cpu_ns) as f64 / elapsed * 100.0,
                        n.memory,
                        n.memory_limit.unwrap_or(host).min(host.max(1)),
                        n.pids,
                    ),
                    _ => (0.0, 0, 0, 0),
                };
                ContainerStats {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    cpu_percent: cpu,
                    memory_usage: mem,
                    memory_limit: limit,
                    pids,
                }
            })
            .collect())
    }

    /// docker container prune: every stopped container; their IDs.
    pub fn container_prune(&self) -> Result<Vec<String>> {
        self.reap()?;
        self.purge_retired(None);
        let mut gone = Vec::new();
        for rec in self.containers().list()? {
            if rec.state.status == Status::Running || rec.state.supervised() {
                continue;
            }
            self.destroy_with_volumes(&rec, false)?;
            gone.push(rec.id);
        }
        Ok(gone)
    }
}
