//! `berth system service [--host URL]... [--time SECONDS]`: the Docker
//! Engine API over this store, until stopped or idle.

use berth_api::{Host, ServiceOptions};
use berth_engine::Engine;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct ServiceArgs {
    /// Where to listen: unix:///PATH or tcp://127.0.0.1:PORT (repeatable;
    /// default unix:///run/berth/berth.sock, or $XDG_RUNTIME_DIR/berth/berth.sock without root)
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// Exit after this many seconds without a request (0: run until stopped)
    #[arg(short, long, default_value_t = 5)]
    time: u64,
    /// Where to listen (podman's positional form)
    uri: Option<String>,
}

fn default_host() -> String {
    if nix_is_root() {
        return "unix:///run/berth/berth.sock".into();
    }
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
    format!("unix://{dir}/berth/berth.sock")
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn service(engine: &Engine, a: ServiceArgs) -> anyhow::Result<ExitCode> {
    let mut hosts: Vec<String> = a.host.clone();
    hosts.extend(a.uri.clone());
    if hosts.is_empty() {
        hosts.push(default_host());
    }
    let hosts = hosts
        .iter()
        .map(|h| h.parse::<Host>())
        .collect::<Result<Vec<_>, _>>()?;
    let opts = ServiceOptions {
        hosts,
        idle: (a.time > 0).then(|| Duration::from_secs(a.time)),
    };
    berth_api::serve(engine.clone(), opts)?;
    Ok(ExitCode::SUCCESS)
}
