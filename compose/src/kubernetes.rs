//! A project as Kubernetes objects, as kompose converts one: a Deployment
//! per service (its replicas, command, environment, ports, mounts, limits,
//! a liveness probe from its healthcheck), a Service per service that
//! publishes ports, a PersistentVolumeClaim per named volume, a ConfigMap
//! per config and a Secret per secret (file-based ones).

use crate::merge::scalar_text;
use crate::service::replicas;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Kubernetes names: lowercase RFC 1123 labels.
fn k8s_name(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    out
}

fn seconds(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str)
        .and_then(|d| berth_engine::units::duration(d).ok())
        .map(|n| (n / 1_000_000_000).max(1))
}

fn probe(h: &Value) -> Option<Value> {
    if h.get("disable") == Some(&json!(true)) {
        return None;
    }
    let test: Vec<String> = h
        .get("test")?
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    let command = match test.split_first() {
        Some((first, rest)) if first == "CMD" => rest.to_vec(),
        Some((first, rest)) if first == "CMD-SHELL" => {
            vec!["sh".into(), "-c".into(), rest.join(" ")]
        }
        Some((first, _)) if first == "NONE" => return None,
        _ => test.clone(),
    };
    let mut p = json!({ "exec": { "command": command } });
    if let Some(s) = seconds(h.get("interval")) {
        p["periodSeconds"] = json!(s);
    }
    if let Some(s) = seconds(h.get("timeout")) {
        p["timeoutSeconds"] = json!(s);
    }
    if let Some(s) = seconds(h.get("start_period")) {
        p["initialDelaySeconds"] = json!(s);
    }
    if let Some(r) = h.get("retries").and_then(Value::as_i64) {
        p["failureThreshold"] = json!(r);
    }
    Some(p)
}

/// The objects of `model` (long syntax), in kompose's order: Services,
/// then Deployments, claims, ConfigMaps and Secrets.
pub fn convert(
    model: &Value,
    read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<Value>, String> {
    let empty = Map::new();
    let services = model
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut svc_objects = Vec::new();
    let mut deployments = Vec::new();
    let mut claims = Vec::new();
    for (name, s) in services {
        let app = k8s_name(name);
        let labels = json!({ "io.kompose.service": app });
        // A service that is only built runs the image berth tags for it.
        let project = model
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let image = crate::service::image_name(project, name, s);
        let mut container = json!({ "name": app, "image": image });
        if let Some(c) = s.get("command").and_then(Value::as_array) {
            container["args"] = json!(c);
        }
        if let Some(e) = s.get("entrypoint").and_then(Value::as_array) {
            container["command"] = json!(e);
        }
        if let Some(w) = s.get("working_dir").and_then(Value::as_str) {
            container["workingDir"] = json!(w);
        }
        let env: Vec<Value> = s
            .get("environment")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| scalar_text(v).map(|v| json!({"name": k, "value": v})))
                    .collect()
            })
            .unwrap_or_default();
        if !env.is_empty() {
            container["env"] = json!(env);
        }
        let ports: Vec<&Value> = s
            .get("ports")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        if !ports.is_empty() {
            container["ports"] = json!(ports
                .iter()
                .map(|p| json!({
                    "containerPort": p.get("target").and_then(Value::as_u64).unwrap_or(0),
                    "protocol": p.get("protocol").and_then(Value::as_str).unwrap_or("tcp").to_uppercase(),
                }))
                .collect::<Vec<_>>());
        }
        if let Some(p) = s.get("healthcheck").and_then(probe) {
            container["livenessProbe"] = p;
        }
        if s.get("privileged") == Some(&json!(true)) {
            container["securityContext"] = json!({ "privileged": true });
        }
        let limits = s
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("limits"));
        let mut res = Map::new();
        if let Some(m) = limits
            .and_then(|l| l.get("memory"))
            .or(s.get("mem_limit"))
            .and_then(scalar_text)
        {
            let bytes = berth_engine::units::ram_in_bytes(&m)
                .map_err(|e| format!("services.{name}: {e}"))?;
            res.insert("memory".into(), json!(bytes.to_string()));
        }
        if let Some(c) = limits
            .and_then(|l| l.get("cpus"))
            .or(s.get("cpus"))
            .and_then(scalar_text)
        {
            res.insert("cpu".into(), json!(c));
        }
        if !res.is_empty() {
            container["resources"] = json!({ "limits": res });
        }
        // Named volumes become claims; binds of the host have no place in a cluster.
        let mut mounts = Vec::new();
        let mut volumes = Vec::new();
        for (i, v) in s
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
            let read_only = v.get("read_only") == Some(&json!(true));
            match v.get("type").and_then(Value::as_str) {
                Some("volume") => {
                    let claim = match v.get("source").and_then(Value::as_str) {
                        Some(src) => k8s_name(src),
                        None => format!("{app}-claim{i}"),
                    };
                    mounts.push(json!({"name": claim, "mountPath": target, "readOnly": read_only}));
                    volumes.push(
                        json!({"name": claim, "persistentVolumeClaim": {"claimName": claim}}),
                    );
                    if !claims
                        .iter()
                        .any(|c: &Value| c["metadata"]["name"] == claim)
                    {
                        claims.push(json!({
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim, "labels": {"io.kompose.service": claim}},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Mi"}}},
                        }));
                    }
                }
                Some("tmpfs") => {
                    let n = format!("{app}-tmpfs{i}");
                    mounts.push(json!({"name": n, "mountPath": target}));
                    volumes.push(json!({"name": n, "emptyDir": {"medium": "Memory"}}));
                }
                _ => {}
            }
        }
        for (key, kind) in [("configs", "configMap"), ("secrets", "secret")] {
            for c in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                let Some(src) = c.get("source").and_then(Value::as_str) else {
                    continue;
                };
                let n = k8s_name(src);
                let target = c
                    .get("target")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| {
                        if key == "secrets" {
                            format!("/run/secrets/{src}")
                        } else {
                            format!("/{src}")
                        }
                    });
                let (dir, file) = match target.rsplit_once('/') {
                    Some((d, f)) if !d.is_empty() => (d.to_string(), f.to_string()),
                    _ => ("/".to_string(), target.trim_start_matches('/').to_string()),
                };
                mounts.push(json!({"name": n, "mountPath": format!("{dir}/{file}"), "subPath": file, "readOnly": true}));
                let source = if kind == "configMap" {
                    json!({"configMap": {"name": n, "items": [{"key": src, "path": file}]}})
                } else {
                    json!({"secret": {"secretName": n, "items": [{"key": src, "path": file}]}})
                };
                let mut vol = json!({"name": n});
                if let (Some(v), Some(o)) = (vol.as_object_mut(), source.as_object()) {
                    v.extend(o.clone());
                }
                if !volumes.iter().any(|x| x["name"] == n) {
                    volumes.push(vol);
                }
            }
        }
        if !mounts.is_empty() {
            container["volumeMounts"] = json!(mounts);
        }
        let mut pod = json!({ "containers": [container], "restartPolicy": "Always" });
        if !volumes.is_empty() {
            pod["volumes"] = json!(volumes);
        }
        if let Some(h) = s.get("hostname").and_then(Value::as_str) {
            pod["hostname"] = json!(k8s_name(h));
        }
        deployments.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app, "labels": labels},
            "spec": {
                "replicas": replicas(s),
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }));
        if !ports.is_empty() {
            let spec_ports: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let target = p.get("target").and_then(Value::as_u64).unwrap_or(0);
                    let published = p
                        .get("published")
                        .and_then(scalar_text)
                        .and_then(|x| x.parse::<u64>().ok())
                        .unwrap_or(target);
                    json!({
                        "name": published.to_string(),
                        "port": published,
                        "targetPort": target,
                        "protocol": p.get("protocol").and_then(Value::as_str).unwrap_or("tcp").to_uppercase(),
                    })
                })
                .collect();
            svc_objects.push(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": app, "labels": labels},
                "spec": {"ports": spec_ports, "selector": labels},
            }));
        }
    }
    let mut out = svc_objects;
    out.extend(deployments);
    out.extend(claims);
    for (key, kind) in [("configs", "ConfigMap"), ("secrets", "Secret")] {
        for (name, def) in model
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let data = if let Some(f) = def.get("file").and_then(Value::as_str) {
                read_file(f).map_err(|e| format!("{key}.{name}: cannot read {f}: {e}"))?
            } else if let Some(c) = def.get("content").and_then(Value::as_str) {
                c.as_bytes().to_vec()
            } else if def.get("external") == Some(&json!(true)) {
                continue;
            } else {
                return Err(format!(
                    "{key}.{name}: only file and content sources convert"
                ));
            };
            let n = k8s_name(name);
            let obj = if kind == "ConfigMap" {
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n},
                       "data": {name: String::from_utf8_lossy(&data)}})
            } else {
                json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": n},
                       "data": {name: base64::engine::general_purpose::STANDARD.encode(&data)}})
            };
            out.push(obj);
        }
    }
    Ok(out)
}
