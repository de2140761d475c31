//! docker's networks: create, list, inspect, remove, prune, connect and
//! disconnect. Records, subnets and addresses are the network crate's;
//! interfaces are netavark's. Which containers a network has is read from
//! its leases: a lease is live while the supervisor that took it is.

use crate::error::{fail, Result};
use crate::model::{
    EndpointSettings, Network, NetworkContainer, NetworkCreate, NetworkCreateResponse,
};
use crate::Engine;
use berth_network::lease::Lease;
use berth_network::{NetworkBackend, NetworkStore};
use std::collections::BTreeMap;

/// Whether the holder of `lease` is still alive.
pub(crate) fn lease_alive(lease: &Lease) -> bool {
    lease
        .holder
        .is_some_and(|(pid, t)| berth_runner::container::process_start(pid) == Some(t))
}

/// The notice for what needs the network backend where it cannot run.
pub(crate) const NEEDS_NETAVARK: &str =
    "user-defined networks need root, iptables and aardvark-dns (Debian's iptables and aardvark-dns packages); without them containers get slirp4netns";

impl Engine {
    pub(crate) fn network_store(&self) -> NetworkStore {
        NetworkStore::new(self.store().root())
    }

    /// The network backend for this root, or why there is none.
    pub(crate) fn network_backend(&self) -> Result<Box<dyn NetworkBackend>> {
        if !nix::unistd::geteuid().is_root() {
            fail!(Invalid, "{NEEDS_NETAVARK}");
        }
        Ok(berth_network::backend(&self.network_store().backend_dir())?)
    }

    /// Removes network `net`'s record, then what the backend made for it.
    fn remove_network_record(&self, net: &Network) -> Result<()> {
        self.network_store().remove(net)?;
        match self.network_backend() {
            Ok(b) => {
                if let Err(e) = b.remove_network(net) {
                    tracing::warn!("network {}: {e}", net.name);
                }
            }
            Err(e) => tracing::warn!("network {}: {e}", net.name),
        }
        Ok(())
    }

    fn emit_network(&self, action: &str, net: &Network, extra: &[(&str, &str)]) {
        let mut attrs = BTreeMap::from([
            ("name".to_string(), net.name.clone()),
            ("type".to_string(), net.driver.clone()),
        ]);
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.to_string());
        }
        self.emit("network", action, &net.id, attrs);
    }

    /// `docker network create`.
    pub fn network_create(&self, req: NetworkCreate) -> Result<NetworkCreateResponse> {
        let backend = self.network_backend()?;
        let rec = self.network_store().create(&req)?;
        // The bridge is there once `network create` returns, as docker's is.
        if let Err(e) = backend.create_network(&rec) {
            let _ = self.network_store().remove(&rec);
            let _ = backend.remove_network(&rec);
            return Err(e.into());
        }
        self.emit_network("create", &rec, &[]);
        Ok(NetworkCreateResponse {
            id: rec.id,
            warning: String::new(),
        })
    }

    /// A network with the containers running on it.
    fn with_containers(&self, mut net: Network) -> Result<Network> {
        net.containers.clear();
        if !net.bridged() {
            return Ok(net);
        }
        let leases = self.network_store().leases(&net.id)?;
        let prefix = berth_network::lease::ranges(&net)?
            .map(|(s, _, _)| s.prefix_len())
            .unwrap_or(32);
        for (ip, l) in &leases.by_ip {
            if lease_alive(l) {
                net.containers.insert(
                    l.container.clone(),
                    NetworkContainer {
                        name: l.name.clone(),
                        endpoint_id: l.endpoint_id.clone(),
                        mac_address: l.mac.clone(),
                        ipv4_address: format!("{ip}/{prefix}"),
                        ipv6_address: String::new(),
                    },
                );
            }
        }
        Ok(net)
    }

    /// `docker network inspect`: by full ID, then name, then ID prefix.
    pub fn network_inspect(&self, key: &str) -> Result<Network> {
        let net = self.network_store().find(key)?;
        self.with_containers(net)
    }

    /// `docker network ls` with docker's filters (`name=` and `id=` match
    /// a part and a prefix, `label=KEY[=VALUE]`, `driver=`, `type=custom|builtin`).
    pub fn network_list(&self, filters: &[(String, String)]) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for net in self.network_store().list()? {
            let mut keep = true;
            let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (k, v) in filters {
                by_key.entry(k.as_str()).or_default().push(v.as_str());
            }
            for (k, values) in &by_key {
                // Several values of one key: any may match.
                let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
                keep &= match *k {
                    "name" => any(&|v| net.name.contains(v)),
                    "id" => any(&|v| net.id.starts_with(v)),
                    "driver" => any(&|v| net.driver == v),
                    "label" => values.iter().all(|v| match v.split_once('=') {
                        Some((lk, lv)) => net.labels.get(lk).is_some_and(|x| x == lv),
                        None => net.labels.contains_key(*v),
                    }),
                    "type" => any(&|v| match v {
                        "builtin" => net.predefined(),
                        "custom" => !net.predefined(),
                        _ => false,
                    }),
                    "scope" => any(&|v| v == "local"),
                    other => fail!(Invalid, "invalid filter '{other}'"),
                };
            }
            if keep {
                out.push(self.with_containers(net)?);
            }
        }
        Ok(out)
    }

    /// The live endpoints of network `net`, after the dead ones were
    /// taken down.
    fn live_endpoints(&self, net: &Network) -> Result<Vec<String>> {
        let store = self.network_store();
        let dead: Vec<String> = {
            let leases = store.leases(&net.id)?;
            leases
                .by_ip
                .values()
                .filter(|l| !lease_alive(l))
                .map(|l| l.container.clone())
                .collect()
        };
        for c in dead {
            self.leave_networks(&c);
        }
        let _lock = store.lock()?;
        let mut leases = store.leases(&net.id)?;
        leases.forget_dead(&lease_alive);
        store.save_leases(&leases)?;
        Ok(leases.by_ip.values().map(|l| l.name.clone()).collect())
    }

    /// `docker network rm NAME`.
    pub fn network_remove(&self, key: &str) -> Result<()> {
        let net = self.network_store().find(key)?;
        if net.predefined() {
            fail!(
                Invalid,
                "{} is a pre-defined network and cannot be removed",
                net.name
            );
        }
        if !self.live_endpoints(&net)?.is_empty() {
            fail!(
                Conflict,
                "error while removing network: network {} id {} has active endpoints",
                net.name,
                net.id
            );
        }
        self.remove_network_record(&net)?;
        self.emit_network("destroy", &net, &[]);
        Ok(())
    }

    /// `docker network prune`: every user-defined network without a
    /// running container; their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for net in self.network_store().list()? {
            if net.predefined() || !self.live_endpoints(&net)?.is_empty() {
                continue;
            }
            self.remove_network_record(&net)?;
            self.emit_network("destroy", &net, &[]);
            gone.push(net.name);
        }
        Ok(gone)
    }

    /// `docker network connect [--alias] [--ip] NETWORK CONTAINER`: a
    /// running container gets its interface at once.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        settings: EndpointSettings,
    ) -> Result<()> {
        let net = self.network_store().find(network)?;
        let rec = self.container(container)?;
        self.connect_container(&rec, &net, settings)?;
        self.emit_network("connect", &net, &[("container", &rec.id)]);
        Ok(())
    }

    /// `docker network disconnect [-f] NETWORK CONTAINER`.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let net = self.network_store().find(network)?;
        let rec = match self.container(container) {
            Ok(r) => r,
            Err(e) if force => {
                // A container that is gone: its lease goes with -f.
                let store = self.network_store();
                let _lock = store.lock()?;
                let mut leases = store.leases(&net.id)?;
                let id = leases
                    .by_ip
                    .values()
                    .find(|l| l.name == container || l.container.starts_with(container))
                    .map(|l| l.container.clone());
                match id {
                    Some(id) => {
                        leases.release(&id);
                        store.save_leases(&leases)?;
                        return Ok(());
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.disconnect_container(&rec, &net)?;
        self.emit_network("disconnect", &net, &[("container", &rec.id)]);
        Ok(())
    }
}

/// RUN steps of a build on one of the engine's networks (`berth build
/// --network NAME`): each step gets a namespace file, an address held by
/// this process and an interface, taken away when the step is done.
#[derive(Debug)]
pub(crate) struct StepNetworkOn {
    engine: Engine,
    network: Network,
    joined: std::sync::Mutex<BTreeMap<String, berth_network::Attachment>>,
}

impl StepNetworkOn {
    pub(crate) fn new(engine: &Engine, key: &str) -> Result<StepNetworkOn> {
        let network = engine.network_store().find(key)?;
        if !network.bridged() {
            fail!(
                Invalid,
                "network {} has no interfaces to give: use --network {} alone",
                network.name,
                network.name
            );
        }
        engine.network_backend()?;
        Ok(StepNetworkOn {
            engine: engine.clone(),
            network,
            joined: Default::default(),
        })
    }

    fn endpoint<'a>(
        id: &'a str,
        attachments: &'a [berth_network::Attachment],
    ) -> berth_network::backend::Endpoint<'a> {
        berth_network::backend::Endpoint {
            container_id: id,
            container_name: id,
            attachments,
            ports: &[],
        }
    }

    fn try_join(&self, id: &str) -> Result<berth_builder::JoinedStep> {
        let store = self.engine.network_store();
        let me = std::process::id() as i32;
        let holder = berth_runner::container::process_start(me).map(|t| (me, t));
        let ip = {
            let _lock = store.lock()?;
            let mut leases = store.leases(&self.network.id)?;
            let lease = Lease {
                container: id.to_string(),
                name: id.to_string(),
                holder,
                interface: "eth0".into(),
                ..Default::default()
            };
            let ip = leases.allocate(&self.network, None, lease, &lease_alive)?;
            store.save_leases(&leases)?;
            ip
        };
        let attachment = berth_network::Attachment {
            network: self.network.clone(),
            ip,
            interface: "eth0".into(),
            aliases: Vec::new(),
            mac: None,
        };
        let path = berth_network::netns::path_of(id);
        let set_up = berth_network::netns::create(&path)
            .map_err(crate::Error::from)
            .and_then(|()| {
                let backend = self.engine.network_backend()?;
                Ok(backend.setup(
                    &path,
                    &Self::endpoint(id, std::slice::from_ref(&attachment)),
                )?)
            });
        if let Ok(mut j) = self.joined.lock() {
            j.insert(id.to_string(), attachment);
        }
        let statuses = match set_up {
            Ok(s) => s,
            Err(e) => {
                use berth_builder::StepNetwork;
                self.leave(id);
                return Err(e);
            }
        };
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers: Vec<String> = statuses
            .iter()
            .filter(|_| self.network.dns())
            .flat_map(|s| s.dns_servers.iter().map(|a| a.to_string()))
            .collect();
        if servers.is_empty() {
            servers = berth_network::pool::resolv_servers(&host)
                .into_iter()
                .filter(|a| !a.is_loopback())
                .map(|a| a.to_string())
                .collect();
        }
        let mut text: String = host
            .lines()
            .filter(|l| l.starts_with("search") || l.starts_with("options"))
            .map(|l| format!("{l}\n"))
            .collect();
        for s in servers {
            text.push_str(&format!("nameserver {s}\n"));
        }
        Ok(berth_builder::JoinedStep {
            netns: path,
            resolv_conf: text,
        })
    }
}

impl berth_builder::StepNetwork for StepNetworkOn {
    fn name(&self) -> &str {
        &self.network.name
    }

    fn join(&self, id: &str) -> std::result::Result<berth_builder::JoinedStep, String> {
        self.try_join(id).map_err(|e| e.to_string())
    }

    fn leave(&self, id: &str) {
        let attachment = self.joined.lock().ok().and_then(|mut j| j.remove(id));
        let path = berth_network::netns::path_of(id);
        if let Some(a) = attachment {
            if berth_network::netns::exists(&path) {
                if let Ok(b) = self.engine.network_backend() {
                    if let Err(e) = b.release(&path, &Self::endpoint(id, std::slice::from_ref(&a)))
                    {
                        tracing::warn!("build step {id}: {e}");
                    }
                }
            }
        }
        let store = self.engine.network_store();
        if let Ok(_lock) = store.lock() {
            if let Ok(mut leases) = store.leases(&self.network.id) {
                if leases.release(id) {
                    let _ = store.save_leases(&leases);
                }
            }
        }
        if let Err(e) = berth_network::netns::remove(&path) {
            tracing::warn!("build step {id}: {e}");
        }
    }
}
