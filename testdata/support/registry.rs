//! Real registries for the tests: Debian's `docker-registry` started on
//! 127.0.0.1 (anonymous, htpasswd basic auth, token auth with a token server
//! of our own that signs with a test key, TLS with a test CA), and a
//! fault-injecting TCP proxy to put in front of one.
//!
//! Included by test crates with `#[path = ".../testdata/support/registry.rs"]`.
#![allow(dead_code)]

use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pw";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed RSA certificate `cert` with its key `key`, in `dir`.
fn self_signed(dir: &Path, subject: &str, key: &str, cert: &str) {
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
            "-keyout", key, "-out", cert,
        ],
    );
}

/// A key `NAME.key` and a certificate `NAME.pem` for `subject`, signed by
/// the CA in `dir` with the extensions in `NAME.ext`.
fn sign(dir: &Path, name: &str, subject: &str) {
    let (key, csr, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key,
            "-out", &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

/// A test CA and a certificate it signed for 127.0.0.1.
pub struct TestCa {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        self_signed(dir, "/CN=berth test CA", "ca.key", "ca.pem");
        std::fs::write(
            dir.join("leaf.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        sign(dir, "leaf", "/CN=127.0.0.1");
        TestCa {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("leaf.pem"),
            key_pem: dir.join("leaf.key"),
        }
    }

    /// A client certificate the CA signed (docker's `--tlscert`):
    /// `(cert, key)` in the CA's folder, named after `name`.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.ca_pem.parent().unwrap();
        std::fs::write(
            dir.join(format!("{name}.ext")),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        sign(dir, name, "/CN=client");
        (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        )
    }
}

/// A command's output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The stdout of a command that must have succeeded (else a panic with
/// its code and both streams).
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// How a registry is set up.
#[derive(Default)]
pub struct RegistryOptions {
    pub htpasswd: bool,
    /// `(realm URL, certificate bundle)` of a token server.
    pub token: Option<(String, PathBuf)>,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Log every request (`registry.log` then lists each `GET`).
    pub log_requests: bool,
}

/// A running `docker-registry`; stopped on drop.
pub struct Registry {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Registry {
    pub fn start(dir: &Path, opts: RegistryOptions) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog: {{level: {}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-test\n",
            if opts.log_requests { "info" } else { "warn" },
            dir.join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if opts.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd runs (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        if let Some((realm, bundle)) = &opts.token {
            cfg.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: berth-test\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                bundle.display()
            ));
        }
        let config = dir.join("config.yml");
        std::fs::write(&config, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry runs (Debian's docker-registry package)");
        let reg = Registry {
            port,
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every berth call of a test gets: its own berth config
/// file and docker config folder, no mirrors from the caller.
pub struct ClientEnv {
    pub dir: PathBuf,
}

impl ClientEnv {
    pub fn new(dir: &Path) -> ClientEnv {
        std::fs::create_dir_all(dir.join("docker")).unwrap();
        ClientEnv {
            dir: dir.to_path_buf(),
        }
    }

    pub fn berth_config(&self) -> PathBuf {
        self.dir.join("berth.json")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.dir.join("docker/config.json")
    }

    /// Trusts `ca` for `host` as docker would: `certs.d/<host>/ca.crt`.
    pub fn trust(&self, host: &str, ca: &Path) {
        let d = self.dir.join("certs.d").join(host);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(ca, d.join("ca.crt")).unwrap();
    }

    pub fn command(&self, root: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("--root")
            .arg(root)
            .env("BERTH_CONFIG", self.berth_config())
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            .env_remove("BERTH_REGISTRY_MIRRORS");
        c
    }

    pub fn berth<S: AsRef<std::ffi::OsStr>>(
        &self,
        root: &Path,
        args: &[S],
    ) -> std::process::Output {
        self.command(root).args(args).output().expect("berth runs")
    }
}

/// What the token server saw.
#[derive(Default)]
pub struct TokenLog {
    pub requests: Vec<String>,
}

/// A token server as Docker Hub's auth service: it checks Basic
/// credentials and issues RS256-signed JWTs the registry verifies against
/// the test certificate.
pub struct TokenServer {
    pub port: u16,
    pub bundle: PathBuf,
    pub log: Arc<Mutex<TokenLog>>,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl TokenServer {
    /// `anonymous_pull`: tokens with pull rights for callers without credentials.
    pub fn start(dir: &Path, anonymous_pull: bool) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        self_signed(dir, "/CN=berth token signer", "token.key", "token.pem");
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "token.key",
                "-outform",
                "DER",
                "-out",
                "token.pk8",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-in",
                "token.pem",
                "-outform",
                "DER",
                "-out",
                "token.der",
            ],
        );
        let key =
            ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(dir.join("token.pk8")).unwrap())
                .expect("an RSA key");
        let cert_der = std::fs::read(dir.join("token.der")).unwrap();
        let header = b64url(
            serde_json::json!({
                "typ": "JWT",
                "alg": "RS256",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)],
            })
            .to_string()
            .as_bytes(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(TokenLog::default()));
        let log2 = log.clone();
        let key = Arc::new(key);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (key, header, log) = (key.clone(), header.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = serve_token(conn, &key, &header, &log, anonymous_pull);
                });
            }
        });
        TokenServer {
            port,
            bundle: dir.join("token.pem"),
            log,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().requests.clone()
    }
}

fn serve_token(
    conn: TcpStream,
    key: &ring::signature::RsaKeyPair,
    header: &str,
    log: &Mutex<TokenLog>,
    anonymous_pull: bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut auth = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    auth = Some(v.trim().to_string());
                }
            }
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let scopes: Vec<String> = url_pairs(query)
            .into_iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v)
            .collect();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let user = match &auth {
            Some(a) if *a == expected => Some(USER),
            Some(_) => None,
            None => None,
        };
        log.lock().unwrap().requests.push(format!(
            "{} {}",
            if user.is_some() {
                "user"
            } else if auth.is_some() {
                "bad"
            } else {
                "anon"
            },
            scopes.join(" ")
        ));
        let denied = auth.is_some() && user.is_none() || (user.is_none() && !anonymous_pull);
        if denied {
            let body = r#"{"details":"incorrect username or password"}"#;
            write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                let actions: Vec<&str> = actions
                    .split(',')
                    .filter(|a| user.is_some() || *a == "pull")
                    .collect();
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = b64url(
            serde_json::json!({
                "iss": "berth-test-issuer",
                "sub": user.unwrap_or(""),
                "aud": "berth-test",
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": format!("{now}-{}", log.lock().unwrap().requests.len()),
                "access": access,
            })
            .to_string()
            .as_bytes(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .expect("signing works");
        let token = format!("{signing_input}.{}", b64url(&sig));
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
            .to_string();
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Faults the proxy injects, each used up as it fires.
#[derive(Default)]
pub struct Faults {
    /// Answer this many connections' first request with a 500 and close.
    pub fail_requests: u32,
    /// Then this many with a 429 and `Retry-After: 1`.
    pub throttle_requests: u32,
    /// Cut this many connections once `cut_after` bytes went through them
    /// (either way).
    pub cuts: u32,
    pub cut_after: u64,
    /// Wait this long before connecting each new connection through.
    pub delay: Duration,
    /// Wait this long after each forwarded read (at most 64 KiB): a slow link.
    pub pace: Duration,
}

/// A TCP proxy in front of a registry that breaks things on purpose.
pub struct FaultProxy {
    pub port: u16,
    pub faults: Arc<Mutex<Faults>>,
    pub fired: Arc<AtomicU32>,
    pub bytes: Arc<AtomicU64>,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let fired = Arc::new(AtomicU32::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (f2, fired2, bytes2) = (faults.clone(), fired.clone(), bytes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (faults, fired, bytes) = (f2.clone(), fired2.clone(), bytes2.clone());
                std::thread::spawn(move || proxy_conn(client, upstream, &faults, &fired, &bytes));
            }
        });
        FaultProxy {
            port,
            faults,
            fired,
            bytes,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }
}

fn proxy_conn(
    mut client: TcpStream,
    upstream: u16,
    faults: &Arc<Mutex<Faults>>,
    fired: &Arc<AtomicU32>,
    bytes: &Arc<AtomicU64>,
) {
    let (answer, delay) = {
        let mut f = faults.lock().unwrap();
        let answer: Option<&[u8]> = if f.fail_requests > 0 {
            f.fail_requests -= 1;
            Some(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        } else if f.throttle_requests > 0 {
            f.throttle_requests -= 1;
            Some(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        } else {
            None
        };
        (answer, f.delay)
    };
    std::thread::sleep(delay);
    if let Some(answer) = answer {
        fired.fetch_add(1, Ordering::SeqCst);
        let mut head = Vec::new();
        let mut buf = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && client.read(&mut buf).unwrap_or(0) == 1 {
            head.push(buf[0]);
        }
        let _ = client.write_all(answer);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    // A connection is cut when it carries more than `cut_after` bytes while
    // cuts are left; each cut uses one up.
    let seen = Arc::new(AtomicU64::new(0));
    let pipe = {
        let (faults, fired) = (faults.clone(), fired.clone());
        move |mut from: TcpStream,
              mut to: TcpStream,
              seen: Arc<AtomicU64>,
              bytes: Arc<AtomicU64>| {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let total = seen.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                bytes.fetch_add(n as u64, Ordering::SeqCst);
                let cut = {
                    let mut f = faults.lock().unwrap();
                    if f.cuts > 0 && total > f.cut_after {
                        f.cuts -= 1;
                        true
                    } else {
                        false
                    }
                };
                if cut {
                    fired.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                let pace = faults.lock().unwrap().pace;
                if !pace.is_zero() {
                    std::thread::sleep(pace);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    };
    let up = {
        let (c, s, seen, bytes, pipe) = (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            seen.clone(),
            bytes.clone(),
            pipe.clone(),
        );
        std::thread::spawn(move || pipe(c, s, seen, bytes))
    };
    pipe(server, client, seen, bytes.clone());
    let _ = up.join();
}
