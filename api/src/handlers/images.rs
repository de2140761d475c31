//! `/images/...`.

use super::Request;
use crate::reply::{self, Body};
use hyper::{Response, StatusCode};

pub async fn list(req: Request) -> Response<Body> {
    let filters = match req.query().filters() {
        Ok(f) => f,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e),
    };
    let reference = filters.get("reference").and_then(|r| r.first().cloned());
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.image_list(reference.as_deref())
    })
    .await
}

pub async fn inspect(req: Request, name: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.image_inspect(&name)
    })
    .await
}

pub async fn history(req: Request, name: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.image_history(&name)
    })
    .await
}

/// `POST /images/{name}/tag?repo=R&tag=T`.
pub async fn tag(req: Request, name: String) -> Response<Body> {
    let q = req.query();
    let Some(repo) = q.get("repo").filter(|r| !r.is_empty()).map(String::from) else {
        return super::bad_request("tag needs ?repo=");
    };
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        engine.image_tag(&name, &target)?;
        Ok(serde_json::Value::Null)
    })
    .await
}

/// `DELETE /images/{name}`: docker's `[{Untagged}, {Deleted}]`.
pub async fn remove(req: Request, name: String) -> Response<Body> {
    let force = req.query().bool("force");
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.image_remove(&name, force)
    })
    .await
}

pub async fn prune(req: Request) -> Response<Body> {
    let all = req
        .query()
        .filters()
        .ok()
        .and_then(|f| f.get("dangling").cloned())
        .is_some_and(|d| d.iter().any(|v| v == "false" || v == "0"));
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        let (deleted, space) = engine.image_prune(all)?;
        Ok(serde_json::json!({ "ImagesDeleted": deleted, "SpaceReclaimed": space }))
    })
    .await
}
