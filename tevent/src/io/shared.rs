//! The machinery every I/O request shares: the fd with what a request has
//! learnt about it (`Io`), its watcher, the nonblocking checks and the
//! errors they give.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use crate::context::Context;
use crate::fd::{FdEvent, FdFlags, Require};
use crate::req::{Ctl, ReqError, Request, StepResult};
use crate::sim::ReadFault;

// Shared machinery.

/// The error for an fd in blocking mode that must not be.
fn blocking(fd: RawFd) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, crate::Error::Blocking { fd })
}

/// A watcher error as the request's I/O error.
fn watch_error(e: crate::Error) -> ReqError<io::Error> {
    match e {
        crate::Error::BadFd { source, .. } => ReqError::User(source),
        e @ crate::Error::Blocking { .. } => {
            ReqError::User(io::Error::new(io::ErrorKind::InvalidInput, e))
        }
        other => ReqError::User(io::Error::other(other)),
    }
}

/// Whether `e` means "not now": wait for readiness again.
pub(super) fn again(e: Errno) -> bool {
    e == Errno::WOULDBLOCK || e == Errno::AGAIN || e == Errno::INTR
}

/// Fails unless `fd` has `O_NONBLOCK` (one `fcntl(F_GETFL)`).
fn require_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if flags.contains(rustix::fs::OFlags::NONBLOCK) {
        Ok(())
    } else {
        Err(blocking(fd.as_raw_fd()))
    }
}

/// What a request has learnt about its fd: sockets take `recv` / `send` with
/// `MSG_DONTWAIT`, other fds plain `read` / `write` once found nonblocking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    /// No call made yet: try the socket calls.
    Unknown,
    Socket,
    /// Not a socket, and found nonblocking.
    File,
}

/// What one nonblocking call gave.
pub(super) enum Outcome {
    /// This many bytes.
    Bytes(usize),
    /// Nothing now: wait for readiness again.
    Again,
    /// Not a socket (and nonblocking): call again, as a file.
    Retry,
}

/// The fd of a request, with what it learnt about it and its watcher.
pub(super) struct Io<F: AsFd + 'static> {
    fd: Rc<F>,
    pub(super) kind: Kind,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Io<F> {
    pub(super) fn new(fd: &Rc<F>) -> Self {
        Io {
            fd: fd.clone(),
            kind: Kind::Unknown,
            watch: None,
        }
    }

    /// Interprets the result of a call: `ENOTSOCK` on a first socket call
    /// checks `O_NONBLOCK` and switches to file calls.
    fn outcome(&mut self, r: Result<usize, Errno>) -> io::Result<Outcome> {
        match r {
            Ok(n) => {
                if self.kind == Kind::Unknown {
                    self.kind = Kind::Socket;
                }
                Ok(Outcome::Bytes(n))
            }
            Err(e) if again(e) => Ok(Outcome::Again),
            Err(Errno::NOTSOCK) if self.kind == Kind::Unknown => {
                require_nonblocking(self.fd.as_fd())?;
                self.kind = Kind::File;
                Ok(Outcome::Retry)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A fault a simulation injects into one call on the fd (see
    /// [`crate::sim`]): what the call gives instead of being made. A reset
    /// or an end of file shuts a socket down too, so that its peer and the
    /// calls after this one see it (an fd that is not a socket refuses,
    /// which is ignored).
    #[cold]
    fn injected(&self, fault: ReadFault) -> io::Result<Outcome> {
        match fault {
            ReadFault::Reset => {
                let _ = rustix::net::shutdown(self.fd.as_fd(), rustix::net::Shutdown::Both);
                Err(io::Error::from_raw_os_error(libc::ECONNRESET))
            }
            ReadFault::Eof => {
                let _ = rustix::net::shutdown(self.fd.as_fd(), rustix::net::Shutdown::Read);
                Ok(Outcome::Bytes(0))
            }
            ReadFault::Again | ReadFault::None | ReadFault::Short(_) => Ok(Outcome::Again),
        }
    }

    /// `recv(flags | MSG_DONTWAIT)` on a socket (an unknown fd is tried as
    /// one). Never call it with `PEEK` on a `File`. A simulated context may
    /// shorten the read or replace it by a fault.
    #[inline]
    pub(super) fn recv(
        &mut self,
        ev: &Context,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> io::Result<Outcome> {
        if let Some(sim) = ev.sim() {
            return self.sim_recv(sim, buf, flags);
        }
        self.recv_plain(buf, flags)
    }

    /// [`Io::recv`] under simulation.
    #[cold]
    #[inline(never)]
    fn sim_recv(
        &mut self,
        sim: &crate::sim::SimState,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> io::Result<Outcome> {
        match sim.read_fault(buf.len()) {
            ReadFault::None => self.recv_plain(buf, flags),
            ReadFault::Short(n) => self.recv_plain(&mut buf[..n], flags),
            fault => self.injected(fault),
        }
    }

    /// [`Io::recv`] as asked.
    #[inline]
    fn recv_plain(&mut self, buf: &mut [u8], flags: RecvFlags) -> io::Result<Outcome> {
        let r = match self.kind {
            Kind::File => rustix::io::read(self.fd.as_fd(), buf),
            _ => {
                rustix::net::recv(self.fd.as_fd(), buf, flags | RecvFlags::DONTWAIT).map(|(n, _)| n)
            }
        };
        self.outcome(r)
    }

    /// One read into `buf`: `Some(n)` (0 at end of file), or `None` for
    /// "wait for readiness again".
    pub(super) fn read(&mut self, ev: &Context, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.recv(ev, buf, RecvFlags::empty())? {
                Outcome::Bytes(n) => return Ok(Some(n)),
                Outcome::Again => return Ok(None),
                Outcome::Retry => {}
            }
        }
    }

    /// One read into the spare capacity of `buf` (which must have some),
    /// appending what came: `Some(n)` (0 at end of file), or `None` for
    /// "wait for readiness again". The spare capacity is never zero-filled:
    /// the kernel writes into it and `buf`'s length grows by what it wrote.
    /// (`#[inline]`: in `io.rs` it was inlined into the read requests; from
    /// its own module it was not, +25 instructions per echo round trip.)
    #[inline]
    pub(super) fn read_spare(
        &mut self,
        ev: &Context,
        buf: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        use rustix::buffer::spare_capacity;
        if let Some(sim) = ev.sim() {
            return self.sim_read_spare(sim, buf);
        }
        loop {
            let r = match self.kind {
                Kind::File => rustix::io::read(self.fd.as_fd(), spare_capacity(buf)),
                _ => rustix::net::recv(self.fd.as_fd(), spare_capacity(buf), RecvFlags::DONTWAIT)
                    .map(|(n, _)| n),
            };
            match self.outcome(r)? {
                Outcome::Bytes(n) => return Ok(Some(n)),
                Outcome::Again => return Ok(None),
                Outcome::Retry => {}
            }
        }
    }

    /// [`Io::read_spare`] under simulation: through a buffer of the
    /// (perhaps shortened) size, appended to `buf`.
    #[cold]
    #[inline(never)]
    fn sim_read_spare(
        &mut self,
        sim: &crate::sim::SimState,
        buf: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        let mut len = buf.capacity() - buf.len();
        match sim.read_fault(len) {
            ReadFault::None => {}
            ReadFault::Short(n) => len = n,
            fault => {
                return match self.injected(fault)? {
                    Outcome::Bytes(n) => Ok(Some(n)),
                    _ => Ok(None),
                };
            }
        }
        let mut tmp = vec![0; len];
        loop {
            let r = match self.kind {
                Kind::File => rustix::io::read(self.fd.as_fd(), &mut tmp[..]),
                _ => rustix::net::recv(self.fd.as_fd(), &mut tmp[..], RecvFlags::DONTWAIT)
                    .map(|(n, _)| n),
            };
            match self.outcome(r)? {
                Outcome::Bytes(n) => {
                    buf.extend_from_slice(&tmp[..n]);
                    return Ok(Some(n));
                }
                Outcome::Again => return Ok(None),
                Outcome::Retry => {}
            }
        }
    }

    /// One write of `data`: `Some(n)`, or `None` for "wait until writable".
    /// A simulated context may shorten the write or replace it by a fault.
    #[inline]
    pub(super) fn write(&mut self, ev: &Context, data: &[u8]) -> io::Result<Option<usize>> {
        if let Some(sim) = ev.sim() {
            return self.sim_write(sim, data);
        }
        self.write_plain(data)
    }

    /// [`Io::write`] under simulation.
    #[cold]
    #[inline(never)]
    fn sim_write(&mut self, sim: &crate::sim::SimState, data: &[u8]) -> io::Result<Option<usize>> {
        match sim.write_fault(data.len()) {
            ReadFault::None => self.write_plain(data),
            ReadFault::Short(n) => self.write_plain(&data[..n]),
            fault => match self.injected(fault)? {
                Outcome::Bytes(n) => Ok(Some(n)),
                _ => Ok(None),
            },
        }
    }

    /// [`Io::write`] as asked.
    #[inline]
    fn write_plain(&mut self, data: &[u8]) -> io::Result<Option<usize>> {
        loop {
            let r = match self.kind {
                Kind::File => rustix::io::write(self.fd.as_fd(), data),
                _ => rustix::net::send(self.fd.as_fd(), data, crate::sys::SEND_FLAGS),
            };
            match self.outcome(r)? {
                Outcome::Bytes(n) => return Ok(Some(n)),
                Outcome::Again => return Ok(None),
                Outcome::Retry => {}
            }
        }
    }

    /// Starts watching the fd for `flags` on behalf of the request, if not
    /// yet. The fd must be nonblocking or a socket (checked once per fd
    /// registration).
    pub(super) fn watch<T, S>(
        &mut self,
        ctl: &mut Ctl<'_, T>,
        flags: FdFlags,
        step: S,
    ) -> Result<(), ReqError<io::Error>>
    where
        T: Request<Error = io::Error>,
        S: Fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T> + Copy + 'static,
    {
        watch(
            ctl,
            &mut self.watch,
            &self.fd,
            flags,
            step,
            Require::NonblockingOrSocket,
        )
    }
}

/// Starts watching `fd` for `flags` on behalf of the request, if not yet.
/// `step` is a function item (`ReadSome::ready`): zero-sized, so the watcher
/// costs no allocation.
pub(super) fn watch<T, F, S>(
    ctl: &mut Ctl<'_, T>,
    slot: &mut Option<FdEvent<'static>>,
    fd: &Rc<F>,
    flags: FdFlags,
    step: S,
    require: Require,
) -> Result<(), ReqError<io::Error>>
where
    T: Request<Error = io::Error>,
    F: AsFd + 'static,
    S: Fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T> + Copy + 'static,
{
    if slot.is_none() {
        *slot = Some(
            ctl.watch_fd_with(fd.clone(), flags, step, require)
                .map_err(watch_error)?,
        );
    }
    Ok(())
}

/// Makes room after the first `have` bytes of `buf`, whose whole length is
/// zero-filled room (no `unsafe`, and no refilling on every call): doubles it,
/// from `first` bytes, never past `limit` bytes in all. Returns the room.
pub(super) fn room(
    buf: &mut Vec<u8>,
    have: usize,
    first: usize,
    limit: usize,
) -> Result<usize, ReqError<io::Error>> {
    if buf.len() == have && have < limit {
        let len = have.saturating_mul(2).max(first).min(limit);
        buf.try_reserve_exact(len - have)
            .map_err(|_| ReqError::NoMemory)?;
        buf.resize(len, 0);
    }
    Ok(buf.len().min(limit) - have)
}
