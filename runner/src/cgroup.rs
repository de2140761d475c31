//! Resource limits through cgroups: the unified (v2) hierarchy where it is
//! the whole of `/sys/fs/cgroup`, else the v1 controllers (`memory`, `pids`,
//! `cpu`), as on hybrid hosts. A container's group is `berth/<id>` in each
//! hierarchy and is removed when the container is gone.

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = "/sys/fs/cgroup";

/// The limits berth sets, read from a spec's `linux.resources`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory (swap included: none beyond it).
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    /// CFS quota and period, microseconds.
    pub cpu: Option<(i64, u64)>,
}

impl Limits {
    pub fn from_resources(r: &LinuxResources) -> Limits {
        Limits {
            memory: r.memory().as_ref().and_then(|m| m.limit()),
            pids: r.pids().as_ref().map(|p| p.limit()),
            cpu: r
                .cpu()
                .as_ref()
                .and_then(|c| Some((c.quota()?, c.period().unwrap_or(100_000)))),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Held from a group's creation until its first process is in it, and by
/// `reap`: a group another runtime just made (still empty) is never taken
/// for a dead one.
fn setup_lock() -> Option<fs::File> {
    let dir = Path::new("/run/berth");
    fs::create_dir_all(dir).ok()?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("cgroups.lock"))
        .ok()?;
    f.lock().ok()?;
    Some(f)
}

/// Removes the empty groups of containers whose runtime was killed before
/// it could remove them (a group with processes refuses to go: it stays).
/// The caller holds the setup lock.
fn reap() {
    let root = Path::new(ROOT);
    let mut parents = vec![root.join("berth")];
    if let Ok(rd) = fs::read_dir(root) {
        parents.extend(rd.flatten().map(|e| e.path().join("berth")));
    }
    for p in parents {
        for e in fs::read_dir(&p).into_iter().flatten().flatten() {
            // The entry's own type, not a stat of each of the group's files.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir(e.path());
            }
        }
    }
}

/// The name of the warm-up's thread (its `comm`).
pub const WARM_UP_THREAD: &str = "cgroup-warm-up";

/// How many warm-up threads this process has now (0 or 1): counted from
/// before the thread exists (its name comes later) to its last step.
pub fn warm_up_threads() -> usize {
    WARM_UP_THREADS.load(std::sync::atomic::Ordering::SeqCst)
}

static WARM_UP_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A forked child has none of its parent's threads: nor its count.
extern "C" fn forget_warm_up_threads() {
    WARM_UP_THREADS.store(0, std::sync::atomic::Ordering::SeqCst);
}

/// Keeps the next move of a process into a cgroup from waiting, for about
/// `window`. Every move takes the kernel's cgroup_threadgroup_rwsem for
/// writing, which waits out an RCU grace period (5–15 ms here) when no
/// move happened in the last grace period: most of a short container's
/// start. A move of this process into the group it is in changes nothing:
/// one now pays that wait in the background, and one every millisecond
/// after keeps the semaphore's fast path for writers, so the container's
/// move at its start does not wait (or waits less).
pub fn warm_up(window: Duration) {
    // One thread per process, its end pushed out by each call.
    static UNTIL: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Ok(mut until) = UNTIL.lock() else {
        return;
    };
    let running = until.is_some();
    *until = Some(Instant::now() + window);
    if running {
        return;
    }
    let Some(procs) = own_procs_file() else {
        *until = None;
        return;
    };
    drop(until);
    let me = std::process::id().to_string();
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    // SAFETY: the handler only stores to an atomic.
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(forget_warm_up_threads));
    });
    WARM_UP_THREADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // Born with every signal blocked: a signal for the process (a
    // foreground run passes SIGTERM on) must never land on this thread.
    let all = nix::sys::signal::SigSet::all();
    let before = all.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
    let spawned = std::thread::Builder::new()
        .name(WARM_UP_THREAD.into())
        .spawn(move || loop {
            let done = match UNTIL.lock() {
                Ok(mut u) => {
                    let over = u.is_none_or(|t| Instant::now() >= t);
                    if over {
                        *u = None;
                    }
                    over
                }
                Err(_) => true,
            };
            if done || fs::write(&procs, &me).is_err() {
                WARM_UP_THREADS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            // Well within the grace period after the last move, which is
            // how long the fast path stays.
            std::thread::sleep(Duration::from_millis(2));
        });
    if let Ok(mask) = before {
        let _ = mask.thread_set_mask();
    }
    if spawned.is_err() {
        WARM_UP_THREADS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut u) = UNTIL.lock() {
            *u = None;
        }
    }
}

/// `cgroup.procs` of the group this process is in, in one hierarchy.
fn own_procs_file() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        let dir = match controllers.split(',').next() {
            None | Some("") => Path::new(ROOT).join(path),
            Some(c) => Path::new(ROOT)
                .join(c.strip_prefix("name=").unwrap_or(c))
                .join(path),
        };
        let procs = dir.join("cgroup.procs");
        procs.exists().then_some(procs)
    })
}

/// A container's cgroup: one folder per hierarchy that holds a limit.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// Each folder's parent, opened when it was made: the container's
    /// pivot_root may change this process's root too, so removal goes
    /// through descriptors, not paths.
    parents: Vec<(std::fs::File, String)>,
    /// The setup lock, until the first process is in the group.
    setup: std::sync::Mutex<Option<fs::File>>,
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        Error::Setup(format!(
            "cannot set {}/{file} to {value}: {e}",
            dir.display()
        ))
    })
}

fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .map_err(|e| Error::Setup(format!("cannot create cgroup {}: {e}", dir.display())))
}

impl Cgroup {
    /// Creates `berth/<id>` with `limits` in every hierarchy that needs it;
    /// with `accounting`, in every hierarchy a container's stats, pause and
    /// limits use (memory, cpu, cpuacct, pids, freezer), limited or not.
    pub fn create(id: &str, limits: &Limits, accounting: bool) -> Result<Cgroup> {
        let setup = setup_lock();
        reap();
        let root = Path::new(ROOT);
        let mut cg = Cgroup {
            dirs: Vec::new(),
            parents: Vec::new(),
            setup: std::sync::Mutex::new(setup),
        };
        if root.join("cgroup.controllers").exists() {
            // v2: the controllers must be enabled on the way down.
            let mut want = Vec::new();
            let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| available.split_whitespace().any(|a| a == c);
            if limits.memory.is_some() || (accounting && has("memory")) {
                want.push("+memory");
            }
            if limits.pids.is_some() || (accounting && has("pids")) {
                want.push("+pids");
            }
            if limits.cpu.is_some() || (accounting && has("cpu")) {
                want.push("+cpu");
            }
            let parent = root.join("berth");
            mkdir(&parent)?;
            write(root, "cgroup.subtree_control", &want.join(" "))?;
            write(&parent, "cgroup.subtree_control", &want.join(" "))?;
            let dir = parent.join(id);
            mkdir(&dir)?;
            cg.keep(&dir, id)?;
            if let Some(m) = limits.memory {
                write(&dir, "memory.max", &m.to_string())?;
                write(&dir, "memory.swap.max", "0").ok();
            }
            if let Some(p) = limits.pids {
                write(&dir, "pids.max", &p.to_string())?;
            }
            if let Some((quota, period)) = limits.cpu {
                write(&dir, "cpu.max", &format!("{quota} {period}"))?;
            }
            return Ok(cg);
        }
        let group = |cg: &mut Cgroup, controller: &str| -> Result<PathBuf> {
            let base = root.join(controller);
            if !base.join("cgroup.procs").exists() {
                return Err(Error::Setup(format!(
                    "the {controller} cgroup controller is not mounted at {}",
                    base.display()
                )));
            }
            let dir = base.join("berth").join(id);
            mkdir(&dir)?;
            cg.keep(&dir, id)?;
            Ok(dir)
        };
        if let Some(m) = limits.memory {
            let dir = group(&mut cg, "memory")?;
            write(&dir, "memory.limit_in_bytes", &m.to_string())?;
            // Without swap accounting the file is missing: nothing to limit.
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                write(&dir, "memory.memsw.limit_in_bytes", &m.to_string())?;
            }
        }
        if let Some(p) = limits.pids {
            let dir = group(&mut cg, "pids")?;
            write(&dir, "pids.max", &p.to_string())?;
        }
        if let Some((quota, period)) = limits.cpu {
            let dir = group(&mut cg, "cpu")?;
            write(&dir, "cpu.cfs_period_us", &period.to_string())?;
            write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if accounting {
            for (controller, limited) in [
                ("memory", limits.memory.is_some()),
                ("pids", limits.pids.is_some()),
                ("cpu", limits.cpu.is_some()),
                ("cpuacct", false),
                ("freezer", false),
            ] {
                let base = root.join(controller);
                // (cpu and cpuacct may be one hierarchy: its folder is made once
                // and kept twice, which removal allows.)
                if limited || !base.join("cgroup.procs").exists() {
                    continue;
                }
                group(&mut cg, controller)?;
            }
        }
        Ok(cg)
    }

    fn keep(&mut self, dir: &Path, id: &str) -> Result<()> {
        let parent = dir.parent().unwrap_or(Path::new(ROOT));
        let f = std::fs::File::open(parent)
            .map_err(|e| Error::Setup(format!("cannot open {}: {e}", parent.display())))?;
        self.dirs.push(dir.to_path_buf());
        self.parents.push((f, id.to_string()));
        Ok(())
    }

    /// Moves process `pid` into the group.
    pub fn add(&self, pid: i32) -> Result<()> {
        let added = self
            .dirs
            .iter()
            .try_for_each(|d| write(d, "cgroup.procs", &pid.to_string()));
        // In it now (or failed): others may reap again.
        if let Ok(mut s) = self.setup.lock() {
            s.take();
        }
        added
    }

    /// Removes the group once its processes are gone (the kernel kills the
    /// rest of a pid namespace when its first process exits).
    pub fn remove(self) {
        use nix::unistd::{unlinkat, UnlinkatFlags};
        let deadline = Instant::now() + Duration::from_secs(5);
        for (parent, name) in &self.parents {
            loop {
                match unlinkat(parent, name.as_str(), UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(nix::Error::ENOENT) => break,
                    // EBUSY while the last processes die.
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_micros(250))
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// Whether this host has the unified (v2) hierarchy only.
fn unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The folder of container `id`'s group in `controller` (v1), or its one
/// folder (v2).
fn dir_of(id: &str, controller: &str) -> PathBuf {
    if unified() {
        Path::new(ROOT).join("berth").join(id)
    } else {
        Path::new(ROOT).join(controller).join("berth").join(id)
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What a container's group has used, as `docker stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every process, nanoseconds.
    pub cpu_ns: u64,
    /// Of which in user mode and in the kernel.
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory: u64,
    /// Page cache that can be reclaimed (docker subtracts it from usage).
    pub inactive_file: u64,
    /// The memory limit, if there is one.
    pub memory_limit: Option<u64>,
    pub pids: u64,
}

/// `key value` lines (`cpu.stat`, `memory.stat`): the value of `key`.
fn stat_field(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok())?
            })
        })
        .unwrap_or(0)
}

/// The usage of container `id`'s group, if it has one.
pub fn usage(id: &str) -> Option<Usage> {
    if unified() {
        let dir = dir_of(id, "");
        if !dir.is_dir() {
            return None;
        }
        let cpu = dir.join("cpu.stat");
        let memory_limit = fs::read_to_string(dir.join("memory.max"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return Some(Usage {
            cpu_ns: stat_field(&cpu, "usage_usec") * 1000,
            cpu_user_ns: stat_field(&cpu, "user_usec") * 1000,
            cpu_system_ns: stat_field(&cpu, "system_usec") * 1000,
            memory: read_u64(&dir.join("memory.current")).unwrap_or(0),
            inactive_file: stat_field(&dir.join("memory.stat"), "inactive_file"),
            memory_limit,
            pids: read_u64(&dir.join("pids.current")).unwrap_or(0),
        });
    }
    let memory = dir_of(id, "memory");
    let cpuacct = dir_of(id, "cpuacct");
    if !memory.is_dir() && !cpuacct.is_dir() {
        return None;
    }
    // v1 says "no limit" with a huge number.
    let memory_limit =
        read_u64(&memory.join("memory.limit_in_bytes")).filter(|l| *l < (1u64 << 62));
    // cpuacct.stat counts in USER_HZ ticks (100 a second).
    let ticks = |k: &str| stat_field(&cpuacct.join("cpuacct.stat"), k) * 10_000_000;
    Some(Usage {
        cpu_ns: read_u64(&cpuacct.join("cpuacct.usage")).unwrap_or(0),
        cpu_user_ns: ticks("user"),
        cpu_system_ns: ticks("system"),
        memory: read_u64(&memory.join("memory.usage_in_bytes")).unwrap_or(0),
        inactive_file: stat_field(&memory.join("memory.stat"), "total_inactive_file"),
        memory_limit,
        pids: read_u64(&dir_of(id, "pids").join("pids.current")).unwrap_or(0),
    })
}

/// The processes in container `id`'s group (host pids).
pub fn processes(id: &str) -> Vec<i32> {
    let controller = if unified() { "" } else { "pids" };
    fs::read_to_string(dir_of(id, controller).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Freezes (or thaws) every process of container `id`, and waits until
/// the kernel says it is done.
pub fn freeze(id: &str, frozen: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    if unified() {
        let dir = dir_of(id, "");
        write(&dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        while !fs::read_to_string(dir.join("cgroup.events"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == want)
        {
            if Instant::now() > deadline {
                return Err(Error::Setup(format!("cannot freeze {}", dir.display())));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        return Ok(());
    }
    let dir = dir_of(id, "freezer");
    if !dir.is_dir() {
        return Err(Error::Setup(format!(
            "container {id} has no freezer cgroup (made by an older berth, or without root)"
        )));
    }
    let want = if frozen { "FROZEN" } else { "THAWED" };
    write(&dir, "freezer.state", want)?;
    while fs::read_to_string(dir.join("freezer.state"))
        .unwrap_or_default()
        .trim()
        != want
    {
        if Instant::now() > deadline {
            return Err(Error::Setup(format!(
                "cannot set {} to {want}",
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Whether container `id`'s processes are frozen.
pub fn is_frozen(id: &str) -> bool {
    if unified() {
        return fs::read_to_string(dir_of(id, "").join("cgroup.events"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == "frozen 1");
    }
    fs::read_to_string(dir_of(id, "freezer").join("freezer.state"))
        .is_ok_and(|s| s.trim() != "THAWED")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm_up_threads() -> usize {
        fs::read_dir("/proc/self/task")
            .map(|d| {
                d.flatten()
                    .filter(|t| {
                        fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.trim() == WARM_UP_THREAD)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_warm_up_moves_nothing_and_ends_with_its_window() {
        let before = fs::read_to_string("/proc/self/cgroup").unwrap();
        warm_up(Duration::from_millis(300));
        warm_up(Duration::from_millis(300));
        if nix::unistd::geteuid().is_root() && own_procs_file().is_some() {
            // One thread however often it is asked for (named once it runs).
            let deadline = Instant::now() + Duration::from_secs(5);
            while warm_up_threads() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(warm_up_threads(), 1);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while warm_up_threads() > 0 {
            assert!(Instant::now() < deadline, "the warm-up outlives its window");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(fs::read_to_string("/proc/self/cgroup").unwrap(), before);
    }
}
