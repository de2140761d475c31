//! COPY and ADD: sources found in the context (or a stage or image), keyed by
//! their content, then streamed as a tar into the step's root filesystem
//! through the store's safe extraction (every path resolved inside the root,
//! so a symlink in the image cannot send a file to the host), and the
//! overlay's upper dir committed as the layer.

use crate::build::Builder;
use crate::chmod::Chmod;
use crate::context::{Context, ContextFile, FileInfo};
use crate::error::StepFailure;
use crate::fetch;
use crate::ignore::Ignore;
use crate::key::CacheKey;
use crate::lower::LowerView;
use crate::plan::{Source, Stage};
use crate::progress::Step;
use crate::run::scratch_name;
use crate::state::State;
use berth_grammar::{Copy, Instruction, Source as CopySource};
use berth_store::layer::{extract, ExtractOptions};
use berth_store::snapshot::MountKind;
use berth_store::LayerOptions;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

type StepResult = Result<(), StepFailure>;

/// `rel` inside `root`, symlinks followed but never out of `root`.
pub fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf, StepFailure> {
    let root = fs::canonicalize(root)?;
    let mut cur = root.clone();
    let mut todo: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .rev()
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(&c);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(StepFailure(format!(
                        "too many levels of symbolic links in {rel}"
                    )));
                }
                let target = fs::read_link(&next)?;
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    cur = root.clone();
                }
                todo.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .map(String::from)
                        .rev(),
                );
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// A plain recursive copy (for writable bind mounts of a RUN step).
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(src).unwrap_or(Path::new(""));
        let to = dst.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &to)?;
        } else if ft.is_file() {
            fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// One thing to put into the root filesystem.
enum Item {
    /// A file, directory or symlink at `path` (on this machine).
    Path {
        path: PathBuf,
        meta: FileInfo,
        target: String,
    },
    /// A heredoc's text.
    Data { data: Vec<u8>, target: String },
    /// A local archive to unpack under `target`.
    Archive { path: PathBuf, target: String },
    /// A folder that must exist (a directory source's destination, made
    /// like the parents even when the source is empty).
    Folder { target: String },
    /// A URL whose checksum is known, fetched only on a cache miss.
    Url {
        url: String,
        checksum: String,
        target: String,
    },
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")
}

fn join_target(dir: &str, name: &str) -> String {
    if name.is_empty() {
        dir.trim_end_matches('/').to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), name)
    }
}

fn basename(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// True when the file starts like a tar archive, compressed or not.
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &head[257..262] == b"ustar")
}

fn open_archive(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut f = io::BufReader::new(fs::File::open(path)?);
    let head = io::BufRead::fill_buf(&mut f)?.to_vec();
    Ok(if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(f))
    } else {
        berth_store::layer::decompressed(f)?
    })
}

/// `ADD --checksum` of a local file: its sha256 must be the one given.
fn verify_checksum(path: &Path, name: &str, want: &str) -> Result<(), StepFailure> {
    use sha2::Digest;
    let mut f =
        fs::File::open(path).map_err(|e| StepFailure(format!("ADD --checksum: {name}: {e}")))?;
    if f.metadata()?.is_dir() {
        return Err(StepFailure(format!(
            "ADD --checksum: {name} is a directory; a checksum names one file"
        )));
    }
    let mut h = sha2::Sha256::new();
    io::copy(&mut f, &mut h)?;
    let got = format!("sha256:{:x}", h.finalize());
    if got != want {
        return Err(StepFailure(format!(
            "digest mismatch for {name}: expected {want}, got {got}"
        )));
    }
    Ok(())
}

/// `--chown=user[:group]` as BuildKit's file op reads it: a number is that
/// id (a user number is its group number too); a name found in the image's
/// passwd gives its uid and primary group, a group name found in its group
/// file that gid. A name it does not find leaves the id at 0, silently.
fn parse_chown(rootfs: &Path, spec: &str) -> (u32, u32) {
    let read = |f: &str| fs::read_to_string(rootfs.join(f)).unwrap_or_default();
    let find = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == name)
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => find(&read("etc/passwd"), user)
            .filter(|f| f.len() >= 4)
            .map(|f| (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0)))
            .unwrap_or((0, 0)),
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find(&read("etc/group"), g)
                .and_then(|f| f[2].parse().ok())
                .unwrap_or(gid),
        };
    }
    (uid, gid)
}

/// What `COPY --from` reads from, and the key that names its content.
enum Origin {
    Stage(std::sync::Arc<State>, String),
    Image(Box<berth_store::StoredImage>, String),
    Scratch,
}

impl Origin {
    fn key(&self) -> &str {
        match self {
            Origin::Stage(_, k) | Origin::Image(_, k) => k,
            Origin::Scratch => "scratch",
        }
    }
}

impl Builder {
    pub(crate) fn copy(
        &self,
        stage: &Stage,
        state: &mut State,
        _ins: &Instruction,
        c: &Copy,
        add: bool,
        step: &Step,
    ) -> StepResult {
        let name = if add { "ADD" } else { "COPY" };
        let vars = state.vars();
        let expand = |w: &str| -> Result<String, StepFailure> {
            let e = self.lex.expand(w, &vars)?;
            self.note_used(state, &e.matched);
            Ok(e.result)
        };
        let dest_raw = expand(&c.dest.value)?;
        let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", state.workdir().trim_end_matches('/'), dest_raw)
        };
        let dest = crate::meta::resolve_workdir("/", &dest);
        let chown = c.chown.as_ref().map(|w| expand(&w.value)).transpose()?;
        let chmod = c
            .chmod
            .as_ref()
            .map(|w| expand(&w.value).and_then(|m| Chmod::parse(&m)))
            .transpose()?;
        // BuildKit's history text: --parents, --chown and --chmod as given
        // (expanded), the sources (paths, then heredocs), the destination;
        // never --from, --link, --exclude or --checksum.
        let mut created_by = name.to_string();
        if c.parents {
            created_by.push_str(" --parents");
        }
        if let Some(o) = &chown {
            created_by.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &c.chmod {
            created_by.push_str(&format!(" --chmod={}", expand(&m.value)?));
        }
        for src in &c.sources {
            if let CopySource::Path(w) = src {
                created_by.push(' ');
                created_by.push_str(&expand(&w.value)?);
            }
        }
        for src in &c.sources {
            if let CopySource::Heredoc(h) = src {
                created_by.push_str(&format!(" <<{}", h.name));
            }
        }
        created_by.push_str(&format!(" {dest_raw} # buildkit"));
        let excludes: Vec<String> = c
            .exclude
            .iter()
            .map(|w| expand(&w.value))
            .collect::<Result<_, _>>()?;
        let exclude = Ignore::new(&excludes).map_err(|e| StepFailure(e.to_string()))?;

        // Where the sources come from, and what names that origin in the key.
        let mut origin_mount = None;
        let mut shortcut = None;
        let (origin, origin_key): (Context, Option<String>) = match &c.from {
            None => (
                Context::open(self.ctx.root(), None, None).map_err(StepFailure::from)?,
                None,
            ),
            Some(f) => {
                let from = self.expand_from(state, &f.value)?;
                let origin = match self.plan.source(&from, stage.index) {
                    Source::Stage(i) => {
                        let s = self.stage_result(i)?;
                        Origin::Stage(s.clone(), s.key.clone())
                    }
                    Source::Image(n) => {
                        let img = self.image(&n).map_err(StepFailure)?;
                        let k = img.id.to_string();
                        Origin::Image(Box::new(img), k)
                    }
                    Source::Scratch => Origin::Scratch,
                };
                // The origin's key names its content (its diff IDs), so the
                // sources' names, options and destination decide the result:
                // a hit on this key needs no files of the origin at all.
                let mut sk = CacheKey::new(&format!("{name}-FROM"), &state.key);
                sk.field(&dest_raw).field(&dest).field(&format!(
                    "{chown:?} {chmod:?} {excludes:?} {} {} {add}",
                    c.parents, c.link
                ));
                sk.field(origin.key()).field(&format!(
                    "{:?} {:?} {:?}",
                    c.checksum.as_ref().map(|w| &w.value),
                    c.keep_git_dir,
                    c.unpack
                ));
                let mut paths_only = true;
                for src in &c.sources {
                    match src {
                        CopySource::Path(w) => {
                            sk.field(&expand(&w.value)?);
                        }
                        _ => paths_only = false,
                    }
                }
                if paths_only {
                    let sk = sk.finish();
                    if let Some(entry) = self.cache_lookup(stage, &sk)? {
                        let chain = entry.settle.clone().unwrap_or_else(|| sk.clone());
                        state.apply_entry(entry, chain.clone());
                        self.note_step(state, &sk, Some(&chain));
                        step.cached();
                        return Ok(());
                    }
                    shortcut = Some(sk);
                }
                let (layers, k) = match origin {
                    Origin::Stage(s, k) => (self.local_layers(&s)?, k),
                    Origin::Image(img, k) => (berth_store::snapshot::image_layers(&img)?, k),
                    Origin::Scratch => (Vec::new(), "scratch".into()),
                };
                let m = self
                    .store
                    .prepare_layers(&layers, &scratch_name("from"), false)?;
                let ctx = Context::open(&m.merged, None, None)?;
                origin_mount = Some(m);
                (ctx, Some(k))
            }
        };
        let from_context = origin_key.is_none();

        let mut key = CacheKey::new(name, &state.key);
        key.field(&dest_raw).field(&dest).field(&format!(
            "{chown:?} {chmod:?} {excludes:?} {} {}",
            c.parents, c.link
        ));
        // A stage's or image's files are keyed by what they are (names,
        // modes, owners, contents), not by the origin's key: an origin built
        // again with the same files keeps the step cached.
        if origin_key.is_some() {
            key.field("from");
        }
        let mut items = Vec::new();
        // Several sources to a destination without a trailing slash are
        // copied to it one after the other, the last one winning, as
        // BuildKit's chained copies do (docker's classic builder refused it).
        let multiple = c.sources.len() > 1 && dest_is_dir;
        let downloads = self.store.root().join("downloads");
        let mut downloaded: Vec<PathBuf> = Vec::new();
        for src in &c.sources {
            match src {
                CopySource::Heredoc(h) => {
                    let text = if h.expand {
                        expand(&h.chomped_content())?
                    } else {
                        h.chomped_content()
                    };
                    let target = if dest_is_dir {
                        join_target(&dest, &h.name)
                    } else {
                        dest.clone()
                    };
                    key.field("heredoc").field(&target).field(&text);
                    items.push(Item::Data {
                        data: text.into_bytes(),
                        target,
                    });
                }
                CopySource::Path(w) => {
                    let s = expand(&w.value)?;
                    if is_url(&s) {
                        if !add {
                            return Err(StepFailure(format!(
                                "{name} cannot copy from a URL ({s}); use ADD"
                            )));
                        }
                        if s.starts_with("git@") || s.ends_with(".git") {
                            return Err(StepFailure(format!(
                                "ADD {s}: git sources are not supported"
                            )));
                        }
                        let checksum = c
                            .checksum
                            .as_ref()
                            .map(|w| expand(&w.value).and_then(|v| fetch::parse_checksum(&v)))
                            .transpose()?;
                        let file_name = fetch::url_file_name(&s);
                        let target = if dest_is_dir || multiple {
                            join_target(&dest, &file_name)
                        } else {
                            dest.clone()
                        };
                        key.field("url").field(&s).field(&target);
                        match checksum {
                            // The checksum names the content: a cache hit
                            // needs no download.
                            Some(sum) => {
                                key.field(&sum);
                                items.push(Item::Url {
                                    url: s,
                                    checksum: sum,
                                    target,
                                });
                            }
                            None => {
                                let dl = fetch::download(&s, &downloads, None)?;
                                key.field(&dl.digest);
                                let meta = FileInfo::from(&fs::metadata(&dl.path)?).without_owner();
                                downloaded.push(dl.path.clone());
                                items.push(Item::Path {
                                    path: dl.path,
                                    meta,
                                    target,
                                });
                            }
                        }
                        continue;
                    }
                    let matches = if from_context {
                        self.ctx.resolve(&s)?
                    } else {
                        origin.resolve(&s)?
                    };
                    let ctx = if from_context { &self.ctx } else { &origin };
                    if add {
                        if let Some(w) = &c.checksum {
                            let want = fetch::parse_checksum(&expand(&w.value)?)?;
                            for m in &matches {
                                verify_checksum(&resolve_in(ctx.root(), m)?, m, &want)?;
                            }
                            key.field(&want);
                        }
                    }
                    let several = multiple || matches.len() > 1;
                    for m in matches {
                        self.add_items(
                            ctx,
                            !from_context,
                            &m,
                            &dest,
                            dest_is_dir || several,
                            c.parents,
                            add,
                            &exclude,
                            &mut key,
                            &mut items,
                        )?;
                    }
                }
            }
        }
        if !from_context {
            let mut owners = blake3::Hasher::new();
            for it in &items {
                if let Item::Path { meta, target, .. } = it {
                    let (u, g) = meta.owner();
                    owners.update(&(target.len() as u64).to_le_bytes());
                    owners.update(target.as_bytes());
                    owners.update(&u.to_le_bytes());
                    owners.update(&g.to_le_bytes());
                }
            }
            key.field(owners.finalize().to_hex().as_str());
        }
        let key = key.finish();
        let result = self.copy_with_key(
            stage,
            state,
            step,
            key,
            created_by,
            items,
            dest,
            dest_is_dir,
            multiple,
            chown,
            chmod.as_ref(),
            downloads.as_path(),
            &mut downloaded,
            origin_mount,
            shortcut,
        );
        for p in downloaded {
            let _ = fs::remove_file(p);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_with_key(
        &self,
        stage: &Stage,
        state: &mut State,
        step: &Step,
        key: String,
        created_by: String,
        items: Vec<Item>,
        dest: String,
        dest_is_dir: bool,
        multiple: bool,
        chown: Option<String>,
        chmod: Option<&Chmod>,
        downloads: &Path,
        downloaded: &mut Vec<PathBuf>,
        origin_mount: Option<berth_store::snapshot::Mount>,
        shortcut: Option<String>,
    ) -> StepResult {
        // A COPY --from chains to its content's key whichever key hit, and
        // its origin's key remembers that one.
        if self.reuse_cached(stage, state, &key, step)? {
            if let Some(sk) = &shortcut {
                self.cache_record_settled(sk, state, Some(&key))?;
                self.note_step(state, sk, Some(&key));
            }
            return Ok(());
        }

        let opts = LayerOptions {
            compression: self.req.compression,
            ..LayerOptions::default()
        };
        let epoch = opts.source_date_epoch;
        // Numeric owners (or none) and a destination without symlinks in the
        // image: the files stream straight into the layer. Otherwise the
        // step's root filesystem is mounted and the files extracted into it.
        let numeric_owner = chown
            .as_deref()
            .map(|s| s.split(':').all(|p| p.parse::<u32>().is_ok()))
            .unwrap_or(true);
        let mut lowers = Vec::new();
        let pairs = self.local_layers(state)?;
        for (l, d) in pairs.iter().rev() {
            lowers.push(self.store.layer_snapshot(l, d)?);
        }
        let view = LowerView::new(lowers);
        let direct = numeric_owner && !view.has_symlink(&dest);
        let rootfs = if direct {
            None
        } else {
            let rootfs = self
                .store
                .prepare_layers(&pairs, &scratch_name("copy"), false)?;
            if rootfs.kind != MountKind::Overlay {
                return Err(StepFailure(
                    "COPY needs overlayfs to capture the step's changes, and it cannot be mounted here"
                        .into(),
                ));
            }
            Some(rootfs)
        };
        let dest_exists_as_dir = match &rootfs {
            None => view
                .lookup(dest.trim_start_matches('/'))
                .is_some_and(|m| m.is_dir()),
            Some(r) => resolve_in(&r.merged, &dest)?.is_dir(),
        };
        let mut items = prepare_items(
            items,
            &dest,
            dest_is_dir || multiple || !dest_exists_as_dir,
            downloads,
            downloaded,
        )?;
        let layer = if let Some(rootfs) = rootfs {
            let result = (|| -> Result<Option<berth_store::Layer>, StepFailure> {
                let owner = chown.as_ref().map(|spec| parse_chown(&rootfs.merged, spec));
                // A destination through a symlink of the image (dangling or
                // absolute) lands where the link points, inside the root.
                let merged = fs::canonicalize(&rootfs.merged)?;
                let resolved = resolve_in(&merged, &dest)?;
                let resolved = format!(
                    "/{}",
                    resolved
                        .strip_prefix(&merged)
                        .map(|p| p.to_string_lossy().to_string())
                        .unwrap_or_default()
                );
                if resolved != dest {
                    retarget(&mut items, &dest, &resolved);
                }
                // Folders the step creates get the owner and --chmod mode of
                // the files, as BuildKit's copy creates them.
                let missing = missing_parents(&items, |d| {
                    resolve_in(&merged, d).is_ok_and(|p| p.symlink_metadata().is_ok())
                });
                let dirs =
                    parent_entries(&missing, owner, chmod, clamp(time_of(&self.created), epoch));
                write_items(&rootfs.merged, &dirs, &items, owner, chmod, epoch)?;
                let upper_empty = fs::read_dir(&rootfs.upper)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(true);
                if upper_empty {
                    return Ok(None);
                }
                Ok(Some(berth_store::layer::write_layer_from_dir(
                    self.store.blobs(),
                    &rootfs.upper,
                    &opts,
                )?))
            })();
            let removed = rootfs.remove();
            drop(origin_mount);
            let layer = result?;
            removed?;
            layer
        } else {
            let owner = chown.as_deref().map(|s| {
                let mut ids = s.split(':').map(|p| p.parse::<u32>().unwrap_or(0));
                let uid = ids.next().unwrap_or(0);
                (uid, ids.next().unwrap_or(uid))
            });
            let created = time_of(&self.created);
            let layer = write_direct(
                self.store.blobs(),
                &opts,
                &items,
                &view,
                owner,
                chmod,
                epoch,
                created,
            );
            drop(origin_mount);
            Some(layer?)
        };
        state.commit(&self.created, created_by, layer);
        if let Some(sk) = &shortcut {
            self.cache_record_settled(sk, state, Some(&key))?;
            self.note_step(state, sk, Some(&key));
        }
        self.finish_step(state, &key, step)
    }

    /// Adds what one matched source gives to `items` and to the key.
    #[allow(clippy::too_many_arguments)]
    fn add_items(
        &self,
        ctx: &Context,
        keep_owners: bool,
        m: &str,
        dest: &str,
        into_dir: bool,
        parents: bool,
        add: bool,
        exclude: &Ignore,
        key: &mut CacheKey,
        items: &mut Vec<Item>,
    ) -> StepResult {
        let top = resolve_in(ctx.root(), m)?;
        let root = fs::canonicalize(ctx.root())?;
        if !top.starts_with(&root) {
            return Err(StepFailure(format!("{m} points outside the source")));
        }
        // Files of a stage or image keep their owners (BuildKit's copy
        // preserves them); the build context's are root's.
        let owned = |meta: FileInfo| {
            if keep_owners {
                meta
            } else {
                meta.without_owner()
            }
        };
        let meta = owned(FileInfo::from(
            &fs::metadata(&top).map_err(|e| StepFailure(format!("{m}: {e}")))?,
        ));
        // The top-level source is followed when it is a symlink.
        let rel_top = top
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let base_target = |sub: &str| -> String {
            let name = if parents {
                m.to_string()
            } else {
                String::new()
            };
            join_target(&join_target(dest, &name), sub)
        };
        if meta.is_dir() {
            let files: Vec<ContextFile> = ctx
                .walk(&rel_top)?
                .into_iter()
                .filter(|f| {
                    let sub = f
                        .rel
                        .strip_prefix(&rel_top)
                        .unwrap_or(&f.rel)
                        .trim_start_matches('/');
                    sub.is_empty() || !exclude.matches(sub).unwrap_or(false)
                })
                .collect();
            key.field("dir")
                .field(m)
                .field(&ctx.digest(&rel_top, &files)?);
            items.push(Item::Folder {
                target: base_target(""),
            });
            for f in files {
                let sub = f
                    .rel
                    .strip_prefix(&rel_top)
                    .unwrap_or(&f.rel)
                    .trim_start_matches('/')
                    .to_string();
                if sub.is_empty() {
                    continue;
                }
                items.push(Item::Path {
                    path: ctx.root().join(&f.rel),
                    meta: owned(f.meta),
                    target: base_target(&sub),
                });
            }
            return Ok(());
        }
        if exclude.matches(basename(m)).unwrap_or(false) || exclude.matches(m).unwrap_or(false) {
            return Ok(());
        }
        let target = if parents {
            join_target(dest, m)
        } else if into_dir {
            join_target(dest, basename(m))
        } else {
            dest.to_string()
        };
        let file = ContextFile {
            rel: rel_top.clone(),
            meta,
        };
        key.field("file")
            .field(m)
            .field(&target)
            .field(&ctx.digest("", &[file])?);
        if add && is_archive(&top) {
            items.push(Item::Archive {
                path: top,
                target: dest.to_string(),
            });
        } else {
            items.push(Item::Path {
                path: top,
                meta,
                target,
            });
        }
        Ok(())
    }
}

/// Downloads the URLs whose checksum was known, and sends a single file
/// copied onto an existing directory into it, keeping its name
/// (`dest_names_file` is false exactly then).
fn prepare_items(
    items: Vec<Item>,
    dest: &str,
    dest_names_file: bool,
    downloads: &Path,
    downloaded: &mut Vec<PathBuf>,
) -> Result<Vec<Item>, StepFailure> {
    items
        .into_iter()
        .map(|it| match it {
            Item::Url {
                url,
                checksum,
                target,
            } => {
                let dl = fetch::download(&url, downloads, Some(&checksum))?;
                let meta = FileInfo::from(&fs::metadata(&dl.path)?).without_owner();
                downloaded.push(dl.path.clone());
                Ok(Item::Path {
                    path: dl.path,
                    meta,
                    target,
                })
            }
            Item::Path { path, meta, target }
                if !dest_names_file && !meta.is_dir() && target == dest =>
            {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();

                Ok(Item::Path {
                    path,
                    meta,
                    target: join_target(dest, &name),
                })
            }
            other => Ok(other),
        })
        .collect()
}

pub(crate) fn time_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Where an item lands, relative to the root.
fn item_target(it: &Item) -> &str {
    match it {
        Item::Path { target, .. }
        | Item::Data { target, .. }
        | Item::Archive { target, .. }
        | Item::Folder { target }
        | Item::Url { target, .. } => strip_root(target),
    }
}

/// Writes the step's layer straight from its sources: the parent
/// directories (as the image has them, or new ones owned like the files),
/// then the items.
#[allow(clippy::too_many_arguments)]
fn write_direct(
    blobs: &berth_store::BlobStore,
    opts: &LayerOptions,
    items: &[Item],
    view: &LowerView,
    owner: Option<(u32, u32)>,
    chmod: Option<&Chmod>,
    epoch: Option<i64>,
    created: i64,
) -> Result<berth_store::Layer, StepFailure> {
    let parents = missing_parents(items, |_| false);
    let layer = berth_store::layer::write_layer_with(blobs, opts, |w| {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Complete);
        let new_mode = chmod.map_or(0o755, |c| c.apply(0o755, true));
        let new_owner = owner.unwrap_or((0, 0));
        for d in &parents {
            let mut h = folder_header(view, d, new_mode, new_owner, clamp(created, epoch), epoch);
            b.append_data(&mut h, format!("{d}/"), io::empty())?;
        }
        for it in items {
            append_item(&mut b, it, owner, chmod, epoch, Some(view))
                .map_err(|StepFailure(m)| io::Error::other(m))?;
        }
        b.finish()
    })?;
    Ok(layer)
}

/// The folders above the items (relative to the root, outermost first)
/// that are not items themselves and for which `exists` says no.
fn missing_parents(
    items: &[Item],
    exists: impl Fn(&str) -> bool,
) -> std::collections::BTreeSet<String> {
    let targets: std::collections::HashSet<&str> = items
        .iter()
        .filter(|i| !matches!(i, Item::Archive { .. } | Item::Folder { .. }))
        .map(item_target)
        .collect();
    let mut parents = std::collections::BTreeSet::new();
    for it in items {
        let t = item_target(it);
        let mut anc = Path::new(t).parent();
        if matches!(it, Item::Archive { .. } | Item::Folder { .. }) {
            anc = Some(Path::new(t));
        }
        while let Some(d) = anc.filter(|d| !d.as_os_str().is_empty()) {
            let ds = d.to_string_lossy().to_string();
            if !targets.contains(ds.as_str()) && !exists(&ds) {
                parents.insert(ds);
            }
            anc = d.parent();
        }
    }
    parents
}

/// The header of a folder a layer writes above its files: as the image has
/// it, else a new one with `mode`, `owner` and `mtime`.
pub(crate) fn folder_header(
    view: &LowerView,
    rel: &str,
    mode: u32,
    owner: (u32, u32),
    mtime: u64,
    epoch: Option<i64>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    match view.lookup(rel) {
        Some(m) if m.is_dir() => {
            h.set_mode(m.mode() & 0o7777);
            h.set_uid(u64::from(m.uid()));
            h.set_gid(u64::from(m.gid()));
            h.set_mtime(clamp(m.mtime(), epoch));
        }
        _ => {
            h.set_mode(mode);
            h.set_uid(u64::from(owner.0));
            h.set_gid(u64::from(owner.1));
            h.set_mtime(mtime);
        }
    }
    h
}

/// Tar headers for folders a step creates.
fn parent_entries(
    dirs: &std::collections::BTreeSet<String>,
    owner: Option<(u32, u32)>,
    chmod: Option<&Chmod>,
    mtime: u64,
) -> Vec<tar::Header> {
    dirs.iter()
        .filter_map(|d| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(chmod.map_or(0o755, |c| c.apply(0o755, true)));
            let (uid, gid) = owner.unwrap_or((0, 0));
            h.set_uid(u64::from(uid));
            h.set_gid(u64::from(gid));
            h.set_mtime(mtime);
            h.set_path(format!("{d}/")).ok()?;
            Some(h)
        })
        .collect()
}

/// Moves items aimed under `from` to the same place under `to`.
fn retarget(items: &mut [Item], from: &str, to: &str) {
    let from = from.trim_end_matches('/');
    let to = to.trim_end_matches('/');
    for it in items.iter_mut() {
        let target = match it {
            Item::Path { target, .. }
            | Item::Data { target, .. }
            | Item::Archive { target, .. }
            | Item::Folder { target }
            | Item::Url { target, .. } => target,
        };
        if target == from {
            *target = to.to_string();
        } else if let Some(rest) = target.strip_prefix(&format!("{from}/")) {
            *target = format!("{to}/{rest}");
        }
    }
}

fn clamp(t: i64, epoch: Option<i64>) -> u64 {
    let t = t.max(0);
    match epoch {
        Some(e) if t > e => e.max(0) as u64,
        _ => t as u64,
    }
}

fn header_for(
    meta: &FileInfo,
    kind: tar::EntryType,
    owner: Option<(u32, u32)>,
    chmod: Option<&Chmod>,
    epoch: Option<i64>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    let mode = chmod.map_or(meta.mode() & 0o7777, |c| {
        c.apply(meta.mode(), meta.is_dir())
    });
    h.set_mode(mode);
    let (uid, gid) = owner.unwrap_or(meta.owner());
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    let mut mtime = meta.mtime().max(0);
    if let Some(e) = epoch {
        mtime = mtime.min(e.max(0));
    }
    h.set_mtime(mtime as u64);
    h.set_size(0);
    h
}

/// Streams `items` as a tar into `rootfs` through the store's safe
/// extraction.
fn write_items(
    rootfs: &Path,
    dirs: &[tar::Header],
    items: &[Item],
    owner: Option<(u32, u32)>,
    chmod: Option<&Chmod>,
    epoch: Option<i64>,
) -> Result<(), StepFailure> {
    let (reader, writer) = io::pipe()?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(), StepFailure> {
            let mut b = tar::Builder::new(writer);
            b.mode(tar::HeaderMode::Complete);
            for h in dirs {
                let mut h = h.clone();
                let path = h.path()?.to_string_lossy().to_string();
                b.append_data(&mut h, path, io::empty())?;
            }
            for it in items {
                append_item(&mut b, it, owner, chmod, epoch, None)?;
            }
            b.finish()?;
            Ok(())
        });
        let mut reader = reader;
        let extracted = extract(&mut reader, rootfs, &ExtractOptions::default());
        // Drain so the producer never blocks on a full pipe after an error.
        let _ = io::copy(&mut reader, &mut io::sink());
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(StepFailure("the copy thread panicked".into())));
        extracted?;
        produced
    })
}

fn strip_root(target: &str) -> &str {
    target.trim_start_matches('/')
}

/// Appends one item. `view` (the image, when the tar is the layer itself)
/// lets an archive's implied folders (`a/b/c` without `a/` and `a/b/`) be
/// written as the unpacking creates them: as the image has them, else 0755
/// and root's.
fn append_item<W: Write>(
    b: &mut tar::Builder<W>,
    it: &Item,
    owner: Option<(u32, u32)>,
    chmod: Option<&Chmod>,
    epoch: Option<i64>,
    view: Option<&LowerView>,
) -> Result<(), StepFailure> {
    match it {
        Item::Data { data, target } => {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(chmod.map_or(0o644, |c| c.apply(0o644, false)));
            let (uid, gid) = owner.unwrap_or((0, 0));
            h.set_uid(uid as u64);
            h.set_gid(gid as u64);
            h.set_mtime(epoch.unwrap_or(0).max(0) as u64);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, strip_root(target), &data[..])?;
        }
        Item::Path { path, meta, target } => {
            let ft = meta.file_type();
            let name = strip_root(target);
            if ft.is_dir() {
                let mut h = header_for(meta, tar::EntryType::Directory, owner, chmod, epoch);
                b.append_data(&mut h, format!("{name}/"), io::empty())?;
            } else if ft.is_symlink() {
                let link = fs::read_link(path)?;
                let mut h = header_for(meta, tar::EntryType::Symlink, owner, None, epoch);
                h.set_mode(0o777);
                b.append_link(&mut h, name, link)?;
            } else if ft.is_file() {
                let mut h = header_for(meta, tar::EntryType::Regular, owner, chmod, epoch);
                h.set_size(meta.len());
                let f = fs::File::open(path)?;
                b.append_data(&mut h, name, f.take(meta.len()))?;
            }
            // Devices, fifos and sockets of a context are not copied.
        }
        Item::Url { url, .. } => {
            return Err(StepFailure(format!("{url} was not downloaded")));
        }
        // Made with the parents.
        Item::Folder { .. } => {}
        Item::Archive { path, target } => {
            let mut archive = tar::Archive::new(open_archive(path)?);
            let prefix = strip_root(target).trim_end_matches('/').to_string();
            // Names are cleaned inside the archive (`x/../y` is `y`, as
            // BuildKit's unpacking takes it); one that climbs out is refused.
            let join = |p: &Path| -> Result<String, StepFailure> {
                let raw = p.to_string_lossy();
                let p = crate::context::clean_relative(&raw).ok_or_else(|| {
                    StepFailure(format!("archive entry {raw:?} points outside the archive"))
                })?;
                let dir = if raw.ends_with('/') && !p.is_empty() {
                    "/"
                } else {
                    ""
                };
                Ok(if prefix.is_empty() {
                    format!("{p}{dir}")
                } else if p.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}/{p}{dir}")
                })
            };
            let mut dirs = std::collections::HashSet::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = entry.path()?.into_owned();
                let mut h = entry.header().clone();
                let name = join(&path)?;
                // The archive's own root (`./`) is the destination, which
                // keeps what it has (BuildKit's unpacking skips it).
                let bare = name.trim_end_matches('/');
                if bare.is_empty() || bare == prefix || bare.ends_with("/.") {
                    continue;
                }
                if let Some(view) = view {
                    let mut implied = Vec::new();
                    let mut anc = Path::new(bare).parent();
                    while let Some(d) = anc.filter(|d| d.as_os_str().len() > prefix.len()) {
                        let ds = d.to_string_lossy().to_string();
                        if !dirs.insert(ds.clone()) {
                            break;
                        }
                        implied.push(ds);
                        anc = d.parent();
                    }
                    let mtime = h.mtime().unwrap_or(0);
                    for d in implied.iter().rev() {
                        let mut dh = folder_header(view, d, 0o755, (0, 0), mtime, epoch);
                        b.append_data(&mut dh, format!("{d}/"), io::empty())?;
                    }
                    if h.entry_type() == tar::EntryType::Directory {
                        dirs.insert(bare.to_string());
                    }
                }
                match h.entry_type() {
                    tar::EntryType::Link => {
                        let link = match entry.link_name()? {
                            Some(l) => join(&l)?,
                            None => String::new(),
                        };
                        b.append_link(&mut h, &name, link)?;
                    }
                    tar::EntryType::Symlink => {
                        let link = entry
                            .link_name()?
                            .map(|l| l.into_owned())
                            .unwrap_or_default();
                        b.append_link(&mut h, &name, link)?;
                    }
                    _ => {
                        let size = h.size()?;
                        b.append_data(&mut h, &name, (&mut entry).take(size))?;
                    }
                }
            }
        }
    }
    Ok(())
}
