//! Crash safety: `berth load` killed with SIGKILL at random points never
//! leaves the store inconsistent.

#[path = "../../testdata/support/busybox.rs"]
mod busybox;
#[path = "../../testdata/support/oci_validate.rs"]
mod oci_validate;

use busybox::busybox_store;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn berth(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("--root").arg(root);
    c
}

/// A small deterministic generator for the kill times.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn assert_consistent(root: &Path, run: usize) {
    // berth's own check re-hashes every blob of every image ...
    let check = berth(root)
        .args(["images", "--verify", "-q"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "run {run}: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // ... and every committed blob, referenced or not, has its name's hash.
    use sha2::Digest;
    let blobs = root.join("blobs").join("sha256");
    for e in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&data)),
            e.file_name().to_string_lossy(),
            "run {run}: blob {} is damaged",
            e.path().display()
        );
    }
    let layout = oci_validate::check_layout(root);
    assert!(layout.is_empty(), "run {run}: {layout:?}");
}

#[test]
fn sigkill_during_load_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = busybox_store(tmp.path());
    // A second, larger image so that the load takes long enough to be hit.
    let big = tmp.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let mut data = vec![0u8; 24 << 20];
    let mut rng = Lcg(42);
    for chunk in data.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    std::fs::write(big.join("random.bin"), &data).unwrap();
    let big_tar = tmp.path().join("big.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&big)
        .arg("-cf")
        .arg(&big_tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    assert!(berth(&src)
        .args(["import", big_tar.to_str().unwrap(), "big:1"])
        .status()
        .unwrap()
        .success());
    let archive = tmp.path().join("images.tar");
    assert!(berth(&src)
        .args(["save", "-o", archive.to_str().unwrap(), "busybox", "big:1"])
        .status()
        .unwrap()
        .success());

    let target = tmp.path().join("target");
    let started = Instant::now();
    assert!(berth(&tmp.path().join("timing"))
        .args(["load", "-q", "-i", archive.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let full = started.elapsed().as_millis().max(20) as u64;

    let mut rng = Lcg(7);
    for run in 0..24 {
        let mut child = berth(&target)
            .args(["load", "-q", "-i", archive.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % (full + full / 4)));
        let _ = child.kill();
        let _ = child.wait();
        assert_consistent(&target, run);
    }
    // Whatever was left half-done, a full load and GC bring the store to the same state.
    assert!(berth(&target)
        .args(["load", "-q", "-i", archive.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert_consistent(&target, 99);
    // Pruning collects the garbage: nothing is left half-written.
    assert!(berth(&target)
        .args(["image", "prune", "-f"])
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::read_dir(target.join("ingest")).unwrap().count(), 0);
    let id = |root: &Path| {
        let out = berth(root)
            .args(["images", "-q", "--no-trunc", "big:1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(!id(&target).is_empty());
    assert_eq!(id(&target), id(&src));
}

#[test]
fn concurrent_imports_loads_and_prunes_keep_the_store_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let archive = tmp.path().join("bb-image.tar");
    assert!(berth(&root)
        .args(["save", "-o", archive.to_str().unwrap(), "busybox"])
        .status()
        .unwrap()
        .success());
    let bb = busybox::rootfs_tarball(tmp.path());
    for round in 0..4 {
        let mut children = Vec::new();
        for i in 0..3 {
            let tag = format!("copy{round}-{i}:latest");
            children.push(
                berth(&root)
                    .args([
                        "import",
                        "-c",
                        &format!("CMD [\"echo\", \"{i}\"]"),
                        bb.to_str().unwrap(),
                        &tag,
                    ])
                    .spawn()
                    .unwrap(),
            );
        }
        children.push(
            berth(&root)
                .args(["load", "-q", "-i", archive.to_str().unwrap()])
                .spawn()
                .unwrap(),
        );
        children.push(
            berth(&root)
                .args(["image", "prune", "-f", "-a"])
                .spawn()
                .unwrap(),
        );
        children.push(
            berth(&root)
                .args(["images"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        for mut c in children {
            assert!(
                c.wait().unwrap().success(),
                "round {round}: a concurrent berth failed"
            );
        }
        assert_consistent(&root, round);
    }
}
