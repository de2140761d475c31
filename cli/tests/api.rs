//! `berth system service`: the Engine API, driven by a client nobody here
//! wrote — Debian's `docker` CLI (docker.io 20.10) — over a UNIX socket.
//! Real containers on the busybox image, as root (CI runs as root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

#[path = "../../testdata/support/service.rs"]
mod service;

#[path = "../../testdata/support/registry.rs"]
mod registry;

use containers::{ok, root_store, run_detached};
use registry::{Registry, RegistryOptions};
use service::{docker_cli, Service};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

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
    let netavark = std::path::Path::new("/usr/lib/podman/netavark").exists();
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
    let o = svc.docker_with_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"hello\n",
    );
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

/// A folder holding `files` (name, text).
fn context(dir: &std::path::Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn the_docker_cli_builds_with_the_classic_builder_and_refuses_buildkit() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("build.sock"), "0");
    let ctx = context(
        &tmp.path().join("ctx"),
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG WHO=nobody\nCOPY hello.txt /\nRUN echo \"by $WHO\" > /by\nLABEL stage=one\nCMD cat /hello.txt /by\n",
            ),
            ("hello.txt", "hello from the context\n"),
            ("Bad.Dockerfile", "FROM busybox\nRUN echo failing; exit 3\n"),
        ],
    );
    let out = svc.docker_ok(&[
        "build",
        "-t",
        "built:v1",
        "-t",
        "built",
        "--build-arg",
        "WHO=api",
        "--label",
        "x=y",
        &ctx,
    ]);
    assert!(out.contains("Step 3/6 : COPY hello.txt /"), "{out}");
    assert!(out.contains("Successfully tagged built:v1"), "{out}");
    assert!(out.contains("Successfully tagged built:latest"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap()
        .to_string();
    assert_eq!(
        svc.docker_ok(&["run", "--rm", "--network", "none", "built:v1"]),
        "hello from the context\nby api"
    );
    let labels = svc.docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", "built"]);
    assert_eq!(labels, r#"{"stage":"one","x":"y"}"#);
    assert!(svc
        .docker_ok(&["inspect", "-f", "{{.Id}}", "built"])
        .starts_with(&format!("sha256:{id}")));
    // -q prints the ID only; a second build is the cache's.
    let quiet = svc.docker_ok(&[
        "build",
        "-q",
        "--build-arg",
        "WHO=api",
        "--label",
        "x=y",
        &ctx,
    ]);
    assert!(quiet.starts_with(&format!("sha256:{id}")), "{quiet}");
    // A failing RUN: its output, the error and exit code 1; nothing tagged.
    let bad = format!("{ctx}/Bad.Dockerfile");
    let o = svc.docker(&["build", "-t", "never", "-f", &bad, &ctx]);
    assert_eq!(o.status.code(), Some(1));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(stdout.contains("failing"), "{stdout}");
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(!svc.docker(&["inspect", "never"]).status.success());
    // BuildKit's session is refused, and says what to do.
    let o = svc
        .client(docker_cli())
        .args(["build", &ctx])
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let r = svc.raw("POST /session HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.0 400"), "{r}");
    assert!(r.contains("DOCKER_BUILDKIT=0"), "{r}");
    let r = svc.raw("POST /v1.41/build?version=2 HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert!(r.contains("DOCKER_BUILDKIT=0"), "{r}");
    // A Dockerfile outside the context is refused, not read.
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "empty", std::io::empty()).unwrap();
        b.into_inner().unwrap()
    };
    let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
    s.write_all(
        format!(
            "POST /build?dockerfile=../../../../etc/passwd HTTP/1.0\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
            tar.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&tar).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.contains("outside the build context"), "{answer}");
    assert!(!answer.contains("root:x:0"), "{answer}");
}

#[test]
fn the_docker_cli_execs_follows_logs_copies_and_watches_events() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("ops.sock"), "0");
    let since = svc.docker_ok(&["version", "-f", "{{.Server.Version}}"]);
    assert!(!since.is_empty());
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "worker",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; mkdir -p /data; echo kept > /data/f; sleep 300",
    ]);
    // exec: output, exit code, stdin, the environment and the working folder.
    assert_eq!(svc.docker_ok(&["exec", "worker", "cat", "/data/f"]), "kept");
    let o = svc.docker(&["exec", "worker", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = svc.docker_with_stdin(
        &[
            "exec",
            "-i",
            "-e",
            "K=v",
            "-w",
            "/data",
            "worker",
            "sh",
            "-c",
            "cat; echo $K; pwd",
        ],
        b"piped\n",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped\nv\n/data\n");
    svc.docker_ok(&["exec", "-d", "worker", "sh", "-c", "echo bg > /data/bg"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while svc.docker(&["exec", "worker", "cat", "/data/bg"]).stdout != b"bg\n" {
        assert!(std::time::Instant::now() < deadline, "exec -d did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    // logs: both streams apart, --tail, --timestamps.
    let o = svc.docker(&["logs", "worker"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    // The last line of both streams (which of the two came last is the
    // race between two pipes), with docker's timestamp.
    let stamped = svc.docker(&["logs", "-t", "--tail", "1", "worker"]);
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&stamped.stdout),
        String::from_utf8_lossy(&stamped.stderr)
    );
    let lines: Vec<&str> = both.lines().collect();
    assert_eq!(lines.len(), 1, "{both}");
    let (stamp, text) = lines[0].split_once(' ').unwrap();
    assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{both}");
    assert!(text == "one" || text == "two", "{both}");
    // logs -f follows until the container ends.
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert_eq!(svc.docker_ok(&["logs", "-f", "ticker"]), "a\nb");
    // cp both ways, and a tar to stdout.
    let host_file = tmp.path().join("in.txt");
    std::fs::write(&host_file, "from the host\n").unwrap();
    svc.docker_ok(&["cp", host_file.to_str().unwrap(), "worker:/data/"]);
    assert_eq!(
        svc.docker_ok(&["exec", "worker", "cat", "/data/in.txt"]),
        "from the host"
    );
    let out_dir = tmp.path().join("out");
    svc.docker_ok(&["cp", "worker:/data", out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("f")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("in.txt")).unwrap(),
        "from the host\n"
    );
    let o = svc.docker(&["cp", "worker:/data/f", "-"]);
    let mut a = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["f"]);
    let o = svc.docker(&["cp", "worker:/nowhere", "-"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container:path"));
    // stats: one sample of the running container's cgroup.
    let stats = svc.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "worker",
    ]);
    let fields: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(fields[0], "worker", "{stats}");
    assert!(fields[1].parse::<u32>().unwrap() >= 1, "{stats}");
    assert!(!fields[2].starts_with("0B"), "{stats}");
    // system df sees the image and both containers.
    let df = svc.docker_ok(&["system", "df"]);
    assert!(df.contains("Images") && df.contains("Containers"), "{df}");
    svc.docker_ok(&["rm", "-f", "worker", "ticker"]);
    // events, between two times, filtered by container.
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = svc.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &t1.to_string(),
        "--filter",
        "container=ticker",
        "--format",
        "{{.Status}}",
    ]);
    let seen: Vec<&str> = events.lines().collect();
    for want in ["create", "start", "die", "destroy"] {
        assert!(seen.contains(&want), "{want} in {seen:?}");
    }
    assert!(!seen.iter().any(|s| s.starts_with("exec_")), "{seen:?}");
}

#[test]
fn images_go_through_a_registry_with_docker_login_and_through_save_and_load() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let reg = Registry::start(
        &tmp.path().join("registry"),
        RegistryOptions {
            htpasswd: true,
            ..Default::default()
        },
    );
    let svc = Service::start(&root, &tmp.path().join("reg.sock"), "0");
    let name = format!("{}/team/bb:v1", reg.host());
    svc.docker_ok(&["tag", "busybox", &name]);
    // Without a login the registry says no, and the client shows it.
    let o = svc.docker(&["push", &name]);
    assert!(!o.status.success());
    let login = [
        "login",
        "-u",
        registry::USER,
        "--password-stdin",
        &reg.host(),
    ];
    let wrong = svc.docker_with_stdin(&login, b"wrong\n");
    assert!(!wrong.status.success());
    let o = svc.docker_with_stdin(&login, format!("{}\n", registry::PASSWORD).as_bytes());
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"));
    let pushed = svc.docker_ok(&["push", &name]);
    assert!(pushed.contains("v1: digest: sha256:"), "{pushed}");
    svc.docker_ok(&["rmi", &name]);
    let pulled = svc.docker_ok(&["pull", &name]);
    assert!(
        pulled.contains(&format!("Status: Downloaded newer image for {name}")),
        "{pulled}"
    );
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.Id}}", &name]),
        svc.docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"])
    );
    // The password went to the registry only, never into the service's
    // files or its output.
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(&root).into_iter().flatten() {
        if e.file_type().is_file() && e.metadata().map(|m| m.len() < 1 << 20).unwrap_or(false) {
            if let Ok(text) = std::fs::read(e.path()) {
                if text
                    .windows(registry::PASSWORD.len())
                    .any(|w| w == registry::PASSWORD.as_bytes())
                {
                    found.push(e.path().display().to_string());
                }
            }
        }
    }
    assert!(found.is_empty(), "the password is in {found:?}");
    let log = svc.log();
    assert!(log.contains("/auth"), "{log}");
    assert!(!log.contains(registry::PASSWORD), "{log}");
    // save | rmi | load gives the same image back.
    let archive = tmp.path().join("saved.tar");
    svc.docker_ok(&["save", "-o", archive.to_str().unwrap(), &name]);
    svc.docker_ok(&["rmi", &name]);
    let loaded = svc.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, format!("Loaded image: {name}"));
    // import of a root file system tarball.
    let fs = tmp.path().join("fs.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&fs).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "etc/imported", &b"hello\n"[..])
        .unwrap();
    b.finish().unwrap();
    drop(b);
    let id = svc.docker_ok(&["import", fs.to_str().unwrap(), "imported:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    let o = svc.docker(&["import", "/nonexistent.tar"]);
    assert!(!o.status.success());
    assert!(ok(&root, &["images", "imported"]).contains("imported"));
}

/// A tar of one entry of `name` holding `data`, the name written into the
/// header as it is (the tar crate refuses `..` through its checked path).
fn hostile_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

fn status_and_message(answer: &str) -> (u16, String) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_default();
    (status, message)
}

#[test]
fn bad_requests_get_a_4xx_json_error_and_write_nothing_outside() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("bad.sock"), "0");
    let (s, m) = status_and_message(&svc.send("POST /containers/create", b"{not json"));
    assert_eq!(s, 400);
    assert!(m.contains("invalid JSON"), "{m}");
    let (s, m) = status_and_message(&svc.send("POST /containers/create", br#"{"Image": 5}"#));
    assert_eq!(s, 400, "{m}");
    let (s, m) = status_and_message(&svc.raw("GET /no/such/endpoint HTTP/1.0\r\n\r\n"));
    assert_eq!(s, 404);
    assert!(m.contains("page not found"), "{m}");
    let (s, _) = status_and_message(&svc.raw("GET /v1.12/info HTTP/1.0\r\n\r\n"));
    assert_eq!(s, 400);
    for name in ["a/b", "..", "../up", "-x"] {
        let (s, m) = status_and_message(&svc.send(
            &format!("POST /containers/create?name={}", name.replace('/', "%2F")),
            br#"{"Image":"busybox"}"#,
        ));
        assert_eq!(s, 400, "{name}: {m}");
        assert!(m.contains("Invalid container name"), "{m}");
    }
    // Mounts docker refuses; a bind of any host path is docker's too.
    for (body, says) in [
        (
            r#"{"Image":"busybox","HostConfig":{"Binds":["/tmp:/"]}}"#,
            "destination can't be '/'",
        ),
        (
            r#"{"Image":"busybox","HostConfig":{"Binds":["/tmp:rel"]}}"#,
            "must be absolute",
        ),
        (
            r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"//"}]}}"#,
            "destination can't be '/'",
        ),
        (
            r#"{"Image":"busybox","HostConfig":{"Binds":["/no/such/dir:/x"]}}"#,
            "does not exist",
        ),
    ] {
        let (s, m) = status_and_message(&svc.send("POST /containers/create", body.as_bytes()));
        assert_eq!(s, 400, "{body}: {m}");
        assert!(m.contains(says), "{body}: {m}");
    }
    let (s, m) = status_and_message(&svc.send(
        "POST /containers/create",
        br#"{"Image":"no-such-image:here"}"#,
    ));
    assert_eq!(s, 404);
    assert!(m.contains("No such image"), "{m}");
    // An oversized head and an oversized body.
    let long = "x".repeat(1 << 20);
    let answer = {
        let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
        // The service stops reading at its limit: the rest is a broken pipe.
        let _ = s.write_all(format!("GET /_ping HTTP/1.0\r\nX-Long: {long}\r\n\r\n").as_bytes());
        let mut a = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut a);
        String::from_utf8_lossy(&a).into_owned()
    };
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..40.min(answer.len())]
    );
    let big = vec![b' '; 17 << 20];
    let (s, m) = status_and_message(&svc.send("POST /containers/create", &big));
    assert_eq!(s, 413, "{m}");
    // Archive entries that climb out, into a container and into a build.
    let id = svc.docker_ok(&["create", "--name", "target", "busybox", "true"]);
    let outside = root.parent().unwrap().join("escaped");
    let tar = hostile_tar("../../../../../escaped", b"evil");
    let (s, m) =
        status_and_message(&svc.send(&format!("PUT /containers/{id}/archive?path=/tmp"), &tar));
    assert_eq!(s, 400, "{m}");
    let (s, m) = status_and_message(&svc.send("POST /build?t=evil", &tar));
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("cannot unpack the build context"), "{m}");
    // An absolute name lands under the destination, as docker's does.
    let tar = hostile_tar("/escaped-abs", b"evil");
    let (s, m) =
        status_and_message(&svc.send(&format!("PUT /containers/{id}/archive?path=/tmp"), &tar));
    assert_eq!(s, 200, "{m}");
    let o = svc.docker(&["cp", "target:/tmp/escaped-abs", "-"]);
    assert!(o.status.success());
    assert!(!outside.exists());
    assert!(!std::path::Path::new("/escaped-abs").exists());
    assert!(!svc.docker(&["inspect", "evil"]).status.success());
    // A client gone mid-stream leaves the service serving.
    svc.docker_ok(&["start", "target"]);
    for req in [
        format!("GET /containers/{id}/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
        "GET /events HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        format!("POST /containers/{id}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(s);
    }
    assert_eq!(
        svc.docker_ok(&["version", "-f", "{{.Server.APIVersion}}"]),
        "1.41"
    );
    svc.docker_ok(&["rm", "-f", "target"]);
}

/// create, start, wait and remove of one `true` container over raw
/// requests; the container's ID, or what went wrong.
fn one_cycle(svc: &Service) -> Result<String, String> {
    let body = br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#;
    let a = svc.send("POST /containers/create", body);
    let v: serde_json::Value = serde_json::from_str(a.split("\r\n\r\n").nth(1).unwrap_or(""))
        .map_err(|_| format!("create: {a}"))?;
    let id = v["Id"].as_str().ok_or(format!("create: {a}"))?.to_string();
    let a = svc.send(&format!("POST /containers/{id}/start"), b"");
    if !a.starts_with("HTTP/1.0 204") {
        return Err(format!("start: {a}"));
    }
    let a = svc.send(&format!("POST /containers/{id}/wait"), b"");
    if !a.contains(r#""StatusCode":0"#) {
        return Err(format!("wait: {a}"));
    }
    let a = svc.send(&format!("DELETE /containers/{id}"), b"");
    if !a.starts_with("HTTP/1.0 204") {
        return Err(format!("rm: {a}"));
    }
    Ok(id)
}

/// As `Service::send`, or none once the service is gone.
fn try_send(socket: &std::path::Path, head: &str, body: &[u8]) -> Option<String> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.write_all(format!("{head} HTTP/1.0\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes())
        .ok()?;
    s.write_all(body).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn fifty_clients_at_once_and_a_killed_service_lose_nothing() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let socket = tmp.path().join("load.sock");
    let mut svc = Service::start(&root, &socket, "0");
    for _ in 0..3 {
        one_cycle(&svc).unwrap();
    }
    let idle = rss_kib(svc.pid());
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| one_cycle(&svc))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 50 failed: {failed:?}",
        failed.len()
    );
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    // The service's threads for the burst end two seconds after it, and
    // their memory with them.
    let peak = rss_kib(svc.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut after = peak;
    while after > idle + 8 * 1024 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = rss_kib(svc.pid());
    }
    eprintln!("service memory: {idle} KiB idle, {peak} KiB after 50 clients, then {after} KiB");
    assert!(
        after <= idle + 8 * 1024,
        "memory went from {idle} KiB to {after} KiB and stayed"
    );

    // A container outlives its service: it runs on after the kill.
    let lasting = svc.docker_ok(&["run", "-d", "--network", "none", "busybox", "sleep", "300"]);
    // Creates in flight when the service is killed: every container a
    // client was told about is there after a restart, and nothing else is.
    let told = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let Some(a) = try_send(
                        &svc.socket,
                        "POST /containers/create",
                        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#,
                    ) else {
                        break;
                    };
                    let Some(v) = a
                        .split("\r\n\r\n")
                        .nth(1)
                        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                    else {
                        continue;
                    };
                    if let Some(id) = v["Id"].as_str() {
                        told.lock().unwrap().push(id.to_string());
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        let pid = svc.pid() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    svc.kill();
    let _ = std::fs::remove_file(&socket);
    let svc = Service::start(&root, &socket, "0");
    let told = told.into_inner().unwrap();
    assert!(!told.is_empty());
    assert_eq!(
        svc.docker_ok(&["inspect", "-f", "{{.State.Status}}", &lasting]),
        "running"
    );
    svc.docker_ok(&["rm", "-f", &lasting]);
    let listed = svc.docker_ok(&["ps", "-aq", "--no-trunc"]);
    let listed: std::collections::BTreeSet<&str> = listed.lines().collect();
    for id in &told {
        assert!(listed.contains(id.as_str()), "{id} was created, then lost");
    }
    let folders = std::fs::read_dir(root.join("containers"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(folders, listed.len(), "half-made containers are left");
    assert!(listed.len() <= told.len() + 8);
    let ids: Vec<&str> = listed.iter().copied().collect();
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids);
    svc.docker_ok(&rm);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}

#[test]
fn tcp_with_tls_takes_signed_clients_only_and_the_socket_is_not_world_writable() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let ca = registry::TestCa::new(&tmp.path().join("ca"));
    let (cert, key) = ca.client("client");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let svc = Service::start_with(
        &root,
        &tmp.path().join("tls.sock"),
        "0",
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            ca.ca_pem.to_str().unwrap(),
            "--tlscert",
            ca.cert_pem.to_str().unwrap(),
            "--tlskey",
            ca.key_pem.to_str().unwrap(),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&svc.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "no TCP listener");
        std::thread::sleep(Duration::from_millis(50));
    }
    let over_tls = |extra: &[&str], args: &[&str]| {
        svc.client(docker_cli())
            .env_remove("DOCKER_HOST")
            .args(["-H", &tcp])
            .args(extra)
            .args(args)
            .output()
            .unwrap()
    };
    let (ca_s, cert_s, key_s) = (
        ca.ca_pem.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let signed = [
        "--tlsverify",
        "--tlscacert",
        ca_s,
        "--tlscert",
        cert_s,
        "--tlskey",
        key_s,
    ];
    let o = over_tls(&signed, &["version", "-f", "{{.Server.APIVersion}}"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.41");
    let o = over_tls(
        &signed,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "over tls",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "over tls\n");
    // No client certificate, or plain HTTP: refused.
    let o = over_tls(&["--tlsverify", "--tlscacert", ca_s], &["version"]);
    assert!(!o.status.success());
    let o = over_tls(&[], &["version"]);
    assert!(!o.status.success());
    // TCP outside loopback without TLS is refused at the start.
    let e = containers::fails(
        &root,
        &["system", "service", "--time", "0", "tcp://0.0.0.0:0"],
    );
    assert!(e.contains("needs --tlsverify"), "{e}");
}

#[test]
fn volumes_keep_labels_filter_refuse_removal_in_use_and_prune() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("vol.sock"), "0");
    svc.docker_ok(&[
        "volume", "create", "--label", "team=a", "--label", "tier=db", "kept",
    ]);
    svc.docker_ok(&["volume", "create", "--label", "team=b", "spare"]);
    assert_eq!(
        svc.docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", "kept"]),
        r#"{"team":"a","tier":"db"}"#
    );
    let filtered = |filters: &[&str]| {
        let mut args = vec!["volume", "ls", "-q"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        svc.docker_ok(&args)
    };
    assert_eq!(filtered(&["label=team=a", "label=tier"]), "kept");
    assert_eq!(filtered(&["label=team=a", "label=tier=web"]), "");
    let o = svc.docker(&["volume", "create", "-d", "nfs-plugin", "other"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("plugin"));
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "kept:/data",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(filtered(&["dangling=true"]), "spare");
    let o = svc.docker(&["volume", "rm", "kept"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("volume is in use"));
    let pruned = svc.docker_ok(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains("spare") && !pruned.contains("kept"),
        "{pruned}"
    );
    svc.docker_ok(&["rm", "-f", "user"]);
    svc.docker_ok(&["volume", "rm", "kept"]);
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "");
    // The CLI's own flags, straight on the engine.
    ok(&root, &["volume", "create", "--label", "x=1", "direct"]);
    assert_eq!(
        ok(&root, &["volume", "ls", "-q", "--filter", "label=x=1"]),
        "direct"
    );
    assert!(ok(&root, &["volume", "prune", "-f"]).contains("direct"));
}

#[test]
fn sigterm_stops_the_service_while_a_client_follows_a_quiet_log() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let mut svc = Service::start(&root, &tmp.path().join("term.sock"), "0");
    svc.docker_ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let mut follower = svc
        .client(docker_cli())
        .args(["logs", "-f", "quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        svc.terminate(Duration::from_secs(5)),
        "the service outlived SIGTERM"
    );
    let _ = follower.kill();
    let _ = follower.wait();
    // The container is its supervisor's: it runs on.
    assert_eq!(
        containers::inspect(&root, "quiet")["State"]["Status"],
        "running"
    );
}
