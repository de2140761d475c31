//! `berth parse` as a user runs it: the binary, real files, exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

fn conformance() -> PathBuf {
    match std::env::var_os("BERTH_CONFORMANCE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = berth()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("berth finishes")
}

#[test]
fn dump_matches_every_buildkit_case_byte_for_byte() {
    let dir = conformance().join("buildkit/parser/testfiles");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("testfiles") {
        let case = entry.expect("entry").path();
        let out = berth()
            .args(["parse", "--dump"])
            .arg(case.join("Dockerfile"))
            .output()
            .expect("berth runs");
        let expected = std::fs::read(case.join("result")).expect("result");
        assert!(
            out.status.success(),
            "{}: {}",
            case.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&expected),
            "{}",
            case.display()
        );
        n += 1;
    }
    assert!(n >= 33);
}

#[test]
fn negative_cases_exit_1_with_a_located_error() {
    let dir = conformance().join("buildkit/parser/testfiles-negative");
    for entry in std::fs::read_dir(&dir).expect("testfiles-negative") {
        let file = entry.expect("entry").path().join("Dockerfile");
        let out = berth()
            .arg("parse")
            .arg(&file)
            .output()
            .expect("berth runs");
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let err = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("error: {}:", file.display());
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.contains(" | "), "no source line shown: {err}");
    }
}

#[test]
fn json_output_has_spans() {
    let out = with_stdin(
        &["parse", "--json", "-"],
        "FROM busybox AS base\nRUN echo hi\n",
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ins = v["instructions"].as_array().expect("instructions");
    assert_eq!(ins[0]["instruction"], "FROM");
    assert_eq!(ins[0]["name"]["value"], "base");
    assert_eq!(ins[1]["instruction"], "RUN");
    assert_eq!(ins[1]["command"]["form"], "shell");
    assert_eq!(ins[1]["span"]["start_line"], 2);
    assert_eq!(ins[1]["command"]["command"]["span"]["start_column"], 5);
}

#[test]
fn typo_gets_a_suggestion_and_exit_1() {
    let out = with_stdin(&["parse", "-"], "FROM busybox\nCOPPY . /app\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<stdin>:2:1: unknown instruction: COPPY"),
        "{err}"
    );
    assert!(err.contains("did you mean `COPY`?"), "{err}");
}

#[test]
fn listing_of_the_example() {
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/examples/hello/Dockerfile");
    let out = berth().arg("parse").arg(file).output().expect("berth runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# syntax=docker/dockerfile:1"));
    assert!(text.contains("RUN"));
    assert!(text.contains("8-11"), "{text}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = berth()
        .args(["parse", "/nonexistent/Dockerfile"])
        .output()
        .expect("berth runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/Dockerfile"));
}
