//! Pull, push and login against real registries (Debian's `docker-registry`
//! on 127.0.0.1): anonymous, htpasswd basic auth, token auth with a test
//! token server, TLS with a test CA, a fault-injecting proxy, and mirrors
//! for Docker Hub names. skopeo reads what berth pushed and pushes what berth
//! pulls. Every pulled image is run.

#[path = "../../testdata/support/busybox.rs"]
mod busybox;
#[path = "../../testdata/support/registry.rs"]
mod registry;

use registry::{
    ok, text, ClientEnv, FaultProxy, Faults, Registry, RegistryOptions, TestCa, TokenServer,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

#[track_caller]
fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure\nstdout: {}",
        text(&o.stdout)
    );
    text(&o.stderr)
}

fn skopeo(args: &[&str]) -> Output {
    std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs")
}

fn login(env: &ClientEnv, root: &Path, host: &str, password: &str) -> Output {
    login_with(env.command(root), host, password)
}

/// `berth login -u USER --password-stdin HOST` through `cmd`, the password
/// written to its STDIN.
fn login_with(mut cmd: std::process::Command, host: &str, password: &str) -> Output {
    let mut child = cmd
        .args(["login", "-u", registry::USER, "--password-stdin", host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Pulls `image` into a new store and runs `cat /etc/passwd` in it.
#[track_caller]
fn pull_and_run(env: &ClientEnv, dir: &Path, image: &str) -> std::path::PathBuf {
    let root = dir.join(format!("pulled-{}", image.replace(['/', ':', '@'], "_")));
    let out = ok(env.berth(&root, &["pull", image]));
    assert!(out.contains("Pull complete"), "{out}");
    let ran = ok(env.berth(&root, &["run", "--rm", image, "cat", "/etc/passwd"]));
    assert!(ran.contains("root:x:0:0"), "{ran}");
    // Every blob re-hashed: the listing comes only when all match.
    let listed = ok(env.berth(&root, &["images", "--verify", "--format", "json"]));
    let name = image.rsplit_once(['@', ':']).map(|x| x.0).unwrap_or(image);
    assert!(listed.contains(name), "{listed}");
    root
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A registry set up as `opts`, a client environment, and a store holding
/// busybox, also tagged as `<registry>/<name>`.
fn setup(d: &Path, opts: RegistryOptions, name: &str) -> (Registry, ClientEnv, PathBuf, String) {
    let reg = Registry::start(&d.join("reg"), opts);
    let env = ClientEnv::new(&d.join("client"));
    let root = busybox::busybox_store(d);
    let image = format!("{}/{name}", reg.host());
    ok(env.berth(&root, &["tag", "busybox", &image]));
    (reg, env, root, image)
}

#[test]
fn push_pull_and_run_with_an_anonymous_registry_and_skopeo_both_ways() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (reg, env, root, image) = setup(d, RegistryOptions::default(), "test/busybox:v1");
    let host = reg.host();

    let out = ok(env.berth(&root, &["push", &image]));
    assert!(
        out.contains(&format!(
            "The push refers to repository [{host}/test/busybox]"
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {out}"))
        .to_string();
    // Every blob is answered by HEAD the second time.
    let again = ok(env.berth(&root, &["push", &image]));
    assert!(
        again.contains("Layer already exists") && !again.contains("Pushed"),
        "{again}"
    );

    // skopeo reads what berth pushed.
    let insp = ok(skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&insp).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    let oci_copy = d.join("skopeo-oci");
    ok(skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:copied", oci_copy.display()),
    ]));

    // A fresh store pulls it and runs it; a second pull changes nothing.
    let pulled = pull_and_run(&env, d, &image);
    let up = ok(env.berth(&pulled, &["pull", &image]));
    assert!(up.contains("Image is up to date"), "{up}");
    let insp = ok(env.berth(&pulled, &["inspect", &image]));
    assert!(
        insp.contains(&format!("{host}/test/busybox@{digest}")),
        "{insp}"
    );
    // By digest too.
    let by_digest = format!("{host}/test/busybox@{digest}");
    let r2 = d.join("by-digest");
    ok(env.berth(&r2, &["pull", &by_digest]));
    ok(env.berth(&r2, &["run", "--rm", &by_digest, "true"]));

    // Another repository of the same registry mounts the blobs.
    let other = format!("{host}/other/busybox:v1");
    ok(env.berth(&root, &["tag", "busybox", &other]));
    let mounted = ok(env.berth(&root, &["push", &other]));
    assert!(mounted.contains("Mounted from test/busybox"), "{mounted}");

    // What skopeo pushes, from a docker-archive berth saved and from berth's
    // own OCI layout, pulls and runs with berth.
    let archive = d.join("busybox.tar");
    ok(env.berth(&root, &["save", "-o", archive.to_str().unwrap(), "busybox"]));
    let from_archive = format!("{host}/peer/archive:1");
    ok(skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{from_archive}"),
    ]));
    pull_and_run(&env, d, &from_archive);
    let from_layout = format!("{host}/peer/layout:1");
    ok(skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:docker.io/library/busybox:latest", root.display()),
        &format!("docker://{from_layout}"),
    ]));
    let layout_root = pull_and_run(&env, d, &from_layout);
    // A pulled image keeps the registry's manifest, so skopeo reads the store.
    ok(skopeo(&[
        "inspect",
        &format!("oci:{}:{from_layout}", layout_root.display()),
    ]));

    // A build pulls its missing base and pushes what it made.
    let ctx = d.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n"),
    )
    .unwrap();
    let built = format!("{host}/test/built:1");
    let broot = d.join("builder");
    let b = ok(env.berth(
        &broot,
        &[
            "build",
            "--progress",
            "plain",
            "--push",
            "-t",
            &built,
            ctx.to_str().unwrap(),
        ],
    ));
    assert!(b.contains("1: digest: sha256:"), "{b}");
    let r3 = d.join("run-built");
    ok(env.berth(&r3, &["pull", &built]));
    assert_eq!(ok(env.berth(&r3, &["run", "--rm", &built])).trim(), "built");
    // --output type=registry does the same.
    let built2 = format!("{host}/test/built:2");
    ok(env.berth(
        &broot,
        &[
            "build",
            "-q",
            "--output",
            &format!("type=registry,name={built2}"),
            ctx.to_str().unwrap(),
        ],
    ));
    ok(skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{built2}"),
    ]));

    // build --pull takes the registry's newer base; without it the store's
    // copy stays in use.
    let base_ctx = d.join("base-v2");
    std::fs::create_dir_all(&base_ctx).unwrap();
    std::fs::write(
        base_ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo v2 > /base-version\n",
    )
    .unwrap();
    ok(env.berth(
        &root,
        &["build", "-q", "-t", &image, base_ctx.to_str().unwrap()],
    ));
    ok(env.berth(&root, &["push", &image]));
    let probe = d.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    std::fs::write(
        probe.join("Dockerfile"),
        format!("FROM {image}\nRUN cat /base-version > /seen 2>/dev/null || echo old > /seen\nCMD [\"cat\", \"/seen\"]\n"),
    )
    .unwrap();
    ok(env.berth(
        &broot,
        &["build", "-q", "-t", "probe", probe.to_str().unwrap()],
    ));
    assert_eq!(
        ok(env.berth(&broot, &["run", "--rm", "probe"])).trim(),
        "old"
    );
    ok(env.berth(
        &broot,
        &[
            "build",
            "-q",
            "--pull",
            "-t",
            "probe",
            probe.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        ok(env.berth(&broot, &["run", "--rm", "probe"])).trim(),
        "v2"
    );

    // A missing tag is the registry's error, named.
    let missing = fails(env.berth(
        &d.join("empty"),
        &["pull", &format!("{host}/test/busybox:nope")],
    ));
    assert!(
        missing.contains("manifest unknown") || missing.contains("MANIFEST_UNKNOWN"),
        "{missing}"
    );
    let none = fails(env.berth(&root, &["push", &format!("{host}/nothing/here:1")]));
    assert!(
        none.contains("An image does not exist locally with the tag"),
        "{none}"
    );
}

#[test]
fn basic_auth_login_push_pull_logout_and_a_credential_helper() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (reg, env, root, image) = setup(
        d,
        RegistryOptions {
            htpasswd: true,
            ..Default::default()
        },
        "test/busybox:v1",
    );
    let host = reg.host();

    let denied = fails(env.berth(&root, &["push", &image]));
    assert!(denied.contains("authentication required"), "{denied}");
    let bad = login(&env, &root, &host, "wrong-password");
    let bad_err = fails(bad);
    assert!(
        bad_err.contains("incorrect username or password"),
        "{bad_err}"
    );
    assert!(!bad_err.contains("wrong-password"), "{bad_err}");
    assert!(ok(login(&env, &root, &host, registry::PASSWORD)).contains("Login Succeeded"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.docker_config()).unwrap()).unwrap();
    assert!(cfg["auths"][&host]["auth"].is_string(), "{cfg}");

    ok(env.berth(&root, &["push", &image]));
    pull_and_run(&env, d, &image);
    let out = ok(env.berth(&root, &["logout", &host]));
    assert!(
        out.contains(&format!("Removing login credentials for {host}")),
        "{out}"
    );
    let after = fails(env.berth(&d.join("after-logout"), &["pull", &image]));
    assert!(after.contains("authentication required"), "{after}");

    // credsStore: docker's helper protocol, with a helper program of our own.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = d.join("helper-store.json");
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nS={}\ncase \"$1\" in\n  store) cat > \"$S\" ;;\n  get) read server; if [ -f \"$S\" ]; then sed 's/\"ServerURL\":\"[^\"]*\",//' \"$S\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  erase) rm -f \"$S\" ;;\nesac\n",
            store.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&helper)
        .status()
        .unwrap();
    std::fs::write(
        env.docker_config(),
        r#"{"auths": {}, "credsStore": "berthtest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = env.command(&root);
    cmd.env("PATH", &path);
    ok(login_with(cmd, &host, registry::PASSWORD));
    let kept = std::fs::read_to_string(&store).unwrap();
    assert!(
        kept.contains(registry::PASSWORD),
        "the helper holds the secret"
    );
    let cfg = std::fs::read_to_string(env.docker_config()).unwrap();
    assert!(
        !cfg.contains(registry::PASSWORD),
        "config.json must not: {cfg}"
    );
    let r = d.join("helper-pull");
    let pulled = env
        .command(&r)
        .env("PATH", &path)
        .args(["pull", &image])
        .output()
        .unwrap();
    ok(pulled);
}

#[test]
fn token_auth_with_scoped_bearer_tokens() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = TokenServer::start(&d.join("token"), false);
    let (reg, env, root, image) = setup(
        d,
        RegistryOptions {
            token: Some((tokens.realm(), tokens.bundle.clone())),
            ..Default::default()
        },
        "test/busybox:v1",
    );
    let host = reg.host();
    let denied = fails(env.berth(&root, &["push", &image]));
    assert!(denied.contains("authentication required"), "{denied}");
    let bad = fails(login(&env, &root, &host, "nope"));
    assert!(bad.contains("incorrect username or password"), "{bad}");
    ok(login(&env, &root, &host, registry::PASSWORD));
    let before = tokens.requests().len();
    ok(env.berth(&root, &["push", &image]));
    let asked = tokens.requests()[before..].to_vec();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("user ") && r.contains("repository:test/busybox:pull,push")),
        "{asked:?}"
    );
    // Tokens are cached per scope: a push of two blobs needs very few.
    assert!(asked.len() <= 3, "{asked:?}");
    pull_and_run(&env, d, &image);
    // A mount asks for pull on the source repository too.
    let other = format!("{host}/other/busybox:v1");
    ok(env.berth(&root, &["tag", "busybox", &other]));
    let m = ok(env.berth(&root, &["push", &other]));
    assert!(
        m.contains("Mounted from test/busybox"),
        "{m}\n{:?}",
        tokens.requests()
    );
}

#[test]
fn tls_registry_with_a_test_ca() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(&d.join("ca"));
    let (reg, env, root, image) = setup(
        d,
        RegistryOptions {
            tls: Some((ca.cert_pem.clone(), ca.key_pem.clone())),
            ..Default::default()
        },
        "test/busybox:v1",
    );
    let host = reg.host();
    // Not trusted yet: a loopback registry is tried over plain HTTP, which a
    // TLS server refuses.
    fails(env.berth(&root, &["push", &image]));
    env.trust(&host, &ca.ca_pem);
    ok(env.berth(&root, &["push", &image]));
    pull_and_run(&env, d, &image);
    ok(skopeo(&[
        "inspect",
        &format!(
            "--cert-dir={}",
            env.dir.join("certs.d").join(&host).display()
        ),
        &format!("docker://{image}"),
    ]));
}

/// A store holding `busybox` plus a layer of `mb` MB of random bytes, as `name`.
fn big_image(root: &Path, dir: &Path, name: &str, mb: usize) -> String {
    let ctx = dir.join("big-ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut data = vec![0u8; mb << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(ctx.join("big"), &data).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY big /big\n").unwrap();
    ok(busybox::berth(
        root,
        &["build", "-q", "-t", name, ctx.to_str().unwrap()],
    ));
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(&data))
}

#[test]
fn faults_are_retried_and_resumed_and_an_interrupted_pull_keeps_the_store_whole() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = Registry::start(&d.join("reg"), RegistryOptions::default());
    let proxy = FaultProxy::start(reg.port);
    let env = ClientEnv::new(&d.join("client"));
    let root = busybox::busybox_store(d);
    let image = format!("{}/test/big:1", proxy.host());
    // 40 MB: above the single-request limit, so it goes up in chunks.
    let sum = big_image(&root, d, &image, 40);

    proxy.set(Faults {
        fail_requests: 2,
        cuts: 2,
        cut_after: 12 << 20,
        ..Default::default()
    });
    ok(env.berth(&root, &["push", &image]));
    assert!(proxy.fired.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    ok(skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/test/big:1", reg.host()),
    ]));

    proxy.set(Faults {
        fail_requests: 1,
        cuts: 3,
        cut_after: 8 << 20,
        delay: std::time::Duration::from_millis(50),
        ..Default::default()
    });
    let pulled = d.join("pulled");
    proxy.bytes.store(0, std::sync::atomic::Ordering::SeqCst);
    ok(env.berth(&pulled, &["pull", &image]));
    // Broken downloads resumed with Range requests, not started over.
    let moved = proxy.bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(moved < 50 << 20, "{moved} bytes for a 40 MB layer");
    let ran = ok(env.berth(&pulled, &["run", "--rm", &image, "sha256sum", "/big"]));
    assert!(ran.starts_with(&sum), "{ran} vs {sum}");
    ok(env.berth(&pulled, &["images", "--verify"]));

    // 429 with Retry-After: berth waits as long as the registry asks. (The
    // first connection is the /v2/ ping, whose answer only teaches auth.)
    proxy.set(Faults {
        throttle_requests: 2,
        ..Default::default()
    });
    let throttled = d.join("throttled");
    let t0 = std::time::Instant::now();
    ok(env.berth(&throttled, &["pull", &image]));
    assert!(
        t0.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After ignored"
    );

    // A registry that never lets a layer through: the pull fails, tags
    // nothing, and leaves no partial blob or snapshot behind.
    proxy.set(Faults {
        cuts: 1000,
        cut_after: 1 << 20,
        ..Default::default()
    });
    let broken = d.join("broken");
    let err = fails(env.berth(&broken, &["pull", &image]));
    assert!(err.contains("cannot fetch layer"), "{err}");
    assert_eq!(ok(env.berth(&broken, &["images", "-q"])).trim(), "");
    ok(env.berth(&broken, &["images", "--verify"]));
    let leftovers: Vec<_> = walk(&broken.join("blobs"))
        .into_iter()
        .chain(walk(&broken.join("snapshots")))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(".tmp") || p.components().any(|c| c.as_os_str() == "ingest")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for blob in walk(&broken.join("blobs/sha256")) {
        use sha2::Digest as _;
        let data = std::fs::read(&blob).unwrap();
        let name = blob.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&data)),
            name,
            "{}",
            blob.display()
        );
    }
    // Ctrl-C in the middle of a slow pull: exit 130, nothing tagged, no
    // partial blob, the store whole.
    proxy.set(Faults {
        pace: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    let interrupted = d.join("interrupted");
    let child = env
        .command(&interrupted)
        .args(["pull", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(ok(env.berth(&interrupted, &["images", "-q"])).trim(), "");
    ok(env.berth(&interrupted, &["images", "--verify"]));
    let partial: Vec<_> = walk(&interrupted)
        .into_iter()
        .filter(|p| {
            p.components().any(|c| c.as_os_str() == "ingest")
                || p.to_string_lossy().contains("/snapshots/.tmp")
        })
        .collect();
    assert!(partial.is_empty(), "{partial:?}");

    // And once the registry behaves, the same stores pull it.
    proxy.set(Faults::default());
    ok(env.berth(&broken, &["pull", &image]));
    ok(env.berth(&interrupted, &["pull", &image]));
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn mirrors_serve_docker_hub_names_with_the_token_flow() {
    assert!(
        is_root(),
        "the registry tests run containers: run them as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = TokenServer::start(&d.join("token"), true);
    let mirror = Registry::start(
        &d.join("mirror"),
        RegistryOptions {
            token: Some((tokens.realm(), tokens.bundle.clone())),
            ..Default::default()
        },
    );
    let env = ClientEnv::new(&d.join("client"));
    let root = busybox::busybox_store(d);
    let host = mirror.host();
    // The mirror holds Docker Hub's name for busybox.
    let in_mirror = format!("{host}/library/busybox:latest");
    ok(env.berth(&root, &["tag", "busybox", &in_mirror]));
    ok(login(&env, &root, &host, registry::PASSWORD));
    ok(env.berth(&root, &["push", &in_mirror]));
    ok(env.berth(&root, &["logout", &host]));

    // A dead mirror first: berth falls through to the next one.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fresh = d.join("fresh");
    let out = env
        .command(&fresh)
        .env(
            "BERTH_REGISTRY_MIRRORS",
            format!("http://127.0.0.1:{dead},http://{host}"),
        )
        .args(["pull", "busybox"])
        .output()
        .unwrap();
    let out = ok(out);
    assert!(out.contains("docker.io/library/busybox:latest"), "{out}");
    let listed = ok(env.berth(&fresh, &["images"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("busybox ") && l.contains("latest")),
        "{listed}"
    );
    ok(env.berth(&fresh, &["run", "--rm", "busybox", "true"]));
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r == "anon repository:library/busybox:pull"),
        "{:?}",
        tokens.requests()
    );

    // The config file, as docker's registry-mirrors: FROM busybox in a
    // fresh store pulls through the mirror.
    std::fs::write(
        env.berth_config(),
        format!(r#"{{"registry-mirrors": ["http://{host}"]}}"#),
    )
    .unwrap();
    let ctx = d.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo mirrored > /m\n",
    )
    .unwrap();
    let b = d.join("build-root");
    ok(env.berth(&b, &["build", "-q", "-t", "m", ctx.to_str().unwrap()]));
    assert_eq!(
        ok(env.berth(&b, &["run", "--rm", "m", "cat", "/m"])).trim(),
        "mirrored"
    );
}
