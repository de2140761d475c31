//! `/volumes/...`.

use super::Request;
use crate::reply::Body;
use hyper::{Response, StatusCode};
use serde_json::json;

pub async fn list(req: Request) -> Response<Body> {
    let filters = match req.query().filters() {
        Ok(f) => f,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        Ok(json!({ "Volumes": engine.volume_list_filtered(&filters)?, "Warnings": [] }))
    })
    .await
}

pub async fn create(req: Request) -> Response<Body> {
    let body: berth_engine::model::VolumeCreate = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        engine.volume_create_with(&body)
    })
    .await
}

pub async fn prune(req: Request) -> Response<Body> {
    let filters = match req.query().filters() {
        Ok(f) => f,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.volume_prune(&filters)
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
