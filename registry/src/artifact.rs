//! Lower-level registry calls for documents that are not images to run:
//! berth's exported build caches. A manifest read or written as bytes, a
//! small blob read into memory, layers fetched one at a time into the store,
//! blobs pushed from the store or from memory. Retries, auth and digest checks
//! are the same as a pull's and a push's.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::manifest;
use crate::progress::Silent;
use crate::pull::{fetch_manifest, read_limited};
use crate::transport::check;
use berth_store::image::LayerRef;
use berth_store::{Digest, ImageRef, Store};
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

/// A manifest as the registry holds it.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
    pub json: Value,
}

fn reference(r: &ImageRef) -> String {
    match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    }
}

/// The manifest `r` names, `None` when the registry has none. An index is
/// resolved to this machine's platform.
pub async fn get_manifest(client: &Client, r: &ImageRef) -> Result<Option<RemoteManifest>> {
    let repo = client.repo(r)?;
    let Some(mut m) = fetch_manifest(&repo, &reference(r)).await? else {
        return Ok(None);
    };
    if manifest::is_index(&m.media_type) {
        let chosen = manifest::pick(&m.json, &crate::Platform::host(), &r.familiar())?;
        match fetch_manifest(&repo, &chosen).await? {
            Some(one) => m = one,
            None => return Ok(None),
        }
    }
    Ok(Some(RemoteManifest {
        bytes: m.bytes,
        digest: m.digest,
        media_type: m.media_type,
        json: m.json,
    }))
}

/// A small blob (a config) of `r`'s repository, checked against `digest`.
pub async fn get_small_blob(client: &Client, r: &ImageRef, digest: &Digest) -> Result<Bytes> {
    let repo = client.repo(r)?;
    let url = repo.url(&format!("blobs/{digest}"))?;
    let what = format!("cannot fetch blob {digest} of {}", repo.display());
    let resp = repo
        .send(what.clone(), "pull", move |c| c.get(url.clone()))
        .await?;
    let resp = check(resp, &what).await?;
    let data = read_limited(resp, &what).await?;
    let actual = Digest::of(&data);
    if &actual != digest {
        return Err(Error::Protocol(format!(
            "{what}: the registry sent a blob whose digest is {actual}"
        )));
    }
    Ok(data)
}

/// Fetches one layer of `r`'s repository into the store (digest and diff
/// ID checked, resumed and retried as a pull's layers), unpacked into its
/// snapshot when `unpack`.
pub async fn fetch_layer(
    client: &Client,
    r: &ImageRef,
    store: &Store,
    layer: &LayerRef,
    diff_id: &Digest,
    unpack: bool,
) -> Result<()> {
    let repo = client.repo(r)?;
    let sem = Arc::new(tokio::sync::Semaphore::new(1));
    let permit = sem.acquire_owned().await;
    let sealed =
        crate::pull::fetch_layer(&repo, store, layer, diff_id, &Silent, permit, unpack).await?;
    if let Some(s) = sealed {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let _keep = store;
            s.commit()
        })
        .await
        .map_err(|e| Error::Protocol(format!("commit task failed: {e}")))??;
    }
    crate::sources::remember(store, &layer.digest, &repo.host.name, &repo.path);
    Ok(())
}

/// Pushes blobs of the store to `r`'s repository (each one `HEAD`ed
/// first: what the registry has is not sent again).
pub async fn push_blobs(
    client: &Client,
    store: &Store,
    r: &ImageRef,
    blobs: &[(Digest, u64)],
) -> Result<()> {
    let repo = client.repo(r)?;
    for (digest, size) in blobs {
        crate::push::push_blob_of(&repo, store, digest, *size).await?;
        crate::sources::remember(store, digest, &repo.host.name, &repo.path);
    }
    Ok(())
}

/// Whether `r`'s repository has the blob.
pub async fn has_blob(client: &Client, r: &ImageRef, digest: &Digest) -> Result<bool> {
    let repo = client.repo(r)?;
    crate::push::head_blob(&repo, digest, &format!("cannot check blob {digest}")).await
}

/// Pushes `data` as a blob (a config) unless the repository has it.
pub async fn push_small_blob(client: &Client, r: &ImageRef, data: Bytes) -> Result<Digest> {
    let repo = client.repo(r)?;
    let digest = Digest::of(&data);
    crate::push::push_bytes(&repo, &digest, data).await?;
    Ok(digest)
}

/// Puts a manifest under `r`'s tag; returns its digest.
pub async fn put_manifest(
    client: &Client,
    r: &ImageRef,
    bytes: Bytes,
    media_type: &str,
) -> Result<Digest> {
    let repo = client.repo(r)?;
    let reference = reference(r);
    let digest = Digest::of(&bytes);
    let url = repo.url(&format!("manifests/{reference}"))?;
    let what = format!("cannot push manifest {}:{reference}", repo.display());
    let media_type = media_type.to_string();
    let resp = repo
        .send(what.clone(), "pull,push", move |c| {
            c.put(url.clone())
                .header(CONTENT_TYPE, media_type.clone())
                .body(bytes.clone())
        })
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(Error::Protocol(format!(
            "{what}: the registry does not know a blob the manifest names"
        )));
    }
    check(resp, &what).await?;
    Ok(digest)
}
