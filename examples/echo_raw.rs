//! The echo server without requests: one fd watcher per connection for the
//! connection's whole life, reading and writing from its handler. This is
//! the design of the C tevent peer server `benches/c/tevent_echo_fd.c`,
//! written on this crate's fd events, so the two loops can be compared
//! doing the same work (`benches/run.sh`; `docs/performance.md`, "Echo").
//! The flagship, with tevent's nested requests, is `echo_server`.
//!
//! ```text
//! cargo run --release --example echo_raw -- [PORT]
//! ```
//!
//! Listens on 127.0.0.1:PORT (0 or none: a free port), prints
//! `LISTEN 127.0.0.1:<port> PID=<pid>` (the harness's protocol), reads up to
//! 16 KiB at a time and writes it back, and stops on SIGINT or SIGTERM.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::rc::Rc;

use examples::echo::{HARNESS_BACKLOG, listen_on};
use tevent::signal::{SIGINT, SIGTERM};
use tevent::{Context, FdEvent, FdFlags, FdRef};

/// Bytes read at a time, as the C server's buffer.
const BUF: usize = 16384;

/// The watchers of the open connections, by fd (a handler ends its own).
type Conns = Rc<RefCell<HashMap<RawFd, FdEvent<'static>>>>;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|a| a.parse::<u16>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: echo_raw [PORT]   (PORT: 0 to 65535)");
            return ExitCode::from(2);
        }
    };
    match run(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_raw failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let ev = Context::new()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = listen_on(addr, HARNESS_BACKLOG, false)
        .map_err(|(what, e)| format!("{what} failed: {e}"))?;
    let listener = Rc::new(listener);
    println!(
        "LISTEN {} PID={}",
        listener.local_addr()?,
        std::process::id()
    );
    std::io::stdout().flush()?;

    let conns: Conns = Rc::default();
    let accepting = {
        let (l, conns) = (listener.clone(), conns.clone());
        ev.add_fd_shared(listener, FdFlags::READ, move |ev, _, _| {
            accept_all(ev, &l, &conns);
        })?
    };
    let stop = Rc::new(Cell::new(false));
    let mut signals = Vec::new();
    for sig in [SIGINT, SIGTERM] {
        let stop = stop.clone();
        signals.push(ev.add_signal(sig, move |_, _, _| stop.set(true))?);
    }
    ev.loop_until(|| stop.get())?;
    drop(accepting);
    conns.borrow_mut().clear();
    Ok(())
}

/// Accepts every pending connection and gives each its watcher.
fn accept_all(ev: &Context, listener: &TcpListener, conns: &Conns) {
    loop {
        let sock = match examples::echo::accept_nonblocking(listener) {
            Ok(fd) => TcpStream::from(fd),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => continue,
            Err(rustix::io::Errno::AGAIN) => return,
            Err(e) => {
                // Out of fds, for instance: the next readiness retries.
                eprintln!("accept: {e}");
                return;
            }
        };
        let _ = sock.set_nodelay(true);
        let fd = sock.as_raw_fd();
        let sock = Rc::new(sock);
        let mut conn = Conn {
            sock: sock.clone(),
            buf: vec![0; BUF].into_boxed_slice(),
            off: 0,
            len: 0,
        };
        let gone = conns.clone();
        let watcher = ev.add_fd_shared(sock, FdFlags::READ, move |_, me, flags| {
            if !conn.ready(me, flags) {
                // Dropping the watcher inside its own handler ends it.
                let w = gone.borrow_mut().remove(&fd);
                drop(w);
            }
        });
        match watcher {
            Ok(w) => {
                conns.borrow_mut().insert(fd, w);
            }
            Err(e) => eprintln!("watching a connection: {e}"),
        }
    }
}

/// One connection: the bytes read and not yet written back are
/// `buf[off..len]`.
struct Conn {
    sock: Rc<TcpStream>,
    buf: Box<[u8]>,
    off: usize,
    len: usize,
}

impl Conn {
    /// Serves one readiness; false when the connection is over.
    fn ready(&mut self, me: &FdRef<'_>, flags: FdFlags) -> bool {
        if flags.contains(FdFlags::WRITE) {
            if !self.flush() {
                return false;
            }
            if self.off == self.len {
                me.set_flags(FdFlags::READ);
            }
            return true;
        }
        match (&*self.sock).read(&mut self.buf) {
            Ok(0) => false,
            Ok(n) => {
                (self.off, self.len) = (0, n);
                if !self.flush() {
                    return false;
                }
                if self.off != self.len {
                    // The socket is full: stop reading until the rest is out.
                    me.set_flags(FdFlags::WRITE);
                }
                true
            }
            Err(e) => matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock),
        }
    }

    /// Writes what it can of `buf[off..len]`; false on an error.
    fn flush(&mut self) -> bool {
        while self.off < self.len {
            match (&*self.sock).write(&self.buf[self.off..self.len]) {
                Ok(n) => self.off += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return e.kind() == ErrorKind::WouldBlock,
            }
        }
        true
    }
}
