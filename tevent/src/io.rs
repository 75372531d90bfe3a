//! Ready-made I/O requests, tevent-style `foo_send` / `foo_recv` pairs.
//!
//! C tevent itself has no I/O requests: its tutorial builds them from fd
//! events, and Samba has them in `lib/async_req` (`async_sock.c`) and
//! `lib/tsocket` (`tstream_*`). The closest counterparts:
//!
//! | request | output | closest C counterpart |
//! |---|---|---|
//! | [`read_some_send`] → [`ReadSome`] | the bytes of one read (empty at end of file) | the tutorial's fd event + `read()` |
//! | [`read_pooled_send`] → [`ReadPooled`] | the bytes of one read, in a buffer of a [`BufPool`] taken only once the fd is readable | none (see [`BufPool`]) |
//! | [`read_exact_send`] → [`ReadExact`] | exactly `len` bytes | `read_packet_send` with a fixed size, `tstream_readv_send` |
//! | [`read_until_send`] → [`ReadUntil`] | one line: up to and including a delimiter | `read_packet_send` with a "more" callback |
//! | [`read_to_end_send`] → [`ReadToEnd`] | everything until end of file | none |
//! | [`write_some_send`] → [`WriteSome`] | the count of one write | the tutorial's fd event + `write()` |
//! | [`write_all_send`] → [`WriteAll`] | the buffer (a `Vec<u8>`, a [`PooledBuf`]...), back, once all of it is written | `writev_send`, `tstream_writev_send` |
//! | [`accept_send`] → [`Accept`] | one connection, typed after the [`Listener`] | the tutorial's fd event + `accept()` |
//! | [`connect_send`] → [`Connect`] | a connected `TcpStream` | `async_connect_send` |
//! | [`connect_unix_send`] → [`ConnectUnix`] | a connected `UnixStream` | `async_connect_send` on `AF_UNIX` |
//! | [`shutdown_send`] → [`ShutdownSocket`] | `()` once the socket is shut down | `tstream_disconnect_send` |
//!
//! Each `*_send` function has a `*_recv` function taking the request back:
//! `read_some_recv(req)` is `req.recv()`, with the types spelled out. Every
//! request is generic over the fd it works on, shared as `Rc<F>` with
//! `F: AsFd` (`TcpStream`, `UnixStream`, `OwnedFd`, pipe ends as `OwnedFd`,
//! `File`...), and holds a clone of the `Rc` and, while it waits, an fd
//! watcher: dropping the request drops the watcher. Sizes are in bytes.
//! Errors are the system call's `std::io::Error`, in [`ReqError::User`].
//!
//! # Readiness
//!
//! Reads and accepts wait for readiness first, as tevent's do; writes are
//! attempted at once and wait only if the fd is full. Readiness is only a
//! hint: a `WouldBlock` (or `EINTR`) after a readiness report means "wait
//! again", so a stale readiness (another reader got there first) is
//! harmless. A hang-up wakes a writer (its write then fails with `EPIPE` or
//! `ECONNRESET`) instead of leaving it waiting forever. Writes to sockets pass
//! `MSG_NOSIGNAL`, and Rust programs ignore `SIGPIPE` anyway, so a write to a
//! closed peer is an error, not a signal. (macOS honours `MSG_NOSIGNAL` from
//! macOS 11.1 on; the sockets this module makes, by [`accept_send`],
//! [`connect_send`] and [`connect_unix_send`], also get `SO_NOSIGPIPE`
//! there, for older releases. A socket you made yourself, on a macOS before
//! 11.1, in a program that does not ignore `SIGPIPE`, needs `SO_NOSIGPIPE`
//! of its own.)
//!
//! # Blocking fds
//!
//! A forgotten `set_nonblocking(true)` must not hang the loop, so:
//!
//! - **sockets** are read and written with `recv` / `send` and
//!   `MSG_DONTWAIT`, which never block, whatever the socket's mode, and cost
//!   no extra system call: a socket left in blocking mode simply works;
//! - **other fds** (pipes, terminals, character devices) must be
//!   nonblocking. The first `recv` / `send` on them fails with `ENOTSOCK`;
//!   the request then checks `O_NONBLOCK` with one `fcntl(F_GETFL)` and, if
//!   the fd is blocking, fails with an error of kind
//!   [`InvalidInput`](io::ErrorKind::InvalidInput) whose payload is
//!   [`crate::Error::Blocking`] ("file descriptor N is in blocking mode ...
//!   call set_nonblocking(true) on it"). So a request on a pipe costs two
//!   calls more than on a socket (pipes are not the fast path). Reads and
//!   accepts find out sooner:
//!   their fd watcher checks the fd once, when the fd gets its entry in the
//!   context's fd table (one `fcntl`, plus an `fstat` if it is blocking, per
//!   registration, not per request), so a read on a blocking pipe fails when
//!   it starts;
//! - **listening sockets** must be nonblocking too (`accept` has no
//!   `MSG_DONTWAIT`): [`accept_send`] refuses a blocking one the same way.
//!
//! Example: the same read on a socket left blocking, which works, and on a
//! blocking pipe, which is refused when the request starts.
//!
//! ```
//! use std::io::Write as _;
//! use std::os::fd::OwnedFd;
//! use std::os::unix::net::UnixStream;
//! use std::rc::Rc;
//! use tevent::io::{read_some_recv, read_some_send};
//! use tevent::{Context, ReqError};
//!
//! let ev = Context::new()?;
//! let (a, mut b) = UnixStream::pair().unwrap(); // both blocking
//! b.write_all(b"hi").unwrap();
//! let req = read_some_send(&ev, &Rc::new(a), vec![0; 16]);
//! req.poll(&ev)?;
//! assert_eq!(read_some_recv(req).unwrap(), b"hi");
//!
//! let (r, _w) = rustix::pipe::pipe().unwrap(); // blocking pipe ends
//! let req = read_some_send(&ev, &Rc::new(OwnedFd::from(r)), vec![0; 16]);
//! req.poll(&ev)?;
//! match read_some_recv(req) {
//!     Err(ReqError::User(e)) => {
//!         assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
//!         assert!(e.to_string().contains("set_nonblocking(true)"));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), tevent::Error>(())
//! ```

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use crate::context::Context;
use crate::fd::{FdEvent, FdFlags, Require};
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};
use crate::sim::ReadFault;

// ---------------------------------------------------------------------------
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
fn again(e: Errno) -> bool {
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
enum Kind {
    /// No call made yet: try the socket calls.
    Unknown,
    Socket,
    /// Not a socket, and found nonblocking.
    File,
}

/// What one nonblocking call gave.
enum Outcome {
    /// This many bytes.
    Bytes(usize),
    /// Nothing now: wait for readiness again.
    Again,
    /// Not a socket (and nonblocking): call again, as a file.
    Retry,
}

/// The fd of a request, with what it learnt about it and its watcher.
struct Io<F: AsFd + 'static> {
    fd: Rc<F>,
    kind: Kind,
    watch: Option<FdEvent<'static>>,
}

impl<F: AsFd + 'static> Io<F> {
    fn new(fd: &Rc<F>) -> Self {
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
    fn recv(&mut self, ev: &Context, buf: &mut [u8], flags: RecvFlags) -> io::Result<Outcome> {
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
    fn read(&mut self, ev: &Context, buf: &mut [u8]) -> io::Result<Option<usize>> {
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
    fn read_spare(&mut self, ev: &Context, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
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
    fn write(&mut self, ev: &Context, data: &[u8]) -> io::Result<Option<usize>> {
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
    fn watch<T, S>(
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
fn watch<T, F, S>(
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
fn room(
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

// ---------------------------------------------------------------------------

/// A read of up to `buf.len()` bytes, from [`read_some_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{ReadSome, read_some_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ReadSome<_>> = read_some_send(&ev, &Rc::new(a), vec![0; 100]);
/// assert!(req.is_in_progress()); // nothing to read yet
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ReadSome<F: AsFd + 'static> {
    io: Io<F>,
    buf: Vec<u8>,
}

impl<F: AsFd + 'static> Request for ReadSome<F> {
    /// The buffer, truncated to the bytes read; empty means end of file.
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> ReadSome<F> {
    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        match self.io.read(ctl.ev(), &mut self.buf)? {
            Some(n) => {
                let mut buf = std::mem::take(&mut self.buf);
                buf.truncate(n);
                Ok(Progress::Done(buf))
            }
            None => Ok(Progress::Pending),
        }
    }
}

/// Reads once from `fd` into `buf` (up to `buf.len()` bytes) when it is
/// readable: the building block of tevent's echo example (an fd event whose
/// handler calls `read()`).
///
/// The output is `buf` truncated to what was read (at least one byte), or
/// empty at end of file. Pass a buffer of the wanted size (`vec![0; n]`; an
/// empty one would read nothing and look like end of file), or reuse the last
/// output after resizing it: the request allocates nothing itself.
///
/// Errors: the `recv()` / `read()` error (`ECONNRESET` when the peer
/// resets...); [`InvalidInput`](io::ErrorKind::InvalidInput) for an fd that is
/// neither a socket nor nonblocking (see the [module](self) docs).
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_some_recv, read_some_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"hello").unwrap();
/// let req = read_some_send(&ev, &a, vec![0; 100]);
/// req.poll(&ev)?;
/// assert_eq!(read_some_recv(req).unwrap(), b"hello");
/// drop(b);
/// let req = read_some_send(&ev, &a, vec![0; 100]);
/// req.poll(&ev)?;
/// assert_eq!(read_some_recv(req).unwrap(), b""); // end of file
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn read_some_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    buf: Vec<u8>,
) -> Req<ReadSome<F>> {
    Req::start(
        ev,
        ReadSome {
            io: Io::new(fd),
            buf,
        },
        |st, ctl| {
            st.io.watch(ctl, FdFlags::READ, ReadSome::ready)?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`read_some_send`]: the bytes read, empty at end of file.
/// Errors: the read's (see [`read_some_send`]).
///
/// ```
/// use std::os::fd::OwnedFd;
/// use std::rc::Rc;
/// use tevent::io::{read_some_recv, read_some_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (r, w) = rustix::pipe::pipe().unwrap();
/// rustix::io::ioctl_fionbio(&r, true).unwrap(); // a pipe must be nonblocking
/// let r = Rc::new(OwnedFd::from(r));
/// rustix::io::write(&w, b"ping").unwrap();
/// let req = read_some_send(&ev, &r, vec![0; 2]);
/// req.poll(&ev)?;
/// assert_eq!(read_some_recv(req).unwrap(), b"pi"); // at most the buffer's length
/// drop(w); // the last writer goes: what is left, then end of file
/// let req = read_some_send(&ev, &r, vec![0; 16]);
/// req.poll(&ev)?;
/// assert_eq!(read_some_recv(req).unwrap(), b"ng");
/// let req = read_some_send(&ev, &r, vec![0; 16]);
/// req.poll(&ev)?;
/// assert!(read_some_recv(req).unwrap().is_empty());
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn read_some_recv<F: AsFd + 'static>(
    req: Req<ReadSome<F>>,
) -> Result<Vec<u8>, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// Read buffers of one size, lent out by [`read_pooled_send`] only once there
/// is something to read, and taken back when the [`PooledBuf`] that holds one
/// is dropped.
///
/// A server that reads with [`read_some_send`] hands every waiting read a
/// buffer of its own, so each idle connection holds a full buffer (16 KiB at
/// a 16 KiB read size) for as long as it stays idle. With a pool, a read
/// request holds no buffer while it waits: it takes one when the fd is
/// readable, reads into it, and hands it out as a [`PooledBuf`]; dropping that
/// (for instance after writing it back with [`write_all_send`], which returns
/// it) gives the buffer back for the next read. A loop that serves one
/// connection at a time therefore cycles through a handful of buffers,
/// whatever the number of connections.
///
/// - `size` is the capacity of each buffer, in bytes: the most one read
///   takes (a size of 0 is taken as 1).
/// - `keep` is how many returned buffers the pool holds for reuse; a buffer
///   returned beyond that is freed, so a burst of activity does not leave
///   memory behind. [`BufPool::new`] keeps [`BufPool::DEFAULT_KEEP`].
/// - Buffers are allocated fallibly (a failed allocation is
///   [`ReqError::NoMemory`]) and never zero-filled: a read fills the
///   buffer's spare capacity, so only the bytes that arrived are ever
///   touched.
///
/// The pool is a cheap handle (`Rc`) tied to one thread, like the
/// [`Context`]; clone it into every request that reads with it. C tevent has
/// no such thing: its echo example allocates a buffer per read with talloc,
/// and Samba's `read_packet_send` allocates its buffer when the request
/// starts. It is a separate object rather than part of the context so that
/// each user chooses the buffer size and how many buffers stay cached, and
/// dropping the last handle frees them.
///
/// ```
/// use tevent::io::BufPool;
///
/// let pool = BufPool::new(16384);
/// assert_eq!((pool.size(), pool.lent(), pool.cached()), (16384, 0, 0));
/// let buf = pool.take::<()>().unwrap(); // empty, with room for 16384 bytes
/// assert!(buf.is_empty() && buf.capacity() >= 16384);
/// assert_eq!(pool.lent(), 1);
/// drop(buf); // back to the pool
/// assert_eq!((pool.lent(), pool.cached()), (0, 1));
/// ```
#[derive(Clone)]
pub struct BufPool {
    shared: Rc<PoolShared>,
}

struct PoolShared {
    size: usize,
    keep: usize,
    /// Returned buffers, empty, with at least `size` bytes of capacity.
    free: std::cell::RefCell<Vec<Vec<u8>>>,
    /// Buffers out in [`PooledBuf`]s.
    lent: std::cell::Cell<usize>,
}

impl BufPool {
    /// How many returned buffers [`BufPool::new`] keeps for reuse.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(64);
    /// let bufs: Vec<_> = (0..20).map(|_| pool.take::<()>().unwrap()).collect();
    /// drop(bufs); // 20 come back, 16 stay
    /// assert_eq!(pool.cached(), BufPool::DEFAULT_KEEP);
    /// assert_eq!(BufPool::DEFAULT_KEEP, 16);
    /// ```
    pub const DEFAULT_KEEP: usize = 16;

    /// A pool of `size`-byte buffers (at least 1) that keeps up to
    /// [`BufPool::DEFAULT_KEEP`] returned buffers. Allocates nothing yet.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16384);
    /// assert_eq!((pool.size(), pool.keep()), (16384, BufPool::DEFAULT_KEEP));
    /// assert_eq!((pool.lent(), pool.cached()), (0, 0)); // no buffer yet
    /// ```
    pub fn new(size: usize) -> BufPool {
        BufPool::with_keep(size, Self::DEFAULT_KEEP)
    }

    /// A pool of `size`-byte buffers (at least 1) that keeps up to `keep`
    /// returned buffers for reuse (0: every buffer is freed when returned).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::with_keep(100, 1);
    /// let (a, b) = (pool.take::<()>().unwrap(), pool.take::<()>().unwrap());
    /// drop((a, b));
    /// assert_eq!(pool.cached(), 1); // the second one was freed
    /// ```
    pub fn with_keep(size: usize, keep: usize) -> BufPool {
        BufPool {
            shared: Rc::new(PoolShared {
                size: size.max(1),
                keep,
                free: std::cell::RefCell::new(Vec::new()),
                lent: std::cell::Cell::new(0),
            }),
        }
    }

    /// The capacity of each buffer, in bytes: the most one
    /// [`read_pooled_send`] reads.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// assert_eq!(BufPool::new(4096).size(), 4096);
    /// assert_eq!(BufPool::new(0).size(), 1); // a size of 0 is taken as 1
    /// ```
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// How many returned buffers the pool keeps at most.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// assert_eq!(BufPool::with_keep(4096, 2).keep(), 2);
    /// assert_eq!(BufPool::new(4096).keep(), BufPool::DEFAULT_KEEP);
    /// ```
    pub fn keep(&self) -> usize {
        self.shared.keep
    }

    /// Buffers lent out right now (held by [`PooledBuf`]s).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(64);
    /// let a = pool.take::<()>().unwrap();
    /// let b = pool.take::<()>().unwrap();
    /// assert_eq!(pool.lent(), 2);
    /// drop(a); // returned
    /// let _bytes = b.into_vec(); // detached: no longer the pool's
    /// assert_eq!(pool.lent(), 0);
    /// ```
    pub fn lent(&self) -> usize {
        self.shared.lent.get()
    }

    /// Returned buffers held for reuse right now (at most
    /// [`BufPool::keep`]).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::with_keep(64, 2);
    /// let bufs: Vec<_> = (0..3).map(|_| pool.take::<()>().unwrap()).collect();
    /// assert_eq!(pool.cached(), 0);
    /// drop(bufs);
    /// assert_eq!(pool.cached(), 2); // the third one was freed
    /// let _again = pool.take::<()>().unwrap(); // reuses a cached one
    /// assert_eq!(pool.cached(), 1);
    /// ```
    pub fn cached(&self) -> usize {
        self.shared.free.borrow().len()
    }

    /// Lends a buffer: empty, with room for at least [`BufPool::size`]
    /// bytes; a cached one if there is one, else a new allocation (without
    /// zero-filling). Fails with [`ReqError::NoMemory`] if the allocation
    /// fails; `E` is the error type of the request asking (as in
    /// [`crate::alloc`]).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(512);
    /// let buf = pool.take::<std::io::Error>().unwrap(); // as an I/O request would
    /// assert!(buf.is_empty() && buf.capacity() >= 512);
    /// let first = buf.as_ptr();
    /// drop(buf);
    /// let again = pool.take::<std::io::Error>().unwrap();
    /// assert_eq!(again.as_ptr(), first); // the same allocation, cached
    /// # assert_eq!(pool.cached(), 0);
    /// ```
    pub fn take<E>(&self) -> Result<PooledBuf, ReqError<E>> {
        let cached = self.shared.free.borrow_mut().pop();
        let buf = match cached {
            Some(buf) => buf,
            None => crate::alloc::try_vec(self.shared.size)?,
        };
        self.shared.lent.set(self.shared.lent.get() + 1);
        Ok(PooledBuf {
            buf,
            pool: self.shared.clone(),
        })
    }
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.size())
            .field("keep", &self.keep())
            .field("lent", &self.lent())
            .field("cached", &self.cached())
            .finish()
    }
}

/// A buffer lent by a [`BufPool`]: derefs to the bytes it holds (the bytes a
/// [`read_pooled_send`] read), and goes back to its pool when dropped.
///
/// Pass it on as it is ([`write_all_send`] takes it and hands it back when
/// the write is done), or keep the bytes with [`PooledBuf::into_vec`], which
/// takes the buffer out of the pool's accounting for good.
///
/// ```
/// use tevent::io::BufPool;
///
/// let pool = BufPool::new(8);
/// let mut buf = pool.take::<()>().unwrap();
/// buf.extend_from_slice(b"abc").unwrap();
/// assert_eq!(&buf[..], b"abc");
/// buf[0] = b'x';
/// let bytes: Vec<u8> = buf.into_vec(); // detached: the pool lends nothing now
/// assert_eq!(bytes, b"xbc");
/// assert_eq!((pool.lent(), pool.cached()), (0, 0));
/// ```
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Rc<PoolShared>,
}

impl PooledBuf {
    /// The room the buffer has, in bytes (at least its pool's size).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(100);
    /// let mut buf = pool.take::<()>().unwrap();
    /// assert!(buf.capacity() >= 100);
    /// buf.extend_from_slice(b"abc").unwrap();
    /// assert_eq!((buf.len(), buf.capacity() >= 100), (3, true)); // room, not length
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends `data` if it fits in the capacity (the buffer never grows:
    /// it goes back to a pool of fixed-size buffers); otherwise appends
    /// nothing and returns the number of bytes that would not fit.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(8);
    /// let mut buf = pool.take::<()>().unwrap();
    /// let room = buf.capacity();
    /// buf.extend_from_slice(b"hello").unwrap();
    /// let too_much = vec![b'!'; room]; // 5 bytes more than the room left
    /// assert_eq!(buf.extend_from_slice(&too_much), Err(5));
    /// assert_eq!(&buf[..], b"hello"); // nothing was appended
    /// ```
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), usize> {
        let room = self.buf.capacity() - self.buf.len();
        if data.len() > room {
            return Err(data.len() - room);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Empties the buffer (its capacity stays), to fill it again.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16);
    /// let mut buf = pool.take::<()>().unwrap();
    /// buf.extend_from_slice(b"first").unwrap();
    /// let room = buf.capacity();
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), room);
    /// ```
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Takes the bytes out as a plain `Vec`, which the pool no longer
    /// counts or gets back.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16);
    /// let mut buf = pool.take::<()>().unwrap();
    /// buf.extend_from_slice(b"keep me").unwrap();
    /// let mut kept: Vec<u8> = buf.into_vec();
    /// assert_eq!((pool.lent(), pool.cached()), (0, 0)); // not returned, not lent
    /// kept.extend_from_slice(b", and grow"); // a plain Vec from now on
    /// assert_eq!(kept, b"keep me, and grow");
    /// ```
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

impl std::ops::Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let pool = &self.pool;
        pool.lent.set(pool.lent.get() - 1);
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() < pool.size {
            return; // taken out by `into_vec`: nothing to give back
        }
        let mut free = pool.free.borrow_mut();
        if free.len() < pool.keep && free.try_reserve(1).is_ok() {
            buf.clear();
            free.push(buf);
        }
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

/// A read into a pooled buffer, from [`read_pooled_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{BufPool, ReadPooled, read_pooled_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let pool = BufPool::new(100);
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ReadPooled<_>> = read_pooled_send(&ev, &Rc::new(a), &pool);
/// assert!(req.is_in_progress()); // nothing to read yet...
/// assert_eq!(pool.lent(), 0); // ...and no buffer held meanwhile
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ReadPooled<F: AsFd + 'static> {
    io: Io<F>,
    pool: BufPool,
}

impl<F: AsFd + 'static> Request for ReadPooled<F> {
    /// The bytes read, in a buffer of the pool; empty means end of file.
    type Output = PooledBuf;
    type Error = io::Error;
}

impl<F: AsFd + 'static> ReadPooled<F> {
    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        let mut buf = self.pool.take()?;
        match self.io.read_spare(ctl.ev(), &mut buf.buf)? {
            Some(_) => Ok(Progress::Done(buf)),
            // A stale readiness: the buffer goes back while we wait again.
            None => Ok(Progress::Pending),
        }
    }
}

/// Reads once from `fd` when it is readable, into a buffer lent by `pool`
/// only then: [`read_some_send`] for servers with many idle connections.
///
/// While the request waits it holds no buffer (a few dozen bytes of request
/// state and an fd watcher); when the fd becomes readable it takes a buffer
/// from `pool` (see [`BufPool`]), reads up to [`BufPool::size`] bytes into it
/// without zero-filling it first, and finishes with it as a [`PooledBuf`]
/// (at least one byte, or empty at end of file). If the read finds nothing
/// after all (another reader was first), the buffer goes back and the
/// request waits again. Drop the output, or pass it to [`write_all_send`],
/// to give the buffer back.
///
/// Errors: as [`read_some_send`] (the `recv()` / `read()` error;
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for an fd that is neither a
/// socket nor nonblocking), plus [`ReqError::NoMemory`] if a buffer cannot
/// be allocated. C tevent has no such request (see [`BufPool`]).
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{BufPool, read_pooled_recv, read_pooled_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let pool = BufPool::new(100);
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"hello").unwrap();
/// let req = read_pooled_send(&ev, &a, &pool);
/// req.poll(&ev)?;
/// let data = read_pooled_recv(req).unwrap();
/// assert_eq!(&data[..], b"hello");
/// assert_eq!(pool.lent(), 1);
/// drop(data);
/// assert_eq!((pool.lent(), pool.cached()), (0, 1)); // ready for the next read
/// drop(b);
/// let req = read_pooled_send(&ev, &a, &pool);
/// req.poll(&ev)?;
/// assert!(read_pooled_recv(req).unwrap().is_empty()); // end of file
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn read_pooled_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    pool: &BufPool,
) -> Req<ReadPooled<F>> {
    Req::start(
        ev,
        ReadPooled {
            io: Io::new(fd),
            pool: pool.clone(),
        },
        |st, ctl| {
            st.io.watch(ctl, FdFlags::READ, ReadPooled::ready)?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`read_pooled_send`]: the bytes read in a pooled buffer,
/// empty at end of file. Errors: as [`read_pooled_send`].
///
/// The usual next step is an echo: write the buffer back with
/// [`write_all_send`], which hands it back, and drop it to return it to the
/// pool.
///
/// ```
/// use std::io::{Read as _, Write as _};
/// use std::rc::Rc;
/// use tevent::io::{BufPool, read_pooled_recv, read_pooled_send, write_all_recv, write_all_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let pool = BufPool::new(4096);
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"echo me").unwrap();
/// let req = read_pooled_send(&ev, &a, &pool);
/// req.poll(&ev)?;
/// let buf = read_pooled_recv(req).unwrap();
/// let req = write_all_send(&ev, &a, buf);
/// req.poll(&ev)?;
/// drop(write_all_recv(req).unwrap()); // the buffer goes back to the pool
/// assert_eq!((pool.lent(), pool.cached()), (0, 1));
/// let mut back = [0; 7];
/// b.read_exact(&mut back).unwrap();
/// assert_eq!(&back, b"echo me");
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn read_pooled_recv<F: AsFd + 'static>(
    req: Req<ReadPooled<F>>,
) -> Result<PooledBuf, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A read of exactly `len` bytes, from [`read_exact_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{ReadExact, read_exact_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ReadExact<_>> = read_exact_send(&ev, &Rc::new(a), 4);
/// assert!(req.is_in_progress());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ReadExact<F: AsFd + 'static> {
    io: Io<F>,
    buf: Vec<u8>,
    have: usize,
}

impl<F: AsFd + 'static> Request for ReadExact<F> {
    /// Exactly the `len` bytes asked for.
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> ReadExact<F> {
    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        // One read per readiness: a short read usually means the rest has not
        // arrived yet, and the level-triggered watcher fires again if it has.
        match self.io.read(ctl.ev(), &mut self.buf[self.have..])? {
            Some(0) => Err(ReqError::User(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "end of file after {} of {} bytes",
                    self.have,
                    self.buf.len()
                ),
            ))),
            Some(n) => {
                self.have += n;
                if self.have == self.buf.len() {
                    Ok(Progress::Done(std::mem::take(&mut self.buf)))
                } else {
                    Ok(Progress::Pending)
                }
            }
            None => Ok(Progress::Pending),
        }
    }
}

/// Reads exactly `len` bytes from `fd`, over as many reads as it takes
/// (Samba's `read_packet_send` with a fixed size, or `tstream_readv_send`
/// with one buffer).
///
/// The output is a new buffer of `len` bytes (allocated when the request
/// starts; `NoMemory` if that fails). `len == 0` finishes at once with an
/// empty buffer.
///
/// Errors: [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) if end of file
/// comes first (the bytes read so far are dropped with the request); the
/// `recv()` / `read()` error; [`InvalidInput`](io::ErrorKind::InvalidInput)
/// for a blocking non-socket fd.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_exact_recv, read_exact_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req = read_exact_send(&ev, &Rc::new(a), 6);
/// b.write_all(b"hel").unwrap();
/// b.write_all(b"lo!").unwrap();
/// req.poll(&ev)?;
/// assert_eq!(read_exact_recv(req).unwrap(), b"hello!");
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn read_exact_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    len: usize,
) -> Req<ReadExact<F>> {
    Req::start(
        ev,
        ReadExact {
            io: Io::new(fd),
            buf: Vec::new(),
            have: 0,
        },
        move |st, ctl| {
            if len == 0 {
                return Ok(Progress::Done(Vec::new()));
            }
            st.buf = crate::alloc::try_vec_filled(len, 0)?;
            st.io.watch(ctl, FdFlags::READ, ReadExact::ready)?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`read_exact_send`]: exactly the bytes asked for (Samba's
/// `read_packet_recv`, `tstream_readv_recv`). Errors: as [`read_exact_send`];
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) when the stream ends
/// short.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_exact_recv, read_exact_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"1234567").unwrap();
/// drop(b);
/// let req = read_exact_send(&ev, &a, 4);
/// req.poll(&ev)?;
/// assert_eq!(read_exact_recv(req).unwrap(), b"1234");
/// let req = read_exact_send(&ev, &a, 4); // only 3 bytes are left
/// req.poll(&ev)?;
/// match read_exact_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn read_exact_recv<F: AsFd + 'static>(
    req: Req<ReadExact<F>>,
) -> Result<Vec<u8>, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// Bytes a [`ReadUntil`] asks the kernel for at first (it doubles from there).
const LINE_FIRST: usize = 1024;

/// A read up to and including a delimiter, from [`read_until_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{ReadUntil, read_until_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ReadUntil<_>> = read_until_send(&ev, &Rc::new(a), b'\n', 1024);
/// assert!(req.is_in_progress());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ReadUntil<F: AsFd + 'static> {
    io: Io<F>,
    /// Zero-filled room; the first `have` bytes are the line so far.
    buf: Vec<u8>,
    have: usize,
    delim: u8,
    max: usize,
}

impl<F: AsFd + 'static> Request for ReadUntil<F> {
    /// The bytes up to and including the delimiter; at end of file, what was
    /// read (no delimiter; empty at a clean end of file).
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> ReadUntil<F> {
    fn line(&mut self, len: usize) -> StepResult<Self> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.truncate(len);
        Ok(Progress::Done(buf))
    }

    fn too_long(&self) -> StepResult<Self> {
        Err(ReqError::User(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "line longer than max ({} bytes without the delimiter)",
                self.max
            ),
        )))
    }

    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        loop {
            if self.io.kind == Kind::File {
                return self.ready_file(ctl);
            }
            let old = self.have;
            let want = room(&mut self.buf, old, LINE_FIRST.min(self.max), self.max)?;
            // Look first, then take only up to the delimiter: what follows it
            // stays in the socket for the next request.
            let n = match self
                .io
                .recv(ctl.ev(), &mut self.buf[old..old + want], RecvFlags::PEEK)?
            {
                Outcome::Bytes(n) => n,
                Outcome::Again => return Ok(Progress::Pending),
                Outcome::Retry => continue, // not a socket: byte by byte
            };
            if n == 0 {
                return self.line(old); // end of file
            }
            let take = match memchr(self.delim, &self.buf[old..old + n]) {
                Some(i) => i + 1,
                None => n,
            };
            let got = match self.io.read(ctl.ev(), &mut self.buf[old..old + take])? {
                Some(0) | None => continue, // another reader took it: look again
                Some(got) => got,
            };
            self.have += got;
            if let Some(i) = memchr(self.delim, &self.buf[old..old + got]) {
                return self.line(old + i + 1);
            }
            if self.have == self.max {
                return self.too_long();
            }
            if n < want {
                return Ok(Progress::Pending); // drained: wait for more
            }
        }
    }

    /// Pipes and other non-sockets cannot be peeked at: one byte per read,
    /// so that nothing past the delimiter is taken.
    fn ready_file(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        loop {
            let mut byte = [0u8; 1];
            match self.io.read(ctl.ev(), &mut byte)? {
                Some(0) => return self.line(self.have),
                Some(_) => {
                    let have = self.have;
                    room(&mut self.buf, have, LINE_FIRST.min(self.max), self.max)?;
                    self.buf[have] = byte[0];
                    self.have += 1;
                    if byte[0] == self.delim {
                        return self.line(self.have);
                    }
                    if self.have == self.max {
                        return self.too_long();
                    }
                }
                None => return Ok(Progress::Pending),
            }
        }
    }
}

/// The position of `b` in `s`.
fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Reads from `fd` up to and including the first `delim` byte (a line, with
/// `b'\n'`), taking nothing past it: the next request on the fd starts right
/// after the delimiter. C tevent has no such request (Samba builds it from
/// `read_packet_send` with a "more" callback that looks for the delimiter).
///
/// - `max` is the longest line accepted, in bytes, delimiter included (it must
///   be at least 1: `max == 0` fails with
///   [`InvalidInput`](io::ErrorKind::InvalidInput)). When `max` bytes arrive
///   without the delimiter, the request fails with
///   [`InvalidData`](io::ErrorKind::InvalidData) ("line longer than max");
///   those bytes have been consumed, so the stream is mid-line: close it.
/// - The output ends with `delim`, except at end of file: then it is what was
///   read before the end (a last line without its delimiter), and **empty at
///   a clean end of file** (nothing read). So: ends with `delim` → a line;
///   empty → end of file; otherwise → an unterminated last line, and the next
///   read gives end of file.
/// - Cost: on a socket, each chunk is looked at with `recv(MSG_PEEK)` and then
///   taken up to the delimiter with `recv()`: two calls per line in the usual
///   case. Pipes and other non-sockets cannot be peeked at and are read one
///   byte per call; use [`read_some_send`] and split lines yourself where
///   that matters. One reader at a time per fd: two concurrent line reads
///   could take each other's bytes.
///
/// Errors: as [`read_some_send`], plus the two above.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_until_recv, read_until_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"one\ntwo\nthr").unwrap();
/// drop(b);
/// let mut lines = Vec::new();
/// loop {
///     let req = read_until_send(&ev, &a, b'\n', 80);
///     req.poll(&ev)?;
///     let line = read_until_recv(req).unwrap();
///     if line.is_empty() {
///         break; // clean end of file
///     }
///     lines.push(line);
/// }
/// assert_eq!(lines, [&b"one\n"[..], b"two\n", b"thr"]); // the last one unterminated
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn read_until_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    delim: u8,
    max: usize,
) -> Req<ReadUntil<F>> {
    Req::start(
        ev,
        ReadUntil {
            io: Io::new(fd),
            buf: Vec::new(),
            have: 0,
            delim,
            max,
        },
        |st, ctl| {
            if st.max == 0 {
                return Err(ReqError::User(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "read_until_send: max is 0, no line fits",
                )));
            }
            st.io.watch(ctl, FdFlags::READ, ReadUntil::ready)?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`read_until_send`]: a line with its delimiter, or at end of
/// file what was left (empty at a clean end of file). Errors: as
/// [`read_until_send`]; [`InvalidData`](io::ErrorKind::InvalidData) for a
/// line of more than `max` bytes.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_until_recv, read_until_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// b.write_all(b"HELO\r\nMAIL FROM:<someone@example.com>\r\n").unwrap();
/// let req = read_until_send(&ev, &a, b'\n', 16);
/// req.poll(&ev)?;
/// assert_eq!(read_until_recv(req).unwrap(), b"HELO\r\n");
/// let req = read_until_send(&ev, &a, b'\n', 16); // the next line is longer
/// req.poll(&ev)?;
/// match read_until_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn read_until_recv<F: AsFd + 'static>(
    req: Req<ReadUntil<F>>,
) -> Result<Vec<u8>, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// Bytes a [`ReadToEnd`] asks the kernel for at first (it doubles from there).
const TO_END_FIRST: usize = 8192;

/// A read of everything until end of file, from [`read_to_end_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{ReadToEnd, read_to_end_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ReadToEnd<_>> = read_to_end_send(&ev, &Rc::new(a), 1 << 20);
/// assert!(req.is_in_progress());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ReadToEnd<F: AsFd + 'static> {
    io: Io<F>,
    /// Zero-filled room; the first `have` bytes were read.
    buf: Vec<u8>,
    have: usize,
    max: usize,
}

impl<F: AsFd + 'static> Request for ReadToEnd<F> {
    /// Every byte up to end of file (at most `max`).
    type Output = Vec<u8>;
    type Error = io::Error;
}

impl<F: AsFd + 'static> ReadToEnd<F> {
    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        // One byte more than `max` tells "too much" from "exactly max".
        let limit = self.max.saturating_add(1);
        loop {
            let have = self.have;
            let want = room(&mut self.buf, have, TO_END_FIRST.min(limit), limit)?;
            match self.io.read(ctl.ev(), &mut self.buf[have..have + want])? {
                Some(0) => {
                    let mut buf = std::mem::take(&mut self.buf);
                    buf.truncate(have);
                    return Ok(Progress::Done(buf));
                }
                Some(n) => {
                    self.have += n;
                    if self.have > self.max {
                        return Err(ReqError::User(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("more than max ({} bytes) before end of file", self.max),
                        )));
                    }
                    if n < want {
                        // Drained: wait for more rather than spend a call on
                        // `EAGAIN`.
                        return Ok(Progress::Pending);
                    }
                }
                None => return Ok(Progress::Pending),
            }
        }
    }
}

/// Reads from `fd` until end of file (the peer closed or shut down its
/// writing side, or a pipe's last writer went), keeping at most `max` bytes.
/// C tevent has no such request.
///
/// The buffer starts at 8 KiB (or `max + 1` bytes, if smaller) and doubles as
/// needed. Errors: [`InvalidData`](io::ErrorKind::InvalidData) ("more than
/// max") as soon as more than `max` bytes have arrived; as
/// [`read_some_send`] otherwise.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_to_end_recv, read_to_end_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req = read_to_end_send(&ev, &Rc::new(a), 1024);
/// b.write_all(b"all of it").unwrap();
/// drop(b); // end of file
/// req.poll(&ev)?;
/// assert_eq!(read_to_end_recv(req).unwrap(), b"all of it");
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn read_to_end_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    max: usize,
) -> Req<ReadToEnd<F>> {
    Req::start(
        ev,
        ReadToEnd {
            io: Io::new(fd),
            buf: Vec::new(),
            have: 0,
            max,
        },
        |st, ctl| {
            st.io.watch(ctl, FdFlags::READ, ReadToEnd::ready)?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`read_to_end_send`]: every byte until end of file.
/// Errors: as [`read_to_end_send`]; [`InvalidData`](io::ErrorKind::InvalidData)
/// once more than `max` bytes have arrived, end of file or not.
///
/// ```
/// use std::io::Write as _;
/// use std::rc::Rc;
/// use tevent::io::{read_to_end_recv, read_to_end_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// b.write_all(b"twelve bytes").unwrap(); // and the writer stays open
/// let req = read_to_end_send(&ev, &Rc::new(a), 8);
/// req.poll(&ev)?;
/// match read_to_end_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn read_to_end_recv<F: AsFd + 'static>(
    req: Req<ReadToEnd<F>>,
) -> Result<Vec<u8>, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// One write, from [`write_some_send`].
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{WriteSome, write_some_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<WriteSome<_>> = write_some_send(&ev, &Rc::new(a), b"hi".to_vec());
/// req.poll(&ev)?;
/// assert_eq!(req.recv().unwrap(), 2);
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct WriteSome<F: AsFd + 'static> {
    io: Io<F>,
    data: Vec<u8>,
}

impl<F: AsFd + 'static> Request for WriteSome<F> {
    /// The number of bytes written (at least 1 unless `data` was empty).
    type Output = usize;
    type Error = io::Error;
}

impl<F: AsFd + 'static> WriteSome<F> {
    fn attempt(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        if self.data.is_empty() {
            return Ok(Progress::Done(0));
        }
        match self.io.write(ctl.ev(), &self.data)? {
            Some(n) => Ok(Progress::Done(n)),
            None => {
                self.io.watch(ctl, FdFlags::WRITE, WriteSome::ready)?;
                Ok(Progress::Pending)
            }
        }
    }

    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        self.attempt(ctl)
    }
}

/// Writes `data` once (a short write is a success: the output says how many
/// bytes went; see [`write_all_send`] for all of them), at once, waiting for
/// the fd to become writable only if it is full: the building block of
/// tevent's echo example (an fd event whose handler calls `write()`).
///
/// Empty `data` finishes at once with 0, without a system call. Errors: the
/// `send()` / `write()` error (`EPIPE` or `ECONNRESET` once the peer is gone);
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a blocking non-socket fd.
///
/// ```
/// use std::io::Read as _;
/// use std::rc::Rc;
/// use tevent::io::{write_some_recv, write_some_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req = write_some_send(&ev, &Rc::new(a), b"abc".to_vec());
/// req.poll(&ev)?;
/// assert_eq!(write_some_recv(req).unwrap(), 3);
/// let mut got = [0; 3];
/// b.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"abc");
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn write_some_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    data: Vec<u8>,
) -> Req<WriteSome<F>> {
    Req::start(
        ev,
        WriteSome {
            io: Io::new(fd),
            data,
        },
        WriteSome::attempt,
    )
}

/// The result of [`write_some_send`]: how many bytes were written.
/// Errors: as [`write_some_send`]; once the peer is gone, a
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe) error (`EPIPE`), not a
/// `SIGPIPE`.
///
/// ```
/// use std::rc::Rc;
/// use tevent::io::{write_some_recv, write_some_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let a = Rc::new(a);
/// let req = write_some_send(&ev, &a, b"hi".to_vec());
/// req.poll(&ev)?;
/// assert_eq!(write_some_recv(req).unwrap(), 2);
/// drop(b);
/// let req = write_some_send(&ev, &a, b"anyone?".to_vec());
/// req.poll(&ev)?;
/// match write_some_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn write_some_recv<F: AsFd + 'static>(
    req: Req<WriteSome<F>>,
) -> Result<usize, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A write of a whole buffer, from [`write_all_send`]. `B` is the buffer's
/// type: `Vec<u8>` (the default), a [`PooledBuf`], or anything that is
/// `AsRef<[u8]>`.
///
/// ```
/// # use std::rc::Rc;
/// use tevent::io::{WriteAll, write_all_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<WriteAll<_>> = write_all_send(&ev, &Rc::new(a), b"hi".to_vec());
/// req.poll(&ev)?;
/// assert_eq!(req.recv().unwrap(), b"hi"); // the buffer comes back
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct WriteAll<F: AsFd + 'static, B: AsRef<[u8]> + 'static = Vec<u8>> {
    io: Io<F>,
    /// Taken out when the request finishes.
    data: Option<B>,
    done: usize,
}

impl<F: AsFd + 'static, B: AsRef<[u8]> + 'static> Request for WriteAll<F, B> {
    /// The buffer, handed back for reuse.
    type Output = B;
    type Error = io::Error;
}

impl<F: AsFd + 'static, B: AsRef<[u8]> + 'static> WriteAll<F, B> {
    fn attempt(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        let data = self.data.as_ref().expect("taken only when done").as_ref();
        while self.done < data.len() {
            match self.io.write(ctl.ev(), &data[self.done..])? {
                Some(n) => self.done += n,
                None => {
                    self.io.watch(ctl, FdFlags::WRITE, WriteAll::ready)?;
                    return Ok(Progress::Pending);
                }
            }
        }
        Ok(Progress::Done(self.data.take().expect("taken once")))
    }

    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        self.attempt(ctl)
    }
}

/// Writes all of `data`, over as many writes as it takes, and hands the
/// buffer back (Samba's `writev_send` with one buffer). The first write is
/// attempted at once; the request waits for writability only when the fd is
/// full.
///
/// `data` is any owned buffer of bytes (`Vec<u8>`, a [`PooledBuf`] from
/// [`read_pooled_send`], `Box<[u8]>`, `&'static [u8]`...); it comes back as
/// it went in, so an echo writes back what it read and drops the
/// [`PooledBuf`] afterwards, which returns it to its pool. Empty `data`
/// finishes at once, without a system call.
///
/// Errors: as [`write_some_send`]; bytes written before the error are gone
/// (the request does not say how many), and so is the buffer (dropped with
/// the request).
///
/// ```
/// use std::io::Read as _;
/// use std::rc::Rc;
/// use tevent::io::{write_all_recv, write_all_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req = write_all_send(&ev, &Rc::new(a), b"hello".to_vec());
/// req.poll(&ev)?;
/// let buf = write_all_recv(req).unwrap();
/// assert_eq!(buf, b"hello");
/// let mut got = [0; 5];
/// b.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"hello");
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn write_all_send<F: AsFd + 'static, B: AsRef<[u8]> + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    data: B,
) -> Req<WriteAll<F, B>> {
    Req::start(
        ev,
        WriteAll {
            io: Io::new(fd),
            data: Some(data),
            done: 0,
        },
        WriteAll::attempt,
    )
}

/// The result of [`write_all_send`]: the buffer, all of it written (Samba's
/// `writev_recv`). Errors: as [`write_all_send`].
///
/// A buffer larger than the socket's send buffer takes several writes: here
/// the loop runs while the peer drains the socket.
///
/// ```
/// use std::io::Read as _;
/// use std::rc::Rc;
/// use tevent::io::{write_all_recv, write_all_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// b.set_nonblocking(true).unwrap();
/// let req = write_all_send(&ev, &Rc::new(a), vec![7u8; 1 << 20]); // 1 MiB
/// let (mut got, mut chunk) = (0, vec![0; 65536]);
/// while req.is_in_progress() {
///     while let Ok(n) = b.read(&mut chunk) {
///         got += n; // make room, then let the loop write more
///     }
///     ev.loop_once()?;
/// }
/// let buf = write_all_recv(req).unwrap();
/// assert_eq!(buf.len(), 1 << 20); // the buffer comes back whole
/// while let Ok(n) = b.read(&mut chunk) {
///     got += n;
/// }
/// assert_eq!(got, 1 << 20);
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn write_all_recv<F: AsFd + 'static, B: AsRef<[u8]> + 'static>(
    req: Req<WriteAll<F, B>>,
) -> Result<B, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A listening socket that [`accept_send`] accepts on, and the type of the
/// connections it yields: a `TcpListener` gives `TcpStream`s, a
/// `UnixListener` gives `UnixStream`s, a raw `OwnedFd` gives `OwnedFd`s.
///
/// Implement it for another listener type whose accepted fds make a `Stream`
/// (a `SOCK_SEQPACKET` wrapper, say).
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::{UnixListener, UnixStream};
/// use tevent::io::Listener;
///
/// /// Compiles only if `L` yields `S`.
/// fn yields<L: Listener<Stream = S>, S>() {}
/// yields::<TcpListener, TcpStream>();
/// yields::<UnixListener, UnixStream>();
/// yields::<OwnedFd, OwnedFd>();
/// ```
pub trait Listener: AsFd + 'static {
    /// The accepted connection, made from the fd `accept()` returns
    /// (nonblocking and close-on-exec).
    type Stream: From<OwnedFd> + AsFd + 'static;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
}

impl Listener for UnixListener {
    type Stream = UnixStream;
}

impl Listener for OwnedFd {
    type Stream = OwnedFd;
}

/// An accept on a listening socket, from [`accept_send`].
///
/// ```
/// # use std::rc::Rc;
/// use std::net::TcpListener;
/// use tevent::io::{Accept, accept_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// listener.set_nonblocking(true).unwrap();
/// let req: Req<Accept<TcpListener>> = accept_send(&ev, &Rc::new(listener));
/// assert!(req.is_in_progress()); // no client yet
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Accept<L: Listener> {
    listener: Rc<L>,
    watch: Option<FdEvent<'static>>,
}

impl<L: Listener> Request for Accept<L> {
    /// The accepted connection, nonblocking and close-on-exec.
    type Output = L::Stream;
    type Error = io::Error;
}

impl<L: Listener> Accept<L> {
    fn ready(&mut self, ctl: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        if let Some(sim) = ctl.ev().sim()
            && (sim.inject(crate::sim::Fault::Interrupted)
                || sim.inject(crate::sim::Fault::WouldBlock))
        {
            // As `EINTR` / `EAGAIN` below: wait for the next readiness.
            return Ok(Progress::Pending);
        }
        match crate::sys::accept(self.listener.as_fd()) {
            Ok(fd) => Ok(Progress::Done(L::Stream::from(fd))),
            // ECONNABORTED: the peer gave up before we accepted; keep waiting.
            Err(e) if again(e) || e == Errno::CONNABORTED => Ok(Progress::Pending),
            Err(e) => Err(ReqError::User(e.into())),
        }
    }
}

/// Accepts one connection on a listening socket when one is pending (the
/// accept handler of tevent's echo server tutorial, as a request). The
/// connection comes out typed after the listener (see [`Listener`]),
/// nonblocking and close-on-exec.
///
/// The listener must be nonblocking (`accept()` has no `MSG_DONTWAIT`, and a
/// stale readiness would block the loop in it): a blocking one fails with
/// [`InvalidInput`](io::ErrorKind::InvalidInput) when the request starts
/// (checked once per fd registration, so an accept loop pays it once).
/// `ECONNABORTED` (the client gave up first) is not an error: the request
/// waits for the next client. Other errors are `accept()`'s (`EMFILE` when
/// out of fds...).
///
/// ```
/// use std::net::TcpListener;
/// use std::rc::Rc;
/// use tevent::io::{accept_recv, accept_send, connect_recv, connect_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// listener.set_nonblocking(true).unwrap();
/// let addr = listener.local_addr().unwrap();
/// let acc = accept_send(&ev, &Rc::new(listener));
/// let con = connect_send(&ev, addr);
/// acc.poll(&ev)?;
/// con.poll(&ev)?;
/// let server: std::net::TcpStream = accept_recv(acc).unwrap();
/// let client = connect_recv(con).unwrap();
/// assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn accept_send<L: Listener>(ev: &Context, listener: &Rc<L>) -> Req<Accept<L>> {
    Req::start(
        ev,
        Accept {
            listener: listener.clone(),
            watch: None,
        },
        |st, ctl| {
            watch(
                ctl,
                &mut st.watch,
                &st.listener,
                FdFlags::READ,
                Accept::ready,
                Require::Nonblocking,
            )?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`accept_send`]: the accepted connection, nonblocking.
/// Errors: as [`accept_send`]; [`InvalidInput`](io::ErrorKind::InvalidInput)
/// for a listener left blocking.
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::rc::Rc;
/// use tevent::io::{accept_recv, accept_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// listener.set_nonblocking(true).unwrap();
/// let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let req = accept_send(&ev, &Rc::new(listener));
/// req.poll(&ev)?;
/// let server: TcpStream = accept_recv(req).unwrap();
/// assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
///
/// let blocking = TcpListener::bind("127.0.0.1:0").unwrap(); // no set_nonblocking
/// let req = accept_send(&ev, &Rc::new(blocking));
/// req.poll(&ev)?;
/// match accept_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn accept_recv<L: Listener>(req: Req<Accept<L>>) -> Result<L::Stream, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A TCP connect, from [`connect_send`].
///
/// ```
/// use tevent::io::{Connect, connect_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let req: Req<Connect> = connect_send(&ev, listener.local_addr().unwrap());
/// req.poll(&ev)?;
/// assert!(req.recv().is_ok());
/// # Ok::<(), tevent::Error>(())
/// ```
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

/// Connects a new nonblocking, close-on-exec TCP socket to `addr` (IPv4 or
/// IPv6), waiting for writability while the connection is in progress
/// (Samba's `async_connect_send`, which takes a socket of yours instead).
///
/// Errors: `socket()`'s, and the connection's (`ECONNREFUSED`,
/// `ETIMEDOUT`, `ENETUNREACH`...). Set an end time on the request to give up
/// sooner than the kernel does.
///
/// ```
/// use std::net::TcpListener;
/// use tevent::io::{connect_recv, connect_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// // A port nothing listens on: bind, note it, close.
/// let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
/// let req = connect_send(&ev, addr);
/// req.poll(&ev)?;
/// match connect_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn connect_send(ev: &Context, addr: SocketAddr) -> Req<Connect> {
    Req::start(
        ev,
        Connect {
            sock: None,
            watch: None,
        },
        move |st, ctl| {
            use rustix::net::AddressFamily;
            let family = if addr.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let sock = crate::sys::stream_socket(family).map_err(ReqError::User)?;
            match rustix::net::connect(&sock, &addr) {
                Ok(()) => return Ok(Progress::Done(TcpStream::from(sock))),
                Err(e) if e == Errno::INPROGRESS || again(e) => {}
                Err(e) => return Err(ReqError::User(e.into())),
            }
            let sock = Rc::new(sock);
            st.sock = Some(sock.clone());
            watch(
                ctl,
                &mut st.watch,
                &sock,
                FdFlags::WRITE,
                Connect::ready,
                Require::NonblockingOrSocket,
            )?;
            Ok(Progress::Pending)
        },
    )
}

/// The result of [`connect_send`]: the connected stream, nonblocking
/// (Samba's `async_connect_recv`). Errors: as [`connect_send`]
/// (`ECONNREFUSED`...).
///
/// ```
/// use std::io::Read as _;
/// use std::net::TcpListener;
/// use tevent::io::{connect_recv, connect_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let req = connect_send(&ev, listener.local_addr().unwrap());
/// req.poll(&ev)?;
/// let mut client = connect_recv(req).unwrap();
/// let (_server, peer) = listener.accept().unwrap();
/// assert_eq!(peer, client.local_addr().unwrap());
/// let err = client.read(&mut [0; 8]).unwrap_err(); // nonblocking: no wait
/// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn connect_recv(req: Req<Connect>) -> Result<TcpStream, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A Unix-domain stream connect, from [`connect_unix_send`].
///
/// ```
/// use tevent::io::{ConnectUnix, connect_unix_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let req: Req<ConnectUnix> = connect_unix_send(&ev, "/nonexistent/socket");
/// req.poll(&ev)?;
/// assert!(req.recv().is_err()); // nothing listens there
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ConnectUnix {
    path: PathBuf,
}

impl Request for ConnectUnix {
    /// The connected stream, nonblocking.
    type Output = UnixStream;
    type Error = io::Error;
}

/// Connects a new nonblocking, close-on-exec Unix-domain stream socket to the
/// listener at `path` (Samba's `async_connect_send` on an `AF_UNIX`
/// address).
///
/// A Unix-domain connect never is "in progress": the kernel either queues
/// the connection at once or refuses it, so the request finishes in its
/// first step (and its caller hears of it from the loop, like for any
/// request). A listener whose backlog is full fails it with
/// [`WouldBlock`](io::ErrorKind::WouldBlock) (`EAGAIN`), as a nonblocking C
/// `connect()` does: retry later. Other errors: `ENOENT` (no such socket
/// file), `ECONNREFUSED` (nothing listens on it), `socket()`'s.
///
/// ```
/// use std::os::unix::net::UnixListener;
/// use tevent::io::{connect_unix_recv, connect_unix_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let dir = std::env::temp_dir().join(format!("tevent-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("connect_unix.sock");
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let req = connect_unix_send(&ev, &path);
/// req.poll(&ev)?;
/// let client = connect_unix_recv(req).unwrap();
/// let (server, _) = listener.accept().unwrap();
/// drop((client, server));
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn connect_unix_send(ev: &Context, path: impl AsRef<Path>) -> Req<ConnectUnix> {
    Req::start(
        ev,
        ConnectUnix {
            path: path.as_ref().to_path_buf(),
        },
        |st, _| {
            use rustix::net::{AddressFamily, SocketAddrUnix};
            let addr = SocketAddrUnix::new(st.path.as_path()).map_err(io::Error::from)?;
            let sock = crate::sys::stream_socket(AddressFamily::UNIX)?;
            match rustix::net::connect(&sock, &addr) {
                Ok(()) => Ok(Progress::Done(UnixStream::from(sock))),
                Err(e) if e == Errno::AGAIN => Err(ReqError::User(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "connect to {}: the listener's backlog is full (EAGAIN); retry later",
                        st.path.display()
                    ),
                ))),
                Err(e) => Err(ReqError::User(e.into())),
            }
        },
    )
}

/// The result of [`connect_unix_send`]: the connected stream, nonblocking
/// (Samba's `async_connect_recv`). Errors: as [`connect_unix_send`]
/// ([`NotFound`](io::ErrorKind::NotFound) for a missing socket file...).
///
/// ```
/// use tevent::io::{connect_unix_recv, connect_unix_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let req = connect_unix_send(&ev, "/nonexistent/tevent.sock");
/// req.poll(&ev)?;
/// match connect_unix_recv(req) {
///     Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound), // ENOENT
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn connect_unix_recv(req: Req<ConnectUnix>) -> Result<UnixStream, ReqError<io::Error>> {
    req.recv()
}

// ---------------------------------------------------------------------------

/// A socket shutdown, from [`shutdown_send`].
///
/// ```
/// # use std::rc::Rc;
/// use std::net::Shutdown;
/// use tevent::io::{ShutdownSocket, shutdown_send};
/// use tevent::{Context, Req};
///
/// let ev = Context::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req: Req<ShutdownSocket> = shutdown_send(&ev, &Rc::new(a), Shutdown::Both);
/// req.poll(&ev)?;
/// assert!(req.recv().is_ok());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ShutdownSocket {
    how: Shutdown,
}

impl Request for ShutdownSocket {
    /// Nothing: the socket is shut down.
    type Output = ();
    type Error = io::Error;
}

/// Shuts down the reading side, the writing side, or both of a connected
/// socket (`shutdown(2)`; Samba's `tstream_disconnect_send`). `how` is
/// `std::net::Shutdown`:
///
/// - `Write` sends end of file to the peer once the data already queued is
///   sent (the peer's reads then give end of file), while this side can still
///   read the peer's answer: the usual "I am done talking" of a protocol;
/// - `Read` makes this side's reads give end of file;
/// - `Both` does both.
///
/// The fd stays open (drop the last `Rc` to close it). Finish every write
/// request first: a `shutdown(Write)` while a [`WriteAll`] still waits makes
/// that write fail with `EPIPE`.
///
/// `shutdown()` itself never blocks; it is a request so that it composes like
/// the others (a step writes the last answer, then waits for the shutdown,
/// then for the peer's end of file), and its outcome reaches the caller from
/// the loop like any request's. It runs when the request starts and the
/// request finishes in that first step. Errors: `ENOTCONN` (not connected),
/// `ENOTSOCK` (a pipe: drop its writing end instead).
///
/// ```
/// use std::io::Read as _;
/// use std::net::Shutdown;
/// use std::rc::Rc;
/// use tevent::io::{shutdown_recv, shutdown_send};
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let req = shutdown_send(&ev, &Rc::new(a), Shutdown::Write);
/// req.poll(&ev)?;
/// shutdown_recv(req).unwrap();
/// let mut rest = Vec::new();
/// b.read_to_end(&mut rest).unwrap(); // end of file at once
/// assert!(rest.is_empty());
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn shutdown_send<F: AsFd + 'static>(
    ev: &Context,
    fd: &Rc<F>,
    how: Shutdown,
) -> Req<ShutdownSocket> {
    let fd = fd.clone();
    Req::start(ev, ShutdownSocket { how }, move |st, _| {
        let how = match st.how {
            Shutdown::Read => rustix::net::Shutdown::Read,
            Shutdown::Write => rustix::net::Shutdown::Write,
            Shutdown::Both => rustix::net::Shutdown::Both,
        };
        rustix::net::shutdown(fd.as_fd(), how).map_err(io::Error::from)?;
        Ok(Progress::Done(()))
    })
}

/// The result of [`shutdown_send`]: `()` once the socket is shut down
/// (Samba's `tstream_disconnect_recv`). Errors: as [`shutdown_send`]
/// (`ENOTSOCK` for a pipe...).
///
/// ```
/// use std::net::Shutdown;
/// use std::os::fd::OwnedFd;
/// use std::rc::Rc;
/// use tevent::io::{shutdown_recv, shutdown_send};
/// use tevent::{Context, ReqError};
///
/// let ev = Context::new()?;
/// let (_r, w) = rustix::pipe::pipe().unwrap(); // a pipe is no socket
/// let req = shutdown_send(&ev, &Rc::new(OwnedFd::from(w)), Shutdown::Write);
/// req.poll(&ev)?;
/// match shutdown_recv(req) {
///     Err(ReqError::User(e)) => {
///         assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::NOTSOCK.raw_os_error()))
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn shutdown_recv(req: Req<ShutdownSocket>) -> Result<(), ReqError<io::Error>> {
    req.recv()
}
