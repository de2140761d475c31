//! `/containers/...`.

use super::Request;
use crate::reply::{self, Body};
use hyper::{Response, StatusCode};

pub async fn list(req: Request) -> Response<Body> {
    let q = req.query();
    let all = q.bool("all");
    let filters = match q.filters() {
        Ok(f) => f,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e),
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        let mut list = engine.container_list_filtered(all || limit.is_some(), &filters)?;
        if let Some(n) = limit {
            list.truncate(n as usize);
        }
        Ok(list)
    })
    .await
}

pub async fn inspect(req: Request, id: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.container_inspect(&id)
    })
    .await
}
