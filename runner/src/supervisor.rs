//! The per-container supervisor (conmon's job): starts the runtime, owns
//! the container's stdio (its log, and the caller's terminal when
//! attached), publishes its ports, gives it outbound network through
//! slirp4netns, and records its state and exit code.
//!
//! A detached container's supervisor is its own process
//! (`berth __supervise ID`, in a new session); `berth run` without `-d`
//! supervises in-process. The runtime it starts is a separate
//! single-threaded process, so this one may use threads freely.

use crate::container::{process_start, Containers, Status};
use crate::error::{Error, Result};
use crate::log::{now, LogWriter};
use crate::ports::PortMapping;
use crate::runtime_process::{BuiltinRuntime, Pipes, RuntimeProcess};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to supervise one run of a container.
pub struct Supervision {
    /// The runtime, ready to spawn (berth's helper or runc/crun).
    pub command: Command,
    /// berth's own runtime, which a supervisor that is one thread when the
    /// run starts forks instead of spawning `command` (the same runtime).
    pub builtin: Option<BuiltinRuntime>,
    /// Where the runtime writes the container's first process id.
    pub pid_file: PathBuf,
    /// With `-t`: where the runtime sends the terminal (the command was
    /// given this path as its console socket).
    pub console_socket: Option<PathBuf>,
    pub ports: Vec<PortMapping>,
    /// The attach socket: the output goes to its clients too, and the
    /// container's stdin and terminal size come from them.
    pub hub: Option<std::sync::Arc<crate::attach::AttachHub>>,
    /// The container has a stdin (`-i`): what the hub's clients write.
    pub open_stdin: bool,
    /// A private network namespace that slirp4netns connects outward.
    pub slirp: bool,
    /// The runtime takes `--start-fd N` and waits there until ports and
    /// network are ready (berth's own does; runc has no such flag).
    pub start_gate: bool,
    /// Called once the container runs (its record says so), with its pid.
    pub on_start: Option<Box<dyn FnOnce(i32) + Send>>,
    /// Called once the container's process is gone, before the record
    /// says so: whoever waits for the exit finds what it held released.
    pub on_exit: Option<Box<dyn FnOnce() + Send>>,
}

/// The container's first process id, once the runtime has it: said on the
/// start gate by berth's runtime, else (runc, crun) written to the pid file,
/// which is looked at often. None when the runtime ended first.
fn wait_for_pid(
    child: &mut RuntimeProcess,
    pid_file: &std::path::Path,
    gate: Option<&std::os::unix::net::UnixStream>,
) -> Result<Option<i32>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    if let Some(g) = gate {
        let _ = g.set_read_timeout(Some(Duration::from_secs(30)));
        let mut said = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match std::io::Read::read(&mut &*g, &mut byte) {
                Ok(1) if byte[0] == b'\n' => break,
                Ok(1) => said.push(byte[0]),
                // Closed unsaid: the runtime ended (its error is on stderr).
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Setup(
                        "the runtime did not start the container".into(),
                    ))
                }
                Err(e) => return Err(Error::Setup(format!("cannot hear from the runtime: {e}"))),
            }
        }
        return String::from_utf8_lossy(&said)
            .trim()
            .parse::<i32>()
            .map(Some)
            .map_err(|_| Error::Setup("the runtime said no process id".into()));
    }
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            return Ok(Some(pid));
        }
        match child.try_wait() {
            Ok(Some(_)) => return Ok(None),
            Err(e) => return Err(Error::Setup(format!("cannot wait for the runtime: {e}"))),
            Ok(None) => {}
        }
        if Instant::now() > deadline {
            return Err(Error::Setup(
                "the runtime did not start the container".into(),
            ));
        }
        // The runtime writes it within a few milliseconds: look often.
        std::thread::sleep(Duration::from_micros(250));
    }
}

/// slirp4netns for the network namespace of process `pid`: a tap device with
/// 10.0.2.100/24, the gateway 10.0.2.2 and DNS at 10.0.2.3, as rootless podman
/// has it. The host's loopback stays unreachable, as in docker. A rootless
/// container's namespaces belong to its user namespace, which slirp4netns
/// joins too; its API socket then publishes ports (no setns from here).
///
/// It must not outlive this supervisor, even one killed with SIGKILL: it
/// exits when its exit descriptor reads end-of-file, which is when the
/// write end (returned beside it, close-on-exec) closes with this process.
fn start_slirp(pid: i32, api_socket: Option<&Path>) -> Option<Slirp> {
    let (ready_r, ready_w) = nix::unistd::pipe().ok()?;
    let (exit_r, exit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    nix::fcntl::fcntl(
        &exit_r,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .ok()?;
    let mut cmd = Command::new("slirp4netns");
    cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback"])
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()));
    if rootless() {
        cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
    }
    if let Some(p) = api_socket {
        cmd.arg(format!("--api-socket={}", p.display()));
    }
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .arg(pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    drop(ready_w);
    drop(exit_r);
    // It writes "1" once the device is configured; give it a moment at most.
    let mut f = std::fs::File::from(ready_r);
    let _ = set_read_timeout(&f, Duration::from_secs(5));
    let mut b = [0u8; 1];
    let _ = std::io::Read::read(&mut f, &mut b);
    Some(Slirp {
        child,
        _exit: exit_w,
    })
}

/// A running slirp4netns and the descriptor whose closing ends it.
struct Slirp {
    child: Child,
    _exit: OwnedFd,
}

fn rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Publishes `ports` through slirp4netns's API (`add_hostfwd`) to the
/// container's address.
fn slirp_forward(api_socket: &Path, ports: &[PortMapping]) -> Result<()> {
    use std::io::Read;
    for p in ports {
        let mut s = std::os::unix::net::UnixStream::connect(api_socket)
            .map_err(|e| Error::Setup(format!("slirp4netns API: {e}")))?;
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": p.proto.name(),
                "host_addr": p.host.ip().to_string(),
                "host_port": p.host.port(),
                "guest_addr": "10.0.2.100",
                "guest_port": p.container,
            }
        });
        s.write_all(request.to_string().as_bytes())
            .map_err(|e| Error::Setup(format!("slirp4netns API: {e}")))?;
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        if v.get("error").is_some() || v.get("return").is_none() {
            return Err(Error::Setup(format!(
                "cannot publish port {}/{}: slirp4netns says {}",
                p.host,
                p.proto.name(),
                reply.trim()
            )));
        }
    }
    Ok(())
}

fn set_read_timeout(f: &std::fs::File, t: Duration) -> std::io::Result<()> {
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(f),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = t.as_millis().min(u16::MAX as u128) as u16;
    nix::poll::poll(&mut fds, ms)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Whether slirp4netns is installed.
pub fn slirp_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("slirp4netns").is_file()))
}

/// Writes the supervisor's view of the state into the record, keeping what
/// others changed meanwhile (a rename).
fn save_state(
    containers: &Containers,
    rec: &crate::container::Record,
) -> Result<crate::container::Record> {
    containers.update(&rec.id, |r| r.state = rec.state.clone())
}

/// Runs the container of record `rec` (as just read) once and returns its
/// exit code and its record as the run left it; the record says running while it runs and exited (with the
/// code) after.
pub fn supervise(
    containers: &Containers,
    mut rec: crate::container::Record,
    mut s: Supervision,
) -> Result<(i32, crate::container::Record)> {
    let id = rec.id.clone();
    let id = id.as_str();
    let log = LogWriter::open(&containers.log_path(id))
        .map_err(|e| Error::Setup(format!("cannot open the container's log: {e}")))?;
    let listener = match &s.console_socket {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Some(std::os::unix::net::UnixListener::bind(p).map_err(|e| {
                Error::Setup(format!(
                    "cannot make the console socket {}: {e}",
                    p.display()
                ))
            })?)
        }
        None => None,
    };
    let tty = listener.is_some();
    s.command.stdin(if s.open_stdin && !tty {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    s.command
        .stdout(if tty { Stdio::null() } else { Stdio::piped() })
        .stderr(Stdio::piped());
    let _ = std::fs::remove_file(&s.pid_file);
    // The start gate: the runtime says the container's pid on it, then waits
    // for one byte back.
    let gate = if s.start_gate {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::Setup(format!("cannot make a socket pair: {e}")))?;
        // Only the runtime gets its end (std's pair closes on exec).
        nix::fcntl::fcntl(
            &theirs,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| Error::Setup(format!("cannot pass a socket: {e}")))?;
        s.command
            .arg("--start-fd")
            .arg(theirs.as_raw_fd().to_string());
        Some((OwnedFd::from(theirs), ours))
    } else {
        None
    };
    let spawned = match &s.builtin {
        Some(rt) if crate::runtime_process::may_fork() => crate::runtime_process::fork(
            rt,
            &Pipes {
                stdin: s.open_stdin && !tty,
                stdout: !tty,
            },
            gate.as_ref().map(|(r, _)| r),
        ),
        _ => s.command.spawn().map(RuntimeProcess::Spawned),
    };
    // The runtime is forked (or not) by now: the hub may have threads.
    if let Some(h) = &s.hub {
        h.open();
    }
    let go = gate.map(|(r, w)| {
        drop(r);
        w
    });
    let mut child = spawned.map_err(|e| Error::Setup(format!("cannot start the runtime: {e}")))?;
    // A signal for the supervisor is one for the container.
    crate::linux::forward_signals(child.id());

    let me = std::process::id() as i32;
    rec.state.status = Status::Running;
    rec.state.restarting = false;
    rec.state.supervisor = process_start(me).map(|t| (me, t));
    rec.state.started_at = now();
    rec.state.exit_code = 0;
    rec.state.error.clear();
    // Saved once the pid is known (below): every save makes a file.

    let mut copies = Vec::new();
    let hub = s.hub.clone();
    let echo = |err: bool| -> Option<Box<dyn Write + Send>> {
        let kind = if err {
            crate::attach::STDERR
        } else {
            crate::attach::STDOUT
        };
        hub.as_ref().map(|h| h.writer(kind))
    };
    if let (Some(h), Some(stdin)) = (&hub, child.take_stdin()) {
        h.set_run(Some(crate::attach::StdinTarget::Pipe(stdin)), None);
    }
    if let Some(out) = child.take_stdout() {
        let (log, echo) = (log.clone(), echo(false));
        copies.push(std::thread::spawn(move || log.copy("stdout", out, echo)));
    }
    if let Some(err) = child.take_stderr() {
        let (log, echo) = (log.clone(), echo(true));
        copies.push(std::thread::spawn(move || log.copy("stderr", err, echo)));
    }

    let started = (|| -> Result<(Option<OwnedFd>, Option<Slirp>)> {
        let pid = wait_for_pid(&mut child, &s.pid_file, go.as_ref())?;
        let Some(pid) = pid else {
            return Ok((None, None));
        };
        rec.state.pid = pid;
        // Without root the proxy cannot enter the container's namespaces
        // (they belong to its user namespace): slirp4netns forwards instead.
        let api = (rootless() && !s.ports.is_empty()).then(|| {
            std::env::temp_dir().join(format!("berth-slirp-{}-{pid}.sock", std::process::id()))
        });
        if api.is_some() && !s.slirp {
            return Err(Error::Setup(
                "publishing ports without root needs slirp4netns and the private network".into(),
            ));
        }
        if !s.ports.is_empty() && api.is_none() {
            crate::ports::publish(pid, &s.ports)?;
        }
        let slirp = if s.slirp {
            start_slirp(pid, api.as_deref())
        } else {
            None
        };
        if let Some(a) = &api {
            let forwarded = slirp_forward(a, &s.ports);
            let _ = std::fs::remove_file(a);
            forwarded?;
        }
        if let Some(w) = &go {
            (&mut &*w)
                .write_all(b"1")
                .map_err(|e| Error::Setup(format!("cannot start the container: {e}")))?;
        }
        // Said before the record has its pid: whoever waits for that (a
        // detached start) finds the start said.
        if let Some(f) = s.on_start.take() {
            f(pid);
        }
        save_state(containers, &rec)?;
        let master = match &listener {
            Some(l) => Some(crate::console::receive(l, Duration::from_secs(30))?),
            None => None,
        };
        Ok((master, slirp))
    })();
    let (master, slirp) = match started {
        Ok(v) => v,
        Err(e) => {
            child.kill();
            let _ = child.wait();
            if let Some(f) = s.on_exit.take() {
                f();
            }
            rec.state.status = Status::Exited;
            rec.state.exit_code = 125;
            rec.state.error = e.to_string();
            rec.state.finished_at = now();
            rec.state.pid = 0;
            let _ = save_state(containers, &rec);
            return Err(e);
        }
    };
    if let Some(m) = &master {
        if let Some(h) = &hub {
            let input = if s.open_stdin {
                m.try_clone().ok().map(crate::attach::StdinTarget::Terminal)
            } else {
                None
            };
            h.set_run(input, m.try_clone().ok());
        }
        if let Ok(read) = m.try_clone() {
            let (log, echo) = (log.clone(), echo(false));
            copies.push(std::thread::spawn(move || {
                log.copy("stdout", std::fs::File::from(read), echo)
            }));
        }
    }
    let status = child.wait();
    if let Some(h) = &hub {
        h.set_run(None, None);
    }
    drop(master);
    if let Some(p) = &s.console_socket {
        let _ = std::fs::remove_file(p);
    }
    for c in copies {
        let _ = c.join();
    }
    if let Some(mut sl) = slirp {
        let _ = sl.child.kill();
        let _ = sl.child.wait();
    }
    if let Some(f) = s.on_exit.take() {
        f();
    }
    let code = match status {
        Ok(code) => code,
        Err(e) => {
            rec.state.error = format!("cannot wait for the container: {e}");
            125
        }
    };
    rec.state.status = Status::Exited;
    rec.state.exit_code = code;
    rec.state.finished_at = now();
    rec.state.pid = 0;
    rec.state.supervisor = None;
    let rec = save_state(containers, &rec)?;
    Ok((code, rec))
}
