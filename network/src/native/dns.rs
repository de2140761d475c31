//! Names on user-defined networks: aardvark-dns, fed as netavark feeds it.
//! One file per network in its config folder (named by the network's ID):
//! the gateway on the first line, then `ID IPv4 IPv6 name,name,...` per
//! container. aardvark-dns answers on each gateway's port 53, scoped to the
//! networks of the asking address, forwards other names to the host's
//! resolvers, and reads its files again on SIGHUP.

use crate::error::{Error, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct Aardvark {
    pub binary: PathBuf,
    /// Its config folder: one file per network, and its pid file.
    pub dir: PathBuf,
}

/// One container's names on one network.
pub struct Entry<'a> {
    pub container_id: &'a str,
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
}

impl Aardvark {
    fn lock(&self) -> Result<crate::store::Locked> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io_at("create", &self.dir))?;
        // Not in its folder: aardvark-dns reads every file there as a network.
        crate::store::lock_file(&self.dir.with_extension("lock"))
    }

    /// Writes `file` of its folder whole: made beside the folder, then
    /// moved in.
    fn write(&self, file: &Path, body: &str) -> Result<()> {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self.dir.with_file_name(format!(".aardvark-{name}.tmp"));
        std::fs::write(&tmp, body).map_err(Error::io_at("write", &tmp))?;
        std::fs::rename(&tmp, file).map_err(Error::io_at("write", file))
    }

    /// Puts `entry` on network `network_id` (gateway `gateway`) in place
    /// of what its container had there, and has aardvark-dns answer it.
    pub fn add(&self, network_id: &str, gateway: Ipv4Addr, entry: &Entry) -> Result<()> {
        let _lock = self.lock()?;
        let file = self.dir.join(network_id);
        let mut lines = self.kept(&file, entry.container_id);
        let mut names: Vec<&str> = Vec::new();
        for n in &entry.names {
            if !n.is_empty() && !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        lines.push(format!(
            "{} {}  {}",
            entry.container_id,
            entry.ip,
            names.join(",")
        ));
        let body = format!("{gateway}\n{}\n", lines.join("\n"));
        self.write(&file, &body)?;
        self.reload()
    }

    /// Takes `container_id`'s names off network `network_id`.
    pub fn remove(&self, network_id: &str, container_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let file = self.dir.join(network_id);
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Ok(());
        };
        let gateway = text.lines().next().unwrap_or_default().to_string();
        let lines = self.kept(&file, container_id);
        if lines.is_empty() {
            std::fs::remove_file(&file).map_err(Error::io_at("remove", &file))?;
        } else {
            self.write(&file, &format!("{gateway}\n{}\n", lines.join("\n")))?;
        }
        self.reload()
    }

    /// Takes network `network_id` away from aardvark-dns.
    pub fn drop_network(&self, network_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let file = self.dir.join(network_id);
        if !file.exists() {
            return Ok(());
        }
        std::fs::remove_file(&file).map_err(Error::io_at("remove", &file))?;
        self.reload()
    }

    /// The container lines of `file` other than `container_id`'s.
    fn kept(&self, file: &Path, container_id: &str) -> Vec<String> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty() && l.split(' ').next() != Some(container_id))
            .map(str::to_string)
            .collect()
    }

    fn networks(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// The running aardvark-dns of this folder.
    fn running(&self) -> Option<Pid> {
        let pid: i32 = std::fs::read_to_string(self.dir.join("aardvark.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // A zombie has not gone yet, but it answers nothing.
        let state = stat.rsplit(')').next()?.split_whitespace().next()?;
        (comm.trim() == "aardvark-dns" && state != "Z").then_some(Pid::from_raw(pid))
    }

    /// Has aardvark-dns read its files again: started when there is none
    /// (it forks and returns once it serves), stopped when no network
    /// is left.
    fn reload(&self) -> Result<()> {
        let running = self.running();
        if self.networks() == 0 {
            if let Some(pid) = running {
                let _ = kill(pid, Signal::SIGTERM);
                // Gone before the lock is let go: a setup after this one
                // must not signal the one on its way out.
                for _ in 0..200 {
                    if self.running().is_none() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            let _ = std::fs::remove_file(self.dir.join("aardvark.pid"));
            return Ok(());
        }
        if let Some(pid) = running {
            return kill(pid, Signal::SIGHUP)
                .map_err(|e| Error::Backend(format!("cannot signal aardvark-dns: {e}")));
        }
        // It forks and returns once it serves; the server keeps no pipe of
        // ours (one would hold this call until it exits).
        let status = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.dir)
            .args(["-p", "53", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(Error::io(format!("cannot run {}", self.binary.display())))?;
        if !status.success() {
            return Err(Error::Backend(format!(
                "aardvark-dns failed ({status}); run {} --config {} -p 53 run to see why",
                self.binary.display(),
                self.dir.display()
            )));
        }
        Ok(())
    }
}
