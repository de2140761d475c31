//! The offline busybox base image every end-to-end test starts from:
//! `testdata/make-busybox.sh` run with the berth binary under test.
//!
//! Included by test crates with `#[path = ".../testdata/support/busybox.rs"]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the berth binary under test on the store `root`.
pub fn berth<S: AsRef<std::ffi::OsStr>>(root: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("berth runs")
}

/// The rootfs tarball the script leaves in `dir`.
pub fn rootfs_tarball(dir: &Path) -> PathBuf {
    dir.join("busybox-rootfs.tar")
}

/// A store at `dir/root` holding `busybox:latest`.
pub fn busybox_store(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let out = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/make-busybox.sh"))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(rootfs_tarball(dir))
        .env("BERTH_ROOT", &root)
        .output()
        .expect("make-busybox.sh runs");
    assert!(
        out.status.success(),
        "make-busybox.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}
