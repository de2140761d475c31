//! Every row of `shared/conformance/dockerignore-cases.tsv` (moby's
//! patternmatcher expectations) through berth's `.dockerignore` matcher.

use berth_builder::ignore::Ignore;
use std::path::PathBuf;

fn table() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(d) => PathBuf::from(d).join("dockerignore-cases.tsv"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/dockerignore-cases.tsv"),
    }
}

#[test]
fn every_conformance_row_matches() {
    let path = table();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set BERTH_CONFORMANCE)", path.display()));
    let mut failures = Vec::new();
    let mut rows = 0;
    let mut header = true;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if header {
            header = false;
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "line {}: {line:?}", n + 1);
        let (patterns, file, expected) = (cols[0], cols[1], cols[2]);
        rows += 1;
        let list: Vec<&str> = if patterns.is_empty() {
            Vec::new()
        } else {
            patterns.split(';').collect()
        };
        let got = match Ignore::new(&list) {
            Err(_) => "error".to_string(),
            Ok(m) => match m.matches(file) {
                Ok(b) => b.to_string(),
                Err(_) => "error".to_string(),
            },
        };
        if got != expected {
            failures.push(format!(
                "line {}: patterns {patterns:?} path {file:?}: got {got}, want {expected}",
                n + 1
            ));
        }
    }
    assert_eq!(rows, 138, "the table has 138 rows");
    assert!(
        failures.is_empty(),
        "{} of {rows} rows fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
