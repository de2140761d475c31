//! `-u user[:group]` resolved from the image's `/etc/passwd` and `/etc/group`,
//! as docker does; numeric ids always work.

use crate::error::{Error, Result};
use std::path::Path;

/// The resolved user: uid, gid, supplementary groups and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(String::from).collect())
        .collect()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`).
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let read = |f: &str| std::fs::read_to_string(rootfs.join(f)).unwrap_or_default();
    resolve_from(&read("etc/passwd"), &read("etc/group"), spec)
}

/// Resolves `spec` against the text of a passwd and a group file. A group
/// given with the user is the only group (no supplementary ones), as runc's
/// and BuildKit's lookup does it.
pub fn resolve_from(passwd: &str, group_file: &str, spec: &str) -> Result<ResolvedUser> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = lines(passwd);
    let entry = passwd
        .iter()
        .find(|f| f.len() >= 4 && (f[0] == user || f[2] == user));
    let (uid, mut gid, home, name) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f.get(5).cloned().unwrap_or_else(|| "/".into()),
            f[0].clone(),
        ),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), String::new()),
        (None, Err(_)) => {
            return Err(Error::Setup(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    let groups = lines(group_file);
    if let Some(g) = group {
        gid = match groups
            .iter()
            .find(|f| f.len() >= 3 && (f[0] == g || f[2] == g))
        {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| {
                Error::Setup(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    }
    let additional_gids = if name.is_empty() || group.is_some() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect()
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_groups() {
        let dir = std::env::temp_dir().join(format!("berth-user-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        assert_eq!(resolve(&dir, "").unwrap().uid, 0);
        let app = resolve(&dir, "app").unwrap();
        assert_eq!(
            (
                app.uid,
                app.gid,
                app.additional_gids.clone(),
                app.home.as_str()
            ),
            (1000, 1000, vec![10], "/home/app")
        );
        let explicit = resolve(&dir, "app:wheel").unwrap();
        assert_eq!((explicit.gid, explicit.additional_gids), (10, vec![]));
        assert_eq!(
            resolve(&dir, "4242:4343").unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 4343,
                additional_gids: vec![],
                home: "/".into()
            }
        );
        assert!(resolve(&dir, "nobody")
            .unwrap_err()
            .to_string()
            .contains("unable to find user nobody"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
