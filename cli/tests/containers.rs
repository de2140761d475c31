//! Containers after `berth run`: detached ones under their supervisor, and
//! docker's commands on them (ps, logs, stop, kill, start, rm, exec, port,
//! inspect, commit), `-t`, the private network, and escape attempts. Real
//! containers on the busybox base image, as root (CI runs as root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

use busybox::{berth, busybox_store};
use containers::{
    err, free_port, host_address, inspect, is_root, ok, out, root_store, run_script, sigkill,
    supervisor_of, wait_until,
};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `curl -s URL`: the body, or None when nothing answers.
fn curl(url: &str) -> Option<String> {
    let o = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .expect("curl runs");
    o.status.success().then(|| out(&o))
}

/// Nothing of the store's is mounted, and no container folder is left.
fn assert_clean(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount was left behind"
    );
    for dir in ["mounts", "containers", "holds"] {
        let p = root.join(dir);
        assert!(
            !p.exists() || std::fs::read_dir(&p).unwrap().count() == 0,
            "{dir} not empty"
        );
    }
    // What `--rm` moved aside is deleted by the supervisor once it has
    // told the exit: a moment later.
    let trash = root.join("trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while trash.exists() && std::fs::read_dir(&trash).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the trash was not emptied"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_detached_httpd_is_reached_through_its_port_then_stopped_and_removed() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &publish,
            "busybox",
            "sh",
            "-c",
            "echo hello-from-web > /srv.html; echo ready; echo oops >&2; exec httpd -f -p 80 -h /",
        ],
    );
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    wait_until("httpd to answer", || {
        curl(&format!("http://127.0.0.1:{port}/srv.html")).is_some()
    });
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/srv.html")).as_deref(),
        Some("hello-from-web")
    );

    let ps = ok(&root, &["ps"]);
    let line = ps
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(line.starts_with(&id[..12]), "{line}");
    assert!(line.contains("Up "), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{line}"
    );
    assert_eq!(ok(&root, &["ps", "-q"]), id[..12]);
    assert_eq!(
        ok(&root, &["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        ok(&root, &["port", "web", "80"]),
        format!("127.0.0.1:{port}")
    );

    let v = inspect(&root, "web");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(v["Config"]["Hostname"], &id[..12]);
    // A unique prefix of the ID finds it too.
    assert_eq!(inspect(&root, &id[..5])["Name"], "/web");

    // logs: each stream back on its own.
    let logs = berth(&root, &["logs", "web"]);
    assert_eq!(out(&logs), "ready");
    assert_eq!(err(&logs), "oops");
    let stamped = ok(&root, &["logs", "-t", "web"]);
    assert!(
        stamped.starts_with("20") && stamped.ends_with(" ready"),
        "{stamped}"
    );

    // exec: in the container's namespaces, root filesystem and limits.
    let inside = ok(
        &root,
        &[
            "exec",
            "web",
            "sh",
            "-c",
            "hostname; cat /srv.html; cat /proc/1/cmdline | tr '\\0' ' '",
        ],
    );
    assert_eq!(
        inside,
        format!("{}\nhello-from-web\nhttpd -f -p 80 -h /", &id[..12])
    );
    assert_eq!(
        ok(&root, &["exec", "web", "sh", "-c", "echo $$"])
            .parse::<i32>()
            .map(|p| p > 1),
        Ok(true)
    );
    assert_eq!(
        ok(&root, &["exec", "-u", "nobody", "web", "id", "-u"]),
        "65534"
    );
    assert_eq!(
        ok(
            &root,
            &[
                "exec",
                "-e",
                "X=y",
                "-w",
                "/tmp",
                "web",
                "sh",
                "-c",
                "echo $X $(pwd)"
            ]
        ),
        "y /tmp"
    );
    assert_eq!(
        ok(
            &root,
            &["exec", "web", "grep", "CapEff", "/proc/self/status"]
        ),
        "CapEff:\t00000000a80425fb"
    );
    assert_eq!(
        berth(&root, &["exec", "web", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        berth(&root, &["exec", "web", "no-such-cmd"]).status.code(),
        Some(127)
    );

    // rm refuses a running container; stop ends it (httpd as pid 1 ignores
    // SIGTERM, so the grace time ends in SIGKILL: 137, as docker).
    let refused = berth(&root, &["rm", "web"]);
    assert!(!refused.status.success());
    assert!(
        err(&refused).contains("container is running"),
        "{}",
        err(&refused)
    );
    let started = Instant::now();
    assert_eq!(ok(&root, &["stop", "-t", "1", "web"]), "web");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        curl(&format!("http://127.0.0.1:{port}/srv.html")).is_none(),
        "the port stays open"
    );
    let v = inspect(&root, "web");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert!(
        ok(&root, &["ps"]).lines().count() == 1,
        "ps lists only running ones"
    );
    assert!(ok(&root, &["ps", "-a"]).contains("Exited (137)"));
    let refused = berth(&root, &["exec", "web", "true"]);
    assert!(!refused.status.success());
    assert!(
        err(&refused).contains("is not running"),
        "{}",
        err(&refused)
    );

    // The name is taken until the container is removed.
    let taken = berth(&root, &["run", "--name", "web", "busybox", "true"]);
    assert!(err(&taken).contains("is already in use"), "{}", err(&taken));
    assert_eq!(ok(&root, &["rm", "web"]), "web");
    assert!(!berth(&root, &["inspect", "web"]).status.success());
    assert_clean(&root);
}

#[test]
fn logs_follow_until_the_container_stops() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    run_script(
        &root,
        "ticker",
        &[],
        "for i in 1 2 3; do echo tick $i; sleep 0.3; done",
    );
    let followed = ok(&root, &["logs", "-f", "ticker"]);
    assert_eq!(followed, "tick 1\ntick 2\ntick 3");
    assert_eq!(ok(&root, &["logs", "--tail", "1", "ticker"]), "tick 3");
    assert_eq!(inspect(&root, "ticker")["State"]["ExitCode"], 0);
    ok(&root, &["rm", "ticker"]);

    // kill sends SIGKILL by default, or the signal asked for.
    let id = ok(
        &root,
        &[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' USR1; while :; do sleep 0.1; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    ok(&root, &["kill", "-s", "USR1", &id]);
    wait_until("the container to exit", || {
        inspect(&root, &id)["State"]["Running"] == false
    });
    assert_eq!(inspect(&root, &id)["State"]["ExitCode"], 3);
    let not_running = berth(&root, &["kill", &id]);
    assert!(
        err(&not_running).contains("is not running"),
        "{}",
        err(&not_running)
    );
    ok(&root, &["rm", &id]);

    // stop sends the container's stop signal first; wait prints the code.
    let id = ok(
        &root,
        &[
            "run",
            "-d",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 5' USR1; while :; do sleep 0.1; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    ok(&root, &["stop", "-t", "20", &id]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop waited for SIGKILL"
    );
    assert_eq!(ok(&root, &["wait", &id]), "5");
    ok(&root, &["rm", &id]);
    let id = ok(
        &root,
        &["run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 9"],
    );
    assert_eq!(ok(&root, &["wait", &id]), "9");
    ok(&root, &["rm", &id]);
    assert!(
        !berth(&root, &["run", "--stop-signal", "NOPE", "busybox", "true"])
            .status
            .success()
    );

    // rm -f kills a running one.
    let id = ok(&root, &["run", "-d", "busybox", "sleep", "600"]);
    ok(&root, &["rm", "-f", &id]);
    assert_clean(&root);
}

#[test]
fn a_container_keeps_its_changes_across_starts_and_commits_them() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let script = "echo run >> /runs; wc -l < /runs; rm -f /bin/vi; echo data > /greeting";
    assert_eq!(
        ok(
            &root,
            &["run", "--name", "keeper", "busybox", "sh", "-c", script]
        ),
        "1"
    );
    // Stopped but kept, with its root filesystem unmounted.
    assert!(ok(&root, &["ps", "-a"]).contains("Exited (0)"));
    assert_eq!(ok(&root, &["start", "-a", "keeper"]), "2");
    assert_eq!(ok(&root, &["start", "keeper"]), "keeper");
    wait_until("the container to exit", || {
        inspect(&root, "keeper")["State"]["Status"] == "exited"
    });
    assert_eq!(ok(&root, &["logs", "keeper"]), "1\n2\n3");

    let image_id = ok(
        &root,
        &[
            "commit",
            "-m",
            "three runs",
            "-a",
            "tester",
            "-c",
            "CMD [\"cat\", \"/greeting\"]",
            "keeper",
            "snap:1",
        ],
    );
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    assert_eq!(ok(&root, &["run", "--rm", "snap:1"]), "data");
    assert_eq!(
        ok(&root, &["run", "--rm", "snap:1", "wc", "-l", "/runs"]),
        "3 /runs"
    );
    assert!(!berth(&root, &["run", "--rm", "snap:1", "ls", "/bin/vi"])
        .status
        .success());
    let img = inspect(&root, "snap:1");
    let base = inspect(&root, "busybox");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        base["RootFS"]["Layers"].as_array().unwrap().len() + 1
    );
    assert_eq!(img["Author"], "tester");
    assert_eq!(img["Comment"], "three runs");

    // The new layer holds the changes and nothing the runtime made.
    let manifest = serde_json::from_slice::<Value>(
        &std::fs::read(
            root.join("blobs/sha256").join(
                // The image's manifest: the tag's entry in the OCI index.
                serde_json::from_slice::<Value>(&std::fs::read(root.join("index.json")).unwrap())
                    .unwrap()["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| {
                        m["annotations"]["org.opencontainers.image.ref.name"]
                            .as_str()
                            .is_some_and(|n| n.contains("snap"))
                    })
                    .expect("snap:1 in the index")["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(root.join("blobs/sha256").join(last))
        .output()
        .unwrap();
    let names: Vec<String> = out(&listing)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    for want in ["greeting", "runs", "bin/.wh.vi"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing in {names:?}"
        );
    }
    for stub in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert!(!names.iter().any(|n| n == stub), "{stub} in {names:?}");
    }

    // An image a container stands on survives rmi of its tag and GC.
    ok(&root, &["rmi", "snap:1"]);
    let id = ok(&root, &["run", "-d", "busybox", "sleep", "600"]);
    ok(&root, &["system", "prune", "-a", "-f"]);
    assert_eq!(ok(&root, &["exec", &id, "echo", "alive"]), "alive");
    ok(&root, &["rm", "-f", &id, "keeper"]);
    assert_clean(&root);
}

#[test]
fn tty_gives_the_container_a_terminal_of_its_own() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    // The terminal is the container's own devpts: `tty` names it there.
    let o = berth(
        &root,
        &[
            "run",
            "--rm",
            "-t",
            "busybox",
            "sh",
            "-c",
            "tty; test -t 1 && echo is-a-tty; echo $TERM",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/dev/pts/0\r\nis-a-tty\r\nxterm\r\n",
        "{}",
        err(&o)
    );
    let plain = ok(
        &root,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "test -t 1 || echo no-tty",
        ],
    );
    assert_eq!(plain, "no-tty");
    // A size is handed on from berth's terminal (script gives berth one).
    let sized = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "stty rows 33 cols 101; {} --root {} run --rm -t busybox stty size",
            env!("CARGO_BIN_EXE_berth"),
            root.display()
        ))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sized.stdout).contains("33 101"),
        "{}",
        String::from_utf8_lossy(&sized.stdout)
    );

    let id = ok(&root, &["run", "-d", "busybox", "sleep", "600"]);
    let o = berth(&root, &["exec", "-t", &id, "tty"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("/dev/pts/"),
        "{}",
        out(&o)
    );
    ok(&root, &["rm", "-f", &id]);
    assert_clean(&root);
}

#[test]
fn the_private_network_reaches_out_through_slirp4netns() {
    if !is_root() {
        eprintln!("skipped: containers need root here (CI runs as root)");
        return;
    }
    assert!(
        berth_runner_has_slirp(),
        "slirp4netns is not installed (testdata/test.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    // As root with netavark the default is the bridge network: slirp4netns
    // is asked for by podman's name for it.
    let routes = ok(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "slirp4netns",
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show tap0; ip route",
        ],
    );
    assert!(routes.contains("10.0.2.100/24"), "{routes}");
    assert!(routes.contains("default via 10.0.2.2"), "{routes}");
    assert_eq!(
        ok(
            &root,
            &[
                "run",
                "--rm",
                "--network",
                "slirp4netns",
                "busybox",
                "grep",
                "-c",
                "nameserver 10.0.2.3",
                "/etc/resolv.conf"
            ]
        ),
        "1"
    );
    // The host's loopback stays out of reach, as in docker.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = berth(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "slirp4netns",
            "busybox",
            "sh",
            "-c",
            &format!("nc -w 2 10.0.2.2 {port} </dev/null && echo reached"),
        ],
    );
    assert!(!out(&o).contains("reached"));
    // An address of the host's outside loopback is reachable through slirp.
    if let Some(ip) = host_address() {
        let listener = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\noutbound")
                .unwrap();
        });
        let got = ok(
            &root,
            &[
                "run",
                "--rm",
                "--network",
                "slirp4netns",
                "busybox",
                "wget",
                "-qO-",
                &format!("http://{ip}:{port}/"),
            ],
        );
        assert_eq!(got, "outbound");
        server.join().unwrap();
    }
    assert_eq!(
        ok(
            &root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "ls",
                "/sys/class/net"
            ]
        ),
        "lo"
    );
}

fn berth_runner_has_slirp() -> bool {
    Command::new("sh")
        .args(["-c", "command -v slirp4netns"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn escape_attempts_fail() {
    let Some((tmp, root)) = root_store() else {
        return;
    };

    // An image's symlink cannot lead a bind mount out of the root: the
    // mount lands on the link's target inside the container.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let marker = format!("berth-escape-{}", std::process::id());
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ln -s /etc /evil && ln -s ../../../../../../tmp /up\n",
    )
    .unwrap();
    ok(&root, &["build", "-q", "-t", "evil", ctx.to_str().unwrap()]);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("payload"), "p").unwrap();
    let bind = format!("{}:/evil/{marker}", src.display());
    let seen = ok(
        &root,
        &[
            "run",
            "--rm",
            "-v",
            &bind,
            "evil",
            "cat",
            &format!("/etc/{marker}/payload"),
        ],
    );
    assert_eq!(seen, "p");
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "a mount point was made on the host"
    );
    let bind = format!("{}:/up/{marker}", src.display());
    ok(&root, &["run", "--rm", "-v", &bind, "evil", "true"]);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "`..` left the root"
    );

    // A symlink swapped in while mounts are made: a second container keeps
    // turning a volume's folder into a link to `/` while containers mount
    // something under it. No mount may land on the host.
    let host_target = Path::new("/").join(format!("{marker}-swap"));
    ok(&root, &["volume", "create", "swapvol"]);
    let swapper = ok(
        &root,
        &[
            "run",
            "-d",
            "-v",
            "swapvol:/v",
            "busybox",
            "sh",
            "-c",
            "while :; do mkdir -p /v/d; rm -rf /v/d; ln -s / /v/d; rm -f /v/d; done",
        ],
    );
    let vol_path = inspect_volume(&root, "swapvol");
    for _ in 0..20 {
        let bind = format!("{}:/data/d/{marker}-swap", src.display());
        let volume_bind = format!("{vol_path}:/data");
        let _ = berth(
            &root,
            &[
                "run",
                "--rm",
                "-v",
                &volume_bind,
                "-v",
                &bind,
                "busybox",
                "true",
            ],
        );
        assert!(
            !host_target.exists(),
            "a mount point was made at {}",
            host_target.display()
        );
    }
    ok(&root, &["rm", "-f", &swapper]);

    // No descriptor of berth's caller reaches the container.
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "host-secret").unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 7<{}; {} --root {} run --rm busybox sh -c 'ls /proc/self/fd; cat /proc/self/fd/7'",
            secret.display(),
            env!("CARGO_BIN_EXE_berth"),
            root.display()
        ))
        .output()
        .unwrap();
    let fds = out(&o);
    assert!(!fds.contains("host-secret"), "{fds}");
    assert!(!fds.lines().any(|l| l == "7"), "{fds}");

    // /proc/PID/exe of the berth process entering a container (exec) is
    // not for the container to open, so it cannot overwrite berth's binary.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_berth")).unwrap();
    let watcher = ok(
        &root,
        &["run", "-d", "busybox", "sh", "-c",
          "while :; do for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null) && case $l in *berth*) echo \"$l\" >> /seen; (echo x > $p/exe) 2>/dev/null && echo wrote >> /seen;; esac; done; done"],
    );
    for _ in 0..30 {
        let _ = berth(&root, &["exec", &watcher, "true"]);
    }
    let seen = ok(
        &root,
        &["exec", &watcher, "sh", "-c", "cat /seen 2>/dev/null; true"],
    );
    assert!(seen.is_empty(), "the container saw berth's binary: {seen}");
    assert_eq!(std::fs::read(env!("CARGO_BIN_EXE_berth")).unwrap(), exe);
    ok(&root, &["rm", "-f", &watcher]);
    ok(&root, &["volume", "rm", "swapvol"]);
}

fn inspect_volume(root: &Path, name: &str) -> String {
    let v: Value = serde_json::from_str(&ok(root, &["volume", "inspect", name])).unwrap();
    v[0]["Mountpoint"].as_str().unwrap().to_string()
}

#[test]
fn a_supervisor_is_a_process_apart_whatever_started_it() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    // `run -d` (one thread: the supervisor is forked) and `start` of a
    // created container: either way a session of its own, stdio on
    // /dev/null, none of the command's descriptors (its stdout pipe among
    // them: this `ok` would wait on it), and docker-like `ps` text.
    let detached = ok(&root, &["run", "-d", "busybox", "sleep", "60"]);
    let created = ok(&root, &["create", "busybox", "sleep", "60"]);
    ok(&root, &["start", &created]);
    for id in [&detached, &created] {
        let pid = supervisor_of(id);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(fields[3], pid.to_string(), "not a session leader: {stat}");
        for fd in 0..3 {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(cmdline.contains(&format!("__supervise {id}")), "{cmdline}");
        // Its files are its own: nothing of the store's but the log, the
        // attach socket and the container's lock.
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let t = target.display().to_string();
            assert!(
                !t.contains(&root.display().to_string()) || t.ends_with("-json.log"),
                "the supervisor holds {t}"
            );
        }
    }
    ok(&root, &["rm", "-f", &detached, &created]);
    assert_clean(&root);
}

/// The runtime under a running container's supervisor, forked or not, is
/// what `berth __runtime SPEC` would be: that command line, stdin on
/// /dev/null, stdout and stderr the supervisor's pipes, and no other
/// descriptor of the supervisor's (the start gate closes once used).
#[test]
fn a_containers_runtime_is_what_an_exec_would_make() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let id = ok(
        &root,
        &["run", "-d", "--network", "none", "busybox", "sleep", "60"],
    );
    let supervisor = supervisor_of(&id);
    let parent_of = |pid: &str| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
    };
    let runtime = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|p| parent_of(p) == Some(supervisor))
        .expect("the supervisor has a runtime");
    let cmdline = std::fs::read(format!("/proc/{runtime}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let spec = root.join("containers").join(&id).join("config.json");
    assert!(
        cmdline.contains(&format!("__runtime {}", spec.display())),
        "{cmdline}"
    );
    let fd = |n: u32| {
        std::fs::read_link(format!("/proc/{runtime}/fd/{n}"))
            .map(|t| t.display().to_string())
            .unwrap_or_default()
    };
    assert_eq!(fd(0), "/dev/null");
    assert!(
        fd(1).starts_with("pipe:") && fd(2).starts_with("pipe:"),
        "{} {}",
        fd(1),
        fd(2)
    );
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{runtime}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    // Besides those, only what the runtime opens itself: its cgroup's
    // folders (to remove them when the container ends).
    for n in fds
        .iter()
        .filter_map(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 2)
    {
        assert!(
            fd(n).starts_with("/sys/fs/cgroup"),
            "the runtime holds {}",
            fd(n)
        );
    }
    ok(&root, &["rm", "-f", &id]);
    assert_clean(&root);
}

/// A container's process starts with SIGPIPE at its default, as docker's
/// do (Rust ignores it for itself, and an ignored signal survives exec):
/// `yes | head -1` ends quietly.
#[test]
fn a_containers_process_starts_with_sigpipe_at_its_default() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let o = berth(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "grep SigIgn /proc/self/status; yes | head -n 1",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let ignored = text
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .expect("SigIgn in the status");
    assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE is ignored: {text}");
    assert!(text.ends_with('y'), "{text}");
    assert!(!err(&o).contains("Broken pipe"), "{}", err(&o));
    assert_clean(&root);
}

#[test]
fn a_killed_supervisor_leaves_nothing_running_and_berth_reaps_it() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let kill_supervisor = |id: &str, marker: &[u8]| {
        let supervisor = supervisor_of(id);
        sigkill(supervisor);
        // Gone or a zombie: what berth takes for a dead supervisor. (SIGKILL
        // is delivered at once, the exit takes a moment on a busy machine.)
        wait_until("the supervisor to end", || {
            std::fs::read_to_string(format!("/proc/{supervisor}/stat")).map_or(true, |st| {
                st.rfind(')')
                    .and_then(|i| st.get(i + 2..i + 3))
                    .is_some_and(|state| state == "Z" || state == "X")
            })
        });
        wait_until("the container to go with its supervisor", || {
            !std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == marker))
        });
    };
    // The slirp4netns a supervisor starts for the container's network.
    let slirp_of = |pid: i64| {
        let tail = format!("\0{pid}\0tap0\0");
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c.starts_with(b"slirp4netns\0")
                    && c.windows(tail.len()).any(|w| w == tail.as_bytes())
            })
        })
    };
    // slirp4netns is what a private network without netavark (or without
    // root) gets; asked for by name here, as podman's mode is.
    let id = ok(
        &root,
        &[
            "run",
            "-d",
            "--network",
            "slirp4netns",
            "busybox",
            "sleep",
            "4242",
        ],
    );
    let pid = inspect(&root, &id)["State"]["Pid"].as_i64().unwrap();
    let slirp = berth_runner_has_slirp();
    if slirp {
        assert!(slirp_of(pid), "the container has its slirp4netns");
    }
    kill_supervisor(&id, b"sleep\x004242\x00");
    // None of the supervisor's helpers survive it.
    wait_until("slirp4netns to go with its supervisor", || !slirp_of(pid));
    assert_eq!(inspect(&root, &id)["State"]["Running"], false);
    // The next ps finds it exited and unmounts its root filesystem.
    assert!(ok(&root, &["ps", "-a"]).contains("Exited (137)"));
    let merged = root
        .join("mounts")
        .join(&id)
        .join("merged")
        .display()
        .to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(merged.as_str())));
    ok(&root, &["rm", &id]);
    // A --rm container goes entirely.
    let id = ok(&root, &["run", "-d", "--rm", "busybox", "sleep", "4343"]);
    kill_supervisor(&id, b"sleep\x004343\x00");
    assert!(!ok(&root, &["ps", "-a"]).contains(&id[..12]));
    assert_clean(&root);
}

#[test]
fn mount_gives_binds_volumes_and_tmpfs_as_docker() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "from-host").unwrap();
    let bind = format!("type=bind,source={},target=/data,readonly", src.display());
    assert_eq!(
        ok(
            &root,
            &[
                "run",
                "--rm",
                "--mount",
                &bind,
                "busybox",
                "sh",
                "-c",
                "cat /data/f; touch /data/x 2>/dev/null || echo refused"
            ]
        ),
        "from-hostrefused"
    );
    let rw = format!("type=bind,src={},dst=/data", src.display());
    ok(
        &root,
        &[
            "run",
            "--rm",
            "--mount",
            &rw,
            "busybox",
            "sh",
            "-c",
            "echo back > /data/g",
        ],
    );
    assert_eq!(std::fs::read_to_string(src.join("g")).unwrap(), "back\n");
    // A volume is seeded from the image on first use and keeps what is written.
    ok(
        &root,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=etcvol,target=/etc",
            "busybox",
            "sh",
            "-c",
            "echo kept > /etc/new",
        ],
    );
    assert_eq!(
        ok(
            &root,
            &[
                "run",
                "--rm",
                "--mount",
                "source=etcvol,target=/v",
                "busybox",
                "sh",
                "-c",
                "cat /v/new; test -f /v/passwd && echo seeded"
            ]
        ),
        "kept\nseeded"
    );
    ok(&root, &["volume", "rm", "etcvol"]);
    assert_eq!(
        ok(
            &root,
            &[
                "run",
                "--rm",
                "--mount",
                "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=700",
                "busybox",
                "sh",
                "-c",
                "stat -c %a /scratch; df -k /scratch | tail -1 | awk '{print $2}'"
            ]
        ),
        "700\n1024"
    );
    for (bad, says) in [
        ("type=bind,target=/x", "source is required"),
        ("type=nfs,target=/x", "invalid mount type"),
        ("type=tmpfs", "target is required"),
        ("type=bind,source=/no/such/dir,target=/x", "does not exist"),
        ("type=volume,colour=red,target=/x", "unexpected key"),
    ] {
        let o = berth(&root, &["run", "--rm", "--mount", bad, "busybox", "true"]);
        assert!(!o.status.success(), "{bad}");
        assert!(err(&o).contains(says), "{bad}: {}", err(&o));
    }
    assert_clean(&root);
}

/// berth as an unprivileged user: the container gets a user namespace with
/// the caller mapped to root, a copy-based root filesystem, rlimits for
/// limits and slirp4netns for its network and published ports.
#[test]
fn rootless_containers_run_in_a_user_namespace() {
    if !is_root() {
        eprintln!("skipped: this test switches to an unprivileged user, which needs root (CI runs as root)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let as_nobody = |args: &[&str]| -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("BERTH_ROOT={}", home.join("root").display()))
            .arg(format!("TMPDIR={}", home.display()))
            .args(args)
            .output()
            .unwrap()
    };
    let made = as_nobody(&[
        "bash",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/make-busybox.sh"),
        env!("CARGO_BIN_EXE_berth"),
        &home.join("bb.tar").display().to_string(),
    ]);
    assert!(made.status.success(), "{}", err(&made));
    let berth_ok = |args: &[&str]| -> String {
        let mut all = vec![env!("CARGO_BIN_EXE_berth")];
        all.extend_from_slice(args);
        let o = as_nobody(&all);
        assert!(o.status.success(), "berth {args:?}: {}", err(&o));
        out(&o)
    };
    assert_eq!(
        berth_ok(&["run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map | tr -s ' '; grep CapEff /proc/self/status; echo w > /w && cat /w"]),
        "0\n 0 65534 1\nCapEff:\t00000000a80425fb\nw"
    );
    let mut all = vec![
        env!("CARGO_BIN_EXE_berth"),
        "run",
        "--rm",
        "-u",
        "1000",
        "busybox",
        "id",
    ];
    let o = as_nobody(&all);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no mapping in this rootless container"),
        "{}",
        err(&o)
    );
    all = vec![
        env!("CARGO_BIN_EXE_berth"),
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "ulimit -u",
    ];
    let o = as_nobody(&all);
    assert_eq!(out(&o), "20");
    assert!(err(&o).contains("using rlimits instead"), "{}", err(&o));

    // With subordinate ids (given in a mount namespace of the test's own,
    // over empty /etc/subuid and /etc/subgid) other users map too.
    assert!(
        Path::new("/usr/bin/newuidmap").exists(),
        "newuidmap is not installed (testdata/test.sh installs uidmap)"
    );
    let subid = home.join("subid");
    std::fs::write(&subid, "nobody:300000:65536\n").unwrap();
    let script = format!(
        "mount --bind {s} /etc/subuid && mount --bind {s} /etc/subgid && exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME={h} BERTH_ROOT={h}/root TMPDIR={h} {b} run --rm -u 1000:1000 busybox sh -c 'id; sed -n 2p /proc/self/uid_map | tr -s \" \"'",
        s = subid.display(),
        h = home.display(),
        b = env!("CARGO_BIN_EXE_berth"),
    );
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out(&o), "uid=1000 gid=1000\n 1 300000 65536", "{}", err(&o));

    let tun_ok = nix_access_tun();
    if tun_ok {
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:80");
        berth_ok(&[
            "run",
            "-d",
            "--name",
            "rootless-web",
            "-p",
            &publish,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ]);
        let url = format!("http://127.0.0.1:{port}/hostname");
        wait_until("httpd to answer", || curl(&url).is_some());
        let hostname = berth_ok(&["exec", "rootless-web", "hostname"]);
        assert_eq!(curl(&url).as_deref(), Some(hostname.as_str()));
        assert_eq!(berth_ok(&["exec", "rootless-web", "id", "-u"]), "0");
        berth_ok(&["rm", "-f", "rootless-web"]);
    }
    for dir in ["mounts", "containers", "holds"] {
        let p = home.join("root").join(dir);
        assert!(
            !p.exists() || std::fs::read_dir(&p).unwrap().count() == 0,
            "{dir} not empty"
        );
    }
    assert!(tun_ok, "/dev/net/tun is not usable without root here (testdata/test.sh makes it 0666, Debian's default)");
}

fn nix_access_tun() -> bool {
    std::fs::metadata("/dev/net/tun")
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006)
}
