//! `docker exec`: a process in a running container, through a helper
//! (`berth __exec`) that joins its namespaces, on the caller's own stdio
//! (`container_exec`) or on pipes and terminals handed back
//! (`exec_instance`, the Engine API's).

use crate::error::{fail, Error, Result};
use crate::helper::berth_exe;
use crate::Engine;
use berth_runner::console;
use berth_runner::container::Record;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Tells apart the exec processes one process starts.
static EXEC_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    /// Keep stdin open.
    pub interactive: bool,
    pub tty: bool,
    /// Start it and return at once.
    pub detach: bool,
    /// `KEY=VALUE` each, over the container's environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    /// The terminal's rows and columns; none takes this process's own.
    pub console_size: Option<(u16, u16)>,
}

impl Engine {
    /// Runs `opts.cmd` in container `key`; its exit code (0 when detached).
    pub fn container_exec(&self, key: &str, opts: &ExecOptions) -> Result<i32> {
        let rec = self.exec_target(key)?;
        let (process_path, socket) = self.exec_process(&rec, opts)?;
        let result = exec_helper(&rec, &process_path, &socket, opts);
        let _ = std::fs::remove_file(&process_path);
        let _ = std::fs::remove_file(&socket);
        result
    }

    /// The container `key`, which an exec needs running and not paused
    /// (docker's words when it is not).
    pub(super) fn exec_target(&self, key: &str) -> Result<Record> {
        let rec = self.container(key)?;
        if !rec.running() {
            fail!(Conflict, "Container {} is not running", rec.id);
        }
        if self.paused(&rec.id) {
            fail!(
                Conflict,
                "Container {} is paused, unpause the container before exec",
                rec.id
            );
        }
        Ok(rec)
    }

    /// Runs `cmd` in a running container with its output captured (a
    /// healthcheck): the exit code and the output, or none when it took
    /// longer than `timeout` (it is killed then).
    pub(crate) fn exec_captured(
        &self,
        rec: &Record,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<Option<(i32, String)>> {
        let opts = ExecOptions {
            cmd: cmd.to_vec(),
            ..ExecOptions::default()
        };
        let (process_path, _) = self.exec_process(rec, &opts)?;
        let result = (|| {
            let mut child = spawn_helper(
                rec,
                &process_path,
                None,
                false,
                [Stdio::null(), Stdio::piped(), Stdio::piped()],
            )?;
            let mut readers = Vec::new();
            for r in [
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                readers.push(std::thread::spawn(move || {
                    let mut r = r;
                    let mut buf = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut r, &mut buf);
                    buf
                }));
            }
            let deadline = std::time::Instant::now() + timeout;
            let status = loop {
                if let Some(st) = child
                    .try_wait()
                    .map_err(|e| Error::Failed(format!("cannot wait for the exec helper: {e}")))?
                {
                    break Some(st);
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let mut output = Vec::new();
            for r in readers {
                output.extend(r.join().unwrap_or_default());
            }
            Ok(status.map(|st| {
                (
                    st.code().unwrap_or(126),
                    String::from_utf8_lossy(&output).into_owned(),
                )
            }))
        })();
        let _ = std::fs::remove_file(&process_path);
        result
    }

    /// The exec process's spec file (in the container's folder) and the
    /// console socket path it would use.
    pub(super) fn exec_process(
        &self,
        rec: &Record,
        opts: &ExecOptions,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
        let dir = self.containers().dir(&rec.id);
        let spec = oci_spec::runtime::Spec::load(dir.join("config.json"))
            .map_err(|e| Error::Failed(format!("cannot read the container's spec: {e}")))?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(opts.cmd.clone()));
        let mut env = process.env().clone().unwrap_or_default();
        for e in &opts.env {
            let k = e.split('=').next().unwrap_or(e);
            env.retain(|x| x.split('=').next() != Some(k));
            env.push(e.clone());
        }
        process.set_env(Some(env));
        if let Some(w) = &opts.workdir {
            process.set_cwd(w.into());
        }
        if let Some(u) = &opts.user {
            let root = Path::new("/proc")
                .join(rec.state.pid.to_string())
                .join("root");
            let u = berth_runner::user::resolve(&root, u)?;
            let user = oci_spec::runtime::UserBuilder::default()
                .uid(u.uid)
                .gid(u.gid)
                .additional_gids(u.additional_gids)
                .build()
                .map_err(|e| Error::Failed(format!("invalid user: {e}")))?;
            process.set_user(user);
        }
        process.set_terminal(Some(opts.tty));
        if opts.tty {
            if let Some((rows, cols)) = opts.console_size.or_else(|| console::size_of(1)) {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(rows as u64)
                    .width(cols as u64)
                    .build()
                    .map_err(|e| Error::Failed(format!("cannot size the terminal: {e}")))?;
                process.set_console_size(Some(size));
            }
        }
        if opts.privileged {
            process.set_no_new_privileges(Some(false));
        }
        let tag = format!(
            "exec-{}-{}",
            std::process::id(),
            EXEC_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let process_path = dir.join(format!("{tag}.json"));
        let data = serde_json::to_vec(&process)
            .map_err(|e| Error::Failed(format!("cannot encode the exec process: {e}")))?;
        std::fs::write(&process_path, data)
            .map_err(|e| Error::Failed(format!("cannot write the exec process: {e}")))?;
        // A socket's path must be shorter than 108 bytes: not in the store.
        let socket = std::env::temp_dir().join(format!("berth-{}-{tag}.sock", rec.short_id()));
        Ok((process_path, socket))
    }
}

/// Starts the exec helper for `process_path` in `rec` with these stdio
/// (stdin, stdout, stderr) and, for a terminal, the console socket.
pub(super) fn spawn_helper(
    rec: &Record,
    process_path: &Path,
    console_socket: Option<&Path>,
    privileged: bool,
    stdio: [Stdio; 3],
) -> Result<std::process::Child> {
    let mut cmd = Command::new(berth_exe()?);
    cmd.arg("__exec")
        .arg(rec.state.pid.to_string())
        .arg(process_path)
        .arg(process_path.with_file_name("config.json"));
    if privileged {
        cmd.arg("--privileged");
    }
    if let Some(s) = console_socket {
        cmd.arg("--console-socket").arg(s);
    }
    let [i, o, e] = stdio;
    cmd.stdin(i).stdout(o).stderr(e);
    cmd.spawn()
        .map_err(|e| Error::Failed(format!("cannot start the exec helper: {e}")))
}

fn exec_helper(
    rec: &Record,
    process_path: &Path,
    socket: &Path,
    opts: &ExecOptions,
) -> Result<i32> {
    let inherit_or = |null: bool| {
        if null {
            Stdio::null()
        } else {
            Stdio::inherit()
        }
    };
    let stdio = [
        inherit_or(!opts.interactive || opts.tty),
        inherit_or(opts.detach || opts.tty),
        inherit_or(opts.detach),
    ];
    let listener = if opts.tty {
        Some(
            std::os::unix::net::UnixListener::bind(socket)
                .map_err(|e| Error::Failed(format!("cannot make a console socket: {e}")))?,
        )
    } else {
        None
    };
    let console = listener.as_ref().map(|_| socket);
    let mut child = spawn_helper(rec, process_path, console, opts.privileged, stdio)?;
    if opts.detach {
        return Ok(0);
    }
    berth_runner::linux::forward_signals(child.id() as i32);
    let mut copy = None;
    let mut raw = None;
    if let Some(l) = &listener {
        let master = console::receive(l, Duration::from_secs(30))?;
        if console::is_terminal(1) {
            console::copy_size(1, std::os::fd::AsRawFd::as_raw_fd(&master));
        }
        if opts.interactive {
            if console::is_terminal(0) {
                raw = Some(console::RawMode::stdin());
            }
            let w = master
                .try_clone()
                .map_err(|e| Error::Failed(format!("cannot share the terminal: {e}")))?;
            std::thread::spawn(move || {
                let mut w = std::fs::File::from(w);
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut w);
            });
        }
        copy = Some(std::thread::spawn(move || {
            let mut r = std::fs::File::from(master);
            let _ = std::io::copy(&mut r, &mut std::io::stdout().lock());
        }));
    }
    let status = child
        .wait()
        .map_err(|e| Error::Failed(format!("cannot wait for the exec helper: {e}")))?;
    if let Some(c) = copy {
        let _ = c.join();
    }
    drop(raw);
    Ok(status.code().unwrap_or(126))
}
