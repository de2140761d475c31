//! compose's normalisation of a loaded model: the implicit `default`
//! network, resource names (`<project>_<key>`), the dependencies that
//! `network_mode`, `ipc`, `volumes_from` and `links` imply, build
//! defaults, and bare `KEY`s filled from the project's environment.

use crate::merge::scalar_text;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Normalises `model` (which has its `name`) in place.
pub fn normalize(model: &mut Value, env: &BTreeMap<String, String>) {
    let project = model
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut uses_default = false;
    if let Some(Value::Object(services)) = model.get_mut("services") {
        for service in services.values_mut() {
            if service.is_null() {
                *service = json!({});
            }
            let Some(s) = service.as_object_mut() else {
                continue;
            };
            if !s.contains_key("network_mode") {
                let nets = s.entry("networks").or_insert(json!({}));
                if let Value::Array(names) = nets {
                    *nets = Value::Object(
                        names
                            .iter()
                            .filter_map(scalar_text)
                            .map(|n| (n, Value::Null))
                            .collect(),
                    );
                }
                if let Value::Object(n) = nets {
                    if n.is_empty() {
                        n.insert("default".into(), Value::Null);
                    }
                    uses_default |= n.contains_key("default");
                }
            }
            implicit_dependencies(s);
            build_defaults(s, env);
            fill_environment(s, env);
            pre_start_image(s);
        }
    }
    let root = match model.as_object_mut() {
        Some(r) => r,
        None => return,
    };
    if uses_default {
        let nets = root.entry("networks").or_insert(json!({}));
        if let Value::Object(n) = nets {
            let d = n.entry("default").or_insert(json!({}));
            if d.is_null() {
                *d = json!({});
            }
        }
    }
    for key in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Object(items)) = root.get_mut(key) else {
            continue;
        };
        for (name, item) in items.iter_mut() {
            if item.is_null() {
                *item = json!({});
            }
            let Some(m) = item.as_object_mut() else {
                continue;
            };
            if m.contains_key("name") {
                continue;
            }
            let external = m.get("external").is_some_and(|e| e == true);
            // Secrets and configs from files or the environment keep
            // their key as their name.
            if key == "secrets" || key == "configs" {
                if external {
                    m.insert("name".into(), json!(name));
                }
                continue;
            }
            let named = if external {
                name.clone()
            } else {
                format!("{project}_{name}")
            };
            m.insert("name".into(), json!(named));
        }
    }
}

fn implicit_dependencies(s: &mut Map<String, Value>) {
    let mut implied: Vec<(String, bool)> = Vec::new();
    for key in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(target) = s
            .get(key)
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            implied.push((target.to_string(), true));
        }
    }
    if let Some(Value::Array(links)) = s.get("links") {
        for l in links.iter().filter_map(Value::as_str) {
            let name = l.split(':').next().unwrap_or(l);
            implied.push((name.to_string(), true));
        }
    }
    if let Some(Value::Array(from)) = s.get("volumes_from") {
        for v in from.iter().filter_map(Value::as_str) {
            if v.starts_with("container:") {
                continue;
            }
            let name = v.split(':').next().unwrap_or(v);
            implied.push((name.to_string(), false));
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = s.entry("depends_on").or_insert(json!({}));
    if let Value::Array(names) = deps {
        *deps = Value::Object(
            names
                .iter()
                .filter_map(scalar_text)
                .map(|n| (n, json!({"condition": "service_started", "required": true})))
                .collect(),
        );
    }
    if let Value::Object(d) = deps {
        for (name, restart) in implied {
            d.entry(name).or_insert(json!({
                "condition": "service_started",
                "required": true,
                "restart": restart,
            }));
        }
    }
}

fn build_defaults(s: &mut Map<String, Value>, env: &BTreeMap<String, String>) {
    let Some(Value::Object(b)) = s.get_mut("build") else {
        return;
    };
    b.entry("context").or_insert(json!("."));
    if !b.contains_key("dockerfile_inline") {
        b.entry("dockerfile").or_insert(json!("Dockerfile"));
    }
    if let Some(args) = b.get_mut("args") {
        match args {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    if m.get(&k).is_some_and(Value::is_null) {
                        match env.get(&k) {
                            Some(v) => {
                                m.insert(k, json!(v));
                            }
                            None => {
                                m.shift_remove(&k);
                            }
                        }
                    }
                }
            }
            Value::Array(items) => {
                items.retain_mut(|i| match i.as_str() {
                    Some(k) if !k.contains('=') => match env.get(k) {
                        Some(v) => {
                            *i = json!(format!("{k}={v}"));
                            true
                        }
                        None => false,
                    },
                    _ => true,
                });
            }
            _ => {}
        }
    }
}

fn fill_environment(s: &mut Map<String, Value>, env: &BTreeMap<String, String>) {
    match s.get_mut("environment") {
        Some(Value::Object(m)) => {
            for (k, v) in m.iter_mut() {
                if v.is_null() {
                    if let Some(e) = env.get(k) {
                        *v = json!(e);
                    }
                }
            }
        }
        Some(Value::Array(items)) => {
            for i in items.iter_mut() {
                if let Some(k) = i.as_str().filter(|k| !k.contains('=')) {
                    if let Some(e) = env.get(k) {
                        *i = json!(format!("{k}={e}"));
                    }
                }
            }
        }
        _ => {}
    }
}

fn pre_start_image(s: &mut Map<String, Value>) {
    let Some(image) = s.get("image").cloned() else {
        return;
    };
    if let Some(Value::Array(hooks)) = s.get_mut("pre_start") {
        for h in hooks.iter_mut().filter_map(Value::as_object_mut) {
            h.entry("image").or_insert(image.clone());
        }
    }
}
