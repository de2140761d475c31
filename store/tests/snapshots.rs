//! Snapshots stacked with overlayfs, and the copy-based fallback, give the
//! same root filesystem; GC removes snapshots no image uses.

use berth_store::image::ImageConfig;
use berth_store::layer::{write_layer_from_dir, LayerOptions};
use berth_store::snapshot::MountKind;
use berth_store::Store;
use std::fs;
use std::path::Path;

fn listing(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let content = if e.file_type().is_file() {
                fs::read_to_string(e.path()).unwrap_or_default()
            } else {
                String::new()
            };
            format!(
                "{} {}",
                e.path().strip_prefix(root).unwrap().display(),
                content.trim()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn overlay_and_copy_fallback_agree() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting overlayfs and making whiteouts need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let l1 = tmp.path().join("l1");
    fs::create_dir_all(l1.join("bin")).unwrap();
    fs::create_dir_all(l1.join("etc")).unwrap();
    fs::create_dir_all(l1.join("opaque")).unwrap();
    fs::write(l1.join("bin/x"), "x").unwrap();
    fs::write(l1.join("etc/a"), "a").unwrap();
    fs::write(l1.join("opaque/old"), "old").unwrap();
    let l2 = tmp.path().join("l2");
    fs::create_dir_all(l2.join("etc")).unwrap();
    fs::create_dir_all(l2.join("opaque")).unwrap();
    fs::write(l2.join("etc/b"), "b").unwrap();
    fs::write(l2.join("opaque/new"), "new").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        l2.join("etc/a"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        l2.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    let opts = LayerOptions::default();
    let a = write_layer_from_dir(store.blobs(), &l1, &opts).unwrap();
    let b = write_layer_from_dir(store.blobs(), &l2, &opts).unwrap();
    let mut config = ImageConfig::new_for_host();
    config.rootfs.diff_ids = vec![a.diff_id.clone(), b.diff_id.clone()];
    let img = store
        .commit_image(
            &config,
            &[a.to_ref(), b.to_ref()],
            &["stack:1".parse().unwrap()],
        )
        .unwrap();

    let want = vec![
        "bin ",
        "bin/x x",
        "etc ",
        "etc/b b",
        "opaque ",
        "opaque/new new",
    ];
    let overlay = store.prepare_rootfs(&img, "t-overlay", false).unwrap();
    assert_eq!(overlay.kind, MountKind::Overlay);
    assert_eq!(listing(&overlay.merged), want);
    fs::write(overlay.merged.join("written"), "w").unwrap();
    assert!(
        overlay.upper.join("written").exists(),
        "changes land in the upper dir"
    );
    let dir = overlay.merged.parent().unwrap().to_path_buf();
    overlay.remove().unwrap();
    assert!(!dir.exists());

    let copy = store.prepare_rootfs(&img, "t-copy", true).unwrap();
    assert_eq!(copy.kind, MountKind::Copy);
    assert_eq!(listing(&copy.merged), want);
    drop(copy);

    assert_eq!(
        fs::read_dir(tmp.path().join("store/snapshots"))
            .unwrap()
            .count(),
        2
    );
    store.remove_image(&img).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.snapshots_removed, 2);
    assert_eq!(
        fs::read_dir(tmp.path().join("store/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}
