//! The image commands as a user runs them, on the offline busybox base image:
//! import, images, tag, rmi, inspect, history, save, load, prune; and what
//! peers (skopeo, umoci) and the OCI schemas say about what berth wrote.

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

use busybox::berth;
#[path = "../../testdata/support/oci_validate.rs"]
mod oci_validate;

use busybox::busybox_store;

use std::path::Path;
use std::process::{Command, Output};

fn ok(root: &Path, args: &[&str]) -> String {
    let out = berth(root, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["inspect", name])).expect("inspect JSON");
    v[0].clone()
}

fn tool(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (testdata/test.sh installs it): {e}"))
}

#[test]
fn import_save_load_round_trip_and_peers_read_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let first = inspect(&root, "busybox");
    assert_eq!(first["RepoTags"][0], "busybox:latest");
    assert_eq!(first["Config"]["Cmd"][0], "sh");
    assert_eq!(first["RootFS"]["Type"], "layers");
    // Size is the unpacked size, as docker reports it: here the imported tarball's.
    let tarball = std::fs::metadata(tmp.path().join("busybox-rootfs.tar"))
        .unwrap()
        .len();
    assert_eq!(first["Size"].as_u64(), Some(tarball));
    assert!(
        oci_validate::check_layout(&root).is_empty(),
        "{:?}",
        oci_validate::check_layout(&root)
    );

    let archive = tmp.path().join("busybox.tar");
    ok(
        &root,
        &["save", "-o", archive.to_str().unwrap(), "busybox:latest"],
    );
    let other = tmp.path().join("other-root");
    let loaded = ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: busybox:latest");
    let second = inspect(&other, "busybox:latest");
    assert_eq!(first["Id"], second["Id"], "same image ID after save/load");
    assert_eq!(first["RootFS"], second["RootFS"]);
    assert!(
        oci_validate::check_layout(&other).is_empty(),
        "{:?}",
        oci_validate::check_layout(&other)
    );

    // skopeo reads the archive and the store itself.
    let out = tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    );
    assert!(
        out.status.success(),
        "skopeo docker-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().map(|a| a.len()), Some(1));
    let oci_ref = format!("oci:{}:docker.io/library/busybox:latest", root.display());
    let out = tool("skopeo", &["inspect", &oci_ref]);
    assert!(
        out.status.success(),
        "skopeo oci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest_digest = v["Digest"].as_str().unwrap().to_string();
    let images = ok(&root, &["images", "--digests"]);
    assert!(images.contains(&manifest_digest), "{images}");

    // Docker media types on request; skopeo and berth read those too.
    let docker_archive = tmp.path().join("busybox-docker.tar");
    ok(
        &root,
        &[
            "save",
            "--media-types",
            "docker",
            "-o",
            docker_archive.to_str().unwrap(),
            "busybox",
        ],
    );
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("docker-archive:{}", docker_archive.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fourth = tmp.path().join("fourth-root");
    ok(&fourth, &["load", "-i", docker_archive.to_str().unwrap()]);
    assert_eq!(inspect(&fourth, "busybox")["Id"], first["Id"]);

    // An OCI archive written by skopeo loads too, with the same ID.
    let oci_archive = tmp.path().join("busybox-oci.tar");
    let out = tool(
        "skopeo",
        &[
            "copy",
            &oci_ref,
            &format!(
                "oci-archive:{}:docker.io/library/busybox:latest",
                oci_archive.display()
            ),
        ],
    );
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third_root = tmp.path().join("third-root");
    ok(&third_root, &["load", "-i", oci_archive.to_str().unwrap()]);
    assert_eq!(inspect(&third_root, "busybox")["Id"], first["Id"]);
}

fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let link = std::fs::read_link(e.path())
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let size = if m.is_file() { m.len() } else { 0 };
        let mode = if m.file_type().is_symlink() {
            0
        } else {
            m.mode()
        };
        out.push(format!(
            "{} {:o} {}:{} {size} {link}",
            e.path().strip_prefix(root).unwrap().display(),
            mode,
            m.uid(),
            m.gid()
        ));
    }
    out
}

#[test]
fn umoci_unpack_matches_berth_extraction() {
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let bundle = tmp.path().join("bundle");
    let out = tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:docker.io/library/busybox:latest", root.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // berth's own unpacking of the same image: a build that exports it.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\n").unwrap();
    let ours = tmp.path().join("ours");
    ok(
        &root,
        &[
            "build",
            "-q",
            "-o",
            &format!("type=local,dest={}", ours.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(tree(&bundle.join("rootfs")), tree(&ours));
}

#[test]
fn tag_rmi_inspect_history_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    ok(&root, &["tag", "busybox", "127.0.0.1:5000/team/app:v1"]);
    let images = ok(&root, &["images"]);
    assert!(images.starts_with("REPOSITORY"), "{images}");
    assert!(images.contains("127.0.0.1:5000/team/app"), "{images}");
    let ids = ok(&root, &["images", "-q"]);
    assert_eq!(ids.lines().count(), 1, "one image, two tags: {ids}");
    let json = ok(&root, &["images", "--format", "json"]);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["ID"].as_str().unwrap().len(), 12);
    }
    let id = ids.trim().to_string();

    let out = berth(&root, &["rmi", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be forced"));
    let untag = ok(&root, &["rmi", "127.0.0.1:5000/team/app:v1"]);
    assert_eq!(untag.trim(), "Untagged: 127.0.0.1:5000/team/app:v1");

    let history = ok(&root, &["history", "busybox"]);
    assert!(history.lines().next().unwrap().starts_with("IMAGE"));
    assert!(history.contains("Imported from"), "{history}");

    let out = berth(&root, &["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nosuch"));

    // Re-tagging busybox onto a new import leaves the old image dangling.
    let tarball = tmp.path().join("busybox-rootfs.tar");
    ok(
        &root,
        &[
            "import",
            "-c",
            "CMD [\"echo\", \"two\"]",
            tarball.to_str().unwrap(),
            "busybox:latest",
        ],
    );
    let images = ok(&root, &["images"]);
    assert!(images.contains("<none>"), "{images}");
    let pruned = ok(&root, &["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert!(!ok(&root, &["images"]).contains("<none>"));
    let deleted = ok(&root, &["rmi", "busybox"]);
    assert!(deleted.contains("Deleted: sha256:"), "{deleted}");
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "GC removed every blob"
    );
}

#[test]
fn load_of_garbage_is_a_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_store(tmp.path());
    let before = ok(&root, &["images"]);
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tarball at all").unwrap();
    let out = berth(&root, &["load", "-i", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: "), "{err}");
    assert_eq!(ok(&root, &["images"]), before);
}
