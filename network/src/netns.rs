//! A container's network namespace kept as a file (a bind mount of the
//! namespace, as `ip netns add` makes it): the namespace outlives the
//! container's processes, so the backend can take its interfaces down
//! after the container exited or was killed.

use crate::error::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::path::{Path, PathBuf};

/// Where the namespace files of every berth root live.
pub const DIR: &str = "/run/berth/netns";

/// The namespace file of container `id`.
pub fn path_of(id: &str) -> PathBuf {
    Path::new(DIR).join(id)
}

/// Makes a new network namespace and binds it to `path` (a stale one
/// there is removed first).
pub fn create(path: &Path) -> Result<()> {
    remove(path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io_at("create", parent))?;
    }
    std::fs::File::create(path).map_err(Error::io_at("create", path))?;
    let target = path.to_path_buf();
    // unshare moves only the calling thread: a thread of its own, which
    // ends with it, keeps this process's namespace as it was.
    let made = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Backend(format!("cannot make a network namespace: {e}")))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            Error::Backend(format!(
                "cannot bind the network namespace to {}: {e}",
                target.display()
            ))
        })
    })
    .join()
    .map_err(|_| Error::Backend("the network namespace thread failed".into()))?;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Whether `path` holds a namespace (a mounted one, not a leftover file).
pub fn exists(path: &Path) -> bool {
    // A bind-mounted nsfs file has its own device.
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(f), Some(Ok(d))) => f.dev() != d.dev(),
        _ => false,
    }
}

/// Unbinds and removes a namespace file; a missing one is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Backend(format!(
                "cannot unmount {}: {e}",
                path.display()
            )))
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_at("remove", path)(e)),
    }
}
