//! docker's commands on containers (`ps`, `logs`, `stop`, `kill`, `wait`,
//! `start`, `rm`, `exec`, `port`, `commit`): flags to engine calls, results
//! printed as docker prints them.

use anyhow::{bail, Context};
use berth_engine::container::{AttachEnd, AttachOptions, CommitOptions, ExecOptions, LogsOptions};
use berth_engine::model::ContainerSummary;
use berth_engine::units::since_unix;
use berth_engine::Engine;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

pub(crate) fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> ExitCode {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error response from daemon: {}", crate::describe(&e));
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// The exit code of an attached command: the container's, or 0 when the
/// user detached.
pub(crate) fn attach_exit(end: AttachEnd) -> ExitCode {
    match end {
        AttachEnd::Exited(code) => exit(code),
        AttachEnd::Detached => ExitCode::SUCCESS,
    }
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    container: String,
}

/// docker attach: this terminal joins a running container.
pub fn attach(engine: &Engine, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let info = engine.container_inspect(&args.container)?;
    let opts = AttachOptions {
        stdin: !args.no_stdin && info.config.open_stdin,
        detach_keys: args.detach_keys.clone(),
        proxy_signals: args.sig_proxy,
    };
    Ok(attach_exit(
        engine.container_attach(&args.container, &opts)?,
    ))
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print containers using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    container: String,
}

#[derive(Args)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit (accepted; berth reads the changes as they are)
    #[arg(short, long, default_value_t = true)]
    pause: bool,
    container: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn stop(engine: &Engine, args: StopArgs) -> anyhow::Result<ExitCode> {
    Ok(each(&args.containers, |n| {
        Ok(engine.container_stop(n, Duration::from_secs(args.time))?)
    }))
}

/// docker wait: blocks until each container stops, then prints its exit code.
pub fn wait(engine: &Engine, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for n in &args.containers {
        match engine.container_wait(n) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn kill(engine: &Engine, args: KillArgs) -> anyhow::Result<ExitCode> {
    berth_engine::container::signal_of(&args.signal)?;
    Ok(each(&args.containers, |n| {
        Ok(engine.container_kill(n, &args.signal)?)
    }))
}

pub fn rm(engine: &Engine, args: RmArgs) -> anyhow::Result<ExitCode> {
    Ok(each(&args.containers, |n| {
        Ok(engine.container_remove(n, args.force, args.volumes)?)
    }))
}

pub fn start(engine: &Engine, args: StartArgs) -> anyhow::Result<ExitCode> {
    if args.attach {
        let [one] = args.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let opts = AttachOptions {
            stdin: args.interactive,
            detach_keys: args.detach_keys.clone(),
            proxy_signals: true,
        };
        return Ok(attach_exit(engine.container_start_attached(one, &opts)?));
    }
    Ok(each(&args.containers, |n| Ok(engine.container_start(n)?)))
}

fn ports_text(c: &ContainerSummary) -> String {
    c.ports_text()
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// A `ps` row as docker's formatter has it (what `--format` fields name).
fn ps_row(c: &ContainerSummary, no_trunc: bool) -> serde_json::Value {
    let command = format!("\"{}\"", c.command);
    let command = if no_trunc || command.chars().count() <= 20 {
        command
    } else {
        format!("{}…\"", command.chars().take(19).collect::<String>())
    };
    serde_json::json!({
        "Command": command,
        "CreatedAt": berth_engine::units::created_at(Some(&berth_engine::units::rfc3339_nano(c.created * 1_000_000_000))),
        "ID": if no_trunc { c.id.clone() } else { short(&c.id).to_string() },
        "Image": c.image,
        "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "LocalVolumes": c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Mounts": c.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
        "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
        "Networks": c.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(","),
        "Ports": ports_text(c),
        "RunningFor": since_unix(c.created).trim_end_matches(" ago").to_string(),
        "Size": "0B",
        "State": c.state,
        "Status": c.status,
    })
}

fn ps_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "LocalVolumes" => "LOCAL VOLUMES".into(),
        other => other.to_uppercase(),
    }
}

pub fn ps(engine: &Engine, args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters = super::events::filters(&args.filter)?;
    let mut shown =
        engine.container_list_filtered(args.all || args.last.is_some() || args.latest, &filters)?;
    if let Some(n) = args.last.or(args.latest.then_some(1)) {
        shown.truncate(n);
    }
    let mut out = std::io::stdout().lock();
    if let Some(format) = args
        .format
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "table")
    {
        if args.quiet {
            for r in &shown {
                writeln!(out, "{}", if args.no_trunc { &r.id } else { short(&r.id) })?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let format = if format == "json" {
            "{{json .}}"
        } else {
            format
        };
        let rows: Vec<serde_json::Value> = shown.iter().map(|c| ps_row(c, args.no_trunc)).collect();
        drop(out);
        super::template::print(format, &rows, &ps_header)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for r in &shown {
            writeln!(out, "{}", if args.no_trunc { &r.id } else { short(&r.id) })?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = shown
        .iter()
        .map(|r| {
            let command = format!("\"{}\"", r.command);
            let command = if args.no_trunc || command.chars().count() <= 20 {
                command
            } else {
                format!("{}…\"", command.chars().take(19).collect::<String>())
            };
            [
                if args.no_trunc {
                    r.id.clone()
                } else {
                    short(&r.id).to_string()
                },
                r.image.clone(),
                command,
                since_unix(r.created),
                r.status.clone(),
                ports_text(r),
                r.names
                    .iter()
                    .map(|n| n.trim_start_matches('/'))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(engine: &Engine, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n}"))?),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let at = |v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|s| berth_engine::units::timestamp(s, now).map_err(anyhow::Error::msg))
            .transpose()
    };
    let opts = LogsOptions {
        follow: args.follow,
        timestamps: args.timestamps,
        tail,
        since: at(&args.since)?,
        until: at(&args.until)?,
    };
    engine.container_logs(
        &args.container,
        &opts,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// docker port: read from the container's inspect, as the docker CLI does.
pub fn port(engine: &Engine, args: PortArgs) -> anyhow::Result<ExitCode> {
    let info = engine.container_inspect(&args.container)?;
    let want = match &args.port {
        Some(p) => {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((
                n.parse::<u16>()
                    .with_context(|| format!("invalid port {p}"))?,
                proto.to_string(),
            ))
        }
        None => None,
    };
    let mut found = false;
    for (key, bindings) in &info.network_settings.ports {
        let (n, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let n: u16 = n.parse().unwrap_or(0);
        for b in bindings.iter().flatten() {
            match &want {
                Some((w, wp)) if *w != n || wp != proto => continue,
                Some(_) => println!("{}:{}", b.host_ip, b.host_port),
                None => println!("{n}/{proto} -> {}:{}", b.host_ip, b.host_port),
            }
            found = true;
        }
    }
    if !found && want.is_some() {
        bail!(
            "No public port '{}' published for {}",
            args.port.unwrap_or_default(),
            args.container
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn exec(engine: &Engine, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.tty && args.interactive && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let opts = ExecOptions {
        cmd: args.command.clone(),
        interactive: args.interactive,
        tty: args.tty,
        detach: args.detach,
        env: args
            .env
            .iter()
            .filter_map(|e| super::run::env_entry(e))
            .collect(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        privileged: args.privileged,
        console_size: None,
    };
    match engine.container_exec(&args.container, &opts) {
        Ok(code) => Ok(exit(code)),
        Err(e @ berth_engine::Error::Conflict(_)) => {
            bail!("Error response from daemon: {e}")
        }
        Err(e) => Err(e.into()),
    }
}

pub fn commit(engine: &Engine, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let _ = args.pause;
    let opts = CommitOptions {
        reference: args.reference.clone(),
        author: args.author.clone(),
        changes: args.change.clone(),
        message: args.message.clone(),
    };
    println!("{}", engine.container_commit(&args.container, &opts)?);
    Ok(ExitCode::SUCCESS)
}
