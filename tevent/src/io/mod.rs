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

#[cfg(doc)]
use std::io;

#[cfg(doc)]
use crate::req::ReqError;

mod accept;
mod connect;
mod pool;
mod read;
mod shared;
mod write;

pub use accept::{Accept, Listener, accept_recv, accept_send};
pub use connect::{
    Connect, ConnectUnix, ShutdownSocket, connect_recv, connect_send, connect_unix_recv,
    connect_unix_send, shutdown_recv, shutdown_send,
};
pub use pool::{BufPool, PooledBuf};
pub use read::{
    ReadExact, ReadPooled, ReadSome, ReadToEnd, ReadUntil, read_exact_recv, read_exact_send,
    read_pooled_recv, read_pooled_send, read_some_recv, read_some_send, read_to_end_recv,
    read_to_end_send, read_until_recv, read_until_send,
};
pub use write::{
    WriteAll, WriteSome, write_all_recv, write_all_send, write_some_recv, write_some_send,
};
