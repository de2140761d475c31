//! Answers: JSON bodies, docker's `{"message"}` errors and the headers
//! every response carries.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type Body = BoxBody<Bytes, Infallible>;

/// A body of the chunks `rx` gives, until its senders are gone (logs,
/// events, progress streams).
struct Chunks(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|got| got.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed answer of type `kind`: the headers now, then what `rx` gives.
pub fn stream(
    status: StatusCode,
    kind: &str,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Response<Body> {
    with_body(status, kind, Chunks(rx).boxed())
}

/// A writer whose bytes go out as chunks of a streamed answer (as
/// docker's frames of one kind, with `frame`); none drops them. A gone
/// client is a broken pipe, which ends a followed log or a tar stream.
pub struct ChunkWriter {
    pub tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    pub frame: Option<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(tx) = &self.tx else {
            return Ok(buf.len());
        };
        let chunk = match self.frame {
            Some(kind) => crate::hijack::frame(kind, buf),
            None => Bytes::copy_from_slice(buf),
        };
        tx.blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn with_headers(status: StatusCode, kind: &str, body: Bytes) -> Response<Body> {
    with_body(status, kind, Full::new(body).boxed())
}

fn with_body(status: StatusCode, kind: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in [
        ("Content-Type", kind),
        ("Api-Version", crate::API_VERSION),
        ("Builder-Version", "1"),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        (
            "Server",
            concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)"),
        ),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    r
}

pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    match serde_json::to_vec(v) {
        Ok(mut b) => {
            b.push(b'\n');
            with_headers(status, "application/json", Bytes::from(b))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

pub fn text(status: StatusCode, t: &'static str) -> Response<Body> {
    with_headers(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(t.as_bytes()),
    )
}

pub fn empty(status: StatusCode) -> Response<Body> {
    with_headers(status, "text/plain; charset=utf-8", Bytes::new())
}

/// docker's error body.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "message": message }))
}

/// An engine error with the status docker gives its kind.
pub fn engine_error(e: &berth_engine::Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, &e.to_string())
}
