//! Subordinate ids for rootless containers: the ranges `/etc/subuid` and
//! `/etc/subgid` give the caller, mapped with the setuid `newuidmap` and
//! `newgidmap` (shadow's uidmap package), as rootless podman does. Without
//! them a rootless container has one id: the caller, as root.

use std::path::Path;

/// The first range `file` gives the user `name` (or uid `id`): (start, count).
pub fn range(file: &Path, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let ours = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let (start, count) = (start.parse().ok()?, count.parse().ok()?);
        (ours && count > 0).then_some((start, count))
    })
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The (uid, gid) ranges for the calling user when both files list it and
/// newuidmap/newgidmap are installed.
pub fn for_caller() -> Option<((u32, u32), (u32, u32))> {
    if !(on_path("newuidmap") && on_path("newgidmap")) {
        return None;
    }
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    let group = nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map(|g| g.name);
    let u = range(Path::new("/etc/subuid"), user.as_deref(), uid.as_raw())?;
    // subgid is keyed by user, as shadow's tools read it.
    let g = range(Path::new("/etc/subgid"), user.as_deref(), uid.as_raw())
        .or_else(|| range(Path::new("/etc/subgid"), group.as_deref(), gid.as_raw()))?;
    Some((u, g))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn finds_a_users_range_by_name_or_id() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536\n1001:200000:1000\nbob:0:0\n").unwrap();
        assert_eq!(range(&f, Some("alice"), 1000), Some((100000, 65536)));
        assert_eq!(range(&f, Some("carol"), 1001), Some((200000, 1000)));
        assert_eq!(range(&f, Some("bob"), 7), None);
        assert_eq!(range(&f, None, 5), None);
    }
}
