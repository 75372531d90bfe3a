//! The read requests: [`ReadSome`], [`ReadPooled`], [`ReadExact`],
//! [`ReadUntil`] and [`ReadToEnd`].

use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;

use rustix::net::RecvFlags;

use crate::context::Context;
use crate::fd::FdFlags;
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

use super::pool::{BufPool, PooledBuf};
use super::shared::{Io, Kind, Outcome, room};
#[cfg(doc)]
use super::write::write_all_send;

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
/// neither a socket nor nonblocking (see the [module](super) docs).
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
