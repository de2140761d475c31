//! The entry point: settings plus one [`Host`] per registry, and the names
//! docker gives them (`docker.io` is served by `registry-1.docker.io`, and
//! mirrors come first for it).

use crate::config::RegistryConfig;
use crate::credentials::DockerConfig;
use crate::error::{Error, Result};
use crate::transport::{Host, Repo, RetryPolicy};
use berth_store::reference::DOCKER_HUB;
use berth_store::ImageRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use url::Url;

/// Docker Hub's registry API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

pub struct Client {
    config: RegistryConfig,
    creds: DockerConfig,
    retry: RetryPolicy,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl Client {
    pub fn new(config: RegistryConfig, creds: DockerConfig) -> Client {
        Client {
            config,
            creds,
            retry: RetryPolicy::default(),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn credentials(&self) -> &DockerConfig {
        &self.creds
    }

    fn host_at(&self, name: &str, base: Url) -> Result<Arc<Host>> {
        let key = format!("{name} {base}");
        let mut hosts = match self.hosts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(h) = hosts.get(&key) {
            return Ok(h.clone());
        }
        let h = Arc::new(Host::new(
            name,
            base,
            &self.config,
            self.creds.clone(),
            self.retry,
        )?);
        hosts.insert(key, h.clone());
        Ok(h)
    }

    /// The registry `name` (`docker.io`, `host:port`) itself, without mirrors.
    pub fn host(&self, name: &str) -> Result<Arc<Host>> {
        let api = if name == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            name
        };
        // Loopback and listed insecure registries without a CA of their own
        // speak plain HTTP; everything else verified HTTPS.
        let plain = self.config.is_insecure(api) && self.config.ca_certs(api).is_empty();
        let scheme = if plain { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api}"))
            .map_err(|e| Error::Config(format!("invalid registry host {name:?}: {e}")))?;
        self.host_at(name, base)
    }

    /// Where `r` may be pulled from, in order: for `docker.io`, each mirror
    /// and then Docker Hub; else the registry itself.
    pub fn pull_sources(&self, r: &ImageRef) -> Result<Vec<Repo>> {
        let mut out = Vec::new();
        if r.registry == DOCKER_HUB {
            for m in &self.config.mirrors {
                let authority = match (m.host_str(), m.port()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (Some(h), None) => h.to_string(),
                    _ => continue,
                };
                let mut base = m.clone();
                base.set_path("/");
                out.push(Repo {
                    host: self.host_at(&authority, base)?,
                    path: r.repository.clone(),
                });
            }
        }
        out.push(self.repo(r)?);
        Ok(out)
    }

    /// `r`'s repository on its own registry (where pushes go).
    pub fn repo(&self, r: &ImageRef) -> Result<Repo> {
        Ok(Repo {
            host: self.host(&r.registry)?,
            path: r.repository.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(mirrors: &[&str]) -> Client {
        let config = RegistryConfig {
            mirrors: mirrors.iter().map(|m| Url::parse(m).unwrap()).collect(),
            ..Default::default()
        };
        Client::new(
            config,
            DockerConfig::at(std::path::Path::new("/nonexistent/config.json")),
        )
    }

    #[test]
    fn docker_hub_names_go_to_mirrors_then_registry_1() {
        let c = client(&["http://127.0.0.1:5000", "https://mirror.example.com/"]);
        let r: ImageRef = "busybox".parse().unwrap();
        let sources = c.pull_sources(&r).unwrap();
        let urls: Vec<String> = sources
            .iter()
            .map(|s| s.url("manifests/latest").unwrap().to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000/v2/library/busybox/manifests/latest",
                "https://mirror.example.com/v2/library/busybox/manifests/latest",
                "https://registry-1.docker.io/v2/library/busybox/manifests/latest",
            ]
        );
        // Credentials for Docker Hub are docker's `docker.io` entry.
        assert_eq!(sources[2].host.name, "docker.io");
        // Other registries: no mirrors; loopback speaks plain HTTP.
        let r: ImageRef = "127.0.0.1:5001/team/app:1".parse().unwrap();
        let s = c.pull_sources(&r).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].url("blobs/x").unwrap().as_str(),
            "http://127.0.0.1:5001/v2/team/app/blobs/x"
        );
        let r: ImageRef = "ghcr.io/o/app".parse().unwrap();
        assert_eq!(c.repo(&r).unwrap().host.base.as_str(), "https://ghcr.io/");
    }
}
