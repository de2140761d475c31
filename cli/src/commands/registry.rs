//! `berth pull`, `berth push`, `berth login`, `berth logout`.

use super::transfer::TransferView;
use anyhow::{bail, Context};
use berth_engine::registry::{PushedImage, Registries};
use berth_engine::Engine;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// The exit code for an error: 130 after Ctrl-C, as a shell reports SIGINT.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if matches!(
        e.downcast_ref::<berth_engine::Error>(),
        Some(berth_engine::Error::Interrupted)
    ) {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}

#[derive(Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

pub fn pull(engine: &Engine, args: PullArgs) -> anyhow::Result<ExitCode> {
    if !args.quiet && !args.name.contains(':') && !args.name.contains('@') {
        println!("Using default tag: latest");
    }
    let view = Arc::new(TransferView::new("Pulling fs layer", args.quiet));
    let pulled = engine.image_pull(&args.name, args.platform.as_deref(), view)?;
    if !args.quiet {
        let status = if pulled.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        println!("Status: {status} {}", pulled.familiar);
    }
    println!("{}", pulled.reference);
    Ok(ExitCode::SUCCESS)
}

pub fn push(engine: &Engine, args: PushArgs) -> anyhow::Result<ExitCode> {
    let view = Arc::new(TransferView::new("Preparing", args.quiet));
    let pushed = engine.image_push(&args.name, view)?;
    print_pushed(&pushed, args.quiet);
    Ok(ExitCode::SUCCESS)
}

/// What docker prints when a push is done.
pub fn print_pushed(p: &PushedImage, quiet: bool) {
    if quiet {
        println!("{}", p.familiar);
    } else {
        println!(
            "{}: digest: {} size: {}",
            p.tag.as_deref().unwrap_or("<none>"),
            p.digest,
            p.size
        );
    }
}

/// `https://index.docker.io/v1/`, `docker.io`, `host:port/` → the host name.
fn server_name(s: Option<&str>) -> String {
    let s = s.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// The registry (default: Docker Hub)
    server: Option<String>,
}

pub fn login(reg: &Registries, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => bail!("Must provide --username with --password-stdin"),
        None if std::io::stdin().is_terminal() => prompt("Username: ")?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut p = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut p)
                .context("cannot read the password from STDIN")?;
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("Password: ").context("cannot read the password")?
        }
        (None, false) => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("Error: Non-null Username and Password Required");
    }
    reg.login(&server, username, password)?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub)
    server: Option<String>,
}

pub fn logout(reg: &Registries, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let (key, had) = reg.logout(&server)?;
    if had {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(ExitCode::SUCCESS)
}
