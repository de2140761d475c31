//! The commands handed over to a front end of their own, with this store
//! and registries: `berth system service` to `berth-api` (api/), `berth
//! compose` to `berth-compose` (compose/). The `berth` command links the
//! engine alone. Each program is looked for beside this binary, then on
//! PATH.

use anyhow::bail;
use berth_engine::Engine;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServiceArgs {
    /// berth-api's flags: [-H unix:///PATH | tcp://IP:PORT]... [--time SECONDS] [--tlsverify --tlscacert F --tlscert F --tlskey F] [URI]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct ComposeArgs {
    /// docker compose's flags and command (berth compose --help lists them)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

fn program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// Runs `name` in this process's place, on this store.
fn hand_over(
    name: &str,
    package: &str,
    command: &str,
    engine: &Engine,
    insecure: &[String],
    args: &[OsString],
) -> anyhow::Result<ExitCode> {
    let Some(bin) = program(name) else {
        bail!("{command} needs the {name} program (the {package} crate's binary: cargo build -p {package}) beside berth or on PATH");
    };
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("--root").arg(engine.root());
    for r in insecure {
        cmd.arg("--insecure-registry").arg(r);
    }
    cmd.args(args);
    let e = cmd.exec();
    bail!("cannot run {}: {e}", bin.display())
}

pub fn service(engine: &Engine, a: ServiceArgs, insecure: &[String]) -> anyhow::Result<ExitCode> {
    hand_over(
        "berth-api",
        "berth-api",
        "berth system service",
        engine,
        insecure,
        &a.args,
    )
}

pub fn compose(engine: &Engine, a: ComposeArgs, insecure: &[String]) -> anyhow::Result<ExitCode> {
    hand_over(
        "berth-compose",
        "berth-compose",
        "berth compose",
        engine,
        insecure,
        &a.args,
    )
}
