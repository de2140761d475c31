//! The hidden commands the engine re-executes the binary as (`__runtime`,
//! `__exec`, `__supervise`), read without clap: every container start runs
//! two of them, and building clap's whole command tree first costs more
//! than a millisecond each time.

use berth_engine::{Engine, EngineConfig};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

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

/// Runs a hidden command if `args` (without the program name) is one,
/// as clap would have read it; none to let clap read them.
pub fn run(args: &[OsString]) -> Option<anyhow::Result<ExitCode>> {
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
            Some(
                berth_engine::helper::runtime(
                    &spec,
                    pid_file.as_deref(),
                    console.as_deref(),
                    start_fd,
                )
                .map(exit)
                .map_err(Into::into),
            )
        }
        "__exec" => {
            let (pos, opts) = split(rest, &["console-socket"], &["privileged"])?;
            let [pid, process, spec] = pos.as_slice() else {
                return None;
            };
            let pid = pid.to_str()?.parse::<i32>().ok()?;
            let privileged = opts.iter().any(|(n, _)| n == "privileged");
            let console = option(&opts, "console-socket");
            Some(
                berth_engine::helper::exec(
                    pid,
                    &PathBuf::from(process),
                    &PathBuf::from(spec),
                    privileged,
                    console.as_deref(),
                )
                .map(exit)
                .map_err(Into::into),
            )
        }
        "__supervise" => {
            let [id] = rest else {
                return None;
            };
            let id = id.to_str()?.to_string();
            let root = std::env::var_os("BERTH_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(Engine::default_root);
            Some((|| {
                let engine = Engine::open(&root, EngineConfig::default())?;
                Ok(exit(engine.supervise(&id)?))
            })())
        }
        _ => None,
    }
}
