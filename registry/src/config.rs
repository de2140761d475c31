//! berth's registry settings, with the names of docker's `daemon.json`:
//! `registry-mirrors` and `insecure-registries`, read from berth's config
//! file (`$BERTH_CONFIG`, else `/etc/berth/config.json` as root and
//! `~/.config/berth/config.json` otherwise), plus `BERTH_REGISTRY_MIRRORS`
//! (comma-separated) and `--insecure-registry`.
//!
//! CA certificates for a registry are read as docker reads them:
//! `certs.d/<host[:port]>/*.crt` beside berth's config file, and
//! `/etc/docker/certs.d/<host[:port]>/*.crt`.

use crate::error::{Error, IoContext, Result};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Mirrors tried, in order, before Docker Hub for `docker.io` pulls.
    pub mirrors: Vec<url::Url>,
    /// Registries (`host[:port]`, or a CIDR such as `10.0.0.0/8`) that may
    /// be reached over plain HTTP or with an unverified certificate.
    pub insecure: Vec<String>,
    /// Folders holding `<host[:port]>/*.crt` CA files.
    pub certs_dirs: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default, rename = "registry-mirrors")]
    registry_mirrors: Vec<String>,
    #[serde(default, rename = "insecure-registries")]
    insecure_registries: Vec<String>,
}

impl RegistryConfig {
    /// The default place of berth's config file.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("BERTH_CONFIG") {
            return PathBuf::from(p);
        }
        if is_root() {
            return PathBuf::from("/etc/berth/config.json");
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("/etc"));
        base.join("berth/config.json")
    }

    /// Reads the config file (a missing file is an empty config), then the
    /// environment, then the extra insecure registries given on the command line.
    pub fn load(path: &Path, extra_insecure: &[String]) -> Result<RegistryConfig> {
        let file: ConfigFile = match std::fs::read(path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| {
                Error::Config(format!("invalid config file {}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => return Err(e).ctx(|| format!("cannot read {}", path.display())),
        };
        let mut mirrors = file.registry_mirrors;
        if let Ok(env) = std::env::var("BERTH_REGISTRY_MIRRORS") {
            mirrors = env
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        let mirrors = mirrors
            .iter()
            .map(|m| parse_mirror(m))
            .collect::<Result<Vec<_>>>()?;
        let mut insecure = file.insecure_registries;
        insecure.extend(extra_insecure.iter().cloned());
        let mut certs_dirs = Vec::new();
        if let Some(dir) = path.parent() {
            certs_dirs.push(dir.join("certs.d"));
        }
        certs_dirs.push(PathBuf::from("/etc/docker/certs.d"));
        Ok(RegistryConfig {
            mirrors,
            insecure,
            certs_dirs,
        })
    }

    /// Whether `host` (`host[:port]`) may be reached without verified TLS:
    /// loopback always, as docker, and whatever the config lists.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        if name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            entry == host || entry == name || in_cidr(entry, name)
        })
    }

    /// PEM CA certificates configured for `host`.
    pub fn ca_certs(&self, host: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for dir in &self.certs_dirs {
            let Ok(rd) = std::fs::read_dir(dir.join(host)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if f.extension().is_some_and(|e| e == "crt") {
                    if let Ok(pem) = std::fs::read(&f) {
                        out.push(pem);
                    }
                }
            }
        }
        out
    }
}

/// `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn parse_mirror(m: &str) -> Result<url::Url> {
    let with_scheme = if m.contains("://") {
        m.to_string()
    } else {
        format!("https://{m}")
    };
    let u = url::Url::parse(&with_scheme)
        .map_err(|e| Error::Config(format!("invalid registry mirror {m:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::Config(format!(
            "invalid registry mirror {m:?}: expected http(s)://host[:port]"
        )));
    }
    Ok(u)
}

/// `host:port` → `host`; `[::1]:5000` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn in_cidr(cidr: &str, name: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits), Ok(ip)) = (
        net.parse::<IpAddr>(),
        bits.parse::<u32>(),
        name.parse::<IpAddr>(),
    ) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let c = RegistryConfig {
            insecure: vec!["reg.internal:5000".into(), "10.1.0.0/16".into()],
            ..Default::default()
        };
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("localhost:8080"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("reg.internal:5000"));
        assert!(c.is_insecure("10.1.2.3:443"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(!c.is_insecure("docker.io"));
        assert!(!c.is_insecure("reg.internal:5001"));
    }
}
