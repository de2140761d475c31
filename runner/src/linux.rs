//! berth's own runtime: runs an OCI spec's process in new namespaces on its
//! root filesystem. Called in a single-threaded helper process (a re-exec of
//! the berth binary): it forks, and forking a multi-threaded process is
//! unsafe.

use crate::cgroup::{Cgroup, Limits};
use crate::error::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    chdir, execve, fork, pivot_root, setgroups, sethostname, setresgid, setresuid, ForkResult, Gid,
    Uid,
};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: i32) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn sys(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// `path` inside `root` with every symlink on the way resolved inside
/// `root` too (an absolute link starts again at `root`, `..` stops there),
/// as runc's securejoin: an image's `/data -> /etc` puts a mount at
/// `ROOT/etc`, never at the host's `/etc`.
fn in_root(root: &Path, path: &str) -> Result<PathBuf> {
    use std::collections::VecDeque;
    let mut todo: VecDeque<std::ffi::OsString> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let full = root.join(&next);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::Setup(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = fs::read_link(&full)
                    .map_err(|e| Error::Setup(format!("readlink {}: {e}", full.display())))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for part in target.components().rev() {
                    match part {
                        Component::Normal(s) => todo.push_front(s.to_os_string()),
                        Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => cur = next,
        }
    }
    Ok(root.join(cur))
}

/// Makes the folders down to `dest` (and `dest` itself: an empty file when
/// `file`, else a folder) one component at a time relative to the one
/// before, never following a symlink: a link swapped in after [`in_root`]
/// resolved the path makes this fail instead of creating on the host.
fn make_in_root(root: &Path, dest: &Path, file: bool) -> Result<()> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::mkdirat;
    let rel = dest
        .strip_prefix(root)
        .map_err(|_| Error::Setup(format!("{} is outside the root filesystem", dest.display())))?;
    let swapped = |what: &Path, e: nix::Error| {
        Error::Setup(format!(
            "mount point {}: {e} (changed while the container was set up?)",
            what.display()
        ))
    };
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = open(root, dir_flags, Mode::empty()).map_err(|e| swapped(root, e))?;
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let name = c.as_os_str();
        let last = i + 1 == parts.len();
        if last && file {
            match openat(
                &dir,
                name,
                OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_WRONLY,
                Mode::from_bits_truncate(0o644),
            ) {
                Ok(_) => return Ok(()),
                // An existing file (or mount point) that is not a link.
                Err(nix::Error::EISDIR) | Err(nix::Error::ETXTBSY) | Err(nix::Error::EACCES) => {
                    return Ok(())
                }
                Err(e) => return Err(swapped(dest, e)),
            }
        }
        match mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(swapped(dest, e)),
        }
        dir = openat(&dir, name, dir_flags, Mode::empty()).map_err(|e| swapped(dest, e))?;
    }
    Ok(())
}

/// Opens `dest` without following a last symlink and checks that it still
/// lies inside `root`: a symlink swapped in after [`in_root`] looked cannot
/// move a mount out. Mounting onto the returned `/proc/self/fd/N` path
/// mounts onto exactly what was checked.
fn pin(root: &Path, dest: &Path) -> Result<(std::os::fd::OwnedFd, PathBuf)> {
    use nix::fcntl::{open, OFlag};
    use std::os::fd::AsRawFd;
    let fd = open(
        dest,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Setup(format!("cannot open mount point {}: {e}", dest.display())))?;
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let real = fs::read_link(&proc_path)
        .map_err(|e| Error::Setup(format!("cannot check mount point {}: {e}", dest.display())))?;
    if !real.starts_with(root) {
        return Err(Error::Setup(format!(
            "mount point {} resolves outside the root filesystem",
            dest.display()
        )));
    }
    Ok((fd, proc_path))
}

/// Runs the spec's process and returns its exit code (128 + signal when it
/// was killed), as docker reports it.
pub fn run(spec: &Spec) -> Result<i32> {
    run_with_pid_file(spec, None)
}

/// How the helper runs a spec, as runc's flags of the same names say.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Where to write the container's first process id once it is in its
    /// namespaces (`runc run --pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Where to send the master of the container's terminal when the spec
    /// asks for one (`runc run --console-socket`).
    pub console_socket: Option<PathBuf>,
    /// A socket to say the container's pid on once the pid file is written,
    /// then to read one byte from before the container's process starts:
    /// the supervisor's go-ahead once it published ports and connected the
    /// network.
    pub start_fd: Option<i32>,
}

/// Like [`run`], writing the container's first process id to `pid_file`.
pub fn run_with_pid_file(spec: &Spec, pid_file: Option<&Path>) -> Result<i32> {
    run_with(
        spec,
        &RunOptions {
            pid_file: pid_file.map(Path::to_path_buf),
            ..RunOptions::default()
        },
    )
}

/// Runs the spec as [`run`] does, with runc's options.
pub fn run_with(spec: &Spec, opts: &RunOptions) -> Result<i32> {
    let pid_file = opts.pid_file.as_deref();
    // The helper and its container go when berth goes (a killed build or a
    // killed `berth run`): nothing is left running that no one supervises.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let rootless = !nix::unistd::geteuid().is_root();
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        enter_user_namespace(spec)?;
    }
    let mut flags = CloneFlags::empty();
    for ns in &namespaces {
        // A namespace with a path is joined (a network namespace file the
        // engine made and its network backend set up).
        if let Some(path) = ns.path() {
            join_namespace(path, ns.typ())?;
            continue;
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            _ => CloneFlags::empty(),
        };
    }
    // The child makes its mount, network, uts and ipc namespaces itself,
    // while this process makes its cgroup (and its pivot_root then leaves
    // this process's root alone); the pid namespace must be made here, for
    // the child to be born in it.
    let own = flags
        & (CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC);
    flags.remove(own);
    unshare(flags).map_err(sys("cannot create namespaces"))?;
    let limits = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(Limits::from_resources)
        .unwrap_or_default();
    // A spec that names its cgroup gets one in every hierarchy, as runc
    // makes it (a container's stats and pause need them); without a name,
    // only a limited run gets one, where its limits are.
    let named = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()));
    let wants_cgroup = !rootless && (!limits.is_empty() || named.is_some());
    let make_cgroup = || -> Result<Option<Cgroup>> {
        if !wants_cgroup {
            return Ok(None);
        }
        let id = named
            .clone()
            .or_else(|| spec.hostname().clone())
            .unwrap_or_else(|| std::process::id().to_string());
        Cgroup::create(&id, &limits, named.is_some()).map(Some)
    };
    // The child sets itself up at once (its mounts while this process makes
    // its cgroup and the supervisor gets ready), then waits at the gate
    // before it execs: nothing it starts escapes the limits.
    let (gate_rx, gate_tx) = nix::unistd::pipe().map_err(sys("cannot create a pipe"))?;
    // From the child: its namespaces are made (whoever learns its pid may
    // join them).
    let (made_rx, made_tx) = nix::unistd::pipe().map_err(sys("cannot create a pipe"))?;
    // SAFETY: this process is single-threaded (the caller's contract), so the
    // child may do anything after fork.
    match unsafe { fork() }.map_err(sys("cannot fork"))? {
        ForkResult::Child => {
            drop(gate_tx);
            drop(made_rx);
            let started = if rootless && !limits.is_empty() {
                rlimits(&limits)
            } else {
                Ok(())
            };
            // docker's codes: 127 command not found, 125 anything else.
            exit_failed(
                started.and_then(|()| {
                    unshare(own).map_err(sys("cannot create namespaces"))?;
                    nix::unistd::write(&made_tx, &[1]).map_err(sys("cannot start"))?;
                    drop(made_tx);
                    child(spec, opts.console_socket.as_deref(), gate_rx)
                }),
                "cannot start the container",
                125,
            );
        }
        ForkResult::Parent { child } => {
            drop(gate_rx);
            drop(made_tx);
            let give_up = |e: Error| -> Result<i32> {
                // A child that failed its setup is gone already and said why.
                if let Ok(WaitStatus::Exited(_, code)) = waitpid(child, Some(WaitPidFlag::WNOHANG))
                {
                    return Ok(code);
                }
                let _ = signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                Err(e)
            };
            let cgroup = match make_cgroup() {
                Ok(c) => c,
                Err(e) => return give_up(e),
            };
            if let Some(cg) = &cgroup {
                if let Err(e) = cg.add(child.as_raw()) {
                    let given_up = give_up(e);
                    if let Some(cg) = cgroup {
                        cg.remove();
                    }
                    return given_up;
                }
            }
            let mut byte = [0u8; 1];
            if !matches!(nix::unistd::read(&made_rx, &mut byte), Ok(1)) {
                // It ended before: its exit code, and what it said.
                let code = wait_for(child);
                if let Some(cg) = cgroup {
                    cg.remove();
                }
                return code;
            }
            drop(made_rx);
            let ready = (|| {
                if let Some(p) = pid_file {
                    fs::write(p, child.as_raw().to_string())
                        .map_err(|e| Error::Setup(format!("cannot write {}: {e}", p.display())))?;
                }
                if let Some(fd) = opts.start_fd {
                    // SAFETY: the caller handed this descriptor to us to own.
                    let go = unsafe { OwnedFd::from_raw_fd(fd) };
                    // The pid said there, then one byte back.
                    let said = format!("{}\n", child.as_raw());
                    let mut byte = [0u8; 1];
                    if nix::unistd::write(&go, said.as_bytes()).ok() != Some(said.len())
                        || !matches!(nix::unistd::read(&go, &mut byte), Ok(1))
                    {
                        return Err(Error::Setup(
                            "the supervisor did not let the container start".into(),
                        ));
                    }
                }
                Ok(())
            })();
            if let Err(e) = ready {
                let _ = signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                if let Some(cg) = cgroup {
                    cg.remove();
                }
                return Err(e);
            }
            // A child whose setup failed has gone: its exit code says so.
            let _ = nix::unistd::write(&gate_tx, &[1]);
            drop(gate_tx);
            let code = wait_for(child);
            if let Some(cg) = cgroup {
                cg.remove();
            }
            code
        }
    }
}

/// A new user namespace with the spec's `uidMappings`/`gidMappings`. One
/// id each, the caller's own, this process may write itself (after giving up
/// setgroups, as the kernel requires); subordinate ranges are written by
/// the setuid newuidmap/newgidmap, from a child forked before the unshare
/// (they must run outside the new namespace).
fn enter_user_namespace(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let own = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let maps =
        |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, own: u32| -> Vec<(u32, u32, u32)> {
            match m.as_deref() {
                Some(m) if !m.is_empty() => m
                    .iter()
                    .map(|m| (m.container_id(), m.host_id(), m.size()))
                    .collect(),
                _ => vec![(0, own, 1)],
            }
        };
    let uids = maps(linux.uid_mappings(), own.0);
    let gids = maps(linux.gid_mappings(), own.1);
    let only_own = |m: &[(u32, u32, u32)], id: u32| m == [(0, id, 1)];
    if only_own(&uids, own.0) && only_own(&gids, own.1) {
        unshare(CloneFlags::CLONE_NEWUSER).map_err(sys("cannot create a user namespace"))?;
        let write = |file: &str, text: String| {
            fs::write(format!("/proc/self/{file}"), &text).map_err(|e| {
                Error::Setup(format!(
                    "cannot write /proc/self/{file} ({}): {e}",
                    text.trim()
                ))
            })
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("0 {} 1\n", own.0))?;
        return write("gid_map", format!("0 {} 1\n", own.1));
    }
    let (go_r, go_w) = nix::unistd::pipe().map_err(sys("cannot create a pipe"))?;
    let me = std::process::id().to_string();
    // SAFETY: single-threaded (the helper's contract); the child only
    // waits, runs two programs and exits.
    match unsafe { fork() }.map_err(sys("cannot fork"))? {
        ForkResult::Child => {
            drop(go_w);
            let mut b = [0u8; 1];
            // The parent says 1 once it is in its new user namespace.
            if !matches!(nix::unistd::read(&go_r, &mut b), Ok(1)) || b[0] != 1 {
                std::process::exit(1);
            }
            for (tool, m) in [("newuidmap", &uids), ("newgidmap", &gids)] {
                let mut cmd = std::process::Command::new(tool);
                cmd.arg(&me);
                for (inside, host, size) in m.iter() {
                    cmd.arg(inside.to_string())
                        .arg(host.to_string())
                        .arg(size.to_string());
                }
                if !cmd.status().is_ok_and(|s| s.success()) {
                    std::process::exit(1);
                }
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            let unshared = unshare(CloneFlags::CLONE_NEWUSER);
            let _ = nix::unistd::write(&go_w, &[u8::from(unshared.is_ok())]);
            drop(go_w);
            unshared.map_err(sys("cannot create a user namespace"))?;
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err(Error::Setup(
                    "newuidmap/newgidmap could not map the subordinate ids of /etc/subuid and /etc/subgid".into(),
                )),
            }
        }
    }
}

/// Without root there is no cgroup of our own: rlimits come closest.
fn rlimits(limits: &Limits) -> Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    eprintln!("berth: resource limits need root for cgroups; using rlimits instead");
    if let Some(m) = limits.memory {
        let m = m as u64;
        setrlimit(Resource::RLIMIT_AS, m, m).map_err(sys("setrlimit(RLIMIT_AS)"))?;
    }
    if let Some(p) = limits.pids {
        let p = p as u64;
        setrlimit(Resource::RLIMIT_NPROC, p, p).map_err(sys("setrlimit(RLIMIT_NPROC)"))?;
    }
    Ok(())
}

/// The signals a user sends that `docker run` proxies to its container.
pub const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// From now on, the signals a user sends go to process `pid` instead of
/// this one, as `docker run` proxies them to its container.
pub fn forward_signals(pid: i32) {
    CHILD.store(pid, Ordering::Relaxed);
    for s in FORWARDED_SIGNALS {
        // SAFETY: the handler only calls kill(2).
        unsafe {
            let _ = signal::signal(s, SigHandler::Handler(forward));
        }
    }
}

/// Forwards signals to the container's first process and returns its exit
/// code, as docker reports it.
pub(crate) fn wait_for(child: nix::unistd::Pid) -> Result<i32> {
    forward_signals(child.as_raw());
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::Setup(format!("cannot wait for the container: {e}"))),
        }
    }
}

pub(crate) enum Never {}

/// The end of a forked child whose start failed: says why and exits with
/// 127 when the command was not found, else `other` (as docker's codes).
pub(crate) fn exit_failed(started: Result<Never>, what: &str, other: i32) -> ! {
    let code = match started {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("berth: {what}: {e}");
            if matches!(e, Error::Exec(_)) {
                127
            } else {
                other
            }
        }
    };
    std::process::exit(code)
}

fn child(spec: &Spec, console_socket: Option<&Path>, gate: OwnedFd) -> Result<Never> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // The socket's path is on the host: connect before pivot_root.
    let console = match console_socket {
        Some(p) if terminal => Some(crate::console::connect(p)?),
        _ => None,
    };
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| Error::Setup("the spec has no root".into()))?;
    let root = root
        .canonicalize()
        .map_err(|e| Error::Setup(format!("root {}: {e}", root.display())))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Setup("the spec has no process".into()))?;
    let linux = spec.linux().clone().unwrap_or_default();
    let net_ns = linux
        .namespaces()
        .as_ref()
        .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::Network));

    // Nothing mounted here may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("cannot make mounts private"))?;
    mount(
        Some(&root),
        &root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("cannot bind the root filesystem"))?;

    for m in spec.mounts().clone().unwrap_or_default() {
        let dest = in_root(&root, &m.destination().display().to_string())?;
        let kind = m.typ().clone().unwrap_or_default();
        let source = m.source().clone().unwrap_or_default();
        let mut mflags = MsFlags::empty();
        let mut data = Vec::new();
        let mut readonly = false;
        for o in m.options().clone().unwrap_or_default() {
            match o.as_str() {
                "nosuid" => mflags |= MsFlags::MS_NOSUID,
                "noexec" => mflags |= MsFlags::MS_NOEXEC,
                "nodev" => mflags |= MsFlags::MS_NODEV,
                "strictatime" => mflags |= MsFlags::MS_STRICTATIME,
                "ro" => readonly = true,
                "rbind" => mflags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "bind" => mflags |= MsFlags::MS_BIND,
                other => data.push(other.to_string()),
            }
        }
        let is_bind = kind == "bind" || mflags.contains(MsFlags::MS_BIND);
        make_in_root(&root, &dest, is_bind && source.is_file())?;
        let data = data.join(",");
        let (_pinned, target) = pin(&root, &dest)?;
        if is_bind {
            mount(
                Some(&source),
                &target,
                None::<&str>,
                mflags | MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                Error::Setup(format!(
                    "bind {} on {}: {e}",
                    source.display(),
                    dest.display()
                ))
            })?;
            if readonly {
                // The new mount, found again through its (checked) path.
                let (_mounted, target) = pin(&root, &dest)?;
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    mflags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(|e| Error::Setup(format!("remount {} read-only: {e}", dest.display())))?;
            }
        } else {
            if readonly {
                mflags |= MsFlags::MS_RDONLY;
            }
            let data_opt = (!data.is_empty()).then_some(data.as_str());
            mount(
                Some(source.as_path()),
                &target,
                Some(kind.as_str()),
                mflags,
                data_opt,
            )
            .map_err(|e| {
                Error::Setup(format!(
                    "mount {kind} on {}: {e}",
                    m.destination().display()
                ))
            })?;
        }
    }
    make_devices(&root)?;

    // Switch to the new root and drop the old one.
    chdir(&root).map_err(sys("cannot enter the root filesystem"))?;
    pivot_root(".", ".").map_err(sys("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("cannot detach the old root"))?;
    chdir("/").map_err(sys("chdir /"))?;

    if !linux.masked_paths().clone().unwrap_or_default().is_empty() {
        for p in linux.masked_paths().clone().unwrap_or_default() {
            let path = Path::new(&p);
            if path.is_dir() {
                let _ = mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None::<&str>,
                );
            } else if path.exists() {
                let _ = mount(
                    Some("/dev/null"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                );
            }
        }
    }
    for p in linux.readonly_paths().clone().unwrap_or_default() {
        let path = Path::new(&p);
        if path.exists()
            && mount(
                Some(path),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .is_ok()
        {
            let _ = mount(
                Some(path),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                None::<&str>,
            );
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("cannot make the root filesystem read-only"))?;
    }
    if let Some(h) = spec.hostname() {
        sethostname(h).map_err(sys("sethostname"))?;
    }
    if net_ns {
        loopback_up()?;
    }

    if let Some(c) = &console {
        crate::console::attach_new_terminal(c, crate::exec::console_size(process))?;
    }
    start_process(process, linux.seccomp().as_ref(), Some(gate))
}

/// Becomes the spec's process: working dir, groups, user, capabilities,
/// no_new_privs, seccomp, then exec. Shared by a container's first process
/// and `berth exec`.
pub(crate) fn start_process(
    process: &oci_spec::runtime::Process,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    gate: Option<OwnedFd>,
) -> Result<Never> {
    let user = process.user();
    let cwd = process.cwd();
    fs::create_dir_all(cwd)
        .map_err(|e| Error::Setup(format!("working directory {}: {e}", cwd.display())))?;
    if user.uid() != 0 || user.gid() != 0 {
        // The process's own working directory must be reachable by its user.
        let _ = std::os::unix::fs::chown(cwd, None, None);
    }

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let program = find_program(&args[0], &env)?;

    // docker's default is no no_new_privs (setuid programs such as sudo
    // work): the filter then goes on first, while the process still holds
    // CAP_SYS_ADMIN, as runc does; the setup after it is allowed by the
    // policy. With no_new_privs it goes on last.
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let filter = seccomp.map(crate::seccomp::compile).transpose()?;
    if !no_new_privs {
        if let Some(f) = &filter {
            crate::seccomp::apply(f)?;
        }
    }

    // Capabilities: the bounding set first (needs CAP_SETPCAP), then the
    // user, keeping the permitted set across the uid change, then the sets.
    let caps = process.capabilities().clone().unwrap_or_default();
    // A capability this process lacks cannot be granted (`--privileged`
    // asks for all of them; a sandboxed host may hold fewer): as docker's
    // "all", that is all the runtime has.
    let held = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
    let to_set = |s: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>| -> caps::CapsHashSet {
        s.clone()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| {
                // The spec's serialised name is the kernel's (`CAP_DAC_OVERRIDE`).
                let name = serde_json::to_value(c).ok()?.as_str()?.to_string();
                cap_from_name(&name)
            })
            .filter(|c| held.contains(c))
            .collect()
    };
    let bounding = to_set(caps.bounding());
    for c in caps::all() {
        if !bounding.contains(&c) {
            let _ = caps::drop(None, caps::CapSet::Bounding, c);
        }
    }
    let groups: Vec<Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // In a user namespace without root outside, setgroups is denied (and
    // there are no other groups to give).
    let denied = fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !denied || !groups.is_empty() {
        setgroups(&groups).map_err(sys("setgroups"))?;
    }
    nix::sys::prctl::set_keepcaps(true).map_err(sys("keepcaps"))?;
    let unmapped = |what: &'static str, id: u32| {
        move |e: nix::Error| {
            if e == nix::Error::EINVAL && denied {
                Error::Setup(format!(
                    "{what} {id} has no mapping in this rootless container: without root only 0 (you) is mapped"
                ))
            } else {
                Error::Setup(format!("set{what}: {e}"))
            }
        }
    };
    setresgid(
        Gid::from_raw(user.gid()),
        Gid::from_raw(user.gid()),
        Gid::from_raw(user.gid()),
    )
    .map_err(unmapped("gid", user.gid()))?;
    setresuid(
        Uid::from_raw(user.uid()),
        Uid::from_raw(user.uid()),
        Uid::from_raw(user.uid()),
    )
    .map_err(unmapped("uid", user.uid()))?;
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, caps::CapSet::Effective, &to_set(caps.effective()))
        .map_err(|e| Error::Setup(format!("capabilities: {e}")))?;
    caps::set(None, caps::CapSet::Permitted, &to_set(caps.permitted()))
        .map_err(|e| Error::Setup(format!("capabilities: {e}")))?;
    caps::set(None, caps::CapSet::Inheritable, &to_set(caps.inheritable()))
        .map_err(|e| Error::Setup(format!("capabilities: {e}")))?;
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(sys("no_new_privs"))?;
    }
    chdir(cwd).map_err(|e| Error::Setup(format!("chdir {}: {e}", cwd.display())))?;
    if let Some(g) = gate {
        // Set up: now the runtime's word (the cgroup joined, the supervisor
        // ready) before the process is the container's.
        let mut byte = [0u8; 1];
        if !matches!(nix::unistd::read(&g, &mut byte), Ok(1)) {
            return Err(Error::Setup(
                "the runtime went away before the start".into(),
            ));
        }
        // The host's berth binary until exec: its /proc/PID/exe is not for
        // the container to open (CVE-2019-5736). Dumpable until the gate:
        // slirp4netns joins this process's namespaces through /proc meanwhile.
        nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    }
    // Rust ignores SIGPIPE for itself; a container's process starts with
    // the default, as docker's do.
    // SAFETY: sets a default disposition; no handler is involved.
    unsafe {
        let _ = signal::signal(Signal::SIGPIPE, signal::SigHandler::SigDfl);
    }
    close_inherited_fds();

    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Setup("an argument contains a NUL byte".into()))?;
    let cenv: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Setup("an environment variable contains a NUL byte".into()))?;
    let cprog = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Setup("bad program path".into()))?;
    // Last, so that the setup above is not subject to it.
    if no_new_privs {
        if let Some(f) = &filter {
            crate::seccomp::apply(f)?;
        }
    }
    let err = execve(&cprog, &cargs, &cenv)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Err(Error::Exec(format!("exec {}: {err}", args[0])))
}

fn cap_from_name(name: &str) -> Option<caps::Capability> {
    name.parse().ok()
}

/// The program to run: a path, or the first match in the container's PATH.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if let Ok(m) = fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Exec(format!(
        "exec: \"{arg0}\": executable file not found in $PATH"
    )))
}

/// /dev's standard nodes and links, as runc makes them.
fn make_devices(root: &Path) -> Result<()> {
    let dev = root.join("dev");
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        if p.exists() {
            continue;
        }
        match mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        ) {
            Ok(()) => {
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o666));
            }
            // In a user namespace device nodes cannot be made: the host's
            // are bind-mounted instead, as rootless runc does.
            Err(nix::Error::EPERM) => {
                fs::write(&p, b"").map_err(|e| Error::Setup(format!("/dev/{name}: {e}")))?;
                mount(
                    Some(&Path::new("/dev").join(name)),
                    &p,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| Error::Setup(format!("bind /dev/{name}: {e}")))?;
            }
            Err(e) => return Err(Error::Setup(format!("mknod /dev/{name}: {e}"))),
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        // As runc: /dev/core only where the kernel has /proc/kcore.
        if link == "core" && !Path::new(target).exists() {
            continue;
        }
        let p = dev.join(link);
        if p.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &p)
                .map_err(|e| Error::Setup(format!("/dev/{link}: {e}")))?;
        }
    }
    Ok(())
}

/// Enters the namespace bound at `path`.
fn join_namespace(path: &Path, kind: LinuxNamespaceType) -> Result<()> {
    let flag = match kind {
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        other => {
            return Err(Error::Setup(format!(
                "joining a {other:?} namespace by path is not supported"
            )))
        }
    };
    let f = fs::File::open(path)
        .map_err(|e| Error::Setup(format!("cannot open namespace {}: {e}", path.display())))?;
    nix::sched::setns(&f, flag)
        .map_err(|e| Error::Setup(format!("cannot join namespace {}: {e}", path.display())))
}

/// A new network namespace starts with `lo` down.
fn loopback_up() -> Result<()> {
    // SAFETY: plain socket/ioctl calls on a struct we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::Setup("cannot open a socket to bring lo up".into()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        libc::close(fd);
        if r < 0 {
            return Err(Error::Setup("cannot bring lo up".into()));
        }
    }
    Ok(())
}

/// No file descriptor of berth's leaks into the container.
fn close_inherited_fds() {
    if let Ok(rd) = fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: marking a descriptor close-on-exec has no memory effects.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}
