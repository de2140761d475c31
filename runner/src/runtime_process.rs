//! The runtime process a supervisor starts for one run of its container:
//! a program it spawns (berth's helper re-executed, runc, crun), or berth's
//! own runtime in a fork of the supervisor when the supervisor is still one
//! thread. The fork skips an exec, the dynamic loader's relocations and a
//! second start of the binary: a few milliseconds of every run. The child is
//! what the exec would have made: stdio on the given pipes, the start gate
//! on its descriptor and no other, the signal state of a new program and the
//! command line `berth __runtime SPEC`.

use crate::linux::RunOptions;
use crate::process::{reset_signals, ProcessTitle};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout};

/// berth's own runtime, to fork: the spec it runs and its options.
#[derive(Clone, Debug)]
pub struct BuiltinRuntime {
    pub spec: PathBuf,
    /// Where to write the container's pid as well (runc's `--pid-file`);
    /// none: it is said on the start gate only, one file fewer a run.
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
}

/// Which of the runtime's standard streams the supervisor reads or writes
/// (the others are /dev/null).
pub(crate) struct Pipes {
    pub stdin: bool,
    pub stdout: bool,
}

/// A started runtime.
pub(crate) enum RuntimeProcess {
    Spawned(Child),
    Forked {
        pid: Pid,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
        /// Its exit code, once reaped.
        code: Option<i32>,
    },
}

/// The exit code a runtime's wait status stands for: a runtime killed by a
/// signal failed to say one.
fn code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(..) => Some(125),
        _ => None,
    }
}

impl RuntimeProcess {
    pub(crate) fn id(&self) -> i32 {
        match self {
            RuntimeProcess::Spawned(c) => c.id() as i32,
            RuntimeProcess::Forked { pid, .. } => pid.as_raw(),
        }
    }

    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        match self {
            RuntimeProcess::Spawned(c) => c.stdin.take(),
            RuntimeProcess::Forked { stdin, .. } => stdin.take(),
        }
    }

    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        match self {
            RuntimeProcess::Spawned(c) => c.stdout.take(),
            RuntimeProcess::Forked { stdout, .. } => stdout.take(),
        }
    }

    pub(crate) fn take_stderr(&mut self) -> Option<ChildStderr> {
        match self {
            RuntimeProcess::Spawned(c) => c.stderr.take(),
            RuntimeProcess::Forked { stderr, .. } => stderr.take(),
        }
    }

    /// Its exit code if it has ended.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<i32>> {
        match self {
            RuntimeProcess::Spawned(c) => Ok(c.try_wait()?.map(|s| s.code().unwrap_or(125))),
            RuntimeProcess::Forked { pid, code, .. } => {
                if code.is_none() {
                    match waitpid(*pid, Some(WaitPidFlag::WNOHANG)) {
                        Ok(st) => *code = code_of(st),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(*code)
            }
        }
    }

    /// Waits for its end; its exit code.
    pub(crate) fn wait(&mut self) -> std::io::Result<i32> {
        match self {
            RuntimeProcess::Spawned(c) => Ok(c.wait()?.code().unwrap_or(125)),
            RuntimeProcess::Forked {
                pid, code, stdin, ..
            } => {
                // As Child::wait: its stdin closes first.
                stdin.take();
                while code.is_none() {
                    match waitpid(*pid, None) {
                        Ok(st) => *code = code_of(st),
                        Err(nix::Error::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(code.unwrap_or(125))
            }
        }
    }

    pub(crate) fn kill(&mut self) {
        match self {
            RuntimeProcess::Spawned(c) => {
                let _ = c.kill();
            }
            RuntimeProcess::Forked { pid, code, .. } => {
                if code.is_none() {
                    let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    }
}

/// A pipe whose both ends close on exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Forks berth's runtime to run `rt`, its start gate (the read end of a
/// pipe) given as `gate`. The caller must be one thread (see
/// [`crate::process::single_threaded`]).
pub(crate) fn fork(
    rt: &BuiltinRuntime,
    pipes: &Pipes,
    gate: Option<&OwnedFd>,
) -> std::io::Result<RuntimeProcess> {
    let stdin = if pipes.stdin { Some(pipe()?) } else { None };
    let stdout = if pipes.stdout { Some(pipe()?) } else { None };
    let stderr = pipe()?;
    let exe = std::fs::read_link("/proc/self/exe")?;
    let title = ProcessTitle::new([
        exe.as_os_str(),
        crate::bundle::HELPER_COMMAND.as_ref(),
        rt.spec.as_os_str(),
    ]);
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let parent = nix::unistd::getpid();
    // SAFETY: this process is one thread (the caller says so), so the
    // child's copy of its memory is whole; the child never returns.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(RuntimeProcess::Forked {
            pid: child,
            stdin: stdin.map(|(_, w)| ChildStdin::from(w)),
            stdout: stdout.map(|(r, _)| ChildStdout::from(r)),
            stderr: Some(ChildStderr::from(stderr.0)),
            code: None,
        }),
        nix::unistd::ForkResult::Child => {
            let fds = [
                stdin
                    .as_ref()
                    .map_or(null.as_raw_fd(), |(r, _)| r.as_raw_fd()),
                stdout
                    .as_ref()
                    .map_or(null.as_raw_fd(), |(_, w)| w.as_raw_fd()),
                stderr.1.as_raw_fd(),
            ];
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child(rt, fds, gate.map(AsRawFd::as_raw_fd), parent, title)
            }))
            .unwrap_or(125);
            // SAFETY: ends this process without running the supervisor's
            // destructors (its files are closed already).
            unsafe { libc::_exit(code) }
        }
    }
}

/// The descriptor the forked runtime finds its start gate on.
const GATE_FD: i32 = 3;

/// The forked runtime: its descriptors and signals set as an exec'd one's,
/// then the run; its exit code.
fn child(
    rt: &BuiltinRuntime,
    stdio: [i32; 3],
    gate: Option<i32>,
    parent: Pid,
    title: ProcessTitle,
) -> i32 {
    // SAFETY: plain system calls on descriptors of this process alone; dup2
    // clears close-on-exec on the copies.
    unsafe {
        // Out of the way of 0 to 3 first: a source may be one of them.
        let moved: Vec<i32> = stdio
            .iter()
            .chain(gate.iter())
            .map(|&fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10))
            .collect();
        if moved.iter().any(|&fd| fd < 0) {
            return 125;
        }
        for (target, &fd) in moved.iter().enumerate() {
            if libc::dup2(fd, target as i32) < 0 {
                return 125;
            }
        }
        let first_free = if gate.is_some() { GATE_FD + 1 } else { 3 };
        // Every other descriptor of the supervisor goes: its locks, its
        // attach socket and the other ends of these pipes among them.
        libc::syscall(libc::SYS_close_range, first_free as u32, u32::MAX, 0u32);
    }
    reset_signals();
    // As Rust's start of an exec'd berth leaves it: a write to a closed
    // pipe is an error, not the end (the container's process gets the
    // default back before its exec).
    // SAFETY: ignoring a signal involves no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    // A supervisor that died before this line would leave no one to kill
    // the runtime: its death is then this one's end.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != parent
    {
        return 125;
    }
    title.apply();
    let run = crate::bundle::load_spec(&rt.spec).and_then(|spec| {
        crate::linux::run_with(
            &spec,
            &RunOptions {
                pid_file: rt.pid_file.clone(),
                console_socket: rt.console_socket.clone(),
                start_fd: gate.map(|_| GATE_FD),
            },
        )
    });
    match run {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            125
        }
    }
}

/// Whether this process may fork berth's runtime (else it runs the
/// runtime's command).
pub(crate) fn may_fork() -> bool {
    nix::unistd::geteuid().is_root() && crate::process::single_threaded()
}
