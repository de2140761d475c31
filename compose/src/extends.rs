//! `extends`: a service built over another one, of the same file or of
//! another file (whose relative paths are rebased onto the extending
//! file's directory). The extending file's `!reset`/`!override` tags apply
//! to the base.

use crate::interpolate::interpolate_tree;
use crate::loader::{documents, read_file, ConfigFile, LoadError, Options};
use crate::merge::merge_service;
use crate::paths;
use crate::tags::Tags;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One file's services, and what their `extends` are resolved against.
struct Source<'a> {
    services: Map<String, Value>,
    file: String,
    dir: &'a Path,
    tags: Tags,
}

/// Resolves every `extends` of the services of `tree`, a document of
/// `file`, whose relative references are under `dir`.
pub fn apply_extends(
    tree: &mut Value,
    dir: &Path,
    file: &str,
    tags: &Tags,
    env: &BTreeMap<String, String>,
    opts: &Options,
) -> Result<(), LoadError> {
    let Some(Value::Object(services)) = tree.get("services") else {
        return Ok(());
    };
    if !services.values().any(|s| s.get("extends").is_some()) {
        return Ok(());
    }
    let source = Source {
        services: services.clone(),
        file: file.to_string(),
        dir,
        tags: tags.clone(),
    };
    let names: Vec<String> = services.keys().cloned().collect();
    let mut resolved = Map::new();
    for name in names {
        let s = resolve(&source, &name, env, opts, &mut Vec::new())?;
        resolved.insert(name, s);
    }
    tree["services"] = Value::Object(resolved);
    Ok(())
}

fn resolve(
    source: &Source<'_>,
    name: &str,
    env: &BTreeMap<String, String>,
    opts: &Options,
    stack: &mut Vec<String>,
) -> Result<Value, LoadError> {
    let Some(service) = source.services.get(name) else {
        return Err(LoadError::new(format!(
            "cannot extend service {name:?} in {}: service not found",
            source.file
        )));
    };
    let Some(ext) = service.get("extends").cloned() else {
        return Ok(service.clone());
    };
    let (file, target) = match &ext {
        Value::String(s) => (None, s.clone()),
        Value::Object(m) => {
            let Some(t) = m.get("service").and_then(Value::as_str) else {
                return Err(LoadError::new(format!(
                    "extends.{name}.service is required"
                )));
            };
            (
                m.get("file").and_then(Value::as_str).map(String::from),
                t.to_string(),
            )
        }
        _ => {
            return Err(LoadError::new(format!(
                "extends.{name} must be a string or a mapping"
            )))
        }
    };
    let key = format!("{}#{target}", file.as_deref().unwrap_or(&source.file));
    if stack.contains(&key) {
        return Err(LoadError::new(format!(
            "Circular reference with extends: {} -> {key}",
            stack.join(" -> ")
        )));
    }
    stack.push(key);
    let mut base = match &file {
        None => resolve(source, &target, env, opts, stack)?,
        Some(f) => {
            let path = paths::join(source.dir, f);
            let other = ConfigFile {
                filename: path.to_string_lossy().into_owned(),
                content: None,
            };
            let text = read_file(&other)?;
            let mut found = None;
            for (mut tree, tags, _) in documents(&other.filename, &text)? {
                if !opts.skip_interpolation {
                    tree = interpolate_tree(&tree, env)
                        .map_err(|e| LoadError::in_file(&other.filename, e.to_string(), None))?;
                }
                if let Some(Value::Object(services)) = tree.get("services") {
                    if services.contains_key(&target) {
                        found = Some((services.clone(), tags));
                    }
                }
            }
            let Some((services, tags)) = found else {
                return Err(LoadError::new(format!(
                    "cannot extend service {target:?} in {}: service not found",
                    other.filename
                )));
            };
            let other_dir = paths::dir_of(&path);
            let inner = Source {
                services,
                file: other.filename.clone(),
                dir: &other_dir,
                tags,
            };
            let mut base = resolve(&inner, &target, env, opts, stack)?;
            // Its paths were under its own file's directory.
            paths::rebase_service(&mut base, &paths::dir_of(Path::new(f)));
            base
        }
    };
    stack.pop();
    if let Some(m) = base.as_object_mut() {
        m.shift_remove("extends");
    }
    // The extending file's tags, at the extending service's place.
    let mut placed = serde_json::json!({ "services": { name: base } });
    source.tags.clear(&mut placed);
    let base = placed["services"][name].take();
    let mut own = service.clone();
    if let Some(m) = own.as_object_mut() {
        m.shift_remove("extends");
    }
    Ok(merge_service(base, own, name))
}
