//! RUN: the step's root filesystem on overlayfs, the command run by berth's
//! runtime in a helper process with the build's mounts, its output streamed
//! line by line, and the overlay's upper dir committed as the layer.

use crate::build::Builder;
use crate::error::StepFailure;
use crate::key::CacheKey;
use crate::plan::{Source, Stage};
use crate::progress::Step;
use crate::request::{BuildNetwork, SecretSource, StepNetwork};
use crate::state::{State, DEFAULT_PATH};
use berth_grammar::{CommandLine, Instruction, MountType, Run};
use berth_runner::{bundle, docker_spec, user, Bundle, Network, RunConfig};
use berth_store::snapshot::MountKind;
use berth_store::LayerOptions;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

type StepResult = Result<(), StepFailure>;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name for a step's scratch folders, unique across processes.
pub fn scratch_name(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{kind}-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unmounts and removes the step folders a killed build left behind: their
/// names carry the pid of the build that made them.
pub fn reap_stale(root: &Path) {
    for dir in ["mounts", "build"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let is_step = ["run-", "copy-", "from-", "bind-"]
                .iter()
                .any(|k| name.starts_with(k));
            if !is_step || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let merged = e.path().join("merged");
            let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
            if std::fs::remove_dir_all(e.path()).is_ok() {
                tracing::info!("removed {} left by a build that died", e.path().display());
            }
        }
    }
}

/// One `--mount` made ready for the spec.
struct PreparedMount {
    spec: oci_spec::runtime::Mount,
    /// A rootfs kept mounted for the step (`from=stage`).
    _rootfs: Option<berth_store::snapshot::Mount>,
}

fn option_bool(v: Option<bool>) -> bool {
    v.unwrap_or(false)
}

/// The command line and the scripts heredocs turn into.
fn command_args(state: &State, r: &Run) -> Vec<String> {
    match &r.command {
        CommandLine::Exec { args } => args.iter().map(|w| w.value.clone()).collect(),
        CommandLine::Shell { command } => {
            let mut script = command.value.clone();
            let only_heredoc = r.heredocs.len() == 1
                && script.trim() == format!("<<{}", r.heredocs[0].name)
                || r.heredocs.len() == 1 && script.trim() == format!("<<-{}", r.heredocs[0].name);
            if only_heredoc {
                // The heredoc is the script itself.
                let body = r.heredocs[0].chomped_content();
                if body.starts_with("#!") {
                    return vec!["/dev/pipes/script".into()];
                }
                script = body;
            } else {
                for h in &r.heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
            }
            let mut v = state.shell();
            v.push(script);
            v
        }
    }
}

impl Builder {
    /// The environment of a RUN: the image's, then build ARGs under it,
    /// then the proxies (not part of the step's key).
    fn run_env(&self, state: &State) -> Vec<String> {
        let mut env = self.step_env(state);
        self.add_proxies(&mut env);
        env
    }

    /// The environment a RUN's key holds: the image's and the build ARGs
    /// in scope (some only inherited from a parent stage), not the proxies.
    fn step_env(&self, state: &State) -> Vec<String> {
        let mut env = state.run_env_list();
        let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
        for (k, v) in state.args.iter() {
            if !has(&env, k) {
                env.push(format!("{k}={v}"));
            }
        }
        if !has(&env, "PATH") {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env
    }

    fn add_proxies(&self, env: &mut Vec<String>) {
        let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
        // Proxy build args reach RUN under both spellings, without a
        // declaration, and stay out of the history and the cache key (as
        // BuildKit's ProxyEnv); of two spellings given, the lowercase wins.
        for name in [
            "http_proxy",
            "https_proxy",
            "ftp_proxy",
            "no_proxy",
            "all_proxy",
        ] {
            let value = self
                .req
                .build_args
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .next_back();
            if let Some(v) = value {
                for k in [name.to_ascii_uppercase(), name.to_string()] {
                    if !has(env, &k) {
                        env.push(format!("{k}={v}"));
                    }
                }
            }
        }
    }

    pub(crate) fn run(
        &self,
        stage: &Stage,
        state: &mut State,
        _ins: &Instruction,
        r: &Run,
        step: &Step,
    ) -> StepResult {
        let expanded = self.expand_mounts(state, r)?;
        let r = &expanded;
        let args = command_args(state, r);
        let (network, named) = match r.network.as_ref().map(|w| w.value.as_str()) {
            None | Some("default") => match &self.req.network {
                BuildNetwork::Host => (Network::Host, None),
                BuildNetwork::None => (Network::None, None),
                BuildNetwork::Named(n) => (Network::Private, Some(n.clone())),
            },
            Some("host") => (Network::Host, None),
            Some("none") => (Network::None, None),
            Some(other) => {
                return Err(StepFailure(format!(
                    "unsupported network mode {other:?}: use default, none or host"
                )))
            }
        };
        let privileged = match r.security.as_ref().map(|w| w.value.as_str()) {
            None | Some("sandbox") => false,
            Some("insecure") => true,
            Some(other) => return Err(StepFailure(format!("unsupported security mode {other:?}"))),
        };
        let env = self.run_env(state);
        // History shows every ARG declared so far, in declaration order,
        // with the value the step sees (an ENV of the same name wins), as
        // BuildKit's does.
        let vars = state.vars();
        let arg_pairs: Vec<String> = state
            .arg_names
            .iter()
            .map(|k| format!("{k}={}", vars.get(k).unwrap_or("")))
            .collect();
        if let Ok(mut used) = self.used_args.lock() {
            used.extend(state.args.iter().map(|(k, _)| k.clone()));
        }
        let shown = args.join(" ");
        let created_by = if arg_pairs.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            format!(
                "RUN |{} {} {shown} # buildkit",
                arg_pairs.len(),
                arg_pairs.join(" ")
            )
        };

        let mut key = CacheKey::new("RUN", &state.key);
        key.field(&serde_json::to_string(&args).unwrap_or_default())
            .field(&arg_pairs.join("\n"))
            .field(&self.step_env(state).join("\n"))
            .field(&match &named {
                Some(n) => format!("network {} {privileged}", n.name()),
                None => format!("{network:?} {privileged}"),
            });
        for h in &r.heredocs {
            key.field(&h.content);
        }
        for m in &r.mounts {
            key.field(&self.mount_key(stage, state, m)?);
        }
        let key = key.finish();
        if self.reuse_cached(stage, state, &key, step)? {
            return Ok(());
        }

        let name = scratch_name("run");
        let mut rootfs = self
            .store
            .prepare_layers(&self.local_layers(state)?, &name, false)?;
        if rootfs.kind != MountKind::Overlay {
            return Err(StepFailure(
                "RUN needs overlayfs to capture the step's changes, and it cannot be mounted here (run berth as root on a kernel with overlayfs)".into(),
            ));
        }
        let bundle = Bundle::create(&self.store.root().join("build").join(&name))?;
        let outcome = self.run_in(
            stage,
            state,
            r,
            &args,
            env,
            (network, named.as_deref()),
            privileged,
            &rootfs,
            &bundle,
            step,
        );
        drop(bundle);
        let layer = match outcome.and_then(|stubs| {
            rootfs.unmount()?;
            prune_copied_up(&rootfs.upper, &rootfs.lowers, &stubs);
            Ok(())
        }) {
            // A step that changed nothing still gives a layer (an empty
            // tar), as BuildKit's, so layer counts and history match.
            Ok(()) => {
                let opts = LayerOptions {
                    compression: self.req.compression,
                    ..LayerOptions::default()
                };
                berth_store::layer::write_layer_from_dir(self.store.blobs(), &rootfs.upper, &opts)
                    .map(Some)
            }
            Err(e) => {
                let _ = rootfs.remove();
                return Err(e);
            }
        };
        rootfs.remove()?;
        let layer = layer?;
        state.commit(&self.created, created_by, layer);
        self.finish_step(state, &key, step)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_in(
        &self,
        stage: &Stage,
        state: &State,
        r: &Run,
        args: &[String],
        env: Vec<String>,
        (network, named): (Network, Option<&dyn StepNetwork>),
        privileged: bool,
        rootfs: &berth_store::snapshot::Mount,
        bundle: &Bundle,
        step: &Step,
    ) -> Result<Vec<String>, StepFailure> {
        let merged = &rootfs.merged;
        let u = user::resolve(merged, &state.user())?;
        let mut env = env;
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", u.home));
        }
        let cfg = RunConfig {
            rootfs: merged.clone(),
            args: args.to_vec(),
            env,
            cwd: state.workdir(),
            uid: u.uid,
            gid: u.gid,
            additional_gids: u.additional_gids,
            hostname: "buildkitsandbox".into(),
            network,
            readonly_rootfs: false,
            privileged,
            limits: berth_runner::Limits::default(),
            cgroup: None,
        };
        let mut spec = docker_spec(&cfg)?;
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        // Only /etc/hosts and /etc/resolv.conf, as BuildKit: a step sees
        // the image's own /etc/hostname.
        // Read-only, as BuildKit mounts them into a step.
        mounts.extend(
            bundle
                .etc_files("buildkitsandbox", network)?
                .into_iter()
                .filter(|m| m.destination() != Path::new("/etc/hostname"))
                .map(|mut m| {
                    let mut o = m.options().clone().unwrap_or_default();
                    o.extend(["ro", "nosuid", "nodev", "noexec"].map(String::from));
                    m.set_options(Some(o));
                    m
                }),
        );
        // BuildKit's hosts file for its sandbox, byte for byte.
        std::fs::write(
            bundle.dir().join("hosts"),
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        )?;
        // On one of the engine's networks: its namespace, for this step.
        let _joined = match named {
            Some(n) => {
                let id = bundle
                    .dir()
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                let joined = n
                    .join(&id)
                    .map_err(|e| StepFailure(format!("cannot join network {}: {e}", n.name())))?;
                let guard = JoinedGuard { network: n, id };
                std::fs::write(bundle.dir().join("resolv.conf"), &joined.resolv_conf)?;
                join_network_file(&mut spec, &joined.netns);
                Some(guard)
            }
            None => None,
        };
        let mut keep = Vec::new();
        if let CommandLine::Shell { .. } = &r.command {
            if args.first().map(String::as_str) == Some("/dev/pipes/script") {
                let script = bundle.dir().join("script");
                std::fs::write(&script, r.heredocs[0].chomped_content())?;
                std::fs::set_permissions(
                    &script,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )?;
                mounts.push(bundle::bind(&script, "/dev/pipes/script", true)?);
            }
        }
        let mut secret_env = Vec::new();
        for (i, m) in r.mounts.iter().enumerate() {
            if let Some(p) =
                self.prepare_mount(stage, state, m, bundle.dir(), i, &mut secret_env)?
            {
                mounts.push(p.spec);
                keep.push(p._rootfs);
            }
        }
        if !secret_env.is_empty() {
            if let Some(p) = spec.process_mut() {
                let mut e = p.env().clone().unwrap_or_default();
                e.extend(secret_env);
                p.set_env(Some(e));
            }
        }
        // Mount points the runtime has to create are not the step's output
        // when the step left them empty (BuildKit removes such stubs).
        let stubs: Vec<Vec<PathBuf>> = mounts
            .iter()
            .map(|m| missing_components(merged, &m.destination().to_string_lossy()))
            .filter(|c| !c.is_empty())
            .collect();
        spec.set_mounts(Some(mounts));
        bundle.save(&spec)?;
        let mut child = bundle
            .helper(&self.req.helper)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StepFailure(format!("cannot start the runtime helper: {e}")))?;
        // The step reads an empty pipe, as BuildKit's do (not /dev/null).
        drop(child.stdin.take());
        let out = child.stdout.take();
        let err = child.stderr.take();
        let status = std::thread::scope(|s| {
            for pipe in [
                out.map(|o| Box::new(o) as Box<dyn Read + Send>),
                err.map(|e| Box::new(e) as Box<dyn Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let step = step.clone();
                s.spawn(move || {
                    let mut reader = BufReader::new(pipe);
                    let mut buf = Vec::new();
                    while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                        step.line(String::from_utf8_lossy(&buf).trim_end_matches('\n'));
                        buf.clear();
                    }
                });
            }
            child.wait()
        })
        .map_err(|e| StepFailure(format!("cannot wait for the runtime helper: {e}")))?;
        drop(keep);
        let mut rels = Vec::new();
        for chain in stubs {
            // Deepest first; a component the step put something in stays.
            for stub in chain.iter().rev() {
                if !remove_if_empty(stub) {
                    break;
                }
                if let Ok(rel) = stub.strip_prefix(merged) {
                    rels.push(rel.to_string_lossy().to_string());
                }
            }
        }
        let code = status.code().unwrap_or(125);
        if code != 0 {
            let shown = match &r.command {
                CommandLine::Shell { .. } => args.join(" "),
                CommandLine::Exec { .. } => serde_json::to_string(args).unwrap_or_default(),
            };
            return Err(StepFailure(format!(
                "process \"{shown}\" did not complete successfully: exit code: {code}"
            )));
        }
        Ok(rels)
    }

    /// The step with its `--mount` options expanded where they name build
    /// args (`type=$T,target=$DIR`), as today's BuildKit does.
    fn expand_mounts(&self, state: &State, r: &Run) -> Result<Run, StepFailure> {
        let mut r = r.clone();
        let vars = state.vars();
        for m in r.mounts.iter_mut() {
            if !m.raw.contains('$') {
                continue;
            }
            let raw = m.raw.clone();
            *m = berth_grammar::expand_mount(&raw, m.span, |v| {
                let e = self.lex.expand(v, &vars).map_err(|e| e.to_string())?;
                self.note_used(state, &e.matched);
                Ok(e.result)
            })
            .map_err(|e| StepFailure(format!("--mount={raw}: {e}")))?;
        }
        Ok(r)
    }

    /// What a `--mount` adds to the step's cache key: its options, and for a
    /// bind of the context the content it shows.
    fn mount_key(
        &self,
        stage: &Stage,
        state: &State,
        m: &berth_grammar::Mount,
    ) -> Result<String, StepFailure> {
        let mut k = format!(
            "{:?} target={:?} source={:?} from={:?} id={:?} ro={:?} mode={:?} uid={:?} gid={:?} env={:?}",
            m.kind, m.target, m.source, m.from, m.id, m.readonly, m.mode, m.uid, m.gid, m.env
        );
        if m.kind == MountType::Cache {
            // Exported with the build's cache whether the step runs or not.
            let target = m.target.clone().map(|t| {
                if t.starts_with('/') {
                    t
                } else {
                    format!("{}/{t}", state.workdir().trim_end_matches('/'))
                }
            });
            if let Some(id) = m.id.clone().or(target) {
                self.note_mount(&id);
            }
        }
        if m.kind == MountType::Bind {
            match &m.from {
                None => {
                    let src = m.source.clone().unwrap_or_default();
                    let rel = crate::context::clean_source(&src)?;
                    let files = self.ctx.walk(&rel)?;
                    k.push_str(&self.ctx.digest(&rel, &files)?);
                }
                Some(from) => {
                    let from = self.expand_from(state, from)?;
                    match self.plan.source(&from, stage.index) {
                        Source::Stage(i) => k.push_str(&self.stage_result(i)?.key),
                        Source::Image(n) => {
                            k.push_str(&self.image(&n).map_err(StepFailure)?.id.to_string())
                        }
                        Source::Scratch => {}
                    }
                }
            }
        }
        Ok(k)
    }

    pub(crate) fn expand_from(&self, state: &State, from: &str) -> Result<String, StepFailure> {
        Ok(self.lex.process_word(from, &state.vars())?)
    }

    fn prepare_mount(
        &self,
        stage: &Stage,
        state: &State,
        m: &berth_grammar::Mount,
        scratch: &Path,
        index: usize,
        secret_env: &mut Vec<String>,
    ) -> Result<Option<PreparedMount>, StepFailure> {
        let target = m.target.clone().map(|t| {
            if t.starts_with('/') {
                t
            } else {
                format!("{}/{t}", state.workdir().trim_end_matches('/'))
            }
        });
        match m.kind {
            MountType::Cache => {
                let target =
                    target.ok_or_else(|| StepFailure("cache mount needs a target".into()))?;
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let dir = self.store.cache_mount_dir(&id);
                if !dir.exists() && !self.restore_mount(&id, &dir) {
                    std::fs::create_dir_all(&dir)?;
                    set_mode_owner(&dir, m, 0o755, None)?;
                }
                Ok(Some(PreparedMount {
                    spec: bundle::bind(&dir, &target, option_bool(m.readonly))?,
                    _rootfs: None,
                }))
            }
            MountType::Tmpfs => {
                let target =
                    target.ok_or_else(|| StepFailure("tmpfs mount needs a target".into()))?;
                let size = m.size.as_deref().and_then(|s| s.parse().ok());
                Ok(Some(PreparedMount {
                    spec: bundle::tmpfs(&target, size)?,
                    _rootfs: None,
                }))
            }
            MountType::Bind => {
                let target =
                    target.ok_or_else(|| StepFailure("bind mount needs a target".into()))?;
                let src = crate::context::clean_source(m.source.as_deref().unwrap_or(""))?;
                let (root, rootfs) = match &m.from {
                    None => (self.ctx.root().to_path_buf(), None),
                    Some(from) => {
                        let from = self.expand_from(state, from)?;
                        let layers = match self.plan.source(&from, stage.index) {
                            Source::Stage(i) => self.local_layers(&*self.stage_result(i)?)?,
                            Source::Image(n) => berth_store::snapshot::image_layers(
                                &self.image(&n).map_err(StepFailure)?,
                            )?,
                            Source::Scratch => Vec::new(),
                        };
                        let mnt =
                            self.store
                                .prepare_layers(&layers, &scratch_name("bind"), false)?;
                        (mnt.merged.clone(), Some(mnt))
                    }
                };
                let source = crate::copy::resolve_in(&root, &src)?;
                // A writable bind gets a copy: its writes are discarded, and
                // the context must never change.
                let rw = m.readonly == Some(false);
                let source = if rw {
                    let copy = scratch.join(format!("bind-{index}"));
                    crate::copy::copy_tree(&source, &copy)?;
                    copy
                } else {
                    source
                };
                Ok(Some(PreparedMount {
                    spec: bundle::bind(&source, &target, !rw)?,
                    _rootfs: rootfs,
                }))
            }
            MountType::Secret => {
                let id = m
                    .id
                    .clone()
                    .or_else(|| {
                        m.target
                            .as_ref()
                            .and_then(|t| t.rsplit('/').next().map(String::from))
                    })
                    .ok_or_else(|| StepFailure("secret mount needs an id or a target".into()))?;
                let value = match self.req.secrets.get(&id) {
                    Some(SecretSource::File(p)) => Some(std::fs::read(p).map_err(|e| {
                        StepFailure(format!("secret {id}: cannot read {}: {e}", p.display()))
                    })?),
                    Some(SecretSource::Env(name)) => {
                        std::env::var(name).ok().map(String::into_bytes)
                    }
                    None => None,
                };
                let Some(value) = value else {
                    if m.required == Some(true) {
                        return Err(StepFailure(format!(
                            "secret {id} not found (pass it with --secret id={id},src=FILE)"
                        )));
                    }
                    return Ok(None);
                };
                if let Some(var) = &m.env {
                    secret_env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    if m.target.is_none() {
                        return Ok(None);
                    }
                }
                let file = scratch.join(format!("secret-{index}"));
                std::fs::write(&file, &value)?;
                set_mode_owner(&file, m, 0o400, Some(0))?;
                let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
                Ok(Some(PreparedMount {
                    spec: bundle::bind(&file, &target, true)?,
                    _rootfs: None,
                }))
            }
            MountType::Ssh => Err(StepFailure(
                "RUN --mount=type=ssh is not supported: berth does not forward an SSH agent".into(),
            )),
        }
    }
}

/// Removes from `upper` the directories overlayfs copied up only because a
/// mount point was created in them (and removed again): empty, not opaque,
/// and a directory with the same owner and mode below. They are not changes.
fn prune_copied_up(upper: &Path, lowers: &[PathBuf], stubs: &[String]) {
    use std::os::unix::fs::MetadataExt;
    for stub in stubs {
        let mut rel = Path::new(stub).parent();
        while let Some(r) = rel.filter(|r| !r.as_os_str().is_empty()) {
            let up = upper.join(r);
            let empty = std::fs::read_dir(&up)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            let mut opaque = [0u8; 1];
            let is_opaque =
                rustix::fs::lgetxattr(&up, "trusted.overlay.opaque", &mut opaque).is_ok();
            let (Ok(meta), true, false) = (up.symlink_metadata(), empty, is_opaque) else {
                break;
            };
            let below = lowers
                .iter()
                .find_map(|l| l.join(r).symlink_metadata().ok());
            match below {
                Some(b)
                    if b.is_dir()
                        && b.mode() == meta.mode()
                        && b.uid() == meta.uid()
                        && b.gid() == meta.gid() =>
                {
                    if std::fs::remove_dir(&up).is_err() {
                        break;
                    }
                }
                _ => break,
            }
            rel = r.parent();
        }
    }
}

/// A mount's `mode=`, `uid=` and `gid=` on `path` (octal mode; owner
/// `default_id` when not given, unchanged when that is `None` too).
fn set_mode_owner(
    path: &Path,
    m: &berth_grammar::Mount,
    default_mode: u32,
    default_id: Option<u32>,
) -> std::io::Result<()> {
    let mode = m
        .mode
        .as_deref()
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .unwrap_or(default_mode);
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    let id = |v: &Option<String>| v.as_deref().and_then(|s| s.parse().ok()).or(default_id);
    let (uid, gid) = (id(&m.uid), id(&m.gid));
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)?;
    }
    Ok(())
}

/// The components of `dest` (inside `root`) that do not exist yet, outermost
/// first.
fn missing_components(root: &Path, dest: &str) -> Vec<PathBuf> {
    let mut p = root.to_path_buf();
    let mut missing = Vec::new();
    for c in dest.split('/').filter(|c| !c.is_empty() && *c != ".") {
        p.push(c);
        if !missing.is_empty() || p.symlink_metadata().is_err() {
            missing.push(p.clone());
        }
    }
    missing
}

/// Removes an empty directory or an empty file; true when it is gone.
fn remove_if_empty(path: &Path) -> bool {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir(path).is_ok(),
        Ok(m) if m.is_file() && m.len() == 0 => std::fs::remove_file(path).is_ok(),
        Ok(_) => false,
        Err(_) => true,
    }
}

/// A step's place on a network, given back when the step is done.
struct JoinedGuard<'a> {
    network: &'a dyn StepNetwork,
    id: String,
}

impl Drop for JoinedGuard<'_> {
    fn drop(&mut self) {
        self.network.leave(&self.id);
    }
}

/// Makes `spec` enter the network namespace bound at `path`.
fn join_network_file(spec: &mut oci_spec::runtime::Spec, path: &Path) {
    if let Some(nss) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for ns in nss.iter_mut() {
            if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                ns.set_path(Some(path.to_path_buf()));
            }
        }
    }
}
