//! Containers after `berth run`: their supervisor, and docker's commands on
//! them (`ps`, `logs`, `stop`, `kill`, `start`, `rm`, `exec`, `port`,
//! `commit`, and `inspect` of a container).

use anyhow::{bail, Context};
use berth_runner::container::{Containers, Record, Status};
use berth_runner::supervisor::{supervise, Supervision};
use berth_runner::{console, Bundle};
use berth_store::Store;
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::format::since;

pub fn containers(store: &Store) -> Containers {
    Containers::new(store.root().join("containers"))
}

/// What a killed supervisor (or a killed `berth run`) left: its container's
/// root filesystem is unmounted and the record saved as exited; a `--rm`
/// container is removed, as its supervisor would have done.
pub fn reap(store: &Store) -> anyhow::Result<()> {
    let cs = containers(store);
    for rec in cs.list()? {
        if rec.state.status != Status::Exited
            || rec.state.supervisor.is_none()
            || rec.state.supervised()
        {
            continue;
        }
        if rec.auto_remove {
            remove(store, &cs, &rec.id)?;
            continue;
        }
        store.unmount_rootfs(&rec.id)?;
        let mut done = rec.clone();
        done.state.supervisor = None;
        done.state.pid = 0;
        cs.save(&done)?;
    }
    Ok(())
}

/// The runtime command for a container's bundle.
fn runtime_command(rec: &Record, bundle: &Bundle) -> anyhow::Result<Command> {
    let mut cmd = if rec.runtime == "berth" {
        let exe = std::env::current_exe().context("cannot find the berth binary")?;
        bundle.helper(&exe)
    } else {
        bundle.external(&rec.runtime, &rec.id)
    };
    if rec.tty {
        cmd.arg("--console-socket").arg(bundle.console_socket());
    }
    Ok(cmd)
}

/// The size of the terminal berth writes to, for a container's `-t`.
pub fn terminal_size() -> anyhow::Result<Option<oci_spec::runtime::Box>> {
    let Some((rows, cols)) = console::size_of(1) else {
        return Ok(None);
    };
    Ok(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(rows as u64)
            .width(cols as u64)
            .build()?,
    ))
}

/// Runs container `id` once under a supervisor in this process, then
/// unmounts its root filesystem (and removes the container with `--rm`).
pub fn supervised_run(
    store: &Store,
    containers: &Containers,
    id: &str,
    attach: bool,
    stdin: bool,
) -> anyhow::Result<i32> {
    let rec = containers.load(id)?;
    let bundle = Bundle::create(&containers.dir(id))?.keep();
    let private = !matches!(rec.network.as_str(), "none" | "host");
    let supervision = Supervision {
        command: runtime_command(&rec, &bundle)?,
        pid_file: bundle.pid_file(),
        console_socket: rec.tty.then(|| bundle.console_socket()),
        ports: rec
            .ports
            .iter()
            .map(|p| berth_runner::ports::PortMapping {
                host: std::net::SocketAddr::new(
                    p.host_ip.parse().unwrap_or([0, 0, 0, 0].into()),
                    p.host_port,
                ),
                container: p.container_port,
                proto: if p.proto == "udp" {
                    berth_runner::ports::Proto::Udp
                } else {
                    berth_runner::ports::Proto::Tcp
                },
            })
            .collect(),
        attach,
        stdin,
        slirp: private && berth_runner::supervisor::slirp_available(),
        start_gate: rec.runtime == "berth",
    };
    let code = supervise(containers, id, supervision);
    let unmounted = store.unmount_rootfs(id);
    if rec.auto_remove {
        remove(store, containers, id)?;
    }
    unmounted?;
    Ok(code?)
}

/// Starts container `id` under a supervisor process of its own
/// (`berth __supervise ID`, in a new session so that a closed terminal does
/// not end it) and waits until it runs.
pub fn start_detached(store: &Store, containers: &Containers, id: &str) -> anyhow::Result<()> {
    // The last run's "exited" must not be taken for this one's.
    let mut rec = containers.load(id)?;
    rec.state.status = Status::Created;
    containers.save(&rec)?;
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__supervise")
        .arg(id)
        .env("BERTH_ROOT", store.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("cannot start the container's supervisor")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = containers.load(id)?;
        match rec.state.status {
            Status::Running if rec.state.pid > 0 => return Ok(()),
            Status::Exited => {
                if !rec.state.error.is_empty() {
                    bail!("{}", rec.state.error);
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some(st) = child.try_wait()? {
            if containers.load(id)?.state.status == Status::Created {
                bail!("the container's supervisor failed ({st})");
            }
        }
        if Instant::now() > deadline {
            bail!("the container did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// `berth __supervise ID`: a detached container's supervisor.
pub fn supervise_cmd(store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    let containers = containers(store);
    let code = supervised_run(store, &containers, id, false, false)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Removes everything of container `id`: root filesystem, the hold on its
/// image, its folder.
pub fn remove(store: &Store, containers: &Containers, id: &str) -> anyhow::Result<()> {
    store.remove_rootfs(id)?;
    store.release(id)?;
    containers.remove(id)?;
    Ok(())
}

pub fn signal_of(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let sig: nix::sys::signal::Signal = format!("SIG{name}")
        .parse()
        .map_err(|_| anyhow::anyhow!("Invalid signal: {s}"))?;
    Ok(sig as i32)
}

fn send_signal(rec: &Record, sig: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2) has no memory effects.
    if unsafe { libc::kill(rec.state.pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            bail!("cannot signal container {}: {e}", rec.name);
        }
    }
    Ok(())
}

/// Waits until the container's supervisor says it stopped (and is gone).
fn wait_stopped(containers: &Containers, id: &str, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let rec = containers.load(id)?;
        if !rec.running() && !rec.state.supervised() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// docker stop: the container's stop signal (the image's STOPSIGNAL, else
/// SIGTERM), then SIGKILL after the grace time.
fn stop_one(containers: &Containers, rec: &Record, grace: Duration) -> anyhow::Result<()> {
    if !rec.running() {
        return Ok(());
    }
    let first = match &rec.stop_signal {
        Some(s) => signal_of(s)?,
        None => libc::SIGTERM,
    };
    send_signal(rec, first)?;
    if !wait_stopped(containers, &rec.id, grace)? {
        send_signal(rec, libc::SIGKILL)?;
        if !wait_stopped(containers, &rec.id, Duration::from_secs(30))? {
            bail!("container {} did not stop", rec.name);
        }
    }
    Ok(())
}

fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> ExitCode {
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

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(store: &Store, args: StopArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    Ok(each(&args.containers, |n| {
        let rec = cs.find(n)?;
        stop_one(&cs, &rec, Duration::from_secs(args.time))
    }))
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// docker wait: blocks until each container stops, then prints its exit code.
pub fn wait(store: &Store, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    let mut failed = false;
    for n in &args.containers {
        let waited = cs.find(n).and_then(|rec| {
            while cs.load(&rec.id)?.running() {
                std::thread::sleep(Duration::from_millis(50));
            }
            cs.load(&rec.id)
        });
        match waited {
            Ok(rec) => println!("{}", rec.state.exit_code),
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

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(store: &Store, args: KillArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    let sig = signal_of(&args.signal)?;
    Ok(each(&args.containers, |n| {
        let rec = cs.find(n)?;
        if !rec.running() {
            bail!(
                "cannot kill container: {n}: container {} is not running",
                rec.id
            );
        }
        send_signal(&rec, sig)
    }))
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

pub fn rm(store: &Store, args: RmArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    Ok(each(&args.containers, |n| {
        let rec = cs.find(n)?;
        if rec.running() {
            if !args.force {
                bail!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    rec.name
                );
            }
            send_signal(&rec, libc::SIGKILL)?;
            if !wait_stopped(&cs, &rec.id, Duration::from_secs(30))? {
                bail!("container {n} did not stop");
            }
        }
        remove(store, &cs, &rec.id)
    }))
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn start(store: &Store, args: StartArgs) -> anyhow::Result<ExitCode> {
    reap(store)?;
    let cs = containers(store);
    if args.attach {
        let [one] = args.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let rec = cs.find(one)?;
        mount_again(store, &rec)?;
        let code = supervised_run(store, &cs, &rec.id, true, args.interactive)?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    Ok(each(&args.containers, |n| {
        let rec = cs.find(n)?;
        if rec.running() {
            return Ok(());
        }
        mount_again(store, &rec)?;
        start_detached(store, &cs, &rec.id)
    }))
}

fn mount_again(store: &Store, rec: &Record) -> anyhow::Result<()> {
    if rec.running() {
        bail!("container {} is already running", rec.name);
    }
    let image = store.get(&rec.manifest.parse()?)?;
    // The mount stays for the supervisor, which unmounts it when the container stops.
    store.container_rootfs(&image, &rec.id, !rec.auto_remove)?;
    Ok(())
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
}

fn status_text(rec: &Record) -> String {
    let up = |t: &str| since(Some(t)).trim_end_matches(" ago").to_string();
    match rec.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", up(&rec.state.started_at)),
        Status::Exited => format!(
            "Exited ({}) {}",
            rec.state.exit_code,
            since(Some(&rec.state.finished_at))
        ),
    }
}

fn ports_text(rec: &Record) -> String {
    rec.ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.proto
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn ps(store: &Store, args: PsArgs) -> anyhow::Result<ExitCode> {
    reap(store)?;
    let all = containers(store).list()?;
    let shown: Vec<&Record> = all.iter().filter(|r| args.all || r.running()).collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in shown {
            writeln!(out, "{}", if args.no_trunc { &r.id } else { r.short_id() })?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = shown
        .iter()
        .map(|r| {
            let command = format!("\"{}\"", r.args.join(" "));
            let command = if args.no_trunc || command.chars().count() <= 20 {
                command
            } else {
                format!("{}…\"", command.chars().take(19).collect::<String>())
            };
            [
                if args.no_trunc {
                    r.id.clone()
                } else {
                    r.short_id().to_string()
                },
                r.image.clone(),
                command,
                since(Some(&r.created)),
                status_text(r),
                ports_text(r),
                r.name.clone(),
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
    container: String,
}

pub fn logs(store: &Store, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    let rec = cs.find(&args.container)?;
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n}"))?),
    };
    let opts = berth_runner::log::ReadOptions {
        follow: args.follow,
        timestamps: args.timestamps,
        tail,
    };
    let id = rec.id.clone();
    let running = || cs.load(&id).map(|r| r.running()).unwrap_or(false);
    berth_runner::log::read(
        &cs.log_path(&rec.id),
        &opts,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        &running,
    )
    .context("cannot read the container's log")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

pub fn port(store: &Store, args: PortArgs) -> anyhow::Result<ExitCode> {
    let rec = containers(store).find(&args.container)?;
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
    for p in &rec.ports {
        match &want {
            Some((n, proto)) if *n != p.container_port || *proto != p.proto => continue,
            Some(_) => println!("{}:{}", p.host_ip, p.host_port),
            None => println!(
                "{}/{} -> {}:{}",
                p.container_port, p.proto, p.host_ip, p.host_port
            ),
        }
        found = true;
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

/// `docker inspect` of a container.
pub fn inspect_json(store: &Store, rec: &Record) -> Value {
    let st = &rec.state;
    let ports: serde_json::Map<String, Value> = rec
        .ports
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.container_port, p.proto),
                json!([{ "HostIp": p.host_ip, "HostPort": p.host_port.to_string() }]),
            )
        })
        .collect();
    json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.args.first().cloned().unwrap_or_default(),
        "Args": rec.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": match st.status {
                Status::Created => "created",
                Status::Running => "running",
                Status::Exited => "exited",
            },
            "Running": rec.running(),
            "Paused": false,
            "Restarting": false,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": if rec.running() { st.pid } else { 0 },
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": rec.image_id,
        "LogPath": containers(store).log_path(&rec.id),
        "Name": format!("/{}", rec.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "HostConfig": {
            "Binds": rec.binds,
            "NetworkMode": rec.network,
            "AutoRemove": rec.auto_remove,
            "Runtime": rec.runtime,
            "PortBindings": ports,
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "UpperDir": store.rootfs_changes(&rec.id),
                "MergedDir": store.root().join("mounts").join(&rec.id).join("merged"),
            },
        },
        "Config": {
            "Hostname": rec.hostname,
            "User": rec.user,
            "Tty": rec.tty,
            "Env": rec.env,
            "Cmd": rec.cmd,
            "Image": rec.image,
            "WorkingDir": rec.working_dir,
            "Entrypoint": rec.entrypoint,
            "Labels": rec.labels,
        },
        "NetworkSettings": { "Ports": ports },
    })
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

pub fn exec(store: &Store, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let cs = containers(store);
    let rec = cs.find(&args.container)?;
    if !rec.running() {
        bail!(
            "Error response from daemon: container {} is not running",
            rec.id
        );
    }
    if args.tty && args.interactive && !console::is_terminal(0) {
        bail!("the input device is not a TTY");
    }
    let dir = cs.dir(&rec.id);
    let spec = oci_spec::runtime::Spec::load(dir.join("config.json"))
        .context("cannot read the container's spec")?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    let mut env = process.env().clone().unwrap_or_default();
    for e in &args.env {
        if let Some((k, _)) = e.split_once('=') {
            env.retain(|x| x.split('=').next() != Some(k));
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.retain(|x| x.split('=').next() != Some(e));
            env.push(format!("{e}={v}"));
        }
    }
    process.set_env(Some(env));
    if let Some(w) = &args.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &args.user {
        let root = Path::new("/proc")
            .join(rec.state.pid.to_string())
            .join("root");
        let u = berth_runner::user::resolve(&root, u)?;
        let user = oci_spec::runtime::UserBuilder::default()
            .uid(u.uid)
            .gid(u.gid)
            .additional_gids(u.additional_gids)
            .build()?;
        process.set_user(user);
    }
    process.set_terminal(Some(args.tty));
    if args.tty {
        process.set_console_size(terminal_size()?);
    }
    if args.privileged {
        process.set_no_new_privileges(Some(false));
    }
    let tag = format!("exec-{}", std::process::id());
    let process_path = dir.join(format!("{tag}.json"));
    std::fs::write(&process_path, serde_json::to_vec(&process)?)
        .context("cannot write the exec process")?;
    // A socket's path must be shorter than 108 bytes: not in the store.
    let socket = std::env::temp_dir().join(format!("berth-{}-{tag}.sock", rec.short_id()));
    let result = exec_helper(&rec, &process_path, &socket, &args);
    let _ = std::fs::remove_file(&process_path);
    let _ = std::fs::remove_file(&socket);
    let code = result?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn exec_helper(
    rec: &Record,
    process_path: &Path,
    socket: &Path,
    args: &ExecArgs,
) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__exec")
        .arg(rec.state.pid.to_string())
        .arg(process_path)
        .arg(Path::new(process_path).with_file_name("config.json"));
    if args.privileged {
        cmd.arg("--privileged");
    }
    if !args.interactive || args.tty {
        cmd.stdin(Stdio::null());
    }
    if args.detach {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let listener = if args.tty {
        cmd.arg("--console-socket")
            .arg(socket)
            .stdout(Stdio::null());
        Some(
            std::os::unix::net::UnixListener::bind(socket)
                .context("cannot make a console socket")?,
        )
    } else {
        None
    };
    let mut child = cmd.spawn().context("cannot start the exec helper")?;
    if args.detach {
        return Ok(0);
    }
    berth_runner::linux::forward_signals(child.id() as i32);
    let mut copy = None;
    let mut raw = None;
    if let Some(l) = &listener {
        let master = console::receive(l, Duration::from_secs(30))?;
        if console::is_terminal(1) {
            console::copy_size(1, std::os::fd::AsRawFd::as_raw_fd(&master));
        }
        if args.interactive {
            if console::is_terminal(0) {
                raw = Some(console::RawMode::stdin());
            }
            let w = master.try_clone()?;
            std::thread::spawn(move || {
                let mut w = std::fs::File::from(w);
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut w);
            });
        }
        copy = Some(std::thread::spawn(move || {
            let mut r = std::fs::File::from(master);
            let _ = std::io::copy(&mut r, &mut std::io::stdout().lock());
        }));
    }
    let status = child.wait().context("cannot wait for the exec helper")?;
    if let Some(c) = copy {
        let _ = c.join();
    }
    drop(raw);
    Ok(status.code().unwrap_or(126))
}

/// `berth __exec PID PROCESS SPEC [--console-socket P]`: the helper.
pub fn exec_runtime(
    pid: i32,
    process: &Path,
    spec: &Path,
    privileged: bool,
    console_socket: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let p: oci_spec::runtime::Process = serde_json::from_slice(
        &std::fs::read(process).with_context(|| format!("cannot read {}", process.display()))?,
    )?;
    let spec = oci_spec::runtime::Spec::load(spec)?;
    let seccomp = if privileged {
        None
    } else {
        spec.linux().as_ref().and_then(|l| l.seccomp().clone())
    };
    let code = berth_runner::exec::exec(pid, &p, seccomp.as_ref(), console_socket)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
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

pub fn commit(store: &Store, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let rec = containers(store).find(&args.container)?;
    let image = store.get(&rec.manifest.parse()?)?;
    let tags: Vec<berth_store::ImageRef> = args
        .reference
        .iter()
        .map(|r| r.parse())
        .collect::<Result<_, _>>()?;
    let upper = store.rootfs_changes(&rec.id);
    // The files and folders the runtime made as mount points are not the
    // container's changes (docker keeps them in an init layer of its own).
    let stubs: Vec<&Path> = [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "sys",
        "dev",
    ]
    .iter()
    .map(Path::new)
    .filter(|rel| !image_has(store, &image, rel) && is_stub(&upper.join(rel)))
    .collect();
    let _lease = store.lease()?;
    let layer = berth_store::layer::write_layer_from_dir_except(
        store.blobs(),
        &upper,
        &berth_store::layer::LayerOptions::default(),
        &stubs,
    )?;
    let mut config = image.config.clone();
    let mut cc = config.config.clone().unwrap_or_default();
    if !args.change.is_empty() {
        cc = super::change::apply(&args.change, cc)?;
    }
    config.config = Some(cc);
    let now = berth_runner::log::now();
    config.created = Some(now.clone());
    if let Some(a) = &args.author {
        config.author = Some(a.clone());
    }
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(berth_store::image::History {
        created: Some(now),
        created_by: Some(rec.args.join(" ")),
        author: args.author.clone(),
        comment: args.message.clone(),
        empty_layer: false,
    });
    let mut layers = image.layers.clone();
    layers.push(layer.to_ref());
    let img = store.commit_image(&config, &layers, &tags)?;
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// Whether the image itself has `rel`.
fn image_has(store: &Store, image: &berth_store::StoredImage, rel: &Path) -> bool {
    (0..image.layers.len()).any(|i| {
        store
            .snapshot(image, i)
            .map(|s| s.join(rel).symlink_metadata().is_ok())
            .unwrap_or(false)
    })
}

/// A mount point the runtime made: an empty file or folder the image lacks.
fn is_stub(path: &Path) -> bool {
    match path.symlink_metadata() {
        Ok(m) if m.is_file() => m.len() == 0,
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false),
        _ => false,
    }
}
