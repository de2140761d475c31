//! compose-go's own cases (../shared/conformance/compose), run as data:
//! interpolation of strings and trees, operator choice, variable
//! extraction, and `.env` parsing.

use berth_compose::dotenv;
use berth_compose::interpolate::{
    extract_variables, interpolate_tree, parse_expression, substitute, TemplateError, Variables,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;

mod common;
use common::{check_each, check_error, dir, env_of, wants_error};
use std::path::PathBuf;

struct Counting {
    env: BTreeMap<String, String>,
    warnings: RefCell<usize>,
}

impl Variables for Counting {
    fn get(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn unset(&self, _: &str) {
        *self.warnings.borrow_mut() += 1;
    }
}

/// Checks an error against a row's `error`, `error_message`,
/// `error_prefix`/`error_suffix`; a failure is said, not panicked.

#[test]
fn interpolation_of_strings() {
    check_each("interpolation.jsonl", |row| {
        let vars = Counting {
            env: env_of(&row["env"]),
            warnings: RefCell::new(0),
        };
        let template = row["template"].as_str().unwrap_or_default();
        let got = substitute(template, &vars);
        let outcome = (|| -> Result<(), String> {
            match (&got, wants_error(row)) {
                (Ok(v), false) => {
                    if let Some(want) = row["expected"].as_str() {
                        if v != want {
                            return Err(format!("got {v:?}, want {want:?}"));
                        }
                    }
                    if let Some(n) = row["warning_count"].as_u64() {
                        if *vars.warnings.borrow() as u64 != n {
                            return Err(format!("{} warnings, want {n}", vars.warnings.borrow()));
                        }
                    }
                }
                (Ok(v), true) => return Err(format!("got {v:?}, want an error")),
                (Err(e), true) => {
                    check_error(row, &e.to_string())?;
                    if row["error_kind"] == "missing_required"
                        && !matches!(e, TemplateError::MissingRequired { .. })
                    {
                        return Err(format!("{e:?} is not a missing-required error"));
                    }
                    if let Some(f) = row["error_fields"].as_object() {
                        let TemplateError::MissingRequired { variable, reason } = e else {
                            return Err(format!("{e:?} has no fields"));
                        };
                        if f["variable"] != *variable || f["reason"] != *reason {
                            return Err(format!("fields {variable:?} {reason:?}, want {f:?}"));
                        }
                    }
                    // The tree-level message of the same error.
                    if let (Some(path), Some(want)) = (
                        row["interpolation_path"].as_str(),
                        row["interpolation_error"].as_str(),
                    ) {
                        let mut tree = serde_json::Map::new();
                        let mut at = &mut tree;
                        let keys: Vec<&str> = path.split('.').collect();
                        for k in &keys[..keys.len() - 1] {
                            at = at
                                .entry(k.to_string())
                                .or_insert_with(|| Value::Object(Default::default()))
                                .as_object_mut()
                                .unwrap();
                        }
                        at.insert(
                            keys[keys.len() - 1].to_string(),
                            Value::String(template.into()),
                        );
                        match interpolate_tree(&Value::Object(tree), &vars) {
                            Err(e) if e.to_string() == want => {}
                            other => return Err(format!("tree: {other:?}, want {want:?}")),
                        }
                    }
                }
                (Err(e), false) => return Err(format!("error {e}")),
            }
            Ok(())
        })();
        outcome.map_err(|why| format!("{template:?}: {why}"))
    });
}

#[test]
fn the_operator_right_after_the_name_applies() {
    check_each("interpolation-operators.jsonl", |row| {
        let input = row["input"].as_str().unwrap_or_default();
        let want = row["operator"].as_str().unwrap_or_default();
        let got = parse_expression(input)
            .and_then(|e| e.op)
            .map(|(op, _)| op.text());
        if got != Some(want) {
            return Err(format!("{input:?}: {got:?}, want {want:?}"));
        }
        Ok(())
    });
}

#[test]
fn interpolation_of_trees() {
    check_each("interpolation-mappings.jsonl", |row| {
        let env = env_of(&row["env"]);
        match (interpolate_tree(&row["input"], &env), wants_error(row)) {
            (Ok(v), false) if v == row["expected"] => Ok(()),
            (Err(e), true) => check_error(row, &e.to_string()),
            (got, _) => Err(format!("got {got:?}")),
        }
    });
}

#[test]
fn variables_a_file_uses() {
    check_each("variables.jsonl", |row| {
        let got: serde_json::Map<String, Value> = extract_variables(&row["input"])
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    serde_json::json!({
                        "name": v.name,
                        "default_value": v.default_value,
                        "presence_value": v.presence_value,
                        "required": v.required,
                    }),
                )
            })
            .collect();
        if Value::Object(got.clone()) != row["expected"] {
            return Err(format!("got {got:?}, want {}", row["expected"]));
        }
        Ok(())
    });
}

fn check_vars(row: &Value, got: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(want) = row["expected"].as_object() {
        for (k, v) in want {
            if got.get(k).map(String::as_str) != v.as_str() {
                return Err(format!("{k}: got {:?}, want {v}", got.get(k)));
            }
        }
        if row["exact"] == true && got.len() != want.len() {
            return Err(format!("got {got:?}, want exactly {want:?}"));
        }
    }
    for k in row["absent"].as_array().into_iter().flatten() {
        if let Some(k) = k.as_str() {
            if got.contains_key(k) {
                return Err(format!("{k} is there"));
            }
        }
    }
    Ok(())
}

#[test]
fn dotenv_files() {
    let base = dir().join("dotenv");
    check_each("dotenv/dotenv.jsonl", |row| {
        let lookup_env = env_of(&row["lookup_env"]);
        let asked = RefCell::new(Vec::<String>::new());
        let lookup = |k: &str| {
            asked.borrow_mut().push(k.to_string());
            lookup_env.get(k).cloned()
        };
        let none = |_: &str| None;
        let got: Result<BTreeMap<String, String>, String> = match row["mode"].as_str() {
            Some("parse") => dotenv::parse(row["input"].as_str().unwrap_or_default(), &lookup)
                .map_err(|e| e.to_string()),
            Some("read") => {
                let path = base.join(row["fixture"].as_str().unwrap_or_default());
                if row["lookup_env"].is_null() {
                    dotenv::read(&path, &none)
                } else {
                    dotenv::read(&path, &lookup)
                }
                .map_err(|e| e.to_string())
            }
            Some("load") => {
                let path = base.join(row["fixture"].as_str().unwrap_or_default());
                let mut env = env_of(&row["preset_env"]);
                dotenv::read(&path, &none)
                    .map(|vars| {
                        for (k, v) in vars {
                            env.entry(k).or_insert(v);
                        }
                        env
                    })
                    .map_err(|e| e.to_string())
            }
            Some("get_env_from_file") => {
                let tmp = tempfile::tempdir().unwrap();
                for (name, text) in row["files"].as_object().into_iter().flatten() {
                    std::fs::write(tmp.path().join(name), text.as_str().unwrap_or_default())
                        .unwrap();
                }
                for d in row["directories"].as_array().into_iter().flatten() {
                    std::fs::create_dir_all(tmp.path().join(d.as_str().unwrap_or_default()))
                        .unwrap();
                }
                let paths: Vec<PathBuf> = row["file_order"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| tmp.path().join(f.as_str().unwrap_or_default()))
                    .collect();
                let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
                dotenv::env_from_files(&env_of(&row["current_env"]), &refs)
                    .map_err(|e| e.to_string())
            }
            other => Err(format!("unknown mode {other:?}")),
        };
        match (got, wants_error(row)) {
            (Ok(vars), false) => check_vars(row, &vars).and_then(|()| {
                for k in row["lookup_called_for"].as_array().into_iter().flatten() {
                    let k = k.as_str().unwrap_or_default();
                    if !asked.borrow().iter().any(|a| a == k) {
                        return Err(format!("the lookup was not asked for {k}"));
                    }
                }
                Ok(())
            }),
            (Ok(vars), true) => Err(format!("got {vars:?}, want an error")),
            (Err(e), true) => check_error(row, &e),
            (Err(e), false) => Err(format!("error {e}")),
        }
    });
}
