//! The system calls whose form differs between the Unix platforms tevent
//! supports (Linux, macOS, FreeBSD; see the README, "Platforms"): pipes and
//! sockets made close-on-exec and nonblocking, and `send` that never raises
//! `SIGPIPE`.
//!
//! Linux and FreeBSD set both flags in the call that makes the fd (`pipe2`,
//! `socket` with `SOCK_CLOEXEC | SOCK_NONBLOCK`, `accept4`), as C tevent
//! does where it can. macOS has none of these, so there the flags are set
//! right after, with `fcntl(F_SETFD)` and `ioctl(FIONBIO)`: a thread that
//! forks and execs in between can pass the new fd to the program it runs,
//! the window every macOS program that makes fds has.
//!
//! `SIGPIPE`: sends pass `MSG_NOSIGNAL` everywhere. macOS only honours that
//! flag from macOS 11.1 on (older kernels ignore the bit), so the sockets
//! tevent makes itself there also get `SO_NOSIGPIPE`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{AddressFamily, SendFlags, SocketType};

/// `MSG_DONTWAIT | MSG_NOSIGNAL`: what every `send` of [`crate::io`] passes.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: SendFlags = SendFlags::DONTWAIT.union(SendFlags::NOSIGNAL);
/// `MSG_DONTWAIT | MSG_NOSIGNAL`: what every `send` of [`crate::io`] passes
/// (rustix leaves `MSG_NOSIGNAL` out on Apple systems; the kernel honours
/// it from macOS 11.1 on and ignores the bit before).
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: SendFlags =
    SendFlags::DONTWAIT.union(SendFlags::from_bits_retain(libc::MSG_NOSIGNAL as u32));

/// A pipe whose two ends are close-on-exec and nonblocking: (read, write).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::pipe::PipeFlags;
        Ok(rustix::pipe::pipe_with(
            PipeFlags::CLOEXEC | PipeFlags::NONBLOCK,
        )?)
    }
    #[cfg(target_vendor = "apple")]
    {
        let (rd, wr) = rustix::pipe::pipe()?;
        cloexec_nonblock(&rd)?;
        cloexec_nonblock(&wr)?;
        Ok((rd, wr))
    }
}

/// A new stream socket of `family`, close-on-exec and nonblocking (and, on
/// macOS, `SO_NOSIGPIPE`).
pub(crate) fn stream_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        Ok(rustix::net::socket_with(
            family,
            SocketType::STREAM,
            flags,
            None,
        )?)
    }
    #[cfg(target_vendor = "apple")]
    {
        let sock = rustix::net::socket(family, SocketType::STREAM, None)?;
        cloexec_nonblock(&sock)?;
        rustix::net::sockopt::set_socket_nosigpipe(&sock, true)?;
        Ok(sock)
    }
}

/// Accepts a connection on `listener`, close-on-exec and nonblocking (and,
/// on macOS, `SO_NOSIGPIPE`). The error is `accept`'s (or, on macOS, that
/// of setting a flag, with the connection closed).
pub(crate) fn accept(listener: impl AsFd) -> rustix::io::Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
    }
    #[cfg(target_vendor = "apple")]
    {
        let sock = rustix::net::accept(listener)?;
        rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&sock, true)?;
        rustix::net::sockopt::set_socket_nosigpipe(&sock, true)?;
        Ok(sock)
    }
}

/// Sets close-on-exec and `O_NONBLOCK` on a new fd (macOS, which has no
/// flags argument for that).
#[cfg(target_vendor = "apple")]
fn cloexec_nonblock(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(fd, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fcntl(F_GETFD)")]
    fn the_pipe_is_close_on_exec_and_nonblocking() {
        let (rd, wr) = super::pipe().expect("pipe");
        for fd in [rd.as_fd(), wr.as_fd()] {
            let fd_flags = rustix::io::fcntl_getfd(fd).expect("F_GETFD");
            assert!(fd_flags.contains(rustix::io::FdFlags::CLOEXEC));
            let fl = rustix::fs::fcntl_getfl(fd).expect("F_GETFL");
            assert!(fl.contains(rustix::fs::OFlags::NONBLOCK));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no sockets")]
    fn the_socket_is_close_on_exec_and_nonblocking() {
        let sock = super::stream_socket(rustix::net::AddressFamily::UNIX).expect("socket");
        let fd_flags = rustix::io::fcntl_getfd(&sock).expect("F_GETFD");
        assert!(fd_flags.contains(rustix::io::FdFlags::CLOEXEC));
        let fl = rustix::fs::fcntl_getfl(&sock).expect("F_GETFL");
        assert!(fl.contains(rustix::fs::OFlags::NONBLOCK));
    }
}
