//! A line-based server, as requests on `tevent::io`: each line a client sends
//! comes back upper-cased; `QUIT` ends the connection.
//!
//! Shared by the `line_server` example and its test. A `Session` is written
//! with `#[tevent_request]`, the `LineServer` by hand (chapter 3's API): the
//! two kinds nest freely. The request tree:
//!
//! ```text
//! LineServer ─┬─ Accept<TcpListener>             (the accept loop)
//!             ├─ Session (client 1) ── ReadUntil  (the next line ...)
//!             └─ Session (client 2) ── WriteAll   (... its answer)
//! ```
//!
//! The protocol, per connection:
//!
//! - a line is up to [`MAX_LINE`] bytes ending in `\n` (a `\r` before it is
//!   allowed and kept); the answer is the line in ASCII upper case, with the
//!   same ending;
//! - `QUIT` (any case, with or without `\r`) is answered `BYE` and ends the
//!   connection: the server shuts its writing side down (the client reads end
//!   of file), reads what the client still sends until its end of file (at
//!   most [`LINGER`], so closing does not reset the connection), and closes;
//! - a line longer than `MAX_LINE` is answered `ERROR line too long` and ends
//!   the connection the same way;
//! - at end of file, a last line without `\n` is answered (upper-cased, with
//!   `\n` added), then the connection is closed.

use std::convert::Infallible;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use tevent::io::{
    Accept, accept_send, read_to_end_send, read_until_send, shutdown_send, write_all_send,
};
use tevent::{Context, Ctl, Next, Progress, Req, ReqError, Request, StepResult, tevent_request};

/// The longest line accepted, in bytes, `\n` included.
pub const MAX_LINE: usize = 1024;

/// How long a closing connection waits for the client's end of file.
pub const LINGER: Duration = Duration::from_secs(10);

/// What the command line asks for: the address to listen on.
///
/// `line_server <port>` listens on 127.0.0.1; `line_server <ip>:<port>` on
/// that address. Port 0 picks a free port. Anything else is `Err(usage)`.
pub fn parse_args(args: &[String]) -> Result<SocketAddr, String> {
    let usage = "usage: line_server <port> | line_server <ip>:<port>".to_string();
    match args {
        [arg] => {
            if let Ok(port) = arg.parse::<u16>() {
                return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
            }
            arg.parse::<SocketAddr>().map_err(|_| usage)
        }
        _ => Err(usage),
    }
}

/// Binds a nonblocking listening socket on `addr`.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

// ---------------------------------------------------------------------------

/// What a session does once its answer is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum After {
    /// Read the next line.
    Next,
    /// Shut down, drain the client, close.
    Close,
    /// Close at once (the client already sent end of file).
    Done,
}

/// One client: read a line, answer it, repeat. The state is the socket;
/// what to do once an answer is written travels with its write, to
/// `written` (a value carried by the transition, not a field).
pub struct Session {
    sock: Rc<TcpStream>,
}

/// Whether `line` (without its ending) is the `QUIT` command.
fn is_quit(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.eq_ignore_ascii_case(b"QUIT")
}

#[tevent_request(steps(
    start => line_read,
    line_read => [written, done],
    written => [line_read, shut, done],
    shut => drained => done,
))]
impl Session {
    /// The session ended normally (client's end of file, `QUIT`, a line too
    /// long).
    type Output = ();
    type Error = io::Error;

    /// Serves one client on `sock` (nonblocking or not: `tevent::io` never
    /// blocks on a socket).
    pub fn start(to: _, sock: TcpStream) -> Next<Self> {
        let sock = Rc::new(sock);
        let line = read_until_send(to.ev(), &sock, b'\n', MAX_LINE);
        to.create(Session { sock }).line_read(line)
    }

    fn line_read(&mut self, to: _, got: Result<Vec<u8>, ReqError<io::Error>>) -> Next<Self> {
        let (answer, after) = match got {
            Ok(line) if line.is_empty() => return to.done(()), // the client's end of file
            Ok(line) if is_quit(&line) => (b"BYE\n".to_vec(), After::Close),
            Ok(mut line) => {
                line.make_ascii_uppercase();
                if line.ends_with(b"\n") {
                    (line, After::Next)
                } else {
                    // The last line, cut by the client's end of file.
                    line.push(b'\n');
                    (line, After::Done)
                }
            }
            Err(ReqError::User(e)) if e.kind() == io::ErrorKind::InvalidData => {
                (b"ERROR line too long\n".to_vec(), After::Close)
            }
            Err(e) => return Err(e),
        };
        to.written(write_all_send(to.ev(), &self.sock, answer), after)
    }

    fn written(&mut self, to: _, _answer: Vec<u8>, after: After) -> Next<Self> {
        match after {
            After::Next => to.line_read(read_until_send(to.ev(), &self.sock, b'\n', MAX_LINE)),
            After::Done => to.done(()),
            After::Close => to.shut(shutdown_send(to.ev(), &self.sock, Shutdown::Write)),
        }
    }

    fn shut(&mut self, to: _, _: ()) -> Next<Self> {
        // Closing with unread data would reset the connection, which can
        // destroy our last answer before the client reads it: read until the
        // client's end of file first (bounded in size and time).
        let drain = read_to_end_send(to.ev(), &self.sock, 64 * 1024);
        drain.set_endtime(to.ev().now() + LINGER)?;
        to.drained(drain)
    }

    fn drained(&mut self, to: _, _: Result<Vec<u8>, ReqError<io::Error>>) -> Next<Self> {
        // Whatever the client did (end of file, too much, too slow): close.
        to.done(())
    }
}

// ---------------------------------------------------------------------------

/// The server: accepts clients and runs a [`Session`] for each. It never
/// finishes by itself; it fails if `accept()` fails.
pub struct LineServer {
    listener: Rc<TcpListener>,
}

impl Request for LineServer {
    type Output = Infallible;
    type Error = io::Error;
}

impl LineServer {
    fn accept(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        ctl.wait(accept_send(ctl.ev(), &self.listener), LineServer::accepted)?;
        Ok(Progress::Pending)
    }

    fn accepted(
        &mut self,
        ctl: &mut Ctl<'_, Self>,
        sub: Req<Accept<TcpListener>>,
    ) -> StepResult<Self> {
        let sock = sub.recv()?;
        ctl.wait(session_send(ctl.ev(), sock), LineServer::session_done)?;
        self.accept(ctl)
    }

    fn session_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Session>) -> StepResult<Self> {
        if let Err(e) = sub.recv() {
            eprintln!("line_server: client failed: {e}");
        }
        Ok(Progress::Pending)
    }
}

/// Starts the server on a listening, nonblocking socket.
pub fn line_server_send(ev: &Context, listener: TcpListener) -> Req<LineServer> {
    let state = LineServer {
        listener: Rc::new(listener),
    };
    Req::start(ev, state, LineServer::accept)
}
