//! A container's supervisor process, and the two ways it comes to be.
//!
//! A process with threads (the API service, compose) re-executes the
//! binary as `berth __supervise ID`. A command that is still one thread
//! when it starts a container (`berth run`, `berth start`) forks instead
//! and the child supervises at once: it skips an exec, the dynamic
//! loader's relocations and an engine opened again, a few milliseconds of
//! every foreground run. The child is what the exec would have made: a
//! session of its own, stdio on /dev/null, the attach client on descriptor
//! 3 and no other descriptor, the same environment, and (with root) the
//! same command line in `/proc`, so that `ps` shows the supervisor for what
//! it is.

use crate::error::{Error, Result};
use crate::{Engine, EngineConfig};
use berth_runner::process::{single_threaded, ProcessTitle};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::RawFd;
use std::path::Path;

/// A running supervisor, whichever way it started.
pub(crate) enum SupervisorProcess {
    Spawned(std::process::Child),
    Forked(Pid),
}

impl SupervisorProcess {
    pub(crate) fn id(&self) -> i32 {
        match self {
            SupervisorProcess::Spawned(c) => c.id() as i32,
            SupervisorProcess::Forked(p) => p.as_raw(),
        }
    }

    /// How it ended, if it has.
    pub(crate) fn try_wait(&mut self) -> Option<String> {
        match self {
            SupervisorProcess::Spawned(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
            SupervisorProcess::Forked(p) => match waitpid(*p, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status: {code}")),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("signal: {sig}")),
                _ => None,
            },
        }
    }

    pub(crate) fn wait(&mut self) {
        match self {
            SupervisorProcess::Spawned(c) => {
                let _ = c.wait();
            }
            SupervisorProcess::Forked(p) => {
                let _ = waitpid(*p, None);
            }
        }
    }
}

/// Forks the supervisor of container `id` (see the module's text); `None`
/// when this process may not fork (it has threads, or is not root).
pub(crate) fn fork(
    root: &Path,
    id: &str,
    client: Option<RawFd>,
    attach_wait: bool,
    start_wait: bool,
) -> Result<Option<SupervisorProcess>> {
    if !nix::unistd::geteuid().is_root() || !single_threaded() {
        return Ok(None);
    }
    // Made before the fork: the child only copies bytes and makes calls.
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::Failed(format!("cannot find the berth binary: {e}")))?;
    let title = ProcessTitle::new([exe.as_os_str(), "__supervise".as_ref(), id.as_ref()]);
    // SAFETY: this process has one thread (but the warm-up's, which holds
    // no lock the child takes), so the child's copy of its memory is whole.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Some(SupervisorProcess::Forked(child))),
        Ok(nix::unistd::ForkResult::Child) => {
            // Never back into the caller's frames: whatever happens, the
            // child ends here.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child(root, id, client, attach_wait, start_wait, title)
            }))
            .unwrap_or(101);
            // SAFETY: ends this process without running the parent's
            // destructors (their files are closed already).
            unsafe { libc::_exit(code) }
        }
        Err(e) => Err(Error::Failed(format!(
            "cannot start the container's supervisor: {e}"
        ))),
    }
}

/// The forked supervisor: its descriptors and session set as a spawned
/// one's, then the supervision itself; its exit code.
fn child(
    root: &Path,
    id: &str,
    client: Option<RawFd>,
    attach_wait: bool,
    start_wait: bool,
    title: ProcessTitle,
) -> i32 {
    // SAFETY: plain system calls on descriptors of this process alone.
    unsafe {
        libc::setsid();
        if let Some(fd) = client {
            if fd != super::lifecycle::ATTACH_FD && libc::dup2(fd, super::lifecycle::ATTACH_FD) < 0
            {
                return 125;
            }
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 {
            return 125;
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let first_free = if client.is_some() {
            super::lifecycle::ATTACH_FD + 1
        } else {
            3
        };
        // Every other descriptor of the parent goes: its locks among them.
        libc::syscall(libc::SYS_close_range, first_free as u32, u32::MAX, 0u32);
    }
    // One thread here: nothing reads the environment meanwhile.
    std::env::set_var("BERTH_ROOT", root);
    for (key, on) in [
        (super::lifecycle::ATTACH_WAIT, attach_wait),
        (super::lifecycle::START_WAIT, start_wait),
    ] {
        if on {
            std::env::set_var(key, "1");
        } else {
            std::env::remove_var(key);
        }
    }
    // An exec would have left the caller's handlers behind too.
    berth_runner::process::reset_signals();
    title.apply();
    match Engine::open(root, EngineConfig::default()).and_then(|e| e.supervise(id)) {
        Ok(code) => code.clamp(0, 255),
        Err(_) => 125,
    }
}
