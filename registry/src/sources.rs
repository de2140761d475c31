//! Which repositories of which registries are known to hold a blob (it was
//! pulled from or pushed to them), so a push to another repository of the
//! same registry can mount it instead of uploading it again — what docker's
//! distribution metadata does. One small file per blob under the store root:
//! `distribution/<hex>`, a line per `host/repository`.

use berth_store::{Digest, Store};
use std::io::Write;
use std::path::PathBuf;

fn path(store: &Store, digest: &Digest) -> PathBuf {
    store.root().join("distribution").join(digest.hex())
}

/// Remembers that `host/repo` holds `digest`. Best effort: losing it only
/// costs a mount.
pub fn remember(store: &Store, digest: &Digest, host: &str, repo: &str) {
    let line = format!("{host}/{repo}");
    if known(store, digest).contains(&line) {
        return;
    }
    let p = path(store, digest);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One short O_APPEND write per line: concurrent writers never interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// Every `host/repository` known to hold `digest`.
pub fn known(store: &Store, digest: &Digest) -> Vec<String> {
    std::fs::read_to_string(path(store, digest))
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// The repositories of `host` other than `except` known to hold `digest`.
pub fn mount_candidates(store: &Store, digest: &Digest, host: &str, except: &str) -> Vec<String> {
    let prefix = format!("{host}/");
    known(store, digest)
        .into_iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
        .filter(|r| r != except)
        .collect()
}
