//! Helpers of the tests that run real containers (as root; CI runs as
//! root): a busybox store, berth's output, its supervisor processes.
//!
//! Included with `#[path = ".../testdata/support/containers.rs"]` beside
//! `busybox.rs` (as `mod busybox`).
#![allow(dead_code)]

use super::busybox::{berth, busybox_store};
use std::path::{Path, PathBuf};
use std::process::Output;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A test's temp folder with its store. When the test ends, however it
/// ends, the containers it left are removed (a failing test would leave
/// them running under their supervisors, in a folder that is gone).
pub struct TestStore {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl TestStore {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let left = berth(&self.root, &["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&left.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", "-v", id]);
        }
        // Its networks too: their subnets are claimed machine-wide.
        if self.root.join("networks").exists() {
            let _ = berth(&self.root, &["network", "prune", "-f"]);
        }
    }
}

/// A temp folder with a busybox store in it; none (and a notice) without
/// root, which real containers need.
pub fn root_store() -> Option<(TestStore, PathBuf)> {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_store(dir.path());
    Some((
        TestStore {
            dir,
            root: root.clone(),
        },
        root,
    ))
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// berth with `args`, which must succeed; its stdout.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let o = berth(root, args);
    assert!(
        o.status.success(),
        "berth {args:?}: {}\n{}",
        err(&o),
        out(&o)
    );
    out(&o)
}

/// berth with `args`, which must fail; its stderr.
pub fn fails(root: &Path, args: &[&str]) -> String {
    let o = berth(root, args);
    assert!(
        !o.status.success(),
        "berth {args:?} should fail: {}",
        out(&o)
    );
    err(&o)
}

/// An IPv4 address of this machine outside loopback (not one of the
/// bridges that container networks make), if it has one.
pub fn host_address() -> Option<String> {
    let o = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    out(&o).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let iface = f.get(1)?;
        if ["br-", "berth", "veth", "docker"]
            .iter()
            .any(|p| iface.starts_with(p))
        {
            return None;
        }
        f.iter()
            .skip_while(|w| **w != "inet")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .map(str::to_string)
    })
}

/// A TCP port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (20 s at the most) until `f` says yes.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `berth inspect NAME`'s one object.
pub fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", name])).unwrap();
    v[0].clone()
}

/// The pid of the supervisor process of container `id` (a full ID).
pub fn supervisor_of(id: &str) -> i32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).to_string();
            (cmd.contains("__supervise") && cmd.contains(id))
                .then(|| e.file_name().to_string_lossy().parse::<i32>().ok())
                .flatten()
        })
        .expect("the supervisor runs")
}

pub fn sigkill(pid: i32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

/// The events the store's log holds from the last hour, through `filter`
/// (`key=value`), printed with `format` (none: docker's default lines).
pub fn past_events(root: &Path, filter: &str, format: Option<&str>) -> String {
    let mut args = vec![
        "events", "--since", "1h", "--until", "0s", "--filter", filter,
    ];
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    ok(root, &args)
}

/// Builds `dockerfile` (in a context folder `dir`) as image `tag`.
pub fn build_image(root: &Path, dir: &Path, tag: &str, dockerfile: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    ok(root, &["build", "-q", "-t", tag, dir.to_str().unwrap()]);
}

/// `berth run -d --name NAME [FLAGS] IMAGE CMD...`: the container's ID.
pub fn run_detached(root: &Path, name: &str, flags: &[&str], image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(flags);
    args.push(image);
    args.extend(cmd);
    ok(root, &args)
}

/// `berth run -d --name NAME [FLAGS] busybox sh -c SCRIPT`: the container's ID.
pub fn run_script(root: &Path, name: &str, flags: &[&str], script: &str) -> String {
    run_detached(root, name, flags, "busybox", &["sh", "-c", script])
}
