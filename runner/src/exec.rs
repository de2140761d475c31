//! `berth exec`: a new process in a running container. The helper joins the
//! container's cgroup and namespaces (setns; the pid namespace takes effect
//! for children, so it forks once) and becomes the process as the
//! container's first one did: same capabilities, no_new_privs, seccomp.
//! Single-threaded, like the runtime helper: setns into a mount namespace
//! refuses a multi-threaded caller.

use crate::error::{Error, Result};
use crate::linux::{exit_failed, start_process, wait_for};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{LinuxSeccomp, Process};
use std::fs;
use std::path::Path;

fn sys(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// Puts this process in every cgroup of berth's that process `pid` is in,
/// so the limits of the container hold for what exec starts too.
fn join_cgroups(pid: i32) {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return;
    };
    let me = std::process::id().to_string();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if !path.starts_with("/berth/") {
            continue;
        }
        let candidates = if controllers.is_empty() {
            vec![
                format!("/sys/fs/cgroup{path}"),
                format!("/sys/fs/cgroup/unified{path}"),
            ]
        } else {
            vec![format!("/sys/fs/cgroup/{controllers}{path}")]
        };
        for dir in candidates {
            let procs = Path::new(&dir).join("cgroup.procs");
            if procs.exists() {
                let _ = fs::write(procs, &me);
                break;
            }
        }
    }
}

/// Runs `process` inside the container whose first process is `pid` and
/// returns its exit code (128 + signal when killed).
pub fn exec(
    pid: i32,
    process: &Process,
    seccomp: Option<&LinuxSeccomp>,
    console_socket: Option<&Path>,
) -> Result<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::Conflict(format!(
            "container process {pid} is not running"
        )));
    }
    let console = match console_socket {
        Some(p) if process.terminal().unwrap_or(false) => Some(crate::console::connect(p)?),
        _ => None,
    };
    join_cgroups(pid);
    // Until it execs, the process that enters is the host's berth binary:
    // not dumpable, so nothing in the container can open its
    // /proc/PID/exe to overwrite berth (CVE-2019-5736); exec makes the
    // new program dumpable again.
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    // The user namespace first (a rootless container's): the others belong
    // to it, and joining them needs its capabilities.
    let own_user = fs::read_link("/proc/self/ns/user").ok();
    let their_user = fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    if their_user.is_some() && own_user != their_user {
        let f = fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| {
            Error::Setup(format!("cannot open the container's user namespace: {e}"))
        })?;
        setns(&f, CloneFlags::CLONE_NEWUSER).map_err(|e| {
            Error::Setup(format!("cannot join the container's user namespace: {e}"))
        })?;
    }
    // The mount namespace last: the others are opened through its /proc.
    let mut joined = Vec::new();
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let f = fs::File::open(format!("/proc/{pid}/ns/{name}")).map_err(|e| {
            Error::Setup(format!("cannot open the container's {name} namespace: {e}"))
        })?;
        joined.push((name, f, flag));
    }
    for (name, f, flag) in &joined {
        setns(f, *flag).map_err(|e| {
            Error::Setup(format!("cannot join the container's {name} namespace: {e}"))
        })?;
    }
    drop(joined);
    // SAFETY: single-threaded helper (the caller's contract).
    match unsafe { fork() }.map_err(sys("cannot fork"))? {
        ForkResult::Child => {
            let started = (|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
                if let Some(c) = &console {
                    crate::console::attach_new_terminal(c, console_size(process))?;
                }
                start_process(process, seccomp, None)
            })();
            exit_failed(started, "cannot exec in the container", 126)
        }
        ForkResult::Parent { child } => {
            drop(console);
            wait_for(child)
        }
    }
}

/// The spec's `process.consoleSize` as (rows, columns).
pub(crate) fn console_size(process: &Process) -> Option<(u16, u16)> {
    process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16))
}
