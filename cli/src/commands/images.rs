//! The image commands: images, tag, rmi, inspect, history, import, save,
//! load, image prune.

use anyhow::{bail, Context};
use berth_engine::image::SaveFormat;
use berth_engine::model::{ImageDeleteItem, ImageSummary};
use berth_engine::units::{created_at, human_size, since};
use berth_engine::Engine;
use clap::Args;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.strip_prefix("sha256:")
            .unwrap_or(id)
            .chars()
            .take(12)
            .collect()
    }
}

/// A familiar tag (`busybox:latest`, `host:5000/app:v1`, `app@sha256:..`)
/// as the REPOSITORY and TAG columns.
fn repo_and_tag(t: &str) -> (String, String) {
    if let Some((repo, _)) = t.split_once('@') {
        return (repo.to_string(), "<none>".into());
    }
    match t.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
        _ => (t.to_string(), "<none>".into()),
    }
}

pub fn images(engine: &Engine, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    if args.verify {
        let problems = engine.image_verify()?;
        for p in &problems {
            eprintln!("corrupt: {p}");
        }
        if !problems.is_empty() {
            bail!("{} problem(s) found in the store", problems.len());
        }
    }
    let images = engine.image_list(args.repository.as_deref())?;
    let mut rows: Vec<(String, String, &ImageSummary)> = Vec::new();
    for img in &images {
        if img.repo_tags.is_empty() {
            rows.push(("<none>".into(), "<none>".into(), img));
        }
        for t in &img.repo_tags {
            let (repo, tag) = repo_and_tag(t);
            rows.push((repo, tag, img));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for (_, _, img) in &rows {
            if seen.insert(img.id.clone()) {
                writeln!(out, "{}", short_id(&img.id, args.no_trunc))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == "json" {
        for (repo, tag, img) in &rows {
            let v = json!({
                "Containers": "N/A",
                "CreatedAt": created_at(img.created_text.as_deref()),
                "CreatedSince": since(img.created_text.as_deref()),
                "Digest": img.manifest_digest,
                "ID": short_id(&img.id, args.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(img.size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(img.size),
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
            row.push(img.manifest_digest.clone());
        }
        row.extend([
            short_id(&img.id, args.no_trunc),
            since(img.created_text.as_deref()),
            human_size(img.size),
        ]);
        table.push(row);
    }
    print_table(&mut out, &table)?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    out.write_all(berth_engine::units::table(rows).as_bytes())
}

pub fn tag(engine: &Engine, args: TagArgs) -> anyhow::Result<ExitCode> {
    engine.image_tag(&args.source, &args.target)?;
    Ok(ExitCode::SUCCESS)
}

fn print_deleted(
    out: &mut impl Write,
    items: &[ImageDeleteItem],
    lower: bool,
) -> std::io::Result<()> {
    for i in items {
        match (i, lower) {
            (ImageDeleteItem::Untagged(t), false) => writeln!(out, "Untagged: {t}")?,
            (ImageDeleteItem::Deleted(d), false) => writeln!(out, "Deleted: {d}")?,
            (ImageDeleteItem::Untagged(t), true) => writeln!(out, "untagged: {t}")?,
            (ImageDeleteItem::Deleted(d), true) => writeln!(out, "deleted: {d}")?,
        }
    }
    Ok(())
}

pub fn rmi(engine: &Engine, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in &args.images {
        match engine.image_remove(name, args.force) {
            Ok(done) => print_deleted(&mut std::io::stdout().lock(), &done, false)?,
            Err(e) => {
                eprintln!("Error response from daemon: {}", crate::describe(&e.into()));
                failed = true;
            }
        }
    }
    engine.collect_garbage()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// docker inspect: a container of that name or ID first, then an image.
pub fn inspect(engine: &Engine, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in &args.names {
        if let Ok(c) = engine.container_inspect(n) {
            found.push(serde_json::to_value(c)?);
            continue;
        }
        match engine.image_inspect(n) {
            Ok(img) => found.push(serde_json::to_value(img)?),
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

pub fn history(engine: &Engine, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let items = engine.image_history(&args.image)?;
    let mut rows = vec![vec![
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for h in &items {
        let id = if h.id == "<missing>" {
            h.id.clone()
        } else {
            short_id(&h.id, args.no_trunc)
        };
        if args.quiet {
            println!("{id}");
            continue;
        }
        let mut by = h.created_by.clone();
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            id,
            since(h.created_text.as_deref()),
            by,
            human_size(h.size),
            h.comment.clone(),
        ]);
    }
    if !args.quiet {
        print_table(&mut std::io::stdout().lock(), &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import_cmd(engine: &Engine, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut input: Box<dyn Read> = if args.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file))?,
        )
    };
    let id = engine.image_import(
        &mut input,
        &args.file,
        args.reference.as_deref(),
        &args.changes,
        args.message,
        &args.compression,
    )?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

pub fn save(engine: &Engine, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let format = match args.media_types.as_str() {
        "oci" => SaveFormat::Oci,
        "docker" => SaveFormat::Docker,
        other => bail!("unknown --media-types {other:?}: use oci or docker"),
    };
    match &args.output {
        Some(path) => {
            // A file that is there is whole: written aside, then renamed.
            let tmp = format!("{path}.berth-tmp");
            let written = (|| -> anyhow::Result<()> {
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&tmp).with_context(|| format!("cannot create {tmp}"))?,
                );
                engine.image_save(&args.images, format, &mut f)?;
                f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                std::fs::rename(&tmp, path).with_context(|| format!("cannot write {path}"))?;
                Ok(())
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            engine.image_save(&args.images, format, &mut std::io::stdout().lock())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load(engine: &Engine, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mut input: Box<dyn Read> = match &args.input {
        Some(p) if p != "-" => {
            Box::new(std::fs::File::open(p).with_context(|| format!("cannot open {p}"))?)
        }
        _ => Box::new(std::io::stdin().lock()),
    };
    let loaded = engine.image_load(&mut input)?;
    if !args.quiet {
        for l in loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for t in l.tags {
                println!("Loaded image: {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn confirm(question: &str) -> bool {
    eprint!("{question}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

pub fn prune(engine: &Engine, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let what = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    if !args.force && !confirm(&format!("WARNING! This will remove {what}.")) {
        return Ok(ExitCode::SUCCESS);
    }
    let (done, freed) = engine.image_prune(args.all)?;
    let mut out = std::io::stdout().lock();
    if !done.is_empty() {
        writeln!(out, "Deleted Images:")?;
        print_deleted(&mut out, &done, true)?;
    }
    writeln!(out, "\nTotal reclaimed space: {}", human_size(freed))?;
    Ok(ExitCode::SUCCESS)
}

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

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image (all its tags)
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
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

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
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
