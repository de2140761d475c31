//! `berth compose` end to end, on the projects in testdata/compose/, with
//! real containers and networks (as root; CI runs as root): a healthcheck-
//! gated dependency, a build, a scaled service reached by its name, an
//! override file, profiles, recreation on change only, `down -v`, and a
//! foreground `up` that stops with a failing service or Ctrl-C.

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

#[path = "../../testdata/support/registry.rs"]
mod registry;

#[path = "../../testdata/support/compose_projects.rs"]
mod compose_projects;
use compose_projects::project_dir;

use containers::{free_port, inspect, ok, root_store};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `berth compose ARGS` in project folder `dir`, free of the caller's
/// COMPOSE_* variables.
fn compose_command(root: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("--root")
        .arg(root)
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROFILES");
    cmd
}

/// `berth compose ARGS` in project folder `dir`, with `env` set.
fn compose(root: &Path, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    compose_command(root, dir, args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `berth compose ARGS` started in `dir`, its stderr piped (and its stdout
/// when `stdout`).
fn spawn_compose(root: &Path, dir: &Path, args: &[&str], stdout: bool) -> std::process::Child {
    compose_command(root, dir, args)
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn compose_ok(root: &Path, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let o = compose(root, dir, env, args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "compose {args:?} failed:\n{err}\n{out}");
    (out, err)
}

fn id_of(root: &Path, name: &str) -> String {
    inspect(root, name)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_web_and_db_project_comes_up_in_order_and_goes_away() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let dir = project_dir("webdb", tmp.path());
    let port = free_port().to_string();
    let env = [("WEB_PORT", port.as_str())];
    // A command in the web container; its output.
    let in_web = |cmd: &[&str]| {
        let args: Vec<&str> = ["exec", "-T", "web"].iter().chain(cmd).copied().collect();
        compose_ok(&root, &dir, &env, &args)
    };

    // The model: the override merged, the profile's service left out.
    let (services, _) = compose_ok(&root, &dir, &env, &["config", "--services"]);
    assert_eq!(
        services.lines().collect::<Vec<_>>(),
        ["db", "web", "worker"]
    );
    let (with_debug, _) = compose_ok(
        &root,
        &dir,
        &env,
        &["--profile", "debug", "config", "--services"],
    );
    assert!(with_debug.lines().any(|l| l == "debug"), "{with_debug}");
    let (json, _) = compose_ok(&root, &dir, &env, &["config", "--format", "json"]);
    let model: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(model["name"], "webdb");
    assert_eq!(
        model["services"]["web"]["environment"]["GREETING"],
        "from-override"
    );
    assert_eq!(
        model["services"]["web"]["ports"][0]["published"],
        port.as_str()
    );
    assert_eq!(model["networks"]["default"]["name"], "webdb_default");

    let (_, progress) = compose_ok(&root, &dir, &env, &["up", "-d"]);
    for line in [
        " Network webdb_default  Created",
        " Volume \"webdb_data\"  Created",
        " Container webdb-db-1  Healthy",
        " Container webdb-web-1  Started",
        " Container webdb-worker-3  Started",
    ] {
        assert!(progress.contains(line), "no {line:?} in:\n{progress}");
    }
    // web started only once db was healthy.
    let healthy = progress.find(" Container webdb-db-1  Healthy").unwrap();
    let web_started = progress.find(" Container webdb-web-1  Started").unwrap();
    assert!(healthy < web_started, "{progress}");
    let db = inspect(&root, "webdb-db-1");
    assert_eq!(db["State"]["Health"]["Status"], "healthy");
    assert_eq!(
        db["Config"]["Labels"]["com.docker.compose.project"],
        "webdb"
    );
    assert_eq!(db["Config"]["Labels"]["com.docker.compose.service"], "db");
    let web = inspect(&root, "webdb-web-1");
    assert_eq!(web["Config"]["Labels"]["tier"], "front");
    assert_eq!(
        web["Config"]["Labels"]["com.docker.compose.container-number"],
        "1"
    );

    let (ps, _) = compose_ok(&root, &dir, &env, &["ps", "--format", "json"]);
    let names: Vec<String> = ps
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "webdb-db-1",
            "webdb-web-1",
            "webdb-worker-1",
            "webdb-worker-2",
            "webdb-worker-3"
        ]
    );

    // The build serves on the published port; the workers answer by their
    // service name, the db by its own, over the project's network.
    let page = wget(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(page.trim(), "it works");
    let (worker, _) = in_web(&["wget", "-qO-", "http://worker:8000/"]);
    let workers: Vec<String> = (1..=3)
        .map(|n| id_of(&root, &format!("webdb-worker-{n}"))[..12].to_string())
        .collect();
    assert!(
        workers.contains(&worker.trim().to_string()),
        "{worker} is none of {workers:?}"
    );
    let (db_page, _) = in_web(&["wget", "-qO-", "http://db:5432/"]);
    assert_eq!(db_page.trim(), "db");
    let (greeting, _) = in_web(&["sh", "-c", "echo $GREETING"]);
    assert_eq!(greeting.trim(), "from-override");
    let (secret, _) = in_web(&["cat", "/run/secrets/token"]);
    assert_eq!(secret.trim(), "sesame");
    let o = compose(
        &root,
        &dir,
        &env,
        &[
            "exec",
            "-T",
            "web",
            "sh",
            "-c",
            "echo x > /run/secrets/token",
        ],
    );
    assert!(!o.status.success(), "a secret is read-only");

    // Unchanged, nothing is recreated; a changed service alone is.
    let before: Vec<String> = names.iter().map(|n| id_of(&root, n)).collect();
    let (_, again) = compose_ok(&root, &dir, &env, &["up", "-d"]);
    assert!(!again.contains("Recreate"), "{again}");
    assert!(again.contains(" Container webdb-web-1  Running"), "{again}");
    let same: Vec<String> = names.iter().map(|n| id_of(&root, n)).collect();
    assert_eq!(before, same);
    let changed = [("WEB_PORT", port.as_str()), ("GREETING", "changed")];
    let (_, recreated) = compose_ok(&root, &dir, &changed, &["up", "-d"]);
    assert!(
        recreated.contains(" Container webdb-web-1  Recreated"),
        "{recreated}"
    );
    assert!(!recreated.contains("webdb-db-1  Recreate"), "{recreated}");
    let after: Vec<String> = names.iter().map(|n| id_of(&root, n)).collect();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(before[i] == after[i], n != "webdb-web-1", "{n}");
    }
    let (greeting, _) = compose_ok(
        &root,
        &dir,
        &changed,
        &["exec", "-T", "web", "sh", "-c", "echo $GREETING"],
    );
    assert_eq!(greeting.trim(), "changed");

    // --scale down removes the highest numbers.
    let (_, scaled) = compose_ok(&root, &dir, &changed, &["up", "-d", "--scale", "worker=1"]);
    assert!(
        scaled.contains(" Container webdb-worker-3  Removed"),
        "{scaled}"
    );
    let (ps, _) = compose_ok(&root, &dir, &env, &["ps", "-q"]);
    assert_eq!(ps.lines().count(), 3, "{ps}");

    // A file that is not valid YAML: where, and nothing touched.
    std::fs::write(
        dir.join("broken.yaml"),
        "services:\n  web:\n    image: [busybox\n",
    )
    .unwrap();
    let o = compose(&root, &dir, &env, &["-f", "broken.yaml", "up", "-d"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("broken.yaml:"), "{err}");
    std::fs::write(
        dir.join("bad-key.yaml"),
        "services:\n  web:\n    image: busybox\n    ports: 80\n",
    )
    .unwrap();
    let o = compose(&root, &dir, &env, &["-f", "bad-key.yaml", "config"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("bad-key.yaml") && err.contains("services.web.ports"),
        "{err}"
    );

    let (_, down) = compose_ok(&root, &dir, &env, &["down", "-v"]);
    assert!(down.contains(" Network webdb_default  Removed"), "{down}");
    assert!(down.contains(" Volume webdb_data  Removed"), "{down}");
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    assert!(!ok(&root, &["network", "ls"]).contains("webdb_default"));
    assert!(!ok(&root, &["volume", "ls", "-q"]).contains("webdb_data"));
}

fn wget(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = Command::new("busybox").args(["wget", "-qO-", url]).output();
        if let Ok(o) = &o {
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).into_owned();
            }
        }
        assert!(Instant::now() < deadline, "{url} does not answer: {o:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_foreground_up_ends_with_a_failing_service_or_ctrl_c() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let dir = project_dir("abort", tmp.path());
    // The failing service's exit ends it all, with its code.
    let o = compose(
        &root,
        &dir,
        &[],
        &[
            "up",
            "--abort-on-container-exit",
            "--exit-code-from",
            "failing",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}\n{out}");
    for line in [
        "failing-1  | failing starts",
        "failing-1  | failing ends",
        "lasting-1  | lasting starts",
        "failing-1 exited with code 3",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    assert!(err.contains("Aborting on container exit..."), "{err}");
    assert_eq!(inspect(&root, "abort-lasting-1")["State"]["Running"], false);

    // Ctrl-C stops what runs, and says so.
    let child = spawn_compose(&root, &dir, &["up", "lasting"], true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while inspect(&root, "abort-lasting-1")["State"]["Running"] != true {
        assert!(Instant::now() < deadline, "lasting never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(130), "{err}\n{out}");
    assert!(err.contains("Gracefully stopping..."), "{err}");
    assert!(err.contains(" Container abort-lasting-1  Stopped"), "{err}");
    assert!(out.contains("lasting-1  | lasting stopped"), "{out}");
    assert_eq!(inspect(&root, "abort-lasting-1")["State"]["Running"], false);

    // A one-off container: its output and exit code, then gone with --rm.
    let o = compose(
        &root,
        &dir,
        &[],
        &[
            "run",
            "--rm",
            "-e",
            "WHO=one-off",
            "failing",
            "sh",
            "-c",
            "echo hi $WHO; exit 4",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{err}\n{out}");
    assert_eq!(out.trim(), "hi one-off");
    assert!(!ok(&root, &["ps", "-a", "--format", "{{.Names}}"]).contains("-run-"));
    let (listed, _) = compose_ok(&root, &dir, &[], &["ls", "--all", "--format", "json"]);
    assert!(listed.contains("\"Name\":\"abort\""), "{listed}");

    compose_ok(&root, &dir, &[], &["down"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}

#[test]
fn dependencies_that_must_complete_and_an_up_killed_midway() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let dir = project_dir("steps", tmp.path());
    let (_, progress) = compose_ok(&root, &dir, &[], &["up", "-d", "--wait"]);
    let exited = progress
        .find(" Container steps-migrate-1  Exited")
        .unwrap_or_else(|| panic!("{progress}"));
    let started = progress
        .find(" Container steps-app-1  Started")
        .unwrap_or_else(|| panic!("{progress}"));
    assert!(exited < started, "{progress}");
    let app = inspect(&root, "steps-app-1");
    assert_eq!(
        app["State"]["Health"]["Status"], "healthy",
        "--wait returned before healthy"
    );
    let (logs, _) = compose_ok(&root, &dir, &[], &["logs", "--no-log-prefix", "app"]);
    assert_eq!(logs.trim(), "migrated");

    // A step that fails stops its dependents from starting.
    let o = compose(
        &root,
        &dir,
        &[],
        &["--profile", "broken", "up", "-d", "after-broken"],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("service \"broken\" didn't complete successfully: exit 2"),
        "{err}"
    );
    let (all, _) = compose_ok(
        &root,
        &dir,
        &[],
        &["--profile", "broken", "ps", "-a", "--format", "json"],
    );
    for row in all
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        assert!(
            row["Service"] != "after-broken" || row["State"] != "running",
            "after-broken started: {row}"
        );
    }
    compose_ok(&root, &dir, &[], &["--profile", "broken", "down", "-v"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");

    // Ctrl-C while `up -d` waits on a dependency: what it started is stopped.
    let child = spawn_compose(&root, &dir, &["up", "-d"], false);
    let (child, reader) = wait_for_line(child, " Container steps-migrate-1  Waiting");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains(" Container steps-migrate-1  Stopped"), "{err}");
    assert_eq!(inspect(&root, "steps-migrate-1")["State"]["Running"], false);
    let (all, _) = compose_ok(&root, &dir, &[], &["ps", "-a", "--format", "json"]);
    for row in all
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        assert!(
            row["Service"] != "app" || row["State"] == "created",
            "app was started: {row}"
        );
    }
    compose_ok(&root, &dir, &[], &["down", "-v"]);

    // berth killed in the middle of `up`: `down` finds what it made, by labels.
    let mut child = spawn_compose(&root, &dir, &["up", "-d"], false);
    let mut seen = String::new();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "up ended before it made a container: {seen}");
        seen.push_str(&line);
        if line.contains(" Container steps-migrate-1  Started") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!ok(&root, &["ps", "-aq"]).is_empty());
    compose_ok(&root, &dir, &[], &["down", "-v"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    assert!(!ok(&root, &["network", "ls"]).contains("steps_default"));
    assert!(!ok(&root, &["volume", "ls", "-q"]).contains("steps_shared"));
}

#[test]
fn convert_builds_and_pushes_the_images_a_cluster_pulls() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let reg = registry::Registry::start(&tmp.path().join("registry"), Default::default());
    let dir = tmp.path().join("shipped");
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM busybox\nRUN echo shipped > /shipped\n",
    )
    .unwrap();
    let image = format!("{}/shipped/web:1", reg.host());
    std::fs::write(
        dir.join("compose.yaml"),
        format!("services:\n  web:\n    build: ./web\n    image: {image}\n    command: [\"cat\", \"/shipped\"]\n"),
    )
    .unwrap();
    let (yaml, progress) = compose_ok(
        &root,
        &dir,
        &[],
        &["convert", "--format", "kubernetes", "--push"],
    );
    assert!(
        progress.contains(&format!(" Image {image}  Pushed")),
        "{progress}"
    );
    assert!(yaml.contains(&format!("image: {image}")), "{yaml}");
    // What the cluster would pull is in the registry: a fresh store runs it.
    let other = tmp.path().join("other");
    ok(&other, &["pull", &image]);
    assert_eq!(
        ok(
            &other,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                &image,
                "cat",
                "/shipped"
            ]
        ),
        "shipped"
    );
}

/// Reads `child`'s stderr until `line` appears; the child, still
/// running, and the reader, which gives all of stderr once it ends.
fn wait_for_line(
    mut child: std::process::Child,
    line: &str,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = line.to_string();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut r = std::io::BufReader::new(err);
        loop {
            let mut l = String::new();
            match std::io::BufRead::read_line(&mut r, &mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            seen.push_str(&l);
            if l.contains(&want) {
                let _ = tx.send(());
            }
        }
        seen
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let seen = reader.join().unwrap_or_default();
        panic!("no {line:?} in:\n{seen}");
    }
    (child, reader)
}

#[test]
fn secrets_configs_build_secrets_dependent_restarts_and_platforms() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let dir = project_dir("secrets", tmp.path());
    let env = [("API_KEY", "k3y")];
    let (_, progress) = compose_ok(&root, &dir, &env, &["up", "-d"]);
    // Compose v2's passes: every container created before any starts.
    let last_created = progress.rfind("  Created").unwrap();
    let first_started = progress.find("  Started").unwrap();
    assert!(last_created < first_started, "{progress}");

    let exec = |args: &[&str]| {
        let mut all = vec!["exec", "-T", "app"];
        all.extend_from_slice(args);
        compose_ok(&root, &dir, &env, &all).0
    };
    assert_eq!(exec(&["cat", "/built-with"]), "from-dot-env");
    assert_eq!(exec(&["cat", "/run/secrets/api_key"]), "k3y");
    assert_eq!(
        exec(&["cat", "/greeting", "/etc/greeting.conf"]),
        "hello k3y\nhello k3y\n"
    );
    assert_eq!(
        exec(&[
            "stat",
            "-c",
            "%a %u %g",
            "/run/secrets/api_key",
            "/run/secrets/owned"
        ]),
        "444 0 0\n400 5 7\n"
    );

    // `restart: true`: web follows db's restart, unless --no-deps.
    let started = |name: &str| inspect(&root, name)["State"]["StartedAt"].clone();
    let web_before = started("secrets-web-1");
    let (_, err) = compose_ok(&root, &dir, &env, &["restart", "--no-deps", "db"]);
    assert!(!err.contains("secrets-web-1"), "{err}");
    assert_eq!(started("secrets-web-1"), web_before);
    let (_, err) = compose_ok(&root, &dir, &env, &["restart", "db"]);
    assert!(
        err.contains(" Container secrets-web-1  Restarting"),
        "{err}"
    );
    let web_restarted = started("secrets-web-1");
    assert_ne!(web_restarted, web_before);
    // ... and its recreation by `up`.
    let (_, err) = compose_ok(&root, &dir, &env, &["up", "-d", "--force-recreate", "db"]);
    assert!(err.contains(" Container secrets-db-1  Recreated"), "{err}");
    assert!(err.contains(" Container secrets-web-1  Restarted"), "{err}");
    assert_ne!(started("secrets-web-1"), web_restarted);

    // An environment secret whose variable is unset makes no container.
    compose_ok(&root, &dir, &env, &["down", "-t", "1"]);
    let o = compose(&root, &dir, &[], &["up", "-d", "app"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("api_key comes from the environment variable API_KEY, which is not set"),
        "{err}"
    );
    assert_eq!(ok(&root, &["ps", "-aq"]), "");

    // A platform the image was not made for: docker's refusal.
    let o = compose(
        &root,
        &dir,
        &env,
        &["--profile", "foreign", "up", "-d", "other"],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(
            "does not match the specified platform: wanted linux/s390x, actual: linux/amd64"
        ),
        "{err}"
    );
    compose_ok(&root, &dir, &env, &["down", "-t", "1"]);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}

#[test]
fn build_cache_from_and_cache_to_travel_between_machines() {
    let Some((tmp, root)) = root_store() else {
        return;
    };
    let Some((_tmp2, fresh)) = root_store() else {
        return;
    };
    let dir = project_dir("cached", tmp.path());
    let cache = tmp.path().join("cache");
    let env = [("CACHE_DIR", cache.to_str().unwrap())];
    compose_ok(&root, &dir, &env, &["build"]);
    assert!(cache.join("index.json").is_file(), "no cache was exported");
    let (out, err) = compose_ok(&fresh, &dir, &env, &["build"]);
    assert!(
        format!("{out}{err}").contains("CACHED"),
        "the second machine ran the build: {out}{err}"
    );
    let stamp = |r: &Path| ok(r, &["run", "--rm", "--network", "none", "cached-app"]);
    assert_eq!(stamp(&root), stamp(&fresh));
}
