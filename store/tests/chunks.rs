//! Reuse of compressed members: a layer that differs from an earlier one in a
//! few entries copies the unchanged members, and the blob is byte for byte
//! the one a fresh compression gives.

use berth_store::layer::{write_layer_with, LayerOptions, LayerSink};
use berth_store::Store;
use std::io::{Read, Write};

/// A tar of `files` (name, size) with content from `seed`, member
/// boundaries marked before each entry.
fn produce(
    sink: &mut LayerSink,
    files: &[(String, usize)],
    changed: Option<&str>,
) -> std::io::Result<()> {
    let mut b = tar::Builder::new(sink);
    for (name, size) in files {
        let mut data: Vec<u8> = (0..*size)
            .map(|i| ((i * 31 + name.len() * 7) % 251) as u8)
            .collect();
        if changed == Some(name.as_str()) {
            data.extend_from_slice(b"changed");
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        b.get_mut().boundary(name, data.len() as u64)?;
        b.append_data(&mut h, name, &data[..])?;
    }
    b.finish()?;
    b.into_inner()?.flush()
}

fn index_lines(root: &std::path::Path) -> usize {
    std::fs::read_to_string(root.join("chunks.idx"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn unchanged_members_are_reused_and_the_blob_is_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let mut files: Vec<(String, usize)> =
        (0..400).map(|i| (format!("d/f{i:04}"), 20_000)).collect();
    files.insert(200, ("big.bin".into(), 5 << 20));
    let opts = LayerOptions {
        source_date_epoch: None,
        ..LayerOptions::default()
    };
    let first = write_layer_with(store.blobs(), &opts, |s| produce(s, &files, None)).unwrap();
    let known = index_lines(store.root());
    assert!(known > 10, "members are indexed: {known}");

    // One small file changes size: only the members around it are new.
    let second = write_layer_with(store.blobs(), &opts, |s| {
        produce(s, &files, Some("d/f0003"))
    })
    .unwrap();
    let added = index_lines(store.root()) - known;
    assert!(added <= 2, "{added} new members for one changed file");
    assert_ne!(first.digest, second.digest);

    // The same bytes as a compression from scratch.
    let fresh_opts = LayerOptions {
        reuse: false,
        ..opts.clone()
    };
    let other = Store::open(&tmp.path().join("other")).unwrap();
    let fresh = write_layer_with(other.blobs(), &fresh_opts, |s| {
        produce(s, &files, Some("d/f0003"))
    })
    .unwrap();
    assert_eq!(second.digest, fresh.digest);
    assert_eq!(second.diff_id, fresh.diff_id);

    // And it is a valid gzip stream of the tar.
    let blob = store
        .blobs()
        .open(&second.digest, Some(second.size))
        .unwrap();
    let mut plain = Vec::new();
    berth_store::layer::decompressed(blob)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&plain[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names.len(), files.len());

    // A damaged index entry is a miss, not a wrong layer.
    let idx = store.root().join("chunks.idx");
    let text = std::fs::read_to_string(&idx).unwrap();
    let broken: String = text
        .lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(String::from).collect();
            parts[2] = (parts[2].parse::<u64>().unwrap() + 1).to_string();
            parts.join(" ") + "\n"
        })
        .collect();
    std::fs::write(&idx, broken).unwrap();
    let third = write_layer_with(store.blobs(), &opts, |s| {
        produce(s, &files, Some("d/f0003"))
    })
    .unwrap();
    assert_eq!(third.digest, fresh.digest);
}
