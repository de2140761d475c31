//! A hijacked connection relayed to a container's attach socket: the
//! supervisor's frames are docker's, so without a terminal they pass as
//! they are (stdout 1, stderr 2; the exit frame ends the stream); with
//! one, only their payload. The client's bytes become stdin frames, and
//! its half-close says stdin ended. docker-py reads the socket straight:
//! nothing but frames after `101 UPGRADED`.

use berth_engine::container::{frames, AttachConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
