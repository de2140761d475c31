//! berth-api: the Docker Engine API (v1.41 semantics) over berth's engine,
//! for the clients nobody here wrote: the docker CLI, docker-py,
//! docker-compose, testcontainers. `berth system service` runs it.
//!
//! One process serves every client (hyper on tokio); the engine's blocking
//! work runs on tokio's blocking threads. Containers belong to their
//! supervisors, so they outlive the service.

mod handlers;
mod hijack;
mod progress;
mod query;
mod reply;
mod route;
mod server;
mod tls;

pub use server::{serve, Host, ServeError, ServiceOptions};
pub use tls::{TlsError, TlsFiles};

/// The API version berth speaks, and the oldest it takes.
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.24";
