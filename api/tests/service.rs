//! The `berth-api` binary on its own: it listens where it is told, answers
//! docker's `_ping` and `version`, exits when idle and takes its socket
//! away, takes over a stale socket and refuses a live one, and keeps TCP to
//! loopback. No containers: any machine runs these.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn start(root: &Path, socket: &Path, time: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_berth-api"))
        .arg("--root")
        .arg(root)
        .args(["--time", time])
        .arg(format!("unix://{}", socket.display()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "the service did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn ask(socket: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn an_idle_service_exits_by_itself_and_takes_its_socket_away() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, socket) = (tmp.path().join("root"), tmp.path().join("idle.sock"));
    let mut svc = start(&root, &socket, "1");
    let version = ask(&socket, "GET /v1.41/version HTTP/1.0\r\n\r\n");
    assert!(version.contains("\"ApiVersion\":\"1.41\""), "{version}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = svc.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "the idle service did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!socket.exists());
}

#[test]
fn a_stale_socket_is_taken_over_and_a_live_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, socket) = (tmp.path().join("root"), tmp.path().join("s.sock"));
    let mut first = start(&root, &socket, "0");
    let ping = ask(&socket, "HEAD /_ping HTTP/1.0\r\n\r\n").to_ascii_lowercase();
    for h in [
        "api-version: 1.41",
        "builder-version: 1",
        "ostype: linux",
        "server: berth/",
    ] {
        assert!(ping.contains(h), "{h}: {ping}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_berth-api"))
        .arg("--root")
        .arg(&root)
        .args(["--time", "0"])
        .arg(format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another service answers there"));
    // Killed, it leaves its socket; the next one takes it.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut again = start(&root, &socket, "0");
    assert!(ask(&socket, "GET /_ping HTTP/1.0\r\n\r\n").ends_with("OK"));
    again.kill().unwrap();
    again.wait().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_berth-api"))
        .arg("--root")
        .arg(&root)
        .args(["--host", "tcp://0.0.0.0:2375"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --tlsverify"));
}

#[test]
fn sigterm_stops_the_service_while_a_client_follows_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, socket) = (tmp.path().join("root"), tmp.path().join("term.sock"));
    let mut svc = start(&root, &socket, "0");
    let mut follower = UnixStream::connect(&socket).unwrap();
    follower
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    follower.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(svc.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = svc.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service outlived SIGTERM with a follower"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!socket.exists());
}
