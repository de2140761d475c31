//! More of docker's container commands: restart, rename, pause, unpause,
//! top, stats, diff, cp, container prune.

use super::container::each;
use anyhow::{bail, Context};
use berth_engine::units::human_size;
use berth_engine::Engine;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn restart(engine: &Engine, args: RestartArgs) -> anyhow::Result<ExitCode> {
    Ok(each(&args.containers, |n| {
        Ok(engine.container_restart(n, Duration::from_secs(args.time))?)
    }))
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub fn rename(engine: &Engine, args: RenameArgs) -> anyhow::Result<ExitCode> {
    engine.container_rename(&args.container, &args.new_name)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn pause(engine: &Engine, args: NamesArgs) -> anyhow::Result<ExitCode> {
    Ok(each(&args.containers, |n| Ok(engine.container_pause(n)?)))
}

pub fn unpause(engine: &Engine, args: NamesArgs) -> anyhow::Result<ExitCode> {
    Ok(each(&args.containers, |n| Ok(engine.container_unpause(n)?)))
}

#[derive(Args)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default: -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn top(engine: &Engine, args: TopArgs) -> anyhow::Result<ExitCode> {
    let top = engine.container_top(&args.container, &args.ps_args)?;
    let mut lines = vec![top.titles.join("\t")];
    lines.extend(top.processes.iter().map(|p| p.join("\t")));
    print!("{}", super::template::align(&lines));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Pretty-print stats using a Go template
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

pub fn stats(engine: &Engine, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let _ = args.all;
    loop {
        let samples = engine.container_stats(&args.containers, Duration::from_millis(500))?;
        let rows: Vec<serde_json::Value> = samples
            .iter()
            .map(|s| {
                let mem_pct = if s.memory_limit > 0 {
                    s.memory_usage as f64 / s.memory_limit as f64 * 100.0
                } else {
                    0.0
                };
                serde_json::json!({
                    "Container": if args.no_trunc { s.id.clone() } else { s.id[..12.min(s.id.len())].to_string() },
                    "ID": if args.no_trunc { s.id.clone() } else { s.id[..12.min(s.id.len())].to_string() },
                    "Name": s.name,
                    "CPUPerc": format!("{:.2}%", s.cpu_percent),
                    "MemUsage": format!("{} / {}", binary_size(s.memory_usage), binary_size(s.memory_limit)),
                    "MemPerc": format!("{mem_pct:.2}%"),
                    "NetIO": "0B / 0B",
                    "BlockIO": "0B / 0B",
                    "PIDs": s.pids.to_string(),
                })
            })
            .collect();
        let format = match args.format.as_deref() {
            Some("json") => "{{json .}}".to_string(),
            Some(f) => f.to_string(),
            None => "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into(),
        };
        super::template::print(&format, &rows, &|f| match f {
            "ID" => "CONTAINER ID".into(),
            "Container" => "CONTAINER".into(),
            "CPUPerc" => "CPU %".into(),
            "MemUsage" => "MEM USAGE / LIMIT".into(),
            "MemPerc" => "MEM %".into(),
            "NetIO" => "NET I/O".into(),
            "BlockIO" => "BLOCK I/O".into(),
            other => other.to_uppercase(),
        })?;
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// go-units' `BytesSize`: binary units, as `docker stats` shows memory.
fn binary_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

#[derive(Args)]
pub struct DiffArgs {
    container: String,
}

pub fn diff(engine: &Engine, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for c in engine.container_changes(&args.container)? {
        let kind = match c.kind {
            0 => "C",
            1 => "A",
            _ => "D",
        };
        writeln!(out, "{kind} {}", c.path)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH (accepted; the link itself is copied otherwise)
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar stream on STDIN)
    source: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar stream to STDOUT)
    dest: String,
}

/// `CONTAINER:PATH` → its two halves; a host path → none.
fn container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':').filter(|(c, _)| !c.is_empty())
}

/// A tar of host path `src`, its top entry named `name`.
fn host_tar(src: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let meta = src
        .symlink_metadata()
        .with_context(|| format!("no such file or directory: {}", src.display()))?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    if meta.is_dir() {
        b.append_dir_all(name, src)?;
    } else {
        b.append_path_with_name(src, name)?;
    }
    Ok(b.into_inner()?)
}

fn base_name(p: &str) -> String {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| ".".into())
}

pub fn cp(engine: &Engine, args: CpArgs) -> anyhow::Result<ExitCode> {
    let _ = (args.follow_link, args.archive);
    match (container_path(&args.source), container_path(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((ctr, path)), None) => {
            if args.dest == "-" {
                engine.container_archive_get(ctr, path, &mut std::io::stdout().lock())?;
                return Ok(ExitCode::SUCCESS);
            }
            // As docker: into DEST when it is a folder, else as DEST.
            let dest = PathBuf::from(&args.dest);
            let (dir, name) = if dest.is_dir() {
                (dest.clone(), base_name(path))
            } else {
                let parent = dest
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                if !parent.is_dir() {
                    bail!("no such directory: {}", parent.display());
                }
                (parent, base_name(&args.dest))
            };
            let mut tar = Vec::new();
            engine.container_archive_get(ctr, path, &mut tar)?;
            let tmp = tempfile::tempdir_in(&dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            tar::Archive::new(tar.as_slice())
                .unpack(tmp.path())
                .with_context(|| format!("cannot unpack into {}", dir.display()))?;
            let got = tmp.path().join(base_name(path));
            let target = dir.join(&name);
            if target.is_dir() && got.is_dir() {
                // A folder into an existing folder: its contents merge.
                let status = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", got.display()))
                    .arg(&target)
                    .status()?;
                if !status.success() {
                    bail!("cannot copy into {}", target.display());
                }
            } else {
                std::fs::rename(&got, &target)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
        }
        (None, Some((ctr, path))) => {
            if args.source == "-" {
                engine.container_archive_put(ctr, path, &mut std::io::stdin().lock())?;
                return Ok(ExitCode::SUCCESS);
            }
            let src = PathBuf::from(&args.source);
            let (dir, name) = match engine.container_path_is_dir(ctr, path)? {
                Some(true) => (path.to_string(), base_name(&args.source)),
                Some(false) | None => {
                    let parent = Path::new(path)
                        .parent()
                        .map(|p| p.display().to_string())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "/".into());
                    if engine.container_path_is_dir(ctr, &parent)? != Some(true) {
                        bail!("Could not find the file {parent} in container {ctr}");
                    }
                    (parent, base_name(path))
                }
            };
            let tar = host_tar(&src, &name)?;
            engine.container_archive_put(ctr, &dir, &mut tar.as_slice())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn prune(engine: &Engine, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force && !super::images::confirm("WARNING! This will remove all stopped containers.") {
        return Ok(ExitCode::SUCCESS);
    }
    let gone = engine.container_prune()?;
    let mut out = std::io::stdout().lock();
    if !gone.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &gone {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(0))?;
    Ok(ExitCode::SUCCESS)
}
