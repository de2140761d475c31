//! The addresses a network has handed out: one per container, never two
//! containers on one address. A lease whose container is dead (its
//! supervisor killed before it could give the address back) is taken back
//! when the address is needed again.

use crate::error::{Error, Result};
use crate::record::NetworkRecord;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lease {
    pub container: String,
    pub name: String,
    pub endpoint_id: String,
    pub mac: String,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    pub interface: String,
    /// The process that holds it for the container (its supervisor): pid
    /// and start time, so a killed holder's lease can be taken back.
    pub holder: Option<(i32, u64)>,
}

/// The leases of one network, loaded under the store's lock.
#[derive(Debug)]
pub struct Leases {
    path: PathBuf,
    pub by_ip: BTreeMap<Ipv4Addr, Lease>,
}

/// A network's subnet and the part of it addresses come from.
pub fn ranges(net: &NetworkRecord) -> Result<Option<(Ipv4Net, Ipv4Net, Option<Ipv4Addr>)>> {
    let Some(cfg) = net.ipam.config.first() else {
        return Ok(None);
    };
    let parse = |s: &str| -> Result<Ipv4Net> {
        s.parse()
            .map_err(|_| Error::Invalid(format!("network {} has a bad subnet {s:?}", net.name)))
    };
    let subnet = parse(&cfg.subnet)?;
    let range = if cfg.ip_range.is_empty() {
        subnet
    } else {
        parse(&cfg.ip_range)?
    };
    let gateway = cfg.gateway.parse().ok();
    Ok(Some((subnet, range, gateway)))
}

impl Leases {
    pub(crate) fn load(path: &Path) -> Result<Leases> {
        let by_ip = match std::fs::read(path) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| Error::Invalid(format!("{} is damaged: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io_at("read", path)(e)),
        };
        Ok(Leases {
            path: path.to_path_buf(),
            by_ip,
        })
    }

    pub(crate) fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(&self.by_ip)
            .map_err(|e| Error::Invalid(format!("cannot encode leases: {e}")))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, data).map_err(Error::io_at("write", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(Error::io_at("write", &self.path))
    }

    /// The address container `id` holds here.
    pub fn of(&self, id: &str) -> Option<(Ipv4Addr, &Lease)> {
        self.by_ip
            .iter()
            .find(|(_, l)| l.container == id)
            .map(|(ip, l)| (*ip, l))
    }

    /// Drops the leases of containers that are not alive.
    pub fn forget_dead(&mut self, alive: &dyn Fn(&Lease) -> bool) {
        self.by_ip.retain(|_, l| alive(l));
    }

    /// An address on `net` for `lease.container`: `wanted`, or the lowest
    /// free one of the network's range. A container that holds one keeps it.
    pub fn allocate(
        &mut self,
        net: &NetworkRecord,
        wanted: Option<Ipv4Addr>,
        lease: Lease,
        alive: &dyn Fn(&Lease) -> bool,
    ) -> Result<Ipv4Addr> {
        let Some((subnet, range, gateway)) = ranges(net)? else {
            return Err(Error::Invalid(format!(
                "network {} has no subnet to take addresses from",
                net.name
            )));
        };
        if let Some((ip, _)) = self.of(&lease.container) {
            if wanted.is_none_or(|w| w == ip) {
                return Ok(ip);
            }
            self.release(&lease.container);
        }
        let usable = |ip: &Ipv4Addr| {
            *ip != subnet.network() && *ip != subnet.broadcast() && Some(*ip) != gateway
        };
        let ip = match wanted {
            Some(ip) => {
                if !subnet.contains(&ip) || !usable(&ip) {
                    return Err(Error::Invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if let Some(other) = self.by_ip.get(&ip) {
                    if alive(other) {
                        return Err(Error::Conflict(format!(
                            "Address already in use: {ip} is taken on network {} by container {}",
                            net.name, other.name
                        )));
                    }
                }
                ip
            }
            None => {
                let free =
                    |ip: &Ipv4Addr| usable(ip) && self.by_ip.get(ip).is_none_or(|l| !alive(l));
                range.hosts().find(|ip| free(ip)).ok_or_else(|| {
                    Error::Conflict(format!(
                        "no available IPv4 addresses on network {} ({subnet})",
                        net.name
                    ))
                })?
            }
        };
        self.by_ip.insert(ip, lease);
        Ok(ip)
    }

    /// Gives back container `id`'s address.
    pub fn release(&mut self, id: &str) -> bool {
        let before = self.by_ip.len();
        self.by_ip.retain(|_, l| l.container != id);
        before != self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IpamConfig;

    fn network(subnet: &str, gateway: &str, range: &str) -> NetworkRecord {
        let mut n = NetworkRecord {
            name: "n".into(),
            id: "0".repeat(64),
            driver: "bridge".into(),
            ..Default::default()
        };
        n.ipam.config.push(IpamConfig {
            subnet: subnet.into(),
            gateway: gateway.into(),
            ip_range: range.into(),
        });
        n
    }

    fn lease(c: &str) -> Lease {
        Lease {
            container: c.into(),
            name: c.into(),
            ..Default::default()
        }
    }

    #[test]
    fn addresses_are_handed_out_once_and_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Leases::load(&dir.path().join("l.json")).unwrap();
        let n = network("10.5.0.0/24", "10.5.0.1", "");
        let live = |_: &Lease| true;
        let a = l.allocate(&n, None, lease("a"), &live).unwrap();
        let b = l.allocate(&n, None, lease("b"), &live).unwrap();
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("10.5.0.2", "10.5.0.3")
        );
        // Asking again keeps the address.
        assert_eq!(l.allocate(&n, None, lease("a"), &live).unwrap(), a);
        let taken = l.allocate(&n, Some(b), lease("c"), &live).unwrap_err();
        assert!(
            taken.to_string().contains("Address already in use"),
            "{taken}"
        );
        let outside = l.allocate(&n, Some("10.6.0.2".parse().unwrap()), lease("c"), &live);
        assert!(outside.is_err());
        let gw = l.allocate(&n, Some("10.5.0.1".parse().unwrap()), lease("c"), &live);
        assert!(gw.is_err());
        l.save().unwrap();
        let mut l = Leases::load(&dir.path().join("l.json")).unwrap();
        assert!(l.release("a"));
        assert_eq!(l.allocate(&n, None, lease("c"), &live).unwrap(), a);
        // A dead holder's address is free again.
        let only_c = |l: &Lease| l.container == "c";
        assert_eq!(l.allocate(&n, Some(b), lease("d"), &only_c).unwrap(), b);
    }

    #[test]
    fn an_ip_range_bounds_what_is_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Leases::load(&dir.path().join("l.json")).unwrap();
        let n = network("10.5.0.0/16", "10.5.0.1", "10.5.7.0/30");
        let live = |_: &Lease| true;
        assert_eq!(
            l.allocate(&n, None, lease("a"), &live).unwrap().to_string(),
            "10.5.7.1"
        );
        assert_eq!(
            l.allocate(&n, None, lease("b"), &live).unwrap().to_string(),
            "10.5.7.2"
        );
        assert!(l.allocate(&n, None, lease("c"), &live).is_err());
    }
}
