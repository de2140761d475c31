//! berth-runner: the OCI runtime that runs RUN steps and `berth run`
//! containers. Input is an OCI runtime spec (`oci_spec::runtime::Spec`) and a
//! root filesystem; `linux::run` executes it in new namespaces behind
//! pivot_root with docker's capability set and masked paths.
//!
//! Limits (`--memory`, `--pids-limit`, `--cpus`) go through cgroups
//! (`cgroup.rs`); docker's default seccomp policy is in `seccomp.rs`. Published ports are
//! `ports.rs`. Containers that outlive the command that made them have a
//! record (`container.rs`), a log (`log.rs`) and a supervisor
//! (`supervisor.rs`); `exec.rs` joins a running one; `console.rs` is `-t`.
//! Without root the spec adds a user namespace with the caller mapped to 0.

pub mod attach;
pub mod bundle;
pub mod cgroup;
pub mod console;
pub mod container;
mod error;
pub mod exec;
pub mod linux;
pub mod log;
pub mod ports;
pub mod process;
pub mod runtime_process;
pub mod seccomp;
pub mod spec;
pub mod subid;
pub mod supervisor;
pub mod user;

pub use bundle::{Bundle, HELPER_COMMAND};
pub use cgroup::Limits;
pub use error::{Error, Result};
pub use spec::{docker_spec, Network, RunConfig};
