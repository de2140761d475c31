//! `berth run` on the busybox base image: real containers, as root (CI runs
//! as root; elsewhere these tests say why they skip).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

use busybox::busybox_store;
use std::path::Path;
use std::process::{Command, Output};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root)
        .arg("run")
        .args(args)
        .output()
        .expect("berth runs")
}

/// Runs `sh -c script` in busybox with `flags` before the image.
fn sh(root: &Path, flags: &[&str], script: &str) -> String {
    let mut args = vec!["--rm"];
    args.extend_from_slice(flags);
    args.extend(["busybox", "sh", "-c", script]);
    stdout(&run(root, &args))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn containers_behave_like_docker_ones() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());

    assert_eq!(
        run(&root, &["--rm", "busybox", "true"]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&root, &["--rm", "busybox", "sh", "-c", "exit 42"])
            .status
            .code(),
        Some(42)
    );
    // Killed by a signal: 128 + the signal, as docker reports it.
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["run", "--rm", "busybox", "sleep", "4321"])
        .spawn()
        .unwrap();
    let mut target = None;
    for _ in 0..100 {
        target = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmd == b"sleep\x004321\x00")
                .then(|| e.file_name().to_string_lossy().parse::<i32>().ok())
                .flatten()
        });
        if target.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = target.expect("the container's process is visible from the host");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(137));
    let missing = run(&root, &["--rm", "busybox", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("executable file not found in $PATH"));

    let env_cwd = sh(
        &root,
        &["-e", "GREETING=hi", "-w", "/srv/app"],
        "echo $GREETING $(pwd) $$",
    );
    assert_eq!(env_cwd, "hi /srv/app 1", "env, workdir, pid 1");
    assert_eq!(
        sh(&root, &["-u", "nobody"], "id"),
        "uid=65534(nobody) gid=65534(nogroup)"
    );
    assert_eq!(
        sh(&root, &["-u", "1234:5678"], "id -u; id -g"),
        "1234\n5678"
    );

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = sh(&root, &[], "hostname");
    assert_ne!(hostname, host.trim());
    assert_eq!(hostname.len(), 12, "the short container id");

    assert_eq!(sh(&root, &["--network", "none"], "ls /sys/class/net"), "lo");
    assert_eq!(
        sh(&root, &[], "grep CapEff /proc/self/status"),
        "CapEff:\t00000000a80425fb",
        "docker's default capability set"
    );

    // Refused: sysrq, mounting, writing a read-only root.
    assert_ne!(
        sh(&root, &[], "echo b > /proc/sysrq-trigger && echo wrote"),
        "wrote"
    );
    assert_ne!(
        sh(&root, &[], "mount -t tmpfs t /tmp && echo mounted"),
        "mounted"
    );
    assert_ne!(
        sh(&root, &["--read-only"], "touch /x && echo wrote"),
        "wrote"
    );

    // A bind mount writes through; a read-only one refuses writes.
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let vol = format!("{}:/data", shared.display());
    sh(&root, &["-v", &vol], "echo from-container > /data/out");
    assert_eq!(
        std::fs::read_to_string(shared.join("out")).unwrap(),
        "from-container\n"
    );
    let ro = format!("{}:/data:ro", shared.display());
    let read_back = sh(
        &root,
        &["-v", &ro],
        "cat /data/out; echo x > /data/new && echo wrote",
    );
    assert_eq!(read_back, "from-container");
    assert!(!shared.join("new").exists());
    // (`name:/data` is a named volume now, as in docker; this is not a spec.)
    let bad = run(&root, &["--rm", "-v", "a:/b:rw:extra", "busybox", "true"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid volume specification"));

    // Nothing is left behind: no mounts, no container folders.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount was left behind"
    );
    for dir in ["mounts", "containers"] {
        let p = root.join(dir);
        assert!(
            !p.exists() || std::fs::read_dir(&p).unwrap().count() == 0,
            "{dir} not empty"
        );
    }
}

/// The cgroup folders berth made for containers that are gone: none.
fn leftover_cgroups() -> Vec<String> {
    ["memory", "pids", "cpu"]
        .iter()
        .flat_map(|c| {
            std::fs::read_dir(format!("/sys/fs/cgroup/{c}/berth"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.path().display().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn memory_pids_and_cpu_limits_hold() {
    if !is_root() {
        eprintln!("skipped: cgroup limits need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let before = leftover_cgroups();

    // Over the memory limit: the kernel kills it, and docker's 137 comes back.
    let oom = run(
        &root,
        &[
            "--rm",
            "--memory",
            "32m",
            "busybox",
            "sh",
            "-c",
            "exec tail -c 99000000 /dev/zero",
        ],
    );
    assert_eq!(
        oom.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&oom.stderr)
    );
    // Under it, fine.
    assert_eq!(
        sh(
            &root,
            &["--memory", "32m"],
            "head -c 1000000 /dev/zero | wc -c"
        ),
        "1000000"
    );
    let bad = run(&root, &["--rm", "--memory", "1m", "busybox", "true"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Minimum memory limit allowed is 6MB"));

    // A fork bomb stops at the pids limit.
    let bomb = run(
        &root,
        &[
            "--rm",
            "--pids-limit",
            "8",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 30); do sleep 2 & done; wait",
        ],
    );
    assert!(
        String::from_utf8_lossy(&bomb.stderr).contains("can't fork"),
        "{}",
        String::from_utf8_lossy(&bomb.stderr)
    );
    let under = sh(
        &root,
        &["--pids-limit", "8"],
        "sleep 0 & sleep 0 & wait; echo ok",
    );
    assert_eq!(under, "ok");

    // --cpus: the container's cpu group has the quota, seen from the host.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["run", "--rm", "--cpus", "0.5", "busybox", "sleep", "7"])
        .spawn()
        .unwrap();
    let mut quota = None;
    for _ in 0..100 {
        let found = std::fs::read_dir("/sys/fs/cgroup/cpu/berth")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .find_map(|e| {
                let tasks = std::fs::read_to_string(e.path().join("tasks")).ok()?;
                let pid = tasks.lines().next()?.trim().to_string();
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                (cmd.starts_with(b"sleep\0")).then(|| {
                    (
                        std::fs::read_to_string(e.path().join("cpu.cfs_quota_us")).unwrap(),
                        std::fs::read_to_string(e.path().join("cpu.cfs_period_us")).unwrap(),
                    )
                })
            });
        if found.is_some() {
            quota = found;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The container's supervisor (its own process: killing `berth run`
    // would not end the container) killed with SIGKILL takes its runtime
    // and the container with it, and leaves the group.
    let ids: Vec<String> = std::fs::read_dir(root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.len() == 64)
        .collect();
    let supervisor = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).to_string();
            (cmd.contains("__supervise") && ids.iter().any(|id| cmd.contains(id.as_str())))
                .then(|| e.file_name().to_string_lossy().parse::<i32>().ok())
                .flatten()
        })
        .expect("the container's supervisor");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(supervisor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = child.wait();
    let (q, p) = quota.expect("the container's cpu cgroup");
    assert_eq!((q.trim(), p.trim()), ("50000", "100000"));
    // The killed supervisor's runtime died with it, leaving its group; the
    // next limited container reaps it. The next `ps` settles the container
    // itself (it was --rm: it goes, its root filesystem unmounted).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sh(&root, &["--memory", "16m"], "echo again"), "again");
    let ps = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["ps", "-aq"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ps.stdout), "");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "the killed container's root filesystem stays mounted"
    );
    // Every container has its groups now: only this test's count (other
    // tests run containers meanwhile). The event log names them all.
    let ours = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args([
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            "event=create",
        ])
        .args(["--format", "{{.Actor.ID}}"])
        .output()
        .unwrap();
    let ours = String::from_utf8_lossy(&ours.stdout).to_string();
    assert!(ours.lines().count() >= 5, "the test's containers: {ours}");
    let after: Vec<String> = leftover_cgroups()
        .into_iter()
        .filter(|c| !before.contains(c))
        .filter(|c| ours.lines().any(|id| c.ends_with(id)))
        .collect();
    assert!(after.is_empty(), "cgroups left behind: {after:?}");
}

#[test]
fn the_same_spec_runs_under_runc() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let probe = "grep CapEff /proc/self/status; echo pid=$$; id; cat /etc/hostname | wc -c; \
                 ip -o link 2>/dev/null | wc -l; echo > /proc/sysrq-trigger 2>/dev/null || echo sysrq-refused; \
                 grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null || echo unshare-refused";
    let mut seen = Vec::new();
    for rt in ["berth", "runc"] {
        let out = sh(&root, &["--runtime", rt, "--network", "none"], probe);
        assert!(out.contains("CapEff:\t00000000a80425fb"), "{rt}: {out}");
        assert!(
            out.contains("pid=1") && out.contains("sysrq-refused"),
            "{rt}: {out}"
        );
        // docker's default seccomp policy: filtering, and no new namespaces.
        assert!(
            out.contains("Seccomp:\t2") && out.contains("unshare-refused"),
            "{rt}: {out}"
        );
        seen.push(out);
        let code = run(
            &root,
            &["--rm", "--runtime", rt, "busybox", "sh", "-c", "exit 3"],
        );
        assert_eq!(code.status.code(), Some(3), "{rt}");
        let oom = run(
            &root,
            &[
                "--rm",
                "--runtime",
                rt,
                "--memory",
                "32m",
                "busybox",
                "sh",
                "-c",
                "exec tail -c 99000000 /dev/zero",
            ],
        );
        assert_eq!(oom.status.code(), Some(137), "{rt}");
    }
    assert_eq!(seen[0], seen[1], "berth's runtime and runc differ");
    // --privileged lifts the filter and grants every capability berth holds.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let held = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim()
        .to_string();
    let p = sh(
        &root,
        &["--privileged"],
        "grep -E 'CapEff|Seccomp:' /proc/self/status; unshare -U true && echo unshare-ok",
    );
    assert!(p.contains(&format!("CapEff:\t{held}")), "{p} vs {held}");
    assert!(p.contains("Seccomp:\t0") && p.contains("unshare-ok"), "{p}");
}

#[test]
fn named_volumes_persist_and_are_seeded_from_the_image() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let berth = |args: &[&str]| busybox::berth(&root, args);

    let made = berth(&["volume", "create", "data1"]);
    assert_eq!(stdout(&made), "data1");
    let ls = stdout(&berth(&["volume", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["local", "data1"]),
        "{ls}"
    );
    let insp: serde_json::Value =
        serde_json::from_str(&stdout(&berth(&["volume", "inspect", "data1"]))).unwrap();
    let mountpoint = insp[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(Path::new(&mountpoint).is_dir());
    assert_eq!(insp[0]["Driver"], "local");

    // What one container writes, the next one reads.
    sh(&root, &["-v", "data1:/data"], "echo kept > /data/f");
    assert_eq!(sh(&root, &["-v", "data1:/data"], "cat /data/f"), "kept");
    assert_eq!(
        std::fs::read_to_string(Path::new(&mountpoint).join("f")).unwrap(),
        "kept\n"
    );
    // Read-only on request.
    let ro = run(
        &root,
        &[
            "--rm",
            "-v",
            "data1:/data:ro",
            "busybox",
            "sh",
            "-c",
            "echo x > /data/g",
        ],
    );
    assert_ne!(ro.status.code(), Some(0));

    // A new volume over a folder of the image starts with the image's files
    // (made on first use, no create needed), and keeps its own afterwards.
    assert!(sh(&root, &["-v", "etcvol:/etc"], "cat /etc/passwd").contains("root:x:0:0"));
    sh(
        &root,
        &["-v", "etcvol:/etc"],
        "echo mine > /etc/marker; rm /etc/group",
    );
    let again = sh(&root, &["-v", "etcvol:/etc"], "ls /etc");
    assert!(
        again.contains("marker") && !again.contains("group"),
        "{again}"
    );

    // An image symlink to a host path is not followed when seeding.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ln -s /etc /hostetc\n",
    )
    .unwrap();
    assert_eq!(
        berth(&["build", "-q", "-t", "linky", ctx.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let _ = run(&root, &["--rm", "-v", "linkvol:/hostetc", "linky", "true"]);
    let insp: serde_json::Value =
        serde_json::from_str(&stdout(&berth(&["volume", "inspect", "linkvol"]))).unwrap();
    let seeded: Vec<_> = std::fs::read_dir(insp[0]["Mountpoint"].as_str().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !seeded.iter().any(|n| n == "shadow" || n == "os-release"),
        "host files copied: {seeded:?}"
    );

    let bad = run(&root, &["--rm", "-v", "a b:/x", "busybox", "true"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid characters"));
    assert_eq!(stdout(&berth(&["volume", "rm", "data1"])), "data1");
    assert!(!stdout(&berth(&["volume", "ls", "-q"]))
        .lines()
        .any(|l| l == "data1"));
    assert_eq!(berth(&["volume", "rm", "data1"]).status.code(), Some(1));
    assert_eq!(
        berth(&["volume", "rm", "-f", "data1"]).status.code(),
        Some(0)
    );
}

/// `GET path` from `port` on 127.0.0.1, with the body; None when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

#[test]
fn published_ports_reach_the_container_and_signals_reach_it_too() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    for rt in ["berth", "runc"] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .args(["run", "--rm", "--runtime", rt, "-p"])
            .arg(format!("127.0.0.1:{port}:80"))
            .args([
                "busybox",
                "sh",
                "-c",
                "trap 'exit 0' TERM; httpd -f -p 80 -h /etc & wait",
            ])
            .spawn()
            .unwrap();
        let mut body = None;
        for _ in 0..100 {
            body = http_get(port, "/passwd").filter(|b| b.contains("200 OK"));
            if body.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let body = body.unwrap_or_else(|| panic!("{rt}: nothing answered on {port}"));
        assert!(body.contains("root:x:0:0"), "{rt}: {body}");
        // SIGTERM to berth goes to the container, which exits; berth cleans up.
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{rt}");
        assert!(
            http_get(port, "/passwd").is_none(),
            "{rt}: the port stays open"
        );
    }
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().port();
    let out = run(
        &root,
        &[
            "--rm",
            "-p",
            &format!("127.0.0.1:{taken}:80"),
            "busybox",
            "sleep",
            "5",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot publish port"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = run(&root, &["--rm", "-p", "80/udp", "busybox", "true"]);
    assert!(!bad.status.success());
}

#[test]
fn stdin_reaches_the_container_only_with_i() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let piped = |flags: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .arg("run")
            .args(flags)
            .args(["--rm", "busybox", "cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
        stdout(&child.wait_with_output().unwrap())
    };
    assert_eq!(piped(&["-i"]), "typed");
    assert_eq!(piped(&[]), "");
}

#[test]
fn a_relative_root_works_from_its_folder() {
    if !is_root() {
        eprintln!("skipped: containers need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    busybox_store(dir.path());
    let berth = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .current_dir(dir.path())
            .args(["--root", "root"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = berth(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"]);
    assert_eq!(
        stdout(&out),
        "hi",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /b\n",
    )
    .unwrap();
    let out = berth(&["build", "-q", "-t", "rel", "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
