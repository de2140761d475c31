//! `berth volume create|ls|inspect|rm`: named volumes, as docker's local driver.

use berth_store::Store;
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

fn random_name() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub fn volume(store: &Store, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCommand::Create(a) => {
            let name = match a.name {
                Some(n) => n,
                None => random_name()?,
            };
            let (v, _) = store.volume_create(&name)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let vols = store.volumes()?;
            if !a.quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for v in vols {
                if a.quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<10}{}", "local", v.name);
                }
            }
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            let mut missing = false;
            for n in &a.names {
                match store.volume_get(n) {
                    Ok(v) => out.push(serde_json::json!({
                        "CreatedAt": v.created_at,
                        "Driver": "local",
                        "Labels": {},
                        "Mountpoint": v.mountpoint,
                        "Name": v.name,
                        "Options": {},
                        "Scope": "local",
                    })),
                    Err(_) => {
                        eprintln!("Error: No such volume: {n}");
                        missing = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            if missing {
                return Ok(ExitCode::FAILURE);
            }
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match store.volume_remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(_) if a.force => {}
                    Err(_) => {
                        eprintln!("Error: No such volume: {n}");
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
