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

/// Whether this process is one thread, besides the cgroup warm-up's
/// (which holds nothing a child could need).
fn single_threaded() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.count() <= 1 + berth_runner::cgroup::warm_up_threads()
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
    let title = ProcessTitle::new(&exe, id);
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
    title.apply();
    match Engine::open(root, EngineConfig::default()).and_then(|e| e.supervise(id)) {
        Ok(code) => code.clamp(0, 255),
        Err(_) => 125,
    }
}

/// The command line `/proc/PID/cmdline` (and so `ps`) shows for a forked
/// supervisor: an exec'd one's, `berth __supervise ID`.
struct ProcessTitle {
    text: Vec<u8>,
}

impl ProcessTitle {
    fn new(exe: &Path, id: &str) -> ProcessTitle {
        use std::os::unix::ffi::OsStrExt;
        let mut text = exe.as_os_str().as_bytes().to_vec();
        text.extend_from_slice(b" __supervise ");
        text.extend_from_slice(id.as_bytes());
        ProcessTitle { text }
    }

    /// setproctitle's way: the new text over the argument strings and,
    /// past them, over the environment's, which move to the heap first.
    /// The kernel reads a command line whose last argument byte is not
    /// zero as one string up to its first zero byte.
    fn apply(self) {
        let Some([arg_start, arg_end, env_start, env_end]) = memory_areas() else {
            return;
        };
        let end = if env_start == arg_end {
            env_end
        } else {
            arg_end
        };
        let room = end.saturating_sub(arg_start);
        if room < 2 {
            return;
        }
        extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: one thread; the environment's strings are copied before
        // their bytes are written over, and both areas are this process's.
        unsafe {
            let mut copies: Vec<*mut libc::c_char> = Vec::new();
            let mut p = environ;
            while !p.is_null() && !(*p).is_null() {
                copies.push(libc::strdup(*p));
                p = p.add(1);
            }
            copies.push(std::ptr::null_mut());
            environ = copies.leak().as_mut_ptr();
            let n = self.text.len().min(room - 1);
            let area = std::slice::from_raw_parts_mut(arg_start as *mut u8, room);
            area.fill(0);
            area[..n].copy_from_slice(&self.text[..n]);
        }
    }
}

/// This process's argument and environment areas (`/proc/self/stat`'s
/// fields 48 to 51).
fn memory_areas() -> Option<[usize; 4]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<usize>().ok();
    Some([field(48)?, field(49)?, field(50)?, field(51)?])
}
