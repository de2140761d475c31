//! Exec instances as the Engine API has them: made by one request
//! (`exec_create`), started by another whose connection carries the
//! process's stdio (`exec_start`), inspected for the exit code after.
//! docker keeps them in the daemon's memory, and so does the engine: they
//! live as long as the process serving them.

use super::exec::{spawn_helper, ExecOptions};
use crate::error::{fail, Error, Result};
use crate::model::{ExecCreate, ExecInspect, ExecProcessConfig};
use crate::Engine;
use berth_runner::console;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug)]
struct Instance {
    container_id: String,
    config: ExecCreate,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: i32,
    /// The terminal's master, for resizes.
    master: Option<OwnedFd>,
    /// A size asked for before the terminal was there.
    size: Option<(u16, u16)>,
}

/// Every exec instance this process made.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecTable(Arc<Mutex<HashMap<String, Instance>>>);

impl ExecTable {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Instance) -> Result<T>) -> Result<T> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(id) {
            Some(i) => f(i),
            None => fail!(NotFound, "No such exec instance: {id}"),
        }
    }
}

/// What a started exec instance's process reads and writes.
pub enum ExecStreams {
    /// One stream both ways: the terminal's master.
    Tty(File),
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    },
}

/// A started exec instance: its streams, and `wait` for its end (which
/// records the exit code for `exec_inspect`).
pub struct ExecSession {
    pub streams: ExecStreams,
    child: Child,
    id: String,
    table: ExecTable,
    cleanup: Vec<std::path::PathBuf>,
}

impl ExecSession {
    pub fn wait(mut self) -> i32 {
        let code = self.child.wait().ok().and_then(|s| s.code()).unwrap_or(126);
        for p in &self.cleanup {
            let _ = std::fs::remove_file(p);
        }
        let _ = self.table.with(&self.id, |i| {
            i.running = false;
            i.exit_code = Some(code);
            i.master = None;
            Ok(())
        });
        code
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`: the new instance's ID.
    pub fn exec_create(&self, key: &str, config: ExecCreate) -> Result<String> {
        let rec = self.exec_target(key)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            fail!(Invalid, "No exec command specified");
        }
        let id = crate::volume::random_id()?;
        let size = config.console_size.map(|[h, w]| (h, w));
        let mut map = self.execs.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            id.clone(),
            Instance {
                container_id: rec.id,
                config,
                running: false,
                started: false,
                exit_code: None,
                pid: 0,
                master: None,
                size,
            },
        );
        Ok(id)
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspect> {
        self.execs.with(id, |i| {
            let mut args = i.config.cmd.clone().unwrap_or_default();
            let entrypoint = if args.is_empty() {
                String::new()
            } else {
                args.remove(0)
            };
            Ok(ExecInspect {
                can_remove: false,
                container_id: i.container_id.clone(),
                detach_keys: i.config.detach_keys.clone().unwrap_or_default(),
                exit_code: i.exit_code,
                id: id.to_string(),
                open_stderr: i.config.attach_stderr,
                open_stdin: i.config.attach_stdin,
                open_stdout: i.config.attach_stdout,
                process_config: ExecProcessConfig {
                    arguments: args,
                    entrypoint,
                    privileged: i.config.privileged,
                    tty: i.config.tty,
                    user: i.config.user.clone().unwrap_or_default(),
                },
                running: i.running,
                pid: i.pid,
            })
        })
    }

    /// Whether instance `id` has a terminal (its streams are one raw
    /// stream).
    pub fn exec_tty(&self, id: &str) -> Result<bool> {
        self.execs.with(id, |i| Ok(i.config.tty))
    }

    /// `POST /exec/{id}/start`: the process started, with the streams the
    /// instance attached (none when `detach`: its output is dropped).
    pub fn exec_start(
        &self,
        id: &str,
        detach: bool,
        size: Option<(u16, u16)>,
    ) -> Result<ExecSession> {
        let (container_id, config, pending) = self.execs.with(id, |i| {
            if i.started {
                fail!(Conflict, "Exec command {id} has already run");
            }
            i.started = true;
            i.running = true;
            Ok((i.container_id.clone(), i.config.clone(), i.size))
        })?;
        let started = self.exec_spawn(id, &container_id, &config, detach, size.or(pending));
        if started.is_err() {
            let _ = self.execs.with(id, |i| {
                i.running = false;
                Ok(())
            });
        }
        started
    }

    fn exec_spawn(
        &self,
        id: &str,
        container_id: &str,
        config: &ExecCreate,
        detach: bool,
        size: Option<(u16, u16)>,
    ) -> Result<ExecSession> {
        let rec = self.exec_target(container_id)?;
        let opts = ExecOptions {
            cmd: config.cmd.clone().unwrap_or_default(),
            interactive: config.attach_stdin,
            tty: config.tty,
            detach,
            env: config.env.clone().unwrap_or_default(),
            workdir: config.working_dir.clone().filter(|w| !w.is_empty()),
            user: config.user.clone().filter(|u| !u.is_empty()),
            privileged: config.privileged,
            console_size: size,
        };
        let (process_path, socket) = self.exec_process(&rec, &opts)?;
        let cleanup = vec![process_path.clone(), socket.clone()];
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let stdio = if config.tty {
            [Stdio::null(), Stdio::null(), Stdio::null()]
        } else {
            [
                pipe(config.attach_stdin && !detach),
                pipe(config.attach_stdout && !detach),
                pipe(config.attach_stderr && !detach),
            ]
        };
        let listener = if config.tty {
            Some(
                std::os::unix::net::UnixListener::bind(&socket)
                    .map_err(|e| Error::Failed(format!("cannot make a console socket: {e}")))?,
            )
        } else {
            None
        };
        let console = listener.as_ref().map(|_| socket.as_path());
        let mut child = match spawn_helper(&rec, &process_path, console, opts.privileged, stdio) {
            Ok(c) => c,
            Err(e) => {
                for p in &cleanup {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        let streams = match &listener {
            Some(l) => {
                let master = match console::receive(l, Duration::from_secs(30)) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        for p in &cleanup {
                            let _ = std::fs::remove_file(p);
                        }
                        return Err(e.into());
                    }
                };
                let keep = master.try_clone().ok();
                let pending = self.execs.with(id, |i| {
                    i.master = keep;
                    Ok(i.size)
                })?;
                if let Some((rows, cols)) = pending {
                    console::set_size(master.as_raw_fd(), rows, cols);
                }
                ExecStreams::Tty(File::from(master))
            }
            None => ExecStreams::Pipes {
                stdin: child.stdin.take(),
                stdout: child.stdout.take(),
                stderr: child.stderr.take(),
            },
        };
        let pid = child.id() as i32;
        let _ = self.execs.with(id, |i| {
            i.pid = pid;
            Ok(())
        });
        Ok(ExecSession {
            streams,
            child,
            id: id.to_string(),
            table: self.execs.clone(),
            cleanup,
        })
    }

    /// `POST /exec/{id}/resize`: the terminal's size now, or once it is
    /// there.
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        self.execs.with(id, |i| {
            i.size = Some((rows, cols));
            if let Some(m) = &i.master {
                console::set_size(m.as_raw_fd(), rows, cols);
            }
            Ok(())
        })
    }
}
