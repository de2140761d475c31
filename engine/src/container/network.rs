//! A container's networks: which ones a create request names (checked and
//! kept in its `create.json` by network name, with the network's ID), its
//! network namespace file and interfaces for each run, and the `/etc/hosts`
//! and `resolv.conf` that follow them.

use crate::error::{fail, Error, Result};
use crate::model::{ContainerCreate, EndpointSettings, Network};
use crate::network::{lease_alive, NEEDS_NETAVARK};
use crate::Engine;
use berth_network::backend::{Endpoint, PortForward};
use berth_network::lease::Lease;
use berth_network::{netns, Attachment};
use berth_runner::container::Record;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Marks a container whose network namespace is a file the engine makes
/// and the backend fills (its spec joins it).
const BACKEND_MARK: &str = "netns";
/// What the current run joined.
const JOINED: &str = "endpoints.json";
/// The host ports a run holds, with the ones the kernel chose for a host
/// port of 0 (docker's ephemeral ports).
const BOUND: &str = "ports.json";

/// How a container reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetMode {
    /// Bridge networks through netavark.
    Backend,
    /// Its own namespace, connected outward by slirp4netns.
    Slirp,
    None,
    Host,
    /// Another container's (`container:NAME`).
    Container,
}

/// One network the current run of a container is on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Joined {
    pub network: Network,
    pub interface: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    pub endpoint_id: String,
    pub aliases: Vec<String>,
    pub dns_servers: Vec<IpAddr>,
}

fn check_endpoint(net: &Network, s: &EndpointSettings) -> Result<Option<Ipv4Addr>> {
    if !net.bridged() {
        fail!(
            Invalid,
            "container cannot be connected to network {}: it has no interfaces to give (use --network {} alone)",
            net.name,
            net.name
        );
    }
    let user_defined = net.dns();
    if s.aliases.as_ref().is_some_and(|a| !a.is_empty()) && !user_defined {
        fail!(
            Invalid,
            "network-scoped alias is supported only for containers in user defined networks"
        );
    }
    let wanted = s
        .ipam_config
        .as_ref()
        .map(|c| c.ipv4_address.as_str())
        .filter(|a| !a.is_empty());
    let Some(text) = wanted else {
        return Ok(None);
    };
    if !user_defined {
        fail!(
            Invalid,
            "user specified IP address is supported on user defined networks only"
        );
    }
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {text}")))?;
    if let Some((subnet, _, gateway)) = berth_network::lease::ranges(net)? {
        if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
            fail!(
                Invalid,
                "Invalid address {ip}: It does not belong to any of this network's subnets"
            );
        }
        if Some(ip) == gateway {
            fail!(
                Conflict,
                "Address already in use: {ip} is network {}'s gateway",
                net.name
            );
        }
    }
    Ok(Some(ip))
}

/// The host ports this supervisor holds for its container's run.
static RESERVED: std::sync::Mutex<Vec<std::os::fd::OwnedFd>> = std::sync::Mutex::new(Vec::new());

fn reserve_ports(
    ports: &[berth_runner::container::PublishedPort],
) -> Result<Vec<berth_runner::container::PublishedPort>> {
    let mut held = Vec::new();
    let mut bound = Vec::new();
    for p in ports {
        let ip: IpAddr = p
            .host_ip
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = std::net::SocketAddr::new(ip, p.host_port);
        let got: std::io::Result<(std::os::fd::OwnedFd, u16)> = if p.proto == "udp" {
            std::net::UdpSocket::bind(addr)
                .and_then(|s| Ok((s.local_addr()?.port(), s)))
                .map(|(port, s)| (s.into(), port))
        } else {
            std::net::TcpListener::bind(addr)
                .and_then(|s| Ok((s.local_addr()?.port(), s)))
                .map(|(port, s)| (s.into(), port))
        };
        match got {
            Ok((fd, port)) => {
                held.push(fd);
                bound.push(berth_runner::container::PublishedPort {
                    host_port: port,
                    ..p.clone()
                });
            }
            Err(e) => fail!(
                Conflict,
                "cannot publish port {}/{}: Bind for {addr} failed: port is already allocated ({e})",
                p.host_port,
                p.proto
            ),
        }
    }
    if let Ok(mut r) = RESERVED.lock() {
        r.extend(held);
    }
    Ok(bound)
}

fn release_ports() {
    if let Ok(mut r) = RESERVED.lock() {
        r.clear();
    }
}

fn write_in_place(path: &std::path::Path, text: &str) -> Result<()> {
    // The same file: a running container's bind mount keeps seeing it.
    std::fs::write(path, text).map_err(Error::io(format!("cannot write {}", path.display())))
}

/// docker's MAC address for an IPv4 address: 02:42 and the address, so
/// that a peer's ARP cache stays right when the address comes back.
fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

fn random_hex() -> Result<String> {
    crate::volume::random_id()
}

impl Engine {
    /// Checks the networks `req` names and writes them back by name with
    /// their IDs; how the container will reach the network.
    pub(crate) fn plan_networks(&self, req: &mut ContainerCreate) -> Result<NetMode> {
        // docker's CLI names the default network "default" there too.
        if let Some(e) = req.networking_config.endpoints_config.remove("default") {
            req.networking_config
                .endpoints_config
                .entry("bridge".into())
                .or_insert(e);
        }
        let mode = req.host_config.network_mode.clone();
        let named: Vec<String> = req
            .networking_config
            .endpoints_config
            .keys()
            .cloned()
            .collect();
        let simple = match mode.as_str() {
            "none" => Some(NetMode::None),
            "host" => Some(NetMode::Host),
            "slirp4netns" | "private" => Some(NetMode::Slirp),
            m if m.starts_with("container:") => {
                let target = self.container(&m["container:".len()..])?;
                if !req.host_config.port_bindings.is_empty() {
                    fail!(
                        Invalid,
                        "conflicting options: port publishing and the container type network mode"
                    );
                }
                if !named.is_empty() {
                    fail!(
                        Invalid,
                        "conflicting options: networks and the container type network mode"
                    );
                }
                req.host_config.network_mode = format!("container:{}", target.id);
                return Ok(NetMode::Container);
            }
            _ => None,
        };
        if let Some(m) = simple {
            if named.iter().any(|n| *n != mode) {
                fail!(
                    Invalid,
                    "container cannot be connected to multiple networks with one of the networks in {mode} mode"
                );
            }
            req.networking_config.endpoints_config.clear();
            return Ok(m);
        }
        let first = match mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        if !berth_network::available() {
            if first == "bridge" && named.iter().all(|n| n == "bridge") {
                return Ok(NetMode::Slirp);
            }
            fail!(Invalid, "{NEEDS_NETAVARK}");
        }
        let store = self.network_store();
        let mut wanted = req.networking_config.endpoints_config.clone();
        let mut out = std::collections::BTreeMap::new();
        let mut keys = vec![first.clone()];
        keys.extend(named.into_iter().filter(|n| *n != first));
        for key in keys {
            let net = store.find(&key)?;
            let mut s = wanted.remove(&key).unwrap_or_default();
            if !net.bridged() {
                fail!(
                    Invalid,
                    "container cannot be connected to multiple networks with one of the networks in {} mode",
                    net.name
                );
            }
            let ip = check_endpoint(&net, &s)?;
            if let Some(ip) = ip {
                let leases = store.leases(&net.id)?;
                if let Some(l) = leases.by_ip.get(&ip).filter(|l| lease_alive(l)) {
                    fail!(
                        Conflict,
                        "Address already in use: {ip} is taken by container {}",
                        l.name
                    );
                }
            }
            s.network_id = net.id.clone();
            if out.is_empty() && s.mac_address.is_empty() {
                s.mac_address = req.config.mac_address.clone();
            }
            out.insert(net.name.clone(), s);
        }
        req.networking_config.endpoints_config = out;
        Ok(NetMode::Backend)
    }

    /// Marks container `id` as one whose namespace the engine makes.
    pub(crate) fn mark_backend(&self, id: &str) -> Result<()> {
        let p = self.containers().dir(id).join(BACKEND_MARK);
        std::fs::write(&p, b"").map_err(Error::io(format!("cannot write {}", p.display())))
    }

    pub(crate) fn uses_backend(&self, id: &str) -> bool {
        self.containers().dir(id).join(BACKEND_MARK).exists()
    }

    fn joined(&self, id: &str) -> Vec<Joined> {
        std::fs::read(self.containers().dir(id).join(JOINED))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    fn save_joined(&self, id: &str, joined: &[Joined]) -> Result<()> {
        let p = self.containers().dir(id).join(JOINED);
        let data = serde_json::to_vec_pretty(joined)
            .map_err(|e| Error::Failed(format!("cannot encode {}: {e}", p.display())))?;
        std::fs::write(&p, data).map_err(Error::io(format!("cannot write {}", p.display())))
    }

    pub(crate) fn save_create_request(&self, id: &str, req: &ContainerCreate) -> Result<()> {
        let p = self.containers().dir(id).join(super::create::REQUEST);
        let data = serde_json::to_vec_pretty(req)
            .map_err(|e| Error::Failed(format!("cannot encode the create request: {e}")))?;
        std::fs::write(&p, data).map_err(Error::io(format!("cannot write {}", p.display())))
    }

    /// The names DNS answers for `rec` on `net`.
    fn aliases(rec: &Record, net: &Network, s: &EndpointSettings) -> Vec<String> {
        if !net.dns() {
            return Vec::new();
        }
        let mut a = vec![rec.name.clone(), rec.id[..12].to_string()];
        if rec.hostname != a[1] && !rec.hostname.is_empty() {
            a.push(rec.hostname.clone());
        }
        a.extend(s.aliases.iter().flatten().cloned());
        a.push(format!("{}.{}", rec.name, net.name));
        a.dedup();
        a
    }

    /// Takes an address on each of `wanted` for `rec`, held by `holder`.
    fn lease_all(
        &self,
        rec: &Record,
        wanted: &[(Network, EndpointSettings, String)],
        holder: Option<(i32, u64)>,
    ) -> Result<Vec<Attachment>> {
        let store = self.network_store();
        let _lock = store.lock()?;
        let mut out = Vec::new();
        for (net, s, interface) in wanted {
            let ip = check_endpoint(net, s)?;
            let mut leases = store.leases(&net.id)?;
            let lease = Lease {
                container: rec.id.clone(),
                name: rec.name.clone(),
                endpoint_id: random_hex()?,
                mac: String::new(),
                interface: interface.clone(),
                holder,
            };
            let got = leases.allocate(net, ip, lease, &lease_alive);
            let ip = match got {
                Ok(ip) => ip,
                Err(e) => {
                    drop(_lock);
                    self.release_leases(&rec.id, out.iter().map(|a: &Attachment| &a.network));
                    return Err(e.into());
                }
            };
            store.save_leases(&leases)?;
            out.push(Attachment {
                network: net.clone(),
                ip,
                interface: interface.clone(),
                aliases: Self::aliases(rec, net, s),
                mac: Some(s.mac_address.clone())
                    .filter(|m| !m.is_empty())
                    .or_else(|| Some(mac_of(ip))),
            });
        }
        Ok(out)
    }

    fn release_leases<'a>(&self, id: &str, nets: impl Iterator<Item = &'a Network>) {
        let store = self.network_store();
        if !store.exists() {
            return;
        }
        let Ok(_lock) = store.lock() else { return };
        for net in nets {
            if let Ok(mut leases) = store.leases(&net.id) {
                if leases.release(id) {
                    let _ = store.save_leases(&leases);
                }
            }
        }
    }

    /// The host ports `rec`'s run holds (the chosen ones for a host port
    /// of 0); what it asked for when it is not running.
    pub(crate) fn published_ports(
        &self,
        rec: &Record,
    ) -> Vec<berth_runner::container::PublishedPort> {
        std::fs::read(self.containers().dir(&rec.id).join(BOUND))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .filter(|_| rec.running())
            .unwrap_or_else(|| rec.ports.clone())
    }

    fn forwards(ports: &[berth_runner::container::PublishedPort]) -> Vec<PortForward> {
        ports
            .iter()
            .map(|p| PortForward {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port,
                container_port: p.container_port,
                proto: p.proto.clone(),
            })
            .collect()
    }

    /// Sets up the attachments in `rec`'s namespace; what they became.
    fn attach(
        &self,
        rec: &Record,
        attachments: &[Attachment],
        ports: &[PortForward],
    ) -> Result<Vec<Joined>> {
        let backend = self.network_backend()?;
        let ep = Endpoint {
            container_id: &rec.id,
            container_name: &rec.name,
            attachments,
            ports,
        };
        let statuses = backend.setup(&netns::path_of(&rec.id), &ep)?;
        let store = self.network_store();
        let _lock = store.lock()?;
        let mut out = Vec::new();
        for (a, st) in attachments.iter().zip(statuses) {
            let mut leases = store.leases(&a.network.id)?;
            let mut endpoint_id = String::new();
            if let Some(l) = leases.by_ip.get_mut(&a.ip) {
                l.mac = st.mac.clone();
                endpoint_id = l.endpoint_id.clone();
            }
            store.save_leases(&leases)?;
            out.push(Joined {
                network: a.network.clone(),
                interface: a.interface.clone(),
                ip: st.address.addr(),
                prefix: st.address.prefix_len(),
                gateway: st.gateway,
                mac: st.mac,
                endpoint_id,
                aliases: a.aliases.clone(),
                dns_servers: st.dns_servers,
            });
        }
        Ok(out)
    }

    /// The networks of `req` in interface order: its `NetworkMode` first.
    fn wanted_networks(
        &self,
        rec: &Record,
        req: &ContainerCreate,
    ) -> Result<Vec<(Network, EndpointSettings)>> {
        let store = self.network_store();
        let first = match rec.network.as_str() {
            "" | "default" => "bridge",
            m => m,
        };
        let mut eps: Vec<(&String, &EndpointSettings)> =
            req.networking_config.endpoints_config.iter().collect();
        eps.sort_by_key(|(name, _)| *name != first);
        let mut out = Vec::new();
        for (name, s) in eps {
            let net = if s.network_id.is_empty() {
                store.find(name)
            } else {
                store.find(&s.network_id)
            }
            .map_err(|_| Error::NotFound(format!("network {name} not found")))?;
            out.push((net, s.clone()));
        }
        Ok(out)
    }

    /// Before a run: `rec`'s namespace file with an interface on each of
    /// its networks, and its etc files to match. The supervisor (this
    /// process) holds the addresses.
    pub(crate) fn join_networks(&self, rec: &Record) -> Result<()> {
        // What a killed run left goes first.
        self.leave_networks(&rec.id);
        let req = self.create_request(&rec.id);
        let wanted: Vec<(Network, EndpointSettings, String)> = self
            .wanted_networks(rec, &req)?
            .into_iter()
            .enumerate()
            .map(|(i, (n, s))| (n, s, format!("eth{i}")))
            .collect();
        // The host ports are held by this process while the container runs
        // (as podman's conmon holds them): a port in use is an error, and
        // nothing else takes it meanwhile; netavark's DNAT comes first.
        let bound = reserve_ports(&rec.ports)?;
        let bound_file = self.containers().dir(&rec.id).join(BOUND);
        if let Err(e) = serde_json::to_vec(&bound)
            .map_err(std::io::Error::other)
            .and_then(|d| std::fs::write(&bound_file, d))
        {
            release_ports();
            return Err(Error::io(format!("cannot write {}", bound_file.display()))(
                e,
            ));
        }
        let path = netns::path_of(&rec.id);
        if let Err(e) = netns::create(&path) {
            release_ports();
            return Err(e.into());
        }
        let me = std::process::id() as i32;
        let holder = berth_runner::container::process_start(me).map(|t| (me, t));
        let joined = self
            .lease_all(rec, &wanted, holder)
            .and_then(|attachments| {
                // Written before the setup: a run killed during it is taken
                // down by what this says.
                let planned: Vec<Joined> = attachments
                    .iter()
                    .map(|a| Joined {
                        network: a.network.clone(),
                        interface: a.interface.clone(),
                        ip: a.ip,
                        prefix: 0,
                        gateway: None,
                        mac: String::new(),
                        endpoint_id: String::new(),
                        aliases: a.aliases.clone(),
                        dns_servers: Vec::new(),
                    })
                    .collect();
                self.save_joined(&rec.id, &planned)?;
                let r = self.attach(rec, &attachments, &Self::forwards(&bound));
                if r.is_err() {
                    self.release_leases(&rec.id, attachments.iter().map(|a| &a.network));
                }
                r
            });
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                let _ = netns::remove(&path);
                release_ports();
                return Err(e);
            }
        };
        self.save_joined(&rec.id, &joined)?;
        self.write_network_files(rec, &req, &joined)
    }

    /// After a run, or for a run whose supervisor was killed: its
    /// interfaces, addresses and namespace file go. Never fails: what
    /// cannot be undone is logged.
    pub(crate) fn leave_networks(&self, id: &str) {
        let joined = self.joined(id);
        let path = netns::path_of(id);
        if !joined.is_empty() && netns::exists(&path) {
            let attachments: Vec<Attachment> = joined
                .iter()
                .map(|j| Attachment {
                    network: j.network.clone(),
                    ip: j.ip,
                    interface: j.interface.clone(),
                    aliases: j.aliases.clone(),
                    mac: None,
                })
                .collect();
            let bound: Option<Vec<berth_runner::container::PublishedPort>> =
                std::fs::read(self.containers().dir(id).join(BOUND))
                    .ok()
                    .and_then(|d| serde_json::from_slice(&d).ok());
            let ports = match bound {
                Some(b) => Self::forwards(&b),
                None => self
                    .containers()
                    .load(id)
                    .map(|r| Self::forwards(&r.ports))
                    .unwrap_or_default(),
            };
            let ep = Endpoint {
                container_id: id,
                container_name: "",
                attachments: &attachments,
                ports: &ports,
            };
            match self.network_backend() {
                Ok(b) => {
                    if let Err(e) = b.release(&path, &ep) {
                        tracing::warn!("container {id}: {e}");
                    }
                }
                Err(e) => tracing::warn!("container {id}: {e}"),
            }
        }
        self.release_leases(id, joined.iter().map(|j| &j.network));
        // Leases of a run that died before it wrote what it joined.
        if let Ok(nets) = self.network_store().existing() {
            self.release_leases(id, nets.iter().filter(|n| n.bridged()));
        }
        if let Err(e) = netns::remove(&path) {
            tracing::warn!("container {id}: {e}");
        }
        let _ = std::fs::remove_file(self.containers().dir(id).join(JOINED));
        let _ = std::fs::remove_file(self.containers().dir(id).join(BOUND));
        release_ports();
    }

    /// `/etc/hosts` and `/etc/resolv.conf` for the networks `rec` is on.
    fn write_network_files(
        &self,
        rec: &Record,
        req: &ContainerCreate,
        joined: &[Joined],
    ) -> Result<()> {
        let dir = self.containers().dir(&rec.id);
        let hc = &req.host_config;
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        let gateway = joined.iter().find_map(|j| j.gateway);
        for h in hc.extra_hosts.iter().flatten() {
            let (name, ip) = h
                .split_once(':')
                .or_else(|| h.split_once('='))
                .unwrap_or((h, ""));
            let ip = if ip == "host-gateway" {
                gateway.map(|g| g.to_string()).unwrap_or_default()
            } else {
                ip.to_string()
            };
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        if let Some(j) = joined.first() {
            hosts.push_str(&format!("{}\t{}\n", j.ip, rec.hostname));
        }
        write_in_place(&dir.join("hosts"), &hosts)?;

        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers: Vec<String> = Vec::new();
        for j in joined.iter().filter(|j| j.network.dns()) {
            servers.extend(j.dns_servers.iter().map(|s| s.to_string()));
        }
        match hc.dns.as_ref().filter(|d| !d.is_empty()) {
            Some(d) => servers.extend(d.iter().cloned()),
            None if servers.is_empty() => servers.extend(
                berth_network::pool::resolv_servers(&host)
                    .into_iter()
                    .filter(|a| !a.is_loopback())
                    .map(|a| a.to_string()),
            ),
            None => {}
        }
        let mut seen = std::collections::HashSet::new();
        servers.retain(|s| seen.insert(s.clone()));
        let line_of = |key: &str| {
            host.lines()
                .filter_map(|l| l.trim().strip_prefix(key))
                .map(|v| v.trim().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let search = match hc.dns_search.as_ref().filter(|d| !d.is_empty()) {
            Some(d) => d.join(" "),
            None => line_of("search"),
        };
        let options = match hc.dns_options.as_ref().filter(|d| !d.is_empty()) {
            Some(d) => d.join(" "),
            None => line_of("options"),
        };
        let mut text = String::new();
        if !search.is_empty() {
            text.push_str(&format!("search {search}\n"));
        }
        for s in &servers {
            text.push_str(&format!("nameserver {s}\n"));
        }
        if !options.is_empty() {
            text.push_str(&format!("options {options}\n"));
        }
        write_in_place(&dir.join("resolv.conf"), &text)
    }

    /// Before a run of a `container:NAME` container: its spec joins the
    /// other container's namespace, and its etc files are that one's.
    pub(crate) fn join_container_network(&self, rec: &Record) -> Result<()> {
        let Some(tid) = rec.network.strip_prefix("container:") else {
            return Ok(());
        };
        let target = self
            .containers()
            .load(tid)
            .map_err(|_| Error::NotFound(format!("No such container: {tid}")))?;
        if !target.running() || target.state.pid <= 0 {
            fail!(
                Conflict,
                "cannot join network of a non running container: {}",
                target.name
            );
        }
        let path = if self.uses_backend(&target.id) {
            netns::path_of(&target.id)
        } else {
            PathBuf::from(format!("/proc/{}/ns/net", target.state.pid))
        };
        let config = self.containers().dir(&rec.id).join("config.json");
        let mut spec = oci_spec::runtime::Spec::load(&config)
            .map_err(|e| Error::Failed(format!("cannot read {}: {e}", config.display())))?;
        super::create::join_network_file(&mut spec, &path);
        spec.save(&config)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", config.display())))?;
        let (from, to) = (
            self.containers().dir(&target.id),
            self.containers().dir(&rec.id),
        );
        for f in ["hosts", "resolv.conf"] {
            if let Ok(text) = std::fs::read_to_string(from.join(f)) {
                write_in_place(&to.join(f), &text)?;
            }
        }
        Ok(())
    }

    /// Connects `rec` to `net`: recorded in its create request, and at once
    /// for a running container.
    pub(crate) fn connect_container(
        &self,
        rec: &Record,
        net: &Network,
        mut s: EndpointSettings,
    ) -> Result<()> {
        if !self.uses_backend(&rec.id) {
            match rec.network.as_str() {
                m if m.starts_with("container:") => fail!(Invalid, "container sharing network namespace with another container or host cannot be connected to any other network"),
                "host" => fail!(Invalid, "container cannot be disconnected from host network or connected to host network"),
                "none" => fail!(Invalid, "container cannot be connected to multiple networks with one of the networks in private (none) mode"),
                _ => fail!(Invalid, "{NEEDS_NETAVARK}"),
            }
        }
        let ip = check_endpoint(net, &s)?;
        let mut req = self.create_request(&rec.id);
        if req
            .networking_config
            .endpoints_config
            .values()
            .any(|e| e.network_id == net.id)
        {
            fail!(
                Conflict,
                "endpoint with name {} already exists in network {}",
                rec.name,
                net.name
            );
        }
        if let Some(ip) = ip {
            let leases = self.network_store().leases(&net.id)?;
            if let Some(l) = leases
                .by_ip
                .get(&ip)
                .filter(|l| lease_alive(l) && l.container != rec.id)
            {
                fail!(
                    Conflict,
                    "Address already in use: {ip} is taken by container {}",
                    l.name
                );
            }
        }
        s.network_id = net.id.clone();
        req.networking_config
            .endpoints_config
            .insert(net.name.clone(), s.clone());
        let joined_now = if rec.running() {
            Some(self.joined(&rec.id))
        } else {
            None
        };
        if let Some(mut joined) = joined_now {
            let used: Vec<&str> = joined.iter().map(|j| j.interface.as_str()).collect();
            let interface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(&n.as_str()))
                .unwrap_or_else(|| "eth9".into());
            let holder = rec.state.supervisor;
            let attachments = self.lease_all(rec, &[(net.clone(), s, interface)], holder)?;
            let more = match self.attach(rec, &attachments, &[]) {
                Ok(j) => j,
                Err(e) => {
                    self.release_leases(&rec.id, std::iter::once(net));
                    return Err(e);
                }
            };
            joined.extend(more);
            self.save_joined(&rec.id, &joined)?;
            self.write_network_files(rec, &req, &joined)?;
        }
        self.save_create_request(&rec.id, &req)
    }

    /// Disconnects `rec` from `net`.
    pub(crate) fn disconnect_container(&self, rec: &Record, net: &Network) -> Result<()> {
        let mut req = self.create_request(&rec.id);
        let key = req
            .networking_config
            .endpoints_config
            .iter()
            .find(|(_, e)| e.network_id == net.id)
            .map(|(k, _)| k.clone());
        let Some(key) = key else {
            fail!(
                Conflict,
                "container {} is not connected to network {}",
                rec.name,
                net.name
            );
        };
        req.networking_config.endpoints_config.remove(&key);
        if rec.running() {
            let mut joined = self.joined(&rec.id);
            if let Some(pos) = joined.iter().position(|j| j.network.id == net.id) {
                let j = joined.remove(pos);
                let att = [Attachment {
                    network: j.network.clone(),
                    ip: j.ip,
                    interface: j.interface.clone(),
                    aliases: j.aliases.clone(),
                    mac: None,
                }];
                let ep = Endpoint {
                    container_id: &rec.id,
                    container_name: &rec.name,
                    attachments: &att,
                    ports: &[],
                };
                self.network_backend()?
                    .teardown(&netns::path_of(&rec.id), &ep)?;
                self.release_leases(&rec.id, std::iter::once(net));
                self.save_joined(&rec.id, &joined)?;
                self.write_network_files(rec, &req, &joined)?;
            }
        }
        self.save_create_request(&rec.id, &req)
    }

    /// docker's `NetworkSettings.Networks` of `rec`: its networks, with
    /// their addresses while it runs.
    pub(crate) fn endpoint_settings(
        &self,
        rec: &Record,
    ) -> std::collections::BTreeMap<String, EndpointSettings> {
        let mut out = std::collections::BTreeMap::new();
        if rec.network.starts_with("container:") {
            return out;
        }
        if !self.uses_backend(&rec.id) {
            let name = match rec.network.as_str() {
                "none" => "none",
                "host" => "host",
                _ => "bridge",
            };
            out.insert(name.to_string(), EndpointSettings::default());
            return out;
        }
        let req = self.create_request(&rec.id);
        let joined = if rec.running() {
            self.joined(&rec.id)
        } else {
            Vec::new()
        };
        for (name, s) in req.networking_config.endpoints_config {
            let mut e = s.clone();
            if let Some(j) = joined.iter().find(|j| j.network.id == s.network_id) {
                e.endpoint_id = j.endpoint_id.clone();
                e.ip_address = j.ip.to_string();
                e.ip_prefix_len = j.prefix;
                e.gateway = j.gateway.map(|g| g.to_string()).unwrap_or_default();
                e.mac_address = j.mac.clone();
                if j.network.dns() {
                    e.aliases = Some(
                        s.aliases
                            .clone()
                            .unwrap_or_default()
                            .into_iter()
                            .chain(std::iter::once(rec.id[..12].to_string()))
                            .collect(),
                    );
                }
            }
            out.insert(name, e);
        }
        out
    }

    /// Where the namespace file of a container on the backend is.
    pub(crate) fn netns_path(id: &str) -> PathBuf {
        netns::path_of(id)
    }
}
