//! `berth`: a daemonless Dockerfile build engine and OCI image toolkit.
//! This binary only parses arguments into engine calls and prints their
//! results; docker's semantics live in the engine crate.

mod commands;

use berth_engine::{Engine, EngineConfig};
use clap::{Parser, Subcommand};
use commands::{container, images, lifecycle};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Build, store and run OCI images from Dockerfiles, without a daemon"
)]
struct Cli {
    /// The store folder [default: /var/lib/berth as root, else ~/.local/share/berth]
    #[arg(long, global = true, env = "BERTH_ROOT")]
    root: Option<PathBuf>,
    /// A registry reached over plain HTTP or with an unchecked certificate (repeatable)
    #[arg(long = "insecure-registry", global = true)]
    insecure_registry: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Parse a Dockerfile and print it
    Parse(commands::parse::ParseArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCommand),
    /// Download an image from a registry
    Pull(commands::registry::PullArgs),
    /// Upload an image to a registry
    Push(commands::registry::PushArgs),
    /// Log in to a registry
    Login(commands::registry::LoginArgs),
    /// Log out from a registry
    Logout(commands::registry::LogoutArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// Define and run multi-container applications
    Compose(commands::service::ComposeArgs),
    /// Get real time events from the server
    Events(commands::events::EventsArgs),
    /// Create and run a new container from an image
    Run(commands::run::RunArgs),
    /// Create a new container
    Create(commands::run::CreateArgs),
    /// List containers
    Ps(container::PsArgs),
    #[command(flatten)]
    ContainerOp(ContainerOp),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The runtime helper `berth run` starts (internal)
    #[command(name = "__runtime", hide = true)]
    Runtime {
        spec: String,
        /// Where to write the container's first process id
        pid_file: Option<PathBuf>,
        /// Where to send the container's terminal
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// A descriptor whose first byte lets the container start
        #[arg(long)]
        start_fd: Option<i32>,
    },
    /// A detached container's supervisor (internal)
    #[command(name = "__supervise", hide = true)]
    Supervise { id: String },
    /// The helper `berth exec` starts (internal)
    #[command(name = "__exec", hide = true)]
    ExecHelper {
        pid: i32,
        process: PathBuf,
        spec: PathBuf,
        #[arg(long)]
        privileged: bool,
        #[arg(long)]
        console_socket: Option<PathBuf>,
    },
}

/// The container commands docker has both as `docker X` and `docker container X`.
#[derive(Subcommand)]
enum ContainerOp {
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::WaitArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Execute a command in a running container
    Exec(container::ExecArgs),
    /// List port mappings or a specific mapping for the container
    Port(container::PortArgs),
    /// Create a new image from a container's changes
    Commit(container::CommitArgs),
    /// Restart one or more containers
    Restart(lifecycle::RestartArgs),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::NamesArgs),
    /// Display the running processes of a container
    Top(lifecycle::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(lifecycle::StatsArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(lifecycle::DiffArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(lifecycle::CpArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(container::AttachArgs),
}

#[derive(Subcommand)]
enum ContainerCommand {
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(container::PsArgs),
    #[command(flatten)]
    Op(ContainerOp),
    /// Display detailed information on one or more containers
    Inspect(images::InspectArgs),
    /// Create and run a new container from an image
    Run(Box<commands::run::RunArgs>),
    /// Create a new container
    Create(Box<commands::run::CreateArgs>),
    /// Remove all stopped containers
    Prune(lifecycle::PruneArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Remove unused images
    Prune(images::PruneArgs),
    /// List images
    Ls(images::ImagesArgs),
    /// Remove one or more images
    Rm(images::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Save one or more images to a tar archive
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Download an image from a registry
    Pull(commands::registry::PullArgs),
    /// Upload an image to a registry
    Push(commands::registry::PushArgs),
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Remove build cache
    Prune(commands::build::BuilderPruneArgs),
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Remove unused data
    Prune(images::PruneArgs),
    /// Serve the Docker Engine API on a socket (`DOCKER_HOST=unix://...`)
    Service(commands::service::ServiceArgs),
}

fn container_op(engine: &Engine, op: ContainerOp) -> anyhow::Result<ExitCode> {
    match op {
        ContainerOp::Logs(a) => container::logs(engine, a),
        ContainerOp::Stop(a) => container::stop(engine, a),
        ContainerOp::Kill(a) => container::kill(engine, a),
        ContainerOp::Wait(a) => container::wait(engine, a),
        ContainerOp::Start(a) => container::start(engine, a),
        ContainerOp::Rm(a) => container::rm(engine, a),
        ContainerOp::Exec(a) => container::exec(engine, a),
        ContainerOp::Port(a) => container::port(engine, a),
        ContainerOp::Commit(a) => container::commit(engine, a),
        ContainerOp::Restart(a) => lifecycle::restart(engine, a),
        ContainerOp::Rename(a) => lifecycle::rename(engine, a),
        ContainerOp::Pause(a) => lifecycle::pause(engine, a),
        ContainerOp::Unpause(a) => lifecycle::unpause(engine, a),
        ContainerOp::Top(a) => lifecycle::top(engine, a),
        ContainerOp::Stats(a) => lifecycle::stats(engine, a),
        ContainerOp::Diff(a) => lifecycle::diff(engine, a),
        ContainerOp::Cp(a) => lifecycle::cp(engine, a),
        ContainerOp::Attach(a) => container::attach(engine, a),
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = EngineConfig {
        insecure_registries: cli.insecure_registry.clone(),
    };
    match cli.command {
        Command::Parse(args) => return commands::parse::run(args),
        Command::Runtime {
            spec,
            pid_file,
            console_socket,
            start_fd,
        } => {
            return Ok(exit(berth_engine::helper::runtime(
                &spec,
                pid_file.as_deref(),
                console_socket.as_deref(),
                start_fd,
            )?))
        }
        Command::ExecHelper {
            pid,
            process,
            spec,
            privileged,
            console_socket,
        } => {
            return Ok(exit(berth_engine::helper::exec(
                pid,
                &process,
                &spec,
                privileged,
                console_socket.as_deref(),
            )?))
        }
        Command::Login(a) => {
            return commands::registry::login(&berth_engine::registry_only(config), a)
        }
        Command::Logout(a) => {
            return commands::registry::logout(&berth_engine::registry_only(config), a)
        }
        _ => {}
    }
    let config_registries = cli.insecure_registry.clone();
    let root = cli.root.unwrap_or_else(Engine::default_root);
    let engine = Engine::open(&root, config)?;
    let engine = &engine;
    match cli.command {
        Command::Parse(_)
        | Command::Runtime { .. }
        | Command::ExecHelper { .. }
        | Command::Login(_)
        | Command::Logout(_) => {
            unreachable!("handled above")
        }
        Command::Supervise { id } => Ok(exit(engine.supervise(&id)?)),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => container::ps(engine, a),
        Command::ContainerOp(op) | Command::Container(ContainerCommand::Op(op)) => {
            container_op(engine, op)
        }
        Command::Container(ContainerCommand::Inspect(a)) => images::inspect(engine, a),
        Command::Container(ContainerCommand::Run(a)) => commands::run::run(engine, *a),
        Command::Container(ContainerCommand::Create(a)) => commands::run::create(engine, *a),
        Command::Container(ContainerCommand::Prune(a)) => lifecycle::prune(engine, a),
        Command::Create(a) => commands::run::create(engine, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
            commands::registry::pull(engine, a)
        }
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => {
            commands::registry::push(engine, a)
        }
        Command::Run(a) => commands::run::run(engine, a),
        Command::Volume(c) => commands::volume::volume(engine, c),
        Command::Network(c) => commands::network::network(engine, c),
        Command::Events(a) => commands::events::events(engine, a),
        Command::Compose(a) => commands::service::compose(engine, a, &config_registries),
        Command::Build(a) => commands::build::build(engine, a),
        Command::Builder(BuilderCommand::Prune(a)) => commands::build::prune(engine, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(engine, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(engine, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(engine, a),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) => {
            images::inspect(engine, a)
        }
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(engine, a)
        }
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            images::import_cmd(engine, a)
        }
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => images::save(engine, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => images::load(engine, a),
        Command::System(SystemCommand::Service(a)) => {
            commands::service::service(engine, a, &config_registries)
        }
        Command::Image(ImageCommand::Prune(a)) | Command::System(SystemCommand::Prune(a)) => {
            images::prune(engine, a)
        }
    }
}

/// Layers stream through buffers of a MiB or so on several threads. glibc
/// raises its mmap threshold after each such buffer is freed and then keeps
/// them in per-thread heaps, which grows the resident size of a pull past
/// 100 MB; a fixed threshold hands them back to the kernel instead. At 1 MiB
/// the network's read buffers and the unpack batches (a few hundred KiB)
/// still come from the heap and are reused, not mapped and faulted in anew
/// each time (a third fewer page faults in a pull, ~65 MB resident).
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

fn main() -> ExitCode {
    fixed_mmap_threshold();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let outcome = match berth_engine::helper::dispatch(&args) {
        Some(r) => r
            .map(|code| ExitCode::from(code.clamp(0, 255) as u8))
            .map_err(Into::into),
        None => run(Cli::parse()),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", describe(&e));
            commands::registry::exit_code(&e)
        }
    }
}

/// The error and its causes on one line. The libraries' errors already name
/// their cause in their message (`cannot write X: No space left on device`);
/// a cause is added only when the message does not say it yet.
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}
