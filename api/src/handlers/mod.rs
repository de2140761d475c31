//! The handlers, one module per kind of object, each a thin mapping of a
//! request onto the engine's typed operations.

pub mod archive;
pub mod build;
pub mod containers;
pub mod exec;
pub mod images;
pub mod networks;
pub mod streams;
pub mod system;
pub mod transfer;
pub mod volumes;

use crate::query::Query;
use crate::reply::{self, Body};
use berth_engine::Engine;
use bytes::Bytes;
use hyper::{Method, Response, StatusCode, Uri};

/// A request, its body read.
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub engine: Engine,
    /// The connection, once the answer said `101 UPGRADED` (attach).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The connection's socket when it is a local (unix) one: whether the
    /// client has read what was sent is to be seen there.
    pub local_socket: Option<std::os::fd::RawFd>,
}

impl Request {
    /// The client asked for the connection to be hijacked (`Upgrade: tcp`).
    pub fn wants_upgrade(&self) -> bool {
        self.headers.contains_key(hyper::header::UPGRADE)
    }

    pub fn query(&self) -> Query {
        Query::parse(self.uri.query())
    }

    /// The body as JSON of type `T` (an empty body is `T`'s default).
    /// (A bad body is the message of its 400.)
    pub fn json<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice(&self.body).map_err(|e| format!("invalid JSON body: {e}"))
    }
}

/// Why a handler answers before its work: the error response, boxed (it
/// is large beside the values it stands in for).
pub struct Refusal(Box<Response<Body>>);

impl Refusal {
    pub fn into_response(self) -> Response<Body> {
        *self.0
    }
}

/// Runs `f` on the engine off the async threads: its value, or the answer
/// docker gives its error.
pub async fn off_thread<T, F>(engine: Engine, f: F) -> Result<T, Refusal>
where
    T: Send + 'static,
    F: FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Refusal(Box::new(reply::engine_error(&e)))),
        Err(e) => Err(Refusal(Box::new(reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler failed: {e}"),
        )))),
    }
}

/// `off_thread` answered: its value as JSON with `ok`.
pub async fn blocking<T, F>(engine: Engine, ok: StatusCode, f: F) -> Response<Body>
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
{
    match off_thread(engine, f).await {
        Ok(v) => reply::json(ok, &v),
        Err(r) => r.into_response(),
    }
}

/// The same for operations that answer nothing, with `ok` (docker's 204
/// mostly; 200 for some).
pub async fn blocking_status<F>(engine: Engine, ok: StatusCode, f: F) -> Response<Body>
where
    F: FnOnce(&Engine) -> berth_engine::Result<()> + Send + 'static,
{
    match off_thread(engine, f).await {
        Ok(()) => reply::empty(ok),
        Err(r) => r.into_response(),
    }
}

pub async fn blocking_empty<F>(engine: Engine, f: F) -> Response<Body>
where
    F: FnOnce(&Engine) -> berth_engine::Result<()> + Send + 'static,
{
    blocking_status(engine, StatusCode::NO_CONTENT, f).await
}

/// A streamed answer of type `kind` that `write` produces on a blocking
/// thread (a tar of a path or of images); an error past the headers
/// cuts the stream, and is logged.
pub fn written<F>(engine: Engine, kind: &str, write: F) -> Response<Body>
where
    F: FnOnce(&Engine, &mut reply::ChunkWriter) -> berth_engine::Result<()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut out = reply::ChunkWriter {
            tx: Some(tx),
            frame: None,
        };
        if let Err(e) = write(&engine, &mut out) {
            tracing::debug!("a streamed answer was cut: {e}");
        }
    });
    reply::stream(StatusCode::OK, kind, rx)
}

/// A 400 for a request that cannot be read.
pub fn bad_request(why: &str) -> Response<Body> {
    reply::error(StatusCode::BAD_REQUEST, why)
}

/// Filters as `(key, value)` pairs, or why they are none (a 400).
pub fn filter_pairs(req: &Request) -> Result<Vec<(String, String)>, String> {
    let f = req.query().filters()?;
    Ok(f.into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| (k.clone(), v)))
        .collect())
}

/// `?h=ROWS&w=COLS` of a resize.
pub fn terminal_size(req: &Request) -> Option<(u16, u16)> {
    let q = req.query();
    let h = q.get("h")?.parse::<u16>().ok()?;
    let w = q.get("w")?.parse::<u16>().ok()?;
    Some((h, w))
}
