//! Credentials as docker keeps them: `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`) with `auths` (base64 `user:password`),
//! `credsStore` and `credHelpers`, the latter two through the
//! `docker-credential-<name>` protocol (`get`, `store`, `erase`).

use crate::error::{Error, IoContext, Result};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Docker Hub's key in `auths`, as docker writes it.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and secret for one registry. Debug hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// docker's config file.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

/// The key docker uses for a registry host in `auths` and for helpers.
pub fn auth_key(registry: &str) -> String {
    if registry == berth_store::reference::DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host/v1/`, `host`, `http://host` all name `host`.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            berth_store::reference::DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

impl DockerConfig {
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
            return PathBuf::from(d).join("config.json");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker/config.json")
    }

    pub fn at(path: &Path) -> DockerConfig {
        DockerConfig {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Map<String, Value>> {
        match std::fs::read(&self.path) {
            Ok(data) if data.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(data) => match serde_json::from_slice(&data) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) | Err(_) => Err(Error::Config(format!(
                    "invalid docker config file {}: expected a JSON object",
                    self.path.display()
                ))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(e).ctx(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn write(&self, config: &Map<String, Value>) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
        let data = serde_json::to_vec_pretty(config)
            .map_err(|e| Error::Config(format!("cannot encode docker config: {e}")))?;
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .ctx(|| format!("cannot write {}", tmp.display()))?;
            f.write_all(&data)
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.sync_all())
                .ctx(|| format!("cannot write {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &self.path).ctx(|| format!("cannot replace {}", self.path.display()))
    }

    /// The helper that holds `registry`'s credentials, if any.
    fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
        if let Some(Value::Object(h)) = config.get("credHelpers") {
            for (k, v) in h {
                if normalise_key(k) == registry {
                    return v.as_str().map(String::from);
                }
            }
        }
        config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    }

    /// The credentials stored for `registry` (a host such as `docker.io`).
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, registry) {
            return helper_get(&helper, &auth_key(registry));
        }
        let Some(Value::Object(auths)) = config.get("auths") else {
            return Ok(None);
        };
        for (k, v) in auths {
            if normalise_key(k) != registry {
                continue;
            }
            if let Some(a) = v.get("auth").and_then(Value::as_str) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .map_err(|_| {
                        Error::Config(format!(
                            "invalid auth entry for {k} in {}",
                            self.path.display()
                        ))
                    })?;
                let text = String::from_utf8_lossy(&raw);
                if let Some((u, p)) = text.split_once(':') {
                    return Ok(Some(Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }));
                }
            }
            if let (Some(u), Some(p)) = (
                v.get("username").and_then(Value::as_str),
                v.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `registry`, in its helper when one is set.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let mut config = self.read()?;
        let key = auth_key(registry);
        if let Some(helper) = Self::helper_for(&config, registry) {
            helper_call(
                &helper,
                "store",
                &json!({"ServerURL": key, "Username": creds.username, "Secret": creds.password})
                    .to_string(),
            )?;
            // As docker: the auths entry stays, empty, so the registry is listed.
            let auths = config
                .entry("auths")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(a) = auths {
                a.insert(key, json!({}));
            }
            return self.write(&config);
        }
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(a) = auths else {
            return Err(Error::Config(format!(
                "invalid docker config file {}: auths is not an object",
                self.path.display()
            )));
        };
        a.retain(|k, _| normalise_key(k) != registry);
        a.insert(key, json!({ "auth": encoded }));
        self.write(&config)
    }

    /// Removes `registry`'s credentials. Returns false when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut config = self.read()?;
        let mut found = false;
        if let Some(helper) = Self::helper_for(&config, registry) {
            found = helper_call(&helper, "erase", &auth_key(registry)).is_ok();
        }
        if let Some(Value::Object(a)) = config.get_mut("auths") {
            let before = a.len();
            a.retain(|k, _| normalise_key(k) != registry);
            found |= a.len() != before;
        }
        if found {
            self.write(&config)?;
        }
        Ok(found)
    }
}

fn helper_call(helper: &str, verb: &str, input: &str) -> Result<String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("cannot run credential helper {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .ctx(|| format!("cannot talk to credential helper {program}"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("credential helper {program} failed"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        // Helpers print their reason on stdout (e.g. "credentials not found in native keychain").
        let why = if stdout.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            stdout
        };
        return Err(Error::Auth(format!(
            "credential helper {program} {verb}: {why}"
        )));
    }
    Ok(stdout)
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>> {
    match helper_call(helper, "get", key) {
        Ok(out) => {
            let v: Value = serde_json::from_str(&out).map_err(|_| {
                Error::Auth(format!(
                    "credential helper docker-credential-{helper} gave an invalid answer"
                ))
            })?;
            let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
            let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
            if secret.is_empty() {
                return Ok(None);
            }
            Ok(Some(Credentials {
                username: user.to_string(),
                password: secret.to_string(),
            }))
        }
        Err(Error::Auth(msg)) if msg.contains("not found") => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_reads_and_erases_like_docker() {
        let dir = std::env::temp_dir().join(format!("berth-creds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = DockerConfig::at(&dir.join("config.json"));
        assert_eq!(cfg.get("docker.io").unwrap(), None);
        let c = Credentials {
            username: "me".into(),
            password: "pa:ss".into(),
        };
        cfg.store("docker.io", &c).unwrap();
        cfg.store("127.0.0.1:5000", &c).unwrap();
        let text = std::fs::read_to_string(cfg.path()).unwrap();
        assert!(text.contains(DOCKER_HUB_AUTH_KEY), "{text}");
        assert!(text.contains(&base64::engine::general_purpose::STANDARD.encode("me:pa:ss")));
        assert_eq!(cfg.get("docker.io").unwrap(), Some(c.clone()));
        assert_eq!(cfg.get("127.0.0.1:5000").unwrap(), Some(c));
        assert!(cfg.erase("docker.io").unwrap());
        assert!(!cfg.erase("docker.io").unwrap());
        assert_eq!(cfg.get("docker.io").unwrap(), None);
        assert!(format!("{:?}", cfg.get("127.0.0.1:5000").unwrap()).contains("***"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
