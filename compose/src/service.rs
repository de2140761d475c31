//! A compose service (long syntax) as the engine's container request,
//! in the Engine API's shape, as docker compose sends it: names, compose's
//! labels, the service's networks with its aliases, mounts of the
//! project's volumes. Keys berth does not run land in the request's extra
//! fields, which the engine reports as warnings.

use crate::merge::scalar_text;
use berth_engine::model::ContainerCreate;
use berth_engine::units;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const IMAGE: &str = "com.docker.compose.image";
pub const VERSION: &str = "com.docker.compose.version";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
/// The compose version berth's labels say (the v2 line it follows).
pub const COMPOSE_VERSION: &str = "2.24.0";

/// The keys a service's container is made of; any other key is named in
/// a warning.
const KNOWN: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "networks",
    "network_mode",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "scale",
    "labels",
    "working_dir",
    "user",
    "hostname",
    "domainname",
    "container_name",
    "init",
    "tty",
    "stdin_open",
    "stop_signal",
    "stop_grace_period",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "cap_add",
    "cap_drop",
    "privileged",
    "read_only",
    "tmpfs",
    "ulimits",
    "sysctls",
    "secrets",
    "configs",
    "profiles",
    "pull_policy",
    "platform",
    "mem_limit",
    "cpus",
    "pids_limit",
    "links",
    "logging",
    "x-",
    "annotations",
];

/// The service keys berth does not support, for a warning each.
pub fn unsupported_keys(service: &Value) -> Vec<String> {
    service
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !k.starts_with("x-") && !KNOWN.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The `build:` keys berth passes to its builder.
const BUILD_KNOWN: &[&str] = &[
    "context",
    "cache_from",
    "cache_to",
    "dockerfile",
    "dockerfile_inline",
    "args",
    "labels",
    "target",
    "tags",
    "network",
    "secrets",
    "platforms",
    "no_cache",
    "pull",
];

/// The keys of a service's `build:` berth does not support, as
/// `build.<key>` for a warning each.
pub fn unsupported_build_keys(service: &Value) -> Vec<String> {
    service
        .get("build")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter(|k| !k.starts_with("x-") && !BUILD_KNOWN.contains(&k.as_str()))
                .map(|k| format!("build.{k}"))
                .collect()
        })
        .unwrap_or_default()
}

/// The image a service runs: its `image`, or `<project>-<service>` for
/// one that is only built.
pub fn image_name(project: &str, name: &str, service: &Value) -> String {
    service
        .get("image")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("{project}-{name}"))
}

/// What decides whether a container is still the service's: its
/// configuration less what does not change a container.
pub fn config_hash(service: &Value) -> String {
    let mut s = service.clone();
    if let Some(m) = s.as_object_mut() {
        for k in ["build", "pull_policy", "scale", "profiles"] {
            m.shift_remove(k);
        }
        if let Some(Value::Object(d)) = m.get_mut("deploy") {
            d.shift_remove("replicas");
        }
    }
    let text = serde_json::to_string(&sorted(&s)).unwrap_or_default();
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// A value with its mappings' keys in order, so the hash is the content's.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// How many containers a service wants.
pub fn replicas(service: &Value) -> usize {
    service
        .get("deploy")
        .and_then(|d| d.get("replicas"))
        .or_else(|| service.get("scale"))
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize
}

fn nanos(v: Option<&Value>) -> Result<i64, String> {
    match v.and_then(Value::as_str) {
        Some(d) => units::duration(d),
        None => Ok(0),
    }
}

fn bytes(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => Ok(n.as_i64().unwrap_or_default()),
        Value::String(s) => units::ram_in_bytes(s),
        _ => Ok(0),
    }
}

/// Everything about the container of service `name` that the project decides.
pub struct Context<'a> {
    pub project: &'a str,
    pub model: &'a Value,
    pub working_dir: &'a str,
    pub config_files: &'a str,
    /// `service:x` targets: the container to share with.
    pub container_of: &'a dyn Fn(&str) -> Option<String>,
}

/// The container request for replica `number` of service `name`.
pub fn container_request(
    cx: &Context<'_>,
    name: &str,
    service: &Value,
    number: usize,
    oneoff: bool,
) -> Result<ContainerCreate, String> {
    let s = service.as_object().cloned().unwrap_or_default();
    let get = |k: &str| s.get(k);
    let str_of = |k: &str| get(k).and_then(scalar_text).unwrap_or_default();

    let mut labels: Map<String, Value> = match get("labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let depends: Vec<String> = get("depends_on")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}:{}:{}",
                        v.get("condition")
                            .and_then(Value::as_str)
                            .unwrap_or("service_started"),
                        v.get("restart").and_then(Value::as_bool).unwrap_or(false)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in [
        (PROJECT, cx.project.to_string()),
        (SERVICE, name.to_string()),
        (NUMBER, number.to_string()),
        (ONEOFF, if oneoff { "True" } else { "False" }.to_string()),
        (CONFIG_HASH, config_hash(service)),
        (WORKING_DIR, cx.working_dir.to_string()),
        (CONFIG_FILES, cx.config_files.to_string()),
        (DEPENDS_ON, depends.join(",")),
        (IMAGE, image_name(cx.project, name, service)),
        (VERSION, COMPOSE_VERSION.to_string()),
    ] {
        labels.insert(k.into(), json!(v));
    }

    let env: Vec<String> = match get("environment") {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| scalar_text(v).map(|v| format!("{k}={v}")))
            .collect(),
        _ => Vec::new(),
    };

    // Ports: the container's side exposed, the host's side published.
    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for e in get("expose")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = scalar_text(e) {
            let key = if t.contains('/') {
                t
            } else {
                format!("{t}/tcp")
            };
            exposed.insert(key, json!({}));
        }
    }
    for p in get("ports").and_then(Value::as_array).into_iter().flatten() {
        let target = p.get("target").and_then(scalar_text).unwrap_or_default();
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
        let key = format!("{target}/{proto}");
        exposed.insert(key.clone(), json!({}));
        let binding = json!({
            "HostIp": p.get("host_ip").and_then(Value::as_str).unwrap_or_default(),
            "HostPort": p.get("published").and_then(scalar_text).unwrap_or_default(),
        });
        if let Some(list) = bindings
            .entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(binding);
        }
    }

    // Volumes: named ones by the project's resource names.
    let mut mounts = Vec::new();
    let volumes = cx.model.get("volumes");
    for v in get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("volume");
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
        let source = v.get("source").and_then(Value::as_str).unwrap_or_default();
        let read_only = v.get("read_only").and_then(Value::as_bool).unwrap_or(false);
        let source = match kind {
            "volume" if !source.is_empty() => volumes
                .and_then(|vs| vs.get(source))
                .and_then(|d| d.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(source)
                .to_string(),
            _ => source.to_string(),
        };
        mounts
            .push(json!({"Type": kind, "Source": source, "Target": target, "ReadOnly": read_only}));
    }
    for t in get("tmpfs").and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = t.as_str() {
            let target = t.split(':').next().unwrap_or(t);
            mounts.push(json!({"Type": "tmpfs", "Target": target}));
        }
    }
    // File-based secrets and configs: the file, read-only, where the
    // service wants it (`/run/secrets/<name>`, `/<name>` by default). The
    // others are copied in after create (`injected`).
    for key in ["secrets", "configs"] {
        for item in get(key).and_then(Value::as_array).into_iter().flatten() {
            let Some(src) = item.get("source").and_then(Value::as_str) else {
                continue;
            };
            let def = cx.model.get(key).and_then(|d| d.get(src));
            let Some(file) = def.and_then(|d| d.get("file")).and_then(Value::as_str) else {
                continue;
            };
            let target =
                crate::injected::target(key, src, item.get("target").and_then(Value::as_str));
            mounts
                .push(json!({"Type": "bind", "Source": file, "Target": target, "ReadOnly": true}));
        }
    }

    let restart = str_of("restart");
    let (policy, retries) = match restart.split_once(':') {
        Some((p, n)) => (p.to_string(), n.parse::<i64>().unwrap_or(0)),
        None => (restart.clone(), 0),
    };

    // Networks: each with the service's name and aliases as aliases.
    let mut endpoints = Map::new();
    let mut network_mode = str_of("network_mode");
    if let Some(target) = network_mode.strip_prefix("service:") {
        let id = (cx.container_of)(target).ok_or_else(|| {
            format!("service {name} shares the network of {target}, which has no container")
        })?;
        network_mode = format!("container:{id}");
    }
    if network_mode.is_empty() {
        let nets = get("networks")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (i, (key, cfg)) in nets.iter().enumerate() {
            let full = cx
                .model
                .get("networks")
                .and_then(|n| n.get(key))
                .and_then(|n| n.get("name"))
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("{}_{key}", cx.project));
            if i == 0 {
                network_mode = full.clone();
            }
            let mut aliases = vec![json!(name)];
            if let Some(Value::Array(a)) = cfg.get("aliases") {
                aliases.extend(a.iter().cloned());
            }
            let mut ep = json!({ "Aliases": aliases });
            if let Some(ip) = cfg.get("ipv4_address").and_then(Value::as_str) {
                ep["IPAMConfig"] = json!({ "IPv4Address": ip });
            }
            endpoints.insert(full, ep);
        }
    }

    let limits = get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    let memory = match limits.and_then(|l| l.get("memory")).or(get("mem_limit")) {
        Some(v) => bytes(v).map_err(|e| format!("memory: {e}"))?,
        None => 0,
    };
    let cpus = limits
        .and_then(|l| l.get("cpus"))
        .or(get("cpus"))
        .and_then(scalar_text)
        .and_then(|c| c.parse::<f64>().ok())
        .unwrap_or(0.0);
    let pids = limits
        .and_then(|l| l.get("pids"))
        .or(get("pids_limit"))
        .and_then(Value::as_i64);

    let healthcheck = match get("healthcheck") {
        Some(h) if h.get("disable") == Some(&json!(true)) => Some(json!({"Test": ["NONE"]})),
        Some(h) => Some(json!({
            "Test": h.get("test").cloned().unwrap_or(Value::Null),
            "Interval": nanos(h.get("interval"))?,
            "Timeout": nanos(h.get("timeout"))?,
            "StartPeriod": nanos(h.get("start_period"))?,
            "Retries": h.get("retries").and_then(Value::as_i64).unwrap_or(0),
        })),
        None => None,
    };
    let stop_timeout = match get("stop_grace_period").and_then(Value::as_str) {
        Some(d) => Some(units::duration(d)? / 1_000_000_000),
        None => None,
    };
    let extra_hosts: Vec<String> = get("extra_hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|h| h.replacen('=', ":", 1))
        .collect();

    let mut host = json!({
        "NetworkMode": network_mode,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
        "Mounts": mounts,
        "Privileged": get("privileged").and_then(Value::as_bool).unwrap_or(false),
        "ReadonlyRootfs": get("read_only").and_then(Value::as_bool).unwrap_or(false),
        "Memory": memory,
        "NanoCpus": (cpus * 1e9) as i64,
        "PidsLimit": pids,
        "Dns": get("dns").cloned(),
        "DnsSearch": get("dns_search").cloned(),
        "DnsOptions": get("dns_opt").cloned(),
        "ExtraHosts": extra_hosts,
    });
    if let Some(l) = get("logging") {
        host["LogConfig"] = json!({
            "Type": l.get("driver").and_then(Value::as_str).unwrap_or("json-file"),
            "Config": l.get("options").cloned().unwrap_or(json!({})),
        });
    }
    // What the engine does not run: said back as warnings.
    for (key, api) in [
        ("cap_add", "CapAdd"),
        ("cap_drop", "CapDrop"),
        ("init", "Init"),
        ("sysctls", "Sysctls"),
        ("ulimits", "Ulimits"),
    ] {
        if let Some(v) = get(key) {
            host[api] = v.clone();
        }
    }
    let mut config = json!({
        "Image": image_name(cx.project, name, service),
        "Env": env,
        "Labels": labels,
        "WorkingDir": str_of("working_dir"),
        "User": str_of("user"),
        "Hostname": str_of("hostname"),
        "Domainname": str_of("domainname"),
        "Tty": get("tty").and_then(Value::as_bool).unwrap_or(false),
        "OpenStdin": get("stdin_open").and_then(Value::as_bool).unwrap_or(false),
        "ExposedPorts": exposed,
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    });
    if let Some(c) = get("command") {
        config["Cmd"] = c.clone();
    }
    if let Some(e) = get("entrypoint") {
        config["Entrypoint"] = e.clone();
    }
    if let Some(h) = healthcheck {
        config["Healthcheck"] = h;
    }
    if let Some(sig) = get("stop_signal") {
        config["StopSignal"] = sig.clone();
    }
    if let Some(t) = stop_timeout {
        config["StopTimeout"] = json!(t);
    }
    serde_json::from_value(config).map_err(|e| format!("services.{name}: {e}"))
}
