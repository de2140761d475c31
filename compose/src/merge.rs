//! Merging one compose file over another, as compose-go's `override`
//! package does it: mappings merge, sequences append, scalars are
//! replaced, and the keys the spec names have rules of their own (see
//! [`special`]). Then [`unicity`]: in the sequences where items have an
//! identity (a mount target, an environment key, a port), a later item
//! replaces the earlier one in the earlier one's place.

use serde_json::{Map, Value};

/// A path of mapping keys (sequence items count as `*` in patterns).
fn matches(path: &[&str], pattern: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    pat.len() == path.len() && pat.iter().zip(path).all(|(p, s)| *p == "*" || p == s)
}

/// `override` merged over `base`.
pub fn merge(base: Value, over: Value) -> Value {
    merge_at(base, over, &mut Vec::new())
}

#[derive(Clone, Copy)]
enum Rule {
    /// Both sides as `KEY=VALUE` sequences, the override's new items after.
    Sequence,
    /// As `Sequence`, for `extra_hosts` (a host may map to several addresses).
    ExtraHosts,
    /// The override replaces.
    Replace,
    DependsOn,
    /// `networks` and `models`: names as mapping keys.
    NameMap,
    Build,
    Logging,
    IpamConfig,
}

fn special(path: &[&str]) -> Option<Rule> {
    const RULES: &[(&str, Rule)] = &[
        ("networks.*.ipam.config", Rule::IpamConfig),
        ("networks.*.labels", Rule::Sequence),
        ("volumes.*.labels", Rule::Sequence),
        ("services.*.annotations", Rule::Sequence),
        ("services.*.build", Rule::Build),
        ("services.*.build.args", Rule::Sequence),
        ("services.*.build.additional_contexts", Rule::Sequence),
        ("services.*.build.extra_hosts", Rule::ExtraHosts),
        ("services.*.build.labels", Rule::Sequence),
        ("services.*.command", Rule::Replace),
        ("services.*.depends_on", Rule::DependsOn),
        ("services.*.deploy.labels", Rule::Sequence),
        ("services.*.dns", Rule::Sequence),
        ("services.*.dns_opt", Rule::Sequence),
        ("services.*.dns_search", Rule::Sequence),
        ("services.*.entrypoint", Rule::Replace),
        ("services.*.env_file", Rule::Sequence),
        ("services.*.label_file", Rule::Sequence),
        ("services.*.environment", Rule::Sequence),
        ("services.*.extra_hosts", Rule::ExtraHosts),
        ("services.*.healthcheck.test", Rule::Replace),
        ("services.*.labels", Rule::Sequence),
        ("services.*.volumes.*.volume.labels", Rule::Sequence),
        ("services.*.logging", Rule::Logging),
        ("services.*.models", Rule::NameMap),
        ("services.*.networks", Rule::NameMap),
        ("services.*.sysctls", Rule::Sequence),
        ("services.*.tmpfs", Rule::Sequence),
        ("services.*.ulimits.*", Rule::Replace),
    ];
    RULES
        .iter()
        .find(|(p, _)| matches(path, p))
        .map(|(_, r)| *r)
}

fn merge_at(base: Value, over: Value, path: &mut Vec<String>) -> Value {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(rule) = special(&p) {
        return merge_special(rule, base, over, path);
    }
    if over.is_null() {
        return base;
    }
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => Value::Object(merge_maps(b, o, path)),
        (Value::Array(mut b), Value::Array(o)) => {
            b.extend(o);
            Value::Array(b)
        }
        (_, o) => o,
    }
}

fn merge_maps(
    mut base: Map<String, Value>,
    over: Map<String, Value>,
    path: &mut Vec<String>,
) -> Map<String, Value> {
    for (k, v) in over {
        match base.get_mut(&k) {
            Some(slot) => {
                path.push(k);
                *slot = merge_at(std::mem::take(slot), v, path);
                path.pop();
            }
            None => {
                base.insert(k, v);
            }
        }
    }
    base
}

fn merge_special(rule: Rule, base: Value, over: Value, path: &mut Vec<String>) -> Value {
    match rule {
        Rule::Replace => over,
        Rule::Sequence | Rule::ExtraHosts => {
            let mut b = to_sequence(base);
            for item in to_sequence(over) {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
            Value::Array(b)
        }
        Rule::DependsOn => {
            let started = || serde_json::json!({"condition": "service_started", "required": true});
            merge_at(
                Value::Object(names_to_map(base, started)),
                Value::Object(names_to_map(over, started)),
                &mut Vec::new(),
            )
        }
        Rule::NameMap => {
            let b = names_to_map(base, || Value::Null);
            let o = names_to_map(over, || Value::Null);
            Value::Object(merge_maps(b, o, path))
        }
        Rule::Build => {
            let as_map = |v: Value| match v {
                Value::String(s) => Value::Object(Map::from_iter([("context".into(), s.into())])),
                other => other,
            };
            match (as_map(base), as_map(over)) {
                (Value::Object(b), Value::Object(o)) => Value::Object(merge_maps(b, o, path)),
                (b, Value::Null) => b,
                (_, o) => o,
            }
        }
        Rule::Logging => match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                let same = match (b.get("driver"), o.get("driver")) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
                if same {
                    Value::Object(merge_maps(b, o, path))
                } else {
                    Value::Object(o)
                }
            }
            (b, Value::Null) => b,
            (_, o) => o,
        },
        Rule::IpamConfig => match (base, over) {
            (Value::Array(mut b), Value::Array(o)) => {
                for item in o {
                    let subnet = item.get("subnet").cloned();
                    let same = b
                        .iter()
                        .position(|e| subnet.is_some() && e.get("subnet") == subnet.as_ref());
                    match same {
                        Some(i) => {
                            let e = std::mem::take(&mut b[i]);
                            b[i] = merge_at(e, item, &mut Vec::new());
                        }
                        None => b.push(item),
                    }
                }
                Value::Array(b)
            }
            (b, Value::Null) => b,
            (_, o) => o,
        },
    }
}

/// A scalar's text, as `KEY=VALUE` items carry it.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping as sorted `KEY=VALUE` items (a null value: a bare `KEY`; a
/// list: one item per element), a sequence as it is, a scalar as a
/// one-item sequence.
pub fn to_sequence(v: Value) -> Vec<Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a,
        Value::Object(m) => {
            let mut items: Vec<String> = Vec::new();
            for (k, v) in m {
                match v {
                    Value::Null => items.push(k),
                    Value::Array(a) => items.extend(
                        a.iter()
                            .map(|x| format!("{k}={}", scalar_text(x).unwrap_or_default())),
                    ),
                    other => items.push(format!("{k}={}", scalar_text(&other).unwrap_or_default())),
                }
            }
            items.sort();
            items.into_iter().map(Value::String).collect()
        }
        other => vec![other],
    }
}

/// A list of names as a mapping of each to `value()`; a mapping as it is.
fn names_to_map(v: Value, value: impl Fn() -> Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Array(a) => a
            .iter()
            .filter_map(scalar_text)
            .map(|n| (n, value()))
            .collect(),
        _ => Map::new(),
    }
}

/// What makes an item of a sequence unique, by the sequence's path.
type Indexer = fn(&Value) -> Option<String>;

fn indexer(path: &[&str]) -> Option<Indexer> {
    const KEY_VALUE: &[&str] = &[
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.platform",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.environment",
        "services.*.labels",
        "services.*.links",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.profiles",
        "services.*.sysctls",
        "services.*.tmpfs",
    ];
    if KEY_VALUE.iter().any(|p| matches(path, p)) {
        return Some(|v| {
            scalar_text(v).map(|s| s.split('=').next().unwrap_or_default().to_string())
        });
    }
    let table: &[(&str, Indexer)] = &[
        ("services.*.devices", |v| match v {
            Value::Object(m) => m.get("target").and_then(scalar_text),
            other => scalar_text(other).map(|s| s.split(':').nth(1).unwrap_or(&s).to_string()),
        }),
        ("services.*.configs", |v| mount_key(v, "")),
        ("services.*.secrets", |v| mount_key(v, "/run/secrets")),
        ("services.*.env_file", |v| match v {
            Value::Object(m) => m.get("path").and_then(scalar_text),
            other => scalar_text(other),
        }),
        ("services.*.expose", scalar_text),
        ("services.*.ports", |v| match v {
            Value::Object(m) => {
                let f = |k: &str| m.get(k).and_then(scalar_text).unwrap_or_default();
                Some(format!(
                    "{}:{}:{}/{}",
                    f("host_ip"),
                    f("published"),
                    f("target"),
                    f("protocol")
                ))
            }
            other => scalar_text(other),
        }),
        ("services.*.volumes", |v| match v {
            Value::Object(m) => m.get("target").and_then(scalar_text),
            other => scalar_text(other).map(|s| volume_target(&s)),
        }),
    ];
    table
        .iter()
        .find(|(p, _)| matches(path, p))
        .map(|(_, f)| *f)
}

fn mount_key(v: &Value, dir: &str) -> Option<String> {
    match v {
        Value::Object(m) => m.get("target").and_then(scalar_text).or_else(|| {
            m.get("source")
                .and_then(scalar_text)
                .map(|s| format!("{dir}/{s}"))
        }),
        other => scalar_text(other).map(|s| format!("{dir}/{s}")),
    }
}

/// The container path of a short volume (`src:dst[:mode]` or `dst`).
fn volume_target(spec: &str) -> String {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [one] => one.to_string(),
        [_, dst, ..] => dst.to_string(),
        [] => String::new(),
    }
}

/// Applies unicity to every sequence of the tree that has it.
pub fn unicity(tree: &mut Value) {
    unicity_at(tree, &mut Vec::new());
}

fn unicity_at(v: &mut Value, path: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                unicity_at(child, path);
                path.pop();
            }
        }
        Value::Array(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            if let Some(key) = indexer(&p) {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                let mut keys: Vec<Option<String>> = Vec::new();
                for item in items.drain(..) {
                    let k = key(&item);
                    match k
                        .as_ref()
                        .and_then(|k| keys.iter().position(|e| e.as_ref() == Some(k)))
                    {
                        Some(i) => out[i] = item,
                        None => {
                            keys.push(k);
                            out.push(item);
                        }
                    }
                }
                *items = out;
            }
            for (i, child) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                unicity_at(child, path);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Service `over` merged over service `base`, by the rules of
/// `services.<name>` (`extends`).
pub fn merge_service(base: Value, over: Value, name: &str) -> Value {
    let mut path = vec!["services".to_string(), name.to_string()];
    let mut merged = merge_at(base, over, &mut path);
    let mut tree = serde_json::json!({ "services": { name: merged.take() } });
    unicity(&mut tree);
    tree["services"][name].take()
}
