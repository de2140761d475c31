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
}

#[derive(Args)]
pub struct CreateArgs {
    /// The name (default: a random one)
    name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
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
            let v = engine.volume_create(a.name.as_deref())?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let vols = engine.volume_list()?;
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
                    Err(_) if a.force => {}
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
