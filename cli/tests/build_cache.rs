//! `--cache-to` / `--cache-from` between machines: each test store is a CI
//! machine with its own empty store (busybox only), the cache goes through a
//! real `docker-registry` on 127.0.0.1 or an OCI layout folder. The project
//! (`testdata/cache/three-stages`) writes a timestamp in every RUN, so a
//! step that ran again shows in the image.

#[path = "../../testdata/support/busybox.rs"]
mod busybox;
#[path = "../../testdata/support/registry.rs"]
mod registry;

use registry::{text, ClientEnv, FaultProxy, Faults, Registry, RegistryOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Both streams of a command that must have succeeded (a build's log is
/// on stderr).
#[track_caller]
fn ok(o: Output) -> String {
    let err = text(&o.stderr);
    format!("{}{err}", registry::ok(o))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A copy of the project to change files in.
fn project(into: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/cache/three-stages");
    let dst = into.join("project");
    std::fs::create_dir_all(dst.join("src")).unwrap();
    for f in ["Dockerfile", "notes.txt", "src/a", "src/b"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

/// A machine: a store of its own holding busybox.
fn machine(d: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(d.join(name)).unwrap();
    busybox::busybox_store(&d.join(name))
}

fn build(env: &ClientEnv, root: &Path, ctx: &Path, tag: &str, extra: &[&str]) -> String {
    let mut args = vec!["build", "--progress", "plain", "-t", tag];
    args.extend_from_slice(extra);
    let ctx = ctx.to_string_lossy().to_string();
    args.push(&ctx);
    ok(env.berth(root, &args))
}

/// The titles of the RUN and COPY steps of a plain build log, each with
/// whether it said `CACHED`.
fn steps(log: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((n, title)) = rest.split_once(' ') else {
            continue;
        };
        if title.starts_with('[') && (title.contains("] RUN ") || title.contains("] COPY ")) {
            let cached = log.lines().any(|x| x == format!("#{n} CACHED"));
            out.push((title.to_string(), cached));
        }
    }
    out
}

fn uncached(log: &str) -> Vec<String> {
    steps(log)
        .into_iter()
        .filter(|(_, c)| !c)
        .map(|(t, _)| t)
        .collect()
}

fn image_id(env: &ClientEnv, root: &Path, tag: &str) -> String {
    let insp = ok(env.berth(root, &["image", "inspect", tag]));
    let v: Value = serde_json::from_str(&insp).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

/// What the image's RUN steps wrote.
fn stamps(env: &ClientEnv, root: &Path, tag: &str) -> String {
    ok(env.berth(
        root,
        &["run", "--rm", tag, "cat", "/base-stamp", "/final-stamp"],
    ))
}

/// The blobs the registry served since `from` lines of its log.
fn blob_gets(reg: &Registry, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default();
    log.lines()
        .skip(from)
        .filter(|l| l.contains("response completed") && l.contains("GET"))
        .filter_map(|l| {
            let i = l.find("/blobs/sha256:")?;
            Some(l[i + 7..i + 7 + 71].to_string())
        })
        .collect()
}

fn log_lines(reg: &Registry) -> usize {
    std::fs::read_to_string(reg.dir.join("registry.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn layers_of(env: &ClientEnv, root: &Path, tag: &str) -> BTreeSet<String> {
    let insp = ok(env.berth(root, &["image", "inspect", tag]));
    let v: Value = serde_json::from_str(&insp).unwrap();
    v[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_fresh_machine_builds_from_another_ones_cache_in_every_mode() {
    assert!(
        is_root(),
        "the build cache tests run builds: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = Registry::start(
        &d.join("reg"),
        RegistryOptions {
            log_requests: true,
            ..Default::default()
        },
    );
    let host = reg.host();
    let env = ClientEnv::new(&d.join("client"));
    let ctx = project(d);
    let local = d.join("local-cache");
    let image = format!("{host}/app:v1");

    // Machine A: cold, exporting every kind of cache.
    let a = machine(d, "a");
    let log = build(
        &env,
        &a,
        &ctx,
        &image,
        &[
            "--push",
            "--cache-to",
            &format!("type=registry,ref={host}/cache:max,mode=max,cache-mounts=true"),
            "--cache-to",
            &format!("type=registry,ref={host}/cache:min"),
            "--cache-to",
            &format!("type=local,dest={},mode=max", local.display()),
            "--cache-to",
            "type=inline",
        ],
    );
    assert_eq!(uncached(&log).len(), 6, "{log}");
    assert!(log.contains("exporting cache to registry"), "{log}");
    let id = image_id(&env, &a, &image);
    let stamp = stamps(&env, &a, &image);
    // The cache is an OCI image manifest any tool reads.
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/cache:max"))
        .output()
        .expect("skopeo runs");
    let m: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["config"]["mediaType"], "application/vnd.berth.cache.v1+json",
        "{m}"
    );
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    // Machine B, empty, from mode=max: every step cached, no RUN ran, the
    // same image, and only the image's own layers downloaded.
    let b = machine(d, "b");
    let before = log_lines(&reg);
    let log = build(
        &env,
        &b,
        &ctx,
        "app",
        &[
            "--cache-from",
            &format!("type=registry,ref={host}/cache:max"),
        ],
    );
    assert!(uncached(&log).is_empty(), "{log}");
    assert_eq!(steps(&log).len(), 6, "{log}");
    assert_eq!(image_id(&env, &b, "app"), id);
    assert_eq!(stamps(&env, &b, "app"), stamp);
    let fetched: BTreeSet<String> = blob_gets(&reg, before).into_iter().collect();
    // busybox is local; the assets stage's two layers are never needed:
    // the image's four built layers and the cache's config.
    assert_eq!(fetched.len(), 5, "{fetched:?}");
    assert_eq!(layers_of(&env, &b, "app").len(), 5);

    // Machine C from the layout folder; D from the image's inline cache;
    // E from mode=min. For the last two the assets stage (not the image's)
    // runs again, and gives files that keep the rest cached.
    // (and from another folder: keys hold no paths)
    let c = machine(d, "c");
    let elsewhere = project(&d.join("elsewhere/deeper"));
    let log = build(
        &env,
        &c,
        &elsewhere,
        "app",
        &[
            "--cache-from",
            &format!("type=local,src={}", local.display()),
        ],
    );
    assert!(uncached(&log).is_empty(), "{log}");
    assert_eq!(image_id(&env, &c, "app"), id);
    for (name, from) in [("d", image.clone()), ("e", format!("{host}/cache:min"))] {
        let m = machine(d, name);
        let log = build(&env, &m, &ctx, "app", &["--cache-from", &from]);
        let ran = uncached(&log);
        assert!(
            ran.len() == 2 && ran.iter().all(|t| t.starts_with("[assets ")),
            "{from}: {log}"
        );
        assert_eq!(image_id(&env, &m, "app"), id, "{from}");
        assert_eq!(stamps(&env, &m, "app"), stamp, "{from}");
    }

    // One changed file re-runs only the steps after it.
    let from_max = format!("type=registry,ref={host}/cache:max");
    let rebuild_b = || build(&env, &b, &ctx, "app", &["--cache-from", &from_max]);
    std::fs::write(ctx.join("notes.txt"), "second notes\n").unwrap();
    let log = rebuild_b();
    let ran = uncached(&log);
    assert!(ran.len() == 1 && ran[0].contains("COPY notes.txt"), "{log}");
    assert_eq!(stamps(&env, &b, "app"), stamp);
    // A source of the assets stage: it and everything from the COPY --from on
    // runs, the base stage stays cached, and the cache mount's folder comes
    // from machine A (cache-mounts=true).
    std::fs::write(ctx.join("src/a"), "uno\n").unwrap();
    let log = rebuild_b();
    let ran = uncached(&log);
    assert_eq!(ran.len(), 5, "{log}");
    assert!(
        steps(&log)
            .iter()
            .any(|(t, c)| t.starts_with("[base 2/2]") && *c),
        "the base stage's RUN stays cached: {log}"
    );
    let listed = ok(env.berth(&b, &["run", "--rm", "app", "cat", "/cache-list"]));
    assert!(
        listed.contains("run-"),
        "cache mount not restored: {listed:?}"
    );
    let out = ok(env.berth(&b, &["run", "--rm", "app"]));
    assert_eq!(out, "uno\ntwo\n");

    // Two caches of the same steps (machine F's own, built without cache):
    // the first source given wins, per step.
    std::fs::write(ctx.join("src/a"), "one\n").unwrap();
    std::fs::write(ctx.join("notes.txt"), "first notes\n").unwrap();
    let f = machine(d, "f");
    let other = d.join("other-cache");
    build(
        &env,
        &f,
        &ctx,
        "app",
        &[
            "--no-cache",
            "--cache-to",
            &format!("type=local,dest={},mode=max", other.display()),
        ],
    );
    let f_stamp = stamps(&env, &f, "app");
    assert_ne!(f_stamp, stamp);
    let from_other = format!("type=local,src={}", other.display());
    let from_a = from_max.clone();
    for (name, first, second, want) in [
        ("g", &from_other, &from_a, &f_stamp),
        ("h", &from_a, &from_other, &stamp),
    ] {
        let m = machine(d, name);
        let log = build(
            &env,
            &m,
            &ctx,
            "app",
            &["--cache-from", first, "--cache-from", second],
        );
        assert!(uncached(&log).is_empty(), "{log}");
        assert_eq!(&stamps(&env, &m, "app"), want, "{first} first");
    }
}

/// The document of a layout folder's cache, and where its blobs are.
fn layout_document(dir: &Path) -> (Value, Value) {
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(&m)).unwrap()).unwrap();
    let c = manifest["config"]["digest"].as_str().unwrap().to_string();
    let doc: Value = serde_json::from_slice(&std::fs::read(blob(&c)).unwrap()).unwrap();
    (manifest, doc)
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Writes `doc` as the layout's cache (new config, manifest and index).
fn write_layout_document(dir: &Path, manifest: &mut Value, doc: &Value) {
    let blobs = dir.join("blobs/sha256");
    let config = serde_json::to_vec(doc).unwrap();
    let cd = sha256(&config);
    std::fs::write(blobs.join(cd.trim_start_matches("sha256:")), &config).unwrap();
    manifest["config"]["digest"] = Value::String(cd);
    manifest["config"]["size"] = Value::from(config.len());
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = sha256(&mbytes);
    std::fs::write(blobs.join(md.trim_start_matches("sha256:")), &mbytes).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mbytes.len()}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn concurrent_exports_keep_both_and_bad_caches_only_cost_a_rebuild() {
    assert!(
        is_root(),
        "the build cache tests run builds: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = Registry::start(&d.join("reg"), RegistryOptions::default());
    let host = reg.host();
    let env = ClientEnv::new(&d.join("client"));
    let shared = format!("type=registry,ref={host}/cache:shared,mode=max");

    // Two jobs build two projects at once, exporting to one ref.
    let ctx1 = project(&d.join("p1"));
    let ctx2 = project(&d.join("p2"));
    std::fs::write(ctx2.join("src/b"), "deux\n").unwrap();
    let (a, b) = (machine(d, "a"), machine(d, "b"));
    let jobs: Vec<_> = [(a.clone(), ctx1.clone()), (b.clone(), ctx2.clone())]
        .into_iter()
        .map(|(root, ctx)| {
            let shared = shared.clone();
            let env = ClientEnv::new(&env.dir);
            std::thread::spawn(move || {
                build(&env, &root, &ctx, "app", &["--cache-to", &shared]);
            })
        })
        .collect();
    for j in jobs {
        j.join().unwrap();
    }
    let c = machine(d, "c");
    for ctx in [&ctx1, &ctx2] {
        let log = build(&env, &c, ctx, "app", &["--cache-from", &shared]);
        assert!(uncached(&log).is_empty(), "an export was lost: {log}");
    }

    // A missing ref and an unreachable registry: one warning each, and the
    // build goes on (the shared cache after them still serves).
    let log = build(
        &env,
        &c,
        &ctx1,
        "app2",
        &[
            "--cache-from",
            &format!("{host}/cache:missing"),
            "--cache-from",
            "127.0.0.1:1/cache:gone",
        ],
    );
    assert_eq!(log.matches("cache type=registry,ref=").count(), 2, "{log}");
    assert!(log.contains("not found"), "{log}");

    // A layout cache whose layer blob was truncated, one whose layer was
    // swapped for another (digest and all), one of another key scheme: each
    // a warning at most, the steps run, and the image is what a build
    // without cache makes.
    let local = d.join("local");
    build(
        &env,
        &a,
        &ctx1,
        "app",
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", local.display()),
        ],
    );
    let (manifest, doc) = layout_document(&local);
    let entries = doc["entries"].as_object().unwrap();
    // The final RUN's layer: the one entry with four layers beyond busybox.
    let layers = |e: &Value| e["layers"].as_array().unwrap().clone();
    let deepest = entries
        .values()
        .max_by_key(|e| layers(e).len())
        .unwrap()
        .clone();
    let victim = layers(&deepest)[3]["digest"].as_str().unwrap().to_string();
    let other = layers(&deepest)[1]["digest"].as_str().unwrap().to_string();
    let blob = |d: &Path, x: &str| d.join("blobs/sha256").join(x.trim_start_matches("sha256:"));

    let truncated = d.join("truncated");
    copy_dir(&local, &truncated);
    let data = std::fs::read(blob(&truncated, &victim)).unwrap();
    std::fs::write(blob(&truncated, &victim), &data[..data.len() / 2]).unwrap();

    let swapped = d.join("swapped");
    copy_dir(&local, &swapped);
    let (mut sm, mut sdoc) = layout_document(&swapped);
    for e in sdoc["entries"].as_object_mut().unwrap().values_mut() {
        for l in e["layers"].as_array_mut().unwrap() {
            if l["digest"] == victim.as_str() {
                l["digest"] = Value::String(other.clone());
                l["size"] = Value::from(std::fs::metadata(blob(&swapped, &other)).unwrap().len());
            }
        }
    }
    write_layout_document(&swapped, &mut sm, &sdoc);

    let foreign = d.join("foreign");
    copy_dir(&local, &foreign);
    let (mut fm, mut fdoc) = layout_document(&foreign);
    fdoc["keyScheme"] = Value::String("berth-cache-v0".into());
    write_layout_document(&foreign, &mut fm, &fdoc);
    drop(manifest);

    let clean = machine(d, "clean");
    build(&env, &clean, &ctx1, "app", &["--no-cache"]);
    let want = ok(env.berth(
        &clean,
        &["run", "--rm", "app", "cat", "/assets.out", "/notes.txt"],
    ));
    for bad in [&truncated, &swapped, &foreign] {
        let m = machine(&d.join("bad"), bad.file_name().unwrap().to_str().unwrap());
        let log = build(
            &env,
            &m,
            &ctx1,
            "app",
            &["--cache-from", &format!("type=local,src={}", bad.display())],
        );
        assert!(!uncached(&log).is_empty(), "{}: {log}", bad.display());
        assert!(log.contains("WARNING"), "{}: {log}", bad.display());
        let got = ok(env.berth(
            &m,
            &["run", "--rm", "app", "cat", "/assets.out", "/notes.txt"],
        ));
        assert_eq!(got, want, "{}", bad.display());
        let listed = ok(env.berth(&m, &["images", "--verify"]));
        assert!(listed.contains("app"), "{listed}");
    }

    // A registry answering 500: retried, then reported after the image was
    // built and tagged; ignore-error=true makes it a warning.
    let proxy = FaultProxy::start(reg.port);
    let via = proxy.host();
    proxy.set(Faults {
        fail_requests: 2,
        ..Default::default()
    });
    let export_via = |tag: &str| {
        let to = format!("type=registry,ref={via}/cache:{tag},mode=max");
        build(&env, &a, &ctx1, "app", &["--cache-to", &to])
    };
    export_via("flaky");
    // Connections cut midway through the export: resumed or retried, and
    // what arrived is a whole cache a fresh machine builds from.
    let fired_before = proxy.fired.load(std::sync::atomic::Ordering::SeqCst);
    proxy.set(Faults {
        cuts: 3,
        cut_after: 1500,
        ..Default::default()
    });
    export_via("cut");
    assert!(proxy.fired.load(std::sync::atomic::Ordering::SeqCst) > fired_before);
    let fresh = machine(d, "after-cuts");
    let log = build(
        &env,
        &fresh,
        &ctx1,
        "app",
        &[
            "--cache-from",
            &format!("type=registry,ref={host}/cache:cut"),
        ],
    );
    assert!(uncached(&log).is_empty(), "{log}");
    proxy.set(Faults {
        fail_requests: 1000,
        ..Default::default()
    });
    let out = env.berth(
        &a,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "app:after-500",
            "--cache-to",
            &format!("type=registry,ref={via}/cache:down"),
            ctx1.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("failed to export cache"),
        "{}",
        text(&out.stderr)
    );
    ok(env.berth(&a, &["image", "inspect", "app:after-500"]));
    let log = build(
        &env,
        &a,
        &ctx1,
        "app:after-500",
        &[
            "--cache-to",
            &format!("type=registry,ref={via}/cache:down,ignore-error=true"),
        ],
    );
    assert!(
        log.contains("WARNING") && log.contains("failed to export cache"),
        "{log}"
    );
}
