//! iptables rules of berth's bridge networks, as docker lays them out:
//! each network's rules are made when its bridge is (not per container),
//! published ports per container. Everything berth adds lives in its own
//! chains, written with one `iptables-restore --noflush` each time.
//!
//! - filter `BERTH-FORWARD` (from `FORWARD`): isolation between networks
//!   (docker's two stages), `--internal` drops, replies and published ports
//!   in, containers out.
//! - nat `BERTH-POSTROUTING` (from `POSTROUTING`): masquerade out of the
//!   subnet, and of loopback clients of a published port.
//! - nat `BERTH-DNAT` (from `PREROUTING` and `OUTPUT`, local addresses):
//!   published ports, each rule commented with its container's ID.

use crate::backend::PortForward;
use crate::error::{Error, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// What the rules of one network need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: String,
    pub internal: bool,
}

const FORWARD: &str = "BERTH-FORWARD";
const ISOLATION: &str = "BERTH-ISOLATION";
const ISOLATION_2: &str = "BERTH-ISOLATION-2";
const POSTROUTING: &str = "BERTH-POSTROUTING";
const DNAT: &str = "BERTH-DNAT";

/// The jumps from the built-in chains into berth's.
const JUMPS: &[(&str, &str, &str)] = &[
    ("filter", "FORWARD", "-j BERTH-FORWARD"),
    ("nat", "POSTROUTING", "-j BERTH-POSTROUTING"),
    (
        "nat",
        "PREROUTING",
        "-m addrtype --dst-type LOCAL -j BERTH-DNAT",
    ),
    (
        "nat",
        "OUTPUT",
        "-m addrtype --dst-type LOCAL -j BERTH-DNAT",
    ),
];

fn restore(input: &str) -> Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(
            "cannot run iptables-restore (Debian's iptables package)",
        ))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io("cannot wait for iptables-restore"))?;
    if !out.status.success() {
        return Err(Error::Backend(format!(
            "iptables-restore failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn saved() -> Result<String> {
    let out = Command::new("iptables-save")
        .stderr(Stdio::null())
        .output()
        .map_err(Error::io(
            "cannot run iptables-save (Debian's iptables package)",
        ))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The restore input that makes berth's network chains hold the rules of
/// exactly `networks` (and hooks them in, and makes the port chain, where
/// `now` — what `iptables-save` printed — lacks them).
fn network_input(networks: &[NetworkRules], now: &str) -> String {
    let mut filter = vec![
        format!(":{FORWARD} - [0:0]"),
        format!(":{ISOLATION} - [0:0]"),
        format!(":{ISOLATION_2} - [0:0]"),
    ];
    let mut nat = vec![format!(":{POSTROUTING} - [0:0]")];
    if !now.lines().any(|l| l.starts_with(&format!(":{DNAT} "))) {
        nat.push(format!(":{DNAT} - [0:0]"));
    }
    filter.push(format!("-A {FORWARD} -j {ISOLATION}"));
    for n in networks {
        let (br, net) = (&n.bridge, &n.subnet);
        filter.push(format!("-A {ISOLATION} -i {br} ! -o {br} -j {ISOLATION_2}"));
        filter.push(format!("-A {ISOLATION_2} -o {br} -j DROP"));
        if n.internal {
            filter.push(format!("-A {FORWARD} -i {br} ! -o {br} -j DROP"));
            filter.push(format!("-A {FORWARD} -o {br} ! -i {br} -j DROP"));
        }
        filter.push(format!("-A {FORWARD} -i {br} -o {br} -j ACCEPT"));
        if !n.internal {
            filter.push(format!(
                "-A {FORWARD} -d {net} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            ));
            filter.push(format!(
                "-A {FORWARD} -d {net} -o {br} -m conntrack --ctstate DNAT -j ACCEPT"
            ));
            filter.push(format!("-A {FORWARD} -s {net} -i {br} -j ACCEPT"));
            nat.push(format!("-A {POSTROUTING} -s {net} ! -o {br} -j MASQUERADE"));
        }
        // Loopback clients of a published port, and a container reaching a
        // neighbour's published port through the host.
        nat.push(format!(
            "-A {POSTROUTING} -s 127.0.0.0/8 -o {br} -j MASQUERADE"
        ));
        nat.push(format!(
            "-A {POSTROUTING} -s {net} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE"
        ));
    }
    for (table, chain, jump) in JUMPS {
        let rule = format!("-A {chain} {jump}");
        if !in_table(now, table, &rule) {
            let line = format!("-I {chain} 1 {jump}");
            match *table {
                "filter" => filter.push(line),
                _ => nat.push(line),
            }
        }
    }
    format!(
        "*filter\n{}\nCOMMIT\n*nat\n{}\nCOMMIT\n",
        filter.join("\n"),
        nat.join("\n")
    )
}

/// Whether `rule` is in `table` of an `iptables-save` output.
fn in_table(saved: &str, table: &str, rule: &str) -> bool {
    let mut current = "";
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            current = t;
        } else if current == table && line.trim_end() == rule {
            return true;
        }
    }
    false
}

/// Makes berth's network chains hold the rules of exactly `networks`.
pub fn apply_networks(networks: &[NetworkRules]) -> Result<()> {
    let now = saved()?;
    restore(&network_input(networks, &now))
}

fn port_rules(container: &str, ip: Ipv4Addr, ports: &[PortForward]) -> Vec<String> {
    ports
        .iter()
        .map(|p| {
            let dest = match p.host_ip.as_str() {
                "" | "0.0.0.0" => String::new(),
                h => format!("-d {h}/32 "),
            };
            format!(
                "{dest}-p {proto} -m {proto} --dport {hp} -m comment --comment \"berth {container}\" -j DNAT --to-destination {ip}:{cp}",
                proto = p.proto,
                hp = p.host_port,
                cp = p.container_port,
            )
        })
        .collect()
}

/// Publishes `ports` of the container at `ip`.
pub fn add_ports(container: &str, ip: Ipv4Addr, ports: &[PortForward]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = port_rules(container, ip, ports)
        .into_iter()
        .map(|r| format!("-A {DNAT} {r}"))
        .collect();
    restore(&format!("*nat\n{}\nCOMMIT\n", lines.join("\n")))
}

/// Takes away every published port of `container`, whatever its rules
/// were (a container killed midway may have some of them).
pub fn remove_ports(container: &str) -> Result<()> {
    let now = saved()?;
    let tag = format!("\"berth {container}\"");
    let mut current = "";
    let mut gone = Vec::new();
    for line in now.lines() {
        if let Some(t) = line.strip_prefix('*') {
            current = t;
        } else if current == "nat" && line.contains(&tag) {
            if let Some(rule) = line.strip_prefix("-A ") {
                gone.push(format!("-D {rule}"));
            }
        }
    }
    if gone.is_empty() {
        return Ok(());
    }
    restore(&format!("*nat\n{}\nCOMMIT\n", gone.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_isolated_and_internal_ones_closed() {
        let nets = [
            NetworkRules {
                bridge: "br-a".into(),
                subnet: "10.1.0.0/24".into(),
                internal: false,
            },
            NetworkRules {
                bridge: "br-b".into(),
                subnet: "10.2.0.0/24".into(),
                internal: true,
            },
        ];
        let input = network_input(&nets, "*filter\n-A FORWARD -j BERTH-FORWARD\nCOMMIT\n");
        assert!(input.contains("-A BERTH-ISOLATION-2 -o br-a -j DROP"));
        assert!(input.contains("-A BERTH-FORWARD -i br-b ! -o br-b -j DROP"));
        assert!(input.contains("-A BERTH-POSTROUTING -s 10.1.0.0/24 ! -o br-a -j MASQUERADE"));
        assert!(!input.contains("-s 10.2.0.0/24 ! -o br-b -j MASQUERADE"));
        // The FORWARD hook is there; the nat ones and the port chain are not.
        assert!(!input.contains("-I FORWARD"));
        assert!(input.contains("-I PREROUTING 1 -m addrtype --dst-type LOCAL -j BERTH-DNAT"));
        assert!(input.contains(":BERTH-DNAT - [0:0]"));
        let rules = port_rules(
            "c1",
            "10.1.0.2".parse().unwrap(),
            &[PortForward {
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
                container_port: 80,
                proto: "tcp".into(),
            }],
        );
        assert_eq!(
            rules[0],
            "-d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment \"berth c1\" -j DNAT --to-destination 10.1.0.2:80"
        );
    }
}
