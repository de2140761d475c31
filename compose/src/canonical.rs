//! A merged compose model in compose's canonical long syntax, what
//! `docker compose config` prints and what the reconciler reads: ports,
//! volumes, `depends_on`, `env_file` and networks as objects, key=value
//! lists as mappings, commands as argument lists.

use crate::merge::scalar_text;
use serde_json::{json, Map, Value};

/// Why a value cannot be read in its long form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("services.{service}.{key}: {message}")]
pub struct SyntaxError {
    pub service: String,
    pub key: String,
    pub message: String,
}

/// Every service of `model` in long syntax.
pub fn canonicalize(model: &mut Value) -> Result<(), SyntaxError> {
    let Some(services) = model.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, service) in services.iter_mut() {
        if let Value::Object(s) = service {
            canonical_service(s).map_err(|(key, message)| SyntaxError {
                service: name.clone(),
                key,
                message,
            })?;
        } else if service.is_null() {
            *service = Value::Object(Map::new());
        }
    }
    Ok(())
}

type Fault = (String, String);

fn fault(key: &str, message: impl Into<String>) -> Fault {
    (key.to_string(), message.into())
}

fn canonical_service(s: &mut Map<String, Value>) -> Result<(), Fault> {
    if let Some(Value::String(context)) = s.get("build") {
        let context = context.clone();
        s.insert("build".into(), json!({ "context": context }));
    }
    if let Some(Value::Object(b)) = s.get_mut("build") {
        for key in ["args", "labels"] {
            if let Some(v) = b.get_mut(key) {
                *v = Value::Object(to_mapping(std::mem::take(v), key == "labels"));
            }
        }
    }
    for key in ["environment"] {
        if let Some(v) = s.get_mut(key) {
            *v = Value::Object(to_mapping(std::mem::take(v), false));
        }
    }
    for key in ["labels", "annotations", "sysctls"] {
        if let Some(v) = s.get_mut(key) {
            *v = Value::Object(to_mapping(std::mem::take(v), true));
        }
    }
    if let Some(Value::Object(d)) = s.get_mut("deploy") {
        if let Some(v) = d.get_mut("labels") {
            *v = Value::Object(to_mapping(std::mem::take(v), true));
        }
    }
    for key in ["command", "entrypoint"] {
        if let Some(Value::String(line)) = s.get(key) {
            let words = shlex::split(line)
                .ok_or_else(|| fault(key, format!("cannot split {line:?} into words")))?;
            s.insert(key.into(), json!(words));
        }
    }
    if let Some(Value::Object(h)) = s.get_mut("healthcheck") {
        if let Some(Value::String(line)) = h.get("test") {
            let line = line.clone();
            h.insert("test".into(), json!(["CMD-SHELL", line]));
        }
    }
    for key in ["dns", "dns_search", "tmpfs"] {
        if let Some(Value::String(one)) = s.get(key) {
            let one = one.clone();
            s.insert(key.into(), json!([one]));
        }
    }
    if let Some(v) = s.get_mut("env_file") {
        *v = env_files(std::mem::take(v));
    }
    if let Some(v) = s.get_mut("depends_on") {
        *v = Value::Object(depends_on(std::mem::take(v)));
    }
    if let Some(v) = s.get_mut("networks") {
        if let Value::Array(names) = v {
            *v = Value::Object(
                names
                    .iter()
                    .filter_map(scalar_text)
                    .map(|n| (n, Value::Null))
                    .collect(),
            );
        }
    }
    if let Some(Value::Array(ports)) = s.get("ports") {
        let mut long = Vec::new();
        for p in ports {
            long.extend(port(p).map_err(|m| fault("ports", m))?);
        }
        s.insert("ports".into(), Value::Array(long));
    }
    if let Some(Value::Array(expose)) = s.get_mut("expose") {
        for e in expose.iter_mut() {
            if let Some(t) = scalar_text(e) {
                *e = Value::String(t);
            }
        }
    }
    if let Some(Value::Array(volumes)) = s.get("volumes") {
        let long: Result<Vec<Value>, String> = volumes.iter().map(volume).collect();
        s.insert(
            "volumes".into(),
            Value::Array(long.map_err(|m| fault("volumes", m))?),
        );
    }
    for key in ["secrets", "configs"] {
        if let Some(Value::Array(items)) = s.get_mut(key) {
            for i in items.iter_mut() {
                if let Value::String(source) = i {
                    *i = json!({ "source": source.clone() });
                }
            }
        }
    }
    if let Some(Value::Object(u)) = s.get_mut("ulimits") {
        for v in u.values_mut() {
            if v.is_number() || v.is_string() {
                *v = json!({ "single": v.clone() });
            }
        }
    }
    if let Some(v) = s.get_mut("extra_hosts") {
        if let Value::Object(m) = v {
            let mut hosts = Vec::new();
            for (host, ip) in m.iter() {
                match ip {
                    Value::Array(ips) => hosts.extend(
                        ips.iter()
                            .filter_map(scalar_text)
                            .map(|ip| Value::String(format!("{host}={ip}"))),
                    ),
                    other => hosts.push(Value::String(format!(
                        "{host}={}",
                        scalar_text(other).unwrap_or_default()
                    ))),
                }
            }
            *v = Value::Array(hosts);
        }
    }
    Ok(())
}

/// `KEY=VALUE` items (or a mapping) as a mapping of strings. A bare `KEY`
/// is null; in labels (`empty_is_blank`) it is the empty string.
pub fn to_mapping(v: Value, empty_is_blank: bool) -> Map<String, Value> {
    match v {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let v = match &v {
                    Value::Null if empty_is_blank => Value::String(String::new()),
                    Value::Null => Value::Null,
                    other => scalar_text(other).map(Value::String).unwrap_or(v),
                };
                (k, v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(scalar_text)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                None if empty_is_blank => (item, Value::String(String::new())),
                None => (item, Value::Null),
            })
            .collect(),
        Value::String(one) => to_mapping(Value::Array(vec![Value::String(one)]), empty_is_blank),
        _ => Map::new(),
    }
}

fn env_files(v: Value) -> Value {
    let items = match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    Value::Array(
        items
            .into_iter()
            .map(|i| match i {
                Value::Object(mut m) => {
                    m.entry("required").or_insert(Value::Bool(true));
                    Value::Object(m)
                }
                other => {
                    json!({ "path": scalar_text(&other).unwrap_or_default(), "required": true })
                }
            })
            .collect(),
    )
}

fn depends_on(v: Value) -> Map<String, Value> {
    match v {
        Value::Array(names) => names
            .iter()
            .filter_map(scalar_text)
            .map(|n| (n, json!({"condition": "service_started", "required": true})))
            .collect(),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let mut d = match v {
                    Value::Object(d) => d,
                    _ => Map::new(),
                };
                d.entry("condition")
                    .or_insert(Value::String("service_started".into()));
                d.entry("required").or_insert(Value::Bool(true));
                (k, Value::Object(d))
            })
            .collect(),
        _ => Map::new(),
    }
}

/// One `ports:` item in the long form; a range is one item per port.
fn port(v: &Value) -> Result<Vec<Value>, String> {
    if let Value::Object(m) = v {
        let mut m = m.clone();
        if let Some(t) = m.get("target").and_then(scalar_text) {
            let n: u64 = t
                .parse()
                .map_err(|_| format!("invalid container port {t:?}"))?;
            m.insert("target".into(), json!(n));
        }
        if let Some(p) = m.get("published").and_then(scalar_text) {
            m.insert("published".into(), Value::String(p));
        }
        m.entry("protocol").or_insert(json!("tcp"));
        m.entry("mode").or_insert(json!("ingress"));
        return Ok(vec![Value::Object(m)]);
    }
    let spec = scalar_text(v).ok_or("a port must be a string, a number or a mapping")?;
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r.to_string(), p.to_string()),
        None => (spec.clone(), "tcp".to_string()),
    };
    // [host_ip:][published:]target, the host ip possibly bracketed (IPv6).
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| format!("invalid port {spec:?}"))?;
        (
            Some(ip.to_string()),
            after.trim_start_matches(':').to_string(),
        )
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() == 3 {
            (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            )
        } else if parts.len() > 3 {
            // An unbracketed IPv6 address: everything before the last two.
            let n = parts.len();
            (
                Some(parts[..n - 2].join(":")),
                format!("{}:{}", parts[n - 2], parts[n - 1]),
            )
        } else {
            (None, rest.clone())
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p.to_string()), t.to_string()),
        None => (None, rest.clone()),
    };
    let range = |s: &str| -> Result<(u64, u64), String> {
        let bad = || format!("invalid port {spec:?}");
        match s.split_once('-') {
            Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
            None => {
                let n = s.parse().map_err(|_| bad())?;
                Ok((n, n))
            }
        }
    };
    let (t0, t1) = range(&target)?;
    if t1 < t0 {
        return Err(format!("invalid port range {target:?}"));
    }
    let published_range = match published.as_deref() {
        Some("") | None => None,
        Some(p) => Some((p, range(p)?)),
    };
    let mut out = Vec::new();
    for (i, t) in (t0..=t1).enumerate() {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = host_ip.as_ref().filter(|ip| !ip.is_empty()) {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(t));
        if let Some((text, (p0, p1))) = published_range {
            let p = if t0 == t1 {
                text.to_string()
            } else if p1 - p0 == t1 - t0 {
                (p0 + i as u64).to_string()
            } else {
                text.to_string()
            };
            m.insert("published".into(), json!(p));
        }
        m.insert("protocol".into(), json!(protocol));
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// Whether a short volume's source is a host path rather than a volume name.
fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

/// One `volumes:` item in the long form.
fn volume(v: &Value) -> Result<Value, String> {
    if let Value::Object(m) = v {
        let mut m = m.clone();
        if m.get("type") == Some(&json!("bind")) {
            let bind = m.entry("bind").or_insert(json!({}));
            if let Value::Object(b) = bind {
                b.entry("create_host_path").or_insert(json!(true));
            }
        }
        return Ok(Value::Object(m));
    }
    let spec = scalar_text(v).ok_or("a volume must be a string or a mapping")?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return Err(format!("invalid volume {spec:?}: too many colons")),
    };
    if target.is_empty() {
        return Err(format!("invalid volume {spec:?}: no container path"));
    }
    let mut m = Map::new();
    match source {
        None => {
            m.insert("type".into(), json!("volume"));
            m.insert("target".into(), json!(target));
        }
        Some(s) => {
            let bind = is_path(s);
            m.insert("type".into(), json!(if bind { "bind" } else { "volume" }));
            m.insert("source".into(), json!(s));
            m.insert("target".into(), json!(target));
            let mut bind_opts = Map::new();
            let mut volume_opts = Map::new();
            for opt in mode
                .unwrap_or_default()
                .split(',')
                .filter(|o| !o.is_empty())
            {
                match opt {
                    "ro" => {
                        m.insert("read_only".into(), json!(true));
                    }
                    "rw" => {}
                    "z" | "Z" => {
                        bind_opts.insert("selinux".into(), json!(opt));
                    }
                    "nocopy" => {
                        volume_opts.insert("nocopy".into(), json!(true));
                    }
                    "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                        bind_opts.insert("propagation".into(), json!(opt));
                    }
                    other => {
                        return Err(format!("invalid volume {spec:?}: unknown mode {other:?}"))
                    }
                }
            }
            if bind {
                bind_opts.insert("create_host_path".into(), json!(true));
                m.insert("bind".into(), Value::Object(bind_opts));
            } else {
                m.insert("volume".into(), Value::Object(volume_opts));
            }
        }
    }
    Ok(Value::Object(m))
}
