//! docker's container lifecycle beyond run/stop/rm, as a user drives it:
//! create and start, restart policies, healthchecks, events, pause, stats,
//! top, diff, cp, rename, anonymous volumes, container prune, ps filters and
//! formats. Real containers on the busybox base image, as root (CI runs as
//! root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

use busybox::berth;
use containers::{
    build_image, err, fails, inspect, ok, out, past_events, root_store, run_detached, run_script,
    sigkill, supervisor_of,
};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rfc3339(s: &str) -> f64 {
    // 2026-12-02T02:33:38.118190962Z → seconds of the day, enough here.
    let t = s.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let sec: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + sec
}

#[test]
fn create_start_and_a_restart_policy_with_docker_backoff() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    // create makes it and starts nothing.
    let id = ok(
        &root,
        &["create", "--name", "later", "busybox", "echo", "hello"],
    );
    assert_eq!(id.len(), 64);
    assert_eq!(inspect(&root, "later")["State"]["Status"], "created");
    assert!(ok(&root, &["ps", "-a", "--filter", "status=created", "-q"]).contains(&id[..12]));
    assert_eq!(ok(&root, &["start", "-a", "later"]), "hello");
    assert_eq!(inspect(&root, "later")["State"]["Status"], "exited");

    // on-failure:3 runs it four times, each restart after twice the
    // wait before (100 ms, 200 ms, 400 ms). Without a network: a bridge's
    // setup and teardown would be in the gaps measured.
    run_script(
        &root,
        "flaky",
        &["--restart", "on-failure:3", "--network", "none"],
        "echo run; exit 3",
    );
    wait_until("three restarts", 20, || {
        let v = inspect(&root, "flaky");
        v["RestartCount"] == 3 && v["State"]["Status"] == "exited"
    });
    let v = inspect(&root, "flaky");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    let logs = ok(&root, &["logs", "--timestamps", "flaky"]);
    let times: Vec<f64> = logs
        .lines()
        .map(|l| rfc3339(l.split(' ').next().unwrap()))
        .collect();
    assert_eq!(times.len(), 4, "{logs}");
    for (i, want) in [0.1, 0.2, 0.4].iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(
            gap >= *want,
            "restart {} after {gap} s, before the backoff of {want} s",
            i + 1
        );
    }

    // `always` restarts a container that exits 0 too; stop wins over it.
    run_script(&root, "forever", &["--restart", "always"], "sleep 0.3");
    wait_until("a restart", 20, || {
        inspect(&root, "forever")["RestartCount"].as_i64() >= Some(1)
    });
    ok(&root, &["stop", "-t", "1", "forever"]);
    let stopped = inspect(&root, "forever");
    assert_eq!(stopped["State"]["Running"], false);
    std::thread::sleep(Duration::from_millis(1500));
    let later = inspect(&root, "forever");
    assert_eq!(
        later["State"]["Running"], false,
        "stopped, it stays stopped"
    );
    assert_eq!(later["RestartCount"], stopped["RestartCount"]);
    // start runs it again, with its policy.
    ok(&root, &["start", "forever"]);
    wait_until("the next restart", 20, || {
        inspect(&root, "forever")["RestartCount"].as_i64() > stopped["RestartCount"].as_i64()
    });
    ok(&root, &["rm", "-f", "forever"]);

    // A supervisor killed with SIGKILL (a reboot, as the container sees it):
    // the next command finds the container exited, and starts it again as
    // its policy says.
    let id = run_detached(
        &root,
        "survivor",
        &["--restart", "always"],
        "busybox",
        &["sleep", "300"],
    );
    let old = inspect(&root, "survivor")["State"]["Pid"].as_i64().unwrap();
    sigkill(supervisor_of(&id));
    wait_until("the container to go with its supervisor", 20, || {
        !Path::new(&format!("/proc/{old}")).exists()
    });
    ok(&root, &["ps", "-a"]);
    wait_until("the policy to start it again", 20, || {
        let v = inspect(&root, "survivor");
        v["State"]["Running"] == true && v["State"]["Pid"].as_i64() != Some(old)
    });
    ok(&root, &["rm", "-f", "survivor"]);

    // docker's words for bad policies.
    assert!(
        fails(&root, &["run", "--restart", "sometimes", "busybox", "true"])
            .contains("invalid restart policy 'sometimes'")
    );
    assert!(
        fails(&root, &["run", "--restart", "always:3", "busybox", "true"])
            .contains("maximum retry count cannot be used with restart policy 'always'")
    );
    assert!(fails(
        &root,
        &["run", "--restart", "on-failure:x", "busybox", "true"]
    )
    .contains("maximum retry count must be an integer"));
    assert!(fails(
        &root,
        &["run", "--rm", "--restart", "always", "busybox", "true"]
    )
    .contains("Conflicting options: --restart and --rm"));
    ok(&root, &["rm", "flaky", "later"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}

#[test]
fn a_healthcheck_turns_healthy_then_unhealthy() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    run_detached(
        &root,
        "probe",
        &[
            "--health-cmd",
            "test -e /tmp/ok && echo fine",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
        ],
        "busybox",
        &["sleep", "300"],
    );
    let status = |root: &Path| inspect(root, "probe")["State"]["Health"]["Status"].clone();
    wait_until("unhealthy", 20, || status(&root) == "unhealthy");
    let ps = ok(&root, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.contains("probe Up") && ps.contains("(unhealthy)"),
        "{ps}"
    );
    ok(&root, &["exec", "probe", "touch", "/tmp/ok"]);
    wait_until("healthy", 20, || status(&root) == "healthy");
    let h = &inspect(&root, "probe")["State"]["Health"];
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    assert_eq!(log.last().unwrap()["Output"], "fine\n");
    assert!(ok(&root, &["ps", "--filter", "health=healthy", "-q"]).len() == 12);
    ok(&root, &["exec", "probe", "rm", "/tmp/ok"]);
    wait_until("unhealthy again", 20, || status(&root) == "unhealthy");
    let events = past_events(&root, "event=health_status", Some("{{.Action}}"));
    assert_eq!(
        events.lines().collect::<Vec<_>>(),
        [
            "health_status: unhealthy",
            "health_status: healthy",
            "health_status: unhealthy"
        ]
    );
    // The image's HEALTHCHECK runs too; a flag changes one of its fields.
    build_image(
        &root,
        &tmp.path().join("hc"),
        "checked",
        "FROM busybox\nHEALTHCHECK --interval=10m --retries=1 CMD test -e /etc/passwd\n",
    );
    run_detached(
        &root,
        "imaged",
        &["--health-interval", "200ms"],
        "checked",
        &["sleep", "300"],
    );
    wait_until("the image's check to pass", 20, || {
        inspect(&root, "imaged")["State"]["Health"]["Status"] == "healthy"
    });
    ok(&root, &["rm", "-f", "imaged"]);
    // --no-healthcheck turns the image's (and any) check off.
    run_detached(
        &root,
        "quiet",
        &["--no-healthcheck"],
        "checked",
        &["sleep", "300"],
    );
    assert!(inspect(&root, "quiet")["State"].get("Health").is_none());
    ok(&root, &["rm", "-f", "probe", "quiet"]);
}

#[test]
fn events_reach_a_follower_started_before_the_action() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    /// Killed however the test ends: a follower left running would keep
    /// the test's output open.
    struct Follower(std::process::Child);
    impl Drop for Follower {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut follower = Follower(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .args([
                "events",
                "--filter",
                "type=container",
                "--format",
                "{{.Action}} {{.Actor.Attributes.name}}",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    ok(&root, &["run", "--rm", "--name", "seen", "busybox", "true"]);
    run_detached(&root, "other", &[], "busybox", &["sleep", "30"]);
    ok(&root, &["rename", "other", "renamed"]);
    ok(&root, &["kill", "renamed"]);
    ok(&root, &["rm", "renamed"]);
    std::thread::sleep(Duration::from_millis(500));
    follower.0.kill().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(follower.0.stdout.as_mut().unwrap(), &mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "create seen",
            "start seen",
            "die seen",
            "destroy seen",
            "create other",
            "start other",
            "rename renamed",
            "kill renamed",
            "die renamed",
            "destroy renamed",
        ],
        "{text}"
    );
    // The log keeps them: --since reads them back, --until ends the stream,
    // filters pick.
    let since = past_events(&root, "container=seen", None);
    assert_eq!(since.lines().count(), 4, "{since}");
    assert!(
        since.lines().next().unwrap().contains(" container create "),
        "{since}"
    );
    assert!(since.contains("(image=busybox, name=seen)"), "{since}");
    let json = past_events(&root, "event=die", Some("json"));
    for l in json.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(
            v["Actor"]["Attributes"]["exitCode"]
                .as_str()
                .map(|c| c == "0" || c == "137"),
            Some(true)
        );
        assert!(v["timeNano"].as_i64().unwrap() > 0);
    }
    // Volumes: made by a mount on first use, removed by hand.
    ok(&root, &["run", "--rm", "-v", "named:/x", "busybox", "true"]);
    ok(&root, &["volume", "rm", "named"]);
    let vols = past_events(&root, "type=volume", Some("{{.Action}} {{.Actor.ID}}"));
    assert_eq!(
        vols.lines().collect::<Vec<_>>(),
        ["create named", "destroy named"],
        "{vols}"
    );
    ok(&root, &["tag", "busybox", "extra:1"]);
    let images = past_events(
        &root,
        "type=image",
        Some("{{.Action}} {{.Actor.Attributes.name}}"),
    );
    assert!(images.lines().any(|l| l == "tag extra:1"), "{images}");
    assert!(fails(&root, &["events", "--filter", "colour=red"]).contains("invalid filter 'colour'"));
    assert!(fails(&root, &["events", "--since", "soon"]).contains("invalid time"));
}

#[test]
fn pause_stops_progress_and_stats_read_the_cgroup() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    run_script(&root, "counter", &["--memory", "64m"], "head -c 20000000 /dev/zero > /dev/shm/fill; i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done");
    let count = |root: &Path| -> u64 {
        let o = berth(root, &["exec", "counter", "cat", "/tmp/n"]);
        out(&o).parse().unwrap_or(0)
    };
    wait_until("the counter to count", 20, || count(&root) > 2);
    // Stats: 20 MB of tmpfs is the container's memory; the limit is its own.
    wait_until("the memory to be charged", 20, || {
        let s = ok(
            &root,
            &[
                "stats",
                "--no-stream",
                "--format",
                "{{.MemUsage}} {{.PIDs}}",
                "counter",
            ],
        );
        s.starts_with(|c: char| c.is_ascii_digit()) && s.contains("MiB / 64MiB") && {
            let used: f64 = s.split("MiB").next().unwrap().parse().unwrap_or(0.0);
            used >= 19.0
        }
    });
    let table = ok(&root, &["stats", "--no-stream"]);
    assert!(table.starts_with("CONTAINER ID   NAME"), "{table}");
    assert!(table.contains("counter"), "{table}");

    ok(&root, &["pause", "counter"]);
    let v = inspect(&root, "counter");
    assert_eq!(v["State"]["Paused"], true);
    assert_eq!(v["State"]["Status"], "paused");
    assert!(ok(&root, &["ps"]).contains("(Paused)"));
    assert!(fails(&root, &["exec", "counter", "true"]).contains("is paused"));
    assert!(fails(&root, &["pause", "counter"]).contains("already paused"));
    let read = |root: &Path| ok(root, &["cp", "counter:/tmp/n", "-"]);
    let before = read(&root);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(&root), before, "a paused container makes no progress");
    ok(&root, &["unpause", "counter"]);
    let frozen_at = count(&root);
    wait_until("progress after unpause", 20, || count(&root) > frozen_at);
    assert!(fails(&root, &["unpause", "counter"]).contains("is not paused"));

    // top lists its processes, by the host's ps.
    let top = ok(&root, &["top", "counter"]);
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.contains("while true"), "{top}");
    // A paused container can be stopped (it is thawed first).
    ok(&root, &["pause", "counter"]);
    ok(&root, &["stop", "-t", "1", "counter"]);
    assert_eq!(inspect(&root, "counter")["State"]["Status"], "exited");
    ok(&root, &["rm", "counter"]);
}

#[test]
fn cp_both_ways_and_diff_stay_inside_the_container() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    run_detached(&root, "box", &[], "busybox", &["sleep", "300"]);
    // In: a file into a folder, a file under a new name, a folder.
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("file.txt"), "from the host\n").unwrap();
    std::fs::write(host.join("dir/sub/deep.txt"), "deep\n").unwrap();
    ok(
        &root,
        &["cp", host.join("file.txt").to_str().unwrap(), "box:/tmp"],
    );
    ok(
        &root,
        &[
            "cp",
            host.join("file.txt").to_str().unwrap(),
            "box:/tmp/renamed.txt",
        ],
    );
    ok(
        &root,
        &["cp", host.join("dir").to_str().unwrap(), "box:/srv"],
    );
    assert_eq!(
        ok(&root, &["exec", "box", "cat", "/tmp/file.txt"]),
        "from the host"
    );
    assert_eq!(
        ok(&root, &["exec", "box", "cat", "/tmp/renamed.txt"]),
        "from the host"
    );
    // A folder copied to a path that is not there becomes that path.
    assert_eq!(
        ok(&root, &["exec", "box", "cat", "/srv/sub/deep.txt"]),
        "deep"
    );
    ok(
        &root,
        &["cp", host.join("dir").to_str().unwrap(), "box:/srv"],
    );
    assert_eq!(
        ok(&root, &["exec", "box", "cat", "/srv/dir/sub/deep.txt"]),
        "deep"
    );
    // Out: a file, a folder, a tar stream.
    let back = tmp.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    ok(&root, &["cp", "box:/tmp/file.txt", back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("file.txt")).unwrap(),
        "from the host\n"
    );
    ok(
        &root,
        &["cp", "box:/srv/sub", back.join("copy").to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(back.join("copy/deep.txt")).unwrap(),
        "deep\n"
    );
    let tar = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["cp", "box:/etc/passwd", "-"])
        .output()
        .unwrap();
    let names: Vec<String> = tar::Archive::new(tar.stdout.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["passwd"]);

    // A path cannot climb out: `..` and symlinks resolve inside the root.
    ok(
        &root,
        &[
            "exec",
            "box",
            "sh",
            "-c",
            "echo inside > /tmp/marker; ln -s / /tmp/up; ln -s ../../../../../../tmp /tmp/climb",
        ],
    );
    let marker_host = std::env::temp_dir().join("marker");
    let _ = std::fs::remove_file(&marker_host);
    assert!(ok(&root, &["cp", "box:/../../../../tmp/marker", "-"]).contains("inside"));
    let via_link = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["cp", "box:/tmp/climb/marker", "-"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&via_link.stdout).contains("inside"));
    // Hostile tar streams into the container are refused, and nothing
    // lands on the host.
    let escape = tmp.path().join("escape-target");
    let mut hostile = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let payload = b"pwned\n";
    h.set_size(payload.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = format!("../../../../../../../..{}", escape.display());
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    hostile.append(&h, &payload[..]).unwrap();
    let data = hostile.into_inner().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["cp", "-", "box:/tmp"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
    let refused = child.wait_with_output().unwrap();
    assert!(!refused.status.success(), "a .. entry is refused");
    assert!(
        !escape.exists(),
        "nothing was written outside the container"
    );
    assert!(fails(&root, &["cp", "box:/no/such/file", "-"]).contains("Could not find the file"));

    // diff: what changed against the image, without the runtime's own files.
    let diff = ok(&root, &["diff", "box"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "C /tmp",
        "A /tmp/file.txt",
        "A /tmp/marker",
        "A /srv",
        "A /srv/sub/deep.txt",
        "A /srv/dir/sub/deep.txt",
    ] {
        assert!(lines.contains(&want), "{want} in {diff}");
    }
    assert!(!diff.contains("/etc/hosts"), "{diff}");
    ok(&root, &["exec", "box", "rm", "/bin/tar"]);
    assert!(ok(&root, &["diff", "box"])
        .lines()
        .any(|l| l == "D /bin/tar"));
    ok(&root, &["rm", "-f", "box"]);
}

#[test]
fn anonymous_volumes_rename_top_prune_and_ps_formats() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    // An image with a VOLUME: each container gets its own, seeded from it.
    build_image(
        &root,
        &tmp.path().join("ctx"),
        "withvol",
        "FROM busybox\nRUN mkdir /data && echo seeded > /data/seed\nVOLUME /data\n",
    );
    let before = ok(&root, &["volume", "ls", "-q"]);
    assert_eq!(before, "");
    ok(
        &root,
        &[
            "run",
            "--name",
            "one",
            "withvol",
            "sh",
            "-c",
            "cat /data/seed; echo mine > /data/own",
        ],
    );
    ok(
        &root,
        &[
            "run",
            "--name",
            "two",
            "-v",
            "/scratch",
            "withvol",
            "cat",
            "/data/seed",
        ],
    );
    let vols = ok(&root, &["volume", "ls", "-q"]);
    assert_eq!(
        vols.lines().count(),
        3,
        "two for /data, one for /scratch: {vols}"
    );
    let mounts = &inspect(&root, "one")["Mounts"];
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/data");
    let name = mounts[0]["Name"].as_str().unwrap().to_string();
    assert_eq!(name.len(), 64);
    // rm keeps them; rm -v removes the container's own.
    ok(&root, &["rm", "one"]);
    assert!(ok(&root, &["volume", "ls", "-q"]).contains(&name));
    ok(&root, &["rm", "-v", "two"]);
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), name);
    // --rm takes them with it; a named volume stays.
    ok(
        &root,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "withvol",
            "cat",
            "/data/seed",
        ],
    );
    ok(&root, &["run", "--rm", "withvol", "true"]);
    let left = ok(&root, &["volume", "ls", "-q"]);
    let left: std::collections::BTreeSet<&str> = left.lines().collect();
    assert_eq!(left, [name.as_str(), "keep"].into_iter().collect());

    // rename: docker's rules.
    run_detached(
        &root,
        "aa",
        &["--label", "team=web"],
        "busybox",
        &["sleep", "300"],
    );
    ok(&root, &["create", "--name", "bb", "busybox", "true"]);
    assert!(fails(&root, &["rename", "aa", "bb"]).contains("is already in use"));
    assert!(fails(&root, &["rename", "aa", "_bad"]).contains("Invalid container name"));
    ok(&root, &["rename", "aa", "cc"]);
    assert_eq!(inspect(&root, "cc")["Name"], "/cc");
    assert!(fails(&root, &["inspect", "aa"]).contains("No such"));

    // ps: filters and formats.
    assert_eq!(ok(&root, &["ps", "--format", "{{.Names}}"]), "cc");
    assert_eq!(
        ok(
            &root,
            &[
                "ps",
                "-a",
                "--filter",
                "name=bb",
                "--format",
                "{{.Names}} {{.State}}"
            ]
        ),
        "bb created"
    );
    assert_eq!(
        ok(
            &root,
            &["ps", "--filter", "label=team=web", "--format", "{{.Names}}"]
        ),
        "cc"
    );
    assert_eq!(
        ok(&root, &["ps", "-a", "--filter", "label=team=db", "-q"]),
        ""
    );
    assert_eq!(
        ok(
            &root,
            &[
                "ps",
                "-a",
                "--filter",
                "ancestor=busybox",
                "--format",
                "{{.Names}}"
            ]
        )
        .lines()
        .count(),
        2
    );
    assert_eq!(
        ok(
            &root,
            &[
                "ps",
                "-a",
                "--filter",
                "before=bb",
                "--format",
                "{{.Names}}"
            ]
        ),
        "cc"
    );
    assert_eq!(
        ok(
            &root,
            &["ps", "-a", "--filter", "since=cc", "--format", "{{.Names}}"]
        ),
        "bb"
    );
    assert_eq!(
        ok(&root, &["ps", "-a", "-n", "1", "--format", "{{.Names}}"]),
        "bb"
    );
    let table = ok(
        &root,
        &["ps", "--format", "table {{.ID}}\t{{.Names}}\t{{.Status}}"],
    );
    assert!(
        table.starts_with("CONTAINER ID   NAMES   STATUS"),
        "{table}"
    );
    let row: Value = serde_json::from_str(&ok(&root, &["ps", "--format", "{{json .}}"])).unwrap();
    assert_eq!(row["Names"], "cc");
    assert_eq!(row["Labels"], "team=web");
    assert_eq!(row["State"], "running");
    assert!(fails(&root, &["ps", "--filter", "colour=red"]).contains("invalid filter"));

    // container prune: the stopped ones go, the running one stays.
    let pruned = ok(&root, &["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:"), "{pruned}");
    assert_eq!(ok(&root, &["ps", "-a", "--format", "{{.Names}}"]), "cc");
    ok(&root, &["rm", "-f", "cc"]);
}

fn berth_cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("--root").arg(root).args(args);
    c
}

/// A child killed however the test ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn finish(mut c: Reaped, secs: u64) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = c.0.try_wait().unwrap() {
            let mut text = String::new();
            if let Some(o) = c.0.stdout.as_mut() {
                std::io::Read::read_to_string(o, &mut text).unwrap();
            }
            return (st.code(), text);
        }
        assert!(Instant::now() < deadline, "the attached client did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_clients_attach_and_detach_keys_leave_it_running() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    // Two clients see the same output, and both get its exit code.
    run_script(
        &root,
        "ticker",
        &[],
        "sleep 1; for i in 1 2 3 4 5; do echo tick $i; sleep 0.1; done; exit 3",
    );
    let attach = || {
        Reaped(
            berth_cmd(&root, &["attach", "--no-stdin", "ticker"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let (a, b) = (attach(), attach());
    let (code_a, out_a) = finish(a, 20);
    let (code_b, out_b) = finish(b, 20);
    let want = "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n";
    assert_eq!((code_a, out_a.as_str()), (Some(3), want));
    assert_eq!((code_b, out_b.as_str()), (Some(3), want));
    assert!(
        fails(&root, &["attach", "ticker"]).contains("You cannot attach to a stopped container")
    );

    // ctrl-p ctrl-q ends the attachment, not the container; what was typed
    // before reached it.
    let mut run = Reaped(
        berth_cmd(
            &root,
            &[
                "run",
                "-i",
                "--name",
                "reader",
                "busybox",
                "sh",
                "-c",
                "while read l; do echo got:$l; done",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let stdin = run.0.stdin.as_mut().unwrap();
    std::io::Write::write_all(stdin, b"hello\n").unwrap();
    wait_until("the line to reach it", 20, || {
        out(&berth(&root, &["logs", "reader"])) == "got:hello"
    });
    std::io::Write::write_all(run.0.stdin.as_mut().unwrap(), &[0x10, 0x11]).unwrap();
    let (code, printed) = finish(run, 20);
    assert_eq!(code, Some(0), "detaching is not a failure");
    assert_eq!(printed, "got:hello\n");
    assert_eq!(
        inspect(&root, "reader")["State"]["Running"],
        true,
        "it runs on"
    );

    // --detach-keys picks the sequence.
    let mut again = Reaped(
        berth_cmd(&root, &["attach", "--detach-keys", "ctrl-x,y", "reader"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(again.0.stdin.as_mut().unwrap(), b"second\n\x18").unwrap();
    wait_until("the second line to reach it", 20, || {
        out(&berth(&root, &["logs", "reader"])).ends_with("got:second")
    });
    std::thread::sleep(Duration::from_millis(200));
    std::io::Write::write_all(again.0.stdin.as_mut().unwrap(), b"y").unwrap();
    let (code, printed) = finish(again, 20);
    assert_eq!(code, Some(0));
    assert_eq!(printed, "got:second\n");
    assert_eq!(
        out(&berth(&root, &["logs", "reader"])),
        "got:hello\ngot:second"
    );
    assert!(
        fails(&root, &["attach", "--detach-keys", "shift-a", "reader"])
            .contains("Invalid detach keys")
    );
    ok(&root, &["rm", "-f", "reader", "ticker"]);

    // A foreground run passes the signals it gets on (docker's sig-proxy).
    let fg = Reaped(
        berth_cmd(
            &root,
            &[
                "run",
                "--name",
                "trapper",
                "busybox",
                "sh",
                "-c",
                "trap 'echo caught; exit 4' TERM; echo ready; while true; do sleep 0.1; done",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    wait_until("the trap to be set", 20, || {
        out(&berth(&root, &["logs", "trapper"])) == "ready"
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(fg.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let (code, printed) = finish(fg, 20);
    assert_eq!((code, printed.as_str()), (Some(4), "ready\ncaught\n"));
    ok(&root, &["rm", "trapper"]);
    wait_until("every supervisor to go", 20, || leftovers(&root).is_empty());
}

/// Mounts, cgroups, processes and records of this store's containers.
fn leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let r = root.display().to_string();
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if l.contains(&r) {
            found.push(format!("mount {}", l.split(' ').nth(4).unwrap_or("")));
        }
    }
    let ids: Vec<String> = std::fs::read_dir(root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    found.extend(ids.iter().map(|i| format!("record {i}")));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmd.windows(r.len()).any(|w| w == r.as_bytes()) {
            found.push(format!(
                "process {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

#[test]
fn fifty_containers_started_and_removed_at_once_leave_nothing() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let cgroups_before: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids/berth")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let root = root.clone();
                s.spawn(move || {
                    let name = format!("c{i}");
                    let o = berth(
                        &root,
                        &["run", "-d", "--name", &name, "busybox", "sleep", "300"],
                    );
                    assert!(o.status.success(), "run {name}: {}", err(&o));
                    out(&o)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ok(&root, &["ps", "-q"]).lines().count(), 50);
    std::thread::scope(|s| {
        for id in &ids {
            let root = root.clone();
            s.spawn(move || {
                let o = berth(&root, &["rm", "-f", id]);
                assert!(o.status.success(), "rm {id}: {}", err(&o));
            });
        }
    });
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    wait_until("every helper to go", 20, || leftovers(&root).is_empty());
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids/berth")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| ids.contains(n) && !cgroups_before.contains(n))
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

#[test]
fn inspect_has_dockers_shape() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!("{}:/data:ro", data.display());
    ok(
        &root,
        &[
            "create",
            "--name",
            "shaped",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:2",
            "--read-only",
            "-v",
            &bind,
            "-l",
            "tier=db",
            "-p",
            "127.0.0.1:18080:80",
            "-e",
            "A=1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let v = inspect(&root, "shaped");
    assert_eq!(v["Name"], "/shaped");
    assert!(
        v["Image"].as_str().unwrap().starts_with("sha256:"),
        "the image ID: {}",
        v["Image"]
    );
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["300"]));
    assert_eq!(v["State"]["Status"], "created");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["RestartCount"], 0);
    let hc = &v["HostConfig"];
    assert_eq!(hc["Memory"], 64 * 1024 * 1024);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PidsLimit"], 50);
    assert_eq!(
        hc["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
    );
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["AutoRemove"], false);
    assert_eq!(hc["Binds"], serde_json::json!([bind]));
    assert_eq!(hc["PortBindings"]["80/tcp"][0]["HostPort"], "18080");
    assert_eq!(
        v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"],
        "127.0.0.1"
    );
    assert!(
        v["NetworkSettings"]["Networks"].get("bridge").is_some(),
        "{}",
        v["NetworkSettings"]
    );
    assert_eq!(v["Config"]["Labels"]["tier"], "db");
    assert!(v["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "A=1"));
    assert_eq!(v["Mounts"][0]["Type"], "bind");
    assert_eq!(v["Mounts"][0]["Destination"], "/data");
    assert_eq!(v["Mounts"][0]["RW"], false);
    // Running, it has its pid and start time; the cgroup holds its limits.
    ok(&root, &["start", "shaped"]);
    let v = inspect(&root, "shaped");
    assert_eq!(v["State"]["Status"], "running");
    assert!(v["State"]["Pid"].as_i64().unwrap() > 1);
    assert_ne!(v["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    let stats = ok(
        &root,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}",
            "shaped",
        ],
    );
    assert!(stats.ends_with("/ 64MiB"), "{stats}");
    // docker's words for what cannot be.
    assert!(fails(&root, &["create", "--name", "shaped", "busybox"])
        .contains("is already in use by container"));
    assert!(fails(&root, &["start", "nosuch"]).contains("No such container: nosuch"));
    assert!(fails(&root, &["rm", "shaped"])
        .contains("cannot remove container \"/shaped\": container is running"));
    assert!(fails(&root, &["create", "-m", "1m", "busybox"])
        .contains("Minimum memory limit allowed is 6MB"));
    ok(&root, &["rm", "-f", "shaped"]);
}

#[test]
fn a_supervisor_outlives_an_upgrade_of_its_binary() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    // berth from a copy that is then replaced, as a package upgrade does.
    let bin = tmp.path().join("berth");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
    let run = Command::new(&bin)
        .arg("--root")
        .arg(&root)
        .args([
            "run",
            "-d",
            "--name",
            "upgraded",
            "--network",
            "none",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "300",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let status = |root: &Path| inspect(root, "upgraded")["State"]["Health"]["Status"].clone();
    wait_until("healthy", 20, || status(&root) == "healthy");
    let next = tmp.path().join("berth.new");
    std::fs::write(&next, b"#!/bin/sh\nexit 99\n").unwrap();
    std::fs::rename(&next, &bin).unwrap();
    // Checks keep passing: the supervisor re-executes its own binary.
    std::thread::sleep(Duration::from_millis(1500));
    let h = &inspect(&root, "upgraded")["State"]["Health"];
    assert_eq!(h["Status"], "healthy", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    ok(&root, &["rm", "-f", "upgraded"]);
}
