//! `berth build` end to end: every case folder under `testdata/build/` is a
//! context with a Dockerfile and a `case.json` saying what the build must
//! give (image config, the output of commands run in the image with
//! `berth run`) or how it must fail. Real builds, as root (CI runs as root).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

use busybox::berth;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/build")
}

fn strings(v: &Value, ctx: &Path) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| {
                    s.replace("{CTX}", &ctx.display().to_string())
                        .replace("{ARCH}", berth_arch())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn berth_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Runs one case; returns what went wrong.
fn run_case(root: &Path, work: &Path, name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let src = cases_dir().join(name);
    let case: Value = serde_json::from_slice(&std::fs::read(src.join("case.json")).unwrap())
        .unwrap_or_else(|e| panic!("{name}/case.json: {e}"));
    let ctx = work.join(name);
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(cp.success());
    if let Some(setup) = case["setup"].as_str() {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(setup)
            .current_dir(&ctx)
            .status()
            .unwrap();
        assert!(ok.success(), "{name}: setup failed");
    }
    for before in case["before"].as_array().cloned().unwrap_or_default() {
        let args = strings(&before, &ctx);
        let o = berth(root, &args);
        if !o.status.success() {
            problems.push(format!("before {args:?} failed: {}", text(&o.stderr)));
            return problems;
        }
    }
    let tag = format!("case-{name}");
    let mut args: Vec<String> = vec![
        String::from("build"),
        String::from("--progress=plain"),
        String::from("-t"),
        tag.clone(),
    ];
    args.extend(strings(&case["build"], &ctx));
    args.push(ctx.display().to_string());
    let o = berth(root, &args);
    let stderr = text(&o.stderr);
    if let Some(fails) = case.get("fails") {
        if o.status.success() {
            problems.push(String::from("the build succeeded; it must fail"));
        }
        for s in strings(fails, &ctx) {
            if !stderr.contains(&s) {
                problems.push(format!("the error does not say {s:?}:\n{stderr}"));
            }
        }
        let images = berth(
            root,
            &[String::from("images"), String::from("-q"), tag.clone()],
        );
        if !text(&images.stdout).trim().is_empty() {
            problems.push(String::from("a failed build tagged an image"));
        }
        return problems;
    }
    if !o.status.success() {
        problems.push(format!("build failed:\n{stderr}"));
        return problems;
    }
    for s in strings(&case["stderr"], &ctx) {
        if !stderr.contains(&s) {
            problems.push(format!("the build output does not say {s:?}"));
        }
    }
    let inspect = berth(root, &[String::from("inspect"), tag.clone()]);
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap_or(Value::Null);
    let config = &info[0]["Config"];
    if let Some(want) = case["config"].as_object() {
        for (k, v) in want {
            if &config[k] != v {
                problems.push(format!("Config.{k} is {}, not {v}", config[k]));
            }
        }
    }
    for e in strings(&case["env"], &ctx) {
        if !config["Env"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == &Value::String(e.clone())))
        {
            problems.push(format!("Config.Env lacks {e:?}: {}", config["Env"]));
        }
    }
    if let Some(a) = case["author"].as_str() {
        if info[0]["Author"] != a {
            problems.push(format!("Author is {}, not {a}", info[0]["Author"]));
        }
    }
    // The image config as stored (history and layers are not in inspect).
    let image_config: Value = info[0]["Id"]
        .as_str()
        .and_then(|id| id.strip_prefix("sha256:"))
        .and_then(|hex| std::fs::read(root.join("blobs/sha256").join(hex)).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    if let Some(n) = case["layers"].as_u64() {
        let got = image_config["rootfs"]["diff_ids"]
            .as_array()
            .map_or(0, |a| a.len());
        if got as u64 != n {
            problems.push(format!("the image has {got} layers, not {n}"));
        }
    }
    if let Some(want) = case["history"].as_array() {
        // The last entries, "(empty) " marking the ones without a layer.
        let got: Vec<String> = image_config["history"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        let by = h["created_by"].as_str().unwrap_or("");
                        if h["empty_layer"] == true {
                            format!("(empty) {by}")
                        } else {
                            by.to_string()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<String> = want
            .iter()
            .filter_map(|w| w.as_str().map(String::from))
            .collect();
        let tail = &got[got.len().saturating_sub(want.len())..];
        if tail != want.as_slice() {
            problems.push(format!(
                "history ends with\n  {}\nnot\n  {}",
                tail.join("\n  "),
                want.join("\n  ")
            ));
        }
    }
    for k in strings(&case["absent"], &ctx) {
        if !config[&k].is_null() {
            problems.push(format!("Config.{k} must be unset, is {}", config[&k]));
        }
    }
    for r in case["run"].as_array().cloned().unwrap_or_default() {
        let mut args: Vec<String> = vec![String::from("run"), String::from("--rm")];
        args.extend(strings(&r["flags"], &ctx));
        args.push(tag.clone());
        args.extend(strings(&r["cmd"], &ctx));
        let o = berth(root, &args);
        let want = r["stdout"]
            .as_str()
            .unwrap_or("")
            .replace("{ARCH}", berth_arch());
        let got = text(&o.stdout).trim().to_string();
        if got != want || !o.status.success() {
            problems.push(format!(
                "run {:?}: got {got:?} (exit {:?}, stderr {:?}), want {want:?}",
                r["cmd"],
                o.status.code(),
                text(&o.stderr)
            ));
        }
    }
    if let Some(secret) = case["not_in_layers"].as_str() {
        let archive = work.join(format!("{name}.tar"));
        let o = berth(
            root,
            &[
                String::from("save"),
                String::from("-o"),
                archive.display().to_string(),
                tag.clone(),
            ],
        );
        assert!(o.status.success(), "{name}: save: {}", text(&o.stderr));
        let bytes = std::fs::read(&archive).unwrap();
        if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
            problems.push(format!("{secret:?} ended up in the image"));
        }
    }
    problems
}

#[test]
fn build_cases_give_what_docker_gives() {
    if !is_root() {
        eprintln!("skipped: builds run containers, which need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox::busybox_store(tmp.path());
    let work = tmp.path().join("cases");
    std::fs::create_dir_all(&work).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("case.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the build cases are missing");
    let mut report = String::new();
    for name in &names {
        let problems = run_case(&root, &work, name);
        if !problems.is_empty() {
            report.push_str(&format!("\n== {name}\n{}\n", problems.join("\n")));
        }
    }
    assert!(report.is_empty(), "build cases failed:{report}");
}

/// A store with busybox and an empty context folder, or `None` (with the
/// reason printed) where builds cannot run.
fn build_setup() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !is_root() {
        eprintln!("skipped: builds need root here (CI runs as root)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox::busybox_store(tmp.path());
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    Some((tmp, root, ctx))
}

/// Builds `dockerfile` in `ctx`; the build must fail and say `needle`.
fn build_fails(root: &Path, ctx: &Path, dockerfile: &str, needle: &str) {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let o = build_in(root, ctx, &["-t", "must-fail"]);
    assert!(!o.status.success(), "{dockerfile:?} built");
    assert!(text(&o.stderr).contains(needle), "{}", text(&o.stderr));
}

fn build_in(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![String::from("build"), String::from("--progress=plain")];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(ctx.display().to_string());
    berth(root, &args)
}

/// The numbers of the steps a build printed as `CACHED`, by instruction.
fn cached_steps(o: &Output) -> Vec<String> {
    let err = text(&o.stderr);
    let mut titles: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut cached = Vec::new();
    for l in err.lines() {
        let Some((n, rest)) = l.split_once(' ') else {
            continue;
        };
        if rest == "CACHED" {
            if let Some(t) = titles.get(n) {
                cached.push(t.clone());
            }
        } else if rest.starts_with('[') {
            titles.insert(
                n.to_string(),
                rest.split_once("] ")
                    .map(|x| x.1)
                    .unwrap_or(rest)
                    .to_string(),
            );
        }
    }
    cached
}

#[test]
fn the_cache_follows_content_not_times() {
    let Some((_tmp, root, ctx)) = build_setup() else {
        return;
    };
    std::fs::write(ctx.join("a.txt"), "one").unwrap();
    std::fs::write(ctx.join("b.txt"), "bee").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG USED=x\nCOPY a.txt /a\nRUN echo $USED > /used\nCOPY b.txt /b\nRUN cat /a /b /used\n",
    )
    .unwrap();
    let first = build_in(&root, &ctx, &["-t", "cached"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(cached_steps(&first).is_empty());
    let id = |o: &Output| {
        text(&o.stderr)
            .lines()
            .find_map(|l| {
                l.split("writing image ")
                    .nth(1)
                    .map(|s| s.split(' ').next().unwrap_or("").to_string())
            })
            .unwrap_or_default()
    };

    // Nothing changed: every step is a hit and the image is the same.
    let again = build_in(&root, &ctx, &["-t", "cached"]);
    assert_eq!(cached_steps(&again).len(), 4, "{}", text(&again.stderr));
    assert_eq!(id(&first), id(&again));

    // Touching a file changes its times, not its content.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let touched = build_in(&root, &ctx, &["-t", "cached"]);
    assert_eq!(cached_steps(&touched).len(), 4, "{}", text(&touched.stderr));

    // One byte of b.txt: the steps from COPY b.txt on run again.
    std::fs::write(ctx.join("b.txt"), "bea").unwrap();
    let changed = build_in(&root, &ctx, &["-t", "cached"]);
    assert_eq!(
        cached_steps(&changed),
        vec!["COPY a.txt /a", "RUN echo $USED > /used"],
        "{}",
        text(&changed.stderr)
    );

    // A mode change is a change too.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("b.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let moded = build_in(&root, &ctx, &["-t", "cached"]);
    assert_eq!(cached_steps(&moded).len(), 2, "{}", text(&moded.stderr));

    // A build arg the RUN uses invalidates it, not the COPY before it.
    let arg = build_in(&root, &ctx, &["-t", "cached", "--build-arg", "USED=y"]);
    assert_eq!(
        cached_steps(&arg),
        vec!["COPY a.txt /a"],
        "{}",
        text(&arg.stderr)
    );

    // --no-cache runs everything; builder prune forgets everything.
    let nc = build_in(&root, &ctx, &["-t", "cached", "--no-cache"]);
    assert!(cached_steps(&nc).is_empty());
    let prune = berth(
        &root,
        &[
            String::from("builder"),
            String::from("prune"),
            String::from("-f"),
        ],
    );
    assert!(prune.status.success(), "{}", text(&prune.stderr));
    assert!(text(&prune.stdout).contains("Deleted build cache objects"));
    let after = build_in(&root, &ctx, &["-t", "other"]);
    assert!(cached_steps(&after).is_empty(), "{}", text(&after.stderr));
    let check = berth(&root, &[String::from("images"), String::from("--verify")]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn builds_with_source_date_epoch_are_reproducible() {
    if !is_root() {
        eprintln!("skipped: builds need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = cases_dir().join("../examples/hello");
    let mut ids = Vec::new();
    for n in 0..2 {
        let dir = tmp.path().join(format!("r{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let root = busybox::busybox_store(&dir);
        let iid = tmp.path().join(format!("iid{n}"));
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .args(["build", "-q", "--iidfile"])
            .arg(&iid)
            .arg(&ctx)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        // -q prints the ID only; the ID file holds the same.
        let printed = text(&o.stdout).trim().to_string();
        assert!(
            printed.starts_with("sha256:") && o.stderr.is_empty(),
            "{printed} / {}",
            text(&o.stderr)
        );
        assert_eq!(std::fs::read_to_string(&iid).unwrap(), printed);
        ids.push(printed);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn outputs_stdin_and_dockerfile_flags() {
    let Some((tmp, root, ctx)) = build_setup() else {
        return;
    };
    std::fs::write(ctx.join("f.txt"), "file").unwrap();
    std::fs::write(
        ctx.join("other.Dockerfile"),
        "FROM busybox\nCOPY f.txt /f\n",
    )
    .unwrap();

    // -f elsewhere, --output local and oci; the store gets no tag then.
    let local = tmp.path().join("out");
    let oci = tmp.path().join("img.tar");
    let o = build_in(
        &root,
        &ctx,
        &[
            "-f",
            &ctx.join("other.Dockerfile").display().to_string(),
            "-t",
            "not-stored",
            "-o",
            &format!("type=local,dest={}", local.display()),
            "--output",
            &format!("type=oci,dest={}", oci.display()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(local.join("f")).unwrap(), "file");
    assert!(local.join("bin/busybox").exists());
    let skopeo = Command::new("skopeo")
        .args(["inspect", &format!("oci-archive:{}", oci.display())])
        .output();
    if let Ok(s) = skopeo {
        assert!(s.status.success(), "skopeo: {}", text(&s.stderr));
    }

    // The Dockerfile on stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["build", "-q", "-t", "from-stdin", "-f", "-"])
        .arg(&ctx)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nCOPY f.txt /stdin-f\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = berth(
        &root,
        &[
            String::from("run"),
            String::from("--rm"),
            String::from("from-stdin"),
            String::from("cat"),
            String::from("/stdin-f"),
        ],
    );
    assert_eq!(text(&r.stdout), "file");

    // The context as a tarball on stdin.
    let tarball = tmp.path().join("ctx.tar");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY f.txt /tar-f\n").unwrap();
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["build", "-q", "-t", "tar-ctx", "-"])
        .stdin(std::fs::File::open(&tarball).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = berth(
        &root,
        &[
            String::from("run"),
            String::from("--rm"),
            String::from("tar-ctx"),
            String::from("cat"),
            String::from("/tar-f"),
        ],
    );
    assert_eq!(text(&r.stdout), "file");

    // Another platform is a clear error.
    let o = build_in(&root, &ctx, &["--platform", "linux/s390x"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("native platform"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn an_interrupted_build_tags_nothing_and_leaves_nothing_running() {
    let Some((_tmp, root, ctx)) = build_setup() else {
        return;
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo before > /before\nRUN sleep 3217\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["build", "--progress=plain", "-t", "interrupted"])
        .arg(&ctx)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = || {
        let ps = Command::new("pgrep")
            .args(["-f", "sleep 3217"])
            .output()
            .unwrap();
        !ps.stdout.is_empty()
    };
    let start = std::time::Instant::now();
    while !sleeping() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(sleeping(), "the RUN step never started");
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!sleeping(), "the RUN step outlived the build");
    let images = berth(
        &root,
        &[
            String::from("images"),
            String::from("-q"),
            String::from("interrupted"),
        ],
    );
    assert!(
        text(&images.stdout).trim().is_empty(),
        "an interrupted build tagged an image"
    );
    let check = berth(&root, &[String::from("images"), String::from("--verify")]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    // The next build reaps the dead one's mount and keeps its cache.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo before > /before\n",
    )
    .unwrap();
    let o = build_in(&root, &ctx, &["-t", "after"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(cached_steps(&o).len(), 1, "{}", text(&o.stderr));
    let left: Vec<_> = std::fs::read_dir(root.join("mounts"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
}

/// A one-file HTTP server on loopback: `/files/tool.txt` with a
/// Last-Modified header, 404 for anything else. Returns its address and the
/// number of requests it served.
fn http_server(body: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut s = stream;
            if request.starts_with("GET /files/tool.txt ") {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            } else {
                let _ = write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        }
    });
    (addr, hits)
}

#[test]
fn add_downloads_urls_and_checks_checksums() {
    if !is_root() {
        eprintln!("skipped: builds need root here (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox::busybox_store(tmp.path());
    let (addr, hits) = http_server("downloaded content\n");
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let url = format!("http://{addr}/files/tool.txt");
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(b"downloaded content\n"));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD {url} /dl/\nADD --checksum=sha256:{sum} {url} /named\n"),
    )
    .unwrap();
    let o = build_in(&root, &ctx, &["-t", "fetched"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = berth(
        &root,
        &[
            "run",
            "--rm",
            "fetched",
            "sh",
            "-c",
            "cat /dl/tool.txt /named; stat -c '%a %Y' /dl/tool.txt",
        ]
        .map(String::from),
    );
    assert_eq!(
        text(&r.stdout),
        "downloaded content\ndownloaded content\n600 784111777\n"
    );

    // With a checksum a cached step needs no download; without, it does.
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let again = build_in(&root, &ctx, &["-t", "fetched"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(cached_steps(&again).len(), 2);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst) - before, 1);

    // A wrong checksum and a 404 are clear errors; COPY does not fetch.
    let wrong = "0".repeat(64);
    let dockerfile = format!("FROM busybox\nADD --checksum=sha256:{wrong} {url} /x\n");
    build_fails(&root, &ctx, &dockerfile, "digest mismatch");
    let dockerfile = format!("FROM busybox\nADD http://{addr}/nothing /x\n");
    build_fails(&root, &ctx, &dockerfile, "invalid response status 404");
    build_fails(
        &root,
        &ctx,
        &format!("FROM busybox\nCOPY {url} /x\n"),
        "use ADD",
    );
}

#[test]
fn flags_labels_filters_and_persistent_cache_mounts() {
    let Some((_tmp, root, ctx)) = build_setup() else {
        return;
    };
    std::fs::write(ctx.join("kept.txt"), "kept").unwrap();
    std::fs::write(ctx.join("dropped.txt"), "dropped").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "kept.txt\n").unwrap();
    // <Dockerfile>.dockerignore beside the Dockerfile wins over .dockerignore.
    std::fs::write(ctx.join("app.Dockerfile.dockerignore"), "dropped.txt\n").unwrap();
    std::fs::write(
        ctx.join("app.Dockerfile"),
        "FROM busybox AS base\nRUN cat /proc/sys/kernel/random/uuid > /base\n\
         FROM base\nWORKDIR /srv/data\nCOPY . /ctx/\n\
         RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /runs\n",
    )
    .unwrap();
    let file = ctx.join("app.Dockerfile").display().to_string();
    let o = build_in(
        &root,
        &ctx,
        &[
            "-f",
            &file,
            "-t",
            "one:1",
            "-t",
            "two:2",
            "--label",
            "team=platform",
            "--label",
            "empty=",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let run = |image: &str, cmd: &str| {
        let o = berth(
            &root,
            &["run", "--rm", image, "sh", "-c", cmd].map(String::from),
        );
        text(&o.stdout).trim().to_string()
    };
    assert_eq!(run("one:1", "ls /ctx | grep txt"), "kept.txt");
    assert_eq!(
        run("two:2", "cat /runs; pwd; stat -c %a /srv/data"),
        "1\n/srv/data\n755"
    );
    let inspect = berth(&root, &[String::from("inspect"), String::from("one:1")]);
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info[0]["Config"]["Labels"]["team"], "platform");
    assert_eq!(info[0]["Config"]["Labels"]["empty"], "");
    assert_eq!(info[0]["RepoTags"].as_array().map(|a| a.len()), Some(2));

    // --no-cache-filter reruns the named stage only; the cache mount keeps
    // its content across builds.
    let o = build_in(
        &root,
        &ctx,
        &["-f", &file, "-t", "one:1", "--no-cache-filter", "base"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cached = cached_steps(&o);
    assert!(
        !cached.iter().any(|c| c.starts_with("RUN cat /proc")),
        "{cached:?}"
    );
    let o = build_in(&root, &ctx, &["-f", &file, "-t", "one:1", "--no-cache"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(run("one:1", "cat /runs"), "3");
}

#[test]
fn independent_stages_run_at_the_same_time() {
    if !is_root() {
        eprintln!("skipped: builds need root here (CI runs as root)");
        return;
    }
    if std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        < 2
    {
        eprintln!("skipped: one core runs one stage at a time");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox::busybox_store(tmp.path());
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // Each stage notes when it started and ended (the host's uptime).
    let stage = |name: &str| {
        format!(
            "FROM busybox AS {name}\nRUN cut -d' ' -f1 /proc/uptime > /start && sleep 1 && cut -d' ' -f1 /proc/uptime > /end\n"
        )
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "{}{}FROM busybox\nCOPY --from=one /start /one-start\nCOPY --from=one /end /one-end\nCOPY --from=two /start /two-start\nCOPY --from=two /end /two-end\n",
            stage("one"),
            stage("two")
        ),
    )
    .unwrap();
    let o = build_in(&root, &ctx, &["-t", "parallel"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let read = |f: &str| -> f64 {
        let o = berth(
            &root,
            &["run", "--rm", "parallel", "cat", f].map(String::from),
        );
        text(&o.stdout).trim().parse().unwrap()
    };
    let (s1, e1, s2, e2) = (
        read("/one-start"),
        read("/one-end"),
        read("/two-start"),
        read("/two-end"),
    );
    assert!(
        s1 < e2 && s2 < e1,
        "the stages ran one after the other: {s1}-{e1} and {s2}-{e2}"
    );
}

#[test]
fn proxy_build_args_stay_out_of_history_and_cache_keys() {
    let Some((_tmp, root, ctx)) = build_setup() else {
        return;
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo \"$http_proxy $HTTP_PROXY $no_proxy\" > /p\n",
    )
    .unwrap();
    let first = build_in(
        &root,
        &ctx,
        &[
            "-t",
            "proxied",
            "--build-arg",
            "http_proxy=http://first.example:3128",
            "--build-arg",
            "NO_PROXY=local",
        ],
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(!text(&first.stderr).contains("not consumed"));
    let o = berth(&root, &["run", "--rm", "proxied", "cat", "/p"]);
    assert_eq!(
        text(&o.stdout).trim(),
        "http://first.example:3128 http://first.example:3128 local"
    );
    let history = berth(&root, &["history", "--no-trunc", "proxied"]);
    assert!(history.status.success());
    assert!(!text(&history.stdout).contains("first.example"));
    // Another proxy is not another step: the RUN is a cache hit.
    let second = build_in(
        &root,
        &ctx,
        &[
            "-t",
            "proxied",
            "--build-arg",
            "http_proxy=http://second.example:3128",
        ],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        cached_steps(&second),
        vec!["RUN echo \"$http_proxy $HTTP_PROXY $no_proxy\" > /p"],
        "{}",
        text(&second.stderr)
    );
}
