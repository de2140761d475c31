//! Attaching to a container: a client of its supervisor's attach socket
//! (`berth_runner::attach`) on this process's stdio. It forwards stdin
//! (watching for docker's detach keys), the terminal's size and, without
//! a terminal, the signals this process gets (docker's sig-proxy); it
//! prints the output and returns the container's exit code.

use crate::error::{fail, Error, Result};
use crate::Engine;
use berth_runner::attach::{
    read_frame, write_frame, EXIT, RESIZE, STDERR, STDIN, STDIN_CLOSED, STDOUT,
};
use berth_runner::console;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// docker's default detach sequence: ctrl-p, ctrl-q.
const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Send this process's stdin to the container.
    pub stdin: bool,
    /// docker's `--detach-keys` (`ctrl-p,ctrl-q` when none).
    pub detach_keys: Option<String>,
    /// Pass the signals this process gets on to the container.
    pub proxy_signals: bool,
}

/// How an attachment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container's run ended with this code.
    Exited(i32),
    /// The user typed the detach keys: the container goes on.
    Detached,
}

/// docker's `--detach-keys`: comma-separated keys, each a letter or
/// `ctrl-<letter>` (and `ctrl-@`, `ctrl-[`, ...).
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in spec.split(',') {
        let key = key.trim();
        let b = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => fail!(Invalid, "Invalid detach keys ({spec}) provided"),
                }
            }
            None if key.len() == 1 => key.as_bytes()[0],
            _ => fail!(Invalid, "Invalid detach keys ({spec}) provided"),
        };
        out.push(b);
    }
    if out.is_empty() {
        fail!(Invalid, "Invalid detach keys ({spec}) provided");
    }
    Ok(out)
}

/// Where container `id`'s supervisor serves its attach socket. A socket's
/// path must be shorter than 108 bytes: not in the store.
pub(crate) fn socket_path(id: &str) -> PathBuf {
    match berth_runner::container::runtime_dir(id) {
        Some(dir) => dir.join("attach"),
        None => std::env::temp_dir().join(format!("berth-{}.attach", &id[..32.min(id.len())])),
    }
}

/// Copies stdin to the socket as stdin frames, holding back what may be
/// the start of the detach keys; true when they were typed.
fn pump_stdin(mut conn: UnixStream, keys: Vec<u8>, detached: Arc<AtomicBool>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    let mut held: Vec<u8> = Vec::new();
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => {
                if !held.is_empty() {
                    let _ = write_frame(&mut conn, STDIN, &held);
                }
                let _ = write_frame(&mut conn, STDIN_CLOSED, &[]);
                return;
            }
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            held.push(b);
            if keys.starts_with(&held) {
                if held.len() == keys.len() {
                    detached.store(true, Ordering::SeqCst);
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                    return;
                }
                continue;
            }
            out.append(&mut held);
        }
        if !out.is_empty() && write_frame(&mut conn, STDIN, &out).is_err() {
            return;
        }
    }
}

/// A connection to a running container's attach socket, for a front end
/// that relays it (the API's hijacked `attach`). Frames are docker's: an
/// 8-byte header (stream, 0, 0, 0, big-endian length) and the payload;
/// stream 1 is stdout, 2 stderr, 3 the exit code; the client sends 0 for
/// stdin, 4 for a resize ("ROWS COLS") and 5 when stdin is closed.
#[derive(Debug)]
pub struct AttachConnection {
    pub stream: UnixStream,
    /// The container has a terminal: its output is one raw stream.
    pub tty: bool,
}

/// The frame kinds of an `AttachConnection`.
pub mod frames {
    pub use berth_runner::attach::{EXIT, RESIZE, STDERR, STDIN, STDIN_CLOSED, STDOUT};
}

impl Engine {
    /// Joins container `key`'s attach socket, with its stdin when asked.
    pub fn container_attach_connect(&self, key: &str, stdin: bool) -> Result<AttachConnection> {
        let rec = self.container(key)?;
        if rec.state.status == berth_runner::container::Status::Created && !rec.state.supervised() {
            // Attached before its start (docker's run): a supervisor that
            // waits for the start request (its root filesystem is mounted
            // since the create).
            self.spawn_waiting_supervisor(&rec.id)?;
        } else if !rec.running() && !rec.state.supervised() {
            fail!(
                Conflict,
                "You cannot attach to a stopped container, start it first"
            );
        }
        let mut conn = UnixStream::connect(socket_path(&rec.id))
            .map_err(|e| Error::Failed(format!("cannot attach to container {}: {e}", rec.name)))?;
        let header = serde_json::json!({ "stdin": stdin }).to_string() + "\n";
        conn.write_all(header.as_bytes())
            .map_err(|e| Error::Failed(format!("cannot attach to container {}: {e}", rec.name)))?;
        Ok(AttachConnection {
            stream: conn,
            tty: rec.tty,
        })
    }

    /// `POST /containers/{id}/resize`: the container's terminal size.
    pub fn container_resize(&self, key: &str, rows: u16, cols: u16) -> Result<()> {
        let mut c = self.container_attach_connect(key, false)?;
        write_frame(&mut c.stream, RESIZE, format!("{rows} {cols}").as_bytes())
            .map_err(|e| Error::Failed(format!("cannot resize the terminal: {e}")))
    }

    /// `docker attach` on this process's stdio.
    pub fn container_attach(&self, key: &str, opts: &AttachOptions) -> Result<AttachEnd> {
        let rec = self.container(key)?;
        if !rec.running() && !rec.state.supervised() {
            fail!(
                Conflict,
                "You cannot attach to a stopped container, start it first"
            );
        }
        let conn = UnixStream::connect(socket_path(&rec.id))
            .map_err(|e| Error::Failed(format!("cannot attach to container {}: {e}", rec.name)))?;
        self.attach_stream(&rec.id, rec.tty, conn, opts)
    }

    pub(crate) fn attach_stream(
        &self,
        id: &str,
        tty: bool,
        mut conn: UnixStream,
        opts: &AttachOptions,
    ) -> Result<AttachEnd> {
        let io = |e: std::io::Error| Error::Failed(format!("the attach stream broke: {e}"));
        let header = serde_json::json!({ "stdin": opts.stdin }).to_string() + "\n";
        conn.write_all(header.as_bytes()).map_err(io)?;
        let keys = match &opts.detach_keys {
            Some(k) => parse_detach_keys(k)?,
            None => DEFAULT_DETACH_KEYS.to_vec(),
        };
        let _raw = (tty && opts.stdin && console::is_terminal(0)).then(console::RawMode::stdin);
        let done = Arc::new(AtomicBool::new(false));
        if tty {
            // The terminal's size now, and whenever it changes.
            let mut w = conn.try_clone().map_err(io)?;
            let done = done.clone();
            std::thread::spawn(move || {
                let mut last = None;
                while !done.load(Ordering::Relaxed) {
                    let size = console::size_of(1).or_else(|| console::size_of(0));
                    if size.is_some() && size != last {
                        if let Some((r, c)) = size {
                            if write_frame(&mut w, RESIZE, format!("{r} {c}").as_bytes()).is_err() {
                                return;
                            }
                        }
                        last = size;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        if opts.proxy_signals && !tty {
            self.proxy_signals(id, done.clone());
        }
        let detached = Arc::new(AtomicBool::new(false));
        if opts.stdin {
            let w = conn.try_clone().map_err(io)?;
            let d = detached.clone();
            std::thread::spawn(move || pump_stdin(w, keys, d));
        }
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        let end = loop {
            match read_frame(&mut conn) {
                Ok(Some((STDOUT, data))) => {
                    let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
                }
                Ok(Some((STDERR, data))) => {
                    let _ = stderr.write_all(&data).and_then(|()| stderr.flush());
                }
                Ok(Some((EXIT, code))) => {
                    let code = String::from_utf8_lossy(&code).trim().parse().unwrap_or(125);
                    break AttachEnd::Exited(code);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) if detached.load(Ordering::SeqCst) => break AttachEnd::Detached,
                Ok(None) | Err(_) => {
                    // The supervisor went away without a word: the record says.
                    done.store(true, Ordering::Relaxed);
                    let rec = self.containers().load(id).ok();
                    match rec {
                        Some(r) if r.state.status == berth_runner::container::Status::Created => {
                            if r.state.error.is_empty() {
                                fail!(Failed, "the container's supervisor ended before it started");
                            }
                            fail!(Failed, "{}", r.state.error);
                        }
                        Some(r) => break AttachEnd::Exited(r.state.exit_code),
                        None => break AttachEnd::Exited(137),
                    }
                }
            }
        };
        done.store(true, Ordering::Relaxed);
        Ok(end)
    }

    /// docker's sig-proxy: the signals this process gets go to the
    /// container until the attachment ends.
    fn proxy_signals(&self, id: &str, done: Arc<AtomicBool>) {
        let mut set = nix::sys::signal::SigSet::empty();
        for s in berth_runner::linux::FORWARDED_SIGNALS {
            set.add(s);
        }
        // Blocked here, the threads started after inherit it, and one of
        // them takes them.
        if set.thread_block().is_err() {
            return;
        }
        let (engine, id) = (self.clone(), id.to_string());
        std::thread::spawn(move || {
            while let Ok(sig) = set.wait() {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                let _ = engine.container_kill(&id, &(sig as i32).to_string());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::parse_detach_keys;

    #[test]
    fn detach_keys_as_docker_reads_them() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(parse_detach_keys("ctrl-x,y").unwrap(), vec![0x18, b'y']);
        assert_eq!(parse_detach_keys("ctrl-@").unwrap(), vec![0]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("shift-a").is_err());
    }
}
