//! The connect and shutdown requests: [`Connect`], [`ConnectUnix`] and
//! [`ShutdownSocket`].

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::io::Errno;

use crate::context::Context;
use crate::fd::{FdEvent, FdFlags, Require};
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

use super::shared::{again, watch};
#[cfg(doc)]
use super::write::WriteAll;

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
