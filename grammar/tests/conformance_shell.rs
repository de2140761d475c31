//! BuildKit's shell-expansion tables and our extra expansion cases, run as data.

use berth_grammar::shell::ShellLex;
use std::path::PathBuf;

fn conformance() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

fn read(rel: &str) -> String {
    let p = conformance().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn env_var_table() {
    let vars: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lex = ShellLex::new('\\');
    let mut failures = Vec::new();
    let mut ran = 0;
    for (n, line) in read("buildkit/shell/envVarTest").lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "envVarTest line {} is malformed", n + 1);
        let (platform, input, expected) = (fields[0], fields[1], fields[2]);
        if platform == "W" {
            continue;
        }
        ran += 1;
        let got = lex.process_word(input, &vars);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(s), e) => s == e && e != "error",
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(ran > 200, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn words_table() {
    let lex = ShellLex::new('\\');
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (n, line) in read("buildkit/shell/wordsTest").lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let rest = rest.trim_start();
            let (k, v) = rest.split_once('=').expect("ENV line has =");
            vars.push((k.to_string(), v.to_string()));
            continue;
        }
        let (input, expected) = line.split_once('|').expect("case line has |");
        let input = input.trim();
        let expected = expected.trim_start();
        ran += 1;
        let got = lex.process_words(input, &vars);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(words), e) => *words == e.split(',').collect::<Vec<_>>(),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(ran >= 24, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn extra_expansion_cases() {
    let lex = ShellLex::new('\\');
    let mut failures = Vec::new();
    let mut ran = 0;
    for (n, line) in read("shell-expansion-cases.jsonl").lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let input = case["input"].as_str().expect("input");
        let vars: Vec<(String, String)> = case["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        ran += 1;
        let got = lex.expand(input, &vars);
        let mut problem = None;
        match (
            &got,
            case.get("error").and_then(|v| v.as_bool()).unwrap_or(false),
        ) {
            (Err(e), true) => {
                if let Some(needle) = case.get("error_contains").and_then(|v| v.as_str()) {
                    if !e.to_string().contains(needle) {
                        problem = Some(format!("error {e} lacks {needle:?}"));
                    }
                }
            }
            (Ok(exp), false) => {
                if exp.result != case["expected"].as_str().unwrap_or_default() {
                    problem = Some(format!("got {:?}", exp.result));
                }
                for (key, set) in [("matched", &exp.matched), ("unmatched", &exp.unmatched)] {
                    if let Some(want) = case.get(key).and_then(|v| v.as_array()) {
                        let want: Vec<&str> = want.iter().filter_map(|v| v.as_str()).collect();
                        let have: Vec<&str> = set.iter().map(String::as_str).collect();
                        if want != have {
                            problem = Some(format!("{key}: want {want:?}, have {have:?}"));
                        }
                    }
                }
            }
            (other, _) => problem = Some(format!("got {other:?}")),
        }
        if let Some(p) = problem {
            failures.push(format!("line {}: {input:?}: {p}", n + 1));
        }
    }
    assert!(ran >= 56, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
