//! Ready-made requests on nonblocking fds: [`read_send`], [`write_send`],
//! [`write_all_send`], [`accept_send`], [`connect_send`].
//!
//! Each request owns a clone of the fd's `Rc` and, while it waits, an fd
//! watcher; dropping the request drops the watcher. Readiness is only a hint:
//! a `WouldBlock` (or `EINTR`) after a readiness report means "wait again",
//! so a stale readiness (another reader got there first) is harmless. Errors
//! are the system call's `std::io::Error`, in [`ReqError::User`].
//!
//! Writes are attempted at once and wait only if the fd is full; reads and
//! accepts wait for readiness first, as tevent's do. A hang-up wakes a writer
//! (its write then fails with `EPIPE` or `ECONNRESET`) instead of leaving it
//! waiting forever. Rust programs ignore `SIGPIPE`, so a write to a closed
//! peer is an error, not a signal.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use rustix::io::Errno;

use crate::context::Context;
use crate::fd::{FdEvent, FdFlags};
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

/// A watcher error as the request's I/O error.
fn watch_error(e: crate::Error) -> ReqError<io::Error> {
    match e {
        crate::Error::BadFd { source, .. } => ReqError::User(source),
        other => ReqError::User(io::Error::other(other)),
    }
}

/// Whether `e` means "not now": wait for readiness again.
fn again(e: Errno) -> bool {
    e == Errno::WOULDBLOCK || e == Errno::AGAIN || e == Errno::INTR
}

/// Starts watching `fd` for `flags` on behalf of the request, if not yet.
fn watch<T, F>(
    ctl: &mut Ctl<'_, T>,
    slot: &mut Option<FdEvent<'static>>,
    fd: &Rc<F>,
    flags: FdFlags,
    step: fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T>,
) -> Result<(), ReqError<io::Error>>
where
    T: Request<Error = io::Error>,
    F: AsFd + 'static,
{
    if slot.is_none() {
        *slot = Some(ctl.watch_fd(fd.clone(), flags, step).map_err(watch_error)?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------

/// A read of up to `buf.len()` bytes (see [`read_send`]).
pub struct Read<F: AsFd + 'static> {
    fd: Rc<F>,
    buf: Vec<u8>,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Request for Read<F> {
    /// The buffer, truncated to the bytes read; empty means end of file.
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> Read<F> {
    fn ready(&mut self, _: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        match rustix::io::read(self.fd.as_fd(), &mut self.buf) {
            Ok(n) => {
                let mut buf = std::mem::take(&mut self.buf);
                buf.truncate(n);
                Ok(Progress::Done(buf))
            }
            Err(e) if again(e) => Ok(Progress::Pending),
            Err(e) => Err(ReqError::User(e.into())),
        }
    }
}

/// Reads once from `fd` into `buf` (up to `buf.len()` bytes) when it is
/// readable. The output is `buf` truncated to what was read: empty at end of
/// file. Pass a buffer of the wanted size (`vec![0; n]`), or reuse the last
/// output after resizing it.
#[track_caller]
pub fn read_send<F: AsFd + 'static>(ev: &Context, fd: &Rc<F>, buf: Vec<u8>) -> Req<Read<F>> {
    Req::start(
        ev,
        Read {
            fd: fd.clone(),
            buf,
            watch: None,
        },
        |st, ctl| {
            let fd = st.fd.clone();
            watch(ctl, &mut st.watch, &fd, FdFlags::READ, Read::ready)?;
            Ok(Progress::Pending)
        },
    )
}

// ---------------------------------------------------------------------------

/// One write (see [`write_send`]).
pub struct Write<F: AsFd + 'static> {
    fd: Rc<F>,
    data: Vec<u8>,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Request for Write<F> {
    /// The number of bytes written (at least 1 unless `data` was empty).
    type Output = usize;
    type Error = io::Error;
}

impl<F: AsFd + 'static> Write<F> {
    fn attempt(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        if self.data.is_empty() {
            return Ok(Progress::Done(0));
        }
        match rustix::io::write(self.fd.as_fd(), &self.data) {
            Ok(n) => Ok(Progress::Done(n)),
            Err(e) if again(e) => {
                let fd = self.fd.clone();
                watch(ctl, &mut self.watch, &fd, FdFlags::WRITE, Write::ready)?;
                Ok(Progress::Pending)
            }
            Err(e) => Err(ReqError::User(e.into())),
        }
    }

    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        self.attempt(ctl)
    }
}

/// Writes `data` once (a short write is a success; see [`write_all_send`]),
/// waiting for the fd to become writable if it is full.
#[track_caller]
pub fn write_send<F: AsFd + 'static>(ev: &Context, fd: &Rc<F>, data: Vec<u8>) -> Req<Write<F>> {
    Req::start(
        ev,
        Write {
            fd: fd.clone(),
            data,
            watch: None,
        },
        Write::attempt,
    )
}

// ---------------------------------------------------------------------------

/// A write of a whole buffer (see [`write_all_send`]).
pub struct WriteAll<F: AsFd + 'static> {
    fd: Rc<F>,
    data: Vec<u8>,
    done: usize,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Request for WriteAll<F> {
    /// The buffer, handed back for reuse.
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> WriteAll<F> {
    fn attempt(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        while self.done < self.data.len() {
            match rustix::io::write(self.fd.as_fd(), &self.data[self.done..]) {
                Ok(n) => self.done += n,
                Err(e) if again(e) => {
                    let fd = self.fd.clone();
                    watch(ctl, &mut self.watch, &fd, FdFlags::WRITE, WriteAll::ready)?;
                    return Ok(Progress::Pending);
                }
                Err(e) => return Err(ReqError::User(e.into())),
            }
        }
        Ok(Progress::Done(std::mem::take(&mut self.data)))
    }

    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        self.attempt(ctl)
    }
}

/// Writes all of `data`, over as many writes as it takes (tevent's
/// `writeall`), and hands the buffer back.
#[track_caller]
pub fn write_all_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    data: Vec<u8>,
) -> Req<WriteAll<F>> {
    Req::start(
        ev,
        WriteAll {
            fd: fd.clone(),
            data,
            done: 0,
            watch: None,
        },
        WriteAll::attempt,
    )
}

// ---------------------------------------------------------------------------

/// An accept on a listening socket (see [`accept_send`]).
pub struct Accept<F: AsFd + 'static> {
    listener: Rc<F>,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Request for Accept<F> {
    /// The accepted connection, nonblocking and close-on-exec.
    type Output = OwnedFd;
    type Error = io::Error;
}

impl<F: AsFd + 'static> Accept<F> {
    fn ready(&mut self, _: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
        match rustix::net::accept_with(self.listener.as_fd(), flags) {
            Ok(fd) => Ok(Progress::Done(fd)),
            // ECONNABORTED: the peer gave up before we accepted; keep waiting.
            Err(e) if again(e) || e == Errno::CONNABORTED => Ok(Progress::Pending),
            Err(e) => Err(ReqError::User(e.into())),
        }
    }
}

/// Accepts one connection on a nonblocking listening socket when one is
/// pending.
#[track_caller]
pub fn accept_send<F: AsFd + 'static>(ev: &Context, listener: &Rc<F>) -> Req<Accept<F>> {
    Req::start(
        ev,
        Accept {
            listener: listener.clone(),
            watch: None,
        },
        |st, ctl| {
            let fd = st.listener.clone();
            watch(ctl, &mut st.watch, &fd, FdFlags::READ, Accept::ready)?;
            Ok(Progress::Pending)
        },
    )
}

// ---------------------------------------------------------------------------

/// A TCP connect (see [`connect_send`]).
pub struct Connect {
    sock: Option<Rc<OwnedFd>>,
    watch: Option<FdEvent<'static>>,
}

impl Request for Connect {
    /// The connected stream, nonblocking.
    type Output = TcpStream;
    type Error = io::Error;
}

impl Connect {
    fn ready(&mut self, _: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        let sock = self.sock.as_ref().expect("set before watching");
        match rustix::net::sockopt::socket_error(sock.as_fd()) {
            Ok(Ok(())) => {}
            Ok(Err(e)) if again(e) || e == Errno::INPROGRESS => return Ok(Progress::Pending),
            Ok(Err(e)) | Err(e) => return Err(ReqError::User(e.into())),
        }
        // Connected. The loop may still hold a clone of the `Rc` until its
        // next wait (see the fd module), so hand out a duplicate of the
        // socket (same connection, same nonblocking flag) rather than unwrap.
        self.watch = None;
        let sock = self.sock.take().expect("checked");
        let fd = rustix::io::fcntl_dupfd_cloexec(sock.as_fd(), 0)
            .map_err(|e| ReqError::User(e.into()))?;
        Ok(Progress::Done(TcpStream::from(fd)))
    }
}

/// Connects a nonblocking TCP socket to `addr`.
#[track_caller]
pub fn connect_send(ev: &Context, addr: SocketAddr) -> Req<Connect> {
    Req::start(
        ev,
        Connect {
            sock: None,
            watch: None,
        },
        move |st, ctl| {
            use rustix::net::{AddressFamily, SocketFlags, SocketType};
            let family = if addr.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
            let sock = rustix::net::socket_with(family, SocketType::STREAM, flags, None)
                .map_err(|e| ReqError::User(e.into()))?;
            match rustix::net::connect(&sock, &addr) {
                Ok(()) => return Ok(Progress::Done(TcpStream::from(sock))),
                Err(e) if e == Errno::INPROGRESS || again(e) => {}
                Err(e) => return Err(ReqError::User(e.into())),
            }
            let sock = Rc::new(sock);
            st.sock = Some(sock.clone());
            watch(ctl, &mut st.watch, &sock, FdFlags::WRITE, Connect::ready)?;
            Ok(Progress::Pending)
        },
    )
}
