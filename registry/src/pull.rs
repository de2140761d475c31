//! Pull: resolve the manifest (an index picks the platform), then the config
//! and the layers in parallel. Each layer streams through the digest check
//! into the blob store and, on the same pass, into its snapshot; a blob
//! already in the store is not fetched again. A broken download resumes with
//! a `Range` request where the registry allows it. Nothing is tagged until
//! every blob is in.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::manifest::{self, Platform, ACCEPT};
use crate::progress::Progress;
use crate::sources;
use crate::transport::{check, Repo};
use berth_store::image::LayerRef;
use berth_store::{Digest, ImageConfig, ImageRef, Store, StoredImage};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT as ACCEPT_HEADER, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;

/// Layers fetched at once.
const PARALLEL: usize = 3;
/// What a layer's download hands its unpacking thread at a time (small
/// pieces are gathered up to this), and how many pieces may wait: a few MiB
/// a layer (a piece is at most one of hyper's read buffers, ~400 KiB).
const UNPACK_BATCH: usize = 192 << 10;
const UNPACK_QUEUE: usize = 16;
/// A piece this large is handed over as hyper read it, not copied: it
/// holds most of the read buffer it came from, so little is pinned for it.
const UNPACK_IN_PLACE: usize = 64 << 10;
/// Manifests and configs are small documents; refuse a registry that says otherwise.
const MAX_DOCUMENT: usize = 32 << 20;

/// A manifest as the registry sent it.
pub(crate) struct Fetched {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
    pub json: Value,
}

/// Fetches the manifest `reference` (tag or digest) of `repo`, checking it
/// against the digest when the reference is one.
pub(crate) async fn fetch_manifest(repo: &Repo, reference: &str) -> Result<Option<Fetched>> {
    let url = repo.url(&format!("manifests/{reference}"))?;
    let what = format!("cannot fetch manifest {}:{reference}", repo.display());
    let resp = repo
        .send(what.clone(), "pull", move |c| {
            c.get(url.clone()).header(ACCEPT_HEADER, ACCEPT)
        })
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let resp = check(resp, &what).await?;
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = read_limited(resp, &what).await?;
    let digest = Digest::of(&bytes);
    if let Ok(expected) = reference.parse::<Digest>() {
        if expected != digest {
            return Err(Error::Protocol(format!(
                "{what}: the registry sent a manifest whose digest is {digest}"
            )));
        }
    }
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Protocol(format!("{what}: invalid manifest JSON: {e}")))?;
    let media_type = manifest::media_type(&json, content_type.as_deref());
    Ok(Some(Fetched {
        bytes,
        digest,
        media_type,
        json,
    }))
}

pub(crate) async fn read_limited(resp: reqwest::Response, what: &str) -> Result<Bytes> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(Error::Protocol(format!(
            "{what}: the document is too large"
        )));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Transport {
            what: what.to_string(),
            retried: 0,
            cause: e,
        })?;
        out.extend_from_slice(&chunk);
        if out.len() > MAX_DOCUMENT {
            return Err(Error::Protocol(format!(
                "{what}: the document is too large"
            )));
        }
    }
    Ok(out.into())
}

fn descriptor(v: &Value, what: &str) -> Result<(Digest, u64, String)> {
    let bad = || Error::Protocol(format!("{what}: invalid descriptor in the manifest"));
    let digest: Digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    let size = v.get("size").and_then(Value::as_u64).ok_or_else(bad)?;
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok((digest, size, media_type))
}

/// Pulls `r` into `store` and tags it (a pull by digest stays untagged).
/// For `docker.io`, each mirror is tried first, then Docker Hub.
pub async fn pull(
    client: &Client,
    store: &Store,
    r: &ImageRef,
    platform: &Platform,
    progress: Arc<dyn Progress>,
) -> Result<StoredImage> {
    pull_with(client, store, r, platform, progress, true).await
}

/// [`pull`]; with `unpack` false the layers are kept as checked blobs only
/// (each diff ID verified on the way in) and unpacked when first used, as a
/// build wants a base whose steps may all be cached.
pub async fn pull_with(
    client: &Client,
    store: &Store,
    r: &ImageRef,
    platform: &Platform,
    progress: Arc<dyn Progress>,
    unpack: bool,
) -> Result<StoredImage> {
    let sources = client.pull_sources(r)?;
    let last = sources.len() - 1;
    for (i, repo) in sources.into_iter().enumerate() {
        match pull_from(&repo, store, r, platform, progress.clone(), unpack).await {
            Ok(img) => return Ok(img),
            Err(e) if i < last => {
                tracing::warn!(mirror = %repo.host.base, error = %e, "mirror failed, trying the next source");
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Protocol(format!("nothing to pull {r} from")))
}

async fn pull_from(
    repo: &Repo,
    store: &Store,
    r: &ImageRef,
    platform: &Platform,
    progress: Arc<dyn Progress>,
    unpack: bool,
) -> Result<StoredImage> {
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let name = r.familiar();
    let not_found = || Error::Registry {
        what: format!("cannot pull {name}"),
        status: 404,
        code: Some("MANIFEST_UNKNOWN".into()),
        message: Some(format!(
            "manifest for {name} not found: manifest unknown (repository {} on {})",
            repo.path, repo.host.name
        )),
    };
    let mut m = fetch_manifest(repo, &reference)
        .await?
        .ok_or_else(not_found)?;
    if manifest::is_index(&m.media_type) {
        let chosen = manifest::pick(&m.json, platform, &name)?;
        m = fetch_manifest(repo, &chosen).await?.ok_or_else(not_found)?;
    }
    if m.media_type != manifest::OCI_MANIFEST && m.media_type != manifest::DOCKER_MANIFEST {
        return Err(Error::Protocol(format!(
            "cannot pull {name}: unsupported manifest type {}",
            m.media_type
        )));
    }
    progress.note(&format!("{}: Pulling from {}", reference, repo.path));
    let what = format!("cannot pull {name}");
    let (config_digest, config_size, _) =
        descriptor(m.json.get("config").unwrap_or(&Value::Null), &what)?;
    let layers = m
        .json
        .get("layers")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| descriptor(l, &what))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();

    let _lease = store.lease()?;
    // Blobs are committed together at the end (see `Sealed::commit_all`).
    let mut sealed = Vec::new();
    // The config first: its diff IDs name the snapshots the layers unpack into.
    let config_bytes = if store.blobs().contains(&config_digest) {
        store.blobs().read(&config_digest)?
    } else {
        let url = repo.url(&format!("blobs/{config_digest}"))?;
        let resp = repo
            .send(
                format!("cannot fetch config {config_digest} of {name}"),
                "pull",
                move |c| c.get(url.clone()),
            )
            .await?;
        let resp = check(resp, &what).await?;
        let data = read_limited(resp, &what).await?;
        if data.len() as u64 != config_size {
            return Err(Error::Protocol(format!(
                "{what}: config {config_digest} has {} bytes, the manifest says {config_size}",
                data.len()
            )));
        }
        sealed.push(store.blobs().put_sealed(&data, Some(&config_digest))?);
        data.to_vec()
    };
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::Protocol(format!("{what}: invalid image config: {e}")))?;
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != layers.len() {
        return Err(Error::Protocol(format!(
            "{what}: the config lists {} diff IDs for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for ((digest, size, media_type), diff_id) in layers.iter().cloned().zip(diff_ids) {
        let layer = LayerRef {
            digest,
            size,
            media_type,
        };
        let (repo, store, progress, sem) =
            (repo.clone(), store.clone(), progress.clone(), sem.clone());
        tasks.spawn(async move {
            let permit = sem.acquire_owned().await;
            fetch_layer(
                &repo,
                &store,
                &layer,
                &diff_id,
                progress.as_ref(),
                permit,
                unpack,
            )
            .await
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result =
            done.unwrap_or_else(|e| Err(Error::Protocol(format!("download task failed: {e}"))));
        match result {
            Ok(blob) => sealed.extend(blob),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                    tasks.abort_all();
                }
            }
        }
    }
    if let Some(e) = first_error {
        // What arrived whole is kept, as docker does: a pull run again
        // fetches only the rest.
        let _ = commit(sealed).await;
        return Err(e);
    }
    if !store.blobs().contains(&m.digest) {
        sealed.push(store.blobs().put_sealed(&m.bytes, Some(&m.digest))?);
    }
    commit(sealed).await?;
    for (digest, _, _) in &layers {
        sources::remember(store, digest, &repo.host.name, &repo.path);
    }
    sources::remember(store, &config_digest, &repo.host.name, &repo.path);
    sources::remember(store, &m.digest, &repo.host.name, &repo.path);
    let tags: Vec<ImageRef> = if r.digest.is_none() {
        vec![r.clone()]
    } else {
        Vec::new()
    };
    store.record(&m.digest, m.bytes.len() as u64, &tags)?;
    progress.note(&format!("Digest: {}", m.digest));
    Ok(store.get(&m.digest)?)
}

async fn commit(sealed: Vec<berth_store::Sealed>) -> Result<()> {
    tokio::task::spawn_blocking(move || berth_store::Sealed::commit_all(sealed))
        .await
        .map_err(|e| Error::Protocol(format!("commit task failed: {e}")))??;
    Ok(())
}

/// What the unpacking thread reads: the layer's bytes, then a verdict.
enum Piece {
    Data(Bytes),
    /// The blob is complete and matched its digest.
    End,
    /// The download started over or failed: drop what was unpacked.
    Abandon,
}

struct PieceReader {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

// The decoder reads the pieces in place (no copy into a buffer of its own).
impl std::io::BufRead for PieceReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() && !self.ended {
            match self.rx.recv() {
                Ok(Piece::Data(b)) => self.current = b,
                Ok(Piece::End) => self.ended = true,
                Ok(Piece::Abandon) | Err(_) => {
                    return Err(std::io::Error::other("layer download abandoned"))
                }
            }
        }
        Ok(&self.current)
    }
    fn consume(&mut self, n: usize) {
        let _ = self.current.split_to(n.min(self.current.len()));
    }
}

impl std::io::Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let have = self.fill_buf()?;
        let n = buf.len().min(have.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

pub(crate) async fn fetch_layer(
    repo: &Repo,
    store: &Store,
    layer: &LayerRef,
    diff_id: &Digest,
    progress: &dyn Progress,
    permit: std::result::Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError>,
    unpack_it: bool,
) -> Result<Option<berth_store::Sealed>> {
    let digest = &layer.digest;
    if store.blobs().contains(digest) && !unpack_it {
        progress.finish(digest, "Already exists");
        return Ok(None);
    }
    if store.blobs().contains(digest) {
        let (store2, layer2, diff2) = (store.clone(), layer.clone(), diff_id.clone());
        tokio::task::spawn_blocking(move || store2.layer_snapshot(&layer2, &diff2))
            .await
            .map_err(|e| Error::Protocol(format!("unpack task failed: {e}")))??;
        progress.finish(digest, "Already exists");
        return Ok(None);
    }
    progress.start(digest, layer.size);
    let what = format!("cannot fetch layer {digest} of {}", repo.display());
    // The unpacking thread: it reads what the download writes. Large pieces
    // go as they are; small ones are copied into batches of their own (a
    // small piece of hyper's may pin a larger read buffer), so the bytes in
    // flight stay bounded.
    let (tx, rx) = mpsc::sync_channel::<Piece>(UNPACK_QUEUE);
    let unpack = {
        let (store, diff_id, name) = (store.clone(), diff_id.clone(), digest.to_string());
        tokio::task::spawn_blocking(move || {
            let reader = PieceReader {
                rx,
                current: Bytes::new(),
                ended: false,
            };
            if unpack_it {
                store.snapshot_from(reader, &diff_id, &name).map(|_| ())
            } else {
                berth_store::snapshot::verify_stream(reader, &diff_id, &name)
            }
        })
    };
    let mut tx = Some(tx);
    let mut batch: Vec<u8> = Vec::with_capacity(UNPACK_BATCH);
    let send = |tx: &mut Option<mpsc::SyncSender<Piece>>, p: Piece| {
        if let Some(t) = tx.as_ref() {
            // A gone reader (the unpack failed) is reported when it is joined.
            // Off the executor only when the unpacking is behind.
            let sent = match t.try_send(p) {
                Err(mpsc::TrySendError::Full(p)) => tokio::task::block_in_place(|| t.send(p)),
                Err(mpsc::TrySendError::Disconnected(_)) => Err(mpsc::SendError(Piece::End)),
                Ok(()) => Ok(()),
            };
            if sent.is_err() {
                *tx = None;
            }
        }
    };
    let result: Result<berth_store::Sealed> = async {
        let mut ingest = store.blobs().ingest_uncached()?;
        let mut have = 0u64;
        let mut failures = 0u32;
        let retry = crate::transport::RetryPolicy::default();
        loop {
            let url = repo.url(&format!("blobs/{digest}"))?;
            let from = have;
            let resp = repo.send(what.clone(), "pull", move |c| {
                        let req = c.get(url.clone());
                        if from > 0 {
                            req.header(RANGE, format!("bytes={from}-"))
                        } else {
                            req
                        }
                    })
                .await?;
            let resp = check(resp, &what).await?;
            if have > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
                // No range support: start over, and unpack from the blob later.
                batch.clear();
                send(&mut tx, Piece::Abandon);
                tx = None;
                ingest = store.blobs().ingest_uncached()?;
                have = 0;
            }
            let mut stream = resp.bytes_stream();
            let mut broken = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(b) => {
                        have += b.len() as u64;
                        if have > layer.size {
                            send(&mut tx, Piece::Abandon);
                            return Err(Error::Protocol(format!(
                                "{what}: the registry sent more than the {} bytes the manifest gives",
                                layer.size
                            )));
                        }
                        let written = if ingest.may_block(b.len()) {
                            tokio::task::block_in_place(|| ingest.write_all(&b))
                        } else {
                            ingest.write_all(&b)
                        };
                        written.map_err(|e| {
                            Error::Io {
                                context: format!("cannot write layer {digest}"),
                                source: e,
                            }
                        })?;
                        progress.advance(digest, b.len() as u64);
                        // A batch never grows past its capacity (no
                        // realloc), and stays below the allocator's mmap
                        // threshold: freed batches are reused instead of
                        // mapped, faulted in and unmapped each time.
                        if batch.len() + b.len() > UNPACK_BATCH && !batch.is_empty() {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(UNPACK_BATCH));
                            send(&mut tx, Piece::Data(full.into()));
                        }
                        if b.len() >= UNPACK_IN_PLACE {
                            if !batch.is_empty() {
                                let full = std::mem::replace(&mut batch, Vec::with_capacity(UNPACK_BATCH));
                                send(&mut tx, Piece::Data(full.into()));
                            }
                            send(&mut tx, Piece::Data(b));
                        } else {
                            batch.extend_from_slice(&b);
                        }
                    }
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            match broken {
                None if have == layer.size => break,
                None => {
                    failures += 1;
                    if failures > retry.retries {
                        send(&mut tx, Piece::Abandon);
                        return Err(Error::Protocol(format!(
                            "{what}: the registry sent {have} of {} bytes",
                            layer.size
                        )));
                    }
                }
                Some(e) => {
                    failures += 1;
                    if failures > retry.retries {
                        send(&mut tx, Piece::Abandon);
                        return Err(Error::Transport {
                            what: what.clone(),
                            retried: failures - 1,
                            cause: e,
                        });
                    }
                    tracing::warn!(%digest, have, "download broke off, resuming");
                }
            }
            tokio::time::sleep(retry.delay(failures - 1)).await;
        }
        Ok(tokio::task::block_in_place(|| ingest.seal(Some(digest)))?)
    }
    .await;
    // The digest matched: the unpacking finishes while the blob is synced.
    match &result {
        Ok(_) => {
            if !batch.is_empty() {
                send(&mut tx, Piece::Data(std::mem::take(&mut batch).into()));
            }
            send(&mut tx, Piece::End)
        }
        Err(_) => send(&mut tx, Piece::Abandon),
    }
    let streamed = tx.is_some();
    drop(tx);
    // The bytes are in and checked: the next layer's download need not wait
    // for this layer's unpacking.
    drop(permit);
    let unpacked = unpack
        .await
        .map_err(|e| Error::Protocol(format!("unpack task failed: {e}")))?;
    let sealed = result?;
    match unpacked {
        Ok(_) => {}
        // The stream was cut off on purpose: unpack from the blob.
        Err(_) if !streamed => {
            let blob = sealed.reader()?;
            let (store2, diff2, name) = (store.clone(), diff_id.clone(), digest.to_string());
            tokio::task::spawn_blocking(move || {
                let reader = std::io::BufReader::with_capacity(256 << 10, blob);
                if unpack_it {
                    store2.snapshot_from(reader, &diff2, &name).map(|_| ())
                } else {
                    berth_store::snapshot::verify_stream(reader, &diff2, &name)
                }
            })
            .await
            .map_err(|e| Error::Protocol(format!("unpack task failed: {e}")))??;
        }
        Err(e) => {
            return Err(Error::Protocol(format!(
                "cannot unpack layer {digest} of {}: {e}",
                repo.display()
            )))
        }
    }
    progress.finish(digest, "Pull complete");
    Ok(Some(sealed))
}
