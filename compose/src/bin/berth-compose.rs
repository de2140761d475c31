//! `berth-compose`: docker compose v2's commands, flags and output over
//! the compose crate (loading, reconciling) and the engine. `berth compose`
//! hands over to it, as `berth system service` does to `berth-api`, so the
//! `berth` command links the engine alone.

use anyhow::{bail, Context as _};
use berth_compose::loader::Project;
use berth_compose::project::ProjectOptions;
use berth_compose::reconcile::{Build, Compose, DownOptions, Member, Recreate, Report, UpOptions};
use berth_compose::service;
use berth_engine::container::{ExecOptions, LogsOptions};
use berth_engine::Engine;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Define and run multi-container applications
#[derive(clap::Parser)]
#[command(name = "berth compose", bin_name = "berth compose", version)]
pub struct ComposeArgs {
    /// The store folder [default: /var/lib/berth as root, else ~/.local/share/berth]
    #[arg(long, env = "BERTH_ROOT")]
    root: Option<PathBuf>,
    /// A registry reached over plain HTTP or with an unchecked certificate (repeatable)
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    file: Vec<String>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the, first specified, Compose file)
    #[arg(long = "project-directory")]
    project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long)]
    profile: Vec<String>,
    /// Set type of progress output (auto, tty, plain, json, quiet)
    #[arg(long, default_value = "auto")]
    progress: String,
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(Subcommand)]
pub enum ComposeCommand {
    /// Create and start containers
    Up(UpArgs),
    /// Creates containers for a service
    Create(CreateArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
    /// View output from containers
    Logs(LogsArgs),
    /// Parse, resolve and render compose file in canonical format
    #[command(alias = "convert")]
    Config(ConfigArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Run a one-off command on a service
    Run(RunArgs),
    /// Display the running processes
    Top(ServicesArgs),
    /// Receive real time events from containers
    Events(EventsArgs),
    /// Start services
    Start(ServicesArgs),
    /// Stop services
    Stop(StopArgs),
    /// Restart service containers
    Restart(RestartArgs),
    /// Force stop service containers
    Kill(KillArgs),
    /// Removes stopped service containers
    Rm(RmArgs),
    /// Pause services
    Pause(ServicesArgs),
    /// Unpause services
    Unpause(ServicesArgs),
    /// Build or rebuild services
    Build(BuildArgs),
    /// Pull service images
    Pull(ServicesArgs),
    /// Push service images
    Push(PushArgs),
    /// List images used by the created containers
    Images(ServicesArgs),
    /// Print the public port for a port binding
    Port(PortArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// Show the Docker Compose version information
    Version(VersionArgs),
}

/// What `up` and `create` share: how the services converge.
#[derive(Args, Default)]
pub struct ConvergeArgs {
    /// Build images before starting containers
    #[arg(long)]
    build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long = "no-build")]
    no_build: bool,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long)]
    pull: Option<String>,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long = "force-recreate")]
    force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long = "no-recreate")]
    no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long)]
    scale: Vec<String>,
    services: Vec<String>,
}

#[derive(Args, Default)]
pub struct UpArgs {
    #[command(flatten)]
    converge: ConvergeArgs,
    /// Detached mode: Run containers in the background
    #[arg(short, long)]
    detach: bool,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    no_deps: bool,
    /// Wait for services to be running|healthy. Implies detached mode
    #[arg(long)]
    wait: bool,
    /// Stops all containers if any container was stopped
    #[arg(long = "abort-on-container-exit")]
    abort_on_container_exit: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit
    #[arg(long = "exit-code-from")]
    exit_code_from: Option<String>,
    /// Use this timeout in seconds for container shutdown
    #[arg(short, long)]
    timeout: Option<u64>,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    no_color: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    converge: ConvergeArgs,
}

#[derive(Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file
    #[arg(short, long)]
    volumes: bool,
    /// Remove images used by services ("local"|"all")
    #[arg(long)]
    rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short, long)]
    timeout: Option<u64>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short, long)]
    all: bool,
    /// Only display IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display services
    #[arg(long)]
    services: bool,
    /// Filter services by status
    #[arg(long)]
    status: Vec<String>,
    /// Format the output (table, json)
    #[arg(long, default_value = "table")]
    format: String,
    service: Vec<String>,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(long, default_value = "all")]
    tail: String,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    no_log_prefix: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line
    #[arg(long)]
    services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    volumes: bool,
    /// Print the service config hash, one per line ("*" for all)
    #[arg(long)]
    hash: Option<String>,
    /// Format the output ("yaml"|"json"|"kubernetes")
    #[arg(long, default_value = "yaml")]
    format: String,
    /// Only validate the configuration, don't print anything
    #[arg(short, long)]
    quiet: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    profiles: bool,
    /// Print model variables and default values
    #[arg(long)]
    variables: bool,
    /// Save to file (default to stdout)
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// With --format kubernetes: build the services that have a build
    /// section and push their images to the registry `image:` names
    #[arg(long)]
    push: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Run the command as this user
    #[arg(short, long)]
    user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short, long)]
    workdir: Option<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    index: usize,
    /// Give extended privileges to the process
    #[arg(long)]
    privileged: bool,
    service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Add or override a label
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Run as specified username or uid
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    no_deps: bool,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long = "service-ports")]
    service_ports: bool,
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long, default_value_t = true)]
    interactive: bool,
    service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long)]
    json: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct PushArgs {
    /// Push what can be pushed, ignoring failures
    #[arg(long = "ignore-push-failures")]
    ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short, long)]
    quiet: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct ServicesArgs {
    services: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short, long)]
    timeout: Option<u64>,
    services: Vec<String>,
}

#[derive(Args)]
pub struct RestartArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short, long)]
    timeout: Option<u64>,
    /// Don't restart dependent services
    #[arg(long)]
    no_deps: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short, long, default_value = "SIGKILL")]
    signal: String,
    services: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short, long)]
    force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short, long)]
    stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short, long)]
    volumes: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Don't print anything to STDOUT
    #[arg(short, long)]
    quiet: bool,
    services: Vec<String>,
}

#[derive(Args)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    index: usize,
    service: String,
    private_port: u16,
}

#[derive(Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short, long)]
    all: bool,
    /// Only display IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format the output (table, json)
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(Args)]
pub struct VersionArgs {
    /// Shows only Compose's version number
    #[arg(long)]
    short: bool,
    /// Format the output (pretty, json)
    #[arg(short, long)]
    format: Option<String>,
}

/// Progress lines as docker compose prints them without a terminal.
struct Plain;

impl Report for Plain {
    fn line(&self, kind: &str, name: &str, state: &str) {
        eprintln!(" {kind} {name}  {state}");
    }
    fn warn(&self, message: &str) {
        eprintln!("WARN[0000] {message}");
    }
}

fn options(args: &ComposeArgs) -> anyhow::Result<ProjectOptions> {
    let mut o = ProjectOptions {
        working_dir: args.project_directory.clone(),
        config_paths: args.file.clone(),
        profiles: args.profile.clone(),
        ..ProjectOptions::default()
    };
    o.environment = std::env::vars().collect();
    if let Some(p) = &args.project_name {
        o.with_name(p)?;
    }
    o.env_files = Some(args.env_file.clone());
    if args.file.iter().any(|f| f == "-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the compose file from stdin")?;
        o.stdin = Some(text);
    }
    o.with_dot_env()?;
    o.with_config_file_env()?;
    o.with_profiles_env();
    Ok(o)
}

fn compose(engine: &Engine, args: ComposeArgs) -> anyhow::Result<ExitCode> {
    if let ComposeCommand::Version(v) = &args.command {
        return version(v);
    }
    let opts = options(&args)?;
    if let ComposeCommand::Ls(a) = &args.command {
        return ls(engine, a);
    }
    let project = opts.load()?;
    let report = Plain;
    let c = Compose {
        engine,
        project: &project,
        report: &report,
        cancel: Some(&INTERRUPTED),
    };
    match args.command {
        ComposeCommand::Up(a) => up(&c, a),
        ComposeCommand::Create(a) => {
            let up_args = UpArgs {
                converge: a.converge,
                ..UpArgs::default()
            };
            let mut o = up_options(&up_args)?;
            o.no_start = true;
            c.up(&o, build_progress())?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Down(a) => {
            c.down(&DownOptions {
                volumes: a.volumes,
                remove_orphans: a.remove_orphans,
                rmi: a.rmi,
                timeout: a.timeout.map(Duration::from_secs),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Ps(a) => ps(&c, a),
        ComposeCommand::Logs(a) => logs(&c, a),
        ComposeCommand::Config(a) => {
            if a.push {
                if a.format != "kubernetes" {
                    bail!("--push goes with --format kubernetes");
                }
                build_and_push(&c)?;
            }
            config(&project, a)
        }
        ComposeCommand::Exec(a) => exec(&c, a),
        ComposeCommand::Run(a) => run(&c, a),
        ComposeCommand::Top(a) => top(&c, a),
        ComposeCommand::Events(a) => events(&c, a),
        ComposeCommand::Start(a) => each_member(&c, &a.services, "Starting", "Started", |m| {
            if m.state != "running" {
                engine.container_start(&m.id)?;
            }
            Ok(())
        }),
        ComposeCommand::Stop(a) => {
            let grace = Duration::from_secs(a.timeout.unwrap_or(10));
            each_member(&c, &a.services, "Stopping", "Stopped", |m| {
                Ok(engine.container_stop(&m.id, grace)?)
            })
        }
        ComposeCommand::Restart(a) => {
            c.restart(&a.services, a.no_deps, a.timeout.map(Duration::from_secs))?;
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Kill(a) => each_member(&c, &a.services, "Killing", "Killed", |m| {
            if m.state == "running" {
                engine.container_kill(&m.id, &a.signal)?;
            }
            Ok(())
        }),
        ComposeCommand::Pause(a) => each_member(&c, &a.services, "Pausing", "Paused", |m| {
            Ok(engine.container_pause(&m.id)?)
        }),
        ComposeCommand::Unpause(a) => each_member(&c, &a.services, "Unpausing", "Unpaused", |m| {
            Ok(engine.container_unpause(&m.id)?)
        }),
        ComposeCommand::Rm(a) => rm(&c, a),
        ComposeCommand::Build(a) => {
            for name in c.ordered(&a.services, false)? {
                let has_build = project.model["services"][&name].get("build").is_some();
                if has_build {
                    let progress = if a.quiet {
                        Arc::new(berth_engine::progress::Silent)
                            as Arc<dyn berth_engine::ProgressSink>
                    } else {
                        build_progress()
                    };
                    c.build_service(&name, a.no_cache, progress)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Pull(a) => {
            for name in c.ordered(&a.services, false)? {
                let s = &project.model["services"][&name];
                if s.get("image").is_none() {
                    continue;
                }
                let image = service::image_name(&project.name, &name, s);
                report.line("Image", &image, "Pulling");
                engine.image_pull(&image, None, Arc::new(berth_engine::progress::Silent))?;
                report.line("Image", &image, "Pulled");
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Push(a) => {
            for name in c.ordered(&a.services, false)? {
                let s = &project.model["services"][&name];
                // compose pushes the services that name their image.
                let Some(image) = s.get("image").and_then(|i| i.as_str()) else {
                    continue;
                };
                report.line("Image", image, "Pushing");
                match engine.image_push(image, Arc::new(berth_engine::progress::Silent)) {
                    Ok(_) => report.line("Image", image, "Pushed"),
                    Err(e) if a.ignore_push_failures => report.warn(&format!("{image}: {e}")),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ComposeCommand::Images(a) => images(&c, a),
        ComposeCommand::Port(a) => port(&c, a),
        ComposeCommand::Ls(_) | ComposeCommand::Version(_) => unreachable!("handled above"),
    }
}

/// Build steps as BuildKit's plain output prints them, on stderr.
struct PlainBuild;

impl berth_engine::ProgressSink for PlainBuild {
    fn event(&self, event: berth_engine::ProgressEvent<'_>) {
        if let Some(line) = berth_engine::progress::plain_step_line(&event) {
            eprintln!("{line}");
        }
    }
}

fn build_progress() -> Arc<dyn berth_engine::ProgressSink> {
    Arc::new(PlainBuild)
}

fn version(v: &VersionArgs) -> anyhow::Result<ExitCode> {
    let ver = format!("v{}", service::COMPOSE_VERSION);
    if v.short {
        writeln!(std::io::stdout(), "{}", service::COMPOSE_VERSION)?;
    } else if v.format.as_deref() == Some("json") {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::json!({ "version": ver })
        )?;
    } else {
        writeln!(std::io::stdout(), "berth compose version {ver}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn up_options(a: &UpArgs) -> anyhow::Result<UpOptions> {
    let mut scale = BTreeMap::new();
    for s in &a.converge.scale {
        let Some((svc, n)) = s.split_once('=') else {
            bail!("invalid --scale {s:?}: use SERVICE=NUM");
        };
        let n: usize = n
            .parse()
            .with_context(|| format!("invalid --scale {s:?}"))?;
        scale.insert(svc.to_string(), n);
    }
    if a.converge.build && a.converge.no_build {
        bail!("--build and --no-build are incompatible");
    }
    if a.converge.force_recreate && a.converge.no_recreate {
        bail!("--force-recreate and --no-recreate are incompatible");
    }
    if let Some(p) = &a.converge.pull {
        if !matches!(p.as_str(), "always" | "missing" | "never") {
            bail!("invalid --pull option {p:?}");
        }
    }
    Ok(UpOptions {
        services: a.converge.services.clone(),
        build: if a.converge.build {
            Build::Always
        } else if a.converge.no_build {
            Build::Never
        } else {
            Build::Missing
        },
        pull: a.converge.pull.clone(),
        recreate: if a.converge.force_recreate {
            Recreate::Force
        } else if a.converge.no_recreate {
            Recreate::Never
        } else {
            Recreate::Diverged
        },
        no_deps: a.no_deps,
        remove_orphans: a.converge.remove_orphans,
        scale,
        wait: a.wait,
        no_start: false,
        timeout: a.timeout.map(Duration::from_secs),
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn up(c: &Compose<'_>, a: UpArgs) -> anyhow::Result<ExitCode> {
    let o = up_options(&a)?;
    // Output from this run on: a container kept running shows what it
    // says from now.
    let began = now_nanos();
    // Ctrl-C while converging stops what this run started; attached, it
    // stops everything.
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    let members = match c.up(&o, build_progress()) {
        Err(berth_compose::reconcile::ComposeError::Canceled) => {
            eprintln!("canceled");
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    if a.detach || a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Attached: every container's output with its prefix, until all have
    // exited, one has with --abort-on-container-exit, or Ctrl-C.
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let color = !a.no_color && std::io::stdout().is_terminal();
    let printer = Arc::new(Printer::new(&members, color));
    let since = Some(began);
    let (tx, rx) = std::sync::mpsc::channel::<(Member, i32)>();
    for m in members.clone() {
        let engine = c.engine.clone();
        let printer = printer.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut out = printer.writer(&m);
            let mut err = printer.writer(&m);
            let opts = LogsOptions {
                follow: true,
                timestamps: false,
                tail: None,
                since,
                until: None,
            };
            let _ = engine.container_logs(&m.id, &opts, &mut out, &mut err);
            let _ = out.flush();
            let _ = err.flush();
            let code = engine.container_wait(&m.id).unwrap_or_else(|_| {
                engine
                    .container_inspect(&m.id)
                    .map(|i| i.state.exit_code)
                    .unwrap_or(0)
            });
            let _ = tx.send((m, code));
        });
    }
    drop(tx);
    let mut left = members.len();
    let mut exit = ExitCode::SUCCESS;
    let mut exit_from: Option<i32> = None;
    while left > 0 {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            stop_all(c, &members, o.timeout);
            drain(&rx, left);
            return Ok(ExitCode::from(130));
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((m, code)) => {
                left -= 1;
                printer.say(&format!("{} exited with code {code}", prefix_name(&m)));
                if a.exit_code_from.as_deref() == Some(m.service.as_str()) {
                    exit_from = Some(code);
                }
                if abort {
                    eprintln!("Aborting on container exit...");
                    stop_all(c, &members, o.timeout);
                    drain(&rx, left);
                    if a.exit_code_from.is_none() {
                        exit = ExitCode::from(code.clamp(0, 255) as u8);
                    }
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(svc) = &a.exit_code_from {
        let code = match exit_from {
            Some(code) => code,
            None => c
                .members(Some(svc), false)?
                .first()
                .and_then(|m| c.engine.container_inspect(&m.id).ok())
                .map(|i| i.state.exit_code)
                .unwrap_or(0),
        };
        exit = ExitCode::from(code.clamp(0, 255) as u8);
    }
    Ok(exit)
}

/// Lets the followers of stopped containers print their last lines.
fn drain(rx: &std::sync::mpsc::Receiver<(Member, i32)>, mut left: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while left > 0 {
        let rest = deadline.saturating_duration_since(std::time::Instant::now());
        if rx.recv_timeout(rest).is_err() {
            return;
        }
        left -= 1;
    }
}

fn stop_all(c: &Compose<'_>, members: &[Member], timeout: Option<Duration>) {
    for m in members.iter().rev() {
        c.report.line("Container", &m.name, "Stopping");
        let grace = timeout.unwrap_or(Duration::from_secs(10));
        if c.engine.container_stop(&m.id, grace).is_ok() {
            c.report.line("Container", &m.name, "Stopped");
        }
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Log lines of several containers, each line whole, after its
/// container's prefix (`web-1  | `), coloured on a terminal.
struct Printer {
    width: usize,
    color: bool,
    lock: Mutex<()>,
    colors: BTreeMap<String, usize>,
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

fn prefix_name(m: &Member) -> String {
    format!("{}-{}", m.service, m.number)
}

impl Printer {
    fn new(members: &[Member], color: bool) -> Printer {
        let width = members
            .iter()
            .map(|m| prefix_name(m).len())
            .max()
            .unwrap_or(0);
        let colors = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i % COLORS.len()))
            .collect();
        Printer {
            width,
            color,
            lock: Mutex::new(()),
            colors,
        }
    }

    fn prefix(&self, m: &Member) -> String {
        let name = format!("{:<w$}  | ", prefix_name(m), w = self.width);
        match (self.color, self.colors.get(&m.id)) {
            (true, Some(i)) => format!("\x1b[{}m{name}\x1b[0m", COLORS[*i]),
            _ => name,
        }
    }

    fn say(&self, line: &str) {
        let _g = self.lock.lock();
        let _ = writeln!(std::io::stdout(), "{line}");
    }

    fn writer(self: &Arc<Self>, m: &Member) -> LineWriter {
        LineWriter {
            printer: self.clone(),
            prefix: self.prefix(m),
            buf: Vec::new(),
        }
    }
}

struct LineWriter {
    printer: Arc<Printer>,
    prefix: String,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let _g = self.printer.lock.lock();
            let mut out = std::io::stdout().lock();
            out.write_all(self.prefix.as_bytes())?;
            out.write_all(&line)?;
            out.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
            self.write(&[])?;
        }
        Ok(())
    }
}

/// The containers of the services named (all when none).
fn chosen(c: &Compose<'_>, services: &[String]) -> anyhow::Result<Vec<Member>> {
    let all = c.members(None, false)?;
    for s in services {
        if c.project.model["services"].get(s).is_none() {
            bail!("no such service: {s}");
        }
    }
    Ok(all
        .into_iter()
        .filter(|m| services.is_empty() || services.contains(&m.service))
        .collect())
}

fn each_member(
    c: &Compose<'_>,
    services: &[String],
    doing: &str,
    done: &str,
    f: impl Fn(&Member) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    for m in chosen(c, services)? {
        c.report.line("Container", &m.name, doing);
        f(&m)?;
        c.report.line("Container", &m.name, done);
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(c: &Compose<'_>, a: RmArgs) -> anyhow::Result<ExitCode> {
    let members = chosen(c, &a.services)?;
    let mut doomed = Vec::new();
    for m in members {
        if m.state == "running" || m.state == "paused" {
            if !a.stop {
                continue;
            }
            c.report.line("Container", &m.name, "Stopping");
            c.engine.container_stop(&m.id, Duration::from_secs(10))?;
            c.report.line("Container", &m.name, "Stopped");
        }
        doomed.push(m);
    }
    if doomed.is_empty() {
        eprintln!("No stopped containers");
        return Ok(ExitCode::SUCCESS);
    }
    if !a.force {
        let names: Vec<&str> = doomed.iter().map(|m| m.name.as_str()).collect();
        eprint!(
            "Going to remove {}\n? Are you sure you want to remove? [y/N] ",
            names.join(", ")
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    for m in doomed {
        c.report.line("Container", &m.name, "Removing");
        c.engine.container_remove(&m.id, false, a.volumes)?;
        c.report.line("Container", &m.name, "Removed");
    }
    Ok(ExitCode::SUCCESS)
}

fn ps(c: &Compose<'_>, a: PsArgs) -> anyhow::Result<ExitCode> {
    if a.services {
        let names: Vec<String> = match c.project.model.get("services").and_then(|s| s.as_object()) {
            Some(m) => m.keys().cloned().collect(),
            None => Vec::new(),
        };
        for n in names {
            writeln!(std::io::stdout(), "{n}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let members: Vec<Member> = chosen(c, &a.service)?
        .into_iter()
        .filter(|m| {
            a.all
                || !a.status.is_empty()
                || m.state == "running"
                || m.state == "paused"
                || m.state == "restarting"
        })
        .filter(|m| a.status.is_empty() || a.status.contains(&m.state))
        .collect();
    if a.quiet {
        for m in &members {
            writeln!(std::io::stdout(), "{}", m.id)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        for m in &members {
            let s = &m.summary;
            let row = serde_json::json!({
                "Command": format!("\"{}\"", s.command),
                "CreatedAt": berth_engine::units::created_at(Some(&berth_engine::units::rfc3339_nano(s.created * 1_000_000_000))),
                "ExitCode": c.engine.container_inspect(&m.id).map(|i| i.state.exit_code).unwrap_or(0),
                "Health": c.engine.container_inspect(&m.id).ok().and_then(|i| i.state.health.map(|h| h.status)).unwrap_or_default(),
                "ID": m.id,
                "Image": s.image,
                "Labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "Name": m.name,
                "Names": m.name,
                "Networks": s.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(","),
                "Ports": s.ports_text(),
                "Project": c.project.name,
                "Publishers": s.ports.iter().map(|p| serde_json::json!({
                    "URL": p.ip, "TargetPort": p.private_port, "PublishedPort": p.public_port.unwrap_or(0), "Protocol": p.kind,
                })).collect::<Vec<_>>(),
                "RunningFor": berth_engine::units::since_unix(s.created),
                "Service": m.service,
                "Size": "0B",
                "State": m.state,
                "Status": s.status,
            });
            writeln!(std::io::stdout(), "{row}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for m in &members {
        let s = &m.summary;
        let command = format!("\"{}\"", s.command);
        let command = if command.chars().count() <= 20 {
            command
        } else {
            format!("{}…\"", command.chars().take(19).collect::<String>())
        };
        rows.push(vec![
            m.name.clone(),
            s.image.clone(),
            command,
            m.service.clone(),
            berth_engine::units::since_unix(s.created),
            s.status.clone(),
            s.ports_text(),
        ]);
    }
    std::io::stdout().write_all(berth_engine::units::table(&rows).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn logs(c: &Compose<'_>, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let members = chosen(c, &a.services)?;
    let tail = if a.tail == "all" {
        None
    } else {
        Some(
            a.tail
                .parse::<usize>()
                .with_context(|| format!("invalid --tail {:?}", a.tail))?,
        )
    };
    let color = !a.no_color && std::io::stdout().is_terminal();
    let printer = Arc::new(Printer::new(&members, color));
    let opts = LogsOptions {
        follow: a.follow,
        timestamps: a.timestamps,
        tail,
        since: None,
        until: None,
    };
    let mut threads = Vec::new();
    for m in members {
        let engine = c.engine.clone();
        let printer = printer.clone();
        let opts = opts.clone();
        let no_prefix = a.no_log_prefix;
        threads.push(std::thread::spawn(move || {
            let mut out = printer.writer(&m);
            let mut err = printer.writer(&m);
            if no_prefix {
                out.prefix.clear();
                err.prefix.clear();
            }
            let r = engine.container_logs(&m.id, &opts, &mut out, &mut err);
            let _ = out.flush();
            let _ = err.flush();
            r
        }));
    }
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            return Err(e.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config(project: &Project, a: ConfigArgs) -> anyhow::Result<ExitCode> {
    let model = &project.model;
    let mut text = String::new();
    if a.services {
        for k in model["services"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            text.push_str(&format!("{k}\n"));
        }
    } else if a.volumes {
        for k in model["volumes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            text.push_str(&format!("{k}\n"));
        }
    } else if a.profiles {
        let mut all = std::collections::BTreeSet::new();
        for s in model["services"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, s)| s)
        {
            for p in s["profiles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
            {
                all.insert(p.to_string());
            }
        }
        for p in all {
            text.push_str(&format!("{p}\n"));
        }
    } else if let Some(h) = &a.hash {
        let wanted: Vec<String> = if h == "*" {
            model["services"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            h.split(',').map(String::from).collect()
        };
        for s in wanted {
            let Some(svc) = model["services"].get(&s) else {
                bail!("no such service: {s}");
            };
            text.push_str(&format!("{s} {}\n", service::config_hash(svc)));
        }
    } else if a.format == "kubernetes" {
        let dir = project.working_dir.clone();
        let objects = berth_compose::kubernetes::convert(model, &|f| std::fs::read(dir.join(f)))
            .map_err(|e| anyhow::anyhow!(e))?;
        text = objects
            .iter()
            .map(berth_compose::emit::to_yaml)
            .collect::<Vec<_>>()
            .join("---\n");
    } else if a.format == "json" {
        text = serde_json::to_string_pretty(model)? + "\n";
    } else if a.format == "yaml" {
        text = berth_compose::emit::to_yaml(model);
    } else {
        bail!("unsupported format {:?}", a.format);
    }
    if a.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    match a.output {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(c: &Compose<'_>, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let members = chosen(c, std::slice::from_ref(&a.service))?;
    let Some(m) = members.iter().find(|m| m.number == a.index) else {
        bail!("service \"{}\" is not running", a.service);
    };
    if m.state != "running" {
        bail!("service \"{}\" is not running", a.service);
    }
    let tty = !a.no_tty && std::io::stdin().is_terminal() && !a.detach;
    let opts = ExecOptions {
        cmd: a.command,
        interactive: !a.detach,
        tty,
        detach: a.detach,
        env: a.env,
        workdir: a.workdir,
        user: a.user,
        privileged: a.privileged,
        console_size: None,
    };
    let code = c.engine.container_exec(&m.id, &opts)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn images(c: &Compose<'_>, a: ServicesArgs) -> anyhow::Result<ExitCode> {
    let mut rows = vec![["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for m in chosen(c, &a.services)? {
        let image = &m.summary.image;
        let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), t.to_string()),
            None => (image.clone(), "latest".to_string()),
        };
        let id = m.summary.image_id.trim_start_matches("sha256:");
        let size = c
            .engine
            .image_inspect(image)
            .map(|i| berth_engine::units::human_size(i.size))
            .unwrap_or_default();
        rows.push(vec![
            m.name.clone(),
            repo,
            tag,
            id[..12.min(id.len())].to_string(),
            size,
        ]);
    }
    std::io::stdout().write_all(berth_engine::units::table(&rows).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn port(c: &Compose<'_>, a: PortArgs) -> anyhow::Result<ExitCode> {
    let members = chosen(c, std::slice::from_ref(&a.service))?;
    let Some(m) = members.iter().find(|m| m.number == a.index) else {
        bail!(
            "service \"{}\" has no container number {}",
            a.service,
            a.index
        );
    };
    let info = c.engine.container_inspect(&m.id)?;
    let key = format!("{}/{}", a.private_port, a.protocol);
    let bound = info
        .network_settings
        .ports
        .get(&key)
        .and_then(|b| b.as_ref())
        .and_then(|b| b.first().cloned());
    match bound {
        Some(b) => {
            writeln!(
                std::io::stdout(),
                "{}:{}",
                if b.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &b.host_ip
                },
                b.host_port
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("no port {key} for container {}", m.name),
    }
}

/// A project `ls` lists: its containers by state, its files.
type ProjectRow = (BTreeMap<String, usize>, String);

fn ls(engine: &Engine, a: &LsArgs) -> anyhow::Result<ExitCode> {
    let filters = BTreeMap::from([("label".to_string(), vec![service::PROJECT.to_string()])]);
    let mut projects: BTreeMap<String, ProjectRow> = BTreeMap::new();
    for s in engine.container_list_filtered(true, &filters)? {
        let Some(p) = s.labels.get(service::PROJECT) else {
            continue;
        };
        let entry = projects.entry(p.clone()).or_default();
        *entry.0.entry(s.state.clone()).or_default() += 1;
        entry.1 = s
            .labels
            .get(service::CONFIG_FILES)
            .cloned()
            .unwrap_or_default();
    }
    let status = |states: &BTreeMap<String, usize>| {
        states
            .iter()
            .map(|(k, n)| format!("{k}({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shown: Vec<(&String, &ProjectRow)> = projects
        .iter()
        .filter(|(_, (states, _))| a.all || states.contains_key("running"))
        .collect();
    if a.quiet {
        for (name, _) in shown {
            writeln!(std::io::stdout(), "{name}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|(n, (st, files))| serde_json::json!({"Name": n, "Status": status(st), "ConfigFiles": files}))
            .collect();
        writeln!(std::io::stdout(), "{}", serde_json::Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "NAME".to_string(),
        "STATUS".into(),
        "CONFIG FILES".into(),
    ]];
    for (n, (st, files)) in shown {
        rows.push(vec![n.clone(), status(st), files.clone()]);
    }
    std::io::stdout().write_all(berth_engine::units::table(&rows).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn run(c: &Compose<'_>, a: RunArgs) -> anyhow::Result<ExitCode> {
    let tty =
        !a.no_tty && !a.detach && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let interactive = a.interactive && !a.detach && std::io::stdin().is_terminal();
    let opts = berth_compose::reconcile::RunOptions {
        service: a.service,
        command: a.command,
        entrypoint: a.entrypoint,
        env: a.env,
        user: a.user,
        workdir: a.workdir,
        name: a.name,
        remove: a.rm,
        service_ports: a.service_ports,
        no_deps: a.no_deps,
        tty,
        interactive,
        labels: a.label,
    };
    let (id, _) = c.create_oneoff(&opts, build_progress())?;
    if a.detach {
        c.engine.container_start(&id)?;
        writeln!(std::io::stdout(), "{id}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let attach = berth_engine::container::AttachOptions {
        stdin: interactive,
        detach_keys: None,
        proxy_signals: true,
    };
    Ok(match c.engine.container_run_attached(&id, &attach)? {
        berth_engine::container::AttachEnd::Exited(code) => {
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        berth_engine::container::AttachEnd::Detached => ExitCode::SUCCESS,
    })
}

fn top(c: &Compose<'_>, a: ServicesArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for m in chosen(c, &a.services)?
        .into_iter()
        .filter(|m| m.state == "running")
    {
        let t = c.engine.container_top(&m.id, &[])?;
        writeln!(out, "{}", m.name)?;
        let mut rows = vec![t.titles.clone()];
        rows.extend(t.processes.iter().cloned());
        out.write_all(berth_engine::units::table(&rows).as_bytes())?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn events(c: &Compose<'_>, a: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut labels = vec![format!("{}={}", service::PROJECT, c.project.name)];
    if a.services.len() == 1 {
        labels.push(format!("{}={}", service::SERVICE, a.services[0]));
    }
    let opts = berth_engine::events::EventsOptions {
        since: None,
        until: None,
        filters: BTreeMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), labels),
        ]),
    };
    let services = a.services.clone();
    let mut out = std::io::stdout();
    c.engine.events(&opts, &mut |e| {
        let attrs = &e.actor.attributes;
        let svc = attrs.get(service::SERVICE).cloned().unwrap_or_default();
        if !services.is_empty() && !services.contains(&svc) {
            return true;
        }
        let time = berth_engine::units::rfc3339_nano(e.time_nano);
        let line = if a.json {
            serde_json::json!({
                "time": time, "type": e.kind, "action": e.action, "id": e.actor.id,
                "service": svc, "attributes": attrs,
            })
            .to_string()
        } else {
            let shown: Vec<String> = attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("com.docker.compose."))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "{time} {} {} {} ({})",
                e.kind,
                e.action,
                e.actor.id,
                shown.join(", ")
            )
        };
        writeln!(out, "{line}").is_ok()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What a cluster needs before it can run the project: the images of the
/// services berth builds, pushed where their `image:` says.
fn build_and_push(c: &Compose<'_>) -> anyhow::Result<()> {
    for name in c.ordered(&[], false)? {
        let s = &c.project.model["services"][&name];
        if s.get("build").is_none() {
            continue;
        }
        let Some(image) = s.get("image").and_then(|i| i.as_str()) else {
            bail!("services.{name}: a cluster pulls images by name: give the built service an `image:` in a registry");
        };
        c.build_service(&name, false, build_progress())?;
        c.report.line("Image", image, "Pushing");
        c.engine
            .image_push(image, Arc::new(berth_engine::progress::Silent))?;
        c.report.line("Image", image, "Pushed");
    }
    Ok(())
}

fn main() -> ExitCode {
    // The engine re-executes this binary for its helpers (supervisors).
    if let Some(code) = berth_engine::helper::run_if_helper() {
        return code;
    }
    let args = <ComposeArgs as clap::Parser>::parse();
    let run = || -> anyhow::Result<ExitCode> {
        let config = berth_engine::EngineConfig {
            insecure_registries: args.insecure_registry.clone(),
        };
        let root = args.root.clone().unwrap_or_else(Engine::default_root);
        let engine = Engine::open(&root, config)?;
        compose(&engine, args)
    };
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
