//! What every conformance table's runner needs: the rows of a table, the
//! row's environment, and its error expectations.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn dir() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(p) => PathBuf::from(p).join("compose"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/compose"),
    }
}

pub fn rows(rel: &str) -> Vec<Value> {
    let p = dir().join(rel);
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rel}: {e}: {l}")))
        .collect()
}

pub fn env_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn check_error(row: &Value, message: &str) -> Result<(), String> {
    if let Some(e) = row["error"].as_str() {
        if !message.contains(e) {
            return Err(format!("error {message:?} lacks {e:?}"));
        }
    }
    if let Some(e) = row["error_message"].as_str() {
        if message != e {
            return Err(format!("error {message:?}, want {e:?}"));
        }
    }
    if let Some(e) = row["error_prefix"].as_str() {
        if !message.starts_with(e) {
            return Err(format!("error {message:?} does not start {e:?}"));
        }
    }
    if let Some(e) = row["error_suffix"].as_str() {
        if !message.ends_with(e) {
            return Err(format!("error {message:?} does not end {e:?}"));
        }
    }
    Ok(())
}

pub fn wants_error(row: &Value) -> bool {
    ["error", "error_message", "error_prefix", "error_suffix"]
        .iter()
        .any(|k| !row[*k].is_null() && row[*k] != Value::Bool(false))
}

/// Runs `check` on every row of `rel`; one failure report for them all,
/// each line with its row's id.
pub fn check_each(rel: &str, check: impl Fn(&Value) -> Result<(), String>) {
    let all = rows(rel);
    assert!(!all.is_empty(), "{rel} has no rows");
    let failures: Vec<String> = all
        .iter()
        .filter_map(|row| {
            check(row)
                .err()
                .map(|why| format!("{}: {why}", row["id"].as_str().unwrap_or("?")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{rel}: {} of {} cases fail:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
