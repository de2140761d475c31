//! `berth network create|ls|inspect|rm|prune|connect|disconnect`.

use berth_engine::model::{EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkCreate};
use berth_engine::Engine;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(NamesArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    name: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Provide filter values (e.g. 'driver=bridge')
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print networks using a Go template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    network: String,
    container: String,
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if what == "label" => Ok((i.clone(), String::new())),
            None => anyhow::bail!("invalid {what} {i:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn create_request(a: CreateArgs) -> anyhow::Result<NetworkCreate> {
    if a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
        anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let config: Vec<IpamConfig> = a
        .subnet
        .iter()
        .enumerate()
        .map(|(i, s)| IpamConfig {
            subnet: s.clone(),
            gateway: a.gateway.get(i).cloned().unwrap_or_default(),
            ip_range: a.ip_range.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(NetworkCreate {
        name: a.name,
        driver: a.driver,
        internal: a.internal,
        attachable: a.attachable,
        enable_ipv6: a.ipv6,
        ipam: Some(Ipam {
            driver: "default".into(),
            options: None,
            config,
        }),
        options: pairs(&a.opt, "option")?,
        labels: pairs(&a.label, "label")?,
        check_duplicate: true,
    })
}

pub fn network(engine: &Engine, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCommand::Create(a) => {
            let r = engine.network_create(create_request(a)?)?;
            println!("{}", r.id);
        }
        NetworkCommand::Ls(a) => {
            let filters: Vec<(String, String)> = a
                .filter
                .iter()
                .map(|f| match f.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => Err(anyhow::anyhow!(
                        "bad format of filter (expected name=value)"
                    )),
                })
                .collect::<anyhow::Result<_>>()?;
            let nets = engine.network_list(&filters)?;
            let id = |i: &str| {
                if a.no_trunc {
                    i.to_string()
                } else {
                    i[..12.min(i.len())].to_string()
                }
            };
            if let Some(f) = &a.format {
                let t = super::template::Template::parse(f)?;
                for n in &nets {
                    let v = serde_json::json!({
                        "ID": id(&n.id), "Name": n.name, "Driver": n.driver, "Scope": n.scope,
                        "IPv6": n.enable_ipv6, "Internal": n.internal, "CreatedAt": n.created,
                        "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                    });
                    println!("{}", t.render(&v));
                }
                return Ok(ExitCode::SUCCESS);
            }
            if a.quiet {
                for n in &nets {
                    println!("{}", id(&n.id));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let head = ["NETWORK ID", "NAME", "DRIVER", "SCOPE"].map(String::from);
            let rows: Vec<[String; 4]> = std::iter::once(head)
                .chain(
                    nets.iter()
                        .map(|n| [id(&n.id), n.name.clone(), n.driver.clone(), n.scope.clone()]),
                )
                .collect();
            // docker's tabwriter: columns as wide as their widest cell, 3 apart.
            let width = |c: usize| rows.iter().map(|r| r[c].len()).max().unwrap_or(0) + 3;
            let w = [width(0), width(1), width(2)];
            for r in rows {
                println!(
                    "{:<a$}{:<b$}{:<c$}{}",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    a = w[0],
                    b = w[1],
                    c = w[2]
                );
            }
        }
        NetworkCommand::Inspect(a) => {
            return super::print_inspected(&a.names, |n| engine.network_inspect(n));
        }
        NetworkCommand::Rm(a) => {
            // Every name is tried; the failures are said after.
            let mut failed = false;
            for n in &a.names {
                match engine.network_remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Prune(_) => {
            let gone = engine.network_prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
        }
        NetworkCommand::Connect(a) => {
            let settings = EndpointSettings {
                aliases: Some(a.alias).filter(|v| !v.is_empty()),
                ipam_config: a.ip.map(|ip| EndpointIpamConfig {
                    ipv4_address: ip,
                    ..Default::default()
                }),
                ..Default::default()
            };
            engine.network_connect(&a.network, &a.container, settings)?;
        }
        NetworkCommand::Disconnect(a) => {
            engine.network_disconnect(&a.network, &a.container, a.force)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
