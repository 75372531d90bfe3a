//! The echo server of the tevent tutorial, as requests written with
//! `#[tevent_request]`.
//!
//! Shared by the `echo_server` example and the tests. The structure is the
//! tutorial's nested-request example:
//!
//! ```text
//! EchoServer ─┬─ Accept                      (the accept loop)
//!             ├─ Echo (client 1) ── ReadSome  (read up to bufsize bytes ...)
//!             └─ Echo (client 2) ── WriteAll  (... write them all back, repeat)
//! ```
//!
//! Output lines and their order are tevent's: `new client fd N` after each
//! accept; `Closing client fd N` when a client's echo state goes (its socket
//! is released there); then `Client done` (end of file, or `EPIPE` on write) or
//! `Client failed: <strerror>`. Deliberate differences, documented in
//! `docs/echo-server.md`: a client that resets while the server waits to write
//! is reported and closed (C tevent hangs on it and leaks the fd), and a
//! transient `accept()` failure (out of fds or buffers) is retried after
//! 100 ms instead of ending the server.

use std::cell::RefCell;
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use tevent::io::{accept_send, read_some_send, write_all_send};
use tevent::{Next, Req, ReqError, ReqState, Wakeup, tevent_request, wakeup_send};

/// Where the server's lines go (stdout in the example, a buffer in tests).
pub type Out = Rc<RefCell<dyn Write>>;

/// Writes one line and flushes it (a line is never held back in a buffer).
fn say(out: &Out, line: std::fmt::Arguments<'_>) {
    let mut o = out.borrow_mut();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
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

/// The port as C's `atoi` reads it: leading blanks, an optional sign, digits;
/// anything else gives 0 (so `abc` is port 0, an ephemeral port).
pub fn atoi(s: &str) -> i32 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(i64::from(i32::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The listen backlog of `echo_server.c`.
pub const TUTORIAL_BACKLOG: i32 = 5;
/// The listen backlog of the benchmark harness's peer servers (C tevent's
/// and tokio's): a burst of clients connecting at once must not overflow
/// the accept queue (a connection dropped there hangs its client).
pub const HARNESS_BACKLOG: i32 = 1024;

/// Creates the listening socket as `echo_server.c` does: IPv4 TCP, bound to
/// `ip:port`, with the given backlog. Errors carry the name of the failed
/// call (`socket()`, `bind()`, `listen()`), for the `perror`-style message.
pub fn listen_on(
    ip: Ipv4Addr,
    port: u16,
    backlog: i32,
) -> Result<TcpListener, (&'static str, io::Error)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| ("socket()", e.into()))?;
    rustix::net::bind(&sock, &SocketAddrV4::new(ip, port)).map_err(|e| ("bind()", e.into()))?;
    rustix::net::listen(&sock, backlog).map_err(|e| ("listen()", e.into()))?;
    let listener = TcpListener::from(sock);
    listener.set_nonblocking(true).map_err(|e| ("fcntl()", e))?;
    Ok(listener)
}

// ---------------------------------------------------------------------------

/// One client: read up to `bufsize` bytes, write them all back, until end of
/// file.
pub struct Echo {
    sock: Rc<TcpStream>,
    fd: RawFd,
    bufsize: usize,
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

    /// Echoes on `sock` (nonblocking) with a `bufsize`-byte buffer.
    pub fn start(to: EchoStartStep<'_>, sock: TcpStream, bufsize: usize, out: &Out) -> Next<Self> {
        let fd = sock.as_raw_fd();
        let sock = Rc::new(sock);
        let mut to = to.create(Echo {
            sock: sock.clone(),
            fd,
            bufsize,
            out: out.clone(),
        });
        to.set_cleanup(echo_cleanup);
        let buf = tevent::alloc::try_vec_filled(bufsize, 0)?;
        to.read(read_some_send(to.ev(), &sock, buf))
    }

    /// What a read brought: nothing at end of file, else bytes to echo.
    fn read(&mut self, to: EchoReadStep<'_>, data: Vec<u8>) -> Next<Self> {
        if data.is_empty() {
            return to.done(()); // end of file
        }
        to.write(write_all_send(to.ev(), &self.sock, data))
    }

    /// The echo went out (the buffer comes back for the next read), or the
    /// write failed.
    fn write(
        &mut self,
        to: EchoWriteStep<'_>,
        written: Result<Vec<u8>, ReqError<io::Error>>,
    ) -> Next<Self> {
        let mut buf = match written {
            Ok(buf) => buf,
            // The client went away while we wrote: that is how it says goodbye.
            Err(ReqError::User(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                return to.done(());
            }
            Err(e) => return Err(e),
        };
        buf.resize(self.bufsize, 0);
        to.read(read_some_send(to.ev(), &self.sock, buf))
    }
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
    /// Read size per client (tevent's example uses 100 bytes).
    pub bufsize: usize,
    /// Set `TCP_NODELAY` on accepted sockets (the benchmark harness does).
    pub nodelay: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bufsize: 100,
            nodelay: false,
        }
    }
}

/// The server: accepts clients and runs an [`Echo`] for each. It never
/// finishes by itself; it fails if `accept()` fails for good.
pub struct EchoServer {
    listener: Rc<TcpListener>,
    opts: Options,
    out: Out,
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

    /// Starts the server on a listening, nonblocking socket.
    pub fn start(
        to: EchoServerStartStep<'_>,
        listener: TcpListener,
        opts: Options,
        out: &Out,
    ) -> Next<Self> {
        let listener = Rc::new(listener);
        let accept = accept_send(to.ev(), &listener);
        let state = EchoServer {
            listener,
            opts,
            out: out.clone(),
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
                eprintln!("accept() failed: {}; retrying in 100 ms", strerror(&e));
                let at = to.ev().now() + Duration::from_millis(100);
                return to.retry(wakeup_send(to.ev(), at));
            }
            Err(e) => return Err(e),
        };
        if self.opts.nodelay {
            let _ = sock.set_nodelay(true);
        }
        say(
            &self.out,
            format_args!("new client fd {}", sock.as_raw_fd()),
        );
        to.client_done(echo_send(to.ev(), sock, self.opts.bufsize, &self.out))?;
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
            Err(e) => say(
                &self.out,
                format_args!("Client failed: {}", strerror(&e.into_io())),
            ),
        }
        to.pending()
    }
}
