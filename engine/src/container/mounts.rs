//! A container's mounts from its host config: `Binds` (`-v`) and `Mounts`
//! (`--mount`) as OCI mounts; named volumes are made on first use and
//! seeded with what the image has at their path.

use crate::error::{fail, Result};
use crate::model::MountSpec;
use berth_runner::bundle;
use berth_store::Store;
use oci_spec::runtime::Mount;
use std::path::Path;

/// A mount, and the name of the anonymous volume made for it, if any.
pub(crate) type Mounted = (Mount, Option<String>);

/// `HOST_PATH:CTR[:ro|rw]` (a bind mount of a host path),
/// `NAME:CTR[:ro|rw]` (a named volume) or `CTR` (an anonymous volume).
pub(crate) fn bind(store: &Store, rootfs: &Path, v: &str) -> Result<Mounted> {
    let parts: Vec<&str> = v.split(':').collect();
    if let [ctr] = parts.as_slice() {
        if !ctr.starts_with('/') {
            fail!(
                Invalid,
                "invalid volume specification: {v:?}: the container path must be absolute"
            );
        }
        let name = crate::volume::random_id()?;
        return Ok((volume(store, rootfs, &name, ctr, false)?, Some(name)));
    }
    let (host, ctr, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => fail!(
            Invalid,
            "invalid volume specification: {v:?} (use HOST_PATH:CONTAINER_PATH[:ro|rw])"
        ),
    };
    if !ctr.starts_with('/') {
        fail!(
            Invalid,
            "invalid volume specification: {v:?}: the container path must be absolute"
        );
    }
    if is_root(ctr) {
        fail!(
            Invalid,
            "invalid volume specification: '{v}': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
    }
    let readonly = match mode {
        "ro" => true,
        "rw" => false,
        other => fail!(
            Invalid,
            "invalid mode {other:?} in volume {v:?}: use ro or rw"
        ),
    };
    if !host.starts_with('/') {
        return Ok((volume(store, rootfs, host, ctr, readonly)?, None));
    }
    let Ok(source) = std::fs::canonicalize(host) else {
        fail!(
            Invalid,
            "invalid mount config: bind source path does not exist: {host}"
        );
    };
    Ok((bundle::bind(&source, ctr, readonly)?, None))
}

/// `/`, however written (`//`, `/./`): a mount there would hide the
/// container's whole root.
fn is_root(ctr: &str) -> bool {
    Path::new(ctr).components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::CurDir
        )
    })
}

/// Named volume `name` at `ctr`, made if need be and seeded from the image
/// the first time a container mounts it.
pub(crate) fn volume(
    store: &Store,
    rootfs: &Path,
    name: &str,
    ctr: &str,
    readonly: bool,
) -> Result<Mount> {
    let (vol, _) = store.volume_create(name)?;
    if store.volume_claim_seed(name)? && berth_store::volume::is_empty(&vol.mountpoint) {
        seed_volume(rootfs, ctr, &vol.mountpoint)?;
    }
    Ok(bundle::bind(&vol.mountpoint, ctr, readonly)?)
}

/// One `--mount`: a bind mount of a host path, a named volume (seeded from
/// the image on first use, as `-v`; a new anonymous one without a source)
/// or a tmpfs.
pub(crate) fn mount(store: &Store, rootfs: &Path, m: &MountSpec) -> Result<Mounted> {
    if !m.target.starts_with('/') {
        fail!(
            Invalid,
            "invalid mount config: target {:?} must be an absolute path",
            m.target
        );
    }
    if is_root(&m.target) {
        fail!(
            Invalid,
            "invalid mount config for type \"{}\": invalid specification: destination can't be '/'",
            m.kind
        );
    }
    match m.kind.as_str() {
        "bind" => {
            if m.source.is_empty() {
                fail!(
                    Invalid,
                    "invalid mount config for type \"bind\": source is required for a bind mount"
                );
            }
            let Ok(path) = std::fs::canonicalize(&m.source) else {
                fail!(
                    Invalid,
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                );
            };
            Ok((bundle::bind(&path, &m.target, m.read_only)?, None))
        }
        "volume" => {
            let (name, anonymous) = match m.source.as_str() {
                "" => (crate::volume::random_id()?, true),
                n => (n.to_string(), false),
            };
            if name.starts_with('/') {
                fail!(
                    Invalid,
                    "invalid mount config for type \"volume\": source must be a volume name, not a path: {name}"
                );
            }
            let mount = volume(store, rootfs, &name, &m.target, m.read_only)?;
            Ok((mount, anonymous.then_some(name)))
        }
        "tmpfs" => {
            let opts = m.tmpfs_options.clone().unwrap_or_default();
            let size = (opts.size_bytes > 0).then_some(opts.size_bytes as u64);
            let mut mount = bundle::tmpfs(&m.target, size)?;
            let mut options = mount.options().clone().unwrap_or_default();
            let mode = if opts.mode == 0 { 0o1777 } else { opts.mode };
            options.push(format!("mode={mode:o}"));
            if m.read_only {
                options.push("ro".into());
            }
            mount.set_options(Some(options));
            Ok((mount, None))
        }
        other => fail!(
            Invalid,
            "invalid mount type {other:?}: use bind, volume or tmpfs"
        ),
    }
}

/// Copies what the image has at `ctr` into a new volume, as docker does. The
/// path is resolved inside the root filesystem: an image's symlink cannot
/// point the copy at the host.
fn seed_volume(rootfs: &Path, ctr: &str, dest: &Path) -> Result<()> {
    let Ok(root) = rootfs.canonicalize() else {
        fail!(Failed, "cannot resolve {}", rootfs.display());
    };
    let Ok(src) = root.join(ctr.trim_start_matches('/')).canonicalize() else {
        return Ok(());
    };
    if !src.starts_with(&root) || !src.is_dir() {
        return Ok(());
    }
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .output()
        .map_err(|e| crate::Error::Failed(format!("cannot run cp to seed the volume: {e}")))?;
    if !out.status.success() {
        fail!(
            Failed,
            "cannot copy {ctr} of the image into the volume: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
