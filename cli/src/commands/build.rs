//! `berth build` and `berth builder prune`: docker's flags turned into a
//! `BuildRequest` for the builder crate.

use anyhow::{bail, Context};
use berth_builder::{BuildRequest, Output, Progress, ProgressMode, SecretSource};
use berth_store::{Compression, ImageRef, Store};
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Build context: a folder, or "-" for a tar archive on STDIN
    context: String,
}

fn parse_kv(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// What `--output` asks for, and whether it pushes (`type=registry`, or
/// `type=image,push=true`) and under which extra names (`name=a,b`).
fn parse_output(
    s: &str,
    compression: &mut Compression,
    push: &mut bool,
    names: &mut Vec<String>,
) -> anyhow::Result<Output> {
    if !s.contains('=') {
        return Ok(if s == "-" {
            bail!(
                "--output -: writing a tarball to STDOUT is not supported; use type=oci,dest=FILE"
            )
        } else {
            Output::Local(PathBuf::from(s))
        });
    }
    let kv = parse_kv(s);
    if let Some(c) = kv.get("compression") {
        *compression = match c.as_str() {
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            "uncompressed" => Compression::None,
            other => bail!("unsupported compression {other:?}: use gzip, zstd or uncompressed"),
        };
    }
    let dest = || -> anyhow::Result<PathBuf> {
        kv.get("dest")
            .map(PathBuf::from)
            .with_context(|| format!("--output {s}: dest=PATH is required"))
    };
    if let Some(n) = kv.get("name") {
        names.extend(n.split(';').map(String::from));
    }
    if kv.get("push").is_some_and(|v| v == "true") {
        *push = true;
    }
    Ok(match kv.get("type").map(String::as_str) {
        Some("image") | Some("moby") => Output::Image,
        Some("oci") => Output::Oci(dest()?),
        Some("docker") => Output::Docker(dest()?),
        Some("local") => Output::Local(dest()?),
        Some("tar") => bail!("--output type=tar is not supported yet: use type=local or type=oci"),
        Some("registry") => {
            *push = true;
            Output::Image
        }
        Some(other) => bail!("unsupported output type {other:?}: use image, oci, docker or local"),
        None => bail!("--output {s}: type=... is required"),
    })
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

/// Unpacks a context tarball from STDIN into a temporary folder.
fn context_from_stdin(dir: &Path) -> anyhow::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut plain = berth_store::layer::decompressed(&mut stdin as &mut dyn Read)
        .context("cannot read the build context from STDIN")?;
    let opts = berth_store::layer::ExtractOptions {
        chown: false,
        ..Default::default()
    };
    berth_store::layer::extract(&mut plain, dir, &opts)
        .context("cannot unpack the build context from STDIN")?;
    Ok(())
}

pub fn build(
    store: &Store,
    reg: &super::registry::RegistryOpts,
    args: BuildArgs,
) -> anyhow::Result<ExitCode> {
    let tmp_ctx;
    let context = if args.context == "-" {
        if args.file.as_deref() == Some("-") {
            bail!("the context and the Dockerfile cannot both come from STDIN");
        }
        tmp_ctx = tempfile::tempdir().context("cannot create a temporary folder")?;
        context_from_stdin(tmp_ctx.path())?;
        tmp_ctx.path().to_path_buf()
    } else {
        let p = PathBuf::from(&args.context);
        if !p.is_dir() {
            bail!(
                "unable to prepare context: path {:?} not found",
                args.context
            );
        }
        p
    };
    let (dockerfile, dockerfile_name, dockerfile_path) = match args.file.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the Dockerfile from STDIN")?;
            (text, "Dockerfile".to_string(), None)
        }
        other => {
            let path = match other {
                Some(f) if args.context == "-" => context.join(f),
                Some(f) => PathBuf::from(f),
                None => context.join("Dockerfile"),
            };
            let bytes = std::fs::read(&path)
                .with_context(|| format!("failed to read dockerfile: open {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "Dockerfile".into());
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                name,
                Some(path),
            )
        }
    };
    // <Dockerfile>.dockerignore beside the Dockerfile wins over the context's.
    let dockerignore = dockerfile_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(format!("{}.dockerignore", p.display())).ok())
        .or_else(|| std::fs::read_to_string(context.join(".dockerignore")).ok());

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
    let mut compression = Compression::Gzip;
    let mut push = args.push;
    let mut names = args.tag.clone();
    let outputs = args
        .output
        .iter()
        .map(|o| parse_output(o, &mut compression, &mut push, &mut names))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tags = names
        .iter()
        .map(|t| t.parse::<ImageRef>())
        .collect::<Result<Vec<_>, _>>()?;
    if push && tags.is_empty() {
        bail!("--push needs a name for the image: give one with -t NAME");
    }
    if let Some(p) = &args.platform {
        let (os, arch, _) = berth_store::image::host_platform();
        if p.split(',')
            .any(|p| !p.starts_with(&format!("{os}/{arch}")))
        {
            bail!("--platform {p}: berth builds for the native platform ({os}/{arch}) only");
        }
    }
    let secrets = args
        .secret
        .iter()
        .map(|s| parse_secret(s))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let progress = match (args.quiet, args.progress.as_str()) {
        (true, _) | (_, "quiet") => ProgressMode::Quiet,
        (_, "auto") if std::io::stderr().is_terminal() => ProgressMode::Tty,
        (_, "tty") => ProgressMode::Tty,
        (_, "auto" | "plain" | "rawjson") => ProgressMode::Plain,
        (_, other) => bail!("invalid progress mode {other:?}: use auto, plain, tty or quiet"),
    };
    let req = BuildRequest {
        context,
        dockerfile,
        dockerfile_name,
        dockerignore,
        build_args,
        target: args.target.clone(),
        tags,
        labels,
        no_cache: args.no_cache,
        no_cache_filter: args
            .no_cache_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect::<BTreeSet<_>>(),
        secrets,
        outputs,
        progress,
        compression,
        images: Some(std::sync::Arc::new(super::registry::BuildPuller {
            store: store.clone(),
            opts: reg.clone(),
        })),
        always_pull: args.pull,
        helper: std::env::current_exe().context("cannot find the berth binary")?,
    };
    let result = berth_builder::build(store, &req, Progress::new(progress))?;
    let id = result.image.id.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("cannot write {}", f.display()))?;
    }
    if push {
        let client = reg.client()?;
        for t in &req.tags {
            super::registry::push_image(store, &client, &result.image, t, args.quiet)?;
        }
    }
    if args.quiet {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
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

/// `berth builder prune`: drops every cache entry, then collects garbage.
pub fn prune(store: &Store, args: BuilderPruneArgs) -> anyhow::Result<ExitCode> {
    let _ = (args.all, args.force);
    let entries = store.cache_clear()?;
    // Cache mounts and the remembered hashes of context files are build
    // cache too.
    for dir in ["cache-mounts", "context-cache"] {
        let path = store.root().join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    let report = store.gc()?;
    println!(
        "Deleted build cache objects: {entries}\nTotal reclaimed space: {}",
        crate::commands::format::human_size(report.bytes_freed)
    );
    Ok(ExitCode::SUCCESS)
}
