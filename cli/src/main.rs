//! `berth`: a daemonless Dockerfile build engine and OCI image toolkit.
//! This binary only parses arguments, wires the library crates together and
//! prints; the work happens in the libraries.

mod commands;

use anyhow::Context;
use berth_store::Store;
use clap::{Parser, Subcommand};
use commands::images;
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
    /// Create and run a new container from an image
    Run(commands::run::RunArgs),
    /// The runtime helper `berth run` starts (internal)
    #[command(name = "__runtime", hide = true)]
    Runtime { spec: String },
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
}

fn open_store(root: Option<PathBuf>) -> anyhow::Result<Store> {
    let root = root.unwrap_or_else(Store::default_root);
    Store::open(&root).with_context(|| format!("cannot open the store at {}", root.display()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Parse(args) => return commands::parse::run(args),
        Command::Runtime { spec } => return commands::run::runtime(&spec),
        _ => {}
    }
    let store = open_store(cli.root)?;
    match cli.command {
        Command::Parse(_) | Command::Runtime { .. } => unreachable!("handled above"),
        Command::Run(a) => commands::run::run(&store, a),
        Command::Build(a) => commands::build::build(&store, a),
        Command::Builder(BuilderCommand::Prune(a)) => commands::build::prune(&store, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&store, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&store, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(&store, a),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) => {
            images::inspect(&store, a)
        }
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(&store, a)
        }
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            images::import_cmd(&store, a)
        }
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => images::save(&store, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => images::load(&store, a),
        Command::Image(ImageCommand::Prune(a)) | Command::System(SystemCommand::Prune(a)) => {
            images::prune(&store, a)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
