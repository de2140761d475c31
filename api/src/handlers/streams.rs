//! What is streamed out as it happens: a container's logs, the events.

use super::Request;
use crate::hijack;
use crate::reply::{self, Body, ChunkWriter};
use berth_engine::container::LogsOptions;
use berth_engine::events::EventsOptions;
use bytes::Bytes;
use hyper::{Response, StatusCode};

fn time_param(q: &crate::query::Query, key: &str) -> Result<Option<i64>, String> {
    match q.get(key).filter(|v| !v.is_empty() && *v != "0") {
        None => Ok(None),
        Some(v) => berth_engine::units::timestamp(v, now_nanos()).map(Some),
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `GET /containers/{id}/logs`.
pub async fn logs(req: Request, id: String) -> Response<Body> {
    let q = req.query();
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
    if !stdout && !stderr {
        return super::bad_request("Bad parameters: you must choose at least one stream");
    }
    let tail = match q.get("tail").filter(|t| !t.is_empty() && *t != "all") {
        None => None,
        Some(t) => match t.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => return super::bad_request(&format!("invalid tail {t:?}")),
        },
    };
    let (since, until) = match (time_param(&q, "since"), time_param(&q, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return super::bad_request(&e),
    };
    let opts = LogsOptions {
        follow: q.bool("follow"),
        timestamps: q.bool("timestamps"),
        tail,
        since,
        until,
    };
    let key = id.clone();
    let tty = match super::off_thread(req.engine.clone(), move |e| e.container_inspect(&key)).await
    {
        Ok(c) => c.config.tty,
        Err(r) => return r.into_response(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let engine = req.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: stdout.then(|| tx.clone()),
            frame: (!tty).then_some(berth_engine::container::frames::STDOUT),
        };
        let mut err = ChunkWriter {
            tx: stderr.then_some(tx),
            frame: (!tty).then_some(berth_engine::container::frames::STDERR),
        };
        if let Err(e) = engine.container_logs(&id, &opts, &mut out, &mut err) {
            tracing::debug!("logs of {id}: {e}");
        }
    });
    reply::stream(StatusCode::OK, hijack::stream_kind(tty), rx)
}

/// `GET /events?since=&until=&filters=`: one JSON object a line, until
/// `until` or the client goes.
pub async fn events(req: Request) -> Response<Body> {
    let q = req.query();
    let filters = match q.filters() {
        Ok(f) => f,
        Err(e) => return super::bad_request(&e),
    };
    let (since, until) = match (time_param(&q, "since"), time_param(&q, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return super::bad_request(&e),
    };
    let opts = EventsOptions {
        since,
        until,
        filters,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let engine = req.engine.clone();
    tokio::task::spawn_blocking(move || {
        let watch = tx.clone();
        let alive = move || !watch.is_closed();
        let mut send = |e: &berth_engine::model::EventMessage| {
            let Ok(mut line) = serde_json::to_vec(e) else {
                return true;
            };
            line.push(b'\n');
            tx.blocking_send(Bytes::from(line)).is_ok()
        };
        if let Err(e) = engine.events_while(&opts, &mut send, &alive) {
            tracing::debug!("events: {e}");
        }
    });
    reply::stream(StatusCode::OK, "application/json", rx)
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: docker's samples, a
/// second apart; `stream=false` answers one whose `precpu_stats` is the
/// sample a second before (none with `one-shot`).
pub async fn stats(req: Request, id: String) -> Response<Body> {
    let q = req.query();
    let stream = q.get("stream").is_none() || q.bool("stream");
    let one_shot = q.bool("one-shot");
    let engine = req.engine;
    let sample = move |previous: Option<berth_engine::model::ContainerStatsResponse>| {
        let (engine, id) = (engine.clone(), id.clone());
        super::off_thread(engine, move |e| {
            e.container_stats_sample(&id, previous.as_ref())
        })
    };
    let first = match sample(None).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let running =
        |s: &berth_engine::model::ContainerStatsResponse| s.cpu_stats.online_cpus.is_some();
    if !stream {
        if one_shot || !running(&first) {
            return reply::json(StatusCode::OK, &first);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        return match sample(Some(first)).await {
            Ok(s) => reply::json(StatusCode::OK, &s),
            Err(r) => r.into_response(),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = first;
        loop {
            let mut line = serde_json::to_vec(&last).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() || !running(&last) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match sample(Some(last)).await {
                Ok(s) => last = s,
                Err(_) => break,
            }
        }
    });
    reply::stream(StatusCode::OK, "application/json", rx)
}
