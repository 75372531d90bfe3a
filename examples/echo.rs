//! The echo server of the tevent tutorial, as requests written with
//! `#[tevent_request]`.
//!
//! Shared by the `echo_server` example and the tests. The structure is the
//! tutorial's nested-request example:
//!
//! ```text
//! EchoServer ─┬─ Accept                        (the accept loop)
//!             ├─ Echo (client 1) ── ReadPooled  (wait for data, read up to bufsize bytes ...)
//!             └─ Echo (client 2) ── WriteAll    (... write them all back, repeat)
//! ```
//!
//! Output lines and their order are tevent's: `new client fd N` after each
//! accept; `Closing client fd N` when a client's echo state goes (its socket
//! is released there); then `Client done` (end of file, or `EPIPE` on write) or
//! `Client failed: <strerror>`. Deliberate differences, documented in
//! `docs/echo-server.md`: a client that resets while the server waits to write
//! is reported and closed (C tevent hangs on it and leaks the fd), a
//! transient `accept()` failure (out of fds or buffers) is retried after
//! 100 ms instead of ending the server, and an idle client holds no read
//! buffer (reads take one from the server's [`BufPool`] only once data is
//! there). With an idle timeout, a client that sends nothing for that long
//! ends with `Client failed: timed out`.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use tevent::io::{BufPool, PooledBuf, ReadPooled, accept_send, read_pooled_send, write_all_send};
use tevent::{Context, Next, Req, ReqError, ReqState, Wakeup, tevent_request, wakeup_send};

/// Where the server's lines go (stdout in the example, a buffer in tests).
pub type Out = Rc<RefCell<dyn Write>>;

/// Writes one line, whole: the text and its newline go out in one `write`
/// call and are flushed at once (a line is never held back in a buffer, and
/// the lines of several loops on one stdout never mix).
fn say(out: &Out, line: std::fmt::Arguments<'_>) {
    write_line(&mut *out.borrow_mut(), line);
}

/// Writes one line to `w`, whole (one `write_all` of the text and its
/// newline, then a flush), and ignores a failure: the server's output is
/// its report, and a report that cannot be written (stdout or stderr
/// closed, or a pipe whose reader has gone) must never end the server.
/// (`println!` and `eprintln!` panic then; a peer that used up the fds
/// killed the server through the `EMFILE` report on a broken stderr.)
pub fn write_line(w: &mut dyn Write, line: std::fmt::Arguments<'_>) {
    let mut text = line.to_string();
    text.push('\n');
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}

/// A diagnostic line on stderr, written as [`write_line`] writes: whole,
/// and never a reason for the server to end.
pub fn warn(line: std::fmt::Arguments<'_>) {
    write_line(&mut io::stderr(), line);
}

/// The text `strerror(3)` gives for an error: `io::Error`'s message without
/// its ` (os error N)` suffix.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if e.raw_os_error().is_some() => s[..i].to_string(),
        _ => s,
    }
}

/// The listen backlog of `echo_server.c`.
pub const TUTORIAL_BACKLOG: i32 = 5;
/// The listen backlog of the benchmark harness's peer servers (C tevent's
/// and tokio's): a burst of clients connecting at once must not overflow
/// the accept queue (a connection dropped there hangs its client).
pub const HARNESS_BACKLOG: i32 = 1024;

/// Creates the listening socket as `echo_server.c` does: a TCP socket of
/// `addr`'s family (IPv4 or IPv6), bound to `addr`, with the given backlog,
/// nonblocking and close-on-exec. With `reuse_port`, the port is shared
/// first, so that several sockets (one per loop of `--threads`) can listen
/// on it: `SO_REUSEPORT` on Linux, where the kernel spreads connections
/// among them; `SO_REUSEPORT_LB` on FreeBSD, which does the same;
/// `SO_REUSEPORT` on macOS, which shares the port but does not spread
/// connections (the kernel gives them to one of the sockets), so there
/// `--threads` adds nothing. Errors carry the name of the failed call
/// (`socket()`, `setsockopt()`, `bind()`, `listen()`), for the
/// `perror`-style message.
pub fn listen_on(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> Result<TcpListener, (&'static str, io::Error)> {
    use rustix::net::AddressFamily;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let sock = stream_socket(family).map_err(|e| ("socket()", e))?;
    // As std's `TcpListener::bind` does: a restart right after a stop that
    // closed clients (their connections wait in TIME_WAIT on this port) can
    // bind again. A port with a live listener is still refused.
    rustix::net::sockopt::set_socket_reuseaddr(&sock, true)
        .map_err(|e| ("setsockopt()", e.into()))?;
    if reuse_port {
        share_port(&sock).map_err(|e| ("setsockopt()", e))?;
    }
    rustix::net::bind(&sock, &addr).map_err(|e| ("bind()", e.into()))?;
    rustix::net::listen(&sock, backlog).map_err(|e| ("listen()", e.into()))?;
    Ok(TcpListener::from(sock))
}

/// A nonblocking, close-on-exec stream socket (macOS has no flags argument
/// for that: they are set right after).
fn stream_socket(family: rustix::net::AddressFamily) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::SocketType;
    #[cfg(not(target_vendor = "apple"))]
    {
        use rustix::net::SocketFlags;
        let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
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
        rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&sock, true)?;
        Ok(sock)
    }
}

/// Accepts a connection on `listener`, nonblocking and close-on-exec
/// (`accept4`; macOS has none, so there the flags are set right after).
pub fn accept_nonblocking(listener: &TcpListener) -> rustix::io::Result<std::os::fd::OwnedFd> {
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
        Ok(sock)
    }
}

/// Lets several listening sockets share a port, spreading connections
/// among them where the platform can (see [`listen_on`]).
fn share_port(sock: &std::os::fd::OwnedFd) -> io::Result<()> {
    #[cfg(not(target_os = "freebsd"))]
    {
        rustix::net::sockopt::set_socket_reuseport(sock, true)?;
    }
    #[cfg(target_os = "freebsd")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: `sock` is an open socket, and the option value is a
        // c_int that lives across the call, with its size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT_LB,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------

/// One client: wait until it sends something, read up to `bufsize` bytes
/// (into a buffer of the server's pool, taken only then), write them all
/// back, until end of file. An idle client holds no buffer.
pub struct Echo {
    sock: Rc<TcpStream>,
    fd: RawFd,
    pool: BufPool,
    idle_timeout: Option<Duration>,
    out: Out,
}

#[tevent_request(steps(
    start => [read],
    read => [write, done],
    write => [read, done],
))]
impl Echo {
    type Output = ();
    type Error = io::Error;

    /// Echoes on `sock` (nonblocking), reading into buffers of `pool`. With
    /// an `idle_timeout`, each read must bring something within that time,
    /// or the request ends [`ReqError::TimedOut`].
    pub fn start(
        to: EchoStartStep<'_>,
        sock: TcpStream,
        pool: &BufPool,
        idle_timeout: Option<Duration>,
        out: &Out,
    ) -> Next<Self> {
        let fd = sock.as_raw_fd();
        let sock = Rc::new(sock);
        let mut to = to.create(Echo {
            sock: sock.clone(),
            fd,
            pool: pool.clone(),
            idle_timeout,
            out: out.clone(),
        });
        to.set_cleanup(echo_cleanup);
        to.read(read_send(to.ev(), &sock, pool, idle_timeout)?)
    }

    /// What a read brought: nothing at end of file, else bytes to echo.
    fn read(&mut self, to: EchoReadStep<'_>, data: PooledBuf) -> Next<Self> {
        if data.is_empty() {
            return to.done(()); // end of file
        }
        to.write(write_all_send(to.ev(), &self.sock, data))
    }

    /// The echo went out (its buffer goes back to the pool here), or the
    /// write failed.
    fn write(
        &mut self,
        to: EchoWriteStep<'_>,
        written: Result<PooledBuf, ReqError<io::Error>>,
    ) -> Next<Self> {
        match written {
            Ok(buf) => drop(buf),
            // The client went away while we wrote: that is how it says goodbye.
            Err(ReqError::User(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                return to.done(());
            }
            Err(e) => return Err(e),
        }
        to.read(read_send(
            to.ev(),
            &self.sock,
            &self.pool,
            self.idle_timeout,
        )?)
    }
}

/// The next read of a client, with its end time if the server has an idle
/// timeout (the time is measured from the start of the wait).
fn read_send(
    ev: &Context,
    sock: &Rc<TcpStream>,
    pool: &BufPool,
    idle_timeout: Option<Duration>,
) -> Result<Req<ReadPooled<TcpStream>>, ReqError<io::Error>> {
    let read = read_pooled_send(ev, sock, pool);
    if let Some(t) = idle_timeout {
        read.set_endtime(ev.deadline_after(t))?;
    }
    Ok(read)
}

/// Announces the end of a client and releases its socket (tevent's state
/// destructor, which prints before the server reports the outcome).
fn echo_cleanup(st: &mut Echo, _: ReqState) {
    say(&st.out, format_args!("Closing client fd {}", st.fd));
}

// ---------------------------------------------------------------------------

/// Options of the server.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Read size per client, in bytes (tevent's example uses 100).
    pub bufsize: usize,
    /// Set `TCP_NODELAY` on accepted sockets (the default, and what the
    /// benchmark harness's peers do): each echo goes out at once, instead of
    /// waiting, under Nagle's algorithm, for the client to acknowledge the
    /// previous one (up to its delayed-ACK time, 40 ms on Linux, per read of
    /// a long message).
    pub nodelay: bool,
    /// End a client that sends nothing for this long (`None`: never). It is
    /// reported as `Client failed: timed out`.
    pub idle_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bufsize: 100,
            nodelay: true,
            idle_timeout: None,
        }
    }
}

/// The server: accepts clients and runs an [`Echo`] for each. It never
/// finishes by itself; it fails if `accept()` fails for good. Dropping it
/// stops accepting and ends every client (each prints its `Closing client
/// fd N` line): that is how the program shuts down on `SIGINT` / `SIGTERM`.
pub struct EchoServer {
    listener: Rc<TcpListener>,
    opts: Options,
    /// The clients' read buffers, lent only while a read has data.
    pool: BufPool,
    out: Out,
    /// Clients accepted so far (shared with the caller).
    accepted: Rc<Cell<u64>>,
}

/// `accept()` errors that say "not now" rather than "never".
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO | libc::EPERM
        )
    )
}

#[tevent_request(
    steps(
        start => [accepted],
        accepted => [accepted, client_done, retry],
        retry => [accepted],
        client_done => [],
    ),
    forever
)]
impl EchoServer {
    type Output = Infallible;
    type Error = io::Error;

    /// Starts the server on a listening, nonblocking socket; `accepted`
    /// counts the clients it accepts.
    pub fn start(
        to: EchoServerStartStep<'_>,
        listener: TcpListener,
        opts: Options,
        out: &Out,
        accepted: &Rc<Cell<u64>>,
    ) -> Next<Self> {
        let listener = Rc::new(listener);
        let accept = accept_send(to.ev(), &listener);
        let state = EchoServer {
            listener,
            opts,
            pool: BufPool::new(opts.bufsize),
            out: out.clone(),
            accepted: accepted.clone(),
        };
        to.create(state).accepted(accept)
    }

    /// A client connected (then it gets an [`Echo`] and the accept loop goes
    /// on), or `accept()` failed: after a transient failure the loop goes on
    /// 100 ms later, any other failure ends the server.
    fn accepted(
        &mut self,
        to: EchoServerAcceptedStep<'_>,
        accepted: Result<TcpStream, ReqError<io::Error>>,
    ) -> Next<Self> {
        let sock = match accepted {
            Ok(sock) => sock,
            Err(ReqError::User(e)) if transient(&e) => {
                warn(format_args!(
                    "accept() failed: {}; retrying in 100 ms",
                    strerror(&e)
                ));
                let at = to.ev().now() + Duration::from_millis(100);
                return to.retry(wakeup_send(to.ev(), at));
            }
            Err(e) => return Err(e),
        };
        self.accepted.set(self.accepted.get() + 1);
        if self.opts.nodelay {
            let _ = sock.set_nodelay(true);
        }
        say(
            &self.out,
            format_args!("new client fd {}", sock.as_raw_fd()),
        );
        let echo = echo_send(to.ev(), sock, &self.pool, self.opts.idle_timeout, &self.out);
        to.client_done(echo)?;
        to.accepted(accept_send(to.ev(), &self.listener))
    }

    /// The pause after a transient `accept()` failure is over.
    fn retry(&mut self, to: EchoServerRetryStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.accepted(accept_send(to.ev(), &self.listener))
    }

    /// A client finished: its outcome line (its `Closing` line came first,
    /// from its cleanup hook).
    fn client_done(
        &mut self,
        to: EchoServerClientDoneStep<'_>,
        outcome: Result<(), ReqError<io::Error>>,
    ) -> Next<Self> {
        match outcome {
            Ok(()) => say(&self.out, format_args!("Client done")),
            // The idle timeout (an end time on the client's read).
            Err(ReqError::TimedOut) => say(&self.out, format_args!("Client failed: timed out")),
            Err(e) => say(
                &self.out,
                format_args!("Client failed: {}", strerror(&e.into_io())),
            ),
        }
        to.pending()
    }
}
