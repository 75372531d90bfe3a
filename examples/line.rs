//! A line-based server, as requests on `tevent::io`: each line a client sends
//! comes back upper-cased; `QUIT` ends the connection.
//!
//! Shared by the `line_server` example and its test. The request tree:
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
    Accept, ReadToEnd, ReadUntil, ShutdownSocket, WriteAll, accept_send, read_to_end_send,
    read_until_send, shutdown_send, write_all_send,
};
use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};

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

/// One client: read a line, answer it, repeat.
pub struct Session {
    sock: Rc<TcpStream>,
    after: After,
}

impl Request for Session {
    /// The session ended normally (client's end of file, `QUIT`, a line too
    /// long).
    type Output = ();
    type Error = io::Error;
}

/// Whether `line` (without its ending) is the `QUIT` command.
fn is_quit(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.eq_ignore_ascii_case(b"QUIT")
}

impl Session {
    fn read_next(&mut self, ctl: &mut Ctl<'_, Self>) -> StepResult<Self> {
        let line = read_until_send(ctl.ev(), &self.sock, b'\n', MAX_LINE);
        ctl.wait(line, Session::line_read)?;
        Ok(Progress::Pending)
    }

    fn answer(&mut self, ctl: &mut Ctl<'_, Self>, text: Vec<u8>, after: After) -> StepResult<Self> {
        self.after = after;
        ctl.wait(write_all_send(ctl.ev(), &self.sock, text), Session::written)?;
        Ok(Progress::Pending)
    }

    fn line_read(
        &mut self,
        ctl: &mut Ctl<'_, Self>,
        sub: Req<ReadUntil<TcpStream>>,
    ) -> StepResult<Self> {
        let mut line = match sub.recv() {
            Ok(line) => line,
            Err(ReqError::User(e)) if e.kind() == io::ErrorKind::InvalidData => {
                return self.answer(ctl, b"ERROR line too long\n".to_vec(), After::Close);
            }
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            return Ok(Progress::Done(())); // the client's end of file
        }
        if is_quit(&line) {
            return self.answer(ctl, b"BYE\n".to_vec(), After::Close);
        }
        line.make_ascii_uppercase();
        if line.ends_with(b"\n") {
            self.answer(ctl, line, After::Next)
        } else {
            // The last line, cut by the client's end of file.
            line.push(b'\n');
            self.answer(ctl, line, After::Done)
        }
    }

    fn written(
        &mut self,
        ctl: &mut Ctl<'_, Self>,
        sub: Req<WriteAll<TcpStream>>,
    ) -> StepResult<Self> {
        sub.recv()?;
        match self.after {
            After::Next => self.read_next(ctl),
            After::Done => Ok(Progress::Done(())),
            After::Close => {
                let shut = shutdown_send(ctl.ev(), &self.sock, Shutdown::Write);
                ctl.wait(shut, Session::shut)?;
                Ok(Progress::Pending)
            }
        }
    }

    fn shut(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<ShutdownSocket>) -> StepResult<Self> {
        sub.recv()?;
        // Closing with unread data would reset the connection, which can
        // destroy our last answer before the client reads it: read until the
        // client's end of file first (bounded in size and time).
        let drain = read_to_end_send(ctl.ev(), &self.sock, 64 * 1024);
        drain.set_endtime(ctl.ev().now() + LINGER)?;
        ctl.wait(drain, Session::drained)?;
        Ok(Progress::Pending)
    }

    fn drained(
        &mut self,
        _: &mut Ctl<'_, Self>,
        sub: Req<ReadToEnd<TcpStream>>,
    ) -> StepResult<Self> {
        // Whatever the client did (end of file, too much, too slow): close.
        let _ = sub.recv();
        Ok(Progress::Done(()))
    }
}

/// Serves one client on `sock` (nonblocking or not: `tevent::io` never
/// blocks on a socket).
pub fn session_send(ev: &Context, sock: TcpStream) -> Req<Session> {
    let state = Session {
        sock: Rc::new(sock),
        after: After::Next,
    };
    Req::start(ev, state, Session::read_next)
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
