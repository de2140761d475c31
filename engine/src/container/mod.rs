//! Containers: made from a `ContainerCreate`, run by a supervisor, and
//! docker's operations on them. A container is a folder of its own under
//! `<root>/containers/<id>/` (its OCI bundle, record and log); the record
//! (`berth_runner::container::Record`) is what every operation reads.

mod attach;
mod commit;
mod create;
mod exec;
mod exec_instance;
mod fs;
mod health;
mod inspect;
mod lifecycle;
mod logs;
mod mounts;
mod network;
mod ops;
mod publish;
mod supervisor_process;

pub use attach::{frames, parse_detach_keys, AttachConnection, AttachEnd, AttachOptions};
pub use commit::CommitOptions;
pub use exec::ExecOptions;
pub(crate) use exec_instance::ExecTable;
pub use exec_instance::{ExecSession, ExecStreams};
pub use fs::{ContainerChange, PathStat};
pub use lifecycle::{WaitCondition, Waiter};
pub use logs::LogsOptions;
pub use ops::{ContainerStats, ContainerTop};
pub use publish::parse_publish;

use crate::error::{fail, Result};
use crate::Engine;
use berth_runner::container::{Containers, Record, Status};
use std::time::{Duration, Instant};

impl Engine {
    pub(crate) fn containers(&self) -> Containers {
        Containers::new(self.store().root().join("containers"))
    }

    /// docker's lookup: a full ID, a name, or a unique ID prefix.
    pub(crate) fn container(&self, key: &str) -> Result<Record> {
        Ok(self.containers().find(key)?)
    }

    /// What a killed supervisor (or a killed `berth run`) left: its
    /// container's root filesystem is unmounted and the record saved as
    /// exited; a `--rm` container is removed, as its supervisor would have
    /// done. Every operation that lists or starts containers calls it.
    pub fn reap(&self) -> Result<()> {
        self.sweep_unfinished();
        let cs = self.containers();
        for rec in cs.list()? {
            if rec.state.status != Status::Exited
                || rec.state.supervisor.is_none()
                || rec.state.supervised()
            {
                continue;
            }
            self.emit_container(
                &rec,
                "die",
                &[("exitCode", rec.state.exit_code.to_string())],
            );
            if self.uses_backend(&rec.id) {
                self.leave_networks(&rec.id);
            }
            if rec.auto_remove {
                self.destroy(&rec)?;
                continue;
            }
            self.store().unmount_rootfs(&rec.id)?;
            let done = cs.update(&rec.id, |r| {
                r.state = rec.state.clone();
                r.state.supervisor = None;
                r.state.pid = 0;
                r.state.restarting = false;
            })?;
            // A supervisor that went away (killed, or the machine rebooted)
            // does not end what the restart policy keeps running.
            if self.restarts_after(&done, done.state.exit_code) {
                if let Err(e) = self.container_start(&done.id) {
                    tracing::warn!("cannot restart container {}: {e}", done.name);
                }
            }
        }
        Ok(())
    }

    /// Removes a container (`--rm`: with its anonymous volumes, as
    /// docker's), and says so in the event log.
    pub(crate) fn destroy(&self, rec: &Record) -> Result<()> {
        self.destroy_with_volumes(rec, true)
    }

    pub(crate) fn destroy_with_volumes(&self, rec: &Record, volumes: bool) -> Result<()> {
        self.remove_container_files(&rec.id)?;
        self.emit_container(rec, "destroy", &[]);
        if volumes {
            self.remove_anonymous_volumes(rec)?;
        }
        Ok(())
    }

    /// `--rm` at the end of a run, as its supervisor does it: the
    /// container is gone (its folder and root filesystem moved into the
    /// store's trash) before its exit is told, and `purge_retired` deletes
    /// them after, so that the `run` waiting on the exit does not also wait
    /// for the disk to free a few dozen inodes.
    pub(crate) fn retire(&self, rec: &Record) -> Result<()> {
        let id = &rec.id;
        if self.uses_backend(id) {
            self.leave_networks(id);
        }
        let trash = self.trash_dir();
        self.store()
            .retire_rootfs(id, &trash.join(format!("m-{id}")))?;
        self.store().release(id)?;
        berth_runner::container::remove_runtime_dir(id);
        match std::fs::rename(self.containers().dir(id), trash.join(format!("c-{id}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => self.containers().remove(id)?,
            _ => {}
        }
        self.emit_container(rec, "destroy", &[]);
        self.remove_anonymous_volumes(rec)
    }

    fn trash_dir(&self) -> std::path::PathBuf {
        self.store().root().join("trash")
    }

    /// Deletes what `retire` moved aside for container `id`, and what else
    /// in the trash was moved there over a minute ago (by a supervisor
    /// killed before it could delete it).
    pub(crate) fn purge_retired(&self, id: Option<&str>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(self.trash_dir()) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let mine = id.is_some_and(|id| name.get(2..) == Some(id));
            // A rename sets the moved folder's change time.
            let stale = e.metadata().is_ok_and(|m| now - m.ctime() > 60);
            if mine || stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn remove_anonymous_volumes(&self, rec: &Record) -> Result<()> {
        for (v, _) in &rec.anonymous_volumes {
            // A volume another container mounts too stays.
            let in_use = self.containers().list()?.iter().any(|o| {
                o.anonymous_volumes.iter().any(|(n, _)| n == v)
                    || o.binds
                        .iter()
                        .any(|b| b.split(':').next() == Some(v.as_str()))
            });
            if !in_use && self.store().volume_remove(v).is_ok() {
                self.emit_volume("destroy", v);
            }
        }
        Ok(())
    }

    /// Removes everything of container `id`: root filesystem, the hold on
    /// its image, its folder.
    /// Takes away what a create killed midway left (its folder, rootfs
    /// and image hold); the IDs.
    pub fn sweep_unfinished(&self) -> Vec<String> {
        let mut gone = Vec::new();
        for id in self.containers().unfinished() {
            match self.remove_container_files(&id) {
                Ok(()) => gone.push(id),
                Err(e) => tracing::warn!("an unfinished container {id}: {e}"),
            }
        }
        gone
    }

    pub(crate) fn remove_container_files(&self, id: &str) -> Result<()> {
        if self.uses_backend(id) {
            self.leave_networks(id);
        }
        self.store().remove_rootfs(id)?;
        self.store().release(id)?;
        self.containers().remove(id)?;
        Ok(())
    }
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
pub fn signal_of(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    match format!("SIG{name}").parse::<nix::sys::signal::Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => fail!(Invalid, "Invalid signal: {s}"),
    }
}

fn send_signal(containers: &Containers, rec: &Record, sig: i32) -> Result<()> {
    // A container that just started has its pid a moment later.
    let mut rec = rec.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rec.running() && rec.state.pid <= 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        match containers.load(&rec.id) {
            Ok(r) => rec = r,
            Err(_) => break,
        }
    }
    // kill(0) and kill(-1) reach whole process groups: never that.
    if rec.state.pid <= 1 {
        if !rec.running() {
            return Ok(());
        }
        fail!(Conflict, "container {} has no process to signal", rec.id);
    }
    // SAFETY: kill(2) has no memory effects.
    if unsafe { libc::kill(rec.state.pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            fail!(Failed, "cannot signal container {}: {e}", rec.name);
        }
    }
    Ok(())
}

/// Waits until the container's supervisor says it stopped (and is gone).
fn wait_stopped(containers: &Containers, id: &str, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let watch = containers.watch(id);
    let mut pause = Duration::from_millis(1);
    loop {
        let rec = containers.load(id)?;
        if !rec.running() && !rec.state.supervised() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        watch.wait(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
