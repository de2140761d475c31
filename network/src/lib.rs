//! Container networks as docker has them: the network records (`docker
//! network inspect`'s shape), subnets from docker's default pools, one
//! address per container and network, and the persistent network namespace
//! file of each container. Interfaces, bridges, firewall rules and the DNS
//! server are a [`NetworkBackend`]'s job: berth's own ([`native`]: netlink,
//! iptables-restore, aardvark-dns), or netavark as podman drives it.

pub mod backend;
pub mod error;
pub mod lease;
pub mod native;
pub mod netns;
pub mod pool;
pub mod record;
pub mod store;

pub use backend::{available, backend, Attachment, Netavark, NetworkBackend, Status};
pub use error::{Error, Result};
pub use record::{IpamConfig, NetworkRecord};
pub use store::{NetworkCreate, NetworkStore};
