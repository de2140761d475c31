//! An OCI bundle folder: the spec (`config.json`) and the files a container
//! gets bind-mounted (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`), and
//! the helper process that runs it.
//!
//! The runtime forks and unshares, which is unsafe in a multi-threaded
//! process; the caller's process may be one (tokio, rayon), so the spec is run
//! by a fresh single-threaded re-exec of the berth binary:
//! `berth __runtime BUNDLE/config.json`.

use crate::error::{Error, Result};
use crate::spec::Network;
use oci_spec::runtime::{Mount, MountBuilder, Spec};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The hidden subcommand of the berth binary that runs a spec.
pub const HELPER_COMMAND: &str = "__runtime";

/// The spec at `path` (a bundle's `config.json`), its root made absolute: as
/// the OCI spec says, a relative root is relative to the bundle.
pub fn load_spec(path: &Path) -> Result<Spec> {
    let mut spec = Spec::load(path)
        .map_err(|e| Error::Setup(format!("cannot read {}: {e}", path.display())))?;
    if let Some(mut root) = spec.root().clone() {
        if root.path().is_relative() {
            let bundle = path.parent().unwrap_or(Path::new("."));
            root.set_path(bundle.join(root.path()));
            spec.set_root(Some(root));
        }
    }
    Ok(spec)
}

/// A bundle folder; removed when dropped.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    /// Where the pid file goes (the bundle folder unless told otherwise).
    runtime_dir: PathBuf,
    keep: bool,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Setup(format!("{what}: {e}"))
}

impl Bundle {
    pub fn create(dir: &Path) -> Result<Bundle> {
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            runtime_dir: dir.to_path_buf(),
            keep: false,
        })
    }

    /// A container's bundle: it stays when dropped (the container's folder
    /// goes with `berth rm`).
    pub fn keep(mut self) -> Bundle {
        self.keep = true;
        self
    }

    /// The pid file goes in `dir` (a container's runtime folder).
    pub fn with_runtime_dir(mut self, dir: PathBuf) -> Bundle {
        self.runtime_dir = dir;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes hosts, hostname and resolv.conf for a container and returns
    /// their bind mounts. Loopback name servers of the host are useless in a
    /// private network namespace and are left out there.
    pub fn etc_files(&self, hostname: &str, network: Network) -> Result<Vec<Mount>> {
        let write = |name: &str, text: String| -> Result<PathBuf> {
            let p = self.dir.join(name);
            std::fs::write(&p, text).map_err(io(format!("cannot write {}", p.display())))?;
            Ok(p)
        };
        let hosts = write(
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
            ),
        )?;
        let hn = write("hostname", format!("{hostname}\n"))?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv_text = if network == Network::Host {
            host_resolv
        } else if network == Network::Private && crate::supervisor::slirp_available() {
            // slirp4netns answers DNS at 10.0.2.3 (and asks the host's servers).
            let mut text: String = host_resolv
                .lines()
                .filter(|l| l.starts_with("search") || l.starts_with("options"))
                .map(|l| format!("{l}\n"))
                .collect();
            text.push_str("nameserver 10.0.2.3\n");
            text
        } else {
            host_resolv
                .lines()
                .filter(|l| !l.contains("127.0.0."))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        };
        let resolv = write("resolv.conf", resolv_text)?;
        [
            ("/etc/hosts", hosts),
            ("/etc/hostname", hn),
            ("/etc/resolv.conf", resolv),
        ]
        .into_iter()
        .map(|(dest, src)| bind(src.as_path(), dest, false))
        .collect()
    }

    /// Saves `spec` as the bundle's `config.json`.
    pub fn save(&self, spec: &Spec) -> Result<PathBuf> {
        let path = self.dir.join("config.json");
        spec.save(&path)
            .map_err(|e| Error::Setup(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// An external OCI runtime (`runc`, `crun`, or a path to one) running
    /// the saved bundle as container `id`: `runc run --bundle DIR ID`.
    pub fn external(&self, runtime: &str, id: &str) -> Command {
        let mut cmd = Command::new(runtime);
        cmd.arg("run")
            .arg("--bundle")
            .arg(&self.dir)
            .arg("--pid-file")
            .arg(self.pid_file())
            .arg(id);
        cmd
    }

    /// Where the runtime writes the container's first process id.
    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("pid")
    }

    /// Where a runtime sends the container's terminal (`-t`): in the temp
    /// folder, as a socket's path must be shorter than 108 bytes.
    pub fn console_socket(&self) -> PathBuf {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(12).collect::<String>())
            .unwrap_or_default();
        std::env::temp_dir().join(format!("berth-{name}-{}.sock", std::process::id()))
    }

    /// The helper process that runs the saved spec: `exe __runtime config.json pid`.
    pub fn helper(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg(HELPER_COMMAND)
            .arg(self.dir.join("config.json"))
            .arg(self.pid_file());
        cmd
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bind mount of `source` at `dest` (read-only on request).
pub fn bind(source: &Path, dest: &str, readonly: bool) -> Result<Mount> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}

/// A tmpfs at `dest`.
pub fn tmpfs(dest: &str, size: Option<u64>) -> Result<Mount> {
    let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
    if let Some(s) = size {
        options.push(format!("size={s}"));
    }
    MountBuilder::default()
        .destination(dest)
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}
