//! `POST /containers/create`: an image's config, docker's defaults and the
//! request become a container record and an OCI bundle; nothing starts.
//! The request is kept beside the record (`create.json`), with the fields
//! berth does not handle, which are reported as warnings.

use super::mounts;
use super::network::NetMode;
use super::publish::mappings;
use crate::error::{fail, Error, Result};
use crate::model::{ContainerCreate, ContainerCreateResponse};
use crate::Engine;
use berth_runner::container::{PublishedPort, Record};
use berth_runner::{bundle::Bundle, console, docker_spec, user, Network, RunConfig};
use serde_json::Value;

pub(crate) const REQUEST: &str = "create.json";

/// A container path without trailing slashes or `.` parts, to compare.
fn clean(p: &std::path::Path) -> std::path::PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Makes `spec` join the network namespace bound at `path`.
pub(crate) fn join_network_file(spec: &mut oci_spec::runtime::Spec, path: &std::path::Path) {
    if let Some(linux) = spec.linux_mut() {
        if let Some(nss) = linux.namespaces_mut() {
            for ns in nss.iter_mut() {
                if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                    ns.set_path(Some(path.to_path_buf()));
                }
            }
        }
    }
}

/// Whether a JSON value says anything (docker's clients send every field,
/// most of them empty).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        // docker's CLI sends `ConsoleSize: [0, 0]`.
        Value::Array(a) => a.iter().any(is_set),
        Value::Object(o) => o.values().any(is_set),
    }
}

/// A warning for each field the request sets that berth does not handle.
fn unhandled(req: &ContainerCreate) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut report = |section: &str, extra: &std::collections::BTreeMap<String, Value>| {
        for (k, v) in extra {
            // -1 is docker's "not set" for the swappiness.
            let unset = k == "MemorySwappiness" && v.as_i64() == Some(-1);
            if is_set(v) && !unset {
                warnings.push(format!(
                    "{section}{k} is not supported by berth and was ignored"
                ));
            }
        }
    };
    report("", &req.config.extra);
    report("HostConfig.", &req.host_config.extra);
    if let Some(h) = &req.config.healthcheck {
        report("Healthcheck.", &h.extra);
    }
    for m in &req.host_config.mounts {
        report("Mounts.", &m.extra);
    }
    warnings
}

/// docker's daemon's check of a restart policy.
fn check_restart_policy(hc: &crate::model::HostConfig) -> Result<()> {
    let p = &hc.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" | "no" if p.maximum_retry_count != 0 => fail!(
            Invalid,
            "maximum retry count cannot be used with restart policy '{}'",
            p.name
        ),
        "on-failure" if p.maximum_retry_count < 0 => {
            fail!(Invalid, "maximum retry count cannot be negative")
        }
        "always" | "unless-stopped" | "no" | "on-failure" | "" => {}
        other => fail!(Invalid, "invalid restart policy '{other}'"),
    }
    if hc.auto_remove && !matches!(p.name.as_str(), "" | "no") {
        fail!(
            Invalid,
            "can't create 'AutoRemove' container with restart policy"
        );
    }
    Ok(())
}

/// `KEY=VALUE` replaces an earlier `KEY=...`.
fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

fn limits(req: &ContainerCreate) -> Result<berth_runner::Limits> {
    let hc = &req.host_config;
    let memory = (hc.memory > 0).then_some(hc.memory);
    if let Some(m) = memory {
        if m < 6 * 1024 * 1024 {
            fail!(Invalid, "Minimum memory limit allowed is 6MB");
        }
    }
    let cpu = match hc.nano_cpus {
        n if n < 0 => fail!(Invalid, "invalid NanoCpus {n}: must be above 0"),
        0 => None,
        n => {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            if n > cores as i64 * 1_000_000_000 {
                fail!(
                    Invalid,
                    "range of CPUs is from 0.01 to {cores}.00, as there are only {cores} CPUs available"
                );
            }
            // A quota of that many CPU-periods of 100 ms.
            Some((n / 10_000, 100_000))
        }
    };
    Ok(berth_runner::Limits {
        memory,
        pids: hc.pids_limit.filter(|p| *p > 0),
        cpu,
    })
}

/// The terminal berth's own standard output is on, as the size a new
/// container's terminal starts with.
fn terminal_size() -> Result<Option<oci_spec::runtime::Box>> {
    let Some((rows, cols)) = console::size_of(1) else {
        return Ok(None);
    };
    oci_spec::runtime::BoxBuilder::default()
        .height(rows as u64)
        .width(cols as u64)
        .build()
        .map(Some)
        .map_err(|e| Error::Failed(format!("cannot size the terminal: {e}")))
}

impl Engine {
    /// Makes a container as docker's daemon does; `name` is the `?name=`
    /// of the request (a generated one when absent).
    pub fn container_create(
        &self,
        name: Option<&str>,
        mut req: ContainerCreate,
    ) -> Result<ContainerCreateResponse> {
        // Its start moves a process into a cgroup: the kernel's wait for that
        // runs meanwhile.
        berth_runner::cgroup::warm_up(std::time::Duration::from_millis(60));
        let store = self.store();
        let image = store.resolve(&req.config.image)?;
        let mode = self.plan_networks(&mut req)?;
        let network = match mode {
            NetMode::Backend | NetMode::Slirp | NetMode::Container => Network::Private,
            NetMode::None => Network::None,
            NetMode::Host => Network::Host,
        };
        let hc = &req.host_config;
        check_restart_policy(hc)?;
        let mut warnings = unhandled(&req);
        let mut ports = mappings(&hc.port_bindings)?;
        match network {
            Network::Host if !ports.is_empty() => {
                warnings.push("Published ports are discarded when using host network mode".into());
                ports.clear();
            }
            Network::None => ports.clear(),
            _ => {}
        }
        let runtime = match hc.runtime.as_str() {
            "" => "berth".to_string(),
            r => r.to_string(),
        };
        if req.config.tty && runtime != "berth" {
            fail!(
                Invalid,
                "-t needs berth's own runtime (--runtime {runtime} is given)"
            );
        }
        let config = image.config.config.clone().unwrap_or_default();
        let stop_signal = req
            .config
            .stop_signal
            .clone()
            .filter(|s| !s.is_empty())
            .or(config.stop_signal.clone());
        if let Some(sig) = &req.config.stop_signal {
            super::signal_of(sig)?;
        }
        let containers = self.containers();
        let id = crate::volume::random_id()?;
        let name = match name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !berth_runner::container::valid_name(n) {
                    fail!(
                        Invalid,
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    );
                }
                if let Some(other) = containers.named(n)? {
                    fail!(
                        Conflict,
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    );
                }
                n.to_string()
            }
            None => berth_runner::container::generate_name(id.as_bytes(), |n| {
                containers.named(n).ok().flatten().is_some()
            }),
        };
        let short = id[..12].to_string();
        // docker's merge: a given entrypoint (even an empty one) drops the
        // image's entrypoint and command.
        let (entrypoint, cmd): (Vec<String>, Vec<String>) = match &req.config.entrypoint {
            Some(e) => (
                e.iter()
                    .filter(|w| !w.is_empty() || e.len() > 1)
                    .cloned()
                    .collect(),
                req.config.cmd.clone().unwrap_or_default(),
            ),
            None => (
                config.entrypoint.clone().unwrap_or_default(),
                match &req.config.cmd {
                    Some(c) if !c.is_empty() => c.clone(),
                    _ => config.cmd.clone().unwrap_or_default(),
                },
            ),
        };
        let argv: Vec<String> = entrypoint.iter().cloned().chain(cmd.clone()).collect();
        if argv.is_empty() {
            fail!(Invalid, "no command specified");
        }

        // Named volumes the mounts make on first use are said as made.
        let volumes_before: std::collections::BTreeSet<String> =
            store.volumes()?.into_iter().map(|v| v.name).collect();
        let creating = containers.begin(&id)?;
        store.hold(&id, &image.manifest_digest)?;
        let mut anonymous = Vec::new();
        let created = (|| -> Result<()> {
            let mount = store.container_rootfs(&image, &id, !hc.auto_remove)?;
            let bundle = Bundle::create(&containers.dir(&id))?.keep();
            let hostname = Some(req.config.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| short.clone());
            let user_name = Some(req.config.user.as_str())
                .filter(|u| !u.is_empty())
                .or(config.user.as_deref())
                .unwrap_or("")
                .to_string();
            let u = user::resolve(&mount.merged, &user_name)?;
            let mut env = config.env.clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(
                    0,
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                );
            }
            set_env(&mut env, &format!("HOSTNAME={hostname}"));
            if req.config.tty {
                set_env(&mut env, "TERM=xterm");
            }
            for e in req.config.env.iter().flatten() {
                set_env(&mut env, e);
            }
            if !env.iter().any(|e| e.starts_with("HOME=")) {
                env.push(format!("HOME={}", u.home));
            }
            let cwd = Some(req.config.working_dir.clone())
                .filter(|w| !w.is_empty())
                .or(config.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into());
            let cfg = RunConfig {
                rootfs: mount.merged.clone(),
                args: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                uid: u.uid,
                gid: u.gid,
                additional_gids: u.additional_gids,
                hostname: hostname.clone(),
                network,
                readonly_rootfs: hc.readonly_rootfs,
                privileged: hc.privileged,
                limits: limits(&req)?,
                cgroup: Some(id.clone()),
            };
            let mut spec = docker_spec(&cfg)?;
            if mode == NetMode::Backend {
                join_network_file(&mut spec, &Engine::netns_path(&id));
                self.mark_backend(&id)?;
            }
            if let Some(p) = spec.process_mut() {
                p.set_terminal(Some(req.config.tty));
                if req.config.tty {
                    p.set_console_size(terminal_size()?);
                }
            }
            let mut oci_mounts = spec.mounts().clone().unwrap_or_default();
            oci_mounts.extend(bundle.etc_files(&hostname, network)?);
            let mut taken = Vec::new();
            for v in hc.binds.iter().flatten() {
                let (m, anon) = mounts::bind(store, &mount.merged, v)?;
                taken.push(m.destination().clone());
                let dest = m.destination().display().to_string();
                oci_mounts.push(m);
                anonymous.extend(anon.map(|n| (n, dest)));
            }
            for spec in &hc.mounts {
                let (m, anon) = mounts::mount(store, &mount.merged, spec)?;
                taken.push(m.destination().clone());
                let dest = m.destination().display().to_string();
                oci_mounts.push(m);
                anonymous.extend(anon.map(|n| (n, dest)));
            }
            // The image's VOLUMEs that no mount covers: a new volume each,
            // seeded from the image, as docker makes them.
            for path in config.volumes.iter().flatten().map(|(p, _)| p) {
                let dest = std::path::PathBuf::from(path);
                if taken.iter().any(|t| clean(t) == clean(&dest)) {
                    continue;
                }
                let name = crate::volume::random_id()?;
                oci_mounts.push(mounts::volume(store, &mount.merged, &name, path, false)?);
                anonymous.push((name, path.clone()));
            }

            spec.set_mounts(Some(oci_mounts));
            bundle.save(&spec)?;
            let request = serde_json::to_vec_pretty(&req)
                .map_err(|e| Error::Failed(format!("cannot encode the create request: {e}")))?;
            std::fs::write(containers.dir(&id).join(REQUEST), request).map_err(|e| {
                Error::Failed(format!("cannot write the container's create request: {e}"))
            })?;
            let rec = Record {
                id: id.clone(),
                name: name.clone(),
                image: req.config.image.clone(),
                image_id: image.id.to_string(),
                manifest: image.manifest_digest.to_string(),
                created: berth_runner::log::now(),
                args: argv.clone(),
                hostname,
                env,
                working_dir: cwd,
                user: user_name,
                entrypoint: entrypoint.clone(),
                cmd: cmd.clone(),
                labels: config
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(req.config.labels.clone().unwrap_or_default())
                    .collect(),
                ports: ports
                    .iter()
                    .map(|p| PublishedPort {
                        host_ip: p.host.ip().to_string(),
                        host_port: p.host.port(),
                        container_port: p.container,
                        proto: p.proto.name().into(),
                    })
                    .collect(),
                network: match hc.network_mode.as_str() {
                    "" => "default".into(),
                    m => m.to_string(),
                },
                runtime: runtime.clone(),
                auto_remove: hc.auto_remove,
                tty: req.config.tty,
                binds: hc.binds.clone().unwrap_or_default(),
                stop_signal: stop_signal.clone(),
                anonymous_volumes: anonymous.clone(),
                state: Default::default(),
            };
            containers.save(&rec)?;
            Ok(())
        })();
        if let Err(e) = created {
            let _ = self.remove_container_files(&id);
            for (v, _) in &anonymous {
                let _ = store.volume_remove(v);
            }
            return Err(e);
        }
        creating.finish();
        for v in store.volumes()? {
            if !volumes_before.contains(&v.name) {
                self.emit_volume("create", &v.name);
            }
        }
        if let Ok(rec) = containers.load(&id) {
            self.emit_container(&rec, "create", &[]);
        }
        if mode == NetMode::Slirp && !berth_runner::supervisor::slirp_available() {
            warnings.push("slirp4netns is not installed (or cannot open /dev/net/tun): the container has a loopback network only".into());
        }
        Ok(ContainerCreateResponse { id, warnings })
    }
}

#[cfg(test)]
mod tests {
    use super::unhandled;
    use crate::model::ContainerCreate;

    #[test]
    fn fields_berth_lacks_are_reported_when_set() {
        // docker's CLI sends every field, most of them empty: no warnings.
        let quiet: ContainerCreate = serde_json::from_str(
            r#"{"Image":"busybox","MacAddress":"","HostConfig":{"CapAdd":null,"CpuShares":0,"Dns":[],"Sysctls":{}}}"#,
        )
        .unwrap();
        assert_eq!(unhandled(&quiet), Vec::<String>::new());
        let set: ContainerCreate = serde_json::from_str(
            r#"{"Image":"busybox","NetworkDisabled":true,"MacAddress":"02:42:ac:11:00:02","HostConfig":{"CapAdd":["NET_ADMIN"],"Sysctls":{"net.ipv4.ip_forward":"1"}}}"#,
        )
        .unwrap();
        let w = unhandled(&set);
        assert!(
            w.contains(&"NetworkDisabled is not supported by berth and was ignored".to_string()),
            "{w:?}"
        );
        assert!(
            w.contains(&"HostConfig.CapAdd is not supported by berth and was ignored".to_string()),
            "{w:?}"
        );
        assert!(
            w.contains(&"HostConfig.Sysctls is not supported by berth and was ignored".to_string()),
            "{w:?}"
        );
    }
}
