//! The helper processes the engine re-executes the `berth` binary as: the
//! runtime (`berth __runtime SPEC`), the exec helper (`berth __exec`) and
//! a container's supervisor (`berth __supervise ID`). A runtime must not
//! fork from a threaded process, so each is a fresh single-threaded one;
//! the binary's hidden commands call these entry points.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The `berth` binary, for re-executing it as a helper.
pub(crate) fn berth_exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::Failed(format!("cannot find the berth binary: {e}")))
}

/// `berth __runtime SPEC`: runs the spec, returns the container's exit code.
pub fn runtime(
    spec_path: &str,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
    start_fd: Option<i32>,
) -> Result<i32> {
    let mut spec = oci_spec::runtime::Spec::load(spec_path)
        .map_err(|e| Error::Failed(format!("cannot read {spec_path}: {e}")))?;
    // As the OCI spec says: a relative root is relative to the bundle.
    if let Some(mut root) = spec.root().clone() {
        if root.path().is_relative() {
            let bundle = Path::new(spec_path).parent().unwrap_or(Path::new("."));
            root.set_path(bundle.join(root.path()));
            spec.set_root(Some(root));
        }
    }
    let opts = berth_runner::linux::RunOptions {
        pid_file: pid_file.map(Path::to_path_buf),
        console_socket: console_socket.map(Path::to_path_buf),
        start_fd,
    };
    Ok(berth_runner::linux::run_with(&spec, &opts)?)
}

/// `berth __exec PID PROCESS SPEC [--console-socket P]`: joins container
/// process PID and runs PROCESS there; returns its exit code.
pub fn exec(
    pid: i32,
    process: &Path,
    spec: &Path,
    privileged: bool,
    console_socket: Option<&Path>,
) -> Result<i32> {
    let data = std::fs::read(process)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", process.display())))?;
    let p: oci_spec::runtime::Process = serde_json::from_slice(&data)
        .map_err(|e| Error::Failed(format!("invalid process {}: {e}", process.display())))?;
    let spec = oci_spec::runtime::Spec::load(spec)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", spec.display())))?;
    let seccomp = if privileged {
        None
    } else {
        spec.linux().as_ref().and_then(|l| l.seccomp().clone())
    };
    Ok(berth_runner::exec::exec(
        pid,
        &p,
        seccomp.as_ref(),
        console_socket,
    )?)
}
