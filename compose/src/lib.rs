//! berth-compose: Compose files as docker compose v2 reads them (the
//! compose-spec's rules, as compose-go implements them) and, above the
//! engine, the project they describe.
//!
//! So far: interpolation of `${VAR}` expressions (`interpolate`) and `.env`
//! files (`dotenv`), each checked against compose-go's own cases
//! (../shared/conformance/compose).

pub mod canonical;
pub mod consistency;
pub mod dotenv;
pub mod emit;
pub mod environment;
pub mod extends;
pub mod include;
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
