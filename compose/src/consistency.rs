//! The checks a loaded project passes before anything runs: every service,
//! network, volume, secret and config a service names exists, and
//! `depends_on` has no cycle.

use crate::loader::LoadError;
use serde_json::Value;
use std::collections::BTreeSet;

/// The services `service` needs to exist, by how it names them.
fn references(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Object(d)) = s.get("depends_on") {
        out.extend(
            d.iter()
                .filter(|(_, v)| v.get("required").and_then(Value::as_bool).unwrap_or(true))
                .map(|(k, _)| k.clone()),
        );
    }
    for key in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(t) = s
            .get(key)
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            out.push(t.to_string());
        }
    }
    if let Some(Value::Array(from)) = s.get("volumes_from") {
        for v in from.iter().filter_map(Value::as_str) {
            if !v.starts_with("container:") {
                out.push(v.split(':').next().unwrap_or(v).to_string());
            }
        }
    }
    if let Some(Value::Array(links)) = s.get("links") {
        for l in links.iter().filter_map(Value::as_str) {
            out.push(l.split(':').next().unwrap_or(l).to_string());
        }
    }
    out
}

pub fn check(model: &Value) -> Result<(), LoadError> {
    let empty = serde_json::Map::new();
    let services = model
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let defined = |key: &str, name: &str| {
        model
            .get(key)
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(name))
    };
    for (name, s) in services {
        for r in references(s) {
            if !services.contains_key(&r) {
                return Err(LoadError::new(format!(
                    "service {name:?} depends on undefined service {r:?}: invalid compose project"
                )));
            }
        }
        if let Some(Value::Object(nets)) = s.get("networks") {
            for n in nets.keys() {
                if n != "default" && !defined("networks", n) {
                    return Err(LoadError::new(format!(
                        "service {name:?} refers to undefined network {n}: invalid compose project"
                    )));
                }
            }
        }
        if let Some(Value::Array(vols)) = s.get("volumes") {
            for v in vols {
                if v.get("type").and_then(Value::as_str) != Some("volume") {
                    continue;
                }
                if let Some(src) = v.get("source").and_then(Value::as_str) {
                    if !defined("volumes", src) {
                        return Err(LoadError::new(format!(
                            "service {name:?} refers to undefined volume {src}: invalid compose project"
                        )));
                    }
                }
            }
        }
        for key in ["secrets", "configs"] {
            if let Some(Value::Array(items)) = s.get(key) {
                for i in items {
                    if let Some(src) = i.get("source").and_then(Value::as_str) {
                        if !defined(key, src) {
                            let what = key.trim_end_matches('s');
                            return Err(LoadError::new(format!(
                                "service {name:?} refers to undefined {what} {src}: invalid compose project"
                            )));
                        }
                    }
                }
            }
        }
    }
    cycles(model)
}

/// A `depends_on` cycle, named from the first service (in name order)
/// that is on one.
fn cycles(model: &Value) -> Result<(), LoadError> {
    let empty = serde_json::Map::new();
    let services = model
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let deps = |name: &str| -> Vec<String> {
        let mut d: Vec<String> = services
            .get(name)
            .and_then(|s| s.get("depends_on"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        d.sort();
        d
    };
    fn visit(
        name: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        deps: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(), String> {
        if let Some(i) = path.iter().position(|p| p == name) {
            let mut cycle: Vec<String> = path[i..].to_vec();
            cycle.push(name.to_string());
            return Err(cycle.join(" -> "));
        }
        if done.contains(name) {
            return Ok(());
        }
        path.push(name.to_string());
        for d in deps(name) {
            visit(&d, path, done, deps)?;
        }
        path.pop();
        done.insert(name.to_string());
        Ok(())
    }
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    let mut done = BTreeSet::new();
    for n in names {
        visit(n, &mut Vec::new(), &mut done, &deps)
            .map_err(|c| LoadError::new(format!("dependency cycle detected: {c}")))?;
    }
    Ok(())
}
