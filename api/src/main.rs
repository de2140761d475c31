//! `berth-api`: the Engine API service, which `berth system service` hands
//! over to (the `berth` command links the engine alone). A thin binary:
//! flags → an engine and listeners → `berth_api::serve`.

use anyhow::Context;
use berth_api::{Host, ServiceOptions, TlsFiles};
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
    /// TLS on TCP listeners, with client certificates signed by --tlscacert
    /// (docker's scheme; needed for TCP outside loopback)
    #[arg(long = "tlsverify", alias = "tls-verify")]
    tls_verify: bool,
    /// The CA that signs client certificates
    #[arg(long = "tlscacert", requires = "tls_verify")]
    tls_ca: Option<PathBuf>,
    /// The service's certificate
    #[arg(long = "tlscert", requires = "tls_verify")]
    tls_cert: Option<PathBuf>,
    /// The service's key
    #[arg(long = "tlskey", requires = "tls_verify")]
    tls_key: Option<PathBuf>,
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
    let tls = if args.tls_verify {
        match (args.tls_ca, args.tls_cert, args.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            _ => anyhow::bail!("--tlsverify needs --tlscacert, --tlscert and --tlskey"),
        }
    } else {
        None
    };
    let opts = ServiceOptions {
        hosts,
        idle: (args.time > 0).then(|| Duration::from_secs(args.time)),
        tls,
    };
    berth_api::serve(engine, opts)?;
    Ok(())
}

fn main() -> ExitCode {
    // The engine re-executes this binary for its helpers (supervisors).
    if let Some(code) = berth_engine::helper::run_if_helper() {
        return code;
    }
    // The service's log: one line a request at debug, warnings and up by
    // default (BERTH_LOG=debug, or any tracing filter). Request headers
    // are never logged: X-Registry-Auth holds credentials.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
