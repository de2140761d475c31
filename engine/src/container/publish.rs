//! Published ports: docker's `-p` forms as a `PortMap`, and a `PortMap` as
//! the mappings the supervisor binds.

use crate::error::{fail, Result};
use crate::model::{PortBinding, PortMap};
use berth_runner::ports::{PortMapping, Proto};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `-p [IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`, each, as the host config's
/// port bindings (what docker's CLI sends).
pub fn parse_publish(specs: &[String]) -> Result<PortMap> {
    let mut map = PortMap::new();
    for s in specs {
        let m = PortMapping::parse(s)?;
        map.entry(format!("{}/{}", m.container, m.proto.name()))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: m.host.ip().to_string(),
                host_port: m.host.port().to_string(),
            });
    }
    Ok(map)
}

/// The bindings of a port map, one mapping each.
pub(crate) fn mappings(map: &PortMap) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    for (port, bindings) in map {
        let (n, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => fail!(Invalid, "invalid port {port:?}: unknown protocol {other:?}"),
        };
        let Some(container) = n.parse::<u16>().ok().filter(|p| *p != 0) else {
            fail!(Invalid, "invalid container port {port:?}");
        };
        for b in bindings.iter().flatten() {
            let ip: IpAddr = if b.host_ip.is_empty() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                match b.host_ip.trim_matches(['[', ']']).parse() {
                    Ok(ip) => ip,
                    Err(_) => fail!(Invalid, "invalid host IP {:?} for port {port}", b.host_ip),
                }
            };
            let host = if b.host_port.is_empty() {
                0
            } else {
                match b.host_port.parse::<u16>() {
                    Ok(p) => p,
                    Err(_) => fail!(
                        Invalid,
                        "invalid host port {:?} for port {port}",
                        b.host_port
                    ),
                }
            };
            out.push(PortMapping {
                host: SocketAddr::new(ip, host),
                container,
                proto,
            });
        }
    }
    Ok(out)
}
