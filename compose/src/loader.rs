//! Loading a project, in compose-go's order: the project name first (so
//! that `${COMPOSE_PROJECT_NAME}` interpolates), then each file and each of
//! its documents: tags taken out, interpolation, `extends`, paths, then
//! `include`, the merge over the files before, unicity and schema
//! validation. Then the long syntax, profiles, the environment of each
//! service, normalisation and the consistency checks.

use crate::canonical::canonicalize;
use crate::consistency;
use crate::environment::resolve_environments;
use crate::extends::apply_extends;
use crate::include::apply_include;
use crate::interpolate::{interpolate_tree, substitute};
use crate::merge::{merge, unicity};
use crate::normalize::normalize;
use crate::paths;
use crate::schema;
use crate::tags::Tags;
use crate::yaml::{self, Position};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `-f` file: its name and, when given (stdin, a test), its text.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub filename: String,
    pub content: Option<String>,
}

/// What to load: the project directory, the files, the environment
/// interpolation sees.
#[derive(Debug, Clone, Default)]
pub struct ConfigDetails {
    pub working_dir: Option<PathBuf>,
    pub config_files: Vec<ConfigFile>,
    pub environment: BTreeMap<String, String>,
}

/// The loader's switches; `Options::default()` is what `up` uses.
#[derive(Debug, Clone)]
pub struct Options {
    pub skip_normalization: bool,
    pub skip_consistency_check: bool,
    pub resolve_paths: bool,
    pub skip_validation: bool,
    pub skip_interpolation: bool,
    /// The name the caller gives, and whether it beats `name:` (`-p`).
    pub project_name: Option<String>,
    pub project_name_imperative: bool,
    pub profiles: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            skip_normalization: false,
            skip_consistency_check: false,
            resolve_paths: true,
            skip_validation: false,
            skip_interpolation: false,
            project_name: None,
            project_name_imperative: false,
            profiles: Vec::new(),
        }
    }
}

/// A loaded project: its name, the model in long syntax, the environment
/// it was loaded with.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub model: Value,
    pub environment: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    pub config_files: Vec<String>,
    /// Services left out by profiles.
    pub disabled: Vec<String>,
}

/// Why a project cannot be loaded: the message, and where when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LoadError {
    pub message: String,
    pub file: Option<String>,
    pub position: Option<Position>,
}

impl LoadError {
    pub fn new(message: impl Into<String>) -> LoadError {
        LoadError {
            message: message.into(),
            file: None,
            position: None,
        }
    }

    pub fn in_file(
        file: &str,
        message: impl Into<String>,
        position: Option<Position>,
    ) -> LoadError {
        LoadError {
            message: message.into(),
            file: Some(file.to_string()),
            position,
        }
    }

    fn describe(&self) -> String {
        match (&self.file, self.position) {
            (Some(f), Some(p)) => format!("{f}:{}:{}: {}", p.line, p.column, self.message),
            (Some(f), None) if !self.message.contains(f.as_str()) => {
                format!("{f}: {}", self.message)
            }
            _ => self.message.clone(),
        }
    }
}

/// The text of a config file.
pub(crate) fn read_file(file: &ConfigFile) -> Result<String, LoadError> {
    match &file.content {
        Some(c) => Ok(c.clone()),
        None => std::fs::read_to_string(&file.filename)
            .map_err(|e| LoadError::new(format!("cannot read {}: {e}", file.filename))),
    }
}

/// The documents of one file, each with its tags taken out.
pub(crate) fn documents(
    name: &str,
    text: &str,
) -> Result<Vec<(Value, Tags, yaml::Document)>, LoadError> {
    let docs =
        yaml::parse(text).map_err(|e| LoadError::in_file(name, e.message.clone(), e.position))?;
    let mut out = Vec::new();
    for mut d in docs {
        let mut tree = std::mem::take(&mut d.tree);
        let tags = Tags::take(&mut tree);
        if tree.is_null() {
            continue;
        }
        if !tree.is_object() {
            return Err(LoadError::in_file(
                name,
                "Top-level object must be a mapping",
                None,
            ));
        }
        out.push((tree, tags, d));
    }
    Ok(out)
}

/// The project's name: the caller's when imperative, else the last
/// `name:` of the files, else the caller's fallback.
fn project_name(details: &ConfigDetails, opts: &Options) -> Result<String, LoadError> {
    let mut name = opts.project_name.clone().unwrap_or_default();
    if !opts.project_name_imperative {
        let mut from_files = None;
        for f in &details.config_files {
            let text = read_file(f)?;
            let docs = documents(&f.filename, &text)?;
            if docs.is_empty() && details.config_files.len() == 1 {
                return Err(LoadError::new("empty compose file"));
            }
            for (tree, _, _) in docs {
                if let Some(n) = tree.get("name") {
                    let Some(s) = n.as_str() else {
                        return Err(LoadError::new(format!(
                            "validating {}: name must be a string",
                            f.filename
                        )));
                    };
                    from_files = Some(s.to_string());
                }
            }
        }
        if let Some(n) = from_files {
            let n = if opts.skip_interpolation {
                n
            } else {
                substitute(&n, &details.environment).map_err(|e| LoadError::new(e.to_string()))?
            };
            if !n.is_empty() {
                name = n;
            }
        }
    }
    if name.is_empty() {
        return Err(LoadError::new("project name must not be empty"));
    }
    if normalize_project_name(&name) != name {
        return Err(LoadError::new(invalid_project_name(&name)));
    }
    Ok(name)
}

pub fn invalid_project_name(name: &str) -> String {
    format!(
        "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    )
}

/// compose's normalisation of a project name: lowercase, `[a-z0-9_-]`
/// only, no leading `_` or `-`.
pub fn normalize_project_name(name: &str) -> String {
    let lower: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

/// What a set of files merge to, before the long syntax: the raw model
/// (`config --no-normalize` and includes load this).
pub(crate) fn load_model(
    files: &[ConfigFile],
    working_dir: &Path,
    env: &BTreeMap<String, String>,
    opts: &Options,
    chain: &mut Vec<PathBuf>,
) -> Result<Value, LoadError> {
    let mut dict = Value::Object(Map::new());
    for file in files {
        let text = read_file(file)?;
        let docs = documents(&file.filename, &text)?;
        if docs.is_empty() && files.len() == 1 {
            return Err(LoadError::new("empty compose file"));
        }
        for (mut tree, tags, doc) in docs {
            if !opts.skip_interpolation {
                tree = interpolate_tree(&tree, env)
                    .map_err(|e| LoadError::in_file(&file.filename, e.to_string(), None))?;
            }
            apply_extends(&mut tree, working_dir, &file.filename, &tags, env, opts)?;
            if opts.resolve_paths {
                resolve_layer(&mut tree, working_dir);
            }
            let mut included =
                apply_include(&mut tree, working_dir, &file.filename, env, opts, chain)?;
            tags.clear(&mut dict);
            tags.clear(&mut included);
            dict = merge(dict, included);
            dict = merge(dict, tree);
            unicity(&mut dict);
            if !opts.skip_validation {
                schema::validate(&dict).map_err(|e| match doc.position(&e.path) {
                    Some(p) => LoadError::in_file(&file.filename, e.message, Some(p)),
                    None => LoadError::new(format!("validating {}: {e}", file.filename)),
                })?;
            }
        }
    }
    Ok(dict)
}

/// A file's relative paths made relative to (or under) the project
/// directory.
fn resolve_layer(tree: &mut Value, dir: &Path) {
    if let Some(Value::Object(services)) = tree.get_mut("services") {
        for s in services.values_mut() {
            if let Some(Value::Object(b)) = s.get_mut("build") {
                b.entry("context").or_insert(Value::String(".".into()));
            }
            paths::rebase_service(s, dir);
        }
    }
    paths::rebase_files(tree, dir);
}

/// Loads a project as `docker compose` does before any command.
pub fn load(details: &ConfigDetails, opts: &Options) -> Result<Project, LoadError> {
    // Each file read once: the name is looked for before the load, and a
    // pipe (`-f <(...)`, `/dev/stdin`) gives its text only once.
    let mut details = details.clone();
    for f in &mut details.config_files {
        if f.content.is_none() {
            f.content = Some(read_file(f)?);
        }
    }
    let details = &details;
    let working_dir = match &details.working_dir {
        Some(d) => d.clone(),
        // Paths then stay relative, as Go's `filepath.Join("", p)` leaves them.
        None => PathBuf::new(),
    };
    let name = project_name(details, opts)?;
    let mut env = details.environment.clone();
    env.insert("COMPOSE_PROJECT_NAME".into(), name.clone());
    let mut model = load_model(
        &details.config_files,
        &working_dir,
        &env,
        opts,
        &mut Vec::new(),
    )?;
    if let Some(m) = model.as_object_mut() {
        m.insert("name".into(), Value::String(name.clone()));
        m.shift_remove("include");
    }
    canonicalize(&mut model).map_err(|e| LoadError::new(e.to_string()))?;
    let disabled = apply_profiles(&mut model, &opts.profiles);
    resolve_environments(&mut model, &env)?;
    if !opts.skip_normalization {
        normalize(&mut model, &env);
    }
    if !opts.skip_consistency_check {
        consistency::check(&model)?;
    }
    Ok(Project {
        name,
        model,
        environment: env,
        working_dir,
        config_files: details
            .config_files
            .iter()
            .map(|f| f.filename.clone())
            .collect(),
        disabled,
    })
}

/// Takes out the services whose profiles are not active; their names.
fn apply_profiles(model: &mut Value, active: &[String]) -> Vec<String> {
    let Some(Value::Object(services)) = model.get_mut("services") else {
        return Vec::new();
    };
    let all = active.iter().any(|p| p == "*");
    let disabled: Vec<String> = services
        .iter()
        .filter(|(_, s)| {
            let profiles: Vec<&str> = s
                .get("profiles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            !profiles.is_empty() && !all && !profiles.iter().any(|p| active.iter().any(|a| a == p))
        })
        .map(|(n, _)| n.clone())
        .collect();
    for d in &disabled {
        services.shift_remove(d);
    }
    disabled
}

/// The raw merged model of the files (compose-go's `loadYamlModel`): no
/// long syntax, no normalisation.
pub fn load_model_only(details: &ConfigDetails, opts: &Options) -> Result<Value, LoadError> {
    let working_dir = match &details.working_dir {
        Some(d) => d.clone(),
        None => PathBuf::new(),
    };
    let mut env = details.environment.clone();
    if let Ok(name) = project_name(details, opts) {
        env.insert("COMPOSE_PROJECT_NAME".into(), name);
    }
    load_model(
        &details.config_files,
        &working_dir,
        &env,
        opts,
        &mut Vec::new(),
    )
}
