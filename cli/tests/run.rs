//! `berth run` on the busybox base image: real containers, as root (CI runs
//! as root; elsewhere these tests say why they skip).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn busybox_store(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let out = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/make-busybox.sh"))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg(dir.join("bb.tar"))
        .env("BERTH_ROOT", &root)
        .output()
        .expect("make-busybox.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
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

    let o = run(
        &root,
        &[
            "--rm",
            "-e",
            "GREETING=hi",
            "-w",
            "/srv/app",
            "busybox",
            "sh",
            "-c",
            "echo $GREETING $(pwd) $$",
        ],
    );
    assert_eq!(stdout(&o), "hi /srv/app 1", "env, workdir, pid 1");
    let o = run(&root, &["--rm", "-u", "nobody", "busybox", "id"]);
    assert_eq!(stdout(&o), "uid=65534(nobody) gid=65534(nogroup)");
    let o = run(
        &root,
        &[
            "--rm",
            "-u",
            "1234:5678",
            "busybox",
            "sh",
            "-c",
            "id -u; id -g",
        ],
    );
    assert_eq!(stdout(&o), "1234\n5678");

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = run(&root, &["--rm", "busybox", "hostname"]);
    assert_ne!(stdout(&o), host.trim());
    assert_eq!(stdout(&o).len(), 12, "the short container id");

    let o = run(
        &root,
        &[
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ],
    );
    assert_eq!(stdout(&o), "lo");
    let o = run(
        &root,
        &["--rm", "busybox", "grep", "CapEff", "/proc/self/status"],
    );
    assert_eq!(
        stdout(&o),
        "CapEff:\t00000000a80425fb",
        "docker's default capability set"
    );

    let o = run(
        &root,
        &[
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo b > /proc/sysrq-trigger && echo wrote",
        ],
    );
    assert_ne!(stdout(&o), "wrote");
    let o = run(
        &root,
        &[
            "--rm",
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs t /tmp && echo mounted",
        ],
    );
    assert_ne!(stdout(&o), "mounted");

    let o = run(
        &root,
        &[
            "--rm",
            "--read-only",
            "busybox",
            "sh",
            "-c",
            "touch /x && echo wrote",
        ],
    );
    assert_ne!(stdout(&o), "wrote");

    // A bind mount writes through; a read-only one refuses writes.
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let vol = format!("{}:/data", shared.display());
    let o = run(
        &root,
        &[
            "--rm",
            "-v",
            &vol,
            "busybox",
            "sh",
            "-c",
            "echo from-container > /data/out",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(shared.join("out")).unwrap(),
        "from-container\n"
    );
    let ro = format!("{}:/data:ro", shared.display());
    let o = run(
        &root,
        &[
            "--rm",
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "cat /data/out; echo x > /data/new && echo wrote",
        ],
    );
    assert_eq!(stdout(&o), "from-container");
    assert!(!shared.join("new").exists());
    let bad = run(&root, &["--rm", "-v", "relative:/data", "busybox", "true"]);
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
