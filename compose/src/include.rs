//! `include`: other compose files loaded as projects of their own (their
//! own directory, their own `env_file`s under the project's environment),
//! whose resources join the including file's. A file included twice the
//! same way is fine; two different definitions of one resource are not.

use crate::environment::bare_keys_from;
use crate::interpolate::Variables;
use crate::loader::{load_model, ConfigFile, LoadError, Options};
use crate::{dotenv, paths};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Loads what `tree` (a document of `file`) includes and takes `include`
/// out of it; the included resources, merged.
pub fn apply_include(
    tree: &mut Value,
    dir: &Path,
    file: &str,
    env: &BTreeMap<String, String>,
    opts: &Options,
    chain: &mut Vec<PathBuf>,
) -> Result<Value, LoadError> {
    let Some(entries) = tree.as_object_mut().and_then(|m| m.shift_remove("include")) else {
        return Ok(Value::Object(Map::new()));
    };
    let me = paths::clean(&std::path::absolute(file).unwrap_or_else(|_| PathBuf::from(file)));
    if !chain.contains(&me) {
        chain.push(me.clone());
    }
    let entries = match entries {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Map::new();
    for entry in entries {
        let (files, env_files, project_dir) = match &entry {
            Value::String(s) => (vec![s.clone()], Vec::new(), None),
            Value::Object(m) => (
                strings(m.get("path")),
                strings(m.get("env_file")),
                m.get("project_directory")
                    .and_then(Value::as_str)
                    .map(String::from),
            ),
            _ => {
                return Err(LoadError::in_file(
                    file,
                    "include entries are paths or mappings",
                    None,
                ))
            }
        };
        let Some(first) = files.first() else {
            return Err(LoadError::in_file(
                file,
                "include: an entry has no path",
                None,
            ));
        };
        let files: Vec<PathBuf> = files.iter().map(|f| paths::join(dir, f)).collect();
        let project_dir = match project_dir {
            Some(p) => paths::join(dir, &p),
            None => paths::dir_of(&paths::join(dir, first)),
        };
        for f in &files {
            let abs = paths::clean(&std::path::absolute(f).unwrap_or_else(|_| f.clone()));
            if chain.contains(&abs) {
                let mut names: Vec<String> =
                    chain.iter().map(|p| p.display().to_string()).collect();
                names.push(abs.display().to_string());
                return Err(LoadError::new(format!(
                    "include cycle detected:\n{}",
                    names.join("\n include ")
                )));
            }
        }
        // The included project's environment: its env files, under the
        // including project's.
        let mut env_paths: Vec<PathBuf> = env_files.iter().map(|f| paths::join(dir, f)).collect();
        if env_paths.is_empty() {
            let dotenv = project_dir.join(".env");
            if dotenv.is_file() {
                env_paths.push(dotenv);
            }
        }
        let refs: Vec<&Path> = env_paths.iter().map(PathBuf::as_path).collect();
        let mut sub_env = dotenv::env_from_files(env, &refs)
            .map_err(|e| LoadError::in_file(file, e.to_string(), None))?;
        for (k, v) in env {
            sub_env.insert(k.clone(), v.clone());
        }
        let configs: Vec<ConfigFile> = files
            .iter()
            .map(|f| ConfigFile {
                filename: f.to_string_lossy().into_owned(),
                content: None,
            })
            .collect();
        let sub_opts = Options {
            resolve_paths: true,
            ..opts.clone()
        };
        let depth = chain.len();
        for f in &files {
            chain.push(paths::clean(
                &std::path::absolute(f).unwrap_or_else(|_| f.clone()),
            ));
        }
        let loaded = load_model(&configs, &project_dir, &sub_env, &sub_opts, chain);
        chain.truncate(depth);
        let mut model = loaded?;
        bare_keys_from(&mut model, &sub_env as &dyn Variables);
        import(&mut out, model, file)?;
    }
    Ok(Value::Object(out))
}

/// The resources of `model` added to `into`.
fn import(into: &mut Map<String, Value>, model: Value, file: &str) -> Result<(), LoadError> {
    let Value::Object(m) = model else {
        return Ok(());
    };
    for (key, items) in m {
        let Value::Object(items) = items else {
            continue;
        };
        let section = into
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(section) = section.as_object_mut() else {
            continue;
        };
        for (name, item) in items {
            match section.get(&name) {
                Some(existing) if *existing != item => {
                    return Err(LoadError::in_file(
                        file,
                        format!("imported compose file defines conflicting {key} {name:?}"),
                        None,
                    ))
                }
                _ => {
                    section.insert(name, item);
                }
            }
        }
    }
    Ok(())
}
