//! `/containers/{id}/archive` (`docker cp`): HEAD and GET answer the
//! path's stat in `X-Docker-Container-Path-Stat`, GET a tar of it; PUT
//! unpacks a tar into a folder, refusing entries that leave it.

use super::Request;
use crate::reply::{self, Body};
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
    let (key, p) = (id.clone(), path.clone());
    let stat = match super::off_thread(req.engine.clone(), move |e| e.container_path_stat(&key, &p))
        .await
    {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let encoded = serde_json::to_vec(&stat)
        .map(|j| base64::engine::general_purpose::STANDARD.encode(j))
        .unwrap_or_default();
    let mut r = if req.method == Method::HEAD {
        reply::empty(StatusCode::OK)
    } else {
        super::written(req.engine.clone(), "application/x-tar", move |e, out| {
            e.container_archive_get(&id, &path, out)
        })
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
    super::blocking_status(req.engine, StatusCode::OK, move |e| {
        e.container_archive_put(&id, &path, &mut body.as_ref())
    })
    .await
}
