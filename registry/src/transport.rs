//! One HTTP client per registry host, with docker's auth dance (anonymous
//! first; on 401 the `WWW-Authenticate` challenge says Basic or Bearer; bearer
//! tokens are fetched per scope and cached until they expire) and retries with
//! exponential backoff on 5xx, 429 (honouring `Retry-After`) and broken
//! connections.

use crate::challenge::{self, Challenge};
use crate::config::RegistryConfig;
use crate::credentials::{Credentials, DockerConfig};
use crate::error::{Error, Result};
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// How often and how patiently a request is tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries after the first one.
    pub retries: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        (self.first_delay * factor).min(self.max_delay)
    }
}

/// A registry host: where it is and how to talk to it.
pub struct Host {
    /// The name credentials are stored under: `docker.io`, `127.0.0.1:5000`.
    pub name: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: Url,
    http: reqwest::Client,
    state: Mutex<HostState>,
    creds: DockerConfig,
    retry: RetryPolicy,
    /// `GET /v2/` once, so parallel first requests already know the challenge.
    pinged: tokio::sync::OnceCell<()>,
    /// One token fetch at a time: the others wait and find it cached.
    token_fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct HostState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, (String, Instant)>,
    /// Credentials given for this process (`berth login`), else read from docker's config.
    creds: Option<Option<Credentials>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Host({})", self.base)
    }
}

/// A repository on a host: `library/busybox` on Docker Hub.
#[derive(Debug, Clone)]
pub struct Repo {
    pub host: Arc<Host>,
    pub path: String,
}

impl Repo {
    /// `https://host/v2/<path>/<rest>`.
    pub fn url(&self, rest: &str) -> Result<Url> {
        self.host
            .base
            .join(&format!("/v2/{}/{rest}", self.path))
            .map_err(|e| Error::Protocol(format!("invalid URL for {}: {e}", self.path)))
    }

    /// `name` as the registry's users know it: `127.0.0.1:5000/app`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.host.name, self.path)
    }

    pub(crate) fn scope(&self, actions: &str) -> String {
        format!("repository:{}:{actions}", self.path)
    }

    /// Sends a request on this repository with a token for `actions`
    /// (`pull`, `pull,push`), retried as the host's policy says.
    pub(crate) async fn send(
        &self,
        what: impl Into<String>,
        actions: &str,
        build: impl FnMut(&reqwest::Client) -> RequestBuilder + Send,
    ) -> Result<Response> {
        self.send_with(what.into(), actions, build, None).await
    }

    /// Like [`Repo::send`], tried once: for requests whose partial effect
    /// the caller repairs (a chunk upload).
    pub(crate) async fn send_once(
        &self,
        what: impl Into<String>,
        actions: &str,
        build: impl FnMut(&reqwest::Client) -> RequestBuilder + Send,
    ) -> Result<Response> {
        self.send_with(what.into(), actions, build, Some(0)).await
    }

    async fn send_with(
        &self,
        what: String,
        actions: &str,
        build: impl FnMut(&reqwest::Client) -> RequestBuilder + Send,
        retries: Option<u32>,
    ) -> Result<Response> {
        self.host
            .send(Call {
                what,
                scopes: vec![self.scope(actions)],
                build: Box::new(build),
                retries,
            })
            .await
    }
}

/// What to send, built again for each try.
pub(crate) struct Call<'a> {
    pub what: String,
    pub scopes: Vec<String>,
    pub build: Box<dyn FnMut(&reqwest::Client) -> RequestBuilder + Send + 'a>,
    /// Tries after the first; 0 for requests whose partial effect the caller repairs.
    pub retries: Option<u32>,
}

impl Host {
    pub(crate) fn new(
        name: &str,
        base: Url,
        config: &RegistryConfig,
        creds: DockerConfig,
        retry: RetryPolicy,
    ) -> Result<Host> {
        let authority = base
            .host_str()
            .map(|h| match base.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .unwrap_or_default();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(8);
        let cas = config.ca_certs(&authority);
        for pem in &cas {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                Error::Config(format!("invalid CA certificate for {authority}: {e}"))
            })?;
            b = b.add_root_certificate(cert);
        }
        if base.scheme() == "https" && cas.is_empty() && config.is_insecure(&authority) {
            // docker: an insecure registry's certificate is not checked.
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTP client for {name}: {e}")))?;
        Ok(Host {
            name: name.to_string(),
            base,
            http,
            state: Mutex::new(HostState::default()),
            creds,
            retry,
            pinged: tokio::sync::OnceCell::new(),
            token_fetch: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HostState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Uses `creds` for this host instead of what docker's config holds.
    pub fn set_credentials(&self, creds: Option<Credentials>) {
        let mut st = self.state();
        st.creds = Some(creds);
        st.tokens.clear();
    }

    fn credentials(&self) -> Result<Option<Credentials>> {
        if let Some(c) = &self.state().creds {
            return Ok(c.clone());
        }
        let c = self.creds.get(&self.name)?;
        self.state().creds = Some(c.clone());
        Ok(c)
    }

    fn basic(creds: &Credentials) -> HeaderValue {
        use base64::Engine as _;
        let raw = format!("{}:{}", creds.username, creds.password);
        let mut v = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    /// The Authorization header for `scopes`, given what the host asked for so far.
    async fn authorization(&self, scopes: &[String]) -> Result<Option<HeaderValue>> {
        let challenge = self.state().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials()?.as_ref().map(Self::basic)),
            Some(Challenge::Bearer {
                realm,
                service,
                scope: _,
            }) => {
                let key = scopes.join(" ");
                let cached = |st: &HostState| {
                    st.tokens
                        .get(&key)
                        .filter(|(_, until)| *until > Instant::now())
                        .map(|(t, _)| bearer(t))
                };
                if let Some(h) = cached(&self.state()) {
                    return Ok(Some(h));
                }
                let _one = self.token_fetch.lock().await;
                if let Some(h) = cached(&self.state()) {
                    return Ok(Some(h));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes).await?;
                Ok(Some(bearer(&token)))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| {
            Error::Auth(format!("{}: invalid token realm {realm:?}: {e}", self.name))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let creds = self.credentials()?;
        let mut attempt = 0;
        let resp = loop {
            let mut req = self.http.get(url.clone());
            if let Some(c) = &creds {
                req = req.header(AUTHORIZATION, Self::basic(c));
            }
            match req.send().await {
                Ok(r) if r.status().is_server_error() && attempt < self.retry.retries => {}
                Ok(r) => break r,
                Err(e) if attempt >= self.retry.retries => {
                    return Err(Error::Transport {
                        what: format!(
                            "cannot get a token for {} from {}",
                            self.name,
                            host_of(&url)
                        ),
                        retried: attempt,
                        cause: e,
                    })
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Auth(if creds.is_some() {
                format!(
                    "{}: unauthorized: incorrect username or password",
                    self.name
                )
            } else {
                format!(
                    "{}: unauthorized: authentication required (log in with berth login {})",
                    self.name, self.name
                )
            }));
        }
        if !status.is_success() {
            return Err(Error::Auth(format!(
                "{}: the token service {} answered {status}",
                self.name,
                host_of(&url)
            )));
        }
        let raw = resp.bytes().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            Error::Auth(format!(
                "{}: invalid answer from the token service: {e}",
                self.name
            ))
        })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Auth(format!("{}: the token service sent no token", self.name)))?
            .to_string();
        let expires = body
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            .max(10);
        // Refresh a little early so a token never expires mid-request.
        let until = Instant::now() + Duration::from_secs(expires.saturating_sub(5));
        self.state()
            .tokens
            .insert(scopes.join(" "), (token.clone(), until));
        Ok(token)
    }

    /// Sends a request with auth and retries. Every status but 401 and the
    /// retryable ones comes back to the caller as the registry sent it.
    /// Learns how the host wants to be authenticated. A failure here is
    /// left for the real request to report.
    async fn ping(&self) {
        self.pinged
            .get_or_init(|| async {
                if let Ok(resp) = self.get_v2(None, "ping").await {
                    if resp.status() == StatusCode::UNAUTHORIZED {
                        let ch = resp
                            .headers()
                            .get(WWW_AUTHENTICATE)
                            .and_then(|h| h.to_str().ok())
                            .and_then(challenge::parse);
                        if let Some(ch) = ch {
                            self.state().challenge = Some(ch);
                        }
                    }
                }
            })
            .await;
    }

    pub(crate) async fn send(&self, mut call: Call<'_>) -> Result<Response> {
        self.ping().await;
        let retries = call.retries.unwrap_or(self.retry.retries);
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            let auth = self.authorization(&call.scopes).await?;
            let mut req = (call.build)(&self.http);
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let wait = match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    reauthed = true;
                    let header = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|h| h.to_str().ok())
                        .and_then(challenge::parse);
                    let Some(ch) = header else {
                        return Err(registry_error(&call.what, resp).await);
                    };
                    if let Challenge::Bearer { scope: Some(s), .. } = &ch {
                        if !call.scopes.iter().any(|have| covers(have, s)) {
                            call.scopes.push(s.clone());
                        }
                    }
                    if ch == Challenge::Basic && self.credentials()?.is_none() {
                        return Err(Error::Auth(format!(
                            "{}: unauthorized: authentication required (log in with berth login {})",
                            call.what, self.name
                        )));
                    }
                    self.state().challenge = Some(ch);
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(registry_error(&call.what, resp).await);
                }
                Ok(resp)
                    if (resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < retries =>
                {
                    let after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                    tracing::warn!(what = %call.what, status = %resp.status(), attempt, "registry error, retrying");
                    after.unwrap_or_else(|| self.retry.delay(attempt))
                }
                Ok(resp) => return Ok(resp),
                // A host that refuses connections or has no address gets
                // one more try, not the whole backoff (a mirror is skipped fast).
                Err(e)
                    if attempt < retries.min(if e.is_connect() { 1 } else { u32::MAX })
                        && !e.is_builder() =>
                {
                    tracing::warn!(what = %call.what, error = %e, attempt, "connection failed, retrying");
                    self.retry.delay(attempt)
                }
                Err(e) => {
                    return Err(Error::Transport {
                        what: call.what.clone(),
                        retried: attempt,
                        cause: e,
                    })
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `GET /v2/` once, with `auth` if given: what a ping and a login ask.
    async fn get_v2(&self, auth: Option<HeaderValue>, what: &str) -> Result<Response> {
        let url = self
            .base
            .join("/v2/")
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut req = self.http.get(url);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        req.send().await.map_err(|e| Error::Transport {
            what: what.to_string(),
            retried: 0,
            cause: e,
        })
    }

    /// Checks that `creds` are accepted, as `docker login` does.
    pub async fn login(&self, creds: &Credentials) -> Result<()> {
        self.set_credentials(Some(creds.clone()));
        let what = format!("cannot log in to {}", self.name);
        let first = self.get_v2(None, &what).await?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return check(first, &what).await.map(|_| ());
        }
        let ch = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(challenge::parse)
            .ok_or_else(|| Error::Auth(format!("{what}: unsupported authentication scheme")))?;
        match ch {
            Challenge::Bearer { realm, service, .. } => {
                self.fetch_token(&realm, service.as_deref(), &[]).await?;
            }
            Challenge::Basic => {
                let resp = self.get_v2(Some(Self::basic(creds)), &what).await?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(Error::Auth(format!(
                        "{}: unauthorized: incorrect username or password",
                        self.name
                    )));
                }
                check(resp, &what).await?;
            }
        }
        Ok(())
    }
}

/// Whether scope `have` grants everything `want` asks for
/// (`repository:x:pull,push` covers `repository:x:pull`).
fn covers(have: &str, want: &str) -> bool {
    let split = |s: &str| {
        s.rsplit_once(':').map(|(res, actions)| {
            (
                res.to_string(),
                actions.split(',').map(String::from).collect::<Vec<_>>(),
            )
        })
    };
    match (split(have), split(want)) {
        (Some((r1, a1)), Some((r2, a2))) => r1 == r2 && a2.iter().all(|a| a1.contains(a)),
        _ => have == want,
    }
}

fn bearer(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

fn host_of(u: &Url) -> String {
    u.host_str().unwrap_or("?").to_string()
}

/// A registry's error answer with its own code and message
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}`).
pub(crate) async fn registry_error(what: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let (code, message) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            Some((
                e.get("code").and_then(|c| c.as_str()).map(String::from),
                e.get("message").and_then(|c| c.as_str()).map(String::from),
            ))
        })
        .unwrap_or((None, None));
    Error::Registry {
        what: what.to_string(),
        status,
        code,
        message,
    }
}

/// The response when it is a success, else the registry's error.
pub(crate) async fn check(resp: Response, what: &str) -> Result<Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(registry_error(what, resp).await)
    }
}
