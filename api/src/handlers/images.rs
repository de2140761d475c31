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
