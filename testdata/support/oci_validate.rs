//! The reusable conformance check for what berth writes: OCI JSON schemas
//! (draft 4, formats on, served from `shared/conformance/oci-image-spec`)
//! plus the checks the schemas miss, and a whole-layout check.
//!
//! Included by test crates with `#[path = ".../testdata/support/oci_validate.rs"]`.
#![allow(dead_code)]

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

pub fn conformance() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

struct LocalSchemas(PathBuf);

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let last = uri
            .path()
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let file = match last.as_str() {
            "config" => "config-schema.json".to_string(),
            "descriptor" => "content-descriptor.json".to_string(),
            "index" => "image-index-schema.json".to_string(),
            "layout" => "image-layout-schema.json".to_string(),
            "manifest" => "image-manifest-schema.json".to_string(),
            "mediaType" => "defs-descriptor.json".to_string(),
            other => other.to_string(),
        };
        let data = std::fs::read(self.0.join(&file))?;
        Ok(serde_json::from_slice(&data)?)
    }
}

pub struct OciSchemas {
    dir: PathBuf,
}

impl OciSchemas {
    pub fn new() -> Self {
        OciSchemas {
            dir: conformance().join("oci-image-spec/schema"),
        }
    }

    fn validator(&self, schema_file: &str) -> Validator {
        let schema: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join(schema_file)).expect("schema file"),
        )
        .expect("schema JSON");
        jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_retriever(LocalSchemas(self.dir.clone()))
            .build(&schema)
            .expect("schema compiles")
    }

    /// Errors of `doc` against `schema_file`, plus the extra checks of the
    /// conformance README (digest encodings, base64 data, Env entries).
    pub fn errors(&self, schema_file: &str, doc: &Value) -> Vec<String> {
        let v = self.validator(schema_file);
        let mut out: Vec<String> = v
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        extra_checks(doc, &mut out);
        out
    }
}

fn extra_checks(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(d)) = map.get("digest") {
                if let Some((alg, enc)) = d.split_once(':') {
                    let want = match alg {
                        "sha256" => Some(64),
                        "sha384" => Some(96),
                        "sha512" => Some(128),
                        _ => None,
                    };
                    if let Some(n) = want {
                        if enc.len() != n
                            || !enc
                                .bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                        {
                            out.push(format!("bad {alg} digest encoding: {d}"));
                        }
                    }
                } else {
                    out.push(format!("digest without algorithm: {d}"));
                }
            }
            if let Some(Value::String(data)) = map.get("data") {
                let ok = data.len() % 4 == 0
                    && data
                        .trim_end_matches('=')
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                    && data.len() - data.trim_end_matches('=').len() <= 2;
                if !ok {
                    out.push("descriptor data is not padded standard base64".into());
                }
            }
            if let Some(Value::Array(env)) = map.get("Env") {
                for e in env {
                    let s = e.as_str().unwrap_or_default();
                    if s.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                        out.push(format!("Env entry {s:?} is not NAME=value"));
                    }
                }
            }
            for child in map.values() {
                extra_checks(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| extra_checks(i, out)),
        _ => {}
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Checks a whole OCI layout folder: `oci-layout`, `index.json`, every
/// manifest and config it reaches (schemas), every blob's digest and size,
/// and that each config lists one diff ID per manifest layer.
pub fn check_layout(root: &Path) -> Vec<String> {
    let schemas = OciSchemas::new();
    let mut problems = Vec::new();
    let read_json = |p: &Path| -> Result<(Vec<u8>, Value), String> {
        let data = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v = serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok((data, v))
    };
    let blob = |digest: &str| {
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    match read_json(&root.join("oci-layout")) {
        Ok((_, v)) => problems.extend(
            schemas
                .errors("image-layout-schema.json", &v)
                .into_iter()
                .map(|e| format!("oci-layout: {e}")),
        ),
        Err(e) => problems.push(e),
    }
    let index = match read_json(&root.join("index.json")) {
        Ok((_, v)) => v,
        Err(e) => {
            problems.push(e);
            return problems;
        }
    };
    problems.extend(
        schemas
            .errors("image-index-schema.json", &index)
            .into_iter()
            .map(|e| format!("index.json: {e}")),
    );
    for m in index["manifests"].as_array().into_iter().flatten() {
        let digest = m["digest"].as_str().unwrap_or_default();
        let (data, manifest) = match read_json(&blob(digest)) {
            Ok(x) => x,
            Err(e) => {
                problems.push(format!("manifest {digest}: {e}"));
                continue;
            }
        };
        if format!("sha256:{}", sha256_hex(&data)) != digest
            || m["size"].as_u64() != Some(data.len() as u64)
        {
            problems.push(format!("manifest {digest}: digest or size does not match"));
        }
        problems.extend(
            schemas
                .errors("image-manifest-schema.json", &manifest)
                .into_iter()
                .map(|e| format!("manifest {digest}: {e}")),
        );
        let cdigest = manifest["config"]["digest"].as_str().unwrap_or_default();
        match read_json(&blob(cdigest)) {
            Ok((cdata, config)) => {
                if format!("sha256:{}", sha256_hex(&cdata)) != cdigest {
                    problems.push(format!("config {cdigest}: digest does not match"));
                }
                problems.extend(
                    schemas
                        .errors("config-schema.json", &config)
                        .into_iter()
                        .map(|e| format!("config {cdigest}: {e}")),
                );
                let diff_ids = config["rootfs"]["diff_ids"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0);
                let layers = manifest["layers"].as_array().map(|a| a.len()).unwrap_or(0);
                if diff_ids != layers {
                    problems.push(format!(
                        "config {cdigest}: {diff_ids} diff IDs for {layers} layers"
                    ));
                }
            }
            Err(e) => problems.push(format!("config {cdigest}: {e}")),
        }
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let ld = l["digest"].as_str().unwrap_or_default();
            match std::fs::read(blob(ld)) {
                Ok(data) => {
                    if format!("sha256:{}", sha256_hex(&data)) != ld
                        || l["size"].as_u64() != Some(data.len() as u64)
                    {
                        problems.push(format!("layer {ld}: digest or size does not match"));
                    }
                }
                Err(e) => problems.push(format!("layer {ld}: {e}")),
            }
        }
    }
    problems
}
