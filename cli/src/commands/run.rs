//! `berth run`: an image's root filesystem, docker's defaults and the
//! caller's flags become an OCI runtime spec, run by berth's runtime in a
//! single-threaded helper process (`berth __runtime SPEC`), supervised in
//! this process or, with `-d`, by a supervisor of its own (`container.rs`).

use super::container;
use anyhow::{bail, Context};
use berth_runner::container::{PublishedPort, Record};
use berth_runner::{bundle, console, docker_spec, user, Bundle, Network, RunConfig};
use berth_store::Store;
use clap::Args;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open: the container reads berth's standard input
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Connect a container to a network: private (default), none or host
    #[arg(long, default_value = "private")]
    network: String,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Bind mount a host path: HOST_PATH:CONTAINER_PATH[:ro|rw]
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long)]
    stop_signal: Option<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,tmpfs-size=N][,tmpfs-mode=M]
    #[arg(long)]
    mount: Vec<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long)]
    memory: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Publish a container's port to the host: [IP:]HOST_PORT:CONTAINER_PORT
    #[arg(short, long = "publish")]
    publish: Vec<String>,
    /// Runtime to use for this container: berth's own, or an OCI runtime
    /// such as runc or crun (a name on PATH or a path)
    #[arg(long, default_value = "berth")]
    runtime: String,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// docker's `RAMInBytes`: a number with an optional b, k, m, g or t
/// (binary units), optionally followed by `b`.
fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix('b')
        .filter(|t| !t.is_empty() && !t.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&lower);
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => bail!("invalid size: {s:?}"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: {s:?}"))?;
    Ok((n * mult) as i64)
}

fn limits(args: &RunArgs) -> anyhow::Result<berth_runner::Limits> {
    let memory = args.memory.as_deref().map(ram_in_bytes).transpose()?;
    if let Some(m) = memory {
        if m < 6 * 1024 * 1024 {
            bail!("Minimum memory limit allowed is 6MB");
        }
    }
    let cpu = match args.cpus {
        None => None,
        Some(c) if c.is_nan() || c <= 0.0 => bail!("invalid --cpus {c}: must be above 0"),
        Some(c) => {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            if c > cores as f64 {
                bail!("range of CPUs is from 0.01 to {cores}.00, as there are only {cores} CPUs available");
            }
            Some(((c * 100_000.0) as i64, 100_000))
        }
    };
    Ok(berth_runner::Limits {
        memory,
        pids: args.pids_limit.filter(|p| *p > 0),
        cpu,
    })
}

fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

/// `-e NAME` takes NAME's value from berth's own environment, as docker does.
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

/// `-v /host:/ctr[:ro|rw]`: a bind mount of a host path.
/// `-v HOST_PATH:CTR[:ro|rw]` or `-v NAME:CTR[:ro|rw]` (a named volume,
/// made on first use and seeded with what the image has at CTR).
fn bind_mount(store: &Store, rootfs: &Path, v: &str) -> anyhow::Result<oci_spec::runtime::Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => bail!("invalid volume specification: {v:?} (use HOST_PATH:CONTAINER_PATH[:ro|rw])"),
    };
    if !ctr.starts_with('/') {
        bail!("invalid volume specification: {v:?}: the container path must be absolute");
    }
    let readonly = match mode {
        "ro" => true,
        "rw" => false,
        other => bail!("invalid mode {other:?} in volume {v:?}: use ro or rw"),
    };
    if !host.starts_with('/') {
        let (vol, _) = store.volume_create(host)?;
        if store.volume_claim_seed(host)? && berth_store::volume::is_empty(&vol.mountpoint) {
            seed_volume(rootfs, ctr, &vol.mountpoint)?;
        }
        return Ok(bundle::bind(&vol.mountpoint, ctr, readonly)?);
    }
    let source = std::fs::canonicalize(host).with_context(|| {
        format!("invalid mount config: bind source path does not exist: {host}")
    })?;
    Ok(bundle::bind(&source, ctr, readonly)?)
}

/// docker's `--mount` (comma-separated key=value): a bind mount of a host
/// path, a named volume (seeded from the image on first use, as `-v`) or a
/// tmpfs.
fn mount_flag(
    store: &Store,
    rootfs: &Path,
    spec: &str,
) -> anyhow::Result<oci_spec::runtime::Mount> {
    let mut kind = "volume".to_string();
    let (mut source, mut target, mut readonly) = (None, None, false);
    let (mut size, mut mode) = (None, None);
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k.to_ascii_lowercase().as_str() {
            "type" => kind = v.to_string(),
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => {
                readonly = match v {
                    "" | "1" | "true" => true,
                    "0" | "false" => false,
                    _ => bail!("invalid value for {k} in --mount {spec:?}: {v}"),
                }
            }
            "tmpfs-size" => size = Some(ram_in_bytes(v)?),
            "tmpfs-mode" => {
                mode =
                    Some(u32::from_str_radix(v, 8).map_err(|_| {
                        anyhow::anyhow!("invalid tmpfs-mode {v:?} in --mount {spec:?}")
                    })?)
            }
            "bind-propagation" | "volume-nocopy" | "consistency" => {}
            other => bail!("unexpected key '{other}' in '{field}' (--mount {spec:?})"),
        }
    }
    let Some(target) = target.filter(|t| t.starts_with('/')) else {
        bail!("invalid argument {spec:?} for --mount: target is required and must be absolute");
    };
    match kind.as_str() {
        "bind" => {
            let Some(src) = source else {
                bail!("invalid argument {spec:?} for --mount: source is required for a bind mount");
            };
            let path = std::fs::canonicalize(&src)
                .with_context(|| format!("invalid mount config for type \"bind\": bind source path does not exist: {src}"))?;
            Ok(bundle::bind(&path, &target, readonly)?)
        }
        "volume" => {
            let name = match source {
                Some(n) if !n.is_empty() => n,
                _ => random_id()?,
            };
            if name.starts_with('/') {
                bail!("invalid mount config for type \"volume\": source must be a volume name, not a path: {name}");
            }
            let mode = if readonly { "ro" } else { "rw" };
            bind_mount(store, rootfs, &format!("{name}:{target}:{mode}"))
        }
        "tmpfs" => {
            let mut m = bundle::tmpfs(&target, size.map(|s| s as u64))?;
            let mut options = m.options().clone().unwrap_or_default();
            options.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
            if readonly {
                options.push("ro".into());
            }
            m.set_options(Some(options));
            Ok(m)
        }
        other => {
            bail!("invalid mount type {other:?} in --mount {spec:?}: use bind, volume or tmpfs")
        }
    }
}

/// Copies what the image has at `ctr` into a new volume, as docker does. The
/// path is resolved inside the root filesystem: an image's symlink cannot
/// point the copy at the host.
fn seed_volume(rootfs: &Path, ctr: &str, dest: &Path) -> anyhow::Result<()> {
    let root = rootfs.canonicalize()?;
    let Ok(src) = root.join(ctr.trim_start_matches('/')).canonicalize() else {
        return Ok(());
    };
    if !src.starts_with(&root) || !src.is_dir() {
        return Ok(());
    }
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .output()
        .context("cannot run cp to seed the volume")?;
    if !out.status.success() {
        bail!(
            "cannot copy {ctr} of the image into the volume: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn run(store: &Store, args: RunArgs) -> anyhow::Result<ExitCode> {
    let image = store.resolve(&args.image)?;
    let network = match args.network.as_str() {
        "private" | "default" | "bridge" => Network::Private,
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!("network {other} not found: use private, none or host"),
    };
    let mut ports = args
        .publish
        .iter()
        .map(|p| berth_runner::ports::PortMapping::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    match network {
        Network::Host if !ports.is_empty() => {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
            ports.clear();
        }
        Network::None => ports.clear(),
        _ => {}
    }
    if args.tty && args.runtime != "berth" {
        bail!(
            "-t needs berth's own runtime (--runtime {} is given)",
            args.runtime
        );
    }
    if args.tty && args.interactive && !args.detach && !console::is_terminal(0) {
        bail!("the input device is not a TTY");
    }
    if let Some(sig) = &args.stop_signal {
        container::signal_of(sig)?;
    }
    let containers = container::containers(store);
    let id = random_id()?;
    let name = match &args.name {
        Some(n) => {
            let n = n.strip_prefix('/').unwrap_or(n);
            if !berth_runner::container::valid_name(n) {
                bail!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
            }
            if let Some(other) = containers.named(n)? {
                bail!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                );
            }
            n.to_string()
        }
        None => berth_runner::container::generate_name(id.as_bytes(), |n| {
            containers.named(n).ok().flatten().is_some()
        }),
    };
    let short = id[..12].to_string();
    let config = image.config.config.clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    let cmd = if !args.command.is_empty() {
        args.command.clone()
    } else if args.entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd.clone().unwrap_or_default()
    };
    let argv: Vec<String> = entrypoint.iter().cloned().chain(cmd.clone()).collect();
    if argv.is_empty() {
        bail!("no command specified");
    }

    store.hold(&id, &image.manifest_digest)?;
    let created = (|| -> anyhow::Result<()> {
        let mount = store.container_rootfs(&image, &id, !args.rm)?;
        let bundle = Bundle::create(&containers.dir(&id))?.keep();
        let hostname = args.hostname.clone().unwrap_or_else(|| short.clone());
        let user_name = args
            .user
            .as_deref()
            .or(config.user.as_deref())
            .unwrap_or("")
            .to_string();
        let u = user::resolve(&mount.merged, &user_name)?;
        let mut env = config.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }
        set_env(&mut env, &format!("HOSTNAME={hostname}"));
        if args.tty {
            set_env(&mut env, "TERM=xterm");
        }
        for f in &args.env_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("cannot read env file {f}"))?;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                if let Some(e) = env_entry(line) {
                    set_env(&mut env, &e);
                }
            }
        }
        for e in &args.env {
            if let Some(e) = env_entry(e) {
                set_env(&mut env, &e);
            }
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", u.home));
        }
        let cwd = args
            .workdir
            .clone()
            .or(config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let cfg = RunConfig {
            rootfs: mount.merged.clone(),
            args: argv.clone(),
            env: env.clone(),
            cwd: cwd.clone(),
            uid: u.uid,
            gid: u.gid,
            additional_gids: u.additional_gids,
            hostname: hostname.clone(),
            network,
            readonly_rootfs: args.read_only,
            privileged: args.privileged,
            limits: limits(&args)?,
        };
        let mut spec = docker_spec(&cfg)?;
        if let Some(p) = spec.process_mut() {
            p.set_terminal(Some(args.tty));
            if args.tty {
                p.set_console_size(container::terminal_size()?);
            }
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.extend(bundle.etc_files(&hostname, network)?);
        for v in &args.volume {
            mounts.push(bind_mount(store, &mount.merged, v)?);
        }
        for m in &args.mount {
            mounts.push(mount_flag(store, &mount.merged, m)?);
        }
        spec.set_mounts(Some(mounts));
        bundle.save(&spec)?;
        let rec = Record {
            id: id.clone(),
            name: name.clone(),
            image: args.image.clone(),
            image_id: image.id.to_string(),
            manifest: image.manifest_digest.to_string(),
            created: berth_runner::log::now(),
            args: argv.clone(),
            hostname,
            env,
            working_dir: cwd,
            user: user_name,
            entrypoint: entrypoint.clone(),
            cmd: cmd.clone(),
            labels: config
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ports: ports
                .iter()
                .map(|p| PublishedPort {
                    host_ip: p.host.ip().to_string(),
                    host_port: p.host.port(),
                    container_port: p.container,
                    proto: p.proto.name().into(),
                })
                .collect(),
            network: args.network.clone(),
            runtime: args.runtime.clone(),
            auto_remove: args.rm,
            tty: args.tty,
            binds: args.volume.clone(),
            stop_signal: args.stop_signal.clone().or(config.stop_signal.clone()),
            state: Default::default(),
        };
        containers.save(&rec)?;
        Ok(())
    })();
    if let Err(e) = created {
        let _ = container::remove(store, &containers, &id);
        return Err(e);
    }
    if network == Network::Private && !berth_runner::supervisor::slirp_available() {
        eprintln!("berth: slirp4netns is not installed (or cannot open /dev/net/tun): the container has a loopback network only");
    }
    if args.detach {
        container::start_detached(store, &containers, &id)?;
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let code = container::supervised_run(store, &containers, &id, true, args.interactive)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The helper: runs the spec, exits with the container's code.
pub fn runtime(
    spec_path: &str,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
    start_fd: Option<i32>,
) -> anyhow::Result<ExitCode> {
    let mut spec = oci_spec::runtime::Spec::load(spec_path)
        .with_context(|| format!("cannot read {spec_path}"))?;
    // As the OCI spec says: a relative root is relative to the bundle.
    if let Some(mut root) = spec.root().clone() {
        if root.path().is_relative() {
            let bundle = Path::new(spec_path).parent().unwrap_or(Path::new("."));
            root.set_path(bundle.join(root.path()));
            spec.set_root(Some(root));
        }
    }
    let opts = berth_runner::linux::RunOptions {
        pid_file: pid_file.map(Path::to_path_buf),
        console_socket: console_socket.map(Path::to_path_buf),
        start_fd,
    };
    let code = berth_runner::linux::run_with(&spec, &opts)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
