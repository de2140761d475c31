//! Container records: what `berth ps`, `start`, `stop`, `logs`, `rm` and
//! `commit` know of a container once the command that made it has gone.
//! One folder per container under `<root>/containers/<id>/` holds the OCI
//! bundle (`config.json`, etc files), the record (`container.json`) and the
//! log (`<id>-json.log`, docker's json-file format).
//!
//! While a container runs, its supervisor is the only writer of the state;
//! the other commands write a record only when no supervisor is alive.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// docker's states that berth has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// A published port, as it is recorded (and `berth port` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    #[serde(default = "tcp")]
    pub proto: String,
}

fn tcp() -> String {
    "tcp".into()
}

/// The lifecycle part of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's first process, as the host sees it.
    pub pid: i32,
    /// The process that supervises it, and that process's start time
    /// (so a reused pid is not taken for it).
    pub supervisor: Option<(i32, u64)>,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// How often its restart policy restarted it (its supervisor counts).
    #[serde(default)]
    pub restart_count: i64,
    /// Between runs, while the restart policy waits out its backoff.
    #[serde(default)]
    pub restarting: bool,
}

/// What berth remembers of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its ID and manifest.
    pub image: String,
    pub image_id: String,
    pub manifest: String,
    pub created: String,
    pub args: Vec<String>,
    pub hostname: String,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub ports: Vec<PublishedPort>,
    pub network: String,
    pub runtime: String,
    pub auto_remove: bool,
    pub tty: bool,
    pub binds: Vec<String>,
    /// The image's STOPSIGNAL or `--stop-signal`; `stop` sends it first.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// The volumes made for it alone (the image's VOLUMEs, `-v /path`),
    /// by name and container path: removed with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<(String, String)>,
    pub state: State,
}

const RECORD: &str = "container.json";

/// The folder of container folders.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`); none when there is no such process (or it ended).
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // A zombie has ended; it only waits for its parent to notice.
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl State {
    pub fn new() -> State {
        State {
            status: Status::Created,
            pid: 0,
            supervisor: None,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: "0001-01-01T00:00:00Z".into(),
            finished_at: "0001-01-01T00:00:00Z".into(),
            restart_count: 0,
            restarting: false,
        }
    }

    /// Whether the process recorded as supervising this container is alive.
    pub fn supervised(&self) -> bool {
        self.supervisor
            .is_some_and(|(pid, start)| process_start(pid) == Some(start))
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

impl Record {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn running(&self) -> bool {
        self.state.status == Status::Running
    }
}

/// Writes `data` to `path` through a temp file and a rename: a reader sees
/// the old record or the new one, never half of one.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data).map_err(io(format!("cannot write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("cannot write {}", path.display())))
}

/// Whether `e` was last changed more than `secs` seconds ago.
fn age_over(e: &fs::DirEntry, secs: u64) -> bool {
    e.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > secs)
}

/// A container being made; `finish` once its record is saved.
pub struct Creating {
    path: PathBuf,
    _file: fs::File,
}

impl Creating {
    /// The record is saved: the mark goes.
    pub fn finish(self) {}
}

/// Done or given up (the maker removed what it made): the mark goes. A
/// maker that dies leaves it, its lock free.
impl Drop for Creating {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// See [`Containers::watch`]. Without inotify (or a record folder) it
/// only sleeps: waiters poll, as they would without it.
pub struct RecordWatch {
    inotify: Option<nix::sys::inotify::Inotify>,
}

impl RecordWatch {
    /// Waits until the record may have changed, `timeout` at most.
    pub fn wait(&self, timeout: std::time::Duration) {
        use std::os::fd::AsFd;
        let Some(i) = &self.inotify else {
            std::thread::sleep(timeout);
            return;
        };
        let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
        let mut fds = [nix::poll::PollFd::new(
            i.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        // Drained, so the next wait waits for the next change.
        while matches!(i.read_events(), Ok(ev) if !ev.is_empty()) {}
    }
}

/// The folder of container `id`'s files that live only while the machine
/// is up (its lock, its pid file, its sockets): on the tmpfs under `/run`
/// as runc and podman keep theirs, when this process may write there. A
/// container starts and ends many of them: made and deleted on the
/// store's disk they cost inode allocations, and on an ext4 without a
/// journal each allocation steps over every inode deleted in the last
/// minutes. `None` (then they stay in the container's own folder) for a
/// user without root.
pub fn runtime_dir(id: &str) -> Option<PathBuf> {
    nix::unistd::geteuid()
        .is_root()
        .then(|| Path::new(RUNTIME_ROOT).join(id))
}

/// [`runtime_dir`], made if need be, or else the container's folder `own`.
pub fn made_runtime_dir(id: &str, own: &Path) -> Result<PathBuf> {
    let dir = runtime_dir(id).unwrap_or_else(|| own.to_path_buf());
    fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    Ok(dir)
}

/// Where [`runtime_dir`] makes its folders.
pub const RUNTIME_ROOT: &str = "/run/berth/containers";

/// Removes container `id`'s [`runtime_dir`], if it has one.
pub fn remove_runtime_dir(id: &str) {
    if id.is_empty() || id.contains('/') {
        return;
    }
    let _ = fs::remove_dir_all(Path::new(RUNTIME_ROOT).join(id));
}

impl Containers {
    pub fn new(dir: PathBuf) -> Containers {
        Containers { dir }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A watch on container `id`'s record: made before a look at it, it
    /// wakes the looker when the record is written again or goes.
    pub fn watch(&self, id: &str) -> RecordWatch {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let dir = self.dir(id);
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| {
                i.add_watch(
                    &dir,
                    AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_DELETE_SELF,
                )
                .is_ok()
            });
        RecordWatch { inotify }
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        let dir = self.dir(&r.id);
        fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let data = serde_json::to_vec_pretty(r)
            .map_err(|e| Error::Setup(format!("cannot encode the container record: {e}")))?;
        write_atomic(&dir.join(RECORD), &data)
    }

    /// Changes container `id`'s record under its lock: whoever else writes
    /// it (its supervisor the state, `rename` the name) loses nothing.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let path = self.dir(id).join(RECORD);
        // A removed container's lock folder is not made again.
        fs::metadata(&path).map_err(io(format!("cannot read {}", path.display())))?;
        let lock_path = made_runtime_dir(id, &self.dir(id))?.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("cannot open {}", lock_path.display())))?;
        lock.lock()
            .map_err(io(format!("cannot lock {}", lock_path.display())))?;
        let data = fs::read(&path).map_err(io(format!("cannot read {}", path.display())))?;
        let mut r: Record = serde_json::from_slice(&data)
            .map_err(|e| Error::Setup(format!("{} is damaged: {e}", path.display())))?;
        f(&mut r);
        self.save(&r)?;
        Ok(r)
    }

    /// The record of container `id` (a full ID), with a state that says
    /// exited when its supervisor died without saying so (killed, or the
    /// machine restarted).
    pub fn load(&self, id: &str) -> Result<Record> {
        let mut r = self.read(id)?;
        if r.state.status == Status::Running && !r.state.supervised() {
            // The supervisor may have said "exited" and ended between the
            // reading and the look at its process: what it said wins.
            r = self.read(id)?;
            if r.state.status == Status::Running && !r.state.supervised() {
                r.state.status = Status::Exited;
                r.state.exit_code = 137;
                r.state.error = "the container's supervisor went away".into();
            }
        }
        Ok(r)
    }

    fn read(&self, id: &str) -> Result<Record> {
        let path = self.dir(id).join(RECORD);
        let data = fs::read(&path).map_err(io(format!("cannot read {}", path.display())))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::Setup(format!("{} is damaged: {e}", path.display())))
    }

    /// Every container, newest first. Folders without a record (a `berth run`
    /// interrupted before it wrote one) are left out.
    pub fn list(&self) -> Result<Vec<Record>> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut all: Vec<Record> = rd
            .flatten()
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok())
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// docker's lookup: a full ID, a name (with or without its leading
    /// slash), or a unique ID prefix.
    pub fn find(&self, key: &str) -> Result<Record> {
        let all = self.list()?;
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(r) = all.iter().find(|r| r.id == key || r.name == name) {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(Error::NotFound(format!("No such container: {key}"))),
            _ => Err(Error::NotFound(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// The container already named `name`, if any.
    pub fn named(&self, name: &str) -> Result<Option<Record>> {
        Ok(self.list()?.into_iter().find(|r| r.name == name))
    }

    /// Removes the container's folder (bundle, record, log).
    /// Starts making container `id`: a mark beside the folders, locked
    /// while the maker lives, then its folder. A maker killed before it
    /// saved the record leaves the lock free, which `unfinished` finds.
    pub fn begin(&self, id: &str) -> Result<Creating> {
        fs::create_dir_all(&self.dir)
            .map_err(io(format!("cannot create {}", self.dir.display())))?;
        // Locked before it has its name: a mark anyone sees is held while
        // its maker lives.
        let path = self.creating_mark(id);
        let tmp = path.with_extension("tmp");
        let file =
            fs::File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
        file.lock()
            .map_err(io(format!("cannot lock {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("cannot create {}", path.display())))?;
        let dir = self.dir(id);
        fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        Ok(Creating { path, _file: file })
    }

    fn creating_mark(&self, id: &str) -> PathBuf {
        self.dir.join(format!(".creating-{id}"))
    }

    /// Containers whose maker died before it saved their record (their
    /// mark's lock is free), and folders without a record or a mark (from
    /// before the marks) an hour old.
    pub fn unfinished(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(".creating-") {
                if id.ends_with(".tmp") {
                    // A maker killed before it named its mark; a living one
                    // names it at once.
                    if age_over(&e, 60) {
                        let _ = fs::remove_file(e.path());
                    }
                    continue;
                }
                let free = fs::File::open(e.path()).is_ok_and(|f| f.try_lock().is_ok());
                if free {
                    out.push(id.to_string());
                    let _ = fs::remove_file(e.path());
                }
                continue;
            }
            if !e.path().is_dir()
                || e.path().join(RECORD).exists()
                || self.creating_mark(&name).exists()
            {
                continue;
            }
            if age_over(&e, 3600) {
                out.push(name);
            }
        }
        // A free mark whose record was saved: the maker died just after.
        out.retain(|id| !self.dir(id).join(RECORD).exists());
        out
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        remove_runtime_dir(id);
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Setup(format!(
                "cannot remove {}: {e}",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// docker's generated names: `adjective_surname`.
pub fn generate_name(seed: &[u8], taken: impl Fn(&str) -> bool) -> String {
    const LEFT: &[&str] = &[
        "admiring",
        "brave",
        "clever",
        "dazzling",
        "eager",
        "focused",
        "gallant",
        "happy",
        "inspiring",
        "jolly",
        "keen",
        "loving",
        "modest",
        "nifty",
        "optimistic",
        "peaceful",
        "quirky",
        "relaxed",
        "serene",
        "tender",
        "upbeat",
        "vibrant",
        "wizardly",
        "zealous",
    ];
    const RIGHT: &[&str] = &[
        "albattani",
        "babbage",
        "curie",
        "darwin",
        "euclid",
        "fermat",
        "galileo",
        "hopper",
        "hypatia",
        "jennings",
        "kepler",
        "lovelace",
        "meitner",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "thompson",
        "turing",
        "volhard",
        "wozniak",
        "yalow",
        "zhukovsky",
        "lamarr",
    ];
    let mut n: usize = seed
        .iter()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(*b as usize));
    for attempt in 0.. {
        let base = format!(
            "{}_{}",
            LEFT[n % LEFT.len()],
            RIGHT[(n / LEFT.len()) % RIGHT.len()]
        );
        let name = if attempt < LEFT.len() * RIGHT.len() {
            base
        } else {
            format!("{base}{attempt}")
        };
        if !taken(&name) {
            return name;
        }
        n = n.wrapping_add(1);
    }
    unreachable!("the loop returns")
}

/// docker's rule for `--name`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn per_boot_files_live_apart_and_go_with_the_container() {
        let tmp = tempfile::tempdir().unwrap();
        let containers = Containers::new(tmp.path().to_path_buf());
        let id = format!("unit-test-{}", std::process::id());
        let own = containers.dir(&id);
        // A change to a container that is not there makes no folder.
        assert!(containers.update(&id, |_| {}).is_err());
        assert!(!runtime_dir(&id).unwrap_or(own.clone()).exists());
        let made = made_runtime_dir(&id, &own).unwrap();
        assert!(made.is_dir());
        if nix::unistd::geteuid().is_root() {
            assert_eq!(made, Path::new(RUNTIME_ROOT).join(&id));
        } else {
            assert_eq!(made, own);
        }
        fs::create_dir_all(&own).unwrap();
        containers.remove(&id).unwrap();
        assert!(!made.exists() && !own.exists());
    }

    #[test]
    fn a_record_watch_wakes_on_a_rewrite_and_on_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let containers = Containers::new(tmp.path().to_path_buf());
        let dir = containers.dir("a");
        fs::create_dir_all(&dir).unwrap();
        let watch = containers.watch("a");
        // Nothing changes: it waits its time out.
        let t = Instant::now();
        watch.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(45));

        // `act` 30 ms from now, in another thread: the wait ends with it.
        let woken_by = |what: &str, act: Box<dyn FnOnce() + Send>| {
            let actor = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                act();
            });
            let t = Instant::now();
            watch.wait(Duration::from_secs(20));
            assert!(t.elapsed() < Duration::from_secs(10), "not woken by {what}");
            actor.join().unwrap();
        };
        let record = dir.join(RECORD);
        woken_by(
            "the rewrite",
            Box::new(move || write_atomic(&record, b"{}").unwrap()),
        );
        let gone = dir.clone();
        woken_by(
            "the removal",
            Box::new(move || fs::remove_dir_all(&gone).unwrap()),
        );
    }
}
