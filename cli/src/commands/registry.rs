//! `berth pull`, `berth push`, `berth login`, `berth logout`, and the puller
//! a build uses for images the store lacks.

use super::transfer::TransferView;
use anyhow::{bail, Context};
use berth_registry::{Client, Credentials, DockerConfig, Platform, RegistryConfig, Silent};
use berth_store::{ImageRef, Store, StoredImage};
use clap::Args;
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// Settings every registry command shares (global flags).
#[derive(Debug, Clone, Default)]
pub struct RegistryOpts {
    pub insecure: Vec<String>,
}

impl RegistryOpts {
    pub fn client(&self) -> anyhow::Result<Client> {
        let path = RegistryConfig::default_path();
        let config = RegistryConfig::load(&path, &self.insecure)?;
        Ok(Client::new(
            config,
            DockerConfig::at(&DockerConfig::default_path()),
        ))
    }
}

/// Runs registry work on its own runtime; Ctrl-C drops it, which removes
/// every unfinished blob and tags nothing.
pub fn block_on<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .context("cannot start the network runtime")?;
    let out = rt.block_on(async {
        tokio::select! {
            r = fut => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Interrupted)),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    out
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted: nothing was tagged")]
pub struct Interrupted;

/// The exit code for an error: 130 after Ctrl-C, as a shell reports SIGINT.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<Interrupted>().is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::FAILURE
    }
}

fn platform(p: Option<&str>) -> anyhow::Result<Platform> {
    Ok(match p {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    })
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

pub fn pull(store: &Store, opts: &RegistryOpts, args: PullArgs) -> anyhow::Result<ExitCode> {
    let r: ImageRef = args.name.parse()?;
    let platform = platform(args.platform.as_deref())?;
    if !args.quiet && !args.name.contains(':') && !args.name.contains('@') {
        println!("Using default tag: latest");
    }
    let before = store
        .resolve(&r.to_string())
        .ok()
        .map(|i| i.manifest_digest);
    let client = opts.client()?;
    let view = Arc::new(TransferView::new("Pulling fs layer", args.quiet));
    let img =
        block_on(async { Ok(berth_registry::pull(&client, store, &r, &platform, view).await?) })?;
    if args.quiet {
        println!("{r}");
    } else {
        let status = if before.as_ref() == Some(&img.manifest_digest) {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        println!("Status: {status} {}", r.familiar());
        println!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

pub fn push(store: &Store, opts: &RegistryOpts, args: PushArgs) -> anyhow::Result<ExitCode> {
    let target: ImageRef = args.name.parse()?;
    let image = match store.resolve(&target.to_string()) {
        Ok(i) => i,
        Err(berth_store::Error::NoSuchImage(_)) => {
            bail!(
                "An image does not exist locally with the tag: {}",
                target.familiar_name()
            )
        }
        Err(e) => return Err(e.into()),
    };
    let client = opts.client()?;
    push_image(store, &client, &image, &target, args.quiet)?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes one image and prints what docker prints.
pub fn push_image(
    store: &Store,
    client: &Client,
    image: &StoredImage,
    target: &ImageRef,
    quiet: bool,
) -> anyhow::Result<()> {
    let view = Arc::new(TransferView::new("Preparing", quiet));
    let pushed =
        block_on(async { Ok(berth_registry::push(client, store, image, target, view).await?) })?;
    let repo = client.repo(target)?;
    berth_registry::sources::remember(store, &pushed.digest, &repo.host.name, &repo.path);
    if quiet {
        println!("{}", target.familiar());
    } else {
        println!(
            "{}: digest: {} size: {}",
            pushed.tag.as_deref().unwrap_or("<none>"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(())
}

/// The puller a build gets: FROM and `--from` images the store lacks.
#[derive(Debug)]
pub struct BuildPuller {
    pub store: Store,
    pub opts: RegistryOpts,
}

impl berth_builder::ImageSource for BuildPuller {
    fn pull(&self, name: &str) -> Result<StoredImage, String> {
        let r: ImageRef = name.parse().map_err(|e| format!("{e}"))?;
        // Its own thread: the build's scheduler is a runtime of its own.
        std::thread::scope(|s| {
            s.spawn(|| {
                let client = self.opts.client().map_err(|e| crate::describe(&e))?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .worker_threads(2)
                    .build()
                    .map_err(|e| format!("cannot start the network runtime: {e}"))?;
                rt.block_on(berth_registry::pull(
                    &client,
                    &self.store,
                    &r,
                    &Platform::host(),
                    Arc::new(Silent),
                ))
                .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the pull thread failed".to_string()))
        })
    }
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

pub fn login(opts: &RegistryOpts, args: LoginArgs) -> anyhow::Result<ExitCode> {
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
    let client = opts.client()?;
    let creds = Credentials { username, password };
    let host = client.host(&server)?;
    block_on(async { Ok(host.login(&creds).await?) })?;
    client.credentials().store(&server, &creds)?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub)
    server: Option<String>,
}

pub fn logout(opts: &RegistryOpts, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let client = opts.client()?;
    let key = berth_registry::credentials::auth_key(&server);
    if client.credentials().erase(&server)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(ExitCode::SUCCESS)
}
