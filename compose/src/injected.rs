//! Secrets and configs that are not files (`environment:`, `content:`):
//! compose writes them into the container after it is created and before
//! it starts, as a tar copied to `/`, each with its mode and owner. File
//! based ones are bind-mounted instead (`service::container_request`).

use serde_json::Value;
use std::collections::BTreeMap;

/// One file to put into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFile {
    /// Absolute path in the container.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// Where a secret or config lands when the service names no absolute target.
pub fn target(kind: &str, source: &str, target: Option<&str>) -> String {
    let dir = if kind == "secrets" {
        "/run/secrets"
    } else {
        ""
    };
    match target {
        Some(t) if t.starts_with('/') => t.to_string(),
        Some(t) => format!("{dir}/{t}"),
        None => format!("{dir}/{source}"),
    }
}

fn id_of(v: Option<&Value>) -> Result<u64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("invalid id {n}")),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("invalid id {s:?}")),
        Some(other) => Err(format!("invalid id {other}")),
    }
}

/// The files service `name` gets from its non-file secrets and configs.
/// `environment` is the project's (the shell's and `.env`'s variables).
pub fn files(
    model: &Value,
    name: &str,
    service: &Value,
    environment: &BTreeMap<String, String>,
) -> Result<Vec<InjectedFile>, String> {
    let mut out = Vec::new();
    for kind in ["secrets", "configs"] {
        for item in service
            .get(kind)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(source) = item.get("source").and_then(Value::as_str) else {
                continue;
            };
            let def = model.get(kind).and_then(|d| d.get(source));
            let Some(def) = def else {
                return Err(format!(
                    "services.{name}.{kind}: undefined {kind} {source:?}"
                ));
            };
            let content = if def.get("file").is_some() {
                continue;
            } else if let Some(var) = def.get("environment").and_then(Value::as_str) {
                match environment.get(var) {
                    Some(v) => v.clone().into_bytes(),
                    None => {
                        return Err(format!(
                            "services.{name}.{kind}: {source} comes from the environment variable {var}, which is not set"
                        ))
                    }
                }
            } else if let Some(text) = def.get("content").and_then(Value::as_str) {
                text.as_bytes().to_vec()
            } else if def.get("external").and_then(Value::as_bool) == Some(true) {
                return Err(format!(
                    "services.{name}.{kind}: {source} is external, which only a swarm provides"
                ));
            } else {
                return Err(format!(
                    "services.{name}.{kind}: {source} has neither file, environment nor content"
                ));
            };
            let mode = match item.get("mode") {
                None | Some(Value::Null) => 0o444,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| format!("services.{name}.{kind}: invalid mode {n}"))?,
                Some(Value::String(s)) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                    .map_err(|_| format!("services.{name}.{kind}: invalid mode {s:?}"))?,
                Some(other) => return Err(format!("services.{name}.{kind}: invalid mode {other}")),
            };
            let uid = id_of(item.get("uid")).map_err(|e| format!("services.{name}.{kind}: {e}"))?;
            let gid = id_of(item.get("gid")).map_err(|e| format!("services.{name}.{kind}: {e}"))?;
            out.push(InjectedFile {
                path: target(kind, source, item.get("target").and_then(Value::as_str)),
                content,
                mode,
                uid,
                gid,
            });
        }
    }
    Ok(out)
}

/// The files as a tar to unpack at `/`, with the folders they need.
pub fn tar(files: &[InjectedFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for f in files {
        let rel = f.path.trim_start_matches('/');
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            prefix.push_str(part);
            prefix.push('/');
            if dirs.insert(prefix.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(now);
                b.append_data(&mut h, &prefix, std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode);
        h.set_uid(f.uid);
        h.set_gid(f.gid);
        h.set_size(f.content.len() as u64);
        h.set_mtime(now);
        b.append_data(&mut h, rel, f.content.as_slice())?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn environment_and_content_become_files_with_their_modes() {
        let model = json!({
            "secrets": {"tok": {"environment": "TOKEN"}, "f": {"file": "/x"}},
            "configs": {"c": {"content": "hi\n"}},
        });
        let service = json!({
            "secrets": [{"source": "tok"}, {"source": "f"}, {"source": "tok", "target": "t2", "mode": 256, "uid": "5"}],
            "configs": [{"source": "c", "target": "/etc/c"}],
        });
        let env = BTreeMap::from([("TOKEN".to_string(), "s3".to_string())]);
        let got = files(&model, "a", &service, &env).unwrap();
        let paths: Vec<(&str, u32, u64)> = got
            .iter()
            .map(|f| (f.path.as_str(), f.mode, f.uid))
            .collect();
        assert_eq!(
            paths,
            [
                ("/run/secrets/tok", 0o444, 0),
                ("/run/secrets/t2", 0o400, 5),
                ("/etc/c", 0o444, 0)
            ]
        );
        assert_eq!(got[0].content, b"s3");
        let err = files(&model, "a", &service, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("TOKEN, which is not set"), "{err}");
    }
}
