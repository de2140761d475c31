//! A read-only look at a stack of layer snapshots without mounting them:
//! what a path is in the image, with overlay whiteouts and opaque
//! directories applied. A COPY step uses it to learn whether its destination
//! exists and what its parent directories look like, so that it can stream
//! its files straight into a layer.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

pub struct LowerView {
    /// Snapshot folders, topmost first.
    lowers: Vec<PathBuf>,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &std::path::Path) -> bool {
    let mut v = [0u8; 1];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut v), Ok(1) if v[0] == b'y')
}

impl LowerView {
    pub fn new(lowers: Vec<PathBuf>) -> LowerView {
        LowerView { lowers }
    }

    /// What `rel` (no leading `/`) is in the image, without following a
    /// symlink at its end; `None` when it does not exist.
    pub fn lookup(&self, rel: &str) -> Option<Metadata> {
        self.locate(rel).map(|(_, m)| m)
    }

    /// `path` with the image's symlinks followed inside the root (an
    /// absolute target starts again at the root, `..` stops there), as a
    /// relative path; components that do not exist are kept as written.
    pub fn resolve(&self, path: &str) -> String {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(String::from)
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let candidate = if cur.is_empty() {
                c.clone()
            } else {
                format!("{}/{c}", cur.join("/"))
            };
            let target = match self.locate(&candidate) {
                Some((p, m)) if m.file_type().is_symlink() && hops < 40 => {
                    std::fs::read_link(p).ok()
                }
                _ => None,
            };
            match target {
                Some(t) => {
                    hops += 1;
                    let t = t.to_string_lossy().to_string();
                    if t.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(
                        t.split('/')
                            .filter(|c| !c.is_empty() && *c != ".")
                            .rev()
                            .map(String::from),
                    );
                }
                None => cur.push(c),
            }
        }
        cur.join("/")
    }

    /// Where `rel` is in the layer that gives it, and what it is there.
    fn locate(&self, rel: &str) -> Option<(PathBuf, Metadata)> {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return self
                .lowers
                .first()
                .and_then(|l| l.symlink_metadata().ok().map(|m| (l.clone(), m)));
        }
        let comps: Vec<&str> = rel.split('/').collect();
        'layers: for lower in &self.lowers {
            // A whiteout or non-directory at a parent hides everything below;
            // an opaque parent hides the layers under this one.
            let mut p = lower.clone();
            let mut opaque_parent = false;
            for c in &comps[..comps.len() - 1] {
                p.push(c);
                match p.symlink_metadata() {
                    Ok(m) if is_whiteout(&m) || !m.is_dir() => return None,
                    Ok(_) => opaque_parent |= is_opaque(&p),
                    Err(_) => {
                        if opaque_parent {
                            return None;
                        }
                        continue 'layers;
                    }
                }
            }
            p.push(comps[comps.len() - 1]);
            match p.symlink_metadata() {
                Ok(m) if is_whiteout(&m) => return None,
                Ok(m) => return Some((p, m)),
                Err(_) if opaque_parent => return None,
                Err(_) => {}
            }
        }
        None
    }

    /// True when a component of `path` is a symlink in the image (the
    /// destination then has to be resolved in a mounted root filesystem).
    pub fn has_symlink(&self, path: &str) -> bool {
        let mut prefix = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            match self.lookup(&prefix) {
                Some(m) if m.file_type().is_symlink() => return true,
                Some(m) if !m.is_dir() => return false,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// The contents of a regular file of the image (`None` when missing).
    pub fn read(&self, rel: &str) -> Option<String> {
        let rel = rel.trim_matches('/');
        self.lookup(rel).filter(|m| m.is_file())?;
        self.lowers
            .iter()
            .find_map(|l| std::fs::read_to_string(l.join(rel)).ok())
    }

    /// `USER`'s spec resolved from the image's passwd and group files.
    pub fn resolve_user(
        &self,
        spec: &str,
    ) -> Result<berth_runner::user::ResolvedUser, crate::error::StepFailure> {
        let passwd = self.read("etc/passwd").unwrap_or_default();
        let group = self.read("etc/group").unwrap_or_default();
        berth_runner::user::resolve_from(&passwd, &group, spec)
            .map_err(|e| crate::error::StepFailure(e.to_string()))
    }
}
