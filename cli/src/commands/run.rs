//! `berth run` and `berth create`: docker's flags become a `ContainerCreate`
//! request, as the docker CLI makes one; the engine creates the container,
//! then runs it attached or detached.

use anyhow::{bail, Context};
use berth_engine::container::{parse_publish, AttachOptions};
use berth_engine::model::{
    ContainerConfig, ContainerCreate, EndpointIpamConfig, EndpointSettings, HealthConfig,
    HostConfig, MountSpec, NetworkingConfig, RestartPolicy, TmpfsOptions,
};
use berth_engine::units::{duration, ram_in_bytes};
use berth_engine::Engine;
use clap::Args;
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
}

/// What `run` and `create` share.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
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
    /// Connect a container to a network (repeatable): default (the bridge
    /// network as root with netavark, else slirp4netns), a network's name, none or host
    #[arg(long = "network", alias = "net")]
    network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
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
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long, default_value = "no")]
    restart: String,
    /// Set meta data on a container
    #[arg(short, long)]
    label: Vec<String>,
    /// Command to run to check health
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long)]
    health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long)]
    health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long)]
    health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    no_healthcheck: bool,
    /// Runtime to use for this container: berth's own, or an OCI runtime
    /// such as runc or crun (a name on PATH or a path)
    #[arg(long, default_value = "berth")]
    runtime: String,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn size_flag(s: &str) -> anyhow::Result<i64> {
    ram_in_bytes(s).map_err(anyhow::Error::msg)
}

/// `-e NAME` takes NAME's value from berth's own environment, as docker does.
pub fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

/// docker's `--mount` (comma-separated key=value), as the docker CLI reads it.
fn mount_flag(spec: &str) -> anyhow::Result<MountSpec> {
    let mut m = MountSpec {
        kind: "volume".into(),
        ..MountSpec::default()
    };
    let mut tmpfs = TmpfsOptions::default();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k.to_ascii_lowercase().as_str() {
            "type" => m.kind = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => {
                m.read_only = match v {
                    "" | "1" | "true" => true,
                    "0" | "false" => false,
                    _ => bail!("invalid value for {k} in --mount {spec:?}: {v}"),
                }
            }
            "tmpfs-size" => tmpfs.size_bytes = size_flag(v)?,
            "tmpfs-mode" => {
                tmpfs.mode = u32::from_str_radix(v, 8)
                    .map_err(|_| anyhow::anyhow!("invalid tmpfs-mode {v:?} in --mount {spec:?}"))?
            }
            "bind-propagation" | "volume-nocopy" | "consistency" => {}
            other => bail!("unexpected key '{other}' in '{field}' (--mount {spec:?})"),
        }
    }
    if !m.target.starts_with('/') {
        bail!("invalid argument {spec:?} for --mount: target is required and must be absolute");
    }
    if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
        bail!(
            "invalid mount type {:?} in --mount {spec:?}: use bind, volume or tmpfs",
            m.kind
        );
    }
    if m.kind == "tmpfs" {
        m.tmpfs_options = Some(tmpfs);
    }
    Ok(m)
}

/// docker's `--restart`: `NAME[:MAX_RETRIES]`.
fn restart_policy(s: &str) -> anyhow::Result<RestartPolicy> {
    let parts: Vec<&str> = s.split(':').collect();
    let (name, count) = match parts.as_slice() {
        [n] => (*n, 0),
        [n, c] => (
            *n,
            c.parse::<i64>()
                .map_err(|_| anyhow::anyhow!("maximum retry count must be an integer"))?,
        ),
        _ => bail!("invalid restart policy format"),
    };
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count: count,
    })
}

impl CreateArgs {
    /// The `--health-*` flags, as docker's CLI sends them.
    fn healthcheck(&self) -> anyhow::Result<Option<HealthConfig>> {
        let ns = |v: &Option<String>, flag: &str| -> anyhow::Result<i64> {
            match v {
                None => Ok(0),
                Some(s) => {
                    let n = duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
                    if n < 0 {
                        bail!("--{flag} cannot be negative");
                    }
                    Ok(n)
                }
            }
        };
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..HealthConfig::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        if self.health_retries.is_some_and(|r| r < 0) {
            bail!("--health-retries cannot be negative");
        }
        Ok(Some(HealthConfig {
            test: self
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval: ns(&self.health_interval, "health-interval")?,
            timeout: ns(&self.health_timeout, "health-timeout")?,
            start_period: ns(&self.health_start_period, "health-start-period")?,
            retries: self.health_retries.unwrap_or(0),
            ..HealthConfig::default()
        }))
    }

    /// The request the flags make, as the docker CLI builds it.
    fn request(&self, attach: bool) -> anyhow::Result<ContainerCreate> {
        let mut env = Vec::new();
        for f in &self.env_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("cannot read env file {f}"))?;
            env.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .filter_map(env_entry),
            );
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));
        let nano_cpus = match self.cpus {
            None => 0,
            Some(c) if c.is_nan() || c <= 0.0 => bail!("invalid --cpus {c}: must be above 0"),
            Some(c) => (c * 1e9) as i64,
        };
        let config = ContainerConfig {
            hostname: self.hostname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin: attach && self.interactive,
            attach_stdout: attach,
            attach_stderr: attach,
            tty: self.tty,
            open_stdin: self.interactive,
            stdin_once: attach && self.interactive,
            env: Some(env),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            image: self.image.clone(),
            working_dir: self.workdir.clone().unwrap_or_default(),
            // `--entrypoint ""` resets the image's, as docker's [""] does.
            entrypoint: self.entrypoint.as_ref().map(|e| vec![e.clone()]),
            stop_signal: self.stop_signal.clone(),
            healthcheck: self.healthcheck()?,
            labels: Some(
                self.label
                    .iter()
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or((l, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
            ),
            ..ContainerConfig::default()
        };
        if self.rm && !matches!(self.restart.as_str(), "" | "no") {
            bail!("Conflicting options: --restart and --rm");
        }
        let mode = self
            .network
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into());
        let mut endpoints = std::collections::BTreeMap::new();
        // docker's CLI: aliases and --ip go with the first network.
        if !self.network_alias.is_empty() || self.ip.is_some() || self.network.len() > 1 {
            for (i, n) in self.network.iter().enumerate() {
                let mut e = EndpointSettings::default();
                if i == 0 {
                    e.aliases = Some(self.network_alias.clone()).filter(|a| !a.is_empty());
                    e.ipam_config = self.ip.clone().map(|ip| EndpointIpamConfig {
                        ipv4_address: ip,
                        ..Default::default()
                    });
                }
                endpoints.insert(n.clone(), e);
            }
            if self.network.is_empty() {
                let e = EndpointSettings {
                    aliases: Some(self.network_alias.clone()).filter(|a| !a.is_empty()),
                    ipam_config: self.ip.clone().map(|ip| EndpointIpamConfig {
                        ipv4_address: ip,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                endpoints.insert("bridge".to_string(), e);
            }
        }
        for h in &self.add_host {
            if !h.contains(':') && !h.contains('=') {
                bail!("invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\"");
            }
        }
        let config = ContainerConfig {
            mac_address: self.mac_address.clone().unwrap_or_default(),
            ..config
        };
        let host_config = HostConfig {
            binds: Some(self.volume.clone()),
            network_mode: mode,
            dns: Some(self.dns.clone()).filter(|v| !v.is_empty()),
            dns_search: Some(self.dns_search.clone()).filter(|v| !v.is_empty()),
            dns_options: Some(self.dns_option.clone()).filter(|v| !v.is_empty()),
            extra_hosts: Some(self.add_host.clone()).filter(|v| !v.is_empty()),
            port_bindings: parse_publish(&self.publish)?,
            auto_remove: self.rm,
            mounts: self
                .mount
                .iter()
                .map(|m| mount_flag(m))
                .collect::<anyhow::Result<_>>()?,
            privileged: self.privileged,
            readonly_rootfs: self.read_only,
            runtime: self.runtime.clone(),
            memory: self
                .memory
                .as_deref()
                .map(size_flag)
                .transpose()?
                .unwrap_or(0),
            nano_cpus,
            pids_limit: self.pids_limit,
            restart_policy: restart_policy(&self.restart)?,
            ..HostConfig::default()
        };
        Ok(ContainerCreate {
            config,
            host_config,
            networking_config: NetworkingConfig {
                endpoints_config: endpoints,
            },
        })
    }
}

/// Creates the container; its ID.
fn create_container(engine: &Engine, args: &CreateArgs, attach: bool) -> anyhow::Result<String> {
    let req = args.request(attach)?;
    let created = engine.container_create(args.name.as_deref(), req)?;
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(created.id)
}

/// `berth create`: prints the new container's ID, starts nothing.
pub fn create(engine: &Engine, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let id = create_container(engine, &args, false)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

pub fn run(engine: &Engine, args: RunArgs) -> anyhow::Result<ExitCode> {
    let c = &args.create;
    if c.tty && c.interactive && !args.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let id = create_container(engine, c, !args.detach)?;
    if args.detach {
        engine.container_start_created(&id)?;
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let opts = AttachOptions {
        stdin: c.interactive,
        detach_keys: args.detach_keys.clone(),
        proxy_signals: args.sig_proxy,
    };
    Ok(super::container::attach_exit(
        engine.container_run_attached(&id, &opts)?,
    ))
}
