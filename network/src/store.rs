//! The networks of one berth root: `<root>/networks/<id>.json` records and
//! their leases, changed under one lock. Subnets are claimed machine-wide
//! too (`/run/berth/subnets.json`): two roots on one machine share its
//! routes and firewall.

use crate::error::{Error, Result};
use crate::lease::Leases;
use crate::pool;
use crate::record::{IpamConfig, NetworkRecord, BRIDGE_NAME};
use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where subnets are claimed for every berth root of the machine.
pub const CLAIMS: &str = "/run/berth/subnets.json";

/// Who holds a subnet machine-wide: a network record's path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Claim {
    owner: String,
}

/// `POST /networks/create`'s body, in docker's shape.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<crate::record::Ipam>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// docker's clients send it; names are always checked.
    pub check_duplicate: bool,
}

pub struct NetworkStore {
    dir: PathBuf,
    claims: PathBuf,
}

/// The store's lock, held while it lives.
pub struct Locked(#[allow(dead_code)] File);

fn random_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("cannot read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// docker's rule for network names.
fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub(crate) fn lock_file(path: &Path) -> Result<Locked> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io_at("create", parent))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io_at("open", path))?;
    f.lock().map_err(Error::io_at("lock", path))?;
    Ok(Locked(f))
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(Error::io_at("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io_at("write", path))
}

impl NetworkStore {
    /// The networks under `root` (a berth root).
    pub fn new(root: &Path) -> NetworkStore {
        NetworkStore {
            dir: root.join("networks"),
            claims: PathBuf::from(CLAIMS),
        }
    }

    /// The same with the machine-wide claims kept at `claims` instead.
    pub fn with_claims(root: &Path, claims: &Path) -> NetworkStore {
        NetworkStore {
            dir: root.join("networks"),
            claims: claims.to_path_buf(),
        }
    }

    /// Where netavark keeps its and aardvark-dns's state for this root.
    pub fn backend_dir(&self) -> PathBuf {
        self.dir.join("netavark")
    }

    /// Takes the store's lock: every change of records and leases holds it.
    pub fn lock(&self) -> Result<Locked> {
        lock_file(&self.dir.join("lock"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn leases_path(&self, id: &str) -> PathBuf {
        self.dir.join("leases").join(format!("{id}.json"))
    }

    /// The leases of network `id` (hold the lock to change them).
    pub fn leases(&self, id: &str) -> Result<Leases> {
        let p = self.leases_path(id);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io_at("create", parent))?;
        }
        Leases::load(&p)
    }

    pub fn save_leases(&self, leases: &Leases) -> Result<()> {
        leases.save()
    }

    /// Every network, the predefined ones first made when missing.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        self.ensure_predefined()?;
        self.records()
    }

    /// Whether this root has any network state at all.
    pub fn exists(&self) -> bool {
        self.dir.exists()
    }

    /// The networks there are, making none (for cleanups, which must not
    /// bring a removed root back).
    pub fn existing(&self) -> Result<Vec<NetworkRecord>> {
        self.records()
    }

    fn records(&self) -> Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io_at("read", &self.dir)(e)),
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let data = std::fs::read(&p).map_err(Error::io_at("read", &p))?;
                let rec: NetworkRecord = serde_json::from_slice(&data)
                    .map_err(|e| Error::Invalid(format!("{} is damaged: {e}", p.display())))?;
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    fn save(&self, rec: &NetworkRecord) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io_at("create", &self.dir))?;
        let data = serde_json::to_vec_pretty(rec)
            .map_err(|e| Error::Invalid(format!("cannot encode network {}: {e}", rec.name)))?;
        write_atomic(&self.record_path(&rec.id), &data)
    }

    /// `bridge`, `host` and `none`, as every docker engine has them.
    fn ensure_predefined(&self) -> Result<()> {
        let have = self.records()?;
        let missing: Vec<&str> = ["bridge", "host", "none"]
            .into_iter()
            .filter(|n| !have.iter().any(|r| r.name == *n))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let _claims = self.claims_lock()?;
        let have = self.records()?;
        for name in missing {
            if have.iter().any(|r| r.name == name) {
                continue;
            }
            let mut rec = NetworkRecord {
                name: name.into(),
                id: random_id()?,
                created: now(),
                scope: "local".into(),
                driver: match name {
                    "bridge" => "bridge",
                    "host" => "host",
                    _ => "null",
                }
                .into(),
                ..Default::default()
            };
            rec.ipam.driver = "default".into();
            if name == "bridge" {
                let subnet = self.claim_free(&have, &rec.id)?;
                rec.ipam.config.push(IpamConfig {
                    subnet: subnet.to_string(),
                    gateway: first_host(&subnet).to_string(),
                    ip_range: String::new(),
                });
                // docker0's name is berth0's on the machine's usual pool.
                let iface = if subnet.to_string() == "172.17.0.0/16" {
                    "berth0".to_string()
                } else {
                    format!("berth{}", &rec.id[..8])
                };
                rec.options = [
                    ("com.docker.network.bridge.default_bridge", "true"),
                    ("com.docker.network.bridge.enable_icc", "true"),
                    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                    ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                    (BRIDGE_NAME, iface.as_str()),
                    ("com.docker.network.driver.mtu", "1500"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            }
            self.save(&rec)?;
        }
        Ok(())
    }

    /// A network by full ID, then exact name, then ID prefix (docker's order).
    pub fn find(&self, key: &str) -> Result<NetworkRecord> {
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.id == key) {
            return Ok(r.clone());
        }
        if let Some(r) = all.iter().find(|r| r.name == key) {
            return Ok(r.clone());
        }
        let by_prefix: Vec<&NetworkRecord> = if key.is_empty() {
            Vec::new()
        } else {
            all.iter().filter(|r| r.id.starts_with(key)).collect()
        };
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("network {key} not found"))),
            many => Err(Error::Invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                many.len()
            ))),
        }
    }

    /// `docker network create`.
    pub fn create(&self, req: &NetworkCreate) -> Result<NetworkRecord> {
        let name = req.name.as_str();
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "invalid name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let driver = match req.driver.as_str() {
            "" | "bridge" => "bridge",
            other => {
                return Err(Error::NotFound(format!(
                    "plugin \"{other}\" not found: berth has the bridge driver"
                )))
            }
        };
        if req.enable_ipv6 {
            return Err(Error::Invalid(
                "IPv6 networks are not supported by berth yet".into(),
            ));
        }
        self.ensure_predefined()?;
        let _lock = self.lock()?;
        let _claims = self.claims_lock()?;
        let have = self.records()?;
        if matches!(name, "bridge" | "host" | "none") || have.iter().any(|r| r.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let id = random_id()?;
        let configs = req
            .ipam
            .as_ref()
            .map(|i| i.config.clone())
            .unwrap_or_default();
        if configs.len() > 1 {
            return Err(Error::Invalid("berth networks have one IPv4 subnet".into()));
        }
        let config = match configs.into_iter().next() {
            Some(c) if !c.subnet.is_empty() => self.checked_config(&have, &id, c)?,
            Some(c) if !c.gateway.is_empty() || !c.ip_range.is_empty() => {
                return Err(Error::Invalid(
                    "a gateway or an ip range needs a subnet (--subnet)".into(),
                ))
            }
            _ => {
                let subnet = self.claim_free(&have, &id)?;
                IpamConfig {
                    subnet: subnet.to_string(),
                    gateway: first_host(&subnet).to_string(),
                    ip_range: String::new(),
                }
            }
        };
        if let Some(bridge) = req.options.get(BRIDGE_NAME) {
            let clash = have
                .iter()
                .find(|r| r.bridged() && r.interface() == *bridge);
            if let Some(other) = clash {
                return Err(Error::Conflict(format!(
                    "bridge name {bridge} is used by network {}",
                    other.name
                )));
            }
            if bridge.is_empty() || bridge.len() > 15 || bridge.contains('/') {
                return Err(Error::Invalid(format!("invalid bridge name {bridge:?}")));
            }
        }
        let rec = NetworkRecord {
            name: name.into(),
            id: id.clone(),
            created: now(),
            scope: "local".into(),
            driver: driver.into(),
            enable_ipv6: false,
            ipam: crate::record::Ipam {
                driver: "default".into(),
                options: req.ipam.as_ref().and_then(|i| i.options.clone()),
                config: vec![config],
            },
            internal: req.internal,
            attachable: req.attachable,
            options: req.options.clone(),
            labels: req.labels.clone(),
            ..Default::default()
        };
        // An unsaved record's claim is void: claims live with their records.
        self.save(&rec)?;
        Ok(rec)
    }

    /// A subnet the caller gave, checked against every other network's.
    fn checked_config(
        &self,
        have: &[NetworkRecord],
        id: &str,
        c: IpamConfig,
    ) -> Result<IpamConfig> {
        let subnet: Ipv4Net = c
            .subnet
            .parse()
            .map_err(|_| Error::Invalid(format!("invalid CIDR address: {}", c.subnet)))?;
        let subnet = subnet.trunc();
        let gateway: Ipv4Addr = if c.gateway.is_empty() {
            first_host(&subnet)
        } else {
            c.gateway
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid gateway address: {}", c.gateway)))?
        };
        if !subnet.contains(&gateway)
            || gateway == subnet.network()
            || gateway == subnet.broadcast()
        {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not in subnet {subnet}"
            )));
        }
        if !c.ip_range.is_empty() {
            let range: Ipv4Net = c
                .ip_range
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid CIDR address: {}", c.ip_range)))?;
            if !subnet.contains(&range) {
                return Err(Error::Invalid(format!(
                    "ip range {range} is not in subnet {subnet}"
                )));
            }
        }
        let net = IpNet::V4(subnet);
        for other in have {
            for oc in &other.ipam.config {
                if let Ok(o) = oc.subnet.parse::<IpNet>() {
                    if pool::overlaps(&net, &o) {
                        return Err(Error::Conflict(format!(
                            "Pool overlaps with other one on this address space: {subnet} overlaps {o} of network {}",
                            other.name
                        )));
                    }
                }
            }
        }
        self.claim(id, subnet)?;
        Ok(IpamConfig {
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            ip_range: c.ip_range,
        })
    }

    /// The first default subnet no network, route or resolver uses, claimed.
    fn claim_free(&self, have: &[NetworkRecord], id: &str) -> Result<Ipv4Net> {
        let mut taken: Vec<IpNet> = have
            .iter()
            .flat_map(|r| r.ipam.config.iter())
            .filter_map(|c| c.subnet.parse().ok())
            .collect();
        taken.extend(pool::host_routes());
        taken.extend(pool::host_resolvers());
        let claims = self.load_claims()?;
        taken.extend(claims.keys().filter_map(|s| s.parse::<IpNet>().ok()));
        let subnet = pool::choose(&taken).ok_or_else(|| {
            Error::Conflict(
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
            )
        })?;
        self.claim_locked(claims, id, subnet)?;
        Ok(subnet)
    }

    /// Claims `subnet` machine-wide (the caller holds the claims lock).
    fn claim(&self, id: &str, subnet: Ipv4Net) -> Result<()> {
        let claims = self.load_claims()?;
        let net = IpNet::V4(subnet);
        for (s, c) in &claims {
            if let Ok(o) = s.parse::<IpNet>() {
                if pool::overlaps(&net, &o) {
                    return Err(Error::Conflict(format!(
                        "Pool overlaps with other one on this address space: {subnet} overlaps {o} of the network at {}",
                        c.owner
                    )));
                }
            }
        }
        self.claim_locked(claims, id, subnet)
    }

    fn claim_locked(
        &self,
        mut claims: BTreeMap<String, Claim>,
        id: &str,
        subnet: Ipv4Net,
    ) -> Result<()> {
        claims.insert(
            subnet.to_string(),
            Claim {
                owner: self.record_path(id).display().to_string(),
            },
        );
        self.save_claims(&claims)
    }

    /// The claims whose network still exists.
    fn load_claims(&self) -> Result<BTreeMap<String, Claim>> {
        let mut claims: BTreeMap<String, Claim> = match std::fs::read(&self.claims) {
            Ok(d) => serde_json::from_slice(&d).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io_at("read", &self.claims)(e)),
        };
        // A claim lives while its record does (claims and records are
        // written under the claims lock, so none is seen half-made).
        claims.retain(|_, c| Path::new(&c.owner).exists());
        Ok(claims)
    }

    fn save_claims(&self, claims: &BTreeMap<String, Claim>) -> Result<()> {
        if let Some(parent) = self.claims.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io_at("create", parent))?;
        }
        let data = serde_json::to_vec_pretty(claims)
            .map_err(|e| Error::Invalid(format!("cannot encode claims: {e}")))?;
        write_atomic(&self.claims, &data)
    }

    fn claims_lock(&self) -> Result<Locked> {
        lock_file(&self.claims.with_extension("lock"))
    }

    fn unclaim(&self, id: &str) {
        if let Ok(_lock) = self.claims_lock() {
            if let Ok(mut claims) = self.load_claims() {
                let owner = self.record_path(id).display().to_string();
                claims.retain(|_, c| c.owner != owner);
                let _ = self.save_claims(&claims);
            }
        }
    }

    /// Removes network `id`'s record, leases and claim (the caller checked
    /// it has no endpoints).
    pub fn remove(&self, rec: &NetworkRecord) -> Result<()> {
        if rec.predefined() {
            return Err(Error::Invalid(format!(
                "{} is a pre-defined network and cannot be removed",
                rec.name
            )));
        }
        let p = self.record_path(&rec.id);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_at("remove", &p)(e)),
        }
        let _ = std::fs::remove_file(self.leases_path(&rec.id));
        self.unclaim(&rec.id);
        Ok(())
    }
}

/// A subnet's first address, its gateway by docker's default.
pub fn first_host(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> NetworkStore {
        NetworkStore::with_claims(&dir.join("root"), &dir.join("claims.json"))
    }

    fn create(s: &NetworkStore, name: &str, subnet: &str, gateway: &str) -> Result<NetworkRecord> {
        let mut req = NetworkCreate {
            name: name.into(),
            ..Default::default()
        };
        if !subnet.is_empty() {
            req.ipam = Some(crate::record::Ipam {
                config: vec![IpamConfig {
                    subnet: subnet.into(),
                    gateway: gateway.into(),
                    ip_range: String::new(),
                }],
                ..Default::default()
            });
        }
        s.create(&req)
    }

    #[test]
    fn predefined_networks_and_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let names: Vec<String> = s.list().unwrap().into_iter().map(|r| r.name).collect();
        for n in ["bridge", "host", "none"] {
            assert!(names.contains(&n.to_string()), "{names:?}");
        }
        let a = create(&s, "alpha", "", "").unwrap();
        assert_eq!(
            a.ipam.config[0].gateway,
            first_host(&a.ipam.config[0].subnet.parse().unwrap()).to_string()
        );
        assert_eq!(s.find("alpha").unwrap().id, a.id);
        assert_eq!(s.find(&a.id).unwrap().name, "alpha");
        assert_eq!(s.find(&a.id[..5]).unwrap().name, "alpha");
        // A network named like another's ID prefix: the name wins.
        let b = create(&s, &a.id[..6], "", "").unwrap();
        assert_eq!(s.find(&a.id[..6]).unwrap().id, b.id);
        assert!(matches!(s.find("nope"), Err(Error::NotFound(_))));
        let dup = create(&s, "alpha", "", "").unwrap_err();
        assert_eq!(dup.to_string(), "network with name alpha already exists");
        assert!(create(&s, "bridge", "", "").is_err());
        assert!(s.remove(&s.find("bridge").unwrap()).is_err());
    }

    #[test]
    fn subnets_are_checked_and_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let a = create(&s, "a", "10.77.0.0/16", "").unwrap();
        assert_eq!(a.ipam.config[0].gateway, "10.77.0.1");
        let e = create(&s, "second", "10.77.3.0/24", "").unwrap_err();
        assert!(e.to_string().contains("network a"), "{e}");
        let e = create(&s, "second", "10.78.0.0/33", "").unwrap_err();
        assert_eq!(e.to_string(), "invalid CIDR address: 10.78.0.0/33");
        let e = create(&s, "second", "10.78.0.0/24", "10.79.0.1").unwrap_err();
        assert!(e.to_string().contains("not in subnet"), "{e}");
        assert!(matches!(s.find("second"), Err(Error::NotFound(_))));
        // Automatic subnets skip the taken ones, in this root and others.
        let other =
            NetworkStore::with_claims(&dir.path().join("other"), &dir.path().join("claims.json"));
        let x = create(&s, "x", "", "").unwrap();
        let y = create(&other, "y", "", "").unwrap();
        let (sx, sy) = (&x.ipam.config[0].subnet, &y.ipam.config[0].subnet);
        assert_ne!(sx, sy);
        let e = create(&other, "z", sx, "").unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        // Removing a network frees its subnet.
        s.remove(&x).unwrap();
        let z = create(&other, "z", sx, "").unwrap();
        assert_eq!(&z.ipam.config[0].subnet, sx);
    }
}
