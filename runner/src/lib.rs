//! berth-runner: the OCI runtime that runs RUN steps and `berth run`
//! containers. Input is an OCI runtime spec (`oci_spec::runtime::Spec`) and a
//! root filesystem; `linux::run` executes it in new namespaces behind
//! pivot_root with docker's capability set and masked paths.
//!
//! Limits (`--memory`, `--pids-limit`, `--cpus`) go through cgroups
//! (`cgroup.rs`); docker's default seccomp policy is in `seccomp.rs`. Published ports are
//! `ports.rs`. Not yet here (see the runner issue): user namespaces,
//! detached containers and their supervisor, exec, ttys.

pub mod bundle;
pub mod cgroup;
mod error;
pub mod linux;
pub mod ports;
pub mod seccomp;
pub mod spec;
pub mod user;

pub use bundle::{Bundle, HELPER_COMMAND};
pub use cgroup::Limits;
pub use error::{Error, Result};
pub use spec::{docker_spec, Network, RunConfig};
