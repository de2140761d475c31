//! `/_ping`, `/version`, `/info`.

use super::Request;
use crate::reply::{self, Body};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

pub fn ping(req: &Request) -> Response<Body> {
    if req.method == Method::HEAD {
        return reply::empty(StatusCode::OK);
    }
    let mut r = reply::text(StatusCode::OK, "OK");
    r.headers_mut().insert(
        "Cache-Control",
        hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(_req: Request) -> Response<Body> {
    let v = env!("CARGO_PKG_VERSION");
    reply::json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": v, "Details": {
                "ApiVersion": crate::API_VERSION, "MinAPIVersion": crate::MIN_API_VERSION,
                "Os": "linux", "Arch": arch(), "KernelVersion": kernel()}}],
            "Version": v,
            "ApiVersion": crate::API_VERSION,
            "MinAPIVersion": crate::MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    )
}

pub async fn info(req: Request) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, |engine| {
        let containers = engine.container_list(true)?;
        let running = containers.iter().filter(|c| c.state == "running").count();
        let paused = containers.iter().filter(|c| c.state == "paused").count();
        let images = engine.image_list(None)?.len();
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().to_string())
            .unwrap_or_default();
        Ok(json!({
            "ID": "",
            "Containers": containers.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": containers.len() - running - paused,
            "Images": images,
            "Driver": "overlay2",
            "DockerRootDir": engine.root().display().to_string(),
            "OperatingSystem": "berth",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "KernelVersion": kernel(),
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "Name": host,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
            "CgroupDriver": "cgroupfs",
            "DefaultRuntime": "berth",
            "Runtimes": {"berth": {"path": "berth"}},
            "SecurityOptions": ["name=seccomp,profile=default"],
            "Warnings": [],
        }))
    })
    .await
}

/// `GET /system/df`.
pub async fn df(req: Request) -> Response<Body> {
    super::blocking(req.engine, StatusCode::OK, |engine| engine.system_df()).await
}
