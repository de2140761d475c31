//! The example compose projects under testdata/compose/, copied for a test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of testdata/compose/NAME in `into`; its path.
pub fn project_dir(name: &str, into: &Path) -> PathBuf {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/compose")
        .join(name);
    let to = into.join(name);
    let status = Command::new("cp")
        .arg("-r")
        .arg(&from)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}
