//! `berth system service` driven by the SDK clients nobody here wrote:
//! docker-py (PyPI's 7.x on the `python3` of PATH, and Debian's
//! python3-docker 5.0.3 on /usr/bin/python3), testcontainers-python, and
//! Debian's docker-compose 1.29.2. Their scripts and projects live in
//! testdata/clients/; testdata/test.sh installs the clients. Real
//! containers on the busybox image, as root (CI runs as root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

#[path = "../../testdata/support/service.rs"]
mod service;

use containers::{ok, root_store};
use service::Service;
use std::path::{Path, PathBuf};
use std::process::Output;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/clients")
}

fn passed(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The docker-py script with `python`, whose docker package must be of
/// `major` version.
fn docker_py(python: &str, major: &str) {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("py.sock"), "0");
    let v = svc
        .client(python)
        .args(["-c", "import docker; print(docker.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (testdata/test.sh installs it)"));
    passed(&format!("{python}: import docker"), &v);
    let version = String::from_utf8_lossy(&v.stdout).trim().to_string();
    assert!(version.starts_with(major), "{python} has docker {version}");
    let o = svc
        .client(python)
        .arg(clients_dir().join("dockerpy_test.py"))
        .output()
        .unwrap();
    passed(&format!("docker-py {version}"), &o);
    // Nothing the script made is left.
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "");
}

#[test]
fn docker_py_7_from_pypi_drives_berth() {
    docker_py("python3", "7.");
}

#[test]
fn debians_docker_py_5_drives_berth() {
    docker_py("/usr/bin/python3", "5.");
}

#[test]
fn testcontainers_waits_on_logs_and_serves_a_built_image_on_a_port() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("tc.sock"), "0");
    let o = svc
        .client("python3")
        .arg(clients_dir().join("testcontainers_test.py"))
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        .output()
        .unwrap();
    passed("testcontainers", &o);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}

#[test]
fn docker_compose_1_29_builds_runs_and_takes_down_a_project() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let svc = Service::start(&root, &tmp.path().join("compose.sock"), "0");
    let file = clients_dir().join("compose-app/docker-compose.yml");
    let compose = |args: &[&str]| -> Output {
        svc.client("docker-compose")
            .arg("-f")
            .arg(&file)
            .args(["-p", "capp"])
            .args(args)
            // Builds through the API (docker-py), not a docker CLI on PATH.
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .output()
            .unwrap_or_else(|e| panic!("docker-compose: {e} (testdata/test.sh installs it)"))
    };
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    let up = compose(&["up", "-d", "--build"]);
    passed("docker-compose up", &up);
    let said = String::from_utf8_lossy(&up.stderr);
    for line in [
        "Creating network \"capp_back\"",
        "Creating volume \"capp_data\"",
        "Successfully tagged capp_web:latest",
        "Creating capp_store_1 ... done",
        "Creating capp_web_1   ... done",
    ] {
        assert!(
            said.contains(line) || text(&up).contains(line),
            "{line:?} in {said}"
        );
    }
    let ps = compose(&["ps"]);
    passed("docker-compose ps", &ps);
    let rows: Vec<String> = text(&ps)
        .lines()
        .filter(|l| l.starts_with("capp_"))
        .map(String::from)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.contains(" Up ")), "{rows:?}");
    // The store by its service name and its alias, from the web container.
    for host in ["store", "db"] {
        let o = compose(&[
            "exec",
            "-T",
            "web",
            "wget",
            "-qO-",
            &format!("http://{host}:9000/item"),
        ]);
        passed(&format!("exec wget {host}"), &o);
        assert_eq!(text(&o), "stored");
    }
    let o = compose(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo kept > /data/v; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4));
    // The published port, from the host.
    let port = compose(&["port", "web", "8080"]);
    passed("docker-compose port", &port);
    let addr = text(&port);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut s, &mut page).unwrap();
    assert!(page.ends_with("hello from compose\n"), "{page}");
    let logs = compose(&["logs", "--no-color"]);
    passed("docker-compose logs", &logs);
    let l = text(&logs);
    assert!(l.contains("web ready") && l.contains("store ready"), "{l}");
    // A second up changes nothing.
    let again = compose(&["up", "-d"]);
    passed("docker-compose up again", &again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("capp_web_1 is up-to-date"));
    let down = compose(&["down", "-v"]);
    passed("docker-compose down", &down);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "");
    assert!(!ok(&root, &["network", "ls"]).contains("capp_back"));
}
