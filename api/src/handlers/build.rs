//! `POST /build`: the classic builder's API. The body is the context as a
//! tar (gzip or zstd compressed or not); the answer is docker's JSON
//! message stream, ending in `Successfully built`/`tagged` or an error.
//! BuildKit's gRPC sessions are refused with what to do instead.

use super::transfer::progress_stream;
use super::Request;
use crate::progress::Direction;
use crate::query::Query;
use crate::reply::{self, Body};
use berth_engine::build::{BuildContext, BuildOptions, DockerfileSource};
use berth_engine::progress::Silent;
use hyper::{Response, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const BUILDKIT_REFUSED: &str = "berth serves the classic builder API only: BuildKit's \
     sessions are not supported; set DOCKER_BUILDKIT=0 to build through berth";

/// `POST /session` (BuildKit's gRPC session) and `/build?version=2`.
pub fn refuse_buildkit() -> Response<Body> {
    reply::error(StatusCode::BAD_REQUEST, BUILDKIT_REFUSED)
}

/// A query parameter holding a JSON map of strings (`buildargs`,
/// `labels`); a `null` value (docker's "from the environment") is left out.
fn string_map(q: &Query, key: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(raw) = q.get(key).filter(|s| !s.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let m: BTreeMap<String, Option<String>> =
        serde_json::from_str(raw).map_err(|e| format!("invalid {key}: {e}"))?;
    Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

fn options(req: &Request, context: BuildContext) -> Result<BuildOptions, String> {
    let q = req.query();
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(
            "berth builds from a context sent as the request body only (remote= is not supported)"
                .into(),
        );
    }
    // The classic builder's cachefrom names images whose steps may be
    // reused: berth reads the build cache (inline or berth's own) they carry.
    let cache_from = match q.get("cachefrom").filter(|c| !c.is_empty()) {
        Some(c) => {
            serde_json::from_str::<Vec<String>>(c).map_err(|e| format!("invalid cachefrom: {e}"))?
        }
        None => Vec::new(),
    };
    Ok(BuildOptions {
        context,
        dockerfile: DockerfileSource::Path(
            q.get("dockerfile")
                .filter(|d| !d.is_empty())
                .map(String::from),
        ),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        build_args: string_map(&q, "buildargs")?,
        labels: string_map(&q, "labels")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        no_cache: q.bool("nocache"),
        no_cache_filter: Vec::new(),
        pull: q.bool("pull"),
        push: false,
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(String::from),
        outputs: Vec::new(),
        secrets: BTreeMap::new(),
        network: q
            .get("networkmode")
            .filter(|n| !n.is_empty())
            .map(String::from),
        cache_from,
        cache_to: Vec::new(),
    })
}

pub async fn build(req: Request) -> Response<Body> {
    let q = req.query();
    if q.get("version") == Some("2") {
        return refuse_buildkit();
    }
    let quiet = q.bool("q");
    // The context is unpacked first: a hostile or broken tar is a 400.
    let body = req.body.clone();
    let unpacked = super::off_thread(req.engine.clone(), move |_| {
        berth_engine::build::unpack_build_context(&mut body.as_ref())
    })
    .await;
    let context = match unpacked {
        Ok(dir) => BuildContext::Unpacked(dir),
        Err(r) => return r.into_response(),
    };
    let opts = match options(&req, context) {
        Ok(o) => o,
        Err(e) => return super::bad_request(&e),
    };
    progress_stream(req.engine, Direction::Pull, move |engine, p| {
        let tags = opts.tags.clone();
        let sink: Arc<dyn berth_engine::ProgressSink> =
            if quiet { Arc::new(Silent) } else { p.clone() };
        match engine.build(opts, sink) {
            Ok(built) => {
                p.send(json!({ "aux": { "ID": built.image_id } }));
                if quiet {
                    p.send(json!({ "stream": format!("{}\n", built.image_id) }));
                    return;
                }
                let short: String = built
                    .image_id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                p.send(json!({ "stream": format!("Successfully built {short}\n") }));
                for t in tags {
                    let shown = berth_engine::image::familiar(&t).unwrap_or(t);
                    p.send(json!({ "stream": format!("Successfully tagged {shown}\n") }));
                }
            }
            Err(e) => p.error(&e.to_string()),
        }
    })
}
