//! A container's attach socket, served by its supervisor: any number of
//! clients see its output as it is written, and may write its stdin and
//! resize its terminal. The stream is docker's multiplexed format (an
//! 8-byte header: stream, three zero bytes, the payload's length, big
//! endian), both ways:
//!
//! - from the supervisor: 1 stdout, 2 stderr, 3 the exit code (as text),
//!   sent when the container's run is over;
//! - from a client: 0 stdin bytes, 4 a terminal size (`ROWS COLS`), 5 the
//!   end of its stdin.
//!
//! A client first sends one line of JSON: `{"stdin": bool}`.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const RESIZE: u8 = 4;
pub const STDIN_CLOSED: u8 = 5;
/// From a client: start the container (a supervisor made to wait for it).
pub const START: u8 = 6;

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    header[0] = kind;
    header[4..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&header)?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame; none at the end of the stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 8];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    // A frame is at most what one read of a container's output gives.
    if len > 1 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

/// Where the clients' stdin goes during a run: the runtime's stdin pipe,
/// or the terminal's master.
pub enum StdinTarget {
    Pipe(std::process::ChildStdin),
    Terminal(OwnedFd),
}

#[derive(Default)]
struct State {
    clients: Vec<UnixStream>,
    /// Clients that connected so far (the first lets a waiting run start).
    connected: usize,
    /// A client said START.
    start: bool,
    terminal: Option<OwnedFd>,
}

/// The run's stdin, locked apart from the output: a container that reads
/// no stdin must not hold up its output.
#[derive(Default)]
struct Input {
    stdin: Option<StdinTarget>,
    /// Stdin a client wrote before the run had one (it waited for the
    /// client to start), and whether that client's stdin ended already.
    pending: Vec<u8>,
    ended: bool,
}

/// What a hub serves once it is opened: until then it has no thread, so
/// that its supervisor may still fork the runtime.
struct Unopened {
    listener: UnixListener,
    /// Clients taken meanwhile: their frames, and whether they write stdin.
    readers: Vec<(BufReader<UnixStream>, bool)>,
}

/// The attach socket of one container.
pub struct AttachHub {
    path: PathBuf,
    unopened: Mutex<Option<Unopened>>,
    state: Mutex<State>,
    input: Mutex<Input>,
    arrived: Condvar,
    /// `StdinOnce`: the first client's end of stdin ends the container's.
    stdin_once: bool,
}

impl AttachHub {
    /// Listens at `path` (made anew); clients are served once the hub is
    /// [opened](Self::open), until it is dropped. Clients that connect
    /// before wait in the socket's backlog.
    pub fn listen(path: &Path, stdin_once: bool) -> Result<Arc<AttachHub>> {
        let _ = std::fs::remove_file(path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            Error::Setup(format!(
                "cannot make the attach socket {}: {e}",
                path.display()
            ))
        })?;
        Ok(Arc::new(AttachHub {
            path: path.to_path_buf(),
            unopened: Mutex::new(Some(Unopened {
                listener,
                readers: Vec::new(),
            })),
            state: Mutex::new(State::default()),
            input: Mutex::new(Input::default()),
            arrived: Condvar::new(),
            stdin_once,
        }))
    }

    /// Starts serving: new clients, and the frames of those taken so far
    /// (each on a thread). Once is enough; later calls do nothing.
    pub fn open(self: &Arc<Self>) {
        let Some(unopened) = self.unopened.lock().ok().and_then(|mut u| u.take()) else {
            return;
        };
        for (reader, wants_stdin) in unopened.readers {
            self.read_frames(reader, wants_stdin);
        }
        let weak = Arc::downgrade(self);
        let listener = unopened.listener;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Some(hub) = weak.upgrade() else {
                    return;
                };
                if let Ok(c) = conn {
                    hub.serve(c);
                }
            }
        });
    }

    /// Takes a client connected another way (one end of a socket pair the
    /// command that started this supervisor kept the other end of).
    pub fn adopt(self: &Arc<Self>, conn: UnixStream) {
        self.serve(conn);
    }

    /// Takes a new client: its header, then its frames on a thread.
    fn serve(self: &Arc<Self>, conn: UnixStream) {
        let Ok(reader) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(reader);
        let mut header = String::new();
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        if reader.read_line(&mut header).is_err() {
            return;
        }
        let _ = reader.get_ref().set_read_timeout(None);
        let wants_stdin = serde_json::from_str::<serde_json::Value>(&header)
            .ok()
            .and_then(|v| v.get("stdin").and_then(|s| s.as_bool()))
            .unwrap_or(false);
        if let Ok(mut st) = self.state.lock() {
            st.clients.push(conn);
            st.connected += 1;
        }
        self.arrived.notify_all();
        if let Ok(mut u) = self.unopened.lock() {
            if let Some(u) = u.as_mut() {
                u.readers.push((reader, wants_stdin));
                return;
            }
        }
        self.read_frames(reader, wants_stdin);
    }

    /// A client's frames, read on a thread of their own.
    fn read_frames(self: &Arc<Self>, mut reader: BufReader<UnixStream>, wants_stdin: bool) {
        let hub = Arc::downgrade(self);
        std::thread::spawn(move || loop {
            // A client that goes without saying its stdin ended (it
            // detached) leaves the container's stdin open.
            let frame = match read_frame(&mut reader) {
                Ok(Some(f)) => f,
                _ => return,
            };
            let Some(h) = hub.upgrade() else {
                return;
            };
            match frame {
                (STDIN, data) if wants_stdin => h.write_stdin(&data),
                (STDIN_CLOSED, _) if wants_stdin => h.client_stdin_ended(),
                (RESIZE, data) => h.resize(&data),
                (START, _) => h.start_requested(),
                _ => {}
            }
        });
    }

    fn write_stdin(&self, data: &[u8]) {
        let Ok(mut st) = self.input.lock() else {
            return;
        };
        let written = match st.stdin.as_mut() {
            Some(StdinTarget::Pipe(p)) => p.write_all(data),
            Some(StdinTarget::Terminal(fd)) => write_fd(fd, data),
            None => {
                // Kept (up to a bound) for the run about to start.
                if st.pending.len() < 1 << 20 {
                    st.pending.extend_from_slice(data);
                }
                Ok(())
            }
        };
        if written.is_err() {
            st.stdin = None;
        }
    }

    fn client_stdin_ended(&self) {
        if !self.stdin_once {
            return;
        }
        if let Ok(mut st) = self.input.lock() {
            // Closing the pipe is the container's end of input; a
            // terminal's end of input is the user's ^D, already sent.
            match st.stdin {
                Some(StdinTarget::Pipe(_)) => st.stdin = None,
                None => st.ended = true,
                Some(StdinTarget::Terminal(_)) => {}
            }
        }
    }

    fn resize(&self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
        let (Some(Some(rows)), Some(Some(cols))) = (parts.next(), parts.next()) else {
            return;
        };
        if let Ok(st) = self.state.lock() {
            if let Some(t) = &st.terminal {
                crate::console::set_size(t.as_raw_fd(), rows, cols);
            }
        }
    }

    fn start_requested(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.start = true;
        }
        self.arrived.notify_all();
    }

    /// Waits until a client says START, checking `still_wanted` now and
    /// then (false ends the wait); whether the start came.
    pub fn wait_for_start(self: &Arc<Self>, still_wanted: impl Fn() -> bool) -> bool {
        self.open();
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        while !st.start {
            if !still_wanted() {
                return false;
            }
            st = match self.arrived.wait_timeout(st, Duration::from_millis(500)) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
        true
    }

    /// Waits until a client has connected, at most `timeout`.
    pub fn wait_for_client(self: &Arc<Self>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.state.lock().is_ok_and(|st| st.connected == 0) {
            // Only the accept loop can bring one.
            self.open();
        }
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        while st.connected == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.arrived.wait_timeout(st, left) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
        true
    }

    /// The stdin and terminal of the run that starts now.
    pub fn set_run(&self, stdin: Option<StdinTarget>, terminal: Option<OwnedFd>) {
        if let Ok(mut st) = self.state.lock() {
            st.terminal = terminal;
        }
        let Ok(mut st) = self.input.lock() else {
            return;
        };
        st.stdin = stdin;
        if st.stdin.is_none() {
            return;
        }
        let pending = std::mem::take(&mut st.pending);
        if !pending.is_empty() {
            let written = match st.stdin.as_mut() {
                Some(StdinTarget::Pipe(p)) => p.write_all(&pending),
                Some(StdinTarget::Terminal(fd)) => write_fd(fd, &pending),
                None => Ok(()),
            };
            if written.is_err() {
                st.stdin = None;
            }
        }
        if std::mem::take(&mut st.ended) && matches!(st.stdin, Some(StdinTarget::Pipe(_))) {
            st.stdin = None;
        }
    }

    /// Output of the container, to every client (one that went away is
    /// dropped).
    pub fn broadcast(&self, kind: u8, data: &[u8]) {
        if let Ok(mut st) = self.state.lock() {
            st.clients
                .retain_mut(|c| write_frame(c, kind, data).is_ok());
        }
    }

    /// The run is over: its code to every client, and they are let go.
    pub fn exit(&self, code: i32) {
        if let Ok(mut input) = self.input.lock() {
            input.stdin = None;
        }
        if let Ok(mut st) = self.state.lock() {
            st.terminal = None;
            for mut c in st.clients.drain(..) {
                let _ = write_frame(&mut c, EXIT, code.to_string().as_bytes());
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// A writer of one output stream to every client.
    pub fn writer(self: &Arc<Self>, kind: u8) -> Box<dyn Write + Send> {
        Box::new(HubWriter {
            hub: self.clone(),
            kind,
        })
    }
}

impl Drop for AttachHub {
    fn drop(&mut self) {
        // The accept loop ends at its next client: make one, then go.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn write_fd(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct HubWriter {
    hub: Arc<AttachHub>,
    kind: u8,
}

impl Write for HubWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hub.broadcast(self.kind, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
