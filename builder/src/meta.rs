//! Instructions that only change the image config (ENV, LABEL, CMD, ...)
//! and ARG, which changes only the variables of later steps.

use crate::build::Builder;
use crate::error::StepFailure;
use crate::key::CacheKey;
use crate::plan::Stage;
use crate::progress::Step;
use crate::state::{set_env, State};
use berth_grammar::{CommandLine, Instruction};
use serde_json::{json, Value};
use std::collections::BTreeMap;

type StepResult = Result<(), StepFailure>;

use crate::gofmt::{plain_list, quoted_list as go_list};

fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `WORKDIR` relative to the previous one, cleaned.
pub fn resolve_workdir(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean_path(path)
    } else {
        clean_path(&format!("{current}/{path}"))
    }
}

/// The working directory as BuildKit records it: an absolute path as
/// written, a relative one joined to the current one and cleaned (Go's
/// `path.Join`).
fn workdir_as_written(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        resolve_workdir(current, path)
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` → docker's `port/proto` keys.
fn exposed_ports(word: &str) -> Result<Vec<String>, String> {
    // `[ip:]host:container[/proto]`: only the container side is exposed.
    let word = word.rsplit(':').next().unwrap_or(word);
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {s}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!("invalid port range: {ports}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

impl Builder {
    fn expand(&self, state: &State, word: &str) -> Result<String, StepFailure> {
        let vars = state.vars();
        let e = self.lex.expand(word, &vars)?;
        self.note_used(state, &e.matched);
        Ok(e.result)
    }

    /// Marks the build args a step read.
    pub fn note_used(&self, state: &State, names: &std::collections::BTreeSet<String>) {
        if let Ok(mut used) = self.used_args.lock() {
            for n in names {
                if state.args.get(n).is_some() {
                    used.insert(n.clone());
                }
            }
        }
    }

    fn command_words(&self, state: &State, c: &CommandLine) -> Vec<String> {
        match c {
            CommandLine::Exec { args } => args.iter().map(|w| w.value.clone()).collect(),
            CommandLine::Shell { command } => {
                let mut v = state.shell();
                v.push(command.value.clone());
                v
            }
        }
    }

    /// The value of `ARG name` in a stage: `--build-arg` first, then the
    /// meta ARG of that name (for a bare `ARG name`), then the default.
    fn arg_value(
        &self,
        state: &State,
        name: &str,
        default: Option<&str>,
    ) -> Result<Option<String>, StepFailure> {
        if let Some(v) = self.req.build_args.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some((_, v)) = crate::vars::predefined_args()
            .into_iter()
            .find(|(k, _)| k == name)
        {
            if default.is_none() {
                return Ok(Some(v));
            }
        }
        match default {
            Some(d) => Ok(Some(self.expand(state, d)?)),
            None => Ok(self.plan.meta_args.get(name).map(String::from)),
        }
    }

    /// The working directory's layer: its missing folders (0755, owned by
    /// the stage's user), or an empty one when the image has them all.
    fn workdir_layer(&self, state: &State) -> Result<berth_store::Layer, StepFailure> {
        let wd = state.workdir();
        let mut lowers = Vec::new();
        for (l, d) in self.local_layers(state)?.iter().rev() {
            lowers.push(self.store.layer_snapshot(l, d)?);
        }
        let view = crate::lower::LowerView::new(lowers);
        // Through the image's symlinks, as BuildKit's mkdir follows them.
        let rel = view.resolve(&wd);
        let mut folders = Vec::new();
        let mut prefix = String::new();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            folders.push(prefix.clone());
        }
        let missing = folders.iter().any(|f| view.lookup(f).is_none());
        let (uid, gid) = if !missing || state.user().is_empty() {
            (0, 0)
        } else {
            let u = view.resolve_user(&state.user())?;
            (u.uid, u.gid)
        };
        let opts = berth_store::LayerOptions {
            compression: self.req.compression,
            ..berth_store::LayerOptions::default()
        };
        let mtime = crate::copy::time_of(&self.created);
        let mtime = match opts.source_date_epoch {
            Some(e) if mtime > e => e,
            _ => mtime,
        };
        let layer = berth_store::layer::write_layer_with(self.store.blobs(), &opts, |w| {
            let mut b = tar::Builder::new(w);
            // The folders above the new ones go in as the image has them,
            // so the layer does not replace them with defaults.
            for d in folders.iter().filter(|_| missing) {
                let mut h = crate::copy::folder_header(
                    &view,
                    d,
                    0o755,
                    (uid, gid),
                    mtime.max(0) as u64,
                    opts.source_date_epoch,
                );
                b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
            }
            b.finish()
        })?;
        Ok(layer)
    }

    pub(crate) fn metadata(
        &self,
        stage: &Stage,
        state: &mut State,
        ins: &Instruction,
        step: &Step,
    ) -> StepResult {
        use berth_grammar::Command as C;
        let created_by = match &ins.command {
            C::Arg { args } => {
                let mut shown = Vec::new();
                for a in args {
                    let name = &a.name.value;
                    let value =
                        self.arg_value(state, name, a.default.as_ref().map(|d| d.value.as_str()))?;
                    if let Ok(mut used) = self.used_args.lock() {
                        used.insert(name.clone());
                    }
                    if !state.arg_names.contains(name) {
                        state.arg_names.push(name.clone());
                    }
                    match value {
                        Some(v) => {
                            shown.push(format!("{name}={v}"));
                            state.args.set(name, &v);
                            let in_env = state
                                .env_list()
                                .iter()
                                .any(|e| e.split('=').next() == Some(name.as_str()));
                            if in_env && !state.args_over_env.contains(name) {
                                state.args_over_env.push(name.clone());
                            }
                        }
                        // No value: one it already has (from an earlier ARG
                        // or the parent stage) stays, as in BuildKit.
                        None => shown.push(name.clone()),
                    }
                }
                format!("ARG {}", shown.join(" "))
            }
            C::Env { pairs } => {
                let mut env = state.env_list();
                let mut shown = Vec::new();
                let mut state_over = Vec::new();
                for p in pairs {
                    // Every pair is expanded with the variables from before
                    // the instruction (docker's documented rule).
                    let k = self.expand(state, &p.key.value)?;
                    let v = self.expand(state, &p.value.value)?;
                    set_env(&mut env, &k, &v);
                    state_over.push(k.clone());
                    shown.push(format!("{k}={v}"));
                }
                state.container().env = Some(env);
                // An ENV wins again over an ARG set before it.
                state.args_over_env.retain(|k| !state_over.contains(k));
                format!("ENV {}", shown.join(" "))
            }
            C::Label { pairs } => {
                let mut shown = Vec::new();
                for p in pairs {
                    let k = self.expand(state, &p.key.value)?;
                    let v = self.expand(state, &p.value.value)?;
                    state
                        .container()
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), v.clone());
                    shown.push(format!("{k}={v}"));
                }
                format!("LABEL {}", shown.join(" "))
            }
            C::Maintainer { name } => {
                let n = self.expand(state, &name.value)?;
                state.config.author = Some(n.clone());
                format!("MAINTAINER {n}")
            }
            C::Expose { ports } => {
                // BuildKit sorts the words as written, then expands each
                // into words of its own.
                let mut raw: Vec<&str> = ports.iter().map(|p| p.value.as_str()).collect();
                raw.sort_unstable();
                let vars = state.vars();
                let mut all = Vec::new();
                for p in raw {
                    let e = self.lex.expand(p, &vars)?;
                    self.note_used(state, &e.matched);
                    for w in e.words {
                        all.extend(exposed_ports(&w).map_err(StepFailure)?);
                    }
                }
                let map = state
                    .container()
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for p in &all {
                    map.insert(p.clone(), json!({}));
                }
                format!("EXPOSE {}", plain_list(&all))
            }
            C::User { user } => {
                let u = self.expand(state, &user.value)?;
                state.container().user = Some(u.clone());
                format!("USER {u}")
            }
            C::Workdir { path } => {
                let p = self.expand(state, &path.value)?;
                let wd = workdir_as_written(&state.workdir(), &p);
                state.container().working_dir = Some(wd.clone());
                format!("WORKDIR {wd}")
            }
            C::Cmd { command } => {
                let words = self.command_words(state, command);
                let c = state.container();
                // `CMD []` clears it (null, as BuildKit's nil slice).
                c.cmd = Some(words.clone()).filter(|w| !w.is_empty());
                // BuildKit sets it for every CMD, whatever its form.
                c.args_escaped = Some(true);
                state.cmd_set = true;
                format!("CMD {}", go_list(&words))
            }
            C::Entrypoint { command } => {
                let words = self.command_words(state, command);
                let cmd_set = state.cmd_set;
                let c = state.container();
                c.entrypoint = Some(words.clone()).filter(|w| !w.is_empty());
                if !cmd_set {
                    c.cmd = None;
                }
                format!("ENTRYPOINT {}", go_list(&words))
            }
            C::Volume { paths } => {
                let mut all = Vec::new();
                for p in paths {
                    let v = self.expand(state, &p.value)?;
                    if v.trim().is_empty() {
                        return Err(StepFailure(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    all.push(v);
                }
                let map = state.container().volumes.get_or_insert_with(BTreeMap::new);
                for v in &all {
                    map.insert(v.clone(), json!({}));
                }
                format!("VOLUME {}", plain_list(&all))
            }
            C::StopSignal { signal } => {
                let s = self.expand(state, &signal.value)?;
                if !valid_signal(&s) {
                    return Err(StepFailure(format!("invalid signal: {s}")));
                }
                state.container().stop_signal = Some(s.clone());
                format!("STOPSIGNAL {s}")
            }
            C::Healthcheck(h) => {
                let test: Vec<String> = match &h.test {
                    None => vec!["NONE".into()],
                    Some(CommandLine::Exec { args }) => std::iter::once("CMD".to_string())
                        .chain(args.iter().map(|w| w.value.clone()))
                        .collect(),
                    Some(CommandLine::Shell { command }) => {
                        vec!["CMD-SHELL".into(), command.value.clone()]
                    }
                };
                let mut hc = serde_json::Map::new();
                hc.insert("Test".into(), json!(test));
                for (k, v) in [
                    ("Interval", h.interval_ns),
                    ("Timeout", h.timeout_ns),
                    ("StartPeriod", h.start_period_ns),
                    ("StartInterval", h.start_interval_ns),
                ] {
                    if let Some(v) = v {
                        hc.insert(k.into(), json!(v));
                    }
                }
                if let Some(r) = h.retries {
                    hc.insert("Retries".into(), json!(r));
                }
                let value = Value::Object(hc);
                state.container().healthcheck = Some(value);
                // Go's %q of BuildKit's *HealthcheckConfig.
                let d = |v: Option<u64>| {
                    berth_grammar::go_quote(&crate::gofmt::duration(
                        v.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)),
                    ))
                };
                format!(
                    "HEALTHCHECK &{{{} {} {} {} {} {}}}",
                    go_list(&test),
                    d(h.interval_ns),
                    d(h.timeout_ns),
                    d(h.start_period_ns),
                    d(h.start_interval_ns),
                    crate::gofmt::quoted_rune(i64::from(h.retries.unwrap_or(0)))
                )
            }
            C::Shell { shell } => {
                let words: Vec<String> = shell.iter().map(|w| w.value.clone()).collect();
                state.container().shell = Some(words.clone());
                format!("SHELL {}", plain_list(&words))
            }
            C::Onbuild { trigger } => {
                let text = self.instruction_text(ins);
                let body = text
                    .split_once(char::is_whitespace)
                    .map(|(_, rest)| rest.trim().to_string())
                    .unwrap_or_else(|| trigger.command.name().to_string());
                state
                    .container()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(body.clone());
                format!("ONBUILD {body}")
            }
            C::Run(_) | C::Copy(_) | C::Add(_) | C::From(_) => {
                return Err(StepFailure(format!(
                    "{} is not a metadata instruction",
                    ins.command.name()
                )))
            }
        };
        // An ARG's value reaches the keys of the steps that read it, not
        // the chain: a new value alone leaves a COPY after it cached.
        let key_text = match &ins.command {
            C::Arg { args } => {
                let names: Vec<&str> = args.iter().map(|a| a.name.value.as_str()).collect();
                format!("ARG {}", names.join(" "))
            }
            _ => created_by.clone(),
        };
        let key = CacheKey::new("META", &state.key).field(&key_text).finish();
        // A cached entry keeps the history times of the build that made it,
        // so an unchanged Dockerfile gives the same image ID.
        if self.reuse_cached(stage, state, &key, step)? {
            if let Some(h) = state.config.history.last_mut() {
                h.created_by = Some(created_by);
            }
            return Ok(());
        }
        match &ins.command {
            // BuildKit writes no history entry for ONBUILD.
            C::Onbuild { .. } => state.commit_config(&self.created),
            // WORKDIR is a layer (its missing folders, owned by the user;
            // an empty one when it has them), `/` excepted, as BuildKit's.
            C::Workdir { .. } if resolve_workdir("/", &state.workdir()) != "/" => {
                let layer = self.workdir_layer(state)?;
                state.commit(&self.created, created_by, Some(layer));
            }
            _ => state.commit(&self.created, created_by, None),
        }
        self.finish_step(state, &key, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_is_relative_to_the_previous_one() {
        assert_eq!(resolve_workdir("/", "app"), "/app");
        assert_eq!(resolve_workdir("/app", "src/../lib"), "/app/lib");
        assert_eq!(resolve_workdir("/app", "/x/"), "/x");
    }

    #[test]
    fn ports_as_docker_writes_them() {
        assert_eq!(exposed_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(exposed_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(exposed_ports("8000-8001").unwrap().len(), 2);
        assert!(exposed_ports("http").is_err());
    }
}
