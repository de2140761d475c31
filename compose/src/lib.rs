//! berth-compose: Compose files as docker compose v2 reads them (the
//! compose-spec's rules, as compose-go implements them) and, above the
//! engine, the project they describe.
//!
//! `loader` reads files into a `Project` (compose-go's steps, each checked
//! against its own cases in ../shared/conformance/compose); `reconcile`
//! converges the engine's containers, networks and volumes on it.

pub mod canonical;
pub mod consistency;
pub mod dotenv;
pub mod emit;
pub mod environment;
pub mod extends;
pub mod include;
pub mod injected;
pub mod interpolate;
pub mod kubernetes;
pub mod loader;
pub mod merge;
pub mod normalize;
pub mod paths;
pub mod project;
pub mod reconcile;
pub mod schema;
pub mod service;
pub mod tags;
pub mod yaml;
