//! A loaded project made real through the engine, as docker compose v2
//! does it: networks and volumes first, images built or pulled, then the
//! services in dependency order, each container created, kept, started or
//! recreated by its configuration hash, with `depends_on` conditions
//! waited on before a dependent starts.

use crate::loader::Project;
use crate::service::{self, Context, NETWORK, NUMBER, ONEOFF, PROJECT, SERVICE, VOLUME};
use berth_engine::build::{BuildContext, BuildOptions, DockerfileSource, SecretSource};
use berth_engine::model::{ContainerSummary, NetworkCreate, VolumeCreate};
use berth_engine::progress::Silent;
use berth_engine::{Engine, Error as EngineError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: what this run started is stopped again.
    #[error("canceled")]
    Canceled,
}

pub type Result<T> = std::result::Result<T, ComposeError>;

fn failed<T>(message: impl Into<String>) -> Result<T> {
    Err(ComposeError::Failed(message.into()))
}

/// Where compose's progress lines go (` Container p-web-1  Started`).
pub trait Report: Sync {
    fn line(&self, kind: &str, name: &str, state: &str);
    fn warn(&self, message: &str);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recreate {
    #[default]
    Diverged,
    Force,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Build {
    /// Build what is missing.
    #[default]
    Missing,
    Always,
    Never,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub build: Build,
    /// `--pull`: "always", "missing", "never" (none: the services' own policy).
    pub pull: Option<String>,
    pub recreate: Recreate,
    pub no_deps: bool,
    pub remove_orphans: bool,
    pub scale: BTreeMap<String, usize>,
    /// `--wait`: until running (and healthy where a healthcheck says).
    pub wait: bool,
    /// Create only (`compose create`).
    pub no_start: bool,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    pub volumes: bool,
    pub remove_orphans: bool,
    /// `--rmi local|all`.
    pub rmi: Option<String>,
    pub timeout: Option<Duration>,
}

pub struct Compose<'a> {
    pub engine: &'a Engine,
    pub project: &'a Project,
    pub report: &'a dyn Report,
    /// Set by Ctrl-C: `up` stops at the next step and takes back what it started.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

/// A container of the project, by the labels compose put on it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: usize,
    pub state: String,
    pub summary: ContainerSummary,
}

impl Member {
    fn from(s: ContainerSummary) -> Member {
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        Member {
            id: s.id.clone(),
            name: s
                .names
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            service: label(SERVICE),
            number: label(NUMBER).parse().unwrap_or(0),
            state: s.state.clone(),
            summary: s,
        }
    }
}

impl Compose<'_> {
    fn model(&self) -> &Value {
        &self.project.model
    }

    fn check_cancel(&self) -> Result<()> {
        match self.cancel {
            Some(c) if c.load(std::sync::atomic::Ordering::SeqCst) => Err(ComposeError::Canceled),
            _ => Ok(()),
        }
    }

    fn services(&self) -> serde_json::Map<String, Value> {
        self.model()
            .get("services")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// The project's containers, oldest number first; `oneoff` for `run`'s.
    pub fn members(&self, service: Option<&str>, oneoff: bool) -> Result<Vec<Member>> {
        self.members_where(service, Some(oneoff))
    }

    /// The project's containers, of `service` if given, one-off or not as
    /// `oneoff` says (both when none).
    fn members_where(&self, service: Option<&str>, oneoff: Option<bool>) -> Result<Vec<Member>> {
        let mut labels = vec![format!("{PROJECT}={}", self.project.name)];
        if let Some(o) = oneoff {
            labels.push(format!("{ONEOFF}={}", if o { "True" } else { "False" }));
        }
        if let Some(s) = service {
            labels.push(format!("{SERVICE}={s}"));
        }
        let filters = BTreeMap::from([("label".to_string(), labels)]);
        let mut out: Vec<Member> = self
            .engine
            .container_list_filtered(true, &filters)?
            .into_iter()
            .map(Member::from)
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service).then(a.number.cmp(&b.number)));
        Ok(out)
    }

    /// The services in dependency order (dependencies first, then by name).
    pub fn ordered(&self, wanted: &[String], with_deps: bool) -> Result<Vec<String>> {
        let services = self.services();
        for w in wanted {
            if !services.contains_key(w) {
                return failed(format!("no such service: {w}"));
            }
        }
        let mut chosen: BTreeSet<String> = if wanted.is_empty() {
            services.keys().cloned().collect()
        } else {
            wanted.iter().cloned().collect()
        };
        if with_deps {
            let mut todo: Vec<String> = chosen.iter().cloned().collect();
            while let Some(s) = todo.pop() {
                for d in deps(&services[&s]) {
                    if services.contains_key(&d) && chosen.insert(d.clone()) {
                        todo.push(d);
                    }
                }
            }
        }
        let mut order = Vec::new();
        let mut placed = BTreeSet::new();
        while placed.len() < chosen.len() {
            let ready: Vec<String> = chosen
                .iter()
                .filter(|s| !placed.contains(*s))
                .filter(|s| {
                    deps(&services[s.as_str()])
                        .iter()
                        .all(|d| placed.contains(d) || !chosen.contains(d))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                return failed("dependency cycle detected");
            }
            for r in ready {
                placed.insert(r.clone());
                order.push(r);
            }
        }
        Ok(order)
    }

    /// `restart [--no-deps] [SERVICE...]`: the services named (all when
    /// none), and, unless `no_deps`, every service that depends on one of
    /// them with `restart: true`, in dependency order.
    pub fn restart(
        &self,
        wanted: &[String],
        no_deps: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let services = self.services();
        let mut chosen: BTreeSet<String> = self.ordered(wanted, false)?.into_iter().collect();
        if !no_deps {
            loop {
                let more: Vec<String> = services
                    .iter()
                    .filter(|(name, _)| !chosen.contains(*name))
                    .filter(|(_, s)| {
                        s.get("depends_on")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                            .any(|(dep, d)| {
                                chosen.contains(dep)
                                    && d.get("restart").and_then(Value::as_bool) == Some(true)
                            })
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                if more.is_empty() {
                    break;
                }
                chosen.extend(more);
            }
        }
        let chosen: Vec<String> = chosen.into_iter().collect();
        for name in self.ordered(&chosen, false)? {
            let grace = self.grace(&services[&name], timeout);
            for m in self.members(Some(&name), false)? {
                self.check_cancel()?;
                self.report.line("Container", &m.name, "Restarting");
                self.engine.container_restart(&m.id, grace)?;
                self.report.line("Container", &m.name, "Started");
            }
        }
        Ok(())
    }

    fn network_name(&self, key: &str) -> String {
        self.model()
            .get("networks")
            .and_then(|n| n.get(key))
            .and_then(|n| n.get("name"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("{}_{key}", self.project.name))
    }

    /// A network's or volume's labels: its own, and compose's (`kind` is
    /// the label that names its key).
    fn resource_labels(&self, def: &Value, kind: &str, key: &str) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = match def.get("labels") {
            Some(l) => crate::canonical::to_mapping(l.clone(), true)
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
            None => BTreeMap::new(),
        };
        labels.insert(PROJECT.into(), self.project.name.clone());
        labels.insert(kind.into(), key.to_string());
        labels.insert(service::VERSION.into(), service::COMPOSE_VERSION.into());
        labels
    }

    /// The project's networks the given services use, made if missing.
    fn ensure_networks(&self, services: &[String]) -> Result<()> {
        let all = self.services();
        let mut used = BTreeSet::new();
        for s in services {
            if let Some(Value::Object(n)) = all[s].get("networks") {
                used.extend(n.keys().cloned());
            }
        }
        let defs = self.model().get("networks").cloned().unwrap_or(json!({}));
        for key in used {
            let def = defs.get(&key).cloned().unwrap_or(json!({}));
            let name = self.network_name(&key);
            let external = def.get("external").is_some_and(|e| e == true);
            if self.engine.network_inspect(&name).is_ok() {
                continue;
            }
            if external {
                return failed(format!(
                    "network {name} declared as external, but could not be found"
                ));
            }
            self.report.line("Network", &name, "Creating");
            let labels = self.resource_labels(&def, NETWORK, &key);
            let ipam = def.get("ipam").map(|i| {
                json!({
                    "Driver": i.get("driver").and_then(Value::as_str).unwrap_or("default"),
                    "Config": i.get("config").and_then(Value::as_array).map(|c| c.iter().map(|e| json!({
                        "Subnet": e.get("subnet").and_then(Value::as_str).unwrap_or_default(),
                        "Gateway": e.get("gateway").and_then(Value::as_str).unwrap_or_default(),
                        "IPRange": e.get("ip_range").and_then(Value::as_str).unwrap_or_default(),
                    })).collect::<Vec<_>>()).unwrap_or_default(),
                })
            });
            let req = json!({
                "Name": name,
                "Driver": def.get("driver").and_then(Value::as_str).unwrap_or("bridge"),
                "Internal": def.get("internal").and_then(Value::as_bool).unwrap_or(false),
                "Attachable": def.get("attachable").and_then(Value::as_bool).unwrap_or(false),
                "IPAM": ipam,
                "Options": def.get("driver_opts").cloned().unwrap_or(json!({})),
                "Labels": labels,
                "CheckDuplicate": true,
            });
            let req: NetworkCreate = serde_json::from_value(req)
                .map_err(|e| ComposeError::Failed(format!("networks.{key}: {e}")))?;
            self.engine.network_create(req)?;
            self.report.line("Network", &name, "Created");
        }
        Ok(())
    }

    /// The named volumes the given services mount, made if missing.
    fn ensure_volumes(&self, services: &[String]) -> Result<()> {
        let all = self.services();
        let defs = self.model().get("volumes").cloned().unwrap_or(json!({}));
        let mut used = BTreeSet::new();
        for s in services {
            for v in all[s]
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if v.get("type").and_then(Value::as_str) == Some("volume") {
                    if let Some(src) = v.get("source").and_then(Value::as_str) {
                        if defs.get(src).is_some() {
                            used.insert(src.to_string());
                        }
                    }
                }
            }
        }
        for key in used {
            let def = &defs[&key];
            let name = def
                .get("name")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("{}_{key}", self.project.name));
            if self.engine.volume_inspect(&name).is_ok() {
                continue;
            }
            if def.get("external").is_some_and(|e| e == true) {
                return failed(format!("external volume \"{name}\" not found"));
            }
            self.report
                .line("Volume", &format!("\"{name}\""), "Creating");
            let labels = self.resource_labels(def, VOLUME, &key);
            let opts = def
                .get("driver_opts")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), crate::merge::scalar_text(v).unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            self.engine.volume_create_with(&VolumeCreate {
                name: name.clone(),
                driver: def
                    .get("driver")
                    .and_then(Value::as_str)
                    .unwrap_or("local")
                    .to_string(),
                driver_opts: opts,
                labels,
            })?;
            self.report
                .line("Volume", &format!("\"{name}\""), "Created");
        }
        Ok(())
    }

    /// Builds service `name`'s image.
    pub fn build_service(
        &self,
        name: &str,
        no_cache: bool,
        progress: Arc<dyn berth_engine::ProgressSink>,
    ) -> Result<String> {
        let services = self.services();
        let s = &services[name];
        let Some(b) = s.get("build") else {
            return failed(format!("service {name} has no build section"));
        };
        let context = b.get("context").and_then(Value::as_str).unwrap_or(".");
        let context = crate::paths::join(&self.project.working_dir, context);
        let dockerfile = match b.get("dockerfile_inline").and_then(Value::as_str) {
            Some(text) => DockerfileSource::Text(text.to_string()),
            None => {
                let f = b
                    .get("dockerfile")
                    .and_then(Value::as_str)
                    .unwrap_or("Dockerfile");
                DockerfileSource::Path(Some(context.join(f).to_string_lossy().into_owned()))
            }
        };
        let strings = |k: &str| -> BTreeMap<String, String> {
            b.get(k)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| crate::merge::scalar_text(v).map(|v| (k.clone(), v)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let list = |k: &str| -> Vec<String> {
            b.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(crate::merge::scalar_text).collect())
                .unwrap_or_default()
        };
        let image = service::image_name(&self.project.name, name, s);
        let mut tags = vec![image.clone()];
        tags.extend(
            b.get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from),
        );
        // Secrets from the environment reach the builder as files, since
        // the project's environment includes `.env`, which the process's lacks.
        let secret_dir = tempfile::tempdir().map_err(|e| ComposeError::Failed(e.to_string()))?;
        let secrets = self.build_secrets(name, b, secret_dir.path())?;
        // berth builds for one platform: the service's, or the one
        // `build.platforms` names.
        let mut platforms: BTreeSet<&str> = b
            .get("platforms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Some(p) = s.get("platform").and_then(Value::as_str) {
            if !platforms.is_empty() && !platforms.contains(p) {
                return failed(format!(
                    "services.{name}.build.platforms must include the service's platform {p}"
                ));
            }
            platforms = BTreeSet::from([p]);
        }
        if platforms.len() > 1 {
            return failed(format!(
                "services.{name}.build.platforms: berth builds for one platform at a time, not {}",
                platforms.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let platform = platforms.into_iter().next().map(String::from);
        let opts = BuildOptions {
            context: BuildContext::Dir(context),
            dockerfile,
            tags,
            build_args: strings("args"),
            labels: strings("labels"),
            target: b.get("target").and_then(Value::as_str).map(String::from),
            no_cache: no_cache || b.get("no_cache").and_then(Value::as_bool) == Some(true),
            no_cache_filter: Vec::new(),
            pull: b.get("pull").and_then(Value::as_bool) == Some(true),
            push: false,
            platform,
            outputs: Vec::new(),
            secrets,
            network: b.get("network").and_then(Value::as_str).map(String::from),
            cache_from: list("cache_from"),
            cache_to: list("cache_to"),
        };
        let built = self.engine.build(opts, progress)?;
        drop(secret_dir);
        Ok(built.image_id)
    }

    /// `build.secrets`: each by its target (the id a `RUN --mount=type=secret`
    /// names, the source's name by default), from the project's secrets.
    fn build_secrets(
        &self,
        name: &str,
        b: &Value,
        dir: &std::path::Path,
    ) -> Result<BTreeMap<String, SecretSource>> {
        let mut out = BTreeMap::new();
        for item in b
            .get("secrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (source, target) = match item {
                Value::String(s) => (s.as_str(), s.as_str()),
                other => {
                    let source = other.get("source").and_then(Value::as_str).unwrap_or("");
                    let target = other
                        .get("target")
                        .and_then(Value::as_str)
                        .unwrap_or(source);
                    (source, target)
                }
            };
            let Some(def) = self.model().get("secrets").and_then(|d| d.get(source)) else {
                return failed(format!(
                    "services.{name}.build.secrets: undefined secret {source:?}"
                ));
            };
            let secret = if let Some(file) = def.get("file").and_then(Value::as_str) {
                SecretSource::File(crate::paths::join(&self.project.working_dir, file))
            } else if let Some(var) = def.get("environment").and_then(Value::as_str) {
                let Some(value) = self.project.environment.get(var) else {
                    return failed(format!(
                        "services.{name}.build.secrets: {source} comes from the environment variable {var}, which is not set"
                    ));
                };
                let path = dir.join(format!("{}", out.len()));
                std::fs::write(&path, value).map_err(|e| {
                    ComposeError::Failed(format!("cannot stage secret {source}: {e}"))
                })?;
                SecretSource::File(path)
            } else {
                return failed(format!(
                    "services.{name}.build.secrets: {source} is neither file- nor environment-based"
                ));
            };
            out.insert(target.to_string(), secret);
        }
        Ok(out)
    }

    /// A service's `platform:` against the image it runs, as the daemon
    /// checks it on create.
    fn check_platform(&self, name: &str, s: &Value) -> Result<()> {
        let Some(wanted) = s.get("platform").and_then(Value::as_str) else {
            return Ok(());
        };
        let image = service::image_name(&self.project.name, name, s);
        let info = self.engine.image_inspect(&image)?;
        let mut actual = format!("{}/{}", info.os, info.architecture);
        if let Some(v) = info.variant.as_deref().filter(|v| !v.is_empty()) {
            actual = format!("{actual}/{v}");
        }
        let want: Vec<&str> = wanted.split('/').collect();
        let have: Vec<&str> = actual.split('/').collect();
        let matches = want.len() >= 2
            && want[0] == have[0]
            && want[1] == have[1]
            && (want.len() < 3 || have.get(2) == Some(&want[2]));
        if !matches {
            return failed(format!(
                "image with reference {image} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
            ));
        }
        Ok(())
    }

    /// The images the services need: built or pulled as their policies say.
    fn ensure_images(
        &self,
        services: &[String],
        opts: &UpOptions,
        progress: &Arc<dyn berth_engine::ProgressSink>,
    ) -> Result<()> {
        let all = self.services();
        for name in services {
            let s = &all[name];
            let image = service::image_name(&self.project.name, name, s);
            let present = self.engine.image_inspect(&image).is_ok();
            let policy = opts
                .pull
                .clone()
                .or_else(|| {
                    s.get("pull_policy")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| "missing".into());
            if s.get("build").is_some() {
                let build = match opts.build {
                    Build::Always => true,
                    Build::Never => false,
                    Build::Missing => !present || policy == "build",
                };
                if build {
                    self.build_service(name, false, progress.clone())?;
                }
                if build || present {
                    self.check_platform(name, s)?;
                    continue;
                }
            }
            let pull = match policy.as_str() {
                "always" => true,
                "never" => false,
                _ => !present,
            };
            if pull {
                self.report.line("Image", &image, "Pulling");
                let platform = s.get("platform").and_then(Value::as_str);
                self.engine.image_pull(&image, platform, Arc::new(Silent))?;
                self.report.line("Image", &image, "Pulled");
            } else if !present {
                return failed(format!("No such image: {image}"));
            }
            self.check_platform(name, s)?;
        }
        Ok(())
    }

    fn container_name(&self, name: &str, s: &Value, number: usize) -> String {
        match s.get("container_name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => format!("{}-{name}-{number}", self.project.name),
        }
    }

    /// The container request of replica `number` of service `name`.
    fn request(
        &self,
        name: &str,
        s: &Value,
        number: usize,
        oneoff: bool,
    ) -> Result<berth_engine::model::ContainerCreate> {
        let members = self.members(None, false)?;
        let container_of = |svc: &str| {
            members
                .iter()
                .find(|m| m.service == svc)
                .map(|m| m.id.clone())
        };
        let working_dir = self.project.working_dir.display().to_string();
        let files = self.project.config_files.join(",");
        let cx = Context {
            project: &self.project.name,
            model: self.model(),
            working_dir: &working_dir,
            config_files: &files,
            container_of: &container_of,
        };
        service::container_request(&cx, name, s, number, oneoff).map_err(ComposeError::Failed)
    }

    /// Creates replica `number` of service `name`.
    /// `announce`: the Creating/Created lines (a recreate has its own).
    fn create(&self, name: &str, s: &Value, number: usize, announce: bool) -> Result<String> {
        let cname = self.container_name(name, s, number);
        if announce {
            self.report.line("Container", &cname, "Creating");
        }
        let req = self.request(name, s, number, false)?;
        let files = self.injected(name, s)?;
        let created = self.engine.container_create(Some(&cname), req)?;
        for w in created.warnings {
            self.report.warn(&w);
        }
        self.inject(&created.id, &cname, &files)?;
        if announce {
            self.report.line("Container", &cname, "Created");
        }
        Ok(created.id)
    }

    fn injected(&self, name: &str, s: &Value) -> Result<Vec<crate::injected::InjectedFile>> {
        crate::injected::files(self.model(), name, s, &self.project.environment)
            .map_err(ComposeError::Failed)
    }

    /// Copies the non-file secrets and configs into a created container;
    /// a container they cannot be copied into is removed again.
    fn inject(&self, id: &str, cname: &str, files: &[crate::injected::InjectedFile]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let copied = crate::injected::tar(files)
            .map_err(|e| ComposeError::Failed(e.to_string()))
            .and_then(|t| {
                Ok(self
                    .engine
                    .container_archive_put(id, "/", &mut t.as_slice())?)
            });
        if let Err(e) = copied {
            let _ = self.engine.container_remove(id, true, false);
            return failed(format!(
                "cannot copy the secrets and configs into {cname}: {e}"
            ));
        }
        Ok(())
    }

    fn start(&self, id: &str, cname: &str) -> Result<()> {
        self.report.line("Container", cname, "Starting");
        self.engine.container_start(id)?;
        self.report.line("Container", cname, "Started");
        Ok(())
    }

    fn remove(&self, m: &Member, timeout: Duration) -> Result<()> {
        if m.state == "running" || m.state == "paused" || m.state == "restarting" {
            self.report.line("Container", &m.name, "Stopping");
            self.engine.container_stop(&m.id, timeout)?;
            self.report.line("Container", &m.name, "Stopped");
        }
        self.report.line("Container", &m.name, "Removing");
        self.engine.container_remove(&m.id, true, false)?;
        self.report.line("Container", &m.name, "Removed");
        Ok(())
    }

    fn grace(&self, s: &Value, timeout: Option<Duration>) -> Duration {
        timeout.unwrap_or_else(|| {
            s.get("stop_grace_period")
                .and_then(Value::as_str)
                .and_then(|d| berth_engine::units::duration(d).ok())
                .map(|n| Duration::from_nanos(n.max(0) as u64))
                .unwrap_or(Duration::from_secs(10))
        })
    }

    /// Waits until service `dep`'s containers meet `condition`.
    fn wait_condition(
        &self,
        dependent: &str,
        dep: &str,
        condition: &str,
        required: bool,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let waits = condition != "service_started";
        self.check_cancel()?;
        if waits {
            for m in self.members(Some(dep), false)? {
                self.report.line("Container", &m.name, "Waiting");
            }
        }
        loop {
            let members = self.members(Some(dep), false)?;
            if members.is_empty() {
                if !required {
                    self.report
                        .warn(&format!("optional dependency {dep:?} is not running"));
                    return Ok(());
                }
                return failed(format!(
                    "service {dependent:?} depends on {dep:?}, which has no container"
                ));
            }
            let mut all_met = true;
            for m in &members {
                let info = self.engine.container_inspect(&m.id)?;
                let st = &info.state;
                match condition {
                    "service_healthy" => {
                        let health = st.health.as_ref().map(|h| h.status.clone());
                        match health.as_deref() {
                            Some("healthy") => {}
                            Some("unhealthy") => {
                                return failed(format!("dependency failed to start: container {} is unhealthy", m.name))
                            }
                            None => {
                                return failed(format!(
                                    "dependency failed to start: container {} has no healthcheck configured",
                                    m.name
                                ))
                            }
                            _ => all_met = false,
                        }
                        if !st.running && health.as_deref() != Some("healthy") {
                            return failed(format!(
                                "dependency failed to start: container {} exited ({})",
                                m.name, st.exit_code
                            ));
                        }
                    }
                    "service_completed_successfully" => {
                        if st.running || st.status == "created" || st.restarting {
                            all_met = false;
                        } else if st.exit_code != 0 {
                            return failed(format!(
                                "service {dep:?} didn't complete successfully: exit {}",
                                st.exit_code
                            ));
                        }
                    }
                    _ => {
                        if st.status == "created" {
                            all_met = false;
                        }
                    }
                }
            }
            if all_met {
                if waits {
                    let state = if condition == "service_healthy" {
                        "Healthy"
                    } else {
                        "Exited"
                    };
                    for m in &members {
                        self.report.line("Container", &m.name, state);
                    }
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return failed(format!("timed out waiting for {dep:?} ({condition})"));
            }
            std::thread::sleep(Duration::from_millis(100));
            self.check_cancel()?;
        }
    }

    /// `up` (and `create`): the services converged on the project. After
    /// Ctrl-C, what this run started is stopped again.
    pub fn up(
        &self,
        opts: &UpOptions,
        progress: Arc<dyn berth_engine::ProgressSink>,
    ) -> Result<Vec<Member>> {
        let mut started = Vec::new();
        let result = self.converge(opts, progress, &mut started);
        if matches!(result, Err(ComposeError::Canceled)) {
            for (id, name) in started.iter().rev() {
                self.report.line("Container", name, "Stopping");
                if self
                    .engine
                    .container_stop(id, Duration::from_secs(10))
                    .is_ok()
                {
                    self.report.line("Container", name, "Stopped");
                }
            }
        }
        result
    }

    fn converge(
        &self,
        opts: &UpOptions,
        progress: Arc<dyn berth_engine::ProgressSink>,
        started: &mut Vec<(String, String)>,
    ) -> Result<Vec<Member>> {
        let all = self.services();
        for (name, s) in &all {
            let mut keys = service::unsupported_keys(s);
            keys.extend(service::unsupported_build_keys(s));
            for k in keys {
                self.report.warn(&format!(
                    "services.{name}.{k} is not supported by berth and is ignored"
                ));
            }
        }
        let order = self.ordered(&opts.services, !opts.no_deps)?;
        // Orphans: containers of services the files no longer have.
        let orphans: Vec<Member> = self
            .members(None, false)?
            .into_iter()
            .filter(|m| {
                !all.contains_key(&m.service) && !self.project.disabled.contains(&m.service)
            })
            .collect();
        if !orphans.is_empty() {
            if opts.remove_orphans {
                for o in &orphans {
                    self.remove(o, opts.timeout.unwrap_or(Duration::from_secs(10)))?;
                }
            } else {
                let names: Vec<&str> = orphans.iter().map(|o| o.name.as_str()).collect();
                self.report.warn(&format!(
                    "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    names.join(" ")
                ));
            }
        }
        self.ensure_images(&order, opts, &progress)?;
        self.ensure_networks(&order)?;
        self.ensure_volumes(&order)?;
        // Compose v2's two passes: every container created (or recreated)
        // first, then each service started in dependency order once what it
        // depends on meets its condition.
        let mut to_start: BTreeMap<&String, Vec<(String, String)>> = BTreeMap::new();
        let mut recreated: BTreeSet<&String> = BTreeSet::new();
        for name in &order {
            self.check_cancel()?;
            let s = &all[name];
            let want = opts
                .scale
                .get(name)
                .copied()
                .unwrap_or_else(|| service::replicas(s));
            let hash = service::config_hash(s);
            let image_id = self
                .engine
                .image_inspect(&service::image_name(&self.project.name, name, s))
                .map(|i| i.id)
                .ok();
            let existing = self.members(Some(name), false)?;
            let grace = self.grace(s, opts.timeout);
            for m in existing.iter().filter(|m| m.number > want || m.number == 0) {
                self.remove(m, grace)?;
            }
            let starts = to_start.entry(name).or_default();
            for number in 1..=want {
                let current = existing.iter().find(|m| m.number == number);
                let id = match current {
                    Some(m) => {
                        let same_hash = m.summary.labels.get(service::CONFIG_HASH) == Some(&hash);
                        let same_image =
                            image_id.as_deref().is_none_or(|i| i == m.summary.image_id);
                        let recreate = match opts.recreate {
                            Recreate::Force => true,
                            Recreate::Never => false,
                            Recreate::Diverged => !same_hash || !same_image,
                        };
                        if recreate {
                            self.report.line("Container", &m.name, "Recreate");
                            if m.state == "running" || m.state == "paused" {
                                self.engine.container_stop(&m.id, grace)?;
                            }
                            self.engine.container_remove(&m.id, true, false)?;
                            let id = self.create(name, s, number, false)?;
                            self.report.line("Container", &m.name, "Recreated");
                            recreated.insert(name);
                            Some(id)
                        } else if m.state == "running" {
                            self.report.line("Container", &m.name, "Running");
                            None
                        } else {
                            Some(m.id.clone())
                        }
                    }
                    None => Some(self.create(name, s, number, true)?),
                };
                if let Some(id) = id {
                    starts.push((id, self.container_name(name, s, number)));
                }
            }
        }
        let mut touched = Vec::new();
        for name in &order {
            let s = &all[name];
            if !opts.no_start {
                let mut restart = false;
                for (dep, d) in s
                    .get("depends_on")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    if !order.contains(dep) {
                        continue;
                    }
                    let condition = d
                        .get("condition")
                        .and_then(Value::as_str)
                        .unwrap_or("service_started");
                    let required = d.get("required").and_then(Value::as_bool).unwrap_or(true);
                    self.wait_condition(name, dep, condition, required)?;
                    // `restart: true`: a dependent follows its dependency's update.
                    restart |= recreated.contains(dep)
                        && d.get("restart").and_then(Value::as_bool).unwrap_or(false);
                }
                let starts = to_start.remove(name).unwrap_or_default();
                if restart && !recreated.contains(name) {
                    self.restart_running(name, s, opts.timeout, &starts)?;
                }
                for (id, cname) in starts {
                    self.check_cancel()?;
                    self.start(&id, &cname)?;
                    started.push((id, cname));
                }
            }
            touched.extend(self.members(Some(name), false)?);
        }
        // Dependents outside the services named follow an update too.
        if !opts.no_start {
            for (name, s) in all.iter().filter(|(n, _)| !order.contains(n)) {
                let follows = s
                    .get("depends_on")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .any(|(dep, d)| {
                        recreated.contains(dep)
                            && d.get("restart").and_then(Value::as_bool) == Some(true)
                    });
                if follows {
                    self.restart_running(name, s, opts.timeout, &[])?;
                }
            }
        }
        if opts.wait && !opts.no_start {
            let waited: BTreeSet<&String> = touched.iter().map(|m| &m.service).collect();
            for svc in waited {
                let s = &all[svc];
                let condition = if s.get("healthcheck").is_some() {
                    "service_healthy"
                } else {
                    "service_started"
                };
                self.wait_condition("", svc, condition, true)?;
            }
        }
        Ok(touched)
    }

    /// Restarts service `name`'s running containers but those in `except`
    /// (`depends_on.restart`: a dependent follows its dependency's update).
    fn restart_running(
        &self,
        name: &str,
        s: &Value,
        timeout: Option<Duration>,
        except: &[(String, String)],
    ) -> Result<()> {
        let grace = self.grace(s, timeout);
        for m in self.members(Some(name), false)? {
            if m.state == "running" && !except.iter().any(|(id, _)| *id == m.id) {
                self.check_cancel()?;
                self.report.line("Container", &m.name, "Restarting");
                self.engine.container_restart(&m.id, grace)?;
                self.report.line("Container", &m.name, "Restarted");
            }
        }
        Ok(())
    }

    /// `down`: the project's containers, then its networks (and volumes
    /// with `-v`, images with `--rmi`).
    pub fn down(&self, opts: &DownOptions) -> Result<()> {
        let all = self.services();
        let mut members = self.members_where(None, None)?;
        // Dependents first.
        let order = self.ordered(&[], true).unwrap_or_default();
        members.sort_by_key(|m| {
            std::cmp::Reverse(
                order
                    .iter()
                    .position(|s| *s == m.service)
                    .unwrap_or(usize::MAX),
            )
        });
        let doomed: Vec<&Member> = members
            .iter()
            .filter(|m| all.contains_key(&m.service) || opts.remove_orphans)
            .collect();
        // Stopped together, as compose does: a slow one does not hold the rest.
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = doomed
                .iter()
                .map(|m| {
                    let grace = all
                        .get(&m.service)
                        .map(|s| self.grace(s, opts.timeout))
                        .unwrap_or(Duration::from_secs(10));
                    scope.spawn(move || self.remove(m, grace))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| failed("a removal panicked")))
                .collect()
        });
        for r in results {
            r?;
        }
        // Networks the project made.
        let filters = vec![(
            "label".to_string(),
            format!("{PROJECT}={}", self.project.name),
        )];
        for n in self.engine.network_list(&filters)? {
            self.report.line("Network", &n.name, "Removing");
            match self.engine.network_remove(&n.name) {
                Ok(()) => self.report.line("Network", &n.name, "Removed"),
                Err(e) => self.report.warn(&format!("network {}: {e}", n.name)),
            }
        }
        if opts.volumes {
            let filters = BTreeMap::from([(
                "label".to_string(),
                vec![format!("{PROJECT}={}", self.project.name)],
            )]);
            for v in self.engine.volume_list_filtered(&filters)? {
                self.report.line("Volume", &v.name, "Removing");
                self.engine.volume_remove(&v.name)?;
                self.report.line("Volume", &v.name, "Removed");
            }
        }
        if let Some(which) = &opts.rmi {
            for (name, s) in &all {
                let local = s.get("image").is_none();
                if which == "all" || local {
                    let image = service::image_name(&self.project.name, name, s);
                    if self.engine.image_inspect(&image).is_ok() {
                        self.report.line("Image", &image, "Removing");
                        self.engine.image_remove(&image, false)?;
                        self.report.line("Image", &image, "Removed");
                    }
                }
            }
        }
        Ok(())
    }
}

fn deps(s: &Value) -> Vec<String> {
    s.get("depends_on")
        .and_then(Value::as_object)
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

/// `compose run`: what the one-off container differs from the service in.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub service: String,
    pub command: Vec<String>,
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub name: Option<String>,
    pub remove: bool,
    pub service_ports: bool,
    pub no_deps: bool,
    pub tty: bool,
    pub interactive: bool,
    pub labels: Vec<String>,
}

impl Compose<'_> {
    /// Creates the one-off container of `compose run` (its dependencies
    /// up first, unless `no_deps`); its ID and name.
    pub fn create_oneoff(
        &self,
        opts: &RunOptions,
        progress: Arc<dyn berth_engine::ProgressSink>,
    ) -> Result<(String, String)> {
        let all = self.services();
        let Some(base) = all.get(&opts.service) else {
            return failed(format!("no such service: {}", opts.service));
        };
        let deps = deps(base);
        if !opts.no_deps && !deps.is_empty() {
            let up = UpOptions {
                services: deps.into_iter().filter(|d| all.contains_key(d)).collect(),
                ..UpOptions::default()
            };
            self.up(&up, progress.clone())?;
        }
        let only = vec![opts.service.clone()];
        self.ensure_images(&only, &UpOptions::default(), &progress)?;
        self.ensure_networks(&only)?;
        self.ensure_volumes(&only)?;
        let mut s = base.clone();
        if let Some(m) = s.as_object_mut() {
            if !opts.command.is_empty() {
                m.insert("command".into(), json!(opts.command));
            }
            if let Some(e) = &opts.entrypoint {
                let words = shlex::split(e).unwrap_or_else(|| vec![e.clone()]);
                m.insert("entrypoint".into(), json!(words));
            }
            if !opts.service_ports {
                m.shift_remove("ports");
            }
            // One-off containers restart never (compose's rule).
            m.shift_remove("restart");
            m.shift_remove("container_name");
            let env = m.entry("environment").or_insert(json!({}));
            if let Value::Object(env) = env {
                for e in &opts.env {
                    match e.split_once('=') {
                        Some((k, v)) => env.insert(k.into(), json!(v)),
                        None => env.insert(e.clone(), json!(std::env::var(e).ok())),
                    };
                }
            }
            let labels = m.entry("labels").or_insert(json!({}));
            if let Value::Object(l) = labels {
                for e in &opts.labels {
                    let (k, v) = e.split_once('=').unwrap_or((e, ""));
                    l.insert(k.into(), json!(v));
                }
            }
            if let Some(u) = &opts.user {
                m.insert("user".into(), json!(u));
            }
            if let Some(w) = &opts.workdir {
                m.insert("working_dir".into(), json!(w));
            }
            m.insert("tty".into(), json!(opts.tty));
            m.insert("stdin_open".into(), json!(opts.interactive));
        }
        let suffix: String = {
            let mut bytes = [0u8; 6];
            let _ = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let cname = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-run-{suffix}", self.project.name, opts.service));
        let mut req = self.request(&opts.service, &s, 1, true)?;
        req.config.attach_stdout = true;
        req.config.attach_stderr = true;
        req.config.attach_stdin = opts.interactive;
        req.config.stdin_once = opts.interactive;
        req.host_config.auto_remove = opts.remove;
        let files = self.injected(&opts.service, &s)?;
        let created = self.engine.container_create(Some(&cname), req)?;
        for w in created.warnings {
            self.report.warn(&w);
        }
        self.inject(&created.id, &cname, &files)?;
        Ok((created.id, cname))
    }
}
