//! compose-go's whole-load cases (loader/cases.jsonl, merge/project.jsonl)
//! and its normalisation cases (loader/normalize.jsonl), run as data.

mod common;
use berth_compose::loader::{load, load_model_only, ConfigDetails, ConfigFile, Options};
use berth_compose::{normalize, yaml};
use common::{check_each, check_error, dir, env_of, wants_error};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The rows run with the table's folder as the process's directory.
static CWD: Mutex<()> = Mutex::new(());

fn placeholders(s: &str, case_dir: &Path, tmp: &Path) -> String {
    s.replace("<CASE_DIR>", &case_dir.display().to_string())
        .replace("<TMP>", &tmp.display().to_string())
}

fn subst(v: &Value, case_dir: &Path, tmp: &Path) -> Value {
    match v {
        Value::String(s) => Value::String(placeholders(s, case_dir, tmp)),
        Value::Array(a) => Value::Array(a.iter().map(|x| subst(x, case_dir, tmp)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), subst(x, case_dir, tmp)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A value without its empty parts: what Go's zero values leave out.
fn non_empty(v: &Value) -> Option<Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) => {
            let kept: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, x)| non_empty(x).map(|x| (k.clone(), x)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| non_empty(x).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

fn lookup<'a>(v: &'a Value, path: &[Value]) -> Option<&'a Value> {
    let mut at = v;
    for p in path {
        at = match p {
            Value::String(k) => at.get(k)?,
            Value::Number(i) => at.get(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(at)
}

fn check_assertion(project: &Value, env: &Value, a: &Value) -> Result<(), String> {
    if let Some(name) = a["env"].as_str() {
        let got = env.get(name);
        return if got == Some(&a["equals"]) {
            Ok(())
        } else {
            Err(format!("env {name} is {got:?}, want {}", a["equals"]))
        };
    }
    let path = a["path"].as_array().cloned().unwrap_or_default();
    let got = lookup(project, &path);
    let where_ = serde_json::to_string(&path).unwrap_or_default();
    if a["absent"] == true {
        return match got {
            None => Ok(()),
            Some(v) => Err(format!("{where_} is {v}, want it absent")),
        };
    }
    if a["null_or_absent"] == true {
        return match got {
            None | Some(Value::Null) => Ok(()),
            Some(v) => Err(format!("{where_} is {v}, want null")),
        };
    }
    if a["falsy"] == true {
        return match got {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
            Some(v) => Err(format!("{where_} is {v}, want false")),
        };
    }
    if let Some(n) = a["length"].as_u64() {
        let len = match got {
            Some(Value::Array(x)) => x.len(),
            Some(Value::Object(x)) => x.len(),
            _ => 0,
        };
        return if len as u64 == n {
            Ok(())
        } else {
            Err(format!("{where_} has {len} items, want {n}: {got:?}"))
        };
    }
    if !a["equals"].is_null() || a.get("equals").is_some() {
        let want = &a["equals"];
        let ok = match got {
            Some(v) if a["exact"] == true || want.is_object() => non_empty(v) == non_empty(want),
            Some(v) => v == want,
            None => want.is_null(),
        };
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "{where_} is {}, want {want}",
                got.map(Value::to_string).unwrap_or("absent".into())
            ))
        };
    }
    Ok(())
}

fn run_case(row: &Value, case_dir: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tmp_path = tmp.path().to_path_buf();
    for (rel, content) in row["files"].as_object().into_iter().flatten() {
        let p = tmp_path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&p, content.as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
    }
    let sub = |s: &str| placeholders(s, case_dir, &tmp_path);
    let details = ConfigDetails {
        working_dir: row["working_dir"].as_str().map(|w| PathBuf::from(sub(w))),
        config_files: row["config_files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| ConfigFile {
                filename: f["filename"].as_str().map(sub).unwrap_or_default(),
                content: f["content"].as_str().map(String::from),
            })
            .collect(),
        environment: env_of(&row["environment"]),
    };
    let o = &row["options"];
    let opts = Options {
        skip_normalization: o["skip_normalization"] == true,
        skip_consistency_check: o["skip_consistency_check"] == true,
        resolve_paths: o["resolve_paths"] != false,
        skip_validation: o["skip_validation"] == true,
        project_name: o["project_name"].as_str().map(String::from),
        project_name_imperative: o["project_name_imperatively_set"] == true,
        profiles: o["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(String::from))
            .collect(),
        ..Options::default()
    };
    let expect = subst(&row["expect"], case_dir, &tmp_path);
    if o["model_only"] == true {
        let model = load_model_only(&details, &opts).map_err(|e| e.to_string())?;
        return if non_empty(&model) == non_empty(&expect["model"]) {
            Ok(())
        } else {
            Err(format!("model {model}, want {}", expect["model"]))
        };
    }
    let loaded = load(&details, &opts);
    if let Some(s) = expect["ok_or_error"].as_str() {
        return match loaded {
            Err(e) if !e.to_string().contains(s) => Err(format!("error {e} lacks {s:?}")),
            _ => Ok(()),
        };
    }
    match (loaded, wants_error(&expect)) {
        (Err(e), true) => check_error(&expect, &e.to_string()),
        (Ok(p), true) => Err(format!("loaded {}, want an error", p.model)),
        (Err(e), false) => Err(format!("error: {e}")),
        (Ok(p), false) => {
            let mut project = p.model.clone();
            project["name"] = Value::String(p.name.clone());
            let env = serde_json::to_value(&p.environment).unwrap_or_default();
            for a in expect["assertions"].as_array().into_iter().flatten() {
                check_assertion(&project, &env, a)?;
            }
            Ok(())
        }
    }
}

fn table(rel: &str) {
    let _cwd = CWD.lock().unwrap_or_else(|e| e.into_inner());
    let case_dir = dir()
        .join(rel)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let case_dir = std::fs::canonicalize(&case_dir).unwrap_or(case_dir);
    std::env::set_current_dir(&case_dir).unwrap();
    check_each(rel, |row| run_case(row, &case_dir));
}

#[test]
fn whole_projects_load_as_compose_go_loads_them() {
    table("loader/cases.jsonl");
}

#[test]
fn merges_through_a_whole_load() {
    table("merge/project.jsonl");
}

#[test]
fn normalisation() {
    check_each("loader/normalize.jsonl", |row| {
        let parse = |k: &str| {
            yaml::parse(row[k].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())
                .map(|d| d.into_iter().next().map(|d| d.tree).unwrap_or(Value::Null))
        };
        let mut got = parse("input")?;
        normalize::normalize(&mut got, &env_of(&row["env"]));
        let want = parse("expected")?;
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got}\nwant {want}"))
        }
    });
}

/// One row of loader/cli.jsonl: its options applied in order, then the load.
fn run_cli(row: &Value, loader_dir: &Path) -> Result<(), String> {
    use berth_compose::project::ProjectOptions;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    for (rel, content) in row["files"].as_object().into_iter().flatten() {
        std::fs::write(tmp.path().join(rel), content.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
    }
    let cwd = match row["cwd"].as_str() {
        Some(c) => loader_dir.join(c),
        None => loader_dir.to_path_buf(),
    };
    std::env::set_current_dir(&cwd).map_err(|e| e.to_string())?;
    let sub = |s: &str| placeholders(s, loader_dir, tmp.path());
    let mut o = ProjectOptions {
        config_paths: row["config_paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(sub))
            .collect(),
        ..ProjectOptions::default()
    };
    let expect = &row["expect"];
    let mut applied = || -> Result<(), String> {
        for opt in row["options"].as_array().into_iter().flatten() {
            let step = match opt {
                Value::String(s) => match s.as_str() {
                    "WithDotEnv" => o.with_dot_env(),
                    "WithConfigFileEnv" => o.with_config_file_env(),
                    "WithDiscardEnvFile" => {
                        o.discard_env_file = true;
                        Ok(())
                    }
                    "WithOsEnv" => Ok(()),
                    other => return Err(format!("unknown option {other}")),
                },
                Value::Object(m) => {
                    let (k, v) = m.iter().next().ok_or("an empty option")?;
                    match k.as_str() {
                        "WithName" => o.with_name(v.as_str().unwrap_or_default()),
                        "WithWorkingDirectory" => {
                            o.working_dir =
                                Some(PathBuf::from(sub(v.as_str().unwrap_or_default())));
                            Ok(())
                        }
                        "WithEnv" => {
                            o.with_env(
                                v.as_array().into_iter().flatten().filter_map(Value::as_str),
                            );
                            Ok(())
                        }
                        "WithOsEnv" => {
                            for (k, v) in env_of(v) {
                                o.environment.insert(k, v);
                            }
                            Ok(())
                        }
                        "WithEnvFiles" => {
                            o.env_files = Some(
                                v.as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(Value::as_str)
                                    .map(PathBuf::from)
                                    .collect(),
                            );
                            Ok(())
                        }
                        other => return Err(format!("unknown option {other}")),
                    }
                }
                _ => return Err("an option of no known shape".into()),
            };
            step.map_err(|e| format!("options: {e}"))?;
        }
        Ok(())
    };
    let at_options = applied();
    if expect["error_at"] == "options" {
        return match at_options {
            Err(e) => check_error(expect, &e),
            Ok(()) => Err("the options were taken, want an error".into()),
        };
    }
    at_options?;
    if let Some(want) = expect["options_environment"].as_object() {
        let got = serde_json::to_value(&o.environment).unwrap_or_default();
        return if got == Value::Object(want.clone()) {
            Ok(())
        } else {
            Err(format!("environment {got}, want {want:?}"))
        };
    }
    match (o.load(), wants_error(expect)) {
        (Err(e), true) => check_error(expect, &e.to_string()),
        (Ok(p), true) => Err(format!("loaded {}, want an error", p.name)),
        (Err(e), false) => Err(format!("error: {e}")),
        (Ok(p), false) => {
            if let Some(n) = expect["name"].as_str() {
                if p.name != n {
                    return Err(format!("name {}, want {n}", p.name));
                }
            }
            let env = serde_json::to_value(&p.environment).unwrap_or_default();
            for a in expect["assertions"].as_array().into_iter().flatten() {
                check_assertion(&p.model, &env, a)?;
            }
            Ok(())
        }
    }
}

#[test]
fn project_options_as_docker_compose_flags_make_them() {
    let _cwd = CWD.lock().unwrap_or_else(|e| e.into_inner());
    let loader_dir = std::fs::canonicalize(dir().join("loader")).unwrap();
    check_each("loader/cli.jsonl", |row| run_cli(row, &loader_dir));
}
