//! Published ports without iptables: a userspace proxy accepts on the host
//! address and connects to the port inside the container's network
//! namespace. The connecting happens on one thread that joined that
//! namespace with setns (a namespace switch is per thread); the sockets it
//! makes stay in the container's namespace, the copying runs on the host side.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

/// A published port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `-p [IP:]HOST:CONTAINER[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host: SocketAddr,
    pub container: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// docker's `-p` forms: `8080:80`, `127.0.0.1:8080:80`, `8080:80/tcp`.
    pub fn parse(s: &str) -> Result<PortMapping> {
        let bad = |why: &str| Error::Spec(format!("invalid port mapping {s:?}: {why}"));
        let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad("the protocol is tcp or udp")),
        };
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [c, h] => ("0.0.0.0", *h, *c),
            [c, h, ip] => (ip.trim_matches(['[', ']']), *h, *c),
            _ => return Err(bad("use [IP:]HOST_PORT:CONTAINER_PORT")),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("invalid IP address"))?;
        let host: u16 = host.parse().map_err(|_| bad("invalid host port"))?;
        let container: u16 = ctr.parse().map_err(|_| bad("invalid container port"))?;
        if container == 0 {
            return Err(bad("invalid container port"));
        }
        Ok(PortMapping {
            host: SocketAddr::new(ip, host),
            container,
            proto,
        })
    }
}

/// A socket to be made inside the container's network namespace.
enum Dial {
    Tcp(u16, mpsc::Sender<io::Result<TcpStream>>),
    Udp(u16, mpsc::Sender<io::Result<UdpSocket>>),
}

/// A bound host socket and the container port it forwards to.
enum Listener {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

/// Starts proxying `mappings` into the network namespace of process `pid`.
/// The listeners are bound before this returns (a busy port is an error);
/// the proxy lives as long as the process that called it.
pub fn publish(pid: i32, mappings: &[PortMapping]) -> Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
        Error::Setup(format!(
            "cannot open the container's network namespace: {e}"
        ))
    })?;
    let listeners = mappings
        .iter()
        .map(|m| {
            let bound = match m.proto {
                Proto::Tcp => TcpListener::bind(m.host).map(|l| Listener::Tcp(l, m.container)),
                Proto::Udp => UdpSocket::bind(m.host).map(|l| Listener::Udp(l, m.container)),
            };
            bound.map_err(|e| {
                Error::Setup(format!(
                    "cannot publish port {}/{}: {e}",
                    m.host,
                    m.proto.name()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (dial_tx, dial_rx) = mpsc::channel::<Dial>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    thread::spawn(move || {
        let joined = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Setup(format!("cannot join the container's network: {e}")));
        let ok = joined.is_ok();
        let _ = ready_tx.send(joined);
        if !ok {
            return;
        }
        for dial in dial_rx {
            match dial {
                Dial::Tcp(port, reply) => {
                    let _ = reply.send(TcpStream::connect(("127.0.0.1", port)));
                }
                Dial::Udp(port, reply) => {
                    let made = UdpSocket::bind(("127.0.0.1", 0))
                        .and_then(|s| s.connect(("127.0.0.1", port)).map(|()| s));
                    let _ = reply.send(made);
                }
            }
        }
    });
    ready_rx
        .recv()
        .map_err(|_| Error::Setup("the port proxy did not start".into()))??;
    for listener in listeners {
        let dial_tx = dial_tx.clone();
        match listener {
            Listener::Tcp(l, port) => {
                thread::spawn(move || serve_tcp(l, port, dial_tx));
            }
            Listener::Udp(u, port) => {
                thread::spawn(move || serve_udp(u, port, dial_tx));
            }
        }
    }
    Ok(())
}

fn serve_tcp(listener: TcpListener, port: u16, dial_tx: mpsc::Sender<Dial>) {
    for client in listener.incoming().flatten() {
        let (tx, rx) = mpsc::channel();
        if dial_tx.send(Dial::Tcp(port, tx)).is_err() {
            return;
        }
        match rx.recv() {
            Ok(Ok(upstream)) => splice(client, upstream),
            // Nothing listens inside (yet): the client sees a reset.
            _ => {
                let _ = client.shutdown(Shutdown::Both);
            }
        }
    }
}

/// UDP has no connections: each client address gets a socket of its own
/// inside the container (so replies find their way back), made on its
/// first datagram.
fn serve_udp(host: UdpSocket, port: u16, dial_tx: mpsc::Sender<Dial>) {
    let host = Arc::new(host);
    let mut peers: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, client)) = host.recv_from(&mut buf) {
        let inside = match peers.get(&client) {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = mpsc::channel();
                if dial_tx.send(Dial::Udp(port, tx)).is_err() {
                    return;
                }
                let Ok(Ok(s)) = rx.recv() else { continue };
                let s = Arc::new(s);
                let (back, reply_to) = (s.clone(), host.clone());
                thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = back.recv(&mut buf) {
                        let _ = reply_to.send_to(&buf[..n], client);
                    }
                });
                peers.insert(client, s.clone());
                s
            }
        };
        let _ = inside.send(&buf[..n]);
    }
}

/// Copies both ways until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    };
    thread::spawn(move || pipe(a, b2));
    thread::spawn(move || pipe(b, a2));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_port_forms() {
        let p = |s| PortMapping::parse(s).unwrap();
        assert_eq!(p("8080:80").host, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            p("127.0.0.1:8080:80/tcp").host,
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(p("[::1]:8080:80").host, "[::1]:8080".parse().unwrap());
        assert_eq!(p("8080:80").container, 80);
        assert!(PortMapping::parse("80").is_err());
        assert_eq!(PortMapping::parse("8080:80/udp").unwrap().proto, Proto::Udp);
        assert!(PortMapping::parse("8080:80/sctp").is_err());
        assert!(PortMapping::parse("x:80").is_err());
    }

    /// The relay itself, into this process's own network namespace (as root:
    /// joining a namespace needs CAP_SYS_ADMIN, even one's own).
    #[test]
    fn udp_datagrams_go_both_ways() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: setns needs root (CI runs as root)");
            return;
        }
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inner = echo.local_addr().unwrap().port();
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf) {
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&reply, from);
            }
        });
        let outer = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mapping =
            PortMapping::parse(&format!("127.0.0.1:{}:{inner}/udp", outer.port())).unwrap();
        publish(std::process::id() as i32, &[mapping]).unwrap();
        for client in 0..2 {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            c.connect(outer).unwrap();
            for i in 0..3 {
                let msg = format!("c{client}-{i}");
                c.send(msg.as_bytes()).unwrap();
                let mut buf = [0u8; 1500];
                let n = c.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
            }
        }
    }
}
