//! `berth system service ...`: handed over to `berth-api`, the Engine API
//! service (api/), with this store; the `berth` command links the engine
//! alone. `berth-api` is looked for beside this binary, then on PATH.

use anyhow::bail;
use berth_engine::Engine;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

const SERVICE: &str = "berth-api";

#[derive(Args)]
pub struct ServiceArgs {
    /// berth-api's flags: [-H unix:///PATH | tcp://IP:PORT]... [--time SECONDS] [--tlsverify --tlscacert F --tlscert F --tlskey F] [URI]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn service_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(SERVICE)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(SERVICE))
                .find(|p| p.is_file())
        })
    })
}

pub fn service(engine: &Engine, a: ServiceArgs, insecure: &[String]) -> anyhow::Result<ExitCode> {
    let Some(bin) = service_binary() else {
        bail!("berth system service needs the {SERVICE} program (the api crate's binary: cargo build -p berth-api) beside berth or on PATH");
    };
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("--root").arg(engine.root());
    for r in insecure {
        cmd.arg("--insecure-registry").arg(r);
    }
    cmd.args(&a.args);
    let e = cmd.exec();
    bail!("cannot run {}: {e}", bin.display())
}
