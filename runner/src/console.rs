//! `-t`: the container's terminal. As runc does it, the pseudo-terminal is
//! allocated inside the container (from its own `/dev/pts` instance, so
//! `tty` names a device that exists there) and its master end is sent to
//! the supervisor over a unix socket (`--console-socket`) with SCM_RIGHTS.

use crate::error::{Error, Result};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

fn sys(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// Connects to the supervisor's console socket (before pivot_root hides it).
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .map_err(|e| Error::Setup(format!("console socket {}: {e}", path.display())))
}

/// Allocates a pseudo-terminal from `/dev/ptmx` of the current root, sends
/// its master to `socket` and makes the slave this process's controlling
/// terminal and standard streams.
pub fn attach_new_terminal(socket: &UnixStream, size: Option<(u16, u16)>) -> Result<()> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("cannot open /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = ptsname_r(&master).map_err(sys("ptsname"))?;
    // The size is set before the process starts: it may ask at once.
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the struct we pass.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("cannot open the terminal"))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"t")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys("cannot send the terminal"))?;
    drop(master);
    // The supervisor says when it reads the terminal: output written
    // before that would meet no reader.
    let mut ack = [0u8; 1];
    let _ = std::io::Read::read(&mut &*socket, &mut ack);
    nix::unistd::setsid().map_err(sys("setsid"))?;
    // SAFETY: TIOCSCTTY on a descriptor we own.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::Setup(
            "cannot take the terminal as controlling terminal".into(),
        ));
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(Error::Setup("cannot attach the terminal".into()));
        }
    }
    Ok(())
}

/// The (rows, columns) of terminal `fd`, when it is one.
pub fn size_of(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data the ioctl fills.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0)
            .then_some((ws.ws_row, ws.ws_col))
    }
}

/// Waits up to `timeout` for a runtime to connect and send a terminal master.
pub fn receive(listener: &UnixListener, timeout: Duration) -> Result<OwnedFd> {
    let deadline = std::time::Instant::now() + timeout;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Setup(format!("console socket: {e}")))?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Setup("the runtime sent no terminal".into()));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(Error::Setup(format!("console socket: {e}"))),
        }
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(timeout));
    let received = receive_fd(&stream);
    // The go-ahead: the caller reads the terminal from now on (it holds
    // the master before this returns).
    let _ = std::io::Write::write_all(&mut &stream, b"1");
    received
}

fn receive_fd(stream: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("cannot receive the terminal"))?;
    for c in msg.cmsgs().map_err(sys("cannot receive the terminal"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Setup("the runtime sent no terminal".into()))
}

/// Sets terminal `fd`'s window size.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    // SAFETY: winsize is plain data; the ioctl only reads it.
    unsafe {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
}

/// The window size of terminal `from`, given to terminal `to`.
pub fn copy_size(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; the ioctls only read/write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Standard input in raw mode while this lives (an attached `-it`: keys go
/// to the container's terminal as typed, ^C included).
pub struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    pub fn stdin() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}
