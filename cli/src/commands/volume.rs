//! `berth volume create|ls|inspect|rm`: named volumes, as docker's local driver.

use berth_engine::Engine;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(NamesArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The name (default: a random one)
    name: Option<String>,
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    opt: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long)]
    filter: Vec<String>,
}

/// `KEY=VALUE` flags as a map (a bare `KEY` has an empty value).
fn pairs(flags: &[String]) -> std::collections::BTreeMap<String, String> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (f.clone(), String::new()),
        })
        .collect()
}

/// `--filter k=v` flags as the engine's filters.
fn filters(flags: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("bad format of filter (expected name=value)");
        };
        out.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(out)
}

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn volume(engine: &Engine, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCommand::Create(a) => {
            let v = engine.volume_create_with(&berth_engine::model::VolumeCreate {
                name: a.name.unwrap_or_default(),
                driver: a.driver,
                driver_opts: pairs(&a.opt),
                labels: pairs(&a.label),
            })?;
            println!("{}", v.name);
        }
        VolumeCommand::Prune(a) => {
            let _ = a.force;
            let report = engine.volume_prune(&filters(&a.filter)?)?;
            if !report.volumes_deleted.is_empty() {
                println!("Deleted Volumes:");
                for v in &report.volumes_deleted {
                    println!("{v}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                berth_engine::units::human_size(report.space_reclaimed)
            );
        }
        VolumeCommand::Ls(a) => {
            let vols = engine.volume_list_filtered(&filters(&a.filter)?)?;
            if !a.quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for v in vols {
                if a.quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<10}{}", v.driver, v.name);
                }
            }
        }
        VolumeCommand::Inspect(a) => {
            return super::print_inspected(&a.names, |n| engine.volume_inspect(n));
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match engine.volume_remove(n) {
                    Ok(()) => println!("{n}"),
                    // -f: a missing volume is no error; one in use still is.
                    Err(berth_engine::Error::NotFound(_)) if a.force => {}
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
