//! What a stage has after each step: the image config and layers so far,
//! the step's cache key, and the ARGs in scope (never stored in the image).

use crate::vars::Vars;
use berth_store::image::{ContainerConfig, History, ImageConfig, LayerRef};
use berth_store::{CacheEntry, Digest, Layer};

#[derive(Debug, Clone)]
pub struct State {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    /// The cache key of the last step.
    pub key: String,
    /// ARGs declared in this stage, with their values.
    pub args: Vars,
    /// The names of the ARGs declared so far (with or without a value), in
    /// declaration order: RUN's history shows them all.
    pub arg_names: Vec<String>,
    /// Names an ARG set after an ENV of the same name: BuildKit's ARG
    /// writes its value into the stage's environment, so RUN and later
    /// expansions see the ARG's value (the image's Env keeps the ENV's)
    /// until an ENV sets the name again.
    pub args_over_env: Vec<String>,
    /// A CMD came earlier in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// The stage's index in the plan.
    pub stage: usize,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl State {
    pub fn new(config: ImageConfig, layers: Vec<LayerRef>, key: String) -> State {
        State {
            config,
            layers,
            key,
            args: Vars::default(),
            arg_names: Vec::new(),
            args_over_env: Vec::new(),
            cmd_set: false,
            stage: 0,
        }
    }

    pub fn container(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    pub fn env_list(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
    }

    /// What instructions are expanded with: ARGs, then ENV over them
    /// (but under an ARG set after it).
    pub fn vars(&self) -> Vars {
        let mut v = self.args.overlaid(&Vars::from_env(&self.env_list()));
        for k in &self.args_over_env {
            if let Some(a) = self.args.get(k) {
                v.set(k, a);
            }
        }
        v
    }

    /// The image's Env as a step runs with it: an ARG set after an ENV of
    /// the same name gives its value.
    pub fn run_env_list(&self) -> Vec<String> {
        let mut env = self.env_list();
        for k in &self.args_over_env {
            if let Some(a) = self.args.get(k) {
                set_env(&mut env, k, a);
            }
        }
        env
    }

    pub fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    pub fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    pub fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// Layers paired with their diff IDs, oldest first.
    pub fn layer_pairs(&self) -> Vec<(LayerRef, Digest)> {
        self.layers
            .iter()
            .cloned()
            .zip(self.config.rootfs.diff_ids.iter().cloned())
            .collect()
    }

    /// Takes a cached step's result.
    pub fn apply_entry(&mut self, entry: CacheEntry, key: String) {
        let mut config = entry.config;
        // The entry's history up to this step is the same steps as ours, but
        // its ARG entries may show other values (an ARG's value is not in
        // its key, so later steps stay cached when only the value changed):
        // ours are kept, and the entries this step added are taken.
        let have = self.config.history.len();
        if config.history.len() >= have {
            let added = config.history.split_off(have);
            config.history = std::mem::take(&mut self.config.history);
            config.history.extend(added);
        }
        self.config = config;
        self.layers = entry.layers.iter().map(LayerRef::from).collect();
        self.settle(&key);
    }

    /// The key later steps chain to: the step's key and what it gave (the
    /// layers so far). A step run again that gives other content (a stage
    /// under `--no-cache-filter`) invalidates what follows; one that gives
    /// the same content does not.
    pub fn settle(&mut self, step_key: &str) {
        let mut k = crate::key::CacheKey::new("RESULT", step_key);
        for d in &self.config.rootfs.diff_ids {
            k.field(&d.to_string());
        }
        self.key = k.finish();
    }

    /// Records a step in the history, with its layer when it made one.
    pub fn commit(&mut self, created: &str, created_by: String, layer: Option<Layer>) {
        self.commit_config(created);
        self.push_history(created, created_by, layer);
    }

    /// A step that changes the config and writes no history (ONBUILD).
    pub fn commit_config(&mut self, created: &str) {
        self.config.created = Some(created.to_string());
    }

    fn push_history(&mut self, created: &str, created_by: String, layer: Option<Layer>) {
        let empty_layer = layer.is_none();
        if let Some(l) = layer {
            self.config.rootfs.diff_ids.push(l.diff_id.clone());
            self.layers.push(l.to_ref());
        }
        self.config.history.push(History {
            created: Some(created.to_string()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
            ..Default::default()
        });
    }
}

/// Sets `KEY=value` in an env list, replacing an earlier value.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == key) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Only the native platform can be built (no emulation here).
pub fn check_platform(platform: &str) -> Result<(), String> {
    let (os, arch, variant) = berth_store::image::host_platform();
    let mut parts = platform.split('/');
    let p_os = parts.next().unwrap_or("");
    let p_arch = parts.next().unwrap_or(arch);
    let p_arch = match p_arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let p_variant = parts.next();
    let variant_ok = match (p_variant, variant) {
        (None, _) => true,
        (Some(v), Some(h)) => v == h,
        (Some(_), None) => false,
    };
    if p_os == os && p_arch == arch && variant_ok {
        Ok(())
    } else {
        Err(format!(
            "platform {platform:?} cannot be built on this {os}/{arch} machine (berth builds for the native platform only)"
        ))
    }
}
