//! Subnets for new networks, from docker's default address pools, skipping
//! what is in use: other networks' subnets, the host's routes and the
//! host's name servers.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// Whether two subnets share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// docker's default pools in the order docker takes from them:
/// 172.17.0.0/16 .. 172.31.0.0/16 (172.17/16, 172.18/16, 172.19/16, then
/// the /14s from 172.20 split into /16s), then 192.168.0.0/16 in /20s.
pub fn default_subnets() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17u8..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let narrow =
        (0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    wide.chain(narrow)
}

/// The first default subnet that overlaps none of `taken`.
pub fn choose(taken: &[IpNet]) -> Option<Ipv4Net> {
    default_subnets().find(|s| {
        let s = IpNet::V4(*s);
        !taken.iter().any(|t| overlaps(&s, t))
    })
}

/// The destinations of the host's IPv4 routes, but the default one
/// (`/proc/net/route`: little-endian hexadecimal address and mask).
pub fn host_routes() -> Vec<IpNet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_routes(&text)
}

fn parse_routes(text: &str) -> Vec<IpNet> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dest, mask) = (hex(f.get(1)?)?, hex(f.get(7)?)?);
            let prefix = u32::from(mask).count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(dest, prefix).ok().map(IpNet::V4))?
        })
        .collect()
}

/// The host's name servers (a subnet holding one would hide it).
pub fn host_resolvers() -> Vec<IpNet> {
    resolv_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        .into_iter()
        .map(IpNet::from)
        .collect()
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn resolv_servers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn pools_run_in_dockers_order() {
        let all: Vec<String> = default_subnets().map(|s| s.to_string()).collect();
        assert_eq!(all[0], "172.17.0.0/16");
        assert_eq!(all[1], "172.18.0.0/16");
        assert_eq!(all[3], "172.20.0.0/16");
        assert_eq!(all[14], "172.31.0.0/16");
        assert_eq!(all[15], "192.168.0.0/20");
        assert_eq!(all[16], "192.168.16.0/20");
        assert_eq!(all.len(), 31);
    }

    #[test]
    fn taken_subnets_routes_and_resolvers_are_skipped() {
        assert_eq!(choose(&[]).unwrap().to_string(), "172.17.0.0/16");
        let taken = [
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("172.19.0.53/32"),
        ];
        assert_eq!(choose(&taken).unwrap().to_string(), "172.20.0.0/16");
        // A wide route covers many pools.
        assert_eq!(
            choose(&[net("172.16.0.0/12")]).unwrap().to_string(),
            "192.168.0.0/20"
        );
        assert!(choose(&[net("0.0.0.0/1"), net("128.0.0.0/1")]).is_none());
    }

    #[test]
    fn routes_are_read_from_the_kernels_table() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r: Vec<String> = parse_routes(text).iter().map(|n| n.to_string()).collect();
        assert_eq!(r, ["10.0.0.0/24", "172.17.0.0/16"]);
    }

    #[test]
    fn name_servers_of_resolv_conf() {
        let s = resolv_servers("# x\nsearch lan\nnameserver 192.0.2.53\nnameserver ::1\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].to_string(), "192.0.2.53");
    }
}
