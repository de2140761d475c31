//! `/networks/...`.

use super::Request;
use crate::reply::Body;
use berth_engine::model::{NetworkConnect, NetworkCreate, NetworkDisconnect, NetworkPruneResponse};
use hyper::{Response, StatusCode};

pub async fn list(req: Request) -> Response<Body> {
    let filters = match super::filter_pairs(&req) {
        Ok(f) => f,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.network_list(&filters)
    })
    .await
}

pub async fn inspect(req: Request, id: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.network_inspect(&id)
    })
    .await
}

pub async fn create(req: Request) -> Response<Body> {
    let body: NetworkCreate = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        engine.network_create(body)
    })
    .await
}

pub async fn remove(req: Request, id: String) -> Response<Body> {
    super::blocking_empty(req.engine, move |engine| engine.network_remove(&id)).await
}

pub async fn prune(req: Request) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, |engine| {
        Ok(NetworkPruneResponse {
            networks_deleted: engine.network_prune()?,
        })
    })
    .await
}

pub async fn connect(req: Request, id: String) -> Response<Body> {
    let body: NetworkConnect = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking_empty(req.engine, move |engine| {
        engine.network_connect(
            &id,
            &body.container,
            body.endpoint_config.unwrap_or_default(),
        )
    })
    .await
}

pub async fn disconnect(req: Request, id: String) -> Response<Body> {
    let body: NetworkDisconnect = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking_empty(req.engine, move |engine| {
        engine.network_disconnect(&id, &body.container, body.force)
    })
    .await
}
