//! `/volumes/...`.

use super::Request;
use crate::reply::Body;
use hyper::{Response, StatusCode};
use serde_json::json;

pub async fn list(req: Request) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, |engine| {
        Ok(json!({ "Volumes": engine.volume_list()?, "Warnings": [] }))
    })
    .await
}

pub async fn create(req: Request) -> Response<Body> {
    let body: serde_json::Value = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    let name = body
        .get("Name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(String::from);
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        engine.volume_create(name.as_deref())
    })
    .await
}

pub async fn inspect(req: Request, name: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.volume_inspect(&name)
    })
    .await
}

pub async fn remove(req: Request, name: String) -> Response<Body> {
    super::blocking_empty(req.engine, move |engine| engine.volume_remove(&name)).await
}
