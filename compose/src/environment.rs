//! The environment of each service: its `env_file`s in order, then its
//! `environment` over them; a bare `KEY` takes the project's value, or
//! stays unset (null) when the project has none.

use crate::dotenv;
use crate::interpolate::Variables;
use crate::loader::LoadError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Resolves the environment of every service of the (long syntax) `model`.
pub fn resolve_environments(
    model: &mut Value,
    env: &BTreeMap<String, String>,
) -> Result<(), LoadError> {
    let Some(Value::Object(services)) = model.get_mut("services") else {
        return Ok(());
    };
    for (name, service) in services.iter_mut() {
        let Some(s) = service.as_object_mut() else {
            continue;
        };
        let mut out = Map::new();
        if let Some(Value::Array(files)) = s.get("env_file") {
            for f in files {
                let Some(path) = f.get("path").and_then(Value::as_str) else {
                    continue;
                };
                let required = f.get("required").and_then(Value::as_bool).unwrap_or(true);
                if !Path::new(path).exists() {
                    if required {
                        return Err(LoadError::new(format!(
                            "env file {path} not found: stat {path}: no such file or directory"
                        )));
                    }
                    continue;
                }
                let lookup = |k: &str| env.get(k).cloned();
                let vars = dotenv::read(Path::new(path), &lookup)
                    .map_err(|e| LoadError::new(format!("services.{name}.env_file: {e}")))?;
                for (k, v) in vars {
                    out.insert(k, Value::String(v));
                }
            }
        }
        if let Some(Value::Object(own)) = s.get("environment") {
            for (k, v) in own {
                let v = match v {
                    Value::Null => env
                        .get(k)
                        .cloned()
                        .map(Value::String)
                        .unwrap_or(Value::Null),
                    other => other.clone(),
                };
                out.insert(k.clone(), v);
            }
        }
        if !out.is_empty() || s.contains_key("environment") || s.contains_key("env_file") {
            s.insert("environment".into(), Value::Object(out));
        }
    }
    Ok(())
}

/// Fills the bare `KEY`s of every service's `environment` (list or
/// mapping, raw syntax) that `vars` has.
pub fn bare_keys_from(model: &mut Value, vars: &dyn Variables) {
    let Some(Value::Object(services)) = model.get_mut("services") else {
        return;
    };
    for s in services.values_mut() {
        match s.get_mut("environment") {
            Some(Value::Array(items)) => {
                for i in items.iter_mut() {
                    if let Some(k) = i.as_str().filter(|k| !k.contains('=')) {
                        if let Some(v) = vars.get(k) {
                            *i = Value::String(format!("{k}={v}"));
                        }
                    }
                }
            }
            Some(Value::Object(m)) => {
                for (k, v) in m.iter_mut() {
                    if v.is_null() {
                        if let Some(e) = vars.get(k) {
                            *v = Value::String(e);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
