//! The build: stages run in dependency order (independent ones in parallel,
//! at most one per core), each step looked up in the cache by its key and
//! run on a miss, and the target stage committed as an image.

use crate::context::Context;
use crate::error::{Error, Result, StepFailure};
use crate::key::CacheKey;
use crate::plan::{self, Plan, Source, Stage};
use crate::progress::{Progress, Step};
use crate::request::{BuildRequest, Output};
use crate::state::State;
use berth_grammar::shell::ShellLex;
use berth_grammar::{Command, Dockerfile, Instruction};
use berth_store::image::{creation_time, rfc3339, ImageConfig};
use berth_store::{CacheEntry, CachedLayer, Store, StoredImage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a finished build gives.
#[derive(Debug)]
pub struct BuildResult {
    pub image: StoredImage,
    pub warnings: Vec<String>,
    /// Every step of the build and its result, in the order they finished
    /// (what `--cache-to` exports).
    pub steps: Vec<crate::remote::BuiltStep>,
    /// The stages whose steps the image's layers come from (`mode=min`).
    pub final_stages: BTreeSet<usize>,
    /// The ids of the cache mounts RUN steps used.
    pub cache_mounts: BTreeSet<String>,
}

pub(crate) struct Builder {
    pub store: Store,
    pub req: BuildRequest,
    pub ctx: Context,
    pub plan: Plan,
    pub df: Dockerfile,
    pub lex: ShellLex,
    pub progress: Progress,
    /// `created` of every new config and history entry.
    pub created: String,
    results: Mutex<HashMap<usize, Option<Arc<State>>>>,
    failed: AtomicBool,
    /// Build args some step read (for the unused-arg warning).
    pub used_args: Mutex<BTreeSet<String>>,
    /// Images fetched during this build, by the name the Dockerfile gives.
    pub pulled: Mutex<HashMap<String, StoredImage>>,
    /// Which `--cache-from` source a layer named by a taken entry comes from.
    pub layer_origin: Mutex<HashMap<berth_store::Digest, usize>>,
    /// Cached layers that could not be fetched or did not match: entries
    /// naming them are misses (kept across the build's attempts).
    pub poisoned: Arc<Mutex<std::collections::HashSet<berth_store::Digest>>>,
    /// A cached layer failed this attempt.
    pub cache_fault: AtomicBool,
    pub steps: Mutex<Vec<crate::remote::BuiltStep>>,
    pub mounts_used: Mutex<BTreeSet<String>>,
    /// Layer blob and diff ID pairs known to match (see `trust`).
    pub trusted: Mutex<std::collections::HashSet<(berth_store::Digest, berth_store::Digest)>>,
}

/// How often a build starts over after a cached layer turned out bad.
const CACHE_ATTEMPTS: usize = 4;

/// Runs the build `req` describes against `store`.
pub fn build(store: &Store, req: &BuildRequest, progress: Progress) -> Result<BuildResult> {
    let t = progress.step(&format!(
        "[internal] load build definition from {}",
        req.dockerfile_name
    ));
    let df = berth_grammar::parse(&req.dockerfile)
        .map_err(|e| Error::Parse(e.in_file(req.dockerfile_name.clone())))?;
    t.done();
    let plan = plan::lower(&df, &req.build_args)?;
    let target = plan.target(req.target.as_deref())?;
    let needed = plan.needed(target);
    let t = progress.step("[internal] load .dockerignore");
    let cache_file = store.root().join("context-cache").join(format!(
        "{}.bin",
        blake3::hash(
            std::fs::canonicalize(&req.context)
                .unwrap_or_else(|_| req.context.clone())
                .to_string_lossy()
                .as_bytes()
        )
        .to_hex()
    ));
    let ctx = Context::open(
        &req.context,
        req.dockerignore.as_deref(),
        Some(cache_file.clone()),
    )?;
    t.done();
    let lex = ShellLex::new(df.escape);
    let created = rfc3339(creation_time());
    let poisoned = Arc::new(Mutex::new(std::collections::HashSet::new()));
    // Blobs written by this build stay out of GC's reach until it is recorded.
    let _lease = store.lease()?;
    crate::run::reap_stale(store.root());
    let mut ctx = Some(ctx);
    let mut attempt = 0;
    let builder = loop {
        attempt += 1;
        let ctx = match ctx.take() {
            Some(c) => c,
            None => Context::open(
                &req.context,
                req.dockerignore.as_deref(),
                Some(cache_file.clone()),
            )?,
        };
        let builder = Arc::new(Builder {
            store: store.clone(),
            req: req.clone(),
            ctx,
            plan: plan.clone(),
            df: df.clone(),
            lex,
            progress: progress.clone(),
            created: created.clone(),
            results: Mutex::new(HashMap::new()),
            failed: AtomicBool::new(false),
            used_args: Mutex::new(BTreeSet::new()),
            pulled: Mutex::new(HashMap::new()),
            layer_origin: Mutex::new(HashMap::new()),
            poisoned: poisoned.clone(),
            cache_fault: AtomicBool::new(false),
            steps: Mutex::new(Vec::new()),
            mounts_used: Mutex::new(BTreeSet::new()),
            trusted: Mutex::new(std::collections::HashSet::new()),
        });
        let errors = schedule(&builder, &needed)?;
        builder.ctx.save_cache();
        // The image's layers, fetched now from the caches that gave them.
        let fetched = match errors.is_empty() {
            true => builder
                .stage_result(target)
                .and_then(|s| {
                    builder
                        .ensure_layers(&s.layer_pairs(), false)
                        .map_err(|StepFailure(e)| Error::CacheFetch(e))
                })
                .err(),
            false => None,
        };
        let Some(e) = errors.into_iter().next().or(fetched) else {
            break builder;
        };
        // A bad cached layer: the steps that need it run this time.
        if builder.cache_fault.load(Ordering::SeqCst) && attempt < CACHE_ATTEMPTS {
            progress.warn("a cached layer could not be used: building again without it");
            continue;
        }
        return Err(e);
    };
    let state = builder.stage_result(target)?;
    let mut warnings = Vec::new();
    let used = builder
        .used_args
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    let unused: Vec<&String> = req
        .build_args
        .keys()
        .filter(|k| {
            !builder.plan.declared.contains(*k)
                && !used.contains(*k)
                && !crate::vars::is_predefined(k)
        })
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        let w = format!(
            "One or more build-args [{}] were not consumed",
            names.join(" ")
        );
        progress.warn(&w);
        warnings.push(w);
    }
    let image = builder.export(&state)?;
    Ok(BuildResult {
        image,
        warnings,
        steps: builder.steps.lock().map(|s| s.clone()).unwrap_or_default(),
        final_stages: builder.final_chain(target),
        cache_mounts: builder
            .mounts_used
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
    })
}

/// Runs the needed stages on a tokio runtime: each stage waits for the
/// stages it needs, then runs on a blocking thread once one of the
/// core-count permits is free. The first failure stops the stages after it.
fn schedule(builder: &Arc<Builder>, needed: &BTreeSet<usize>) -> Result<Vec<Error>> {
    use tokio::sync::{watch, Semaphore};
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(cores.max(2))
        .thread_name("berth-build")
        .build()
        .map_err(|e| Error::Io {
            context: "cannot start the build scheduler".into(),
            source: e,
        })?;
    rt.block_on(async {
        let permits = Arc::new(Semaphore::new(cores));
        let mut done_tx = HashMap::new();
        let mut done_rx = HashMap::new();
        for &i in needed {
            let (tx, rx) = watch::channel(None::<bool>);
            done_tx.insert(i, tx);
            done_rx.insert(i, rx);
        }
        let mut tasks = Vec::new();
        for &i in needed {
            let deps: Vec<_> = builder.plan.stages[i]
                .deps
                .iter()
                .filter_map(|d| done_rx.get(d).cloned())
                .collect();
            let Some(tx) = done_tx.remove(&i) else {
                continue;
            };
            let (builder, permits) = (builder.clone(), permits.clone());
            tasks.push(tokio::spawn(async move {
                for mut rx in deps {
                    let ok = matches!(
                        rx.wait_for(|v| v.is_some()).await.map(|v| *v),
                        Ok(Some(true))
                    );
                    if !ok {
                        let _ = tx.send(Some(false));
                        return Err(Error::Interrupted);
                    }
                }
                let _permit = permits.acquire_owned().await;
                let b = builder.clone();
                let result = tokio::task::spawn_blocking(move || b.run_stage(&b.plan.stages[i]))
                    .await
                    .unwrap_or(Err(Error::Interrupted));
                let ok = match result {
                    Ok(state) => Some(Arc::new(state)),
                    Err(e) => {
                        builder.failed.store(true, Ordering::SeqCst);
                        if let Ok(mut r) = builder.results.lock() {
                            r.insert(i, None);
                        }
                        let _ = tx.send(Some(false));
                        return Err(e);
                    }
                };
                if let Ok(mut r) = builder.results.lock() {
                    r.insert(i, ok);
                }
                let _ = tx.send(Some(true));
                Ok(())
            }));
        }
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Err(Error::Interrupted)) | Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(Error::Interrupted),
            }
        }
        Ok(errors)
    })
}

impl Builder {
    /// An image named in the Dockerfile: from the store, else pulled (with
    /// `--pull`, pulled once per build even when the store has it).
    pub(crate) fn image(&self, name: &str) -> std::result::Result<StoredImage, String> {
        if let Some(img) = self.pulled.lock().ok().and_then(|p| p.get(name).cloned()) {
            return Ok(img);
        }
        let local = if self.req.always_pull && self.req.images.is_some() {
            Err(berth_store::Error::NoSuchImage(name.to_string()))
        } else {
            self.store.resolve(name)
        };
        let img = match (local, &self.req.images) {
            (Ok(img), _) => return Ok(img),
            (Err(berth_store::Error::NoSuchImage(_)), Some(source)) => source
                // With cache sources the steps on it are likely all cached:
                // then nothing of it is unpacked.
                .pull(name, self.req.cache_from.is_empty())
                .map_err(|e| format!("not found in the store, and the pull failed: {e}"))?,
            (Err(berth_store::Error::NoSuchImage(_)), None) => {
                return Err(format!("{name}: not found in the local store"))
            }
            (Err(e), _) => return Err(e.to_string()),
        };
        if let Ok(mut p) = self.pulled.lock() {
            p.insert(name.to_string(), img.clone());
        }
        Ok(img)
    }

    /// The final state of a finished stage.
    pub fn stage_result(&self, i: usize) -> Result<Arc<State>> {
        match self.results.lock().ok().and_then(|r| r.get(&i).cloned()) {
            Some(Some(s)) => Ok(s),
            _ => Err(Error::Interrupted),
        }
    }

    fn stage_title(&self, stage: &Stage, pos: usize) -> String {
        let total = stage.instructions.len() + 1;
        match stage.label(self.plan.stages.len()) {
            Some(l) => format!("[{l} {pos}/{total}]"),
            None => format!("[{pos}/{total}]"),
        }
    }

    /// The instruction's first logical line (continuations joined, heredoc
    /// bodies left out), for progress titles and errors.
    pub fn instruction_text(&self, ins: &Instruction) -> String {
        let text = self
            .req
            .dockerfile
            .get(ins.span.start..ins.span.end)
            .unwrap_or("");
        let escape = self.df.escape;
        let mut out = String::new();
        for l in text.lines() {
            let t = l.trim();
            let cont = t.ends_with(escape);
            let t = if cont {
                t[..t.len() - escape.len_utf8()].trim_end()
            } else {
                t
            };
            if !t.is_empty() && !t.starts_with('#') {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(t);
            }
            if !cont {
                break;
            }
        }
        out
    }

    /// Wraps a step's failure with where it happened, as BuildKit prints it.
    pub fn step_error(&self, ins: &Instruction, reason: String) -> Error {
        let line = ins.span.start_line;
        let lines: Vec<&str> = self.req.dockerfile.lines().collect();
        let from = line.saturating_sub(3).max(1);
        let to = ins.span.end_line.min(lines.len()).min(line + 2);
        let mut excerpt = String::from("--------------------\n");
        for n in from..=to {
            let marker = if n >= line && n <= ins.span.end_line {
                ">>>"
            } else {
                "   "
            };
            let text = lines.get(n - 1).copied().unwrap_or("");
            excerpt.push_str(&format!(" {n:>3} | {marker} {text}\n"));
        }
        excerpt.push_str("--------------------");
        Error::Step {
            where_: format!("{}:{line}", self.req.dockerfile_name),
            instruction: self.instruction_text(ins),
            reason,
            excerpt,
        }
    }

    fn no_cache_for(&self, stage: &Stage) -> bool {
        self.req.no_cache
            || stage
                .name
                .as_ref()
                .is_some_and(|n| self.req.no_cache_filter.contains(n))
            || self.req.no_cache_filter.contains(&stage.index.to_string())
    }

    /// Looks `key` up unless the stage is built without cache.
    pub fn cache_lookup(&self, stage: &Stage, key: &str) -> Result<Option<CacheEntry>> {
        if self.no_cache_for(stage) {
            return Ok(None);
        }
        if let Some(e) = self.store.cache_get(key)? {
            let pairs: Vec<_> = e
                .layers
                .iter()
                .map(berth_store::image::LayerRef::from)
                .zip(e.config.rootfs.diff_ids.iter().cloned())
                .collect();
            self.trust(&pairs);
            return Ok(Some(e));
        }
        Ok(self.remote_lookup(key))
    }

    /// Takes the cached result of the step keyed `key`, if there is one.
    pub fn reuse_cached(
        &self,
        stage: &Stage,
        state: &mut State,
        key: &str,
        step: &Step,
    ) -> Result<bool> {
        match self.cache_lookup(stage, key)? {
            Some(entry) => {
                let chain = entry.settle.clone().unwrap_or_else(|| key.to_string());
                state.apply_entry(entry, chain);
                self.note_step(state, key, None);
                step.cached();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records a step that ran, and chains later steps to its result.
    pub fn finish_step(
        &self,
        state: &mut State,
        key: &str,
        step: &Step,
    ) -> std::result::Result<(), StepFailure> {
        self.cache_record(key, state)?;
        self.trust(&state.layer_pairs());
        self.note_step(state, key, None);
        state.settle(key);
        step.done();
        Ok(())
    }

    pub fn cache_record(&self, key: &str, state: &State) -> Result<()> {
        self.cache_record_settled(key, state, None)
    }

    /// Records `state` under `key`, chaining later steps to `settle`.
    pub fn cache_record_settled(
        &self,
        key: &str,
        state: &State,
        settle: Option<&str>,
    ) -> Result<()> {
        let entry = CacheEntry {
            config: state.config.clone(),
            layers: state.layers.iter().map(CachedLayer::from).collect(),
            settle: settle.map(String::from),
        };
        Ok(self.store.cache_put(key, &entry)?)
    }

    /// The state a stage starts from: its FROM.
    fn base_state(&self, stage: &Stage, step: &Step) -> Result<State> {
        let mut state = match self.plan.source(&stage.base, stage.index) {
            Source::Scratch => {
                step.done();
                let mut config = ImageConfig::new_for_host();
                config.created = Some(self.created.clone());
                // BuildKit's empty image: the default PATH and `/`.
                let c = config.config.get_or_insert_with(Default::default);
                c.env = Some(vec![format!("PATH={}", crate::state::DEFAULT_PATH)]);
                c.working_dir = Some("/".into());
                State::new(
                    config,
                    Vec::new(),
                    CacheKey::new("FROM", "scratch").finish(),
                )
            }
            Source::Stage(i) => {
                let parent = self.stage_result(i)?;
                step.done();
                // A stage built on another one sees its build args' values
                // (BuildKit keeps them in the stage's environment), but
                // RUN's history lists only the ARGs this stage declares.
                let mut s = State::new(
                    parent.config.clone(),
                    parent.layers.clone(),
                    parent.key.clone(),
                );
                s.args = parent.args.clone();
                s.args_over_env = parent.args_over_env.clone();
                s.stage = stage.index;
                return self.check_from_platform(stage, s);
            }
            Source::Image(name) => {
                let image = self.image(&name).map_err(|e| {
                    self.step_error(
                        &stage.from,
                        format!("failed to resolve source metadata for {name}: {e}"),
                    )
                })?;
                step.done();
                let key = CacheKey::new("FROM", &image.id.to_string()).finish();
                let mut config = image.config.clone();
                // A base without PATH gets the default one, as BuildKit adds it.
                let c = config.config.get_or_insert_with(Default::default);
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    env.push(format!("PATH={}", crate::state::DEFAULT_PATH));
                }
                let state = State::new(config, image.layers.clone(), key);
                self.trust(&state.layer_pairs());
                state
            }
        };
        // A new stage gets the meta ARGs only through ARG lines of its own.
        state.args = crate::vars::Vars::default();
        state.stage = stage.index;
        self.check_from_platform(stage, state)
    }

    /// `FROM --platform=...` must name the native platform.
    fn check_from_platform(&self, stage: &Stage, state: State) -> Result<State> {
        if let Command::From(f) = &stage.from.command {
            if let Some(p) = &f.platform {
                let vars = self.plan.meta_args.clone();
                let platform = crate::vars::expand_word(&self.lex, &p.value, &vars)
                    .map_err(|e| self.step_error(&stage.from, e.to_string()))?;
                crate::state::check_platform(&platform)
                    .map_err(|e| self.step_error(&stage.from, e))?;
            }
        }
        Ok(state)
    }

    fn run_stage(&self, stage: &Stage) -> Result<State> {
        let title = format!(
            "{} FROM {}",
            self.stage_title(stage, 1),
            match self.plan.source(&stage.base, stage.index) {
                Source::Image(n) => n
                    .parse::<berth_store::ImageRef>()
                    .map(|r| r.to_string())
                    .unwrap_or(n),
                _ => stage.base.clone(),
            }
        );
        let step = self.progress.step(&title);
        let mut state = self.base_state(stage, &step)?;
        // ONBUILD triggers of the base run right after FROM, then are gone.
        let triggers = state
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        for t in triggers {
            let parsed = berth_grammar::parse(&t).map_err(|e| {
                self.step_error(&stage.from, format!("invalid ONBUILD trigger {t:?}: {e}"))
            })?;
            for ins in &parsed.instructions {
                let step = self
                    .progress
                    .step(&format!("{} ONBUILD {t}", self.stage_title(stage, 1)));
                self.step(stage, &mut state, ins, &step, &stage.from)?;
            }
        }
        for (n, ins) in stage.instructions.iter().enumerate() {
            if self.failed.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            let shows = matches!(
                ins.command,
                Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir { .. }
            );
            let step = if shows {
                self.progress.step(&format!(
                    "{} {}",
                    self.stage_title(stage, n + 2),
                    self.instruction_text(ins)
                ))
            } else {
                self.progress.quiet_step()
            };
            self.step(stage, &mut state, ins, &step, ins)?;
        }
        Ok(state)
    }

    /// Runs one instruction; `at` is what errors point to (the instruction,
    /// or the FROM for ONBUILD triggers).
    fn step(
        &self,
        stage: &Stage,
        state: &mut State,
        ins: &Instruction,
        step: &Step,
        at: &Instruction,
    ) -> Result<()> {
        let result: std::result::Result<(), StepFailure> = match &ins.command {
            Command::Run(r) => self.run(stage, state, ins, r, step),
            Command::Copy(c) => self.copy(stage, state, ins, c, false, step),
            Command::Add(c) => self.copy(stage, state, ins, c, true, step),
            Command::From(_) => Err(StepFailure("FROM cannot be used here".into())),
            _ => self.metadata(stage, state, ins, step),
        };
        result.map_err(|StepFailure(reason)| {
            step.error(&reason);
            let mut reason = reason;
            let tail = step.tail();
            if !tail.is_empty() {
                reason.push_str("\nlast output:\n");
                for l in tail {
                    reason.push_str("  ");
                    reason.push_str(&l);
                    reason.push('\n');
                }
                reason.pop();
            }
            self.step_error(at, reason)
        })
    }

    /// Commits the target stage as an image and writes the outputs.
    fn export(&self, state: &State) -> Result<StoredImage> {
        let step = self.progress.step("exporting to image");
        let mut config = state.config.clone();
        if !self.req.labels.is_empty() {
            let cc = config.config.get_or_insert_with(Default::default);
            let labels = cc.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &self.req.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        self.ensure_layers(&state.layer_pairs(), false)
            .map_err(|StepFailure(e)| Error::CacheFetch(e))?;
        let layers: Vec<_> = state.layers.clone();
        let to_store = self.req.outputs.is_empty()
            || self.req.outputs.iter().any(|o| matches!(o, Output::Image));
        let tags = if to_store {
            self.req.tags.clone()
        } else {
            Vec::new()
        };
        let image = self.store.commit_image(&config, &layers, &tags)?;
        step.note(&format!("writing image {} done", image.id));
        for t in &tags {
            step.note(&format!("naming to {t} done"));
        }
        for o in &self.req.outputs {
            crate::export::write_output(self, &image, o, &step)?;
        }
        step.done();
        Ok(image)
    }
}
