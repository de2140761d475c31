//! docker's default seccomp policy, as an OCI `linux.seccomp` section (so
//! runc applies the same one) and compiled to BPF for berth's runtime.
//!
//! docker's profile is an allowlist; what matters of it is what it refuses,
//! and that is what this one lists (docker's table of "significant syscalls
//! blocked by the default profile", plus io_uring as docker 25 blocks it):
//! everything else is allowed, the listed calls fail with EPERM, `clone`
//! fails when asked for new namespaces, and `clone3` reports ENOSYS so that
//! libcs fall back to `clone`, whose flags a filter can see.

use crate::error::{Error, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Refused with EPERM.
const BLOCKED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_mount",
    "fsopen",
    "fsmount",
    "fsconfig",
    "open_tree",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The namespace flags `clone` may not be given.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn spec_err(e: impl std::fmt::Display) -> Error {
    Error::Spec(format!("seccomp: {e}"))
}

/// docker's default policy as an OCI spec section.
pub fn docker_default() -> Result<LinuxSeccomp> {
    let eperm = libc::EPERM as u32;
    let mut syscalls = vec![LinuxSyscallBuilder::default()
        .names(BLOCKED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(eperm)
        .build()
        .map_err(spec_err)?];
    for flag in NAMESPACE_FLAGS {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(eperm)
                .args(vec![LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(*flag)
                    .value_two(*flag)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()
                    .map_err(spec_err)?])
                .build()
                .map_err(spec_err)?,
        );
    }
    syscalls.push(
        LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::ENOSYS as u32)
            .build()
            .map_err(spec_err)?,
    );
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![Arch::ScmpArchX86_64, Arch::ScmpArchAarch64])
        .syscalls(syscalls)
        .build()
        .map_err(spec_err)
}

/// The number of syscall `name` on this architecture; `None` where it does
/// not exist here (libseccomp skips those too), and for the calls removed
/// from the kernel long ago (`create_module`, ...), which fail anyway.
fn number(name: &str) -> Option<i64> {
    use libc::*;
    let n = match name {
        "acct" => SYS_acct,
        "add_key" => SYS_add_key,
        "bpf" => SYS_bpf,
        "clock_adjtime" => SYS_clock_adjtime,
        "clock_settime" => SYS_clock_settime,
        "clone" => SYS_clone,
        "clone3" => SYS_clone3,
        "delete_module" => SYS_delete_module,
        "finit_module" => SYS_finit_module,
        "get_mempolicy" => SYS_get_mempolicy,
        "init_module" => SYS_init_module,
        "io_uring_enter" => SYS_io_uring_enter,
        "io_uring_register" => SYS_io_uring_register,
        "io_uring_setup" => SYS_io_uring_setup,
        "kcmp" => SYS_kcmp,
        "kexec_file_load" => SYS_kexec_file_load,
        "kexec_load" => SYS_kexec_load,
        "keyctl" => SYS_keyctl,
        "lookup_dcookie" => SYS_lookup_dcookie,
        "mbind" => SYS_mbind,
        "mount" => SYS_mount,
        "move_mount" => SYS_move_mount,
        "fsopen" => SYS_fsopen,
        "fsmount" => SYS_fsmount,
        "fsconfig" => SYS_fsconfig,
        "open_tree" => SYS_open_tree,
        "move_pages" => SYS_move_pages,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "nfsservctl" => SYS_nfsservctl,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "perf_event_open" => SYS_perf_event_open,
        "pivot_root" => SYS_pivot_root,
        "process_vm_readv" => SYS_process_vm_readv,
        "process_vm_writev" => SYS_process_vm_writev,
        "quotactl" => SYS_quotactl,
        "reboot" => SYS_reboot,
        "request_key" => SYS_request_key,
        "set_mempolicy" => SYS_set_mempolicy,
        "setns" => SYS_setns,
        "settimeofday" => SYS_settimeofday,
        "swapoff" => SYS_swapoff,
        "swapon" => SYS_swapon,
        "umount2" => SYS_umount2,
        "unshare" => SYS_unshare,
        "userfaultfd" => SYS_userfaultfd,
        #[cfg(target_arch = "x86_64")]
        "ioperm" => SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        "iopl" => SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        "sysfs" => SYS_sysfs,
        #[cfg(target_arch = "x86_64")]
        "_sysctl" => SYS__sysctl,
        #[cfg(target_arch = "x86_64")]
        "uselib" => SYS_uselib,
        #[cfg(target_arch = "x86_64")]
        "ustat" => SYS_ustat,
        _ => return None,
    };
    Some(n)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        other => return Err(spec_err(format!("unsupported action {other:?}"))),
    })
}

/// Compiles a spec's seccomp section for this architecture. One filter
/// holds one action for its matches, so each distinct action of the
/// section becomes a filter of its own; the kernel applies the strictest.
pub fn compile(s: &LinuxSeccomp) -> Result<Vec<BpfProgram>> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(spec_err)?;
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut by_action: BTreeMap<String, (SeccompAction, BTreeMap<i64, Vec<SeccompRule>>)> =
        BTreeMap::new();
    for sc in s.syscalls().clone().unwrap_or_default() {
        let act = action(sc.action(), sc.errno_ret())?;
        let mut conditions = Vec::new();
        for a in sc.args().clone().unwrap_or_default() {
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpEq => SeccompCmpOp::Eq,
                LinuxSeccompOperator::ScmpCmpNe => SeccompCmpOp::Ne,
                LinuxSeccompOperator::ScmpCmpLt => SeccompCmpOp::Lt,
                LinuxSeccompOperator::ScmpCmpLe => SeccompCmpOp::Le,
                LinuxSeccompOperator::ScmpCmpGt => SeccompCmpOp::Gt,
                LinuxSeccompOperator::ScmpCmpGe => SeccompCmpOp::Ge,
                LinuxSeccompOperator::ScmpCmpMaskedEq => SeccompCmpOp::MaskedEq(a.value()),
            };
            let value = match a.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
                _ => a.value(),
            };
            conditions.push(
                SeccompCondition::new(a.index() as u8, SeccompCmpArgLen::Qword, op, value)
                    .map_err(spec_err)?,
            );
        }
        let entry = by_action
            .entry(format!("{act:?}"))
            .or_insert_with(|| (act.clone(), BTreeMap::new()));
        for name in sc.names() {
            let Some(nr) = number(name) else { continue };
            let rules = entry.1.entry(nr).or_default();
            if !conditions.is_empty() {
                rules.push(SeccompRule::new(conditions.clone()).map_err(spec_err)?);
            }
        }
    }
    let mut out = Vec::new();
    for (_, (act, rules)) in by_action {
        if rules.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(rules, default.clone(), act, arch).map_err(spec_err)?;
        out.push(BpfProgram::try_from(filter).map_err(spec_err)?);
    }
    // With an allowing default, the filters run one after the other as one
    // program: a container has one filter, as runc installs it.
    if default == SeccompAction::Allow && out.len() > 1 {
        return Ok(vec![chain(out)?]);
    }
    Ok(out)
}

/// One program that runs `programs` in turn: every "allow" of all but the
/// last becomes a jump to the start of the next one, so the first refusal
/// wins, as with separate filters whose refusals never overlap.
fn chain(programs: Vec<BpfProgram>) -> Result<BpfProgram> {
    const BPF_RET_K: u16 = 0x06;
    const BPF_JMP_JA: u16 = 0x05;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let last = programs.len().saturating_sub(1);
    let mut out: BpfProgram = Vec::new();
    for (n, mut p) in programs.into_iter().enumerate() {
        if n < last {
            let len = p.len();
            for (i, ins) in p.iter_mut().enumerate() {
                if ins.code == BPF_RET_K && ins.k == RET_ALLOW {
                    ins.code = BPF_JMP_JA;
                    ins.jt = 0;
                    ins.jf = 0;
                    ins.k = u32::try_from(len - i - 1).unwrap_or(0);
                }
            }
        }
        out.extend(p);
    }
    if out.len() > 4096 {
        return Err(Error::Setup(
            "seccomp: the policy is longer than a BPF program may be".into(),
        ));
    }
    Ok(out)
}

/// Installs compiled filters on this thread (no_new_privs must be set, or
/// CAP_SYS_ADMIN held). Through seccomp(2) itself: seccompiler's
/// `apply_filter` would also set no_new_privs, which docker leaves off.
pub fn apply(programs: &[BpfProgram]) -> Result<()> {
    for p in programs {
        let len = u16::try_from(p.len())
            .map_err(|_| Error::Setup("seccomp: the filter is too long".into()))?;
        let prog = libc::sock_fprog {
            len,
            // seccompiler's sock_filter has the kernel's layout, as libc's.
            filter: p.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `p`, which outlives the call; the kernel
        // copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(Error::Setup(format!(
                "seccomp: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}
