//! The handlers, one module per kind of object, each a thin mapping of a
//! request onto the engine's typed operations.

pub mod archive;
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

/// Runs `f` on the engine off the async threads; its answer as JSON with
/// `ok`, or the error docker gives.
pub async fn blocking<T, F>(engine: Engine, ok: StatusCode, f: F) -> Response<Body>
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Engine) -> berth_engine::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(Ok(v)) => reply::json(ok, &v),
        Ok(Err(e)) => reply::engine_error(&e),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler failed: {e}"),
        ),
    }
}

/// A 400 for a request that cannot be read.
pub fn bad_request(why: &str) -> Response<Body> {
    reply::error(StatusCode::BAD_REQUEST, why)
}

/// The same for operations that answer nothing (204).
pub async fn blocking_empty<F>(engine: Engine, f: F) -> Response<Body>
where
    F: FnOnce(&Engine) -> berth_engine::Result<()> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(Ok(())) => reply::empty(StatusCode::NO_CONTENT),
        Ok(Err(e)) => reply::engine_error(&e),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler failed: {e}"),
        ),
    }
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
