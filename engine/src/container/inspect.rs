//! What docker says of a container: `inspect` (its record, with the create
//! request kept beside it) and the rows of `ps`.

use super::create::REQUEST;
use crate::error::Result;
use crate::model::{
    ContainerConfig, ContainerCreate, ContainerInspect, ContainerState, ContainerSummary,
    GraphDriver, MountPoint, PortBinding, PortMap, SummaryHostConfig, SummaryNetworkSettings,
};
use crate::units::{parse_time, since};
use crate::Engine;
use berth_runner::container::{Record, Status};
use std::collections::BTreeMap;

/// Whether the container's restart policy is waiting to run it again.
fn restarting(rec: &Record) -> bool {
    rec.state.restarting && rec.state.status != Status::Running && rec.state.supervised()
}

fn status_name(rec: &Record, paused: bool) -> &'static str {
    match rec.state.status {
        _ if restarting(rec) => "restarting",
        Status::Created => "created",
        Status::Running if paused => "paused",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// docker's words for a container's state: `Up 5 seconds`,
/// `Up 2 minutes (Paused)`, `Exited (0) 2 minutes ago`, `Created`.
fn status_text(rec: &Record, paused: bool, health: Option<&str>) -> String {
    let up = |t: &str| since(Some(t)).trim_end_matches(" ago").to_string();
    match rec.state.status {
        _ if restarting(rec) => format!(
            "Restarting ({}) {}",
            rec.state.exit_code,
            since(Some(&rec.state.finished_at))
        ),
        Status::Created => "Created".into(),
        Status::Running if paused => format!("Up {} (Paused)", up(&rec.state.started_at)),
        Status::Running => match health {
            Some("starting") => {
                format!("Up {} (health: starting)", up(&rec.state.started_at))
            }
            Some(h) => format!("Up {} ({h})", up(&rec.state.started_at)),
            None => format!("Up {}", up(&rec.state.started_at)),
        },
        Status::Exited => format!(
            "Exited ({}) {}",
            rec.state.exit_code,
            since(Some(&rec.state.finished_at))
        ),
    }
}

fn port_map(ports: &[berth_runner::container::PublishedPort]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        map.entry(format!("{}/{}", p.container_port, p.proto))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port.to_string(),
            });
    }
    map
}

/// The mounts a container's host config asked for, and its anonymous
/// volumes.
fn mount_points(rec: &Record, req: &ContainerCreate, volumes: &std::path::Path) -> Vec<MountPoint> {
    let mut out = Vec::new();
    for (name, dest) in &rec.anonymous_volumes {
        out.push(MountPoint {
            kind: "volume".into(),
            name: name.clone(),
            source: volumes.join(name).join("_data").display().to_string(),
            destination: dest.clone(),
            driver: "local".into(),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
        });
    }
    for b in req.host_config.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => continue,
        };
        let volume = !src.starts_with('/');
        out.push(MountPoint {
            kind: if volume { "volume" } else { "bind" }.into(),
            name: if volume { src.into() } else { String::new() },
            source: if volume {
                volumes.join(src).join("_data").display().to_string()
            } else {
                src.into()
            },
            destination: dst.into(),
            driver: if volume {
                "local".into()
            } else {
                String::new()
            },
            mode: mode.into(),
            rw: mode != "ro",
            propagation: if volume {
                String::new()
            } else {
                "rprivate".into()
            },
        });
    }
    for m in req
        .host_config
        .mounts
        .iter()
        .filter(|m| !(m.kind == "volume" && m.source.is_empty()))
    {
        out.push(MountPoint {
            kind: m.kind.clone(),
            name: if m.kind == "volume" {
                m.source.clone()
            } else {
                String::new()
            },
            source: match m.kind.as_str() {
                "volume" => volumes.join(&m.source).join("_data").display().to_string(),
                _ => m.source.clone(),
            },
            destination: m.target.clone(),
            driver: if m.kind == "volume" {
                "local".into()
            } else {
                String::new()
            },
            mode: String::new(),
            rw: !m.read_only,
            propagation: if m.kind == "bind" {
                "rprivate".into()
            } else {
                String::new()
            },
        });
    }
    out
}

impl Engine {
    /// The create request a container was made from (a container made by
    /// an older berth has none: an empty one stands in).
    pub(crate) fn create_request(&self, id: &str) -> ContainerCreate {
        std::fs::read(self.containers().dir(id).join(REQUEST))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// `docker inspect CONTAINER`.
    pub fn container_inspect(&self, key: &str) -> Result<ContainerInspect> {
        let rec = self.container(key)?;
        let containers = self.containers();
        let store = self.store();
        let req = self.create_request(&rec.id);
        let st = &rec.state;
        let paused = rec.running() && self.paused(&rec.id);
        let health = self.health(&rec);
        let ports = port_map(&self.published_ports(&rec));
        let mut host_config = req.host_config.clone();
        host_config.binds = Some(rec.binds.clone());
        host_config.network_mode = rec.network.clone();
        host_config.auto_remove = rec.auto_remove;
        host_config.runtime = rec.runtime.clone();
        host_config.port_bindings = port_map(&rec.ports);
        let config = ContainerConfig {
            hostname: rec.hostname.clone(),
            user: rec.user.clone(),
            tty: rec.tty,
            env: Some(rec.env.clone()),
            cmd: Some(rec.cmd.clone()),
            image: rec.image.clone(),
            working_dir: rec.working_dir.clone(),
            entrypoint: Some(rec.entrypoint.clone()),
            labels: Some(rec.labels.clone()),
            stop_signal: rec.stop_signal.clone(),
            ..req.config.clone()
        };
        let dir = containers.dir(&rec.id);
        Ok(ContainerInspect {
            id: rec.id.clone(),
            created: rec.created.clone(),
            path: rec.args.first().cloned().unwrap_or_default(),
            args: rec.args.iter().skip(1).cloned().collect(),
            state: ContainerState {
                status: status_name(&rec, paused).into(),
                running: rec.running(),
                paused,
                restarting: restarting(&rec),
                oom_killed: st.oom_killed,
                dead: false,
                pid: if rec.running() { st.pid } else { 0 },
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
                health,
            },
            image: rec.image_id.clone(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            log_path: containers.log_path(&rec.id).display().to_string(),
            name: format!("/{}", rec.name),
            restart_count: st.restart_count,
            driver: "overlay".into(),
            platform: "linux".into(),
            host_config,
            graph_driver: GraphDriver {
                name: "overlay".into(),
                data: BTreeMap::from([
                    (
                        "UpperDir".to_string(),
                        store.rootfs_changes(&rec.id).display().to_string(),
                    ),
                    (
                        "MergedDir".to_string(),
                        store
                            .root()
                            .join("mounts")
                            .join(&rec.id)
                            .join("merged")
                            .display()
                            .to_string(),
                    ),
                ]),
            },
            mounts: mount_points(&rec, &req, &store.root().join("volumes")),
            config,
            network_settings: crate::model::NetworkSettings {
                ports,
                networks: self.endpoint_settings(&rec),
            },
        })
    }

    /// `docker ps [-a]`: running containers (every one with `all`), newest
    /// first.
    pub fn container_list(&self, all: bool) -> Result<Vec<ContainerSummary>> {
        self.container_list_filtered(all, &BTreeMap::new())
    }

    /// `docker ps [-a] --filter ...`: docker's filters id, name, label,
    /// status, ancestor, exited, before, since, health; a status filter
    /// looks at every container, as docker's does.
    pub fn container_list_filtered(
        &self,
        all: bool,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>> {
        self.reap()?;
        let volumes = self.store().root().join("volumes");
        let records = self.containers().list()?;
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "id" | "name"
                    | "label"
                    | "status"
                    | "ancestor"
                    | "exited"
                    | "before"
                    | "since"
                    | "health"
            ) {
                crate::error::fail!(Invalid, "invalid filter '{k}'");
            }
        }
        // before/since name a container; the list is newest first.
        let position = |key: &str| -> Result<usize> {
            let target = self.containers().find(key)?;
            Ok(records.iter().position(|r| r.id == target.id).unwrap_or(0))
        };
        let mut window = (0usize, records.len());
        if let Some(b) = filters.get("before").and_then(|v| v.first()) {
            window.0 = window.0.max(position(b)? + 1);
        }
        if let Some(s) = filters.get("since").and_then(|v| v.first()) {
            window.1 = window.1.min(position(s)?);
        }
        let all = all || filters.contains_key("status") || filters.contains_key("exited");
        Ok(records
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i >= window.0 && *i < window.1)
            .map(|(_, r)| r)
            .filter(|r| all || r.running())
            .filter(|r| {
                let paused = r.running() && self.paused(&r.id);
                let health = self.health(r).map(|h| h.status);
                filters.iter().all(|(k, vals)| {
                    let matches = |v: &String| match k.as_str() {
                        "id" => r.id.starts_with(v.as_str()),
                        "name" => {
                            let v = v.trim_start_matches('/');
                            r.name.contains(v)
                        }
                        "label" => match v.split_once('=') {
                            Some((lk, lv)) => r.labels.get(lk).map(String::as_str) == Some(lv),
                            None => r.labels.contains_key(v.as_str()),
                        },
                        "status" => status_name(r, paused) == v,
                        "exited" => {
                            r.state.status == Status::Exited
                                && v.parse::<i32>().ok() == Some(r.state.exit_code)
                        }
                        "ancestor" => {
                            r.image == *v
                                || r.image_id == *v
                                || r.image_id
                                    .strip_prefix("sha256:")
                                    .is_some_and(|h| h.starts_with(v.as_str()))
                                || self
                                    .store()
                                    .resolve(v)
                                    .is_ok_and(|img| img.id.to_string() == r.image_id)
                        }
                        "health" => health.as_deref().unwrap_or("none") == v,
                        _ => true,
                    };
                    // Every label given must be there; other keys take any
                    // of their values (docker's rule).
                    if k == "label" {
                        vals.iter().all(matches)
                    } else {
                        vals.iter().any(matches)
                    }
                })
            })
            .map(|r| {
                let req = self.create_request(&r.id);
                let paused = r.running() && self.paused(&r.id);
                let health = self.health(&r).map(|h| h.status);
                ContainerSummary {
                    id: r.id.clone(),
                    names: vec![format!("/{}", r.name)],
                    image: r.image.clone(),
                    image_id: r.image_id.clone(),
                    command: r.args.join(" "),
                    created: parse_time(&r.created).unwrap_or(0),
                    ports: self
                        .published_ports(&r)
                        .iter()
                        .map(|p| crate::model::Port {
                            ip: p.host_ip.clone(),
                            private_port: p.container_port,
                            public_port: Some(p.host_port),
                            kind: p.proto.clone(),
                        })
                        .collect(),
                    labels: r.labels.clone(),
                    state: status_name(&r, paused).into(),
                    status: status_text(&r, paused, health.as_deref()),
                    host_config: SummaryHostConfig {
                        network_mode: r.network.clone(),
                    },
                    network_settings: SummaryNetworkSettings {
                        networks: self.endpoint_settings(&r),
                    },
                    mounts: mount_points(&r, &req, &volumes),
                }
            })
            .collect())
    }
}
