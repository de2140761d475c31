//! A container's filesystem from outside: `diff` (its changes over the
//! image) and `cp` both ways (tar streams, as docker's archive API).
//! Paths are resolved inside the container's root as the container would
//! see them (a symlink to `/etc` means the container's `/etc`), and the
//! container is frozen while its files are read or written, so it cannot
//! swap a folder for a symlink under the copy.

use crate::error::{fail, Error, Result};
use crate::Engine;
use berth_runner::container::Record;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// One change of `GET /containers/{id}/changes`: Kind 0 modified, 1 added,
/// 2 deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerChange {
    pub path: String,
    pub kind: u8,
}

/// The files the runtime makes as mount points; not the container's changes.
const STUBS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
];

/// `path` inside `root`, every symlink on the way resolved inside `root`
/// too; the last component is not followed.
pub(crate) fn resolve_in(root: &Path, path: &str) -> Result<PathBuf> {
    let mut todo: Vec<String> = Vec::new();
    let push_parts = |todo: &mut Vec<String>, p: &str| {
        for c in p.split('/').rev().filter(|c| !c.is_empty() && *c != ".") {
            todo.push(c.to_string());
        }
    };
    push_parts(&mut todo, path);
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let last = todo.is_empty();
        let host = cur
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&c);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() && !last => {
                links += 1;
                if links > 255 {
                    fail!(Invalid, "too many levels of symbolic links in {path}");
                }
                let target =
                    std::fs::read_link(&host).map_err(Error::io(format!("cannot read {path}")))?;
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    cur.clear();
                }
                push_parts(&mut todo, &t);
            }
            _ => cur.push(c),
        }
    }
    Ok(cur.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// While it lives, a running container is frozen (unless it was paused).
struct Frozen(Option<String>);

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(id) = &self.0 {
            let _ = berth_runner::cgroup::freeze(id, false);
        }
    }
}

/// A path's stat in the archive endpoints' shape.
#[derive(Debug, Clone, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl Engine {
    /// The container's root as this process can reach it: the running
    /// container's own view (its volumes and binds included), else its
    /// root filesystem, mounted for the while if need be. The second
    /// value, when set, is the mount to undo after.
    fn container_root(&self, rec: &Record) -> Result<(PathBuf, bool, Frozen)> {
        if rec.running() {
            let frozen = if berth_runner::cgroup::is_frozen(&rec.id)
                || berth_runner::cgroup::processes(&rec.id).is_empty()
            {
                Frozen(None)
            } else {
                berth_runner::cgroup::freeze(&rec.id, true)?;
                Frozen(Some(rec.id.clone()))
            };
            return Ok((
                PathBuf::from(format!("/proc/{}/root", rec.state.pid)),
                false,
                frozen,
            ));
        }
        let merged = self
            .store()
            .root()
            .join("mounts")
            .join(&rec.id)
            .join("merged");
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(merged.to_string_lossy().as_ref()));
        if mounted {
            return Ok((merged, false, Frozen(None)));
        }
        let manifest = rec
            .manifest
            .parse()
            .map_err(|e| Error::Failed(format!("container {} has a bad record: {e}", rec.id)))?;
        let image = self.store().get(&manifest)?;
        let m = self
            .store()
            .container_rootfs(&image, &rec.id, !rec.auto_remove)?;
        Ok((m.merged.clone(), true, Frozen(None)))
    }

    fn with_root<T>(&self, rec: &Record, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let (root, unmount, frozen) = self.container_root(rec)?;
        let out = f(&root);
        drop(frozen);
        if unmount {
            self.store().unmount_rootfs(&rec.id)?;
        }
        out
    }

    /// docker diff: what the container changed in its image's files.
    pub fn container_changes(&self, key: &str) -> Result<Vec<ContainerChange>> {
        let rec = self.container(key)?;
        let upper = self.store().rootfs_changes(&rec.id);
        let manifest = rec
            .manifest
            .parse()
            .map_err(|e| Error::Failed(format!("container {} has a bad record: {e}", rec.id)))?;
        let image = self.store().get(&manifest)?;
        let lowers: Vec<PathBuf> = (0..image.layers.len())
            .filter_map(|i| self.store().snapshot(&image, i).ok())
            .collect();
        let in_image = |rel: &Path| {
            lowers
                .iter()
                .any(|l| l.join(rel).symlink_metadata().is_ok())
        };
        let mut out = Vec::new();
        let mut walk = vec![PathBuf::new()];
        let mut dirs = Vec::new();
        while let Some(rel) = walk.pop() {
            let Ok(rd) = std::fs::read_dir(upper.join(&rel)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let rel = rel.join(&name);
                let shown = format!("/{}", rel.display());
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                // An overlay whiteout: a character device 0/0.
                if m.file_type().is_char_device() && m.rdev() == 0 {
                    out.push(ContainerChange {
                        path: shown,
                        kind: 2,
                    });
                    continue;
                }
                let existed = in_image(&rel);
                if STUBS.contains(&shown.as_str()) && !existed {
                    continue;
                }
                if m.is_dir() {
                    walk.push(rel);
                    if existed {
                        // A folder of the image is in the upper layer because
                        // something in it changed: listed when that is.
                        dirs.push(shown);
                        continue;
                    }
                }
                out.push(ContainerChange {
                    path: shown,
                    kind: if existed { 0 } else { 1 },
                });
            }
        }
        let changed: Vec<String> = dirs
            .into_iter()
            .filter(|d| out.iter().any(|c| c.path.starts_with(&format!("{d}/"))))
            .collect();
        out.extend(
            changed
                .into_iter()
                .map(|path| ContainerChange { path, kind: 0 }),
        );
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Whether `path` in the container is a folder (none: it is not there).
    pub fn container_path_is_dir(&self, key: &str, path: &str) -> Result<Option<bool>> {
        let rec = self.container(key)?;
        self.with_root(&rec, |root| {
            let p = resolve_in(root, path)?;
            if p == root {
                return Ok(Some(true));
            }
            // A symlink to a folder counts as the folder, as docker's stat.
            let p = if p
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                let target =
                    std::fs::read_link(&p).map_err(Error::io(format!("cannot read {path}")))?;
                let t = target.to_string_lossy();
                let parent = Path::new(path)
                    .parent()
                    .and_then(|p| p.to_str())
                    .unwrap_or("/");
                resolve_in(
                    root,
                    &if t.starts_with('/') {
                        t.to_string()
                    } else {
                        format!("{parent}/{t}")
                    },
                )?
            } else {
                p
            };
            Ok(p.symlink_metadata().ok().map(|m| m.is_dir()))
        })
    }

    /// What `path` in the container is, as the archive endpoints' stat
    /// header has it (docker's `X-Docker-Container-Path-Stat`).
    pub fn container_path_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let rec = self.container(key)?;
        self.with_root(&rec, |root| {
            let p = resolve_in(root, path)?;
            let Ok(meta) = p.symlink_metadata() else {
                fail!(
                    NotFound,
                    "Could not find the file {path} in container {key}"
                );
            };
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let ft = meta.file_type();
            // Go's os.FileMode: the kind in the high bits, then the
            // set-id and sticky bits, then the permissions.
            let mut mode = meta.mode() & 0o777;
            for (bit, go) in [(0o4000, 1 << 23), (0o2000, 1 << 22), (0o1000, 1 << 20)] {
                if meta.mode() & bit != 0 {
                    mode |= go;
                }
            }
            mode |= if ft.is_dir() {
                1 << 31
            } else if ft.is_symlink() {
                1 << 27
            } else if ft.is_fifo() {
                1 << 25
            } else if ft.is_socket() {
                1 << 24
            } else if ft.is_char_device() {
                (1 << 26) | (1 << 21)
            } else if ft.is_block_device() {
                1 << 26
            } else {
                0
            };
            let link_target = if ft.is_symlink() {
                std::fs::read_link(&p)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into());
            Ok(PathStat {
                name,
                size: meta.len() as i64,
                mode,
                mtime: crate::units::rfc3339_nano(meta.mtime() * 1_000_000_000 + meta.mtime_nsec()),
                link_target,
            })
        })
    }

    /// docker cp CONTAINER:PATH: a tar stream of `path` (named by its last
    /// component, as docker's archive has it) to `out`.
    pub fn container_archive_get(&self, key: &str, path: &str, out: &mut dyn Write) -> Result<()> {
        let rec = self.container(key)?;
        self.with_root(&rec, |root| {
            let src = resolve_in(root, path)?;
            let Ok(meta) = src.symlink_metadata() else {
                fail!(
                    NotFound,
                    "Could not find the file {path} in container {}",
                    key
                );
            };
            let name = Path::new(path)
                .components()
                .rev()
                .find_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    _ => None,
                })
                .unwrap_or_else(|| ".".into());
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            let written = if meta.is_dir() {
                tar.append_dir_all(&name, &src)
            } else {
                tar.append_path_with_name(&src, &name)
            };
            written
                .and_then(|()| tar.finish())
                .map_err(Error::io(format!(
                    "cannot copy {path} out of container {key}"
                )))
        })
    }

    /// docker cp ... CONTAINER:DIR: the tar stream `input` unpacked into the
    /// folder `dir` of the container, refusing entries that would land
    /// outside it.
    pub fn container_archive_put(&self, key: &str, dir: &str, input: &mut dyn Read) -> Result<()> {
        let rec = self.container(key)?;
        self.with_root(&rec, |root| {
            let dest = resolve_in(root, dir)?;
            if !dest.is_dir() {
                fail!(NotFound, "Could not find the file {dir} in container {key}");
            }
            let opts = berth_store::layer::ExtractOptions::default();
            berth_store::layer::extract(input, &dest, &opts).map_err(|e| {
                Error::Invalid(format!("cannot copy into {dir} of container {key}: {e}"))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_in;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_and_symlinks_stay_in_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("up")).unwrap();
        symlink("../../../../etc", root.join("etc/climb")).unwrap();
        assert_eq!(
            resolve_in(root, "/../../etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in(root, "/up/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in(root, "/etc/climb/x").unwrap(),
            root.join("etc/x")
        );
        // The last component is not followed.
        assert_eq!(resolve_in(root, "/up").unwrap(), root.join("up"));
    }
}
