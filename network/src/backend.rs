//! What makes a container's interfaces: a [`NetworkBackend`]. berth's is
//! netavark with aardvark-dns, as podman 4 drives them: the network options
//! JSON on its stdin, `setup|teardown NETNS`, a status JSON or an
//! `{"error"}` on its stdout.

use crate::error::{Error, Result};
use crate::record::NetworkRecord;
use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A container's place on one network.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: NetworkRecord,
    pub ip: Ipv4Addr,
    /// Inside the container: `eth0`, `eth1`, ...
    pub interface: String,
    /// The names DNS answers with this container's address.
    pub aliases: Vec<String>,
    pub mac: Option<String>,
}

/// A published port, forwarded by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

/// A container, as the backend sees it.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub container_id: &'a str,
    pub container_name: &'a str,
    pub attachments: &'a [Attachment],
    pub ports: &'a [PortForward],
}

/// What one attachment became.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub network_id: String,
    pub interface: String,
    pub mac: String,
    /// The address with the subnet's prefix length.
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns_servers: Vec<IpAddr>,
}

pub trait NetworkBackend {
    /// Makes the attachments' interfaces in namespace `netns`.
    fn setup(&self, netns: &Path, ep: &Endpoint) -> Result<Vec<Status>>;
    /// Takes them away again (the namespace may hold others).
    fn teardown(&self, netns: &Path, ep: &Endpoint) -> Result<()>;
    /// Takes away what outlives namespace `netns`, which the caller
    /// removes next: interfaces may go with it.
    fn release(&self, netns: &Path, ep: &Endpoint) -> Result<()> {
        self.teardown(netns, ep)
    }
    /// Makes what network `n` has of its own (a bridge, rules), as docker's
    /// daemon does at `network create`; a backend may leave it to the
    /// first container's setup.
    fn create_network(&self, _n: &NetworkRecord) -> Result<()> {
        Ok(())
    }
    /// Takes away what network `n` has of its own (a bridge, rules), once
    /// no container is on it.
    fn remove_network(&self, _n: &NetworkRecord) -> Result<()> {
        Ok(())
    }
}

/// Which backend: berth's own bridge backend, or netavark when
/// `BERTH_NETWORK_BACKEND=netavark` asks for it.
fn wants_netavark() -> bool {
    std::env::var("BERTH_NETWORK_BACKEND").is_ok_and(|v| v == "netavark")
}

/// The backend for state under `config`, or which package it needs.
pub fn backend(config: &Path) -> Result<Box<dyn NetworkBackend>> {
    if wants_netavark() {
        Ok(Box::new(Netavark::find(config)?))
    } else {
        Ok(Box::new(crate::native::Bridge::find(config)?))
    }
}

/// Whether the backend can run here (as root, with what it needs).
pub fn available() -> bool {
    if wants_netavark() {
        Netavark::available()
    } else {
        crate::native::Bridge::available()
    }
}

/// netavark and aardvark-dns, with their state under `config`.
#[derive(Debug, Clone)]
pub struct Netavark {
    pub binary: PathBuf,
    pub aardvark: PathBuf,
    pub config: PathBuf,
}

/// Held while netavark runs, by every berth root of the machine.
const MACHINE_LOCK: &str = "/run/berth/netavark.lock";

/// Where Debian and Fedora put podman's helpers.
const HELPER_DIRS: &[&str] = &[
    "/usr/lib/podman",
    "/usr/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/local/libexec/podman",
];

pub(crate) fn helper(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    HELPER_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Netavark {
    /// The installed netavark and aardvark-dns (`BERTH_NETAVARK` and
    /// `BERTH_AARDVARK` override where they are).
    pub fn find(config: &Path) -> Result<Netavark> {
        let binary = helper("netavark", "BERTH_NETAVARK").ok_or_else(|| {
            Error::Missing(
                "netavark is not installed: networks need Debian's netavark package (apt-get install netavark aardvark-dns)".into(),
            )
        })?;
        let aardvark = helper("aardvark-dns", "BERTH_AARDVARK").ok_or_else(|| {
            Error::Missing(
                "aardvark-dns is not installed: names on networks need Debian's aardvark-dns package (apt-get install aardvark-dns)".into(),
            )
        })?;
        Ok(Netavark {
            binary,
            aardvark,
            config: config.to_path_buf(),
        })
    }

    /// Whether netavark is installed (and berth runs as root, as it needs).
    pub fn available() -> bool {
        nix::unistd::geteuid().is_root()
            && helper("netavark", "BERTH_NETAVARK").is_some()
            && helper("aardvark-dns", "BERTH_AARDVARK").is_some()
    }

    fn run(&self, verb: &str, netns: &Path, options: &Value) -> Result<Value> {
        std::fs::create_dir_all(&self.config).map_err(Error::io_at("create", &self.config))?;
        // One netavark at a time on the machine (as podman runs it): two at
        // once race on the firewall's chains ("Chain already exists").
        let _lock = crate::store::lock_file(Path::new(MACHINE_LOCK))?;
        let mut cmd = Command::new(&self.binary);
        // netavark goes with whoever runs it: a killed supervisor leaves a
        // half-made setup, which the teardown of the next command undoes,
        // never one that goes on being made after that teardown.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .arg("--config")
            .arg(&self.config)
            .arg("--aardvark-binary")
            .arg(&self.aardvark)
            .arg(verb)
            .arg(netns)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!("cannot run {}", self.binary.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(options)
                .map_err(|e| Error::Backend(format!("cannot encode netavark's options: {e}")))?;
            let _ = stdin.write_all(&body);
        }
        let out = child.wait_with_output().map_err(Error::io(format!(
            "cannot wait for {}",
            self.binary.display()
        )))?;
        let reply: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(msg) = reply
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
        {
            return Err(Error::Backend(format!("netavark {verb}: {msg}")));
        }
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let msg = stderr
                .lines()
                .filter(|l| !l.contains("syslog"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::Backend(format!(
                "netavark {verb} failed ({}): {msg}",
                out.status
            )));
        }
        Ok(reply.unwrap_or(Value::Null))
    }
}

/// netavark's network options for `ep`; networks are named by their ID, so
/// any name docker accepts works.
fn options(ep: &Endpoint) -> Value {
    let mut networks = Map::new();
    let mut info = Map::new();
    for a in ep.attachments {
        let n = &a.network;
        let mut per = json!({
            "interface_name": a.interface,
            "static_ips": [a.ip.to_string()],
            "aliases": a.aliases,
        });
        if let Some(mac) = &a.mac {
            per["static_mac"] = json!(mac);
        }
        networks.insert(n.id.clone(), per);
        let subnets: Vec<Value> = n
            .ipam
            .config
            .iter()
            .map(|c| {
                let mut s = json!({ "subnet": c.subnet });
                if !c.gateway.is_empty() {
                    s["gateway"] = json!(c.gateway);
                }
                s
            })
            .collect();
        let mut opts = Map::new();
        // docker's isolation: no traffic between two networks.
        opts.insert("isolate".into(), json!("true"));
        if let Some(mtu) = n.options.get("com.docker.network.driver.mtu") {
            opts.insert("mtu".into(), json!(mtu));
        }
        info.insert(
            n.id.clone(),
            json!({
                "name": n.id,
                "id": n.id,
                "driver": "bridge",
                "network_interface": n.interface(),
                "subnets": subnets,
                "ipv6_enabled": false,
                "internal": n.internal,
                "dns_enabled": n.dns(),
                "options": opts,
            }),
        );
    }
    let ports: Vec<Value> = ep
        .ports
        .iter()
        .map(|p| {
            json!({
                "container_port": p.container_port,
                "host_ip": if p.host_ip == "0.0.0.0" { "" } else { p.host_ip.as_str() },
                "host_port": p.host_port,
                "protocol": p.proto,
                "range": 1,
            })
        })
        .collect();
    json!({
        "container_id": ep.container_id,
        "container_name": ep.container_name,
        "networks": networks,
        "network_info": info,
        "port_mappings": ports,
    })
}

/// The attachments' statuses out of netavark's reply.
fn statuses(ep: &Endpoint, reply: &Value) -> Result<Vec<Status>> {
    let mut out = Vec::new();
    for a in ep.attachments {
        let block = &reply[&a.network.id];
        let iface = &block["interfaces"][&a.interface];
        let mac = iface["mac_address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let sub = &iface["subnets"][0];
        let address: Ipv4Net = sub["ipnet"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Error::Backend(format!(
                    "netavark gave no address for network {}: {block}",
                    a.network.name
                ))
            })?;
        let gateway = sub["gateway"].as_str().and_then(|s| s.parse().ok());
        let dns_servers = block["dns_server_ips"]
            .as_array()
            .map(|v| v.iter().filter_map(|s| s.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        out.push(Status {
            network_id: a.network.id.clone(),
            interface: a.interface.clone(),
            mac,
            address,
            gateway,
            dns_servers,
        });
    }
    Ok(out)
}

impl NetworkBackend for Netavark {
    fn setup(&self, netns: &Path, ep: &Endpoint) -> Result<Vec<Status>> {
        if ep.attachments.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self.run("setup", netns, &options(ep))?;
        statuses(ep, &reply)
    }

    fn teardown(&self, netns: &Path, ep: &Endpoint) -> Result<()> {
        if ep.attachments.is_empty() {
            return Ok(());
        }
        self.run("teardown", netns, &options(ep)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IpamConfig;

    #[test]
    fn options_name_networks_by_id_and_isolate_them() {
        let mut n = NetworkRecord {
            name: "my net".into(),
            id: "ab".repeat(32),
            driver: "bridge".into(),
            internal: true,
            ..Default::default()
        };
        n.ipam.config.push(IpamConfig {
            subnet: "10.9.0.0/24".into(),
            gateway: "10.9.0.1".into(),
            ip_range: String::new(),
        });
        let att = [Attachment {
            network: n.clone(),
            ip: "10.9.0.2".parse().unwrap(),
            interface: "eth0".into(),
            aliases: vec!["web".into()],
            mac: None,
        }];
        let ports = [PortForward {
            host_ip: "0.0.0.0".into(),
            host_port: 8080,
            container_port: 80,
            proto: "tcp".into(),
        }];
        let ep = Endpoint {
            container_id: "c",
            container_name: "web",
            attachments: &att,
            ports: &ports,
        };
        let o = options(&ep);
        let info = &o["network_info"][&n.id];
        assert_eq!(info["name"], json!(n.id));
        assert_eq!(info["internal"], json!(true));
        assert_eq!(info["options"]["isolate"], json!("true"));
        assert_eq!(
            info["network_interface"],
            json!(format!("br-{}", &n.id[..12]))
        );
        assert_eq!(o["networks"][&n.id]["static_ips"], json!(["10.9.0.2"]));
        assert_eq!(o["port_mappings"][0]["host_ip"], json!(""));
        let reply = json!({ n.id.clone(): {"dns_server_ips": ["10.9.0.1"], "interfaces": {"eth0": {
            "mac_address": "aa:bb:cc:dd:ee:ff", "subnets": [{"gateway": "10.9.0.1", "ipnet": "10.9.0.2/24"}]}}}});
        let st = statuses(&ep, &reply).unwrap();
        assert_eq!(st[0].address.to_string(), "10.9.0.2/24");
        assert_eq!(st[0].mac, "aa:bb:cc:dd:ee:ff");
        assert_eq!(st[0].dns_servers.len(), 1);
        assert!(statuses(&ep, &json!({})).is_err());
    }
}
