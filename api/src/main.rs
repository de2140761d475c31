//! `berth-api`: the Engine API service, which `berth system service` hands
//! over to (the `berth` command links the engine alone). A thin binary:
//! flags → an engine and listeners → `berth_api::serve`.

use anyhow::Context;
use berth_api::{Host, ServiceOptions};
use berth_engine::{Engine, EngineConfig};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Serve the Docker Engine API on a socket (`DOCKER_HOST=unix://...`)
#[derive(Parser)]
#[command(name = "berth system service", version)]
struct Args {
    /// The store folder [default: /var/lib/berth as root, else ~/.local/share/berth]
    #[arg(long, env = "BERTH_ROOT")]
    root: Option<PathBuf>,
    /// A registry reached over plain HTTP or with an unchecked certificate (repeatable)
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
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
    if nix::unistd::geteuid().is_root() {
        return "unix:///run/berth/berth.sock".into();
    }
    let dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
    format!("unix://{dir}/berth/berth.sock")
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut hosts = args.host;
    hosts.extend(args.uri);
    if hosts.is_empty() {
        hosts.push(default_host());
    }
    let hosts = hosts
        .iter()
        .map(|h| h.parse::<Host>())
        .collect::<Result<Vec<_>, _>>()?;
    let root = args.root.unwrap_or_else(Engine::default_root);
    let engine = Engine::open(
        &root,
        EngineConfig {
            insecure_registries: args.insecure_registry,
        },
    )
    .with_context(|| format!("cannot open the store at {}", root.display()))?;
    // What a service killed mid-create left goes before anyone sees it.
    let swept = engine.sweep_unfinished();
    if !swept.is_empty() {
        tracing::info!("removed {} containers left half-made", swept.len());
    }
    let opts = ServiceOptions {
        hosts,
        idle: (args.time > 0).then(|| Duration::from_secs(args.time)),
    };
    berth_api::serve(engine, opts)?;
    Ok(())
}

fn main() -> ExitCode {
    // The engine re-executes this binary for its helpers (supervisors).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(r) = berth_engine::helper::dispatch(&argv) {
        return match r {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(125)
            }
        };
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
