//! Hostile layers: each is refused with a clear error or contained in the
//! extraction root; the host stays untouched.

use berth_store::layer::extract::CountingReader;
use berth_store::layer::{decompressed, extract, ExtractOptions};
use std::io::{Cursor, Read, Write};
use std::path::Path;

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

/// Writes raw names (no sanitising by the tar crate) into a tar stream.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut h = header(kind, data.len() as u64);
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn run(tar: &[u8], root: &Path) -> berth_store::Result<()> {
    extract(&mut Cursor::new(tar), root, &ExtractOptions::default())
}

#[test]
fn dotdot_entries_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        "a/../../escaped",
        tar::EntryType::Regular,
        None,
        b"x",
    );
    let err = run(&finish(t), &root).unwrap_err().to_string();
    assert!(err.contains("`..`"), "{err}");
    assert!(!outer.path().join("escaped").exists());
}

#[test]
fn absolute_paths_stay_inside() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let target = outer.path().join("abs-target");
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        &target.display().to_string(),
        tar::EntryType::Regular,
        None,
        b"x",
    );
    run(&finish(t), &root).unwrap();
    assert!(!target.exists(), "wrote outside the root");
    assert!(root.join(target.strip_prefix("/").unwrap()).exists());
}

#[test]
fn symlink_to_root_then_file_through_it_is_contained() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let host_file = outer.path().join("host-victim");
    let mut t = Vec::new();
    raw_entry(&mut t, "evil", tar::EntryType::Symlink, Some("/"), b"");
    let through = format!("evil{}", host_file.display());
    raw_entry(&mut t, &through, tar::EntryType::Regular, None, b"pwned");
    // And a relative climb through a symlink planted by the same layer.
    raw_entry(
        &mut t,
        "up",
        tar::EntryType::Symlink,
        Some("../../../../.."),
        b"",
    );
    raw_entry(
        &mut t,
        &format!("up{}-2", host_file.display()),
        tar::EntryType::Regular,
        None,
        b"pwned",
    );
    let _ = run(&finish(t), &root);
    assert!(
        !host_file.exists(),
        "a file was written through the symlink onto the host"
    );
    assert!(!Path::new(&format!("{}-2", host_file.display())).exists());
    assert!(
        root.join(host_file.strip_prefix("/").unwrap()).exists(),
        "contained inside the root"
    );
}

#[test]
fn hard_link_to_a_host_path_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let host = outer.path().join("secret");
    std::fs::write(&host, b"secret").unwrap();
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(&host).unwrap().nlink();
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        "stolen",
        tar::EntryType::Link,
        Some(&host.display().to_string()),
        b"",
    );
    let err = run(&finish(t), &root).unwrap_err().to_string();
    assert!(err.contains("hard link target"), "{err}");
    assert_eq!(std::fs::metadata(&host).unwrap().nlink(), before);
    assert!(!root.join("stolen").exists());
}

#[test]
fn a_hundred_thousand_entries() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..100_000u32 {
        let mut h = header(tar::EntryType::Regular, 0);
        b.append_data(&mut h, format!("d{}/f{i}", i % 100), std::io::empty())
            .unwrap();
    }
    let tar = b.into_inner().unwrap();
    run(&tar, &root).unwrap();
    assert_eq!(std::fs::read_dir(root.join("d7")).unwrap().count(), 1000);
    let limited = ExtractOptions {
        max_entries: 50_000,
        ..ExtractOptions::default()
    };
    let err = extract(
        &mut Cursor::new(&tar),
        &outer.path().join("other"),
        &limited,
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than 50000 entries"), "{err}");
}

#[test]
fn truncated_gzip_is_an_error() {
    let outer = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    b.append_data(&mut h, "big", &data[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let full = gz.finish().unwrap();
    let cut = &full[..full.len() / 2];
    let mut plain = decompressed(cut).unwrap();
    let err = extract(
        &mut plain,
        &outer.path().join("root"),
        &ExtractOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot extract big") || msg.contains("cannot read the layer"),
        "{msg}"
    );
}

#[test]
fn decompression_bomb_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    // 100 MiB of zeros compresses to about 100 KiB.
    let size: u64 = 100 << 20;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut b = tar::Builder::new(&mut gz);
        let mut h = header(tar::EntryType::Regular, size);
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(size))
            .unwrap();
        b.finish().unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 2 << 20);
    let (counting, count) = CountingReader::new(Cursor::new(bomb));
    let mut plain = decompressed(counting).unwrap();
    let opts = ExtractOptions {
        max_ratio: 100,
        compressed_read: Some(count),
        ..ExtractOptions::default()
    };
    let err = extract(&mut plain, &outer.path().join("root"), &opts).unwrap_err();
    assert!(err.to_string().contains("decompression bomb"), "{err}");

    // And a plain size limit.
    let mut tar = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar);
        let mut h = header(tar::EntryType::Regular, 200 << 20);
        b.append_data(&mut h, "big", std::io::repeat(0).take(200 << 20))
            .unwrap();
        b.finish().unwrap();
    }
    let sized = ExtractOptions {
        max_bytes: 100 << 20,
        ..ExtractOptions::default()
    };
    let err = extract(&mut Cursor::new(tar), &outer.path().join("root2"), &sized).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}
