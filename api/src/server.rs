//! The listeners: UNIX sockets (mode 0660, group `berth` when there is
//! one) and loopback TCP; one tokio runtime serving every connection, and
//! the idle timer of `--time`.

use crate::handlers::Request;
use berth_engine::Engine;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the service listens: `unix:///run/berth/berth.sock` or
/// `tcp://127.0.0.1:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::str::FromStr for Host {
    type Err = ServeError;
    fn from_str(s: &str) -> Result<Host, ServeError> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(ServeError::Host(format!("{s}: no socket path")));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let addr: SocketAddr = a
                .parse()
                .map_err(|_| ServeError::Host(format!("{s}: expected tcp://IP:PORT")))?;
            return Ok(Host::Tcp(addr));
        }
        Err(ServeError::Host(format!(
            "{s}: expected unix:///PATH or tcp://127.0.0.1:PORT"
        )))
    }
}

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub hosts: Vec<Host>,
    /// Exit after this long without a request or a connection; none runs
    /// until SIGINT or SIGTERM.
    pub idle: Option<Duration>,
    /// TLS with client certificates on every TCP listener; without it TCP
    /// is for loopback only.
    pub tls: Option<crate::tls::TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Host(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

enum Listener {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

fn unix_listener(path: &std::path::Path) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |source| ServeError::Listen {
        what: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    if path.exists() {
        // A socket someone answers on is in use; a dead one is stale.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another service answers there",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // Made 0660 from the start (no moment in which others may connect):
    // the umask is the process's, and nothing else makes files meanwhile.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = bound.map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        let _ = nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(g.gid));
    }
    Ok(l)
}

/// Serves the API on `opts.hosts` until stopped (or idle for `opts.idle`).
pub fn serve(engine: Engine, opts: ServiceOptions) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Threads of a burst of blocking work go soon after it (with the
        // memory they held).
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .map_err(|source| ServeError::Listen {
            what: "the runtime".into(),
            source,
        })?;
    let served = rt.block_on(run(engine, opts));
    // A follower blocked on a quiet container (a followed log) must not
    // keep a stopped service alive: its thread is left to the exit.
    rt.shutdown_timeout(Duration::from_millis(500));
    served
}

async fn run(engine: Engine, opts: ServiceOptions) -> Result<(), ServeError> {
    let acceptor = opts.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let mut listeners = Vec::new();
    for h in &opts.hosts {
        if let Host::Tcp(a) = h {
            if !a.ip().is_loopback() && acceptor.is_none() {
                return Err(ServeError::Host(format!(
                    "tcp://{a}: TCP outside loopback needs --tlsverify with --tlscacert, --tlscert and --tlskey"
                )));
            }
        }
    }
    for h in &opts.hosts {
        listeners.push(match h {
            Host::Unix(p) => Listener::Unix(unix_listener(p)?, p.clone()),
            Host::Tcp(a) => Listener::Tcp(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|source| ServeError::Listen {
                        what: a.to_string(),
                        source,
                    })?,
                acceptor.clone(),
            ),
        });
    }
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sockets = Vec::new();
    for l in listeners {
        let (engine, last, open, mut stop) =
            (engine.clone(), last.clone(), open.clone(), stop_rx.clone());
        if let Listener::Unix(_, p) = &l {
            sockets.push(p.clone());
        }
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.changed() => break,
                    a = accept(&l) => a,
                };
                let Some(io) = accepted else { continue };
                let (engine, last, open) = (engine.clone(), last.clone(), open.clone());
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let io = match io {
                        Conn::Handshake(tls, tcp) => match tls.accept(tcp).await {
                            Ok(t) => Conn::Tls(Box::new(t)),
                            Err(e) => {
                                tracing::debug!("a TLS handshake failed: {e}");
                                open.fetch_sub(1, Ordering::SeqCst);
                                return;
                            }
                        },
                        plain => plain,
                    };
                    let local_socket = match &io {
                        Conn::Unix(s) => Some(std::os::fd::AsRawFd::as_raw_fd(s)),
                        _ => None,
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (engine, last) = (engine.clone(), last.clone());
                        async move {
                            last.store(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                            let mut req = req;
                            let upgrade = Some(hyper::upgrade::on(&mut req));
                            let (parts, body) = req.into_parts();
                            let limit = body_limit(parts.uri.path());
                            let body =
                                match http_body_util::Limited::new(body, limit).collect().await {
                                    Ok(b) => b.to_bytes(),
                                    Err(e) => {
                                        return Ok::<_, std::convert::Infallible>(body_refused(
                                            &*e, limit,
                                        ))
                                    }
                                };
                            let what = format!("{} {}", parts.method, parts.uri.path());
                            let began = std::time::Instant::now();
                            let r = crate::route::route(Request {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                                engine,
                                upgrade,
                                local_socket,
                            })
                            .await;
                            tracing::debug!(
                                "{what}: {} in {:.1} ms",
                                r.status(),
                                began.elapsed().as_secs_f64() * 1e3
                            );
                            Ok(r)
                        }
                    });
                    if let Err(e) = io.serve(svc).await {
                        tracing::debug!("connection: {e}");
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    let idle = opts.idle;
    let quiet = async {
        let mut trimmed_at = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // A burst of clients leaves freed memory in the allocator's
            // per-thread arenas: given back once nobody is connected.
            let seen = last.load(Ordering::SeqCst);
            if open.load(Ordering::SeqCst) == 0 && seen != trimmed_at {
                trimmed_at = seen;
                #[cfg(target_env = "gnu")]
                // SAFETY: malloc_trim only returns free memory to the system.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
            if let Some(idle) = idle {
                let since = started.elapsed().as_millis() as u64 - last.load(Ordering::SeqCst);
                if open.load(Ordering::SeqCst) == 0 && since >= idle.as_millis() as u64 {
                    break;
                }
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| ServeError::Listen {
            what: "SIGTERM".into(),
            source,
        })?;
    tokio::select! {
        _ = quiet => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_tx.send(true);
    for p in sockets {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// The largest body a request may send: archives (a build context, an
/// image, a folder for `docker cp`) may be large; a JSON body is small.
const ARCHIVE_BODY: usize = 8 << 30;
const JSON_BODY: usize = 16 << 20;
/// Request line and headers, together (hyper answers 431 beyond).
const HEAD_BUFFER: usize = 256 << 10;

fn body_limit(path: &str) -> usize {
    let archive = path.ends_with("/build")
        || path.ends_with("/archive")
        || path.ends_with("/images/load")
        || path.ends_with("/images/create");
    if archive {
        ARCHIVE_BODY
    } else {
        JSON_BODY
    }
}

fn body_refused(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    limit: usize,
) -> hyper::Response<crate::reply::Body> {
    if e.is::<http_body_util::LengthLimitError>() {
        crate::reply::error(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large: at most {limit} bytes here"),
        )
    } else {
        crate::reply::error(
            hyper::StatusCode::BAD_REQUEST,
            &format!("cannot read the request body: {e}"),
        )
    }
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    /// Accepted, its TLS handshake still to come (on the connection's task).
    Handshake(tokio_rustls::TlsAcceptor, tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl Conn {
    async fn serve<S>(self, svc: S) -> hyper::Result<()>
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<crate::reply::Body>,
                Error = std::convert::Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let mut b = http1::Builder::new();
        b.max_buf_size(HEAD_BUFFER);
        match self {
            Conn::Unix(s) => {
                b.serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await
            }
            Conn::Tcp(s) => {
                b.serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await
            }
            Conn::Tls(s) => {
                b.serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await
            }
            Conn::Handshake(..) => Ok(()),
        }
    }
}

async fn accept(l: &Listener) -> Option<Conn> {
    match l {
        Listener::Unix(u, _) => u.accept().await.ok().map(|(s, _)| Conn::Unix(s)),
        Listener::Tcp(t, tls) => {
            let (s, _) = t.accept().await.ok()?;
            Some(match tls {
                Some(a) => Conn::Handshake(a.clone(), s),
                None => Conn::Tcp(s),
            })
        }
    }
}
