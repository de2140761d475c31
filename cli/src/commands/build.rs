//! `berth build` and `berth builder prune`: docker's flags turned into the
//! engine's build options.

use super::build_view::{BuildView, Mode};
use anyhow::{bail, Context};
use berth_engine::build::{
    BuildContext, BuildOptions, DockerfileSource, ExportEntry, SecretSource,
};
use berth_engine::units::human_size;
use berth_engine::Engine;
use clap::Args;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from STDIN)
    #[arg(short, long)]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Do not cache specified stages
    #[arg(long)]
    no_cache_filter: Vec<String>,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pull: bool,
    /// Push the image to its registry after the build (as --output type=registry)
    #[arg(long)]
    push: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to a file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Set metadata for an image
    #[arg(long)]
    label: Vec<String>,
    /// Set the networking mode for the RUN instructions during build: default, host, none or a network's name
    #[arg(long)]
    network: Option<String>,
    /// Set target platform for build
    #[arg(long)]
    platform: Option<String>,
    /// Output destination (format: "type=local,dest=path")
    #[arg(short, long)]
    output: Vec<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
    #[arg(long)]
    secret: Vec<String>,
    /// External cache sources (e.g., "user/app:cache", "type=local,src=path/to/dir")
    #[arg(long)]
    cache_from: Vec<String>,
    /// Cache export destinations (e.g., "user/app:cache", "type=local,dest=path/to/dir")
    #[arg(long)]
    cache_to: Vec<String>,
    /// Build context: a folder, or "-" for a tar archive on STDIN
    context: String,
}

#[derive(Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

fn parse_kv(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// `--output`: `type=T,k=v,...`, or a bare path for a local export.
fn parse_output(s: &str) -> anyhow::Result<ExportEntry> {
    if !s.contains('=') {
        if s == "-" {
            bail!(
                "--output -: writing a tarball to STDOUT is not supported; use type=oci,dest=FILE"
            );
        }
        return Ok(ExportEntry {
            kind: "local".into(),
            attrs: BTreeMap::from([("dest".to_string(), s.to_string())]),
        });
    }
    let mut attrs = parse_kv(s);
    let kind = attrs.remove("type").unwrap_or_default();
    Ok(ExportEntry { kind, attrs })
}

fn parse_secret(s: &str) -> anyhow::Result<(String, SecretSource)> {
    let kv = parse_kv(s);
    let id = kv
        .get("id")
        .cloned()
        .with_context(|| format!("invalid secret {s:?}: id=NAME is required"))?;
    let source = match (
        kv.get("src").or(kv.get("source")),
        kv.get("env"),
        kv.get("type").map(String::as_str),
    ) {
        (Some(p), _, _) => SecretSource::File(PathBuf::from(p)),
        (None, Some(e), _) => SecretSource::Env(e.clone()),
        (None, None, Some("env")) => SecretSource::Env(id.clone()),
        // docker: without src or env, the secret comes from the variable
        // of that name when it is set, else from a file of that name.
        (None, None, _) => {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
    };
    Ok((id, source))
}

pub fn build(engine: &Engine, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let context = if args.context == "-" {
        BuildContext::Tar(Box::new(std::io::stdin()))
    } else {
        BuildContext::Dir(PathBuf::from(&args.context))
    };
    let dockerfile = match args.file.as_deref() {
        Some("-") if args.context == "-" => {
            bail!("the context and the Dockerfile cannot both come from STDIN")
        }
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the Dockerfile from STDIN")?;
            DockerfileSource::Text(text)
        }
        other => DockerfileSource::Path(other.map(String::from)),
    };
    let mut build_args = BTreeMap::new();
    for a in &args.build_arg {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            // `--build-arg NAME` takes the value from the environment.
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let mut labels = BTreeMap::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mode = match (args.quiet, args.progress.as_str()) {
        (true, _) | (_, "quiet") => Mode::Quiet,
        (_, "auto") if std::io::stderr().is_terminal() => Mode::Tty,
        (_, "tty") => Mode::Tty,
        (_, "auto" | "plain" | "rawjson") => Mode::Plain,
        (_, other) => bail!("invalid progress mode {other:?}: use auto, plain, tty or quiet"),
    };
    let opts = BuildOptions {
        context,
        dockerfile,
        tags: args.tag.clone(),
        build_args,
        labels,
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        pull: args.pull,
        push: args.push,
        platform: args.platform.clone(),
        network: args.network.clone(),
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
        outputs: args
            .output
            .iter()
            .map(|o| parse_output(o))
            .collect::<anyhow::Result<_>>()?,
        secrets: args
            .secret
            .iter()
            .map(|s| parse_secret(s))
            .collect::<anyhow::Result<_>>()?,
    };
    let view = Arc::new(BuildView::new(mode));
    let built = engine.build(opts, view)?;
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &built.image_id)
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    for p in &built.pushed {
        super::registry::print_pushed(p, args.quiet);
    }
    if args.quiet {
        println!("{}", built.image_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth builder prune`: drops every cache entry, then collects garbage.
pub fn prune(engine: &Engine, args: BuilderPruneArgs) -> anyhow::Result<ExitCode> {
    let _ = (args.all, args.force);
    let (entries, freed) = engine.build_cache_prune()?;
    println!(
        "Deleted build cache objects: {entries}\nTotal reclaimed space: {}",
        human_size(freed)
    );
    Ok(ExitCode::SUCCESS)
}
