//! `--change` instructions of `berth import` (CMD, ENV, ...), read with the
//! Dockerfile grammar and applied to a container config.

use crate::error::{fail, Error, Result};
use berth_grammar::{Command, CommandLine, Word};
use berth_store::image::ContainerConfig;

fn words(w: &[Word]) -> Vec<String> {
    w.iter().map(|w| w.value.clone()).collect()
}

fn command(c: &CommandLine) -> Vec<String> {
    match c {
        CommandLine::Exec { args } => words(args),
        CommandLine::Shell { command } => {
            vec!["/bin/sh".into(), "-c".into(), command.value.clone()]
        }
    }
}

/// Removes one level of quotes, as docker does for ENV/LABEL values.
fn unquote(s: &str) -> String {
    let lex = berth_grammar::shell::ShellLex::new('\\');
    let none: Vec<(String, String)> = Vec::new();
    lex.process_word(s, &none).unwrap_or_else(|_| s.to_string())
}

pub(crate) fn apply(changes: &[String], mut config: ContainerConfig) -> Result<ContainerConfig> {
    for change in changes {
        let parsed = berth_grammar::parse(&format!("{change}\n"))
            .map_err(|e| Error::Invalid(format!("invalid --change {change:?}: {e}")))?;
        for ins in parsed.instructions {
            match ins.command {
                Command::Cmd { command: c } => config.cmd = Some(command(&c)),
                Command::Entrypoint { command: c } => config.entrypoint = Some(command(&c)),
                Command::Env { pairs } => {
                    let env = config.env.get_or_insert_with(Vec::new);
                    for kv in pairs {
                        let key = kv.key.value.clone();
                        env.retain(|e| e.split('=').next() != Some(key.as_str()));
                        env.push(format!("{key}={}", unquote(&kv.value.value)));
                    }
                }
                Command::Label { pairs } => {
                    let labels = config.labels.get_or_insert_with(Default::default);
                    for kv in pairs {
                        labels.insert(unquote(&kv.key.value), unquote(&kv.value.value));
                    }
                }
                Command::Expose { ports } => {
                    let map = config.exposed_ports.get_or_insert_with(Default::default);
                    for p in ports {
                        let p = if p.value.contains('/') { p.value.clone() } else { format!("{}/tcp", p.value) };
                        map.insert(p, serde_json::json!({}));
                    }
                }
                Command::Volume { paths } => {
                    let map = config.volumes.get_or_insert_with(Default::default);
                    for p in paths {
                        map.insert(p.value.clone(), serde_json::json!({}));
                    }
                }
                Command::User { user } => config.user = Some(user.value),
                Command::Workdir { path } => config.working_dir = Some(path.value),
                Command::StopSignal { signal } => config.stop_signal = Some(signal.value),
                Command::Onbuild { .. } => {
                    let text = change.trim().split_once(char::is_whitespace).map(|x| x.1).unwrap_or("").trim().to_string();
                    config.on_build.get_or_insert_with(Vec::new).push(text);
                }
                other => fail!(Invalid, "{} is not supported by --change (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR)", other.name()),
            }
        }
    }
    Ok(config)
}
