//! `/containers/...`.

use super::Request;
use crate::reply::{self, Body};
use berth_engine::container::WaitCondition;
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

fn grace(req: &Request) -> Option<std::time::Duration> {
    req.query()
        .get("t")
        .and_then(|t| t.parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// docker's default stop timeout.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn create(req: Request) -> Response<Body> {
    let body: berth_engine::model::ContainerCreate = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    let name = req
        .query()
        .get("name")
        .map(String::from)
        .filter(|n| !n.is_empty());
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        engine.container_create(name.as_deref(), body)
    })
    .await
}

pub async fn start(req: Request, id: String) -> Response<Body> {
    super::blocking_empty(req.engine, move |engine| engine.container_start(&id)).await
}

pub async fn stop(req: Request, id: String) -> Response<Body> {
    let t = grace(&req).unwrap_or(STOP_GRACE);
    super::blocking_empty(req.engine, move |engine| engine.container_stop(&id, t)).await
}

pub async fn restart(req: Request, id: String) -> Response<Body> {
    let t = grace(&req).unwrap_or(STOP_GRACE);
    super::blocking_empty(req.engine, move |engine| engine.container_restart(&id, t)).await
}

pub async fn kill(req: Request, id: String) -> Response<Body> {
    let signal = req.query().get("signal").unwrap_or("KILL").to_string();
    super::blocking_empty(req.engine, move |engine| {
        engine.container_kill(&id, &signal)
    })
    .await
}

pub async fn pause(req: Request, id: String) -> Response<Body> {
    super::blocking_empty(req.engine, move |engine| engine.container_pause(&id)).await
}

pub async fn unpause(req: Request, id: String) -> Response<Body> {
    super::blocking_empty(req.engine, move |engine| engine.container_unpause(&id)).await
}

pub async fn rename(req: Request, id: String) -> Response<Body> {
    let Some(name) = req.query().get("name").map(String::from) else {
        return super::bad_request("rename needs ?name=");
    };
    super::blocking_empty(req.engine, move |engine| {
        engine.container_rename(&id, &name)
    })
    .await
}

/// `POST /containers/{id}/wait?condition=`: the headers once the waiter
/// is registered, the exit code when the condition holds.
pub async fn wait(req: Request, id: String) -> Response<Body> {
    let condition: WaitCondition = match req.query().get("condition").unwrap_or("").parse() {
        Ok(c) => c,
        Err(e) => return reply::engine_error(&e),
    };
    let waiter = match super::off_thread(req.engine.clone(), move |e| {
        e.container_waiter(&id, condition)
    })
    .await
    {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        let body = match waiter.wait() {
            Ok(code) => serde_json::json!({ "StatusCode": code, "Error": null }),
            Err(e) => {
                serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } })
            }
        };
        let mut text = body.to_string().into_bytes();
        text.push(b'\n');
        let _ = tx.blocking_send(bytes::Bytes::from(text));
    });
    // The headers go at once: the waiter is registered.
    reply::stream(StatusCode::OK, "application/json", rx)
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(req: Request, id: String) -> Response<Body> {
    let Some((h, w)) = super::terminal_size(&req) else {
        return super::bad_request("resize needs ?h=ROWS&w=COLS");
    };
    super::blocking_empty(req.engine, move |engine| engine.container_resize(&id, h, w)).await
}

/// `POST /containers/{id}/attach`: the connection hijacked after `101
/// UPGRADED`, then the container's output in docker's 8-byte frames (raw
/// with a terminal) and the client's bytes as its stdin.
pub async fn attach(mut req: Request, id: String) -> Response<Body> {
    let q = req.query();
    let stdin = q.bool("stdin");
    let Some(upgrade) = req.upgrade.take() else {
        return super::bad_request("attach needs an upgraded connection (Upgrade: tcp)");
    };
    let conn = match super::off_thread(req.engine.clone(), move |e| {
        e.container_attach_connect(&id, stdin)
    })
    .await
    {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let tty = conn.tty;
    let socket = req.local_socket;
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                crate::hijack::head_read(socket).await;
                crate::hijack::relay(hyper_util::rt::TokioIo::new(upgraded), conn, stdin).await
            }
            Err(e) => tracing::debug!("attach: the upgrade failed: {e}"),
        }
    });
    crate::hijack::switching(tty)
}

pub async fn remove(req: Request, id: String) -> Response<Body> {
    let q = req.query();
    let (force, volumes) = (q.bool("force"), q.bool("v"));
    super::blocking_empty(req.engine, move |engine| {
        engine.container_remove(&id, force, volumes)
    })
    .await
}

pub async fn prune(req: Request) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, |engine| {
        Ok(serde_json::json!({ "ContainersDeleted": engine.container_prune()?, "SpaceReclaimed": 0 }))
    })
    .await
}

pub async fn top(req: Request, id: String) -> Response<Body> {
    let args: Vec<String> = req
        .query()
        .get("ps_args")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.container_top(&id, &args)
    })
    .await
}

pub async fn changes(req: Request, id: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.container_changes(&id)
    })
    .await
}
