//! The image commands: images, tag, rmi, inspect, history, import, save,
//! load, image prune.

use super::change;
use super::format::{created_at, human_size, since};
use anyhow::{bail, Context};
use berth_store::archive::{self, SaveItem};
use berth_store::image::{ContainerConfig, StoredImage};
use berth_store::{import, Compression, ImageRef, LayerOptions, Store};
use clap::Args;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

#[derive(Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output: "table" or "json"
    #[arg(long, default_value = "table")]
    format: String,
    /// Re-hash every blob of every image and report corruption
    #[arg(long)]
    verify: bool,
    /// Only images of this repository[:tag]
    repository: Option<String>,
}

fn short_id(img: &StoredImage, no_trunc: bool) -> String {
    if no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_string()
    }
}

pub fn images(store: &Store, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    if args.verify {
        let problems = store.check(true)?;
        for p in &problems {
            eprintln!("corrupt: {p}");
        }
        if !problems.is_empty() {
            bail!("{} problem(s) found in the store", problems.len());
        }
    }
    let mut rows = Vec::new();
    let mut images = store.images()?;
    images.sort_by(|a, b| b.config.created.cmp(&a.config.created));
    for img in &images {
        let mut names: Vec<(String, String)> = img
            .tags
            .iter()
            .map(|t| {
                (
                    t.familiar_name(),
                    t.tag.clone().unwrap_or_else(|| "<none>".into()),
                )
            })
            .collect();
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in names {
            if let Some(filter) = &args.repository {
                let (frepo, ftag) = match filter.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
                    _ => (filter.clone(), None),
                };
                let frepo = frepo
                    .parse::<ImageRef>()
                    .map(|r| r.familiar_name())
                    .unwrap_or(frepo);
                if frepo != repo || ftag.is_some_and(|t| t != tag) {
                    continue;
                }
            }
            rows.push((repo, tag, img));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for (_, _, img) in &rows {
            if seen.insert(img.id.clone()) {
                writeln!(out, "{}", short_id(img, args.no_trunc))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == "json" {
        for (repo, tag, img) in &rows {
            let v = json!({
                "Containers": "N/A",
                "CreatedAt": created_at(img.config.created.as_deref()),
                "CreatedSince": since(img.config.created.as_deref()),
                "Digest": img.manifest_digest.to_string(),
                "ID": short_id(img, args.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(store.image_size(img)),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(store.image_size(img)),
            });
            writeln!(out, "{v}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format != "table" {
        bail!("unsupported --format {:?}: use table or json", args.format);
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    table.push(header.iter().map(|s| s.to_string()).collect());
    for (repo, tag, img) in &rows {
        let mut row = vec![repo.clone(), tag.clone()];
        if args.digests {
            row.push(img.manifest_digest.to_string());
        }
        row.extend([
            short_id(img, args.no_trunc),
            since(img.config.created.as_deref()),
            human_size(store.image_size(img)),
        ]);
        table.push(row);
    }
    print_table(&mut out, &table)?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(store: &Store, args: TagArgs) -> anyhow::Result<ExitCode> {
    let img = store.resolve(&args.source)?;
    let target: ImageRef = args.target.parse()?;
    if target.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    store.tag(&img, &target)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image (all its tags)
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(store: &Store, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in &args.images {
        if let Err(e) = rmi_one(store, name, args.force) {
            eprintln!("Error response from daemon: {}", crate::describe(&e));
            failed = true;
        }
    }
    store.gc()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn rmi_one(store: &Store, name: &str, force: bool) -> anyhow::Result<()> {
    let img = store.resolve(name)?;
    let by_tag = name
        .parse::<ImageRef>()
        .ok()
        .filter(|r| img.tags.contains(r));
    let last_name = img.tags.len() <= 1 || by_tag.is_none();
    if !force && last_name && store.holds().contains(&img.manifest_digest) {
        let user = super::container::containers(store)
            .list()?
            .into_iter()
            .find(|c| c.manifest == img.manifest_digest.to_string())
            .map(|c| c.short_id().to_string())
            .unwrap_or_default();
        bail!(
            "conflict: unable to remove repository reference \"{name}\" (must force) - container {user} is using its referenced image {}",
            img.id.short()
        );
    }
    let mut out = std::io::stdout().lock();
    if let Some(r) = by_tag {
        store.untag(&r)?;
        writeln!(out, "Untagged: {}", r.familiar())?;
        if img.tags.len() > 1 {
            return Ok(());
        }
    } else if img.tags.len() > 1 && !force {
        bail!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            img.id.short()
        );
    } else {
        for t in &img.tags {
            writeln!(out, "Untagged: {}", t.familiar())?;
        }
    }
    store.remove_image(&img)?;
    writeln!(out, "Deleted: {}", img.id)?;
    Ok(())
}

fn docker_config(c: Option<&ContainerConfig>) -> Value {
    let c = c.cloned().unwrap_or_default();
    let mut v = json!({
        "Hostname": "",
        "Domainname": "",
        "User": c.user.clone().unwrap_or_default(),
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": c.env,
        "Cmd": c.cmd,
        "Image": "",
        "Volumes": c.volumes,
        "WorkingDir": c.working_dir.clone().unwrap_or_default(),
        "Entrypoint": c.entrypoint,
        "OnBuild": c.on_build,
        "Labels": c.labels,
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(p) = c.exposed_ports {
            map.insert("ExposedPorts".into(), json!(p));
        }
        if let Some(s) = c.stop_signal {
            map.insert("StopSignal".into(), json!(s));
        }
        if let Some(h) = c.healthcheck {
            map.insert("Healthcheck".into(), h);
        }
        if let Some(s) = c.shell {
            map.insert("Shell".into(), json!(s));
        }
        if let Some(a) = c.args_escaped {
            map.insert("ArgsEscaped".into(), json!(a));
        }
    }
    v
}

/// `docker image inspect`'s shape.
pub fn inspect_json(store: &Store, img: &StoredImage) -> Value {
    let mut v = json!({
        "Id": img.id.to_string(),
        "RepoTags": img.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
        // Only a registry gives an image a repo digest (pull or push).
        "RepoDigests": repo_digests(store, img),
        "Parent": "",
        "Comment": img.config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": img.config.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": img.config.author.clone().unwrap_or_default(),
        "Config": docker_config(img.config.config.as_ref()),
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Size": store.image_size(img),
        "RootFS": {
            "Type": img.config.rootfs.kind,
            "Layers": img.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if let (Some(map), Some(variant)) = (v.as_object_mut(), &img.config.variant) {
        map.insert("Variant".into(), json!(variant));
    }
    v
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn inspect(store: &Store, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let containers = super::container::containers(store);
    for n in &args.names {
        // As docker: a container of that name or ID first, then an image.
        if let Ok(rec) = containers.find(n) {
            found.push(super::container::inspect_json(store, &rec));
            continue;
        }
        match store.resolve(n) {
            Ok(img) => found.push(inspect_json(store, &img)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    println!("{}", serde_json::to_string_pretty(&Value::Array(found))?);
    for e in &errors {
        eprintln!("Error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

pub fn history(store: &Store, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let img = store.resolve(&args.image)?;
    let mut layer_sizes = img
        .layers
        .iter()
        .map(|l| store.blobs().diff_size(&l.digest).unwrap_or(l.size))
        .rev()
        .collect::<Vec<_>>()
        .into_iter();
    let mut rows = vec![vec![
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for (i, h) in img.config.history.iter().rev().enumerate() {
        let id = if i == 0 {
            short_id(&img, args.no_trunc)
        } else {
            "<missing>".into()
        };
        if args.quiet {
            println!("{id}");
            continue;
        }
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let mut by = h.created_by.clone().unwrap_or_default();
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            id,
            since(h.created.as_deref()),
            by,
            human_size(size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    if !args.quiet {
        print_table(&mut std::io::stdout().lock(), &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENV, ...)
    #[arg(short, long = "change")]
    changes: Vec<String>,
    /// Set a commit message for the imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Layer compression: gzip or zstd
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// The tarball, or - for standard input
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn compression(name: &str) -> anyhow::Result<Compression> {
    Compression::parse(name)
        .with_context(|| format!("unknown compression {name:?}: use gzip, zstd or uncompressed"))
}

pub fn import_cmd(store: &Store, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let tags: Vec<ImageRef> = args
        .reference
        .iter()
        .map(|r| r.parse())
        .collect::<Result<_, _>>()?;
    let config = if args.changes.is_empty() {
        None
    } else {
        Some(change::apply(&args.changes, ContainerConfig::default())?)
    };
    let opts = LayerOptions {
        compression: compression(&args.compression)?,
        ..LayerOptions::default()
    };
    let mut input: Box<dyn Read> = if args.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file))?,
        )
    };
    let name = if args.file == "-" {
        "-".to_string()
    } else {
        args.file.clone()
    };
    let mut img = import::import(store, &mut input, &name, config, &tags, &opts)?;
    if let Some(m) = args.message {
        // The message goes in the history comment, as docker's does.
        if let Some(h) = img.config.history.last_mut() {
            h.comment = Some(m);
            img = store.commit_image(&img.config, &img.layers, &tags)?;
        }
    }
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Media types of the manifests in the archive: oci or docker
    #[arg(long, default_value = "oci")]
    media_types: String,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(store: &Store, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let types = match args.media_types.as_str() {
        "oci" => archive::MediaTypes::Oci,
        "docker" => archive::MediaTypes::Docker,
        other => bail!("unknown --media-types {other:?}: use oci or docker"),
    };
    let mut items = Vec::new();
    for n in &args.images {
        let image = store.resolve(n)?;
        let tags: Vec<ImageRef> = n
            .parse::<ImageRef>()
            .ok()
            .filter(|r| image.tags.contains(r))
            .into_iter()
            .collect();
        items.push(SaveItem { image, tags });
    }
    match &args.output {
        Some(path) => {
            let tmp = format!("{path}.berth-tmp");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp).with_context(|| format!("cannot create {tmp}"))?,
            );
            archive::save(store, &items, types, &mut f)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {path}"))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            archive::save(store, &items, types, &mut std::io::stdout().lock())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(store: &Store, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mut input: Box<dyn Read> = match &args.input {
        Some(p) if p != "-" => {
            Box::new(std::fs::File::open(p).with_context(|| format!("cannot open {p}"))?)
        }
        _ => Box::new(std::io::stdin().lock()),
    };
    let loaded = archive::load(store, &mut input, &LayerOptions::default())?;
    if !args.quiet {
        for l in loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.image.id);
            }
            for t in l.tags {
                println!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn confirm(question: &str) -> bool {
    eprint!("{question}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

pub fn prune(store: &Store, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let what = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    if !args.force && !confirm(&format!("WARNING! This will remove {what}.")) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut deleted = false;
    let in_use = store.holds();
    for img in store.images()? {
        if in_use.contains(&img.manifest_digest) {
            continue;
        }
        if img.tags.is_empty() || args.all {
            if !deleted {
                println!("Deleted Images:");
                deleted = true;
            }
            for t in &img.tags {
                println!("untagged: {}", t.familiar());
            }
            store.remove_image(&img)?;
            println!("deleted: {}", img.id);
        }
    }
    let report = store.gc()?;
    println!(
        "\nTotal reclaimed space: {}",
        human_size(report.bytes_freed)
    );
    Ok(ExitCode::SUCCESS)
}

/// `name@digest` for every repository the image's manifest was pulled from
/// or pushed to, as docker lists them.
fn repo_digests(store: &Store, img: &StoredImage) -> Vec<String> {
    berth_registry::sources::known(store, &img.manifest_digest)
        .iter()
        .filter_map(|repo| repo.parse::<ImageRef>().ok())
        .map(|r| format!("{}@{}", r.familiar_name(), img.manifest_digest))
        .collect()
}
