//! Images moving in and out: pull and import (`/images/create`), push,
//! save (`/images/get`), load, and the registry login check (`/auth`).

use super::Request;
use crate::progress::{registry_auth, Direction, JsonProgress};
use crate::reply::{self, Body};
use berth_engine::image::SaveFormat;
use berth_engine::Engine;
use hyper::{Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// A JSON message stream that `work` writes to, on a thread outside the
/// service's runtime (registry work runs a runtime of its own).
pub(super) fn progress_stream<F>(engine: Engine, direction: Direction, work: F) -> Response<Body>
where
    F: FnOnce(&Engine, Arc<JsonProgress>) + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::spawn(move || {
        let p = Arc::new(JsonProgress::new(tx, direction));
        work(&engine, p)
    });
    reply::stream(StatusCode::OK, "application/json", rx)
}

/// `POST /images/create?fromImage=&tag=` (pull) or `?fromSrc=-&repo=&tag=`
/// (import of the body).
pub async fn create(req: Request) -> Response<Body> {
    let q = req.query();
    let tag = q.get("tag").unwrap_or("").to_string();
    let with_tag = |name: &str| match tag.as_str() {
        "" => name.to_string(),
        t if t.contains(':') => format!("{name}@{t}"),
        t => format!("{name}:{t}"),
    };
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return super::bad_request("berth imports from the request body only (fromSrc=-)");
        }
        let repo = q.get("repo").filter(|r| !r.is_empty()).map(with_tag);
        let changes: Vec<String> = q.all("changes");
        let message = q.get("message").map(String::from);
        let body = req.body.clone();
        return progress_stream(req.engine, Direction::Pull, move |engine, p| {
            match engine.image_import(
                &mut body.as_ref(),
                "-",
                repo.as_deref(),
                &changes,
                message,
                "gzip",
            ) {
                Ok(id) => p.send(json!({ "status": id })),
                Err(e) => p.error(&e.to_string()),
            }
        });
    }
    let Some(image) = q.get("fromImage").filter(|i| !i.is_empty()) else {
        return super::bad_request("images/create needs fromImage= or fromSrc=");
    };
    let has_tag = image.contains('@')
        || image
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
    let name = if has_tag || !tag.is_empty() {
        with_tag(image)
    } else {
        format!("{image}:latest")
    };
    let platform = q
        .get("platform")
        .filter(|p| !p.is_empty())
        .map(String::from);
    let auth = registry_auth(&req.headers);
    progress_stream(req.engine, Direction::Pull, move |engine, p| {
        let shown = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        p.send(
            json!({ "status": format!("Pulling from {}", repository_path(&name)), "id": shown }),
        );
        match engine.image_pull_as(&name, platform.as_deref(), auth, p.clone()) {
            Ok(pulled) => p.send(json!({ "status": if pulled.up_to_date {
                format!("Status: Image is up to date for {}", pulled.familiar)
            } else {
                format!("Status: Downloaded newer image for {}", pulled.familiar)
            }})),
            Err(e) => p.error(&e.to_string()),
        }
    })
}

/// The repository of `name`, without its tag or digest.
fn repo_of(name: &str) -> &str {
    let no_digest = name.split('@').next().unwrap_or(name);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

/// The repository of `name` as docker's pull says it: without the
/// registry host, Docker Hub's official images under `library/`.
fn repository_path(name: &str) -> String {
    let repo = repo_of(name);
    let (host, path) = match repo.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => (host, rest),
        _ => ("docker.io", repo),
    };
    if host == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    }
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(req: Request, name: String) -> Response<Body> {
    let tag = req.query().get("tag").unwrap_or("").to_string();
    let target = if tag.is_empty() {
        name
    } else {
        format!("{name}:{tag}")
    };
    let auth = registry_auth(&req.headers);
    progress_stream(req.engine, Direction::Push, move |engine, p| {
        p.send(
            json!({ "status": format!("The push refers to repository [{}]", repo_of(&target)) }),
        );
        match engine.image_push_as(&target, auth, p.clone()) {
            Ok(pushed) => {
                let tag = pushed.tag.clone().unwrap_or_default();
                p.send(json!({ "status": format!("{tag}: digest: {} size: {}", pushed.digest, pushed.size) }));
                p.send(json!({ "progressDetail": {}, "aux": {
                    "Tag": tag, "Digest": pushed.digest, "Size": pushed.size } }));
            }
            Err(e) => p.error(&e.to_string()),
        }
    })
}

/// `GET /images/{name}/get` and `GET /images/get?names=`: docker's save
/// archive.
pub async fn save(req: Request, names: Vec<String>) -> Response<Body> {
    if names.is_empty() {
        return super::bad_request("images/get needs ?names=");
    }
    // The names are checked first: a missing one is a 404, not a cut tar.
    let check = names.clone();
    if let Err(r) = super::off_thread(req.engine.clone(), move |e| {
        check
            .iter()
            .try_for_each(|n| e.image_inspect(n).map(|_| ()))
    })
    .await
    {
        return r.into_response();
    }
    super::written(req.engine, "application/x-tar", move |e, out| {
        e.image_save(&names, SaveFormat::Docker, out)
    })
}

/// `POST /images/load?quiet=`: the body is a `docker save` (or OCI) archive.
pub async fn load(req: Request) -> Response<Body> {
    let body = req.body.clone();
    progress_stream(req.engine, Direction::Pull, move |engine, p| {
        match engine.image_load(&mut body.as_ref()) {
            Ok(loaded) => {
                for l in loaded {
                    let line = match l.tags.first() {
                        Some(t) => format!("Loaded image: {t}\n"),
                        None => format!("Loaded image ID: {}\n", l.id),
                    };
                    p.send(json!({ "stream": line }));
                }
            }
            Err(e) => p.error(&e.to_string()),
        }
    })
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    serveraddress: String,
}

/// `POST /auth`: the credentials checked with the registry; the client
/// keeps them.
pub async fn auth(req: Request) -> Response<Body> {
    let body: AuthConfig = match req.json() {
        Ok(b) => b,
        Err(e) => return super::bad_request(&e),
    };
    let server = match body.serveraddress.as_str() {
        "" => "docker.io".to_string(),
        s => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or(s)
            .to_string(),
    };
    let creds = berth_engine::registry::Credentials {
        username: body.username,
        password: body.password,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let engine = req.engine.clone();
    std::thread::spawn(move || {
        let _ = tx.send(engine.registries().check_login(&server, &creds));
    });
    match rx.await {
        Ok(Ok(())) => reply::json(
            StatusCode::OK,
            &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
        ),
        Ok(Err(e)) => reply::error(StatusCode::UNAUTHORIZED, &e.to_string()),
        Err(e) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pull_names_the_repository_as_docker_does() {
        assert_eq!(super::repository_path("busybox:latest"), "library/busybox");
        assert_eq!(
            super::repository_path("docker.io/library/busybox:1"),
            "library/busybox"
        );
        assert_eq!(
            super::repository_path("127.0.0.1:5000/team/bb:v1"),
            "team/bb"
        );
        assert_eq!(super::repository_path("localhost/app@sha256:ab"), "app");
        assert_eq!(super::repository_path("me/app"), "me/app");
    }
}
