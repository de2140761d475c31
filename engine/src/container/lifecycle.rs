//! Starting, stopping, killing, waiting for and removing containers. Each
//! run of a container has a supervisor: a process of its own
//! (`berth __supervise ID`) for a detached start, the calling process for
//! an attached one.

use super::attach::{AttachEnd, AttachOptions};
use super::supervisor_process::{self, SupervisorProcess};
use super::{send_signal, signal_of, wait_stopped};
use crate::error::{fail, Error, Result};
use crate::helper::berth_exe;
use crate::Engine;
use berth_runner::attach::{AttachHub, STDERR};
use berth_runner::container::{Containers, Record, Status};
use berth_runner::runtime_process::BuiltinRuntime;
use berth_runner::supervisor::{supervise, Supervision};
use berth_runner::Bundle;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set for a supervisor whose container starts once a client attached:
/// its first client, on descriptor `ATTACH_FD`.
pub(super) const ATTACH_WAIT: &str = "BERTH_ATTACH_WAIT";
/// Set for a supervisor made for a client that attached to a created
/// container: it serves the socket and runs the container at a START frame
/// (the start request that follows).
pub(super) const START_WAIT: &str = "BERTH_START_WAIT";
pub(super) const ATTACH_FD: i32 = 3;

/// The marker file of a container stopped by the user.
const STOPPED: &str = "stopped-by-user";

/// Waits for a supervisor on a thread of its own, so that a long-lived
/// caller leaves no zombie (the supervisor runs in a session of its own and
/// outlives this process if need be).
fn reap_later(mut child: SupervisorProcess) {
    // Signals are for the attachment's proxy, never for this thread.
    let mut set = nix::sys::signal::SigSet::empty();
    for s in berth_runner::linux::FORWARDED_SIGNALS {
        set.add(s);
    }
    let blocked = set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
    std::thread::spawn(move || child.wait());
    if let Ok(old) = blocked {
        let _ = old.thread_set_mask();
    }
}

/// The runtime command for a container's bundle.
fn runtime_command(rec: &Record, bundle: &Bundle) -> Result<Command> {
    let mut cmd = if rec.runtime == "berth" {
        bundle.helper(&berth_exe()?)
    } else {
        bundle.external(&rec.runtime, &rec.id)
    };
    if rec.tty {
        cmd.arg("--console-socket").arg(bundle.console_socket());
    }
    Ok(cmd)
}

impl Engine {
    /// After a container's last run: its root filesystem unmounted, and
    /// the container removed with `--rm`.
    fn finish(&self, rec: &Record) -> Result<()> {
        if rec.auto_remove {
            return self.retire(rec);
        }
        Ok(self.store().unmount_rootfs(&rec.id)?)
    }

    /// `finish`, then the exit told to the attached clients, then the
    /// removed container's files deleted.
    fn finish_and_tell(&self, rec: &Record, hub: &AttachHub, code: i32) -> Result<()> {
        let finished = self.finish(rec);
        hub.exit(code);
        self.purge_retired(Some(&rec.id));
        finished
    }

    /// The healthcheck a container runs, if any.
    fn health_config(
        &self,
        rec: &Record,
        req: &crate::model::ContainerCreate,
    ) -> Option<crate::model::HealthConfig> {
        let image = rec
            .manifest
            .parse()
            .ok()
            .and_then(|m| self.store().get(&m).ok())?;
        let from_image = image
            .config
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.clone())
            .and_then(|h| serde_json::from_value(h).ok());
        super::health::merged(from_image.as_ref(), req.config.healthcheck.as_ref())
    }

    /// One run of container `id`, supervised by this process, with its
    /// healthchecks; its exit code and its record as the run left it.
    fn run_once(
        &self,
        id: &str,
        req: &crate::model::ContainerCreate,
        hub: Option<Arc<AttachHub>>,
    ) -> Result<(i32, Record)> {
        let containers = self.containers();
        let rec = containers.load(id)?;
        let checker = std::sync::Arc::new(std::sync::Mutex::new(None));
        let health = self.health_config(&rec, req);
        let bundle = Bundle::create(&containers.dir(id))?
            .keep()
            .with_runtime_dir(berth_runner::container::made_runtime_dir(
                id,
                &containers.dir(id),
            )?);
        let backend = self.uses_backend(id);
        let shared = rec.network.starts_with("container:");
        let private = !backend && !shared && !matches!(rec.network.as_str(), "none" | "host");
        if backend {
            self.join_networks(&rec)?;
        }
        if shared {
            self.join_container_network(&rec)?;
        }
        let supervision = Supervision {
            command: runtime_command(&rec, &bundle)?,
            builtin: (rec.runtime == "berth").then(|| BuiltinRuntime {
                spec: bundle.dir().join("config.json"),
                pid_file: None,
                console_socket: rec.tty.then(|| bundle.console_socket()),
            }),
            pid_file: bundle.pid_file(),
            console_socket: rec.tty.then(|| bundle.console_socket()),
            // netavark forwards a bridged container's ports.
            ports: rec
                .ports
                .iter()
                .filter(|_| !backend)
                .map(|p| berth_runner::ports::PortMapping {
                    host: std::net::SocketAddr::new(
                        p.host_ip.parse().unwrap_or([0, 0, 0, 0].into()),
                        p.host_port,
                    ),
                    container: p.container_port,
                    proto: if p.proto == "udp" {
                        berth_runner::ports::Proto::Udp
                    } else {
                        berth_runner::ports::Proto::Tcp
                    },
                })
                .collect(),
            hub,
            open_stdin: req.config.open_stdin,
            slirp: private && berth_runner::supervisor::slirp_available(),
            start_gate: rec.runtime == "berth",
            on_start: Some({
                let (engine, rec, checker) = (self.clone(), rec.clone(), checker.clone());
                Box::new(move |_| {
                    engine.emit_container(&rec, "start", &[]);
                    if let Some(h) = health {
                        if let Ok(mut c) = checker.lock() {
                            *c = engine.start_health_checks(&rec.id, h);
                        }
                    }
                })
            }),
            on_exit: backend.then(|| {
                let (engine, id) = (self.clone(), id.to_string());
                Box::new(move || engine.leave_networks(&id)) as Box<dyn FnOnce() + Send>
            }),
        };
        let code = supervise(&containers, rec.clone(), supervision);
        if backend && code.is_err() {
            // Failed before the runtime ran: nothing called on_exit.
            self.leave_networks(id);
        }
        // The checks end with the run.
        if let Ok(mut c) = checker.lock() {
            c.take();
        }
        if let Ok((c, rec)) = &code {
            // Its name as saved last (a rename while it ran is in it).
            self.emit_container(rec, "die", &[("exitCode", c.to_string())]);
        }
        Ok(code?)
    }

    /// `berth __supervise ID`: a detached container's supervisor. It runs
    /// the container again as its restart policy says, with docker's
    /// backoff (100 ms, doubled each time, at most a minute; back to 100 ms
    /// after a run of 10 s), until `stop` or `kill` says enough.
    ///
    /// It serves the container's attach socket all along; with
    /// `BERTH_ATTACH_WAIT` set (an attached run or start) the container
    /// starts once the first client is there, so it misses no output.
    pub fn supervise(&self, id: &str) -> Result<i32> {
        let req = self.create_request(id);
        let hub = AttachHub::listen(&super::attach::socket_path(id), req.config.stdin_once)?;
        if std::env::var_os(ATTACH_WAIT).is_some() {
            // The first client is the command that started this supervisor,
            // on the socket it passed as descriptor 3.
            // SAFETY: descriptor 3 is that socket, given to this process alone.
            let first = unsafe {
                <std::os::unix::net::UnixStream as std::os::fd::FromRawFd>::from_raw_fd(ATTACH_FD)
            };
            hub.adopt(first);
            hub.wait_for_client(Duration::from_secs(30));
        }
        if std::env::var_os(START_WAIT).is_some() {
            let containers = self.containers();
            let started = hub.wait_for_start(|| {
                containers
                    .load(id)
                    .is_ok_and(|r| r.state.status == Status::Created)
            });
            if !started {
                // Removed (or started another way) meanwhile.
                let _ = self.containers().update(id, |r| r.state.supervisor = None);
                return Ok(0);
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let began = Instant::now();
            let run = self.run_once(id, &req, Some(hub.clone()));
            // Opened by the run once its runtime started; a run that failed
            // before still has clients to tell.
            hub.open();
            let code = match run {
                Ok(c) => c,
                Err(e) => {
                    hub.broadcast(STDERR, format!("Error: {e}\n").as_bytes());
                    // Said to whoever started it (a detached start reads it).
                    let rec = match self.containers().update(id, |r| {
                        r.state.error = e.to_string();
                        r.state.restarting = false;
                    }) {
                        Ok(r) => r,
                        Err(_) => self.containers().load(id)?,
                    };
                    self.finish_and_tell(&rec, &hub, 125)?;
                    return Err(e);
                }
            };
            let (code, rec) = code;
            let again = self.restarts_after(&rec, code);
            if !again {
                // Said once the container is gone too (`--rm`), as docker's
                // `run` returns after the removal.
                self.finish_and_tell(&rec, &hub, code)?;
                return Ok(code);
            }
            hub.exit(code);
            if began.elapsed() >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            self.store().unmount_rootfs(id)?;
            let me = std::process::id() as i32;
            self.containers().update(id, |r| {
                r.state.restarting = true;
                r.state.supervisor = berth_runner::container::process_start(me).map(|t| (me, t));
            })?;
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && !self.stopped_by_user(id) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.stopped_by_user(id) {
                let rec = self.containers().update(id, |r| {
                    r.state.restarting = false;
                    r.state.supervisor = None;
                })?;
                self.finish(&rec)?;
                self.purge_retired(Some(id));
                return Ok(code);
            }
            delay = (delay * 2).min(Duration::from_secs(60));
            // Still "restarting" until the run says "running": a look in
            // between must not find the count of the next run on the
            // state of the last.
            let rec = self
                .containers()
                .update(id, |r| r.state.restart_count += 1)?;
            self.remount(&rec)?;
        }
    }

    /// Whether container `rec`'s restart policy runs it again after a run
    /// that ended with `code`.
    pub(crate) fn restarts_after(&self, rec: &Record, code: i32) -> bool {
        let policy = self.create_request(&rec.id).host_config.restart_policy;
        !self.stopped_by_user(&rec.id)
            && match policy.name.as_str() {
                "always" | "unless-stopped" => true,
                "on-failure" => {
                    code != 0
                        && (policy.maximum_retry_count <= 0
                            || rec.state.restart_count < policy.maximum_retry_count)
                }
                _ => false,
            }
    }

    /// The marker `stop` and `kill` leave: the restart policy lets the
    /// container be (docker's "manually stopped").
    fn stopped_by_user(&self, id: &str) -> bool {
        self.containers().dir(id).join(STOPPED).exists()
    }

    fn set_stopped_by_user(&self, id: &str, stopped: bool) {
        let path = self.containers().dir(id).join(STOPPED);
        if stopped {
            let _ = std::fs::write(path, b"");
        } else {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Starts the supervisor process of container `id` (in a new session,
    /// so that a closed terminal does not end it).
    fn spawn_supervisor(&self, id: &str) -> Result<SupervisorProcess> {
        self.spawn_supervisor_with(id, None)
    }

    /// Starts the supervisor with `client` as its first attached client
    /// (descriptor 3): it starts the container once that one is there.
    fn spawn_attached_supervisor(
        &self,
        id: &str,
    ) -> Result<(SupervisorProcess, std::os::unix::net::UnixStream)> {
        let (mine, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::Failed(format!("cannot make the attach socket: {e}")))?;
        let child = self.spawn_supervisor_with(id, Some(theirs))?;
        Ok((child, mine))
    }

    /// Starts a supervisor that serves the attach socket of created
    /// container `id` and runs it at the first START frame; returns once
    /// the socket is there.
    pub(crate) fn spawn_waiting_supervisor(&self, id: &str) -> Result<()> {
        let child = self.spawn_supervisor_opts(id, None, true)?;
        let me = child.id();
        self.containers().update(id, |r| {
            r.state.supervisor = berth_runner::container::process_start(me).map(|t| (me, t));
        })?;
        reap_later(child);
        let socket = super::attach::socket_path(id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                fail!(Failed, "the container's supervisor did not start");
            }
            // It binds within milliseconds; a connect attempt costs microseconds.
            std::thread::sleep(Duration::from_micros(250));
        }
        Ok(())
    }

    fn spawn_supervisor_with(
        &self,
        id: &str,
        client: Option<std::os::unix::net::UnixStream>,
    ) -> Result<SupervisorProcess> {
        self.spawn_supervisor_opts(id, client, false)
    }

    fn spawn_supervisor_opts(
        &self,
        id: &str,
        client: Option<std::os::unix::net::UnixStream>,
        start_wait: bool,
    ) -> Result<SupervisorProcess> {
        let wait_attach = client.is_some();
        // The last run's "exited" must not be taken for this one's.
        let containers = self.containers();
        let mut rec = containers.load(id)?;
        if rec.state.status != Status::Created || !rec.state.error.is_empty() {
            rec.state.status = Status::Created;
            rec.state.error.clear();
            containers.save(&rec)?;
        }
        let fd = client.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        if let Some(forked) =
            supervisor_process::fork(self.store().root(), id, fd, wait_attach, start_wait)?
        {
            drop(client);
            return Ok(forked);
        }
        let mut cmd = Command::new(berth_exe()?);
        cmd.arg("__supervise")
            .arg(id)
            .env("BERTH_ROOT", self.store().root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if wait_attach {
            cmd.env(ATTACH_WAIT, "1");
        } else {
            cmd.env_remove(ATTACH_WAIT);
        }
        if start_wait {
            cmd.env(START_WAIT, "1");
        } else {
            cmd.env_remove(START_WAIT);
        }
        // SAFETY: setsid and dup2 are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if let Some(fd) = fd {
                    // dup2 clears close-on-exec on the copy.
                    if libc::dup2(fd, ATTACH_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::Failed(format!("cannot start the container's supervisor: {e}")));
        drop(client);
        child.map(SupervisorProcess::Spawned)
    }

    /// Starts container `id` under a supervisor process of its own and
    /// waits until it runs.
    fn start_detached(&self, containers: &Containers, id: &str) -> Result<()> {
        let mut child = self.spawn_supervisor(id)?;
        let started = self.wait_running(containers, id, |_| {
            child
                .try_wait()
                .map(|st| format!("the container's supervisor failed ({st})"))
        });
        // A long-lived process (the API service) must not keep its ended
        // supervisors as zombies.
        reap_later(child);
        started
    }

    /// Waits until container `id` runs (or ran and exited); `gone` says
    /// why not when its supervisor ended before (the record's error wins).
    fn wait_running(
        &self,
        containers: &Containers,
        id: &str,
        mut gone: impl FnMut(&Record) -> Option<String>,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let watch = containers.watch(id);
        loop {
            let rec = containers.load(id)?;
            match rec.state.status {
                Status::Running if rec.state.pid > 0 => return Ok(()),
                Status::Exited => {
                    if !rec.state.error.is_empty() {
                        fail!(Failed, "{}", rec.state.error);
                    }
                    return Ok(());
                }
                _ => {}
            }
            if let Some(why) = gone(&rec) {
                let rec = containers.load(id)?;
                if rec.state.status == Status::Created {
                    if !rec.state.error.is_empty() {
                        fail!(Failed, "{}", rec.state.error);
                    }
                    fail!(Failed, "{why}");
                }
            }
            if Instant::now() > deadline {
                fail!(Failed, "the container did not start within 30 s");
            }
            watch.wait(Duration::from_millis(3));
        }
    }

    /// Mounts a stopped container's root filesystem again for a new run.
    fn mount_again(&self, rec: &Record) -> Result<()> {
        if rec.running() {
            fail!(Conflict, "container {} is already running", rec.name);
        }
        self.set_stopped_by_user(&rec.id, false);
        self.remount(rec)
    }

    fn remount(&self, rec: &Record) -> Result<()> {
        let manifest = rec
            .manifest
            .parse()
            .map_err(|e| Error::Failed(format!("container {} has a bad record: {e}", rec.id)))?;
        let image = self.store().get(&manifest)?;
        // The mount stays for the supervisor, which unmounts it when the
        // container stops.
        self.store()
            .container_rootfs(&image, &rec.id, !rec.auto_remove)?;
        Ok(())
    }

    /// `docker start ID`: runs it detached; a running one is left as it is.
    pub fn container_start(&self, key: &str) -> Result<()> {
        self.reap()?;
        let rec = self.container(key)?;
        if rec.state.status == Status::Created && rec.state.supervised() && !rec.running() {
            // A supervisor made for an attached client waits for this.
            return self.start_waiting(&rec.id);
        }
        // Running, or its supervisor about to run it again.
        if rec.running() || rec.state.supervised() {
            return Ok(());
        }
        self.mount_again(&rec)?;
        self.start_detached(&self.containers(), &rec.id)
    }

    /// Tells the waiting supervisor of created container `id` to run it,
    /// and waits until it runs.
    fn start_waiting(&self, id: &str) -> Result<()> {
        let mut conn = std::os::unix::net::UnixStream::connect(super::attach::socket_path(id))
            .map_err(|e| Error::Failed(format!("cannot reach the container's supervisor: {e}")))?;
        let said = std::io::Write::write_all(&mut conn, b"{\"stdin\":false}\n").and_then(|()| {
            berth_runner::attach::write_frame(&mut conn, berth_runner::attach::START, &[])
        });
        said.map_err(|e| Error::Failed(format!("cannot start the container: {e}")))?;
        self.wait_running(&self.containers(), id, |rec| {
            (!rec.state.supervised())
                .then(|| "the container's supervisor went away before the start".to_string())
        })
    }

    /// Runs a just-created container detached.
    pub fn container_start_created(&self, id: &str) -> Result<()> {
        self.start_detached(&self.containers(), id)
    }

    /// Runs a just-created container under its supervisor, attached to
    /// this process's stdio through its attach socket.
    pub fn container_run_attached(&self, id: &str, opts: &AttachOptions) -> Result<AttachEnd> {
        let rec = self.containers().load(id)?;
        let (supervisor, conn) = self.spawn_attached_supervisor(id)?;
        reap_later(supervisor);
        self.attach_stream(id, rec.tty, conn, opts)
    }

    /// `docker start -a [-i] ID`: runs a stopped container attached.
    pub fn container_start_attached(&self, key: &str, opts: &AttachOptions) -> Result<AttachEnd> {
        self.reap()?;
        let rec = self.container(key)?;
        self.mount_again(&rec)?;
        let (supervisor, conn) = self.spawn_attached_supervisor(&rec.id)?;
        reap_later(supervisor);
        self.attach_stream(&rec.id, rec.tty, conn, opts)
    }

    /// docker stop: the container's stop signal (the image's STOPSIGNAL,
    /// else SIGTERM), then SIGKILL after the grace time.
    pub fn container_stop(&self, key: &str, grace: Duration) -> Result<()> {
        let containers = self.containers();
        let rec = containers.find(key)?;
        if rec.state.supervised() {
            self.set_stopped_by_user(&rec.id, true);
        }
        if !rec.running() {
            // A supervisor waiting to restart it sees the marker and ends.
            if rec.state.supervised() {
                wait_stopped(&containers, &rec.id, Duration::from_secs(10))?;
            }
            return Ok(());
        }
        self.thaw(&rec);
        let first = match &rec.stop_signal {
            Some(s) => signal_of(s)?,
            None => libc::SIGTERM,
        };
        self.emit_container(&rec, "kill", &[("signal", first.to_string())]);
        send_signal(&containers, &rec, first)?;
        if !wait_stopped(&containers, &rec.id, grace)? {
            self.emit_container(&rec, "kill", &[("signal", libc::SIGKILL.to_string())]);
            send_signal(&containers, &rec, libc::SIGKILL)?;
            if !wait_stopped(&containers, &rec.id, Duration::from_secs(30))? {
                fail!(Failed, "container {} did not stop", rec.name);
            }
        }
        self.emit_container(&rec, "stop", &[]);
        Ok(())
    }

    /// docker kill: `signal` (a name or number) to the container's process.
    pub fn container_kill(&self, key: &str, signal: &str) -> Result<()> {
        let sig = signal_of(signal)?;
        let rec = self.container(key)?;
        if !rec.running() {
            fail!(
                Conflict,
                "cannot kill container: {key}: container {} is not running",
                rec.id
            );
        }
        self.set_stopped_by_user(&rec.id, true);
        self.emit_container(&rec, "kill", &[("signal", sig.to_string())]);
        send_signal(&self.containers(), &rec, sig)?;
        if sig == libc::SIGKILL {
            // As docker's: a SIGKILL returns once the container is down.
            self.thaw(&rec);
            wait_stopped(&self.containers(), &rec.id, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// A paused container is thawed before it is stopped: a frozen process
    /// takes no signal.
    fn thaw(&self, rec: &Record) {
        if self.paused(&rec.id) {
            let _ = berth_runner::cgroup::freeze(&rec.id, false);
        }
    }

    /// docker wait: blocks until the container stops; its exit code.
    pub fn container_wait(&self, key: &str) -> Result<i32> {
        self.container_waiter(key, WaitCondition::NotRunning)?
            .wait()
    }

    /// A waiter for `condition`, registered now: what it waits for is
    /// measured from this moment (docker registers the waiter before it
    /// answers, so a client may start the container after).
    pub fn container_waiter(&self, key: &str, condition: WaitCondition) -> Result<Waiter> {
        let rec = self.containers().find(key)?;
        Ok(Waiter {
            engine: self.clone(),
            id: rec.id,
            condition,
            finished_before: rec.state.finished_at,
        })
    }

    /// docker rm: a running container only with `force` (SIGKILL first);
    /// with `volumes`, its anonymous volumes too.
    pub fn container_remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let containers = self.containers();
        let rec = containers.find(key)?;
        if rec.running() {
            if !force {
                fail!(
                    Conflict,
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    rec.name
                );
            }
            self.set_stopped_by_user(&rec.id, true);
            send_signal(&containers, &rec, libc::SIGKILL)?;
            self.thaw(&rec);
            if !wait_stopped(&containers, &rec.id, Duration::from_secs(30))? {
                fail!(Failed, "container {key} did not stop");
            }
        } else if rec.state.supervised() {
            // Between two runs of its restart policy.
            self.set_stopped_by_user(&rec.id, true);
            wait_stopped(&containers, &rec.id, Duration::from_secs(10))?;
        }
        self.destroy_with_volumes(&rec, volumes)
    }
}

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Not running now, or once it stops (docker's default).
    NotRunning,
    /// The next exit after the waiter was made.
    NextExit,
    /// Until it is removed.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = Error;
    fn from_str(s: &str) -> Result<WaitCondition> {
        Ok(match s {
            "" | "not-running" => WaitCondition::NotRunning,
            "next-exit" => WaitCondition::NextExit,
            "removed" => WaitCondition::Removed,
            other => fail!(Invalid, "invalid condition: \"{other}\""),
        })
    }
}

/// A registered wait (`Engine::container_waiter`).
#[derive(Debug)]
pub struct Waiter {
    engine: Engine,
    id: String,
    condition: WaitCondition,
    finished_before: String,
}

impl Waiter {
    /// Blocks until the condition holds; the container's exit code.
    pub fn wait(self) -> Result<i32> {
        let containers = self.engine.containers();
        let mut last = 0;
        // Woken by each write of the record; the pause is for what a watch
        // cannot see (a supervisor killed without a word).
        let watch = containers.watch(&self.id);
        let mut pause = Duration::from_millis(1);
        loop {
            let rec = match containers.load(&self.id) {
                Ok(r) => r,
                // Gone: removed (`--rm`), with the code its last run ended with.
                Err(_) => return Ok(self.engine.last_exit_code(&self.id).unwrap_or(last)),
            };
            last = rec.state.exit_code;
            let done = match self.condition {
                WaitCondition::NotRunning => !rec.running() && !rec.state.restarting,
                WaitCondition::NextExit => {
                    !rec.running() && rec.state.finished_at != self.finished_before
                }
                WaitCondition::Removed => false,
            };
            if done {
                return Ok(last);
            }
            watch.wait(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }
}
