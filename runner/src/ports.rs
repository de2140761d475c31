//! Published ports without iptables: a userspace proxy accepts on the host
//! address and connects to the port inside the container's network
//! namespace. The connecting happens on one thread that joined that
//! namespace with setns (a namespace switch is per thread); the sockets it
//! makes stay in the container's namespace, the copying runs on the host side.

use crate::error::{Error, Result};
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

/// `-p [IP:]HOST:CONTAINER[/tcp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host: SocketAddr,
    pub container: u16,
}

impl PortMapping {
    /// docker's `-p` forms: `8080:80`, `127.0.0.1:8080:80`, `8080:80/tcp`.
    pub fn parse(s: &str) -> Result<PortMapping> {
        let bad = |why: &str| Error::Spec(format!("invalid port mapping {s:?}: {why}"));
        let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        if proto != "tcp" {
            return Err(bad("only tcp ports can be published for now"));
        }
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
        })
    }
}

type Dial = (u16, mpsc::Sender<io::Result<TcpStream>>);

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
            TcpListener::bind(m.host)
                .map(|l| (l, m.container))
                .map_err(|e| Error::Setup(format!("cannot publish port {}: {e}", m.host)))
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
        for (port, reply) in dial_rx {
            let _ = reply.send(TcpStream::connect(("127.0.0.1", port)));
        }
    });
    ready_rx
        .recv()
        .map_err(|_| Error::Setup("the port proxy did not start".into()))??;
    for (listener, port) in listeners {
        let dial_tx = dial_tx.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (tx, rx) = mpsc::channel();
                if dial_tx.send((port, tx)).is_err() {
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
        });
    }
    Ok(())
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
        assert!(PortMapping::parse("8080:80/udp").is_err());
        assert!(PortMapping::parse("x:80").is_err());
    }
}
