//! LayerWriter and extraction: a tree written as a layer and extracted again
//! comes back the same; the bytes are deterministic; overlay whiteouts and
//! opaque directories become `.wh.` entries and back.

use berth_store::layer::{
    decompressed, extract, write_layer_from_dir, Compression, ExtractOptions, LayerOptions,
    WhiteoutMode,
};
use berth_store::Store;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// path → (kind, mode, uid, gid, content or link target, xattrs)
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let p = e.path();
        let m = p.symlink_metadata().unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link->{}", fs::read_link(p).unwrap().display())
        } else if ft.is_file() {
            format!("file:{}", hex::encode(sha2_digest(&fs::read(p).unwrap())))
        } else if ft.is_dir() {
            "dir".into()
        } else {
            format!("other:{:o}:{}", m.mode() & 0o170000, m.rdev())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        let mtime = if ft.is_symlink() || ft.is_dir() {
            0
        } else {
            m.mtime()
        };
        let mut attrs = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(p, &mut attrs).unwrap_or(0);
        let names: Vec<String> = attrs[..n]
            .split(|b| *b == 0)
            .filter(|x| !x.is_empty())
            .map(|x| String::from_utf8_lossy(x).to_string())
            .collect();
        out.insert(
            rel,
            format!(
                "{what} mode={mode:o} uid={} gid={} mtime={mtime} xattrs={names:?}",
                m.uid(),
                m.gid()
            ),
        );
    }
    out
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

fn make_tree(dir: &Path) {
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::write(dir.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(dir.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(dir.join("data.txt"), vec![b'x'; 100_000]).unwrap();
    fs::hard_link(dir.join("data.txt"), dir.join("data-link.txt")).unwrap();
    std::os::unix::fs::symlink("usr/bin/tool", dir.join("tool-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute", dir.join("dangling")).unwrap();
    let long = "a-rather-long-directory-name-to-exceed-the-ustar-limit/".repeat(3);
    fs::create_dir_all(dir.join(&long)).unwrap();
    fs::write(
        dir.join(&long).join("deep-file-with-a-long-name.txt"),
        b"deep",
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _ = rustix::fs::lsetxattr(
        dir.join("data.txt"),
        "user.berth.test",
        b"value",
        rustix::fs::XattrFlags::empty(),
    );
    if is_root() {
        // A file capability (cap_net_bind_service+ep), as setcap writes it.
        let cap: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rustix::fs::lsetxattr(
            dir.join("usr/bin/tool"),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::os::unix::fs::lchown(dir.join("data.txt"), Some(1000), Some(1000)).unwrap();
        // A setgid directory of another group: a file of root's group in it
        // must not take the directory's group when extracted.
        fs::create_dir(dir.join("shared")).unwrap();
        std::os::unix::fs::lchown(dir.join("shared"), Some(0), Some(1000)).unwrap();
        fs::set_permissions(dir.join("shared"), fs::Permissions::from_mode(0o2775)).unwrap();
        fs::write(dir.join("shared/root-group.txt"), b"root").unwrap();
        std::os::unix::fs::lchown(dir.join("shared/root-group.txt"), Some(0), Some(0)).unwrap();
    }
    // Modes the umask would narrow, and a setgid file.
    fs::write(dir.join("open.txt"), b"open").unwrap();
    fs::set_permissions(dir.join("open.txt"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::write(dir.join("private.txt"), b"private").unwrap();
    fs::set_permissions(dir.join("private.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(dir.join("group-tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("group-tool"), fs::Permissions::from_mode(0o2711)).unwrap();
    for e in walkdir::WalkDir::new(dir).contents_first(true) {
        let p = e.unwrap().into_path();
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

fn extract_blob(store: &Store, digest: &berth_store::Digest, dest: &Path, mode: WhiteoutMode) {
    let blob = store.blobs().open(digest, None).unwrap();
    let mut plain = decompressed(blob).unwrap();
    let opts = ExtractOptions {
        whiteouts: mode,
        ..ExtractOptions::default()
    };
    extract(&mut plain, dest, &opts).unwrap();
}

#[test]
fn tree_round_trips_through_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = LayerOptions {
            compression,
            source_date_epoch: None,
            threads: 2,
            reuse: true,
        };
        let layer = write_layer_from_dir(store.blobs(), &src, &opts).unwrap();
        assert_eq!(layer.media_type, compression.media_type());
        let dest = tmp.path().join(format!("out-{compression:?}"));
        extract_blob(&store, &layer.digest, &dest, WhiteoutMode::Apply);
        assert_eq!(snapshot(&src), snapshot(&dest), "{compression:?}");
        let a = fs::metadata(dest.join("data.txt")).unwrap();
        let b = fs::metadata(dest.join("data-link.txt")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard link kept");
    }
}

#[test]
fn same_tree_same_bytes_and_epoch_clamps() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let write = |threads, epoch| {
        let opts = LayerOptions {
            compression: Compression::Gzip,
            source_date_epoch: epoch,
            threads,
            reuse: true,
        };
        write_layer_from_dir(store.blobs(), &src, &opts).unwrap()
    };
    let a = write(1, None);
    let b = write(4, None);
    assert_eq!(a, b, "output does not depend on threads or on the run");
    // Copy the tree: new inodes, same content and times, same layer.
    let copy = tmp.path().join("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let c = write_layer_from_dir(
        store.blobs(),
        &copy,
        &LayerOptions {
            compression: Compression::Gzip,
            source_date_epoch: None,
            threads: 1,
            reuse: true,
        },
    )
    .unwrap();
    assert_eq!(a.diff_id, c.diff_id);
    let clamped = write(1, Some(1_000));
    assert_ne!(clamped.diff_id, a.diff_id);
    let dest = tmp.path().join("clamped");
    extract_blob(&store, &clamped.digest, &dest, WhiteoutMode::Apply);
    assert_eq!(fs::metadata(dest.join("data.txt")).unwrap().mtime(), 1_000);
}

#[test]
fn overlay_whiteouts_become_wh_entries_and_back() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts are character devices, which need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::create_dir_all(upper.join("opaque")).unwrap();
    fs::write(upper.join("opaque/new"), b"n").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/removed"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let layer = write_layer_from_dir(store.blobs(), &upper, &LayerOptions::default()).unwrap();

    let mut names = Vec::new();
    let blob = store.blobs().open(&layer.digest, None).unwrap();
    let mut archive = tar::Archive::new(decompressed(blob).unwrap());
    for e in archive.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"etc/.wh.removed".to_string()), "{names:?}");
    assert!(
        names.contains(&"opaque/.wh..wh..opq".to_string()),
        "{names:?}"
    );

    // Applied over a lower tree: the whiteout deletes, the opaque dir hides.
    let lower = tmp.path().join("stacked");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::create_dir_all(lower.join("opaque")).unwrap();
    fs::write(lower.join("etc/removed"), b"old").unwrap();
    fs::write(lower.join("etc/kept"), b"old").unwrap();
    fs::write(lower.join("opaque/old"), b"old").unwrap();
    extract_blob(&store, &layer.digest, &lower, WhiteoutMode::Apply);
    assert!(!lower.join("etc/removed").exists());
    assert!(lower.join("etc/kept").exists());
    assert!(!lower.join("opaque/old").exists());
    assert!(lower.join("opaque/new").exists());

    // Extracted as a snapshot: overlayfs' own whiteouts again.
    let snap = tmp.path().join("snapshot");
    extract_blob(&store, &layer.digest, &snap, WhiteoutMode::Overlay);
    let m = fs::symlink_metadata(snap.join("etc/removed")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    let mut v = [0u8; 4];
    assert_eq!(
        rustix::fs::lgetxattr(snap.join("opaque"), "trusted.overlay.opaque", &mut v).unwrap(),
        1
    );
}

#[test]
fn a_hard_link_entry_sets_the_shared_inode_as_docker_unpacks_it() {
    // The link's own header gives the inode its owner and mode (moby's
    // archive applies it); for a link to a symlink only the owner.
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let entry = |kind: tar::EntryType, mode: u32, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_000_000);
        h.set_size(0);
        h
    };
    let mut f = entry(tar::EntryType::Regular, 0o4755, 1000);
    f.set_size(4);
    b.append_data(&mut f, "file", &b"data"[..]).unwrap();
    b.append_link(&mut entry(tar::EntryType::Link, 0o640, 0), "hl", "file")
        .unwrap();
    b.append_link(&mut entry(tar::EntryType::Symlink, 0o777, 0), "sym", "file")
        .unwrap();
    b.append_link(&mut entry(tar::EntryType::Link, 0o600, 7), "symhl", "sym")
        .unwrap();
    let tar = b.into_inner().unwrap();
    let root = dir.path().join("root");
    extract(
        &mut std::io::Cursor::new(tar),
        &root,
        &ExtractOptions::default(),
    )
    .unwrap();
    let m = fs::metadata(root.join("file")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.ino(), fs::metadata(root.join("hl")).unwrap().ino());
    let s = fs::symlink_metadata(root.join("symhl")).unwrap();
    assert!(s.file_type().is_symlink());
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert_eq!(s.uid(), 7);
    }
}
