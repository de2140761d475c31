//! Push: every blob is asked for with `HEAD` first; a blob another
//! repository of the same registry holds is mounted from there; small blobs go
//! up in one request, large ones in chunks streamed from the store, resumed
//! where the registry says it stands when a connection breaks. The manifest
//! goes last, with its own media type.

use crate::client::Client;
use crate::error::{Error, IoContext, Result};
use crate::manifest;
use crate::progress::Progress;
use crate::sources;
use crate::transport::{check, registry_error, Call, Repo, RetryPolicy};
use berth_store::{Digest, ImageRef, Store, StoredImage};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::StatusCode;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use url::Url;

/// Blobs up to this size go up in one request.
const MONOLITHIC_MAX: u64 = 32 << 20;
/// Chunk size of a chunked upload (streamed from the blob file, never buffered).
const CHUNK: u64 = 512 << 20;
/// Blobs sent at once.
const PARALLEL: usize = 3;

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    pub tag: Option<String>,
}

/// Pushes the local image `image` as `target` (its registry and repository, and tag).
pub async fn push(
    client: &Client,
    store: &Store,
    image: &StoredImage,
    target: &ImageRef,
    progress: Arc<dyn Progress>,
) -> Result<Pushed> {
    let repo = client.repo(target)?;
    let manifest_bytes = store.blobs().read(&image.manifest_digest)?;
    let json: serde_json::Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::Protocol(format!("invalid manifest of {}: {e}", image.id)))?;
    let media_type = manifest::media_type(&json, None);
    progress.note(&format!(
        "The push refers to repository [{}]",
        target.name()
    ));
    // The config goes up with the layers, but docker lists only layers.
    let mut blobs: Vec<(Digest, u64, bool)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size, true))
        .collect();
    blobs.push((image.id.clone(), store.blobs().size(&image.id)?, false));
    let _lease = store.lease()?;
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for (digest, size, shown) in blobs {
        let (repo, store, sem) = (repo.clone(), store.clone(), sem.clone());
        let progress: Arc<dyn Progress> = if shown {
            progress.clone()
        } else {
            Arc::new(crate::progress::Silent)
        };
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let status = push_blob(&repo, &store, &digest, size, progress.as_ref()).await?;
            sources::remember(&store, &digest, &repo.host.name, &repo.path);
            progress.finish(&digest, &status);
            Ok::<_, Error>(())
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let r = done.unwrap_or_else(|e| Err(Error::Protocol(format!("upload task failed: {e}"))));
        if let Err(e) = r {
            if first_error.is_none() {
                first_error = Some(e);
                tasks.abort_all();
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let reference = target
        .tag
        .clone()
        .unwrap_or_else(|| image.manifest_digest.to_string());
    let url = repo.url(&format!("manifests/{reference}"))?;
    let what = format!("cannot push manifest {}:{reference}", repo.display());
    let body = bytes::Bytes::from(manifest_bytes);
    let len = body.len() as u64;
    let resp = repo
        .send(what.clone(), "pull,push", move |c| {
            c.put(url.clone())
                .header(CONTENT_TYPE, media_type.clone())
                .body(body.clone())
        })
        .await?;
    check(resp, &what).await?;
    Ok(Pushed {
        digest: image.manifest_digest.clone(),
        size: len,
        tag: target.tag.clone(),
    })
}

fn location(repo: &Repo, resp: &reqwest::Response, what: &str) -> Result<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol(format!("{what}: the registry gave no upload location")))?;
    repo.host
        .base
        .join(loc)
        .map_err(|e| Error::Protocol(format!("{what}: invalid upload location: {e}")))
}

/// Returns docker's word for what happened to the blob.
async fn push_blob(
    repo: &Repo,
    store: &Store,
    digest: &Digest,
    size: u64,
    progress: &dyn Progress,
) -> Result<String> {
    let what = format!("cannot push blob {digest} to {}", repo.display());
    if head_blob(repo, digest, &what).await? {
        return Ok("Layer already exists".into());
    }
    // Mount from a sibling repository that holds it; the registry answers
    // 201 when it did, 202 with an upload session when it could not.
    let mut session = None;
    for from in sources::mount_candidates(store, digest, &repo.host.name, &repo.path) {
        let mut url = repo.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", &from);
        let resp = repo
            .host
            .send(Call {
                what: what.clone(),
                scopes: vec![repo.scope("pull,push"), format!("repository:{from}:pull")],
                build: Box::new(move |c| c.post(url.clone()).header(CONTENT_LENGTH, 0)),
                retries: None,
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => return Ok(format!("Mounted from {from}")),
            StatusCode::ACCEPTED => {
                session = Some(location(repo, &resp, &what)?);
                break;
            }
            _ => continue,
        }
    }
    let session = match session {
        Some(s) => s,
        None => start_upload(repo, &what).await?,
    };
    progress.start(digest, size);
    let path = store.blobs().path(digest);
    if size <= MONOLITHIC_MAX {
        let data = tokio::fs::read(&path)
            .await
            .ctx(|| format!("cannot read {}", path.display()))?;
        monolithic_upload(repo, digest, bytes::Bytes::from(data), session, &what).await?;
        progress.advance(digest, size);
        return Ok("Pushed".into());
    }
    chunked_upload(repo, digest, size, &path, session, progress, &what).await?;
    Ok("Pushed".into())
}

/// Pushes one blob of the store unless the repository has it.
pub(crate) async fn push_blob_of(
    repo: &Repo,
    store: &Store,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    push_blob(repo, store, digest, size, &crate::progress::Silent).await?;
    Ok(())
}

/// Pushes a blob held in memory unless the repository has it.
pub(crate) async fn push_bytes(repo: &Repo, digest: &Digest, data: bytes::Bytes) -> Result<()> {
    let what = format!("cannot push blob {digest} to {}", repo.display());
    if head_blob(repo, digest, &what).await? {
        return Ok(());
    }
    let session = start_upload(repo, &what).await?;
    monolithic_upload(repo, digest, data, session, &what).await
}

/// One `PUT` with the whole blob. A try that fails midway may have left
/// part of the blob in its session, so the next try starts a new session.
async fn monolithic_upload(
    repo: &Repo,
    digest: &Digest,
    data: bytes::Bytes,
    mut session: Url,
    what: &str,
) -> Result<()> {
    let retry = RetryPolicy::default();
    let mut failures = 0;
    loop {
        let mut url = session.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let body = data.clone();
        let sent = repo
            .send_once(what.to_string(), "pull,push", move |c| {
                c.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await;
        let e = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_client_error() => return Err(registry_error(what, r).await),
            Ok(r) => registry_error(what, r).await,
            Err(e) => e,
        };
        if blob_exists(repo, digest).await {
            return Ok(());
        }
        failures += 1;
        if failures > retry.retries {
            return Err(e);
        }
        tracing::warn!(%digest, error = %e, "upload failed, starting over");
        tokio::time::sleep(retry.delay(failures - 1)).await;
        session = start_upload(repo, what).await?;
    }
}

/// Whether the repository has the blob (`HEAD`: 2xx yes, 404 no).
pub(crate) async fn head_blob(repo: &Repo, digest: &Digest, what: &str) -> Result<bool> {
    let url = repo.url(&format!("blobs/{digest}"))?;
    let resp = repo
        .send(what, "pull,push", move |c| c.head(url.clone()))
        .await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(registry_error(what, resp).await),
    }
}

/// After a failed upload: did the blob arrive anyway?
async fn blob_exists(repo: &Repo, digest: &Digest) -> bool {
    head_blob(repo, digest, "cannot check blob")
        .await
        .unwrap_or(false)
}

async fn start_upload(repo: &Repo, what: &str) -> Result<Url> {
    let url = repo.url("blobs/uploads/")?;
    let resp = repo
        .send(what.to_string(), "pull,push", move |c| {
            c.post(url.clone()).header(CONTENT_LENGTH, 0)
        })
        .await?;
    let resp = check(resp, what).await?;
    location(repo, &resp, what)
}

/// Where the registry says an upload stands: the offset of the next byte.
async fn upload_offset(repo: &Repo, session: &Url, what: &str) -> Result<(u64, Url)> {
    let url = session.clone();
    let resp = repo
        .send(what.to_string(), "pull,push", move |c| c.get(url.clone()))
        .await?;
    let resp = check(resp, what).await?;
    let next = location(repo, &resp, what).unwrap_or_else(|_| session.clone());
    // `Range: 0-N` means bytes 0..=N are in; no header, nothing yet.
    let offset = resp
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().trim_start_matches("bytes=").split_once('-'))
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
        .map(|end| end + 1)
        .unwrap_or(0);
    Ok((offset, next))
}

#[allow(clippy::too_many_arguments)]
async fn chunked_upload(
    repo: &Repo,
    digest: &Digest,
    size: u64,
    path: &std::path::Path,
    mut session: Url,
    progress: &dyn Progress,
    what: &str,
) -> Result<()> {
    let retry = RetryPolicy::default();
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < size {
        let len = CHUNK.min(size - offset);
        let url = session.clone();
        let end = offset + len - 1;
        let file_path = path.to_path_buf();
        let sent = repo
            .send_once(what.to_string(), "pull,push", move |c| {
                let req = c
                    .patch(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, format!("{offset}-{end}"))
                    .header(CONTENT_LENGTH, len);
                req.body(chunk_body(&file_path, offset, len))
            })
            .await;
        let e = match sent {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                session = location(repo, &resp, what)?;
                progress.advance(digest, len);
                offset = end + 1;
                failures = 0;
                continue;
            }
            Ok(resp) if resp.status().is_client_error() => {
                return Err(registry_error(what, resp).await)
            }
            Ok(resp) => registry_error(what, resp).await,
            Err(e) => e,
        };
        failures += 1;
        if failures > retry.retries {
            return Err(e);
        }
        tracing::warn!(%digest, offset, error = %e, "chunk upload failed, resuming");
        tokio::time::sleep(retry.delay(failures - 1)).await;
        match upload_offset(repo, &session, what).await {
            Ok((at, next)) => {
                if at > offset {
                    progress.advance(digest, at - offset);
                }
                offset = at;
                session = next;
            }
            // distribution drops a session whose broken chunk left part of
            // itself behind: start over in a new one.
            Err(e) if e.status().is_some_and(|s| s == 404 || s == 400 || s == 416) => {
                tracing::warn!(%digest, error = %e, "upload session lost, starting over");
                session = start_upload(repo, what).await?;
                offset = 0;
            }
            Err(e) => return Err(e),
        }
    }
    let mut url = session;
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let resp = repo
        .send(what.to_string(), "pull,push", move |c| {
            c.put(url.clone()).header(CONTENT_LENGTH, 0)
        })
        .await;
    match resp {
        Ok(r) => check(r, what).await.map(|_| ()),
        Err(_) if blob_exists(repo, digest).await => Ok(()),
        Err(e) => Err(e),
    }
}

/// `len` bytes of the blob file from `offset`, streamed (a body is built
/// again for each try, so a chunk is never held in memory).
fn chunk_body(path: &std::path::Path, offset: u64, len: u64) -> reqwest::Body {
    use std::io::Seek;
    let opened = std::fs::File::open(path)
        .and_then(|mut f| f.seek(std::io::SeekFrom::Start(offset)).map(|_| f));
    match opened {
        Ok(f) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(f).take(len),
            1 << 20,
        )),
        Err(e) => reqwest::Body::wrap_stream(futures_util::stream::once(async move {
            Err::<bytes::Bytes, _>(e)
        })),
    }
}
