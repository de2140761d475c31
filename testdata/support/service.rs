//! A running `berth system service` for the tests of its clients (the
//! docker CLI, docker-py, docker-compose, testcontainers).
//!
//! Included with `#[path = ".../testdata/support/service.rs"]`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A running `berth system service` on a socket of its own; stopped when
/// dropped.
pub struct Service {
    child: Child,
    pub socket: PathBuf,
    /// The docker client's own config folder (its logins).
    pub client_config: PathBuf,
}

impl Service {
    pub fn start(root: &Path, socket: &Path, time: &str) -> Service {
        Service::start_with(root, socket, time, &[])
    }

    /// With `args` (more listeners, TLS) after the socket. The service and
    /// its clients never read the caller's docker or berth configs; its
    /// log (at debug) is `log()`.
    pub fn start_with(root: &Path, socket: &Path, time: &str, args: &[&str]) -> Service {
        let dir = socket.with_extension("cfg");
        std::fs::create_dir_all(dir.join("service")).unwrap();
        std::fs::create_dir_all(dir.join("client")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(root)
            .args(["system", "service", "--time", time])
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", dir.join("service"))
            .env("BERTH_CONFIG", dir.join("service/berth.json"))
            .env("BERTH_LOG", "debug")
            .env_remove("BERTH_REGISTRY_MIRRORS")
            .stderr(std::fs::File::create(dir.join("service.log")).unwrap())
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
            client_config: dir.join("client"),
        }
    }

    /// What the service wrote to its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.client_config.with_file_name("service.log"))
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as `systemctl stop` sends it; whether the service ended
    /// (with success) within `within`.
    pub fn terminate(&mut self, within: Duration) -> bool {
        // SAFETY: a signal to the child this helper started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the service with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A client command (`docker`, `python3`, `docker-compose`) pointed at
    /// this service.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.client_config)
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY");
        c
    }

    /// Debian's docker client against this service.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.client(docker_cli()).args(args).output().unwrap()
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// One raw HTTP/1.0 request; the whole answer.
    /// Debian's docker client with `input` on its stdin.
    pub fn docker_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .client(docker_cli())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().unwrap()
    }

    /// One HTTP/1.0 request with `body`; the whole answer.
    pub fn send(&self, head: &str, body: &[u8]) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.write_all(
            format!("{head} HTTP/1.0\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        )
        .unwrap();
        // A refusal may come before the whole body is read.
        let _ = s.write_all(body);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    pub fn raw(&self, request: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("the service's log, last lines:");
            for l in tail.iter().rev() {
                eprintln!("  {l}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The docker.io package's own client (a newer one elsewhere on PATH may
/// want BuildKit's buildx).
pub fn docker_cli() -> PathBuf {
    let packaged = PathBuf::from("/usr/bin/docker");
    assert!(
        packaged.exists(),
        "Debian's docker client is not installed (testdata/test.sh installs docker.io)"
    );
    packaged
}
