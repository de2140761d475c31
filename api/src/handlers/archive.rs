//! `/containers/{id}/archive` (`docker cp`): HEAD and GET answer the
//! path's stat in `X-Docker-Container-Path-Stat`, GET a tar of it; PUT
//! unpacks a tar into a folder, refusing entries that leave it.

use super::Request;
use crate::reply::{self, Body, ChunkWriter};
use base64::Engine as _;
use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(req: &Request) -> Option<String> {
    req.query()
        .get("path")
        .filter(|p| !p.is_empty())
        .map(String::from)
}

/// HEAD and GET.
pub async fn get(req: Request, id: String) -> Response<Body> {
    let Some(path) = path_param(&req) else {
        return super::bad_request("archive needs ?path=");
    };
    let engine = req.engine.clone();
    let (key, p) = (id.clone(), path.clone());
    let stat = match tokio::task::spawn_blocking(move || engine.container_path_stat(&key, &p)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return reply::engine_error(&e),
        Err(e) => return reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let encoded = serde_json::to_vec(&stat)
        .map(|j| base64::engine::general_purpose::STANDARD.encode(j))
        .unwrap_or_default();
    let mut r = if req.method == Method::HEAD {
        reply::empty(StatusCode::OK)
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let engine = req.engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx: Some(tx),
                frame: None,
            };
            if let Err(e) = engine.container_archive_get(&id, &path, &mut out) {
                tracing::debug!("archive of {id}:{path}: {e}");
            }
        });
        reply::stream(StatusCode::OK, "application/x-tar", rx)
    };
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

pub async fn put(req: Request, id: String) -> Response<Body> {
    let Some(path) = path_param(&req) else {
        return super::bad_request("archive needs ?path=");
    };
    let body = req.body.clone();
    let engine = req.engine.clone();
    match tokio::task::spawn_blocking(move || {
        engine.container_archive_put(&id, &path, &mut body.as_ref())
    })
    .await
    {
        Ok(Ok(())) => reply::empty(StatusCode::OK),
        Ok(Err(e)) => reply::engine_error(&e),
        Err(e) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
