//! The helper processes the engine re-executes the `berth` binary as: the
//! runtime (`berth __runtime SPEC`), the exec helper (`berth __exec`) and
//! a container's supervisor (`berth __supervise ID`). A runtime must not
//! fork from a threaded process, so each is a fresh single-threaded one;
//! the binary's hidden commands call these entry points.

use crate::error::{Error, Result};
use crate::{Engine, EngineConfig};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The binary the engine runs in, for re-executing it as a helper (it
/// calls `dispatch` first). `/proc/self/exe` is that very file even after
/// an upgrade replaced it: a long-lived supervisor's healthchecks and
/// restarts go on working, where the path would name a deleted file or a
/// half-written new one.
pub(crate) fn berth_exe() -> Result<PathBuf> {
    let running = Path::new("/proc/self/exe");
    if running.exists() {
        return Ok(running.to_path_buf());
    }
    std::env::current_exe().map_err(|e| Error::Failed(format!("cannot find the berth binary: {e}")))
}

/// `berth __runtime SPEC`: runs the spec, returns the container's exit code.
pub fn runtime(
    spec_path: &str,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
    start_fd: Option<i32>,
) -> Result<i32> {
    let spec = berth_runner::bundle::load_spec(Path::new(spec_path))?;
    let opts = berth_runner::linux::RunOptions {
        pid_file: pid_file.map(Path::to_path_buf),
        console_socket: console_socket.map(Path::to_path_buf),
        start_fd,
    };
    Ok(berth_runner::linux::run_with(&spec, &opts)?)
}

/// `berth __exec PID PROCESS SPEC [--console-socket P]`: joins container
/// process PID and runs PROCESS there; returns its exit code.
pub fn exec(
    pid: i32,
    process: &Path,
    spec: &Path,
    privileged: bool,
    console_socket: Option<&Path>,
) -> Result<i32> {
    let data = std::fs::read(process)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", process.display())))?;
    let p: oci_spec::runtime::Process = serde_json::from_slice(&data)
        .map_err(|e| Error::Failed(format!("invalid process {}: {e}", process.display())))?;
    let spec = oci_spec::runtime::Spec::load(spec)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", spec.display())))?;
    let seccomp = if privileged {
        None
    } else {
        spec.linux().as_ref().and_then(|l| l.seccomp().clone())
    };
    Ok(berth_runner::exec::exec(
        pid,
        &p,
        seccomp.as_ref(),
        console_socket,
    )?)
}

// The hidden commands are read without clap: every container start runs
// two of them, and building a whole command tree first costs more than a
// millisecond each time.

/// `--name value` options and `--flag`s (no value), by name.
type Options = Vec<(String, Option<OsString>)>;

/// Positional arguments and `--name value` options (and the flags named in
/// `flags`), or none when an argument is not one of those.
fn split(args: &[OsString], options: &[&str], flags: &[&str]) -> Option<(Vec<OsString>, Options)> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_str().unwrap_or("");
        if let Some(name) = s.strip_prefix("--") {
            if flags.contains(&name) {
                opts.push((name.to_string(), None));
            } else if options.contains(&name) {
                opts.push((name.to_string(), Some(it.next()?.clone())));
            } else {
                return None;
            }
        } else {
            pos.push(a.clone());
        }
    }
    Some((pos, opts))
}

fn option(opts: &Options, name: &str) -> Option<PathBuf> {
    opts.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
        .map(PathBuf::from)
}

/// Runs a hidden command if `args` (without the program name) is one;
/// none to let the binary read them its own way. Every binary that an
/// engine runs in (the `berth` command, the API service) calls this first,
/// so that the engine may re-execute whichever binary it is in.
pub fn dispatch(args: &[OsString]) -> Option<Result<i32>> {
    let (command, rest) = args.split_first()?;
    match command.to_str()? {
        "__runtime" => {
            let (pos, opts) = split(rest, &["console-socket", "start-fd"], &[])?;
            let spec = pos.first()?.to_str()?.to_string();
            let pid_file = pos.get(1).map(PathBuf::from);
            if pos.len() > 2 {
                return None;
            }
            let start_fd = match option(&opts, "start-fd") {
                Some(v) => Some(v.to_str()?.parse::<i32>().ok()?),
                None => None,
            };
            let console = option(&opts, "console-socket");
            Some(runtime(
                &spec,
                pid_file.as_deref(),
                console.as_deref(),
                start_fd,
            ))
        }
        "__exec" => {
            let (pos, opts) = split(rest, &["console-socket"], &["privileged"])?;
            let [pid, process, spec] = pos.as_slice() else {
                return None;
            };
            let pid = pid.to_str()?.parse::<i32>().ok()?;
            let privileged = opts.iter().any(|(n, _)| n == "privileged");
            let console = option(&opts, "console-socket");
            Some(exec(
                pid,
                &PathBuf::from(process),
                &PathBuf::from(spec),
                privileged,
                console.as_deref(),
            ))
        }
        "__supervise" => {
            let [id] = rest else {
                return None;
            };
            let id = id.to_str()?.to_string();
            let root = std::env::var_os("BERTH_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(Engine::default_root);
            Some(Engine::open(&root, EngineConfig::default()).and_then(|e| e.supervise(&id)))
        }
        _ => None,
    }
}

/// What a front end's `main` does first: when this process was started as
/// one of the engine's helpers, it runs it and says how to exit (errors on
/// stderr, exit code 125, as docker's daemon-side failures).
pub fn run_if_helper() -> Option<std::process::ExitCode> {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    dispatch(&argv).map(|r| match r {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::ExitCode::from(125)
        }
    })
}
