//! Container networks as docker has them: the network records (`docker
//! network inspect`'s shape), subnets from docker's default pools, one
//! address per container and network, and the persistent network namespace
//! file of each container. Interfaces, bridges, firewall rules and the DNS
//! server are a [`NetworkBackend`]'s job: netavark and aardvark-dns, as
//! podman drives them.

pub mod backend;
pub mod error;
pub mod lease;
pub mod netns;
pub mod pool;
pub mod record;
pub mod store;

pub use backend::{Attachment, Netavark, NetworkBackend, Status};
pub use error::{Error, Result};
pub use record::{IpamConfig, NetworkRecord};
pub use store::{NetworkCreate, NetworkStore};
