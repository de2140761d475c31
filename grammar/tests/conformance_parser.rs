//! BuildKit's parser test cases and our heredoc case table, run as data: every
//! positive case must dump byte for byte as its `result`, every negative case
//! must fail with a located error.

use berth_grammar::{heredocs_in_line, parse_heredoc_marker, parse_syntax};
use std::path::PathBuf;

fn conformance() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = conformance().join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// A case's name and its Dockerfile's text.
fn case_dockerfile(case: &std::path::Path) -> (String, String) {
    let name = case
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let source = std::fs::read(case.join("Dockerfile")).expect("Dockerfile");
    (name, String::from_utf8_lossy(&source).into_owned())
}

#[test]
fn positive_cases_dump_as_buildkit() {
    let cases = cases("buildkit/parser/testfiles");
    assert!(cases.len() >= 33, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let (name, text) = case_dockerfile(case);
        let expected = std::fs::read_to_string(case.join("result")).expect("result");
        match parse_syntax(&text) {
            Ok(tree) => {
                let got = tree.dump();
                if got != expected {
                    failures.push(format!(
                        "{name}: dump differs\n--- expected\n{expected}--- got\n{got}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: failed to parse: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_cases_fail_with_a_location() {
    let cases = cases("buildkit/parser/testfiles-negative");
    assert!(cases.len() >= 4, "only {} cases found", cases.len());
    for case in &cases {
        let (name, text) = case_dockerfile(case);
        // Parse errors of the syntax stage, or of the typed stage for what it checks.
        let err = match berth_grammar::parse(&text) {
            Ok(_) => panic!("{name}: parsed but must fail"),
            Err(e) => e,
        };
        assert!(err.span.start_line >= 1, "{name}: error has no line: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains(&format!(":{}:", err.span.start_line)),
            "{name}: {shown}"
        );
    }
}

#[test]
fn line_numbers_of_testfile_line() {
    let path = conformance().join("buildkit/parser/testfile-line/Dockerfile");
    let text = std::fs::read_to_string(path).expect("testfile-line");
    let tree = parse_syntax(&text).expect("parses");
    let lines: Vec<(usize, usize)> = tree
        .nodes
        .iter()
        .map(|n| (n.span.start_line, n.span.end_line))
        .collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
}

fn json_heredocs(v: &serde_json::Value) -> Vec<(String, String, bool, bool, u64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_string(),
                h["content"].as_str().unwrap_or_default().to_string(),
                h["expand"].as_bool().unwrap_or_default(),
                h["chomp"].as_bool().unwrap_or_default(),
                h["fd"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn heredoc_case_table() {
    let text =
        std::fs::read_to_string(conformance().join("heredoc-cases.jsonl")).expect("heredoc cases");
    let mut failures = Vec::new();
    let mut ran = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        ran += 1;
        match case["kind"].as_str() {
            Some("dockerfile") => {
                let src = case["dockerfile"].as_str().unwrap_or_default();
                let tree = match parse_syntax(src) {
                    Ok(t) => t,
                    Err(e) => {
                        failures.push(format!("{}: {e}", case["case"]));
                        continue;
                    }
                };
                let want: Vec<_> = case["expect"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| json_heredocs(&e["heredocs"]))
                    .collect();
                let got: Vec<_> = tree.nodes[1..]
                    .iter()
                    .map(|n| {
                        n.heredocs
                            .iter()
                            .map(|h| {
                                (
                                    h.name.clone(),
                                    h.content.clone(),
                                    h.expand,
                                    h.chomp,
                                    h.fd as u64,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if want != got {
                    failures.push(format!("{}: want {want:?}, got {got:?}", case["case"]));
                }
            }
            Some("word") => {
                let word = case["word"].as_str().unwrap_or_default();
                let got = parse_heredoc_marker(word);
                let ok = match (case["expect"].as_str(), &got) {
                    (Some("heredoc"), Ok(Some(m))) => {
                        Some(m.name.as_str()) == case["name"].as_str()
                    }
                    (Some("error"), Err(_)) => true,
                    (Some("not-heredoc"), Ok(None)) => true,
                    _ => false,
                };
                if !ok {
                    failures.push(format!(
                        "word {word:?}: expected {}, got {got:?}",
                        case["expect"]
                    ));
                }
            }
            Some("line") => {
                let l = case["line"].as_str().unwrap_or_default();
                let want: Vec<&str> = case["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                    .collect();
                let got =
                    heredocs_in_line(l).map(|v| v.into_iter().map(|m| m.name).collect::<Vec<_>>());
                if got
                    .as_deref()
                    .ok()
                    .map(|g| g.iter().map(String::as_str).collect::<Vec<_>>())
                    != Some(want.clone())
                {
                    failures.push(format!("line {l:?}: want {want:?}, got {got:?}"));
                }
            }
            other => failures.push(format!("unknown case kind {other:?}")),
        }
    }
    assert!(ran >= 58, "only {ran} heredoc cases ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
