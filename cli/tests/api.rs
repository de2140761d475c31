//! `berth system service`: the Engine API, driven by a client nobody here
//! wrote — Debian's `docker` CLI (docker.io 20.10) — over a UNIX socket.
//! Real containers on the busybox image, as root (CI runs as root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

use containers::{ok, root_store, run_detached};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A running `berth system service` on a socket of its own; stopped when
/// dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(root: &Path, socket: &Path, time: &str) -> Service {
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(root)
            .args(["system", "service", "--time", time])
            .arg(format!("unix://{}", socket.display()))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            child,
            socket: socket.to_path_buf(),
        }
    }

    /// Debian's docker client against this service.
    fn docker(&self, args: &[&str]) -> Output {
        Command::new(docker_cli())
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env_remove("DOCKER_CONTEXT")
            .output()
            .unwrap()
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// One raw HTTP/1.0 request; the whole answer.
    fn raw(&self, request: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The docker.io package's own client (a newer one elsewhere on PATH may
/// want BuildKit's buildx).
fn docker_cli() -> PathBuf {
    let packaged = PathBuf::from("/usr/bin/docker");
    assert!(
        packaged.exists(),
        "Debian's docker client is not installed (testdata/test.sh installs docker.io)"
    );
    packaged
}

#[test]
fn the_docker_cli_lists_inspects_and_manages_networks_and_volumes() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let id = run_detached(
        &root,
        "web",
        &["--network", "none"],
        "busybox",
        &["sleep", "300"],
    );
    let svc = Service::start(&root, &tmp.path().join("berth.sock"), "0");

    let version = svc.docker_ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(version, "1.41 linux");
    assert_eq!(
        svc.docker_ok(&["info", "--format", "{{.ContainersRunning}} {{.Images}}"]),
        "1 1"
    );
    assert_eq!(svc.docker_ok(&["ps", "-q", "--no-trunc"]), id);
    assert_eq!(
        svc.docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "name=web",
            "--format",
            "{{.Names}} {{.Image}}"
        ]),
        "web busybox"
    );
    assert_eq!(
        svc.docker_ok(&["inspect", "--format", "{{.Name}} {{.State.Running}}", "web"]),
        "/web true"
    );
    assert!(svc
        .docker_ok(&["images"])
        .lines()
        .any(|l| l.starts_with("busybox ")));
    let image_id = svc.docker_ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"]);
    assert!(image_id.starts_with("sha256:"), "{image_id}");

    // Errors are docker's: the client maps them to its own words.
    let o = svc.docker(&["inspect", "nope"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such object: nope"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = svc.docker(&["volume", "rm", "nope"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such volume: nope"));

    // Volumes and networks through the API are the store's.
    assert_eq!(svc.docker_ok(&["volume", "create", "data"]), "data");
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "data");
    assert_eq!(
        svc.docker_ok(&["volume", "inspect", "--format", "{{.Driver}}", "data"]),
        "local"
    );
    assert_eq!(svc.docker_ok(&["volume", "rm", "data"]), "data");
    let netavark = Path::new("/usr/lib/podman/netavark").exists();
    if netavark {
        let net = svc.docker_ok(&["network", "create", "--label", "via=api", "apinet"]);
        assert_eq!(net.len(), 64);
        assert_eq!(
            ok(&root, &["network", "ls", "-q", "--filter", "label=via=api"]),
            net[..12]
        );
        run_detached(
            &root,
            "member",
            &["--network", "apinet"],
            "busybox",
            &["sleep", "300"],
        );
        let members = svc.docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .Containers}}{{.Name}}{{end}}",
            "apinet",
        ]);
        assert_eq!(members, "member");
        let o = svc.docker(&["network", "rm", "apinet"]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("has active endpoints"));
        assert_eq!(
            svc.docker_ok(&[
                "network",
                "ls",
                "--filter",
                "name=apinet",
                "--format",
                "{{.Name}} {{.Driver}}"
            ]),
            "apinet bridge"
        );
    }

    // What every answer carries, and the version prefixes.
    let ping = svc.raw("HEAD /_ping HTTP/1.0\r\n\r\n");
    for h in [
        "api-version: 1.41",
        "builder-version: 1",
        "ostype: linux",
        "server: berth/",
    ] {
        assert!(ping.to_ascii_lowercase().contains(h), "{h}: {ping}");
    }
    assert!(svc.raw("GET /v1.24/_ping HTTP/1.0\r\n\r\n").ends_with("OK"));
    let old = svc.raw("GET /v1.12/info HTTP/1.0\r\n\r\n");
    assert!(
        old.starts_with("HTTP/1.0 400") && old.contains("\"message\""),
        "{old}"
    );
    let nothing = svc.raw("GET /v1.41/nothing/here HTTP/1.0\r\n\r\n");
    assert!(
        nothing.starts_with("HTTP/1.0 404") && nothing.contains("\"message\""),
        "{nothing}"
    );

    // Containers outlive the service.
    drop(svc);
    assert_eq!(
        ok(&root, &["ps", "-q", "--no-trunc", "--filter", "name=web"]),
        id
    );
}

#[test]
fn the_docker_cli_creates_starts_stops_and_removes_containers() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("life.sock"), "0");
    let id = svc.docker_ok(&[
        "run", "-d", "--name", "viaapi", "--label", "k=v", "busybox", "sleep", "300",
    ]);
    assert_eq!(id.len(), 64);
    // No warnings for what docker's CLI sends empty.
    let o = svc.docker(&[
        "create",
        "--name",
        "made",
        "busybox",
        "sh",
        "-c",
        "echo hi > /x",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    assert_eq!(
        ok(&root, &["ps", "-aq", "--filter", "status=created"]).len(),
        12
    );
    svc.docker_ok(&["start", "made"]);
    assert_eq!(svc.docker_ok(&["wait", "made"]), "0");
    assert_eq!(svc.docker_ok(&["diff", "made"]), "A /x");
    assert_eq!(
        svc.docker_ok(&["ps", "-q", "--filter", "label=k=v", "--no-trunc"]),
        id
    );
    assert!(svc.docker_ok(&["top", "viaapi"]).contains("sleep 300"));
    svc.docker_ok(&["pause", "viaapi"]);
    assert_eq!(
        containers::inspect(&root, "viaapi")["State"]["Status"],
        "paused"
    );
    svc.docker_ok(&["unpause", "viaapi"]);
    svc.docker_ok(&["stop", "-t", "0", "viaapi"]);
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.State.Status}}", "viaapi"]),
        "exited"
    );
    svc.docker_ok(&["start", "viaapi"]);
    svc.docker_ok(&["restart", "-t", "0", "viaapi"]);
    svc.docker_ok(&["rename", "viaapi", "renamed"]);
    svc.docker_ok(&["kill", "renamed"]);
    assert_eq!(svc.docker_ok(&["wait", "renamed"]), "137");
    svc.docker_ok(&["rm", "renamed", "made"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    let o = svc.docker(&["rm", "renamed"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container: renamed"));

    svc.docker_ok(&["tag", "busybox", "mine/bb:1"]);
    assert!(ok(&root, &["images", "mine/bb"]).contains("mine/bb"));
    assert!(svc.docker_ok(&["history", "mine/bb:1"]).lines().count() >= 2);
    assert_eq!(svc.docker_ok(&["rmi", "mine/bb:1"]), "Untagged: mine/bb:1");
}

#[test]
fn a_foreground_docker_run_streams_output_stdin_and_the_exit_code() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("run.sock"), "0");
    // Without a terminal: stdout and stderr apart, the exit code, --rm.
    let o = svc.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    // -i: the client's stdin is the container's, and its end is an EOF.
    let mut child = Command::new(docker_cli())
        .args([
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "cat; echo done",
        ])
        .env("DOCKER_HOST", format!("unix://{}", svc.socket.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\ndone\n");
    // -t: one raw stream, the terminal's line ends.
    let o = svc.docker(&[
        "run",
        "-t",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "tty",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "tty\r\n");
    // A detached container joined later: `docker attach` sees what comes.
    let id = svc.docker_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo late; exit 4",
    ]);
    let o = svc.docker(&["attach", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "late\n");
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(svc.docker_ok(&["wait", &id]), "4");
}

#[test]
fn without_berth_api_the_service_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let lone = tmp.path().join("berth");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &lone).unwrap();
    let o = Command::new(&lone)
        .arg("--root")
        .arg(tmp.path().join("root"))
        .args(["system", "service", "--time", "0"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("needs the berth-api program"), "{e}");
}
