//! The accept request, [`Accept`], and the [`Listener`]s it accepts on.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;

use rustix::io::Errno;

use crate::context::Context;
use crate::fd::{FdEvent, FdFlags, Require};
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

use super::shared::{again, watch};

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
