//! berth-registry: the OCI distribution client. Pull and push between a
//! registry and berth's store, docker's auth (docker's `config.json`,
//! credential helpers, bearer tokens, basic), Docker Hub naming, mirrors,
//! retries and parallel transfers.
//!
//! Hand-written on reqwest rather than on `oci-client`: a push must stream
//! blobs from the store (oci-client holds a whole blob in memory), resume a
//! chunked upload where the registry says it stands, mount across
//! repositories with a two-repository token scope, and retry with backoff;
//! a pull must stream each layer into the blob store and its snapshot in one
//! pass and resume with `Range`. Those are the bulk of a client, so there was
//! little left to borrow.

pub mod artifact;
mod challenge;
pub mod client;
pub mod config;
pub mod credentials;
mod error;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod sources;
pub mod transport;

pub use client::Client;
pub use config::RegistryConfig;
pub use credentials::{Credentials, DockerConfig};
pub use error::{Error, Result};
pub use manifest::Platform;
pub use progress::{Progress, Silent};
pub use pull::{pull, pull_with};
pub use push::{push, Pushed};
pub use transport::RetryPolicy;
