//! The write requests: [`WriteSome`] and [`WriteAll`].

use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;

use crate::context::Context;
use crate::fd::FdFlags;
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

#[cfg(doc)]
use super::pool::PooledBuf;
#[cfg(doc)]
use super::read::read_pooled_send;
use super::shared::Io;

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
