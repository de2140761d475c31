//! berth's own bridge backend, laid out as docker's: a network's bridge,
//! gateway address and firewall rules are made once, when the first
//! container of a boot joins it, and stay until the network is removed; a
//! container's setup is then a veth pair, an address and a route made over
//! netlink, and its names given to aardvark-dns. Its interfaces go with its
//! namespace (the kernel takes a dying namespace's veths away in the
//! background), so a container's exit waits for no link deletion.

pub mod dns;
pub mod firewall;
pub mod netlink;

use crate::backend::{Attachment, Endpoint, NetworkBackend, Status};
use crate::error::{Error, Result};
use crate::record::NetworkRecord;
use firewall::NetworkRules;
use ipnet::Ipv4Net;
use netlink::Netlink;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// One file per bridge made on this boot: the rules it has.
const BRIDGES: &str = "/run/berth/bridges";
/// Held while bridges and their rules change, by every berth root.
const BRIDGES_LOCK: &str = "/run/berth/bridges.lock";

#[derive(Debug, Clone)]
pub struct Bridge {
    dns: dns::Aardvark,
}

fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(name).is_file())
}

/// A network's subnet and gateway.
fn addressing(n: &NetworkRecord) -> Result<(Ipv4Net, Ipv4Addr)> {
    let c = n
        .ipam
        .config
        .first()
        .ok_or_else(|| Error::Backend(format!("network {} has no subnet", n.name)))?;
    let subnet: Ipv4Net = c.subnet.parse().map_err(|_| {
        Error::Backend(format!(
            "network {} has a bad subnet {:?}",
            n.name, c.subnet
        ))
    })?;
    let gateway = match c.gateway.as_str() {
        "" => subnet
            .hosts()
            .next()
            .ok_or_else(|| Error::Backend(format!("network {} has no room", n.name)))?,
        g => g
            .parse()
            .map_err(|_| Error::Backend(format!("network {} has a bad gateway {g:?}", n.name)))?,
    };
    Ok((subnet, gateway))
}

/// docker's MAC address of an IPv4 address: 02:42 and its four bytes.
fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

fn show_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The host end of a container's veth on a network (15 bytes at most):
/// 52 bits of a stable hash (FNV-1a) of both IDs, so two containers whose
/// IDs share a prefix never meet on one name, and any berth binary finds
/// the name an earlier one made.
fn veth_name(container: &str, network: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container.bytes().chain([b'/']).chain(network.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vb{:013x}", h >> 12)
}

fn mtu(n: &NetworkRecord) -> Option<u32> {
    n.options
        .get("com.docker.network.driver.mtu")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m > 0)
}

fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(Error::io_at("write", &path))
}

impl Bridge {
    /// The backend, or which package it needs (`BERTH_AARDVARK` says where
    /// aardvark-dns is).
    pub fn find(config: &Path) -> Result<Bridge> {
        if !on_path("iptables-restore") {
            return Err(Error::Missing(
                "iptables is not installed: networks need Debian's iptables package (apt-get install iptables)".into(),
            ));
        }
        let binary = crate::backend::helper("aardvark-dns", "BERTH_AARDVARK").ok_or_else(|| {
            Error::Missing(
                "aardvark-dns is not installed: names on networks need Debian's aardvark-dns package (apt-get install aardvark-dns)".into(),
            )
        })?;
        Ok(Bridge {
            dns: dns::Aardvark {
                binary,
                dir: config.join("aardvark-dns"),
            },
        })
    }

    /// Whether it can run here: as root, with iptables and aardvark-dns.
    pub fn available() -> bool {
        nix::unistd::geteuid().is_root()
            && on_path("iptables-restore")
            && crate::backend::helper("aardvark-dns", "BERTH_AARDVARK").is_some()
    }

    /// Network `n`'s bridge, made with its address and rules when this
    /// boot has not made it yet; its index.
    fn ensure(&self, nl: &mut Netlink, n: &NetworkRecord) -> Result<u32> {
        let (subnet, gateway) = addressing(n)?;
        let rules = NetworkRules {
            bridge: n.interface(),
            subnet: subnet.trunc().to_string(),
            internal: n.internal,
        };
        let stamp = Path::new(BRIDGES).join(&rules.bridge);
        let made = |nl: &mut Netlink| -> Result<Option<u32>> {
            let Some(index) = nl.index(&rules.bridge)? else {
                return Ok(None);
            };
            Ok(Made::read(&stamp)
                .filter(|m| m.rules == rules && m.index == index)
                .map(|_| index))
        };
        if let Some(index) = made(nl)? {
            return Ok(index);
        }
        let _lock = crate::store::lock_file(Path::new(BRIDGES_LOCK))?;
        if let Some(index) = made(nl)? {
            return Ok(index);
        }
        let index = nl.add_bridge(&rules.bridge, mac_of(gateway), mtu(n))?;
        nl.add_address(index, gateway, subnet.prefix_len())?;
        nl.up(index)?;
        write_sysctl("net.ipv4.ip_forward", "1")?;
        // Loopback clients of published ports are routed to the bridge.
        write_sysctl(
            &format!("net.ipv4.conf.{}.route_localnet", rules.bridge),
            "1",
        )?;
        let owner = self.dns.dir.parent().unwrap_or(&self.dns.dir).to_path_buf();
        std::fs::create_dir_all(&owner).map_err(Error::io_at("create", &owner))?;
        let made = Made {
            rules,
            index,
            owner,
        };
        let body = serde_json::to_vec(&made)
            .map_err(|e| Error::Backend(format!("cannot encode {}: {e}", stamp.display())))?;
        std::fs::create_dir_all(BRIDGES).map_err(Error::io_at("create", Path::new(BRIDGES)))?;
        crate::store::write_atomic(&stamp, &body)?;
        apply_all(nl)?;
        Ok(index)
    }

    fn join(
        &self,
        host: &mut Netlink,
        inside: &mut Netlink,
        ns: &std::fs::File,
        ep: &Endpoint,
        a: &Attachment,
    ) -> Result<Status> {
        let n = &a.network;
        let (subnet, gateway) = addressing(n)?;
        let bridge = self.ensure(host, n)?;
        let veth = veth_name(ep.container_id, &n.id);
        let mac = a
            .mac
            .as_deref()
            .and_then(parse_mac)
            .unwrap_or_else(|| mac_of(a.ip));
        let made = match host.add_veth(&veth, bridge, &a.interface, mac, ns, mtu(n)) {
            // One of an earlier run whose namespace is still going away.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                host.delete(&veth)?;
                host.add_veth(&veth, bridge, &a.interface, mac, ns, mtu(n))
            }
            r => r,
        };
        made.map_err(|e| {
            Error::Backend(format!(
                "cannot make {} on network {} ({veth}): {e}",
                a.interface, n.name
            ))
        })?;
        let index = inside.index(&a.interface)?.ok_or_else(|| {
            Error::Backend(format!(
                "{} is not in the container's namespace",
                a.interface
            ))
        })?;
        inside.add_address(index, a.ip, subnet.prefix_len())?;
        inside.up(index)?;
        if !n.internal {
            inside.add_default_route(index, gateway)?;
        }
        let mut dns_servers = Vec::new();
        if n.dns() {
            let mut names = vec![ep.container_name.to_string()];
            names.extend(a.aliases.iter().cloned());
            self.dns.add(
                &n.id,
                gateway,
                &dns::Entry {
                    container_id: ep.container_id,
                    ip: a.ip,
                    names,
                },
            )?;
            dns_servers.push(IpAddr::V4(gateway));
        }
        Ok(Status {
            network_id: n.id.clone(),
            interface: a.interface.clone(),
            mac: show_mac(mac),
            address: Ipv4Net::new(a.ip, subnet.prefix_len())
                .map_err(|e| Error::Backend(format!("bad prefix: {e}")))?,
            gateway: Some(gateway),
            dns_servers,
        })
    }

    /// What outlives the namespace: published ports and names.
    fn forget(&self, ep: &Endpoint) -> Result<()> {
        let mut first = None;
        if !ep.ports.is_empty() {
            if let Err(e) = firewall::remove_ports(ep.container_id) {
                first = Some(e);
            }
        }
        for a in ep.attachments.iter().filter(|a| a.network.dns()) {
            if let Err(e) = self.dns.remove(&a.network.id, ep.container_id) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What a stamp of [`BRIDGES`] says of a bridge made on this boot.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Made {
    rules: NetworkRules,
    index: u32,
    /// The backend folder of the berth root whose network it is.
    owner: PathBuf,
}

impl Made {
    fn read(stamp: &Path) -> Option<Made> {
        serde_json::from_slice(&std::fs::read(stamp).ok()?).ok()
    }
}

/// Rewrites berth's network chains for every bridge of this boot that is
/// still there. Bridges of berth roots that are gone (a test's, a CI
/// job's) go first, with their stamps.
fn apply_all(nl: &mut Netlink) -> Result<()> {
    let mut all = Vec::new();
    if let Ok(dir) = std::fs::read_dir(BRIDGES) {
        for e in dir.flatten() {
            match Made::read(&e.path()) {
                Some(m) if nl.index(&m.rules.bridge)? == Some(m.index) => {
                    if m.owner.exists() {
                        all.push(m.rules);
                        continue;
                    }
                    nl.delete(&m.rules.bridge)?;
                    let _ = std::fs::remove_file(e.path());
                }
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    all.sort_by(|a, b| a.bridge.cmp(&b.bridge));
    firewall::apply_networks(&all)
}

impl NetworkBackend for Bridge {
    fn setup(&self, netns: &Path, ep: &Endpoint) -> Result<Vec<Status>> {
        if ep.attachments.is_empty() {
            return Ok(Vec::new());
        }
        let mut host = Netlink::here()?;
        let mut inside = Netlink::inside(netns)?;
        let ns = std::fs::File::open(netns).map_err(Error::io_at("open", netns))?;
        if let Some(lo) = inside.index("lo")? {
            inside.up(lo)?;
        }
        let mut out = Vec::new();
        for a in ep.attachments {
            out.push(self.join(&mut host, &mut inside, &ns, ep, a)?);
        }
        if let Some(first) = out.first() {
            firewall::add_ports(ep.container_id, first.address.addr(), ep.ports)?;
        }
        Ok(out)
    }

    fn teardown(&self, _netns: &Path, ep: &Endpoint) -> Result<()> {
        let forgotten = self.forget(ep);
        let mut host = Netlink::here()?;
        for a in ep.attachments {
            host.delete(&veth_name(ep.container_id, &a.network.id))?;
        }
        forgotten
    }

    fn release(&self, _netns: &Path, ep: &Endpoint) -> Result<()> {
        self.forget(ep)
    }

    fn create_network(&self, n: &NetworkRecord) -> Result<()> {
        if n.bridged() {
            self.ensure(&mut Netlink::here()?, n)?;
        }
        Ok(())
    }

    fn remove_network(&self, n: &NetworkRecord) -> Result<()> {
        if !n.bridged() {
            return Ok(());
        }
        let dns = self.dns.drop_network(&n.id);
        let _lock = crate::store::lock_file(Path::new(BRIDGES_LOCK))?;
        let bridge = n.interface();
        let _ = std::fs::remove_file(PathBuf::from(BRIDGES).join(&bridge));
        let mut nl = Netlink::here()?;
        nl.delete(&bridge)?;
        apply_all(&mut nl)?;
        dns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_docker_s() {
        assert_eq!(
            show_mac(mac_of("172.17.0.2".parse().unwrap())),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some(mac_of("172.17.0.2".parse().unwrap()))
        );
        assert_eq!(parse_mac("02:42"), None);
        let v = veth_name(&"c".repeat(64), &"a".repeat(64));
        assert_eq!(v.len(), 15, "{v}");
        let mut other = "c".repeat(63);
        other.push('d');
        assert_ne!(v, veth_name(&other, &"a".repeat(64)));
        assert_ne!(v, veth_name(&"c".repeat(64), &"b".repeat(64)));
        assert_eq!(v, veth_name(&"c".repeat(64), &"a".repeat(64)));
        let mut n = NetworkRecord::default();
        n.ipam.config.push(crate::record::IpamConfig {
            subnet: "10.9.0.0/24".into(),
            gateway: String::new(),
            ip_range: String::new(),
        });
        assert_eq!(
            addressing(&n).unwrap().1,
            "10.9.0.1".parse::<Ipv4Addr>().unwrap()
        );
    }
}
