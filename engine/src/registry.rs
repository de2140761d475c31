//! Pull, push, login and logout, and the puller a build uses for images the
//! store lacks.

use crate::error::{fail, Error, Result};
use crate::progress::{ProgressSink, RegistryProgress};
use crate::Engine;
pub use berth_registry::Credentials;
use berth_registry::{Client, DockerConfig, Platform, RegistryConfig, Silent};
use berth_store::{ImageRef, Store, StoredImage};
use std::future::Future;
use std::sync::Arc;

/// The registries' settings: which are insecure, where credentials live.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    insecure: Vec<String>,
}

impl Registries {
    pub fn new(insecure: Vec<String>) -> Registries {
        Registries { insecure }
    }

    pub(crate) fn client(&self) -> Result<Client> {
        let path = RegistryConfig::default_path();
        let config = RegistryConfig::load(&path, &self.insecure)?;
        Ok(Client::new(
            config,
            DockerConfig::at(&DockerConfig::default_path()),
        ))
    }

    /// Checks the credentials with the registry, then keeps them (docker's
    /// config.json). `server` is a host name, `docker.io` for Docker Hub.
    pub fn login(&self, server: &str, username: String, password: String) -> Result<()> {
        let client = self.client()?;
        let creds = Credentials { username, password };
        let host = client.host(server)?;
        block_on(async { Ok(host.login(&creds).await?) })?;
        client.credentials().store(server, &creds)?;
        Ok(())
    }

    /// Checks the credentials with the registry and keeps nothing (the
    /// Engine API's `/auth`: the client keeps them).
    pub fn check_login(&self, server: &str, creds: &Credentials) -> Result<()> {
        let client = self.client()?;
        let host = client.host(server)?;
        block_on(async { Ok(host.login(creds).await?) })
    }

    /// Forgets the credentials of `server`; says under which key they were
    /// kept and whether there were any.
    pub fn logout(&self, server: &str) -> Result<(String, bool)> {
        let client = self.client()?;
        let key = berth_registry::credentials::auth_key(server);
        Ok((key, client.credentials().erase(server)?))
    }
}

/// Runs registry work on its own runtime; Ctrl-C drops it, which removes
/// every unfinished blob and tags nothing.
fn block_on<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the network runtime: {e}")))?;
    let out = rt.block_on(async {
        tokio::select! {
            r = fut => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    out
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference in full (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// How docker names it (`busybox:latest`).
    pub familiar: String,
    /// Whether the store had this very manifest under that name already.
    pub up_to_date: bool,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    pub tag: Option<String>,
    pub digest: String,
    pub size: u64,
    pub familiar: String,
}

fn platform(p: Option<&str>) -> Result<Platform> {
    Ok(match p {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    })
}

impl Engine {
    pub fn registries(&self) -> Registries {
        Registries::new(self.config.insecure_registries.clone())
    }

    /// `docker pull NAME[:TAG|@DIGEST]`.
    pub fn image_pull(
        &self,
        name: &str,
        platform_name: Option<&str>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Pulled> {
        self.image_pull_as(name, platform_name, None, progress)
    }

    /// `image_pull` with the credentials a request brought, over the
    /// stored ones.
    pub fn image_pull_as(
        &self,
        name: &str,
        platform_name: Option<&str>,
        auth: Option<Credentials>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Pulled> {
        let r: ImageRef = name.parse()?;
        let platform = platform(platform_name)?;
        let store = self.store();
        let before = store
            .resolve(&r.to_string())
            .ok()
            .map(|i| i.manifest_digest);
        let client = self.registries().client()?;
        if auth.is_some() {
            client.repo(&r)?.host.set_credentials(auth);
        }
        let view = Arc::new(RegistryProgress(progress));
        let img = block_on(async {
            Ok(berth_registry::pull(&client, store, &r, &platform, view).await?)
        })?;
        self.emit_image("pull", &r.familiar(), &r.familiar());
        Ok(Pulled {
            reference: r.to_string(),
            familiar: r.familiar(),
            up_to_date: before.as_ref() == Some(&img.manifest_digest),
        })
    }

    /// `docker push NAME[:TAG]`.
    pub fn image_push(&self, name: &str, progress: Arc<dyn ProgressSink>) -> Result<PushedImage> {
        self.image_push_as(name, None, progress)
    }

    /// `image_push` with the credentials a request brought.
    pub fn image_push_as(
        &self,
        name: &str,
        auth: Option<Credentials>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<PushedImage> {
        let target: ImageRef = name.parse()?;
        let image = match self.store().resolve(&target.to_string()) {
            Ok(i) => i,
            Err(berth_store::Error::NoSuchImage(_)) => {
                fail!(
                    NotFound,
                    "An image does not exist locally with the tag: {}",
                    target.familiar_name()
                )
            }
            Err(e) => return Err(e.into()),
        };
        let client = self.registries().client()?;
        if auth.is_some() {
            client.repo(&target)?.host.set_credentials(auth);
        }
        let pushed = push_image(self.store(), &client, &image, &target, progress)?;
        self.emit_image("push", &target.familiar(), &target.familiar());
        Ok(pushed)
    }
}

/// Pushes one image and remembers where it went (its repo digests).
pub(crate) fn push_image(
    store: &Store,
    client: &Client,
    image: &StoredImage,
    target: &ImageRef,
    progress: Arc<dyn ProgressSink>,
) -> Result<PushedImage> {
    let view = Arc::new(RegistryProgress(progress));
    let pushed =
        block_on(async { Ok(berth_registry::push(client, store, image, target, view).await?) })?;
    let repo = client.repo(target)?;
    berth_registry::sources::remember(store, &pushed.digest, &repo.host.name, &repo.path);
    Ok(PushedImage {
        tag: pushed.tag.clone(),
        digest: pushed.digest.to_string(),
        size: pushed.size,
        familiar: target.familiar(),
    })
}

pub(crate) fn client(engine: &Engine) -> Result<Client> {
    engine.registries().client()
}

/// The puller a build gets: FROM and `--from` images the store lacks.
#[derive(Debug)]
pub(crate) struct BuildPuller {
    pub store: Store,
    pub registries: Registries,
}

impl berth_builder::ImageSource for BuildPuller {
    fn pull(&self, name: &str, unpack: bool) -> std::result::Result<StoredImage, String> {
        let r: ImageRef = name.parse().map_err(|e| format!("{e}"))?;
        // Its own thread: the build's scheduler is a runtime of its own.
        std::thread::scope(|s| {
            s.spawn(|| {
                let client = self.registries.client().map_err(|e| e.to_string())?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .worker_threads(2)
                    .build()
                    .map_err(|e| format!("cannot start the network runtime: {e}"))?;
                rt.block_on(berth_registry::pull_with(
                    &client,
                    &self.store,
                    &r,
                    &Platform::host(),
                    Arc::new(Silent),
                    unpack,
                ))
                .map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the pull thread failed".to_string()))
        })
    }
}
