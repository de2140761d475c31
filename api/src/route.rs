//! Which handler a request goes to: paths with or without a `/v1.NN`
//! prefix (1.24 to 1.44), names with `/` and `:` in them (`/images/{name}/json`).

use crate::handlers::{
    archive, build, containers, exec, images, networks, streams, system, transfer, volumes, Request,
};
use crate::reply::{self, Body};
use hyper::{Method, Response, StatusCode};

/// The path without its version prefix, or why the version is refused.
fn unversioned(path: &str) -> Result<&str, String> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let minor = version
        .strip_prefix("1.")
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if (24..=44).contains(&m) => Ok(tail),
        Some(_) => Err(format!(
            "client version {version} is not supported by berth (API {} to 1.44)",
            crate::MIN_API_VERSION
        )),
        None => Ok(path),
    }
}

pub async fn route(req: Request) -> Response<Body> {
    let path = req.uri.path().to_string();
    let path = match unversioned(&path) {
        Ok(p) => p.to_string(),
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e),
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = req.method.clone();
    match (&m, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => system::ping(&req),
        (&Method::GET, ["version"]) => system::version(req).await,
        (&Method::GET, ["info"]) => system::info(req).await,
        (&Method::GET, ["events"]) => streams::events(req).await,
        (&Method::GET, ["system", "df"]) => system::df(req).await,
        (&Method::POST, ["build"]) => build::build(req).await,
        (&Method::POST, ["session"]) => build::refuse_buildkit(),

        (&Method::GET, ["containers", "json"]) => containers::list(req).await,
        (&Method::POST, ["containers", "create"]) => containers::create(req).await,
        (&Method::POST, ["containers", "prune"]) => containers::prune(req).await,
        (&Method::GET | &Method::HEAD, ["containers", id, "archive"]) => {
            let id = id.to_string();
            archive::get(req, id).await
        }
        (&Method::PUT, ["containers", id, "archive"]) => {
            let id = id.to_string();
            archive::put(req, id).await
        }
        (&Method::GET, ["containers", id, what]) => {
            let id = id.to_string();
            match *what {
                "json" => containers::inspect(req, id).await,
                "top" => containers::top(req, id).await,
                "changes" => containers::changes(req, id).await,
                "logs" => streams::logs(req, id).await,
                "stats" => streams::stats(req, id).await,
                _ => not_served(&req, &path),
            }
        }
        (&Method::POST, ["containers", id, what]) => {
            let id = id.to_string();
            match *what {
                "start" => containers::start(req, id).await,
                "stop" => containers::stop(req, id).await,
                "restart" => containers::restart(req, id).await,
                "kill" => containers::kill(req, id).await,
                "pause" => containers::pause(req, id).await,
                "unpause" => containers::unpause(req, id).await,
                "rename" => containers::rename(req, id).await,
                "wait" => containers::wait(req, id).await,
                "attach" => containers::attach(req, id).await,
                "resize" => containers::resize(req, id).await,
                "exec" => exec::create(req, id).await,
                _ => not_served(&req, &path),
            }
        }
        (&Method::POST, ["exec", id, what]) => {
            let id = id.to_string();
            match *what {
                "start" => exec::start(req, id).await,
                "resize" => exec::resize(req, id).await,
                _ => not_served(&req, &path),
            }
        }
        (&Method::GET, ["exec", id, "json"]) => {
            let id = id.to_string();
            exec::inspect(req, id).await
        }
        (&Method::DELETE, ["containers", id]) => {
            let id = id.to_string();
            containers::remove(req, id).await
        }

        (&Method::GET, ["images", "json"]) => images::list(req).await,
        (&Method::POST, ["images", "create"]) => transfer::create(req).await,
        (&Method::POST, ["images", "load"]) => transfer::load(req).await,
        (&Method::GET, ["images", "get"]) => {
            let names = req.query().all("names");
            transfer::save(req, names).await
        }
        (&Method::GET, ["images", .., "get"]) if segs.len() > 2 => {
            let name = image_name(&segs);
            transfer::save(req, vec![name]).await
        }
        (&Method::POST, ["images", .., "push"]) if segs.len() > 2 => {
            transfer::push(req, image_name(&segs)).await
        }
        (&Method::POST, ["auth"]) => transfer::auth(req).await,
        (&Method::POST, ["images", "prune"]) => images::prune(req).await,
        // An image name may hold slashes: everything between.
        (&Method::GET, ["images", .., "json"]) if segs.len() > 2 => {
            images::inspect(req, image_name(&segs)).await
        }
        (&Method::GET, ["images", .., "history"]) if segs.len() > 2 => {
            images::history(req, image_name(&segs)).await
        }
        (&Method::POST, ["images", .., "tag"]) if segs.len() > 2 => {
            images::tag(req, image_name(&segs)).await
        }
        (&Method::DELETE, ["images", ..]) if segs.len() > 1 => {
            let name = segs[1..].join("/");
            images::remove(req, name).await
        }

        (&Method::GET, ["networks"]) => networks::list(req).await,
        (&Method::POST, ["networks", "create"]) => networks::create(req).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(req).await,
        (&Method::GET, ["networks", id]) => {
            let id = id.to_string();
            networks::inspect(req, id).await
        }
        (&Method::DELETE, ["networks", id]) => {
            let id = id.to_string();
            networks::remove(req, id).await
        }
        (&Method::POST, ["networks", id, what]) => {
            let id = id.to_string();
            match *what {
                "connect" => networks::connect(req, id).await,
                "disconnect" => networks::disconnect(req, id).await,
                _ => not_served(&req, &path),
            }
        }

        (&Method::GET, ["volumes"]) => volumes::list(req).await,
        (&Method::POST, ["volumes", "create"]) => volumes::create(req).await,
        (&Method::POST, ["volumes", "prune"]) => volumes::prune(req).await,
        (&Method::GET, ["volumes", name]) => {
            let name = name.to_string();
            volumes::inspect(req, name).await
        }
        (&Method::DELETE, ["volumes", name]) => {
            let name = name.to_string();
            volumes::remove(req, name).await
        }

        _ => not_served(&req, &path),
    }
}

/// The image name of `/images/{name}/{what}`: every segment between.
fn image_name(segs: &[&str]) -> String {
    segs[1..segs.len() - 1].join("/")
}

fn not_served(req: &Request, path: &str) -> Response<Body> {
    reply::error(
        StatusCode::NOT_FOUND,
        &format!(
            "page not found: berth does not serve {} {path} yet",
            req.method
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::unversioned;

    #[test]
    fn version_prefixes_from_1_24_to_1_44() {
        assert_eq!(
            unversioned("/v1.41/containers/json").unwrap(),
            "/containers/json"
        );
        assert_eq!(unversioned("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(unversioned("/_ping").unwrap(), "/_ping");
        assert!(unversioned("/v1.12/info").is_err());
        assert!(unversioned("/v1.45/info").is_err());
        // A name that starts with v is no version.
        assert_eq!(unversioned("/volumes").unwrap(), "/volumes");
    }
}
