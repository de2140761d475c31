//! The OCI runtime spec of a container, with docker's defaults: its
//! capability set, masked and read-only paths, and the usual mounts.

use crate::error::{Error, Result};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use std::collections::HashSet;
use std::path::PathBuf;

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace (loopback only until outbound access lands).
    Private,
    /// Its own namespace with loopback only.
    None,
    /// The host's network.
    Host,
}

/// What to run, and as whom.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub network: Network,
    pub readonly_rootfs: bool,
    /// Lift docker's hardening (all capabilities, no masked paths).
    pub privileged: bool,
    /// `--memory`, `--pids-limit`, `--cpus`.
    pub limits: crate::cgroup::Limits,
    /// The container's own cgroup, `berth/<name>` in every hierarchy (a
    /// container's ID); none for a RUN step, whose limits alone make one.
    pub cgroup: Option<String>,
}

/// The capabilities docker grants a container.
pub const DOCKER_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths docker hides from containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths docker makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn all_capabilities() -> Vec<Capability> {
    use Capability::*;
    vec![
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setfcap,
        Setgid,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(kind)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}

fn namespace(kind: LinuxNamespaceType) -> Result<LinuxNamespace> {
    LinuxNamespaceBuilder::default()
        .typ(kind)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}

fn resources(l: &crate::cgroup::Limits) -> Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };
    let err = |e: oci_spec::OciSpecError| Error::Spec(e.to_string());
    let mut r = LinuxResourcesBuilder::default();
    if let Some(m) = l.memory {
        // swap is memory plus swap: equal means no swap, so a process over
        // the limit is OOM-killed rather than swapped out.
        r = r.memory(
            LinuxMemoryBuilder::default()
                .limit(m)
                .swap(m)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(p) = l.pids {
        r = r.pids(LinuxPidsBuilder::default().limit(p).build().map_err(err)?);
    }
    if let Some((quota, period)) = l.cpu {
        r = r.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(period)
                .build()
                .map_err(err)?,
        );
    }
    r.build().map_err(err)
}

/// Builds the spec docker would give this container.
pub fn docker_spec(cfg: &RunConfig) -> Result<Spec> {
    if cfg.args.is_empty() {
        return Err(Error::Spec("no command specified".into()));
    }
    let caps: HashSet<Capability> = if cfg.privileged {
        all_capabilities().into_iter().collect()
    } else {
        DOCKER_CAPABILITIES.iter().copied().collect()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| Error::Spec(e.to_string()))?;
    let user = UserBuilder::default()
        .uid(cfg.uid)
        .gid(cfg.gid)
        .additional_gids(cfg.additional_gids.clone())
        .build()
        .map_err(|e| Error::Spec(e.to_string()))?;
    let process = ProcessBuilder::default()
        .args(cfg.args.clone())
        .env(cfg.env.clone())
        .cwd(cfg.cwd.clone())
        .user(user)
        .capabilities(capabilities)
        // docker's default: setuid programs keep working in the container.
        .no_new_privileges(false)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // sysfs shows the network namespace it is mounted in: only a container
    // with its own network namespace may mount it.
    if cfg.network != Network::Host {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        mounts.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    }
    // Without root: a user namespace where the caller is root (uid and gid
    // mapped to 0), as rootless podman without subordinate ids.
    let rootless = !nix::unistd::geteuid().is_root();
    let mut namespaces = Vec::new();
    if rootless {
        namespaces.push(namespace(LinuxNamespaceType::User)?);
    }
    namespaces.extend([
        namespace(LinuxNamespaceType::Mount)?,
        namespace(LinuxNamespaceType::Pid)?,
        namespace(LinuxNamespaceType::Uts)?,
        namespace(LinuxNamespaceType::Ipc)?,
    ]);
    if cfg.network != Network::Host {
        namespaces.push(namespace(LinuxNamespaceType::Network)?);
    }
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    if rootless {
        let map = |inside: u32, host: u32, size: u32| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(inside)
                .host_id(host)
                .size(size)
                .build()
                .map_err(|e| Error::Spec(e.to_string()))
        };
        // The caller is root inside; subordinate ranges, when the system
        // gives the caller some, are ids 1 and up.
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let mut uids = vec![map(0, uid, 1)?];
        let mut gids = vec![map(0, gid, 1)?];
        if let Some(((us, uc), (gs, gc))) = crate::subid::for_caller() {
            uids.push(map(1, us, uc)?);
            gids.push(map(1, gs, gc)?);
        }
        linux = linux.uid_mappings(uids).gid_mappings(gids);
        // gid 5 (tty) has no mapping: devpts takes the container's root group.
        for m in mounts.iter_mut() {
            if m.typ().as_deref() == Some("devpts") {
                let opts = m.options().clone().unwrap_or_default();
                m.set_options(Some(opts.into_iter().filter(|o| o != "gid=5").collect()));
            }
        }
    }
    if !cfg.privileged {
        linux = linux
            .seccomp(crate::seccomp::docker_default()?)
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            );
    }
    if !cfg.limits.is_empty() {
        linux = linux
            .resources(resources(&cfg.limits)?)
            .cgroups_path(PathBuf::from(format!("/berth/{}", cfg.hostname)));
    }
    if let Some(name) = &cfg.cgroup {
        linux = linux.cgroups_path(PathBuf::from(format!("/berth/{name}")));
    }
    let linux = linux.build().map_err(|e| Error::Spec(e.to_string()))?;
    let root = RootBuilder::default()
        .path(cfg.rootfs.clone())
        .readonly(cfg.readonly_rootfs)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .hostname(cfg.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(|e| Error::Spec(e.to_string()))
}
