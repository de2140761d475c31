//! The few rtnetlink requests a bridge network needs: make a bridge, a
//! veth pair with one end in a container's namespace, addresses, routes,
//! links up and down. Each is one message and one acknowledgement on a
//! `NETLINK_ROUTE` socket, which is what keeps a container's setup in
//! microseconds where a helper process per step costs milliseconds.

use crate::error::{Error, Result};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;

const IFF_UP: u32 = 0x1;

/// One request being written: the netlink header, a fixed family header,
/// then attributes, each padded to four bytes.
struct Message {
    buf: Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

impl Message {
    fn new(kind: u16, flags: u16) -> Message {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Message { buf }
    }

    /// `struct ifinfomsg` with `index` and `flags` (as the change mask too).
    fn ifinfo(mut self, index: u32, flags: u32) -> Message {
        push_ifinfo(&mut self.buf, index, flags);
        self
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Message {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    fn name(&mut self, kind: u16, name: &str) -> &mut Message {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn open(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn close(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn push_ifinfo(buf: &mut Vec<u8>, index: u32, flags: u32) {
    buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, pad, type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
}

/// A `NETLINK_ROUTE` socket of one network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

fn socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Netlink {
    /// A socket in this process's namespace.
    pub fn here() -> Result<Netlink> {
        let fd = socket().map_err(Error::io("cannot open a netlink socket"))?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// A socket in the namespace bound at `netns`: made by a thread that
    /// enters it and ends, since a socket stays in the namespace it was
    /// made in.
    pub fn inside(netns: &Path) -> Result<Netlink> {
        let ns = std::fs::File::open(netns).map_err(Error::io_at("open", netns))?;
        let shown = netns.display().to_string();
        let fd = std::thread::spawn(move || -> Result<OwnedFd> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::Backend(format!("cannot enter {shown}: {e}")))?;
            socket().map_err(Error::io("cannot open a netlink socket"))
        })
        .join()
        .map_err(|_| Error::Backend("the netlink thread failed".into()))??;
        Ok(Netlink { fd, seq: 0 })
    }

    fn send(&mut self, msg: Message) -> std::io::Result<Vec<u8>> {
        self.seq += 1;
        let bytes = msg.finish(self.seq);
        // SAFETY: bytes outlives the call; the kernel is the peer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut reply = vec![0u8; 65536];
        loop {
            // SAFETY: reply is a writable buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            reply.truncate(n as usize);
            break;
        }
        Ok(reply)
    }

    /// Sends `msg` and waits for its acknowledgement (or the first answer
    /// that is not an error, for a lookup).
    fn request(&mut self, msg: Message) -> std::io::Result<Vec<u8>> {
        let reply = self.send(msg)?;
        if reply.len() < 16 {
            return Err(std::io::Error::other("a short netlink reply"));
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        if kind == NLMSG_ERROR && reply.len() >= 20 {
            let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
            if code != 0 {
                return Err(std::io::Error::from_raw_os_error(-code));
            }
        }
        Ok(reply)
    }

    /// The index of link `name`, if there is one.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = Message::new(RTM_GETLINK, 0).ifinfo(0, 0);
        m.name(IFLA_IFNAME, name);
        match self.request(m) {
            Ok(r) if r.len() >= 24 && u16::from_ne_bytes([r[4], r[5]]) == RTM_NEWLINK => {
                Ok(Some(u32::from_ne_bytes([r[20], r[21], r[22], r[23]])))
            }
            Ok(_) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::Backend(format!("cannot look up link {name}: {e}"))),
        }
    }

    /// Makes bridge `name`, up, with `mac`; its index.
    pub fn add_bridge(&mut self, name: &str, mac: [u8; 6], mtu: Option<u32>) -> Result<u32> {
        let mut m =
            Message::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, IFF_UP);
        m.name(IFLA_IFNAME, name).attr(IFLA_ADDRESS, &mac);
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        let info = m.open(IFLA_LINKINFO);
        m.name(IFLA_INFO_KIND, "bridge");
        m.close(info);
        match self.request(m) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(Error::Backend(format!("cannot make bridge {name}: {e}"))),
        }
        self.index(name)?
            .ok_or_else(|| Error::Backend(format!("bridge {name} is gone as it was made")))
    }

    /// Makes veth `host` (up, a port of bridge `master`) whose peer `peer`
    /// with address `mac` is made in the namespace open as `netns`.
    pub fn add_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        mac: [u8; 6],
        netns: &std::fs::File,
        mtu: Option<u32>,
    ) -> std::io::Result<()> {
        let mut m =
            Message::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, IFF_UP);
        m.name(IFLA_IFNAME, host)
            .attr(IFLA_MASTER, &master.to_ne_bytes());
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        let info = m.open(IFLA_LINKINFO);
        m.name(IFLA_INFO_KIND, "veth");
        let data = m.open(IFLA_INFO_DATA);
        let peer_at = m.open(VETH_INFO_PEER);
        push_ifinfo(&mut m.buf, 0, 0);
        m.name(IFLA_IFNAME, peer)
            .attr(IFLA_ADDRESS, &mac)
            .attr(IFLA_NET_NS_FD, &(netns.as_raw_fd() as u32).to_ne_bytes());
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        m.close(peer_at);
        m.close(data);
        m.close(info);
        self.request(m).map(|_| ())
    }

    /// Sets link `index` up.
    pub fn up(&mut self, index: u32) -> Result<()> {
        let m = Message::new(RTM_NEWLINK, NLM_F_ACK).ifinfo(index, IFF_UP);
        self.request(m)
            .map(|_| ())
            .map_err(|e| Error::Backend(format!("cannot set link {index} up: {e}")))
    }

    /// Gives link `index` address `ip/prefix` (one it has already is fine).
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut m = Message::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        let brd = Ipv4Addr::from(u32::from(ip) | !mask);
        m.attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets())
            .attr(IFA_BROADCAST, &brd.octets());
        match self.request(m) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(Error::Backend(format!(
                "cannot give link {index} address {ip}/{prefix}: {e}"
            ))),
        }
    }

    /// A default route via `gateway` on link `index`; false when there is
    /// one already (the first network's stays, as docker's does).
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<bool> {
        let mut m = Message::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // rtmsg: family, dst_len, src_len, tos, table main, protocol boot,
        // scope universe, type unicast, flags.
        m.buf
            .extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0, 254, 3, 0, 1]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &index.to_ne_bytes());
        match self.request(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(Error::Backend(format!("cannot route via {gateway}: {e}"))),
        }
    }

    /// Deletes link `name`; a missing one is fine.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let mut m = Message::new(RTM_DELLINK, NLM_F_ACK).ifinfo(0, 0);
        m.name(IFLA_IFNAME, name);
        match self.request(m) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(Error::Backend(format!("cannot delete link {name}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_sized() {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_ACK).ifinfo(7, IFF_UP);
        let at = m.open(IFLA_LINKINFO);
        m.name(IFLA_INFO_KIND, "veth");
        m.close(at);
        let b = m.finish(9);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 9);
        assert_eq!(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]), 7);
        // The nest holds one attribute of 4 + "veth\0" padded to 12.
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 4 + 12);
        assert_eq!(&b[40..45], b"veth\0");
    }
}
