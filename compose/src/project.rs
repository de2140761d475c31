//! What docker compose's global flags make of a project before it loads
//! (compose-go's `cli.ProjectOptions`): `-p`, `--project-directory`, `-f`
//! (or `COMPOSE_FILE`, or the default file names and their override), the
//! caller's environment, `--env-file` (or the project's `.env`), and
//! `--profile` (or `COMPOSE_PROFILES`).

use crate::dotenv;
use crate::loader::{
    invalid_project_name, load, normalize_project_name, ConfigDetails, ConfigFile, LoadError,
    Options, Project,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The names docker compose looks for, in its order.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

#[derive(Debug, Clone, Default)]
pub struct ProjectOptions {
    pub name: Option<String>,
    pub working_dir: Option<PathBuf>,
    pub config_paths: Vec<String>,
    /// Text for a `-` path (stdin), read by the caller.
    pub stdin: Option<String>,
    pub environment: BTreeMap<String, String>,
    /// `Some(vec![])`: the project's `.env`, if there is one.
    pub env_files: Option<Vec<PathBuf>>,
    pub profiles: Vec<String>,
    pub discard_env_file: bool,
    pub loader: Options,
}

impl ProjectOptions {
    /// `-p NAME`: refused at once unless it is a normalised name.
    pub fn with_name(&mut self, name: &str) -> Result<(), LoadError> {
        if name.is_empty() {
            return Ok(());
        }
        if normalize_project_name(name) != name {
            return Err(LoadError::new(invalid_project_name(name)));
        }
        self.name = Some(name.to_string());
        Ok(())
    }

    /// Variables of the caller (`KEY=VALUE`), over what is there.
    pub fn with_env<'a>(&mut self, vars: impl IntoIterator<Item = &'a str>) {
        for v in vars {
            match v.split_once('=') {
                Some((k, val)) => self.environment.insert(k.into(), val.into()),
                None => self.environment.insert(v.into(), String::new()),
            };
        }
    }

    /// The directory the project's relative paths are under: the one
    /// given, else the first file's, else the current one.
    pub fn project_dir(&self) -> PathBuf {
        if let Some(d) = &self.working_dir {
            return d.clone();
        }
        match self.config_paths.first().filter(|p| p.as_str() != "-") {
            Some(f) => crate::paths::dir_of(&absolute(Path::new(f))),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// `--env-file` (or the project's `.env`) into the environment; what
    /// the caller set wins, and interpolation in the files sees it.
    pub fn with_dot_env(&mut self) -> Result<(), LoadError> {
        let files = match &self.env_files {
            None => return Ok(()),
            Some(f) if f.is_empty() => {
                let dotenv = self.project_dir().join(".env");
                if dotenv.is_file() {
                    vec![dotenv]
                } else {
                    Vec::new()
                }
            }
            Some(f) => f.clone(),
        };
        for f in &files {
            if !f.exists() {
                return Err(LoadError::new(format!(
                    "couldn't find env file: {}",
                    absolute(f).display()
                )));
            }
            if f.is_dir() {
                return Err(LoadError::new(format!(
                    "{} is a directory, not an env file",
                    f.display()
                )));
            }
        }
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let vars = dotenv::env_from_files(&self.environment, &refs)
            .map_err(|e| LoadError::new(e.to_string()))?;
        for (k, v) in vars {
            self.environment.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// The files: `-f`, else `COMPOSE_FILE`, else the first default name
    /// in the project directory or a parent, with its override.
    pub fn with_config_file_env(&mut self) -> Result<(), LoadError> {
        if !self.config_paths.is_empty() {
            return Ok(());
        }
        if let Some(files) = self
            .environment
            .get("COMPOSE_FILE")
            .filter(|f| !f.is_empty())
        {
            let sep = self
                .environment
                .get("COMPOSE_PATH_SEPARATOR")
                .cloned()
                .unwrap_or_else(|| ":".into());
            let dir = self.project_dir();
            self.config_paths = files
                .split(sep.as_str())
                .map(|f| crate::paths::join(&dir, f).to_string_lossy().into_owned())
                .collect();
            return Ok(());
        }
        let start = self.project_dir();
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if let Some(found) = DEFAULT_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                let mut paths = vec![found.to_string_lossy().into_owned()];
                let stem = found
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let ext = found
                    .extension()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let over = d.join(format!("{stem}.override.{ext}"));
                if over.is_file() {
                    paths.push(over.to_string_lossy().into_owned());
                }
                if self.working_dir.is_none() {
                    self.working_dir = Some(d.to_path_buf());
                }
                self.config_paths = paths;
                return Ok(());
            }
            dir = d.parent();
        }
        Err(LoadError::new(
            "no configuration file provided: not found".to_string(),
        ))
    }

    /// `COMPOSE_PROFILES` when no `--profile` was given.
    pub fn with_profiles_env(&mut self) {
        if self.profiles.is_empty() {
            if let Some(p) = self.environment.get("COMPOSE_PROFILES") {
                self.profiles = p
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
            }
        }
    }

    /// The name and whether it beats `name:` in the files.
    fn name(&self) -> (String, bool) {
        if let Some(n) = &self.name {
            return (n.clone(), true);
        }
        if let Some(n) = self
            .environment
            .get("COMPOSE_PROJECT_NAME")
            .filter(|n| !n.is_empty())
        {
            return (n.clone(), true);
        }
        let dir = absolute(&self.project_dir());
        let base = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (normalize_project_name(&base), false)
    }

    /// Loads the project these options name.
    pub fn load(&self) -> Result<Project, LoadError> {
        let (name, imperative) = self.name();
        let working_dir = absolute(&self.project_dir());
        let config_files = self
            .config_paths
            .iter()
            .map(|p| ConfigFile {
                filename: p.clone(),
                content: (p == "-").then(|| self.stdin.clone().unwrap_or_default()),
            })
            .collect();
        let details = ConfigDetails {
            working_dir: Some(working_dir),
            config_files,
            environment: self.environment.clone(),
        };
        let opts = Options {
            project_name: Some(name),
            project_name_imperative: imperative,
            profiles: self.profiles.clone(),
            ..self.loader.clone()
        };
        let mut project = load(&details, &opts)?;
        if self.discard_env_file {
            if let Some(serde_json::Value::Object(services)) = project.model.get_mut("services") {
                for s in services.values_mut() {
                    if let Some(m) = s.as_object_mut() {
                        m.shift_remove("env_file");
                    }
                }
            }
        }
        Ok(project)
    }
}

fn absolute(p: &Path) -> PathBuf {
    crate::paths::clean(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}
