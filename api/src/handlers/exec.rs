//! `/containers/{id}/exec` and `/exec/{id}/...`.

use super::Request;
use crate::hijack;
use crate::reply::{self, Body};
use berth_engine::model::{ExecCreate, ExecStart};
use hyper::{Response, StatusCode};

pub async fn create(req: Request, container: String) -> Response<Body> {
    let body: ExecCreate = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    super::blocking(req.engine, StatusCode::CREATED, move |engine| {
        let id = engine.exec_create(&container, body)?;
        Ok(serde_json::json!({ "Id": id }))
    })
    .await
}

pub async fn inspect(req: Request, id: String) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, move |engine| {
        engine.exec_inspect(&id)
    })
    .await
}

pub async fn resize(req: Request, id: String) -> Response<Body> {
    let Some((h, w)) = super::terminal_size(&req) else {
        return super::bad_request("resize needs ?h=ROWS&w=COLS");
    };
    super::blocking_status(req.engine, StatusCode::OK, move |e| {
        e.exec_resize(&id, h, w)
    })
    .await
}

/// `POST /exec/{id}/start`: detached, an empty 200 once the process runs;
/// else the connection hijacked (`Upgrade: tcp`, as the CLI and docker-py
/// ask) or, for a client that did not ask, the output as the body.
pub async fn start(mut req: Request, id: String) -> Response<Body> {
    let body: ExecStart = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    let size = body.console_size.map(|[h, w]| (h, w));
    let detach = body.detach;
    let started = super::off_thread(req.engine.clone(), move |engine| {
        let tty = engine.exec_tty(&id)?;
        engine.exec_start(&id, detach, size).map(|s| (tty, s))
    })
    .await;
    let (tty, session) = match started {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if detach {
        std::thread::spawn(move || session.wait());
        return reply::empty(StatusCode::OK);
    }
    let pipes = hijack::exec_pipes(session);
    let socket = req.local_socket;
    match req.upgrade.take().filter(|_| req.wants_upgrade()) {
        Some(upgrade) => {
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => {
                        hijack::head_read(socket).await;
                        hijack::relay_exec(hyper_util::rt::TokioIo::new(upgraded), pipes).await
                    }
                    Err(e) => {
                        tracing::debug!("exec: the upgrade failed: {e}");
                        let _ = tokio::task::spawn_blocking(move || pipes.session.wait()).await;
                    }
                }
            });
            hijack::switching(tty)
        }
        None => {
            let hijack::ExecPipes {
                mut output,
                input,
                session,
            } = pipes;
            drop(input);
            let (tx, rx) = tokio::sync::mpsc::channel(32);
            tokio::spawn(async move {
                while let Some(chunk) = output.recv().await {
                    let _ = tx.send(chunk).await;
                }
                let _ = tokio::task::spawn_blocking(move || session.wait()).await;
            });
            reply::stream(StatusCode::OK, hijack::stream_kind(tty), rx)
        }
    }
}
