//! A hijacked connection relayed to a container's attach socket: the
//! supervisor's frames are docker's, so without a terminal they pass as
//! they are (stdout 1, stderr 2; the exit frame ends the stream); with
//! one, only their payload. The client's bytes become stdin frames, and
//! its half-close says stdin ended. docker-py reads the socket straight:
//! nothing but frames after `101 UPGRADED`.

use berth_engine::container::{frames, AttachConnection, ExecSession, ExecStreams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Waits (a second at most) until the client has read all that was sent on
/// its local socket `fd`: the `101 UPGRADED` head. docker-py reads the
/// head through a buffered reader and the frames straight off the socket,
/// so frames that came with the head would be lost in that buffer.
pub async fn head_read(fd: Option<std::os::fd::RawFd>) {
    let Some(fd) = fd else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; the socket is the
        // upgraded connection's, alive while the caller relays on it.
        let asked = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unread) };
        if asked != 0 || unread <= 0 || std::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_micros(500)).await;
    }
}

fn header(kind: u8, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = kind;
    h[4..].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

pub async fn relay<C>(client: C, conn: AttachConnection, stdin: bool)
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let tty = conn.tty;
    if conn.stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(sup) = tokio::net::UnixStream::from_std(conn.stream) else {
        return;
    };
    let (mut from_sup, mut to_sup) = sup.into_split();
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin {
                        let _ = to_sup.write_all(&header(frames::STDIN_CLOSED, 0)).await;
                    }
                    return;
                }
                Ok(n) if stdin => {
                    let mut frame = header(frames::STDIN, n).to_vec();
                    frame.extend_from_slice(&buf[..n]);
                    if to_sup.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    });
    loop {
        let mut h = [0u8; 8];
        if from_sup.read_exact(&mut h).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        if from_sup.read_exact(&mut payload).await.is_err() {
            break;
        }
        let written = match h[0] {
            frames::STDOUT | frames::STDERR if tty => to_client.write_all(&payload).await,
            frames::STDOUT | frames::STDERR => {
                let mut frame = h.to_vec();
                frame.extend_from_slice(&payload);
                to_client.write_all(&frame).await
            }
            frames::EXIT => break,
            _ => Ok(()),
        };
        if written.is_err() || to_client.flush().await.is_err() {
            break;
        }
    }
    let _ = to_client.shutdown().await;
    input.abort();
}

/// The `101 UPGRADED` answer that hands the connection over; its stream is
/// raw with a terminal, docker's frames without.
pub fn switching(tty: bool) -> hyper::Response<crate::reply::Body> {
    let mut r = crate::reply::empty(hyper::StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in [
        ("Connection", "Upgrade"),
        ("Upgrade", "tcp"),
        ("Content-Type", stream_kind(tty)),
    ] {
        r.headers_mut()
            .insert(k, hyper::header::HeaderValue::from_static(v));
    }
    r
}

pub fn stream_kind(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// One of docker's frames: `kind` (1 stdout, 2 stderr), then the payload.
pub fn frame(kind: u8, payload: &[u8]) -> bytes::Bytes {
    let mut f = header(kind, payload.len()).to_vec();
    f.extend_from_slice(payload);
    bytes::Bytes::from(f)
}

/// The output of a started exec process as chunks on a channel (framed
/// without a terminal, raw with one), its input as a sender, and the
/// session, whose `wait` is for after the output ended.
pub struct ExecPipes {
    pub output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    pub input: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    pub session: ExecSession,
}

/// Reads the session's streams on threads of their own (pipes and
/// terminals are blocking files).
pub fn exec_pipes(mut session: ExecSession) -> ExecPipes {
    let (tx, output) = tokio::sync::mpsc::channel(32);
    let streams = std::mem::replace(
        &mut session.streams,
        ExecStreams::Pipes {
            stdin: None,
            stdout: None,
            stderr: None,
        },
    );
    let spawn_reader = |mut r: Box<dyn std::io::Read + Send>, kind: Option<u8>| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            // A gone client stops nobody: the output is drained, so the
            // process never blocks on a full pipe.
            let mut gone = false;
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if gone {
                    continue;
                }
                let chunk = match kind {
                    Some(k) => frame(k, &buf[..n]),
                    None => bytes::Bytes::copy_from_slice(&buf[..n]),
                };
                gone = tx.blocking_send(chunk).is_err();
            }
        });
    };
    let spawn_writer = |mut w: Box<dyn std::io::Write + Send>| {
        let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            while let Ok(b) = in_rx.recv() {
                if w.write_all(&b).and_then(|_| w.flush()).is_err() {
                    break;
                }
            }
        });
        in_tx
    };
    let input = match streams {
        ExecStreams::Tty(master) => {
            let input = master.try_clone().ok().map(|w| spawn_writer(Box::new(w)));
            spawn_reader(Box::new(master), None);
            input
        }
        ExecStreams::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            if let Some(o) = stdout {
                spawn_reader(Box::new(o), Some(frames::STDOUT));
            }
            if let Some(e) = stderr {
                spawn_reader(Box::new(e), Some(frames::STDERR));
            }
            stdin.map(|i| spawn_writer(Box::new(i)))
        }
    };
    ExecPipes {
        output,
        input,
        session,
    }
}

/// A hijacked connection carrying an exec process's stdio; closed once its
/// output ended and its exit code is recorded (the CLI asks for it next).
pub async fn relay_exec<C>(client: C, pipes: ExecPipes)
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ExecPipes {
        mut output,
        input,
        session,
    } = pipes;
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            match from_client.read(&mut buf).await {
                // The end of the client's input closes the process's stdin.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(i) = &input {
                        if i.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let mut gone = false;
    while let Some(chunk) = output.recv().await {
        if !gone {
            gone = to_client.write_all(&chunk).await.is_err() || to_client.flush().await.is_err();
        }
    }
    let _ = tokio::task::spawn_blocking(move || session.wait()).await;
    let _ = to_client.shutdown().await;
    reader.abort();
}
