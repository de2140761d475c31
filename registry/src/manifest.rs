//! Manifest media types (OCI and Docker schema2) and picking a platform out
//! of an index or manifest list.

use crate::error::{Error, Result};
use serde_json::Value;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header of a manifest request: every type berth reads.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Platform {
        let (os, architecture, variant) = berth_store::image::host_platform();
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(String::from),
        }
    }

    /// `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::Config(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ))
        };
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let architecture = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: architecture.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    fn matches(&self, p: &Value) -> bool {
        let os = p.get("os").and_then(Value::as_str).unwrap_or("");
        let arch = p.get("architecture").and_then(Value::as_str).unwrap_or("");
        let variant = p.get("variant").and_then(Value::as_str);
        if os != self.os || arch != self.architecture {
            return false;
        }
        match (&self.variant, variant) {
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
            (None, _) => true,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The media type of a manifest document: its `mediaType`, else the
/// `Content-Type` the registry sent, else guessed from its shape.
pub fn media_type(body: &Value, content_type: Option<&str>) -> String {
    if let Some(m) = body.get("mediaType").and_then(Value::as_str) {
        return m.to_string();
    }
    if let Some(ct) = content_type {
        let ct = ct.split(';').next().unwrap_or(ct).trim();
        if ct != "application/json" && !ct.is_empty() {
            return ct.to_string();
        }
    }
    if body.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The digest of the entry of an index that runs on `platform`.
pub fn pick(index: &Value, platform: &Platform, name: &str) -> Result<String> {
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Protocol(format!("{name}: the index lists no manifests")))?;
    entries
        .iter()
        .filter(|e| e.get("platform").is_some_and(|p| platform.matches(p)))
        // Attestation manifests (BuildKit's "unknown/unknown") never match.
        .find_map(|e| e.get("digest").and_then(Value::as_str).map(String::from))
        .ok_or_else(|| {
            Error::Protocol(format!(
                "no matching manifest for {platform} in the manifest list entries of {name}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_platform_out_of_an_index() {
        let index: Value = serde_json::json!({
            "mediaType": DOCKER_LIST,
            "manifests": [
                {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": "sha256:c", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:d", "platform": {"os": "unknown", "architecture": "unknown"}},
            ]
        });
        let p = |s| Platform::parse(s).unwrap();
        assert_eq!(pick(&index, &p("linux/amd64"), "x").unwrap(), "sha256:c");
        assert_eq!(pick(&index, &p("linux/arm64"), "x").unwrap(), "sha256:b");
        assert_eq!(pick(&index, &p("linux/arm/v7"), "x").unwrap(), "sha256:a");
        let e = pick(&index, &p("linux/s390x"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no matching manifest for linux/s390x"), "{e}");
        assert!(Platform::parse("linux").is_err());
        assert_eq!(media_type(&index, None), DOCKER_LIST);
    }
}
