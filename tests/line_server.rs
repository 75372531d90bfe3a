//! The line server (examples/line.rs, examples/line_server.rs), driven
//! in-process on an ephemeral loopback port: upper-cased answers, lines split
//! across writes and several per write, `QUIT`, a line too long, a last line
//! cut by end of file, concurrent clients, and the command line.
//!
//! Clients are plain blocking sockets; a read timeout of a minute only turns
//! a hang into a failure, it decides nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use examples::line::{MAX_LINE, line_server_send, listen, parse_args};
use tevent::{Context, Remote};

/// A server running on its own thread and loop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let ev = Context::new().unwrap();
            let listener = listen(parse_args(&["0".to_string()]).unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = line_server_send(&ev, listener);
            tx.send((addr, ev.remote())).unwrap();
            ev.loop_until(|| s2.load(Ordering::SeqCst) || !server.is_in_progress())
                .unwrap();
            assert!(server.is_in_progress(), "the server never ends by itself");
        });
        let (addr, remote) = rx.recv().unwrap();
        Server {
            addr,
            stop,
            remote,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        let sock = TcpStream::connect(self.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Client {
            reader: BufReader::new(sock.try_clone().unwrap()),
            sock,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.remote.send(|_| {}); // wake the loop
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.unwrap();
            }
        }
    }
}

struct Client {
    sock: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).unwrap();
    }

    /// The next line of the answer, with its ending.
    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "end of file instead of a line");
        line
    }

    /// Asserts that the server closed the connection: end of file.
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
}

#[test]
fn lines_come_back_upper_cased_and_quit_says_bye() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(b"hello\n");
    assert_eq!(c.line(), "HELLO\n");
    c.send(b"Mixed Case 123\r\n");
    assert_eq!(c.line(), "MIXED CASE 123\r\n", "the ending is kept");
    c.send(b"\n");
    assert_eq!(c.line(), "\n", "an empty line is a line");
    c.send(b"quit\n");
    assert_eq!(c.line(), "BYE\n");
    c.assert_closed();
}

#[test]
fn a_line_split_across_writes_and_lines_sharing_a_write_are_answered_one_by_one() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(b"spl");
    c.send(b"it\nsecond\nthi");
    assert_eq!(c.line(), "SPLIT\n");
    assert_eq!(c.line(), "SECOND\n");
    c.send(b"rd\nQUIT\r\n");
    assert_eq!(c.line(), "THIRD\n");
    assert_eq!(c.line(), "BYE\n");
    c.assert_closed();
}

#[test]
fn a_line_of_max_bytes_is_answered_and_a_longer_one_ends_the_connection() {
    let server = Server::start();
    let mut c = server.connect();
    let mut ok = vec![b'a'; MAX_LINE - 1];
    ok.push(b'\n');
    c.send(&ok);
    assert_eq!(c.line(), format!("{}\n", "A".repeat(MAX_LINE - 1)));
    c.send(&vec![b'x'; MAX_LINE + 10]);
    assert_eq!(c.line(), "ERROR line too long\n");
    // The server drains what the client still sends, then closes once the
    // client is done: no reset, the answer arrived.
    c.send(b"more after the error\n");
    c.sock.shutdown(Shutdown::Write).unwrap();
    c.assert_closed();
}

#[test]
fn a_last_line_without_newline_is_answered_at_end_of_file() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(b"tail");
    c.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.line(), "TAIL\n");
    c.assert_closed();
}

#[test]
fn a_client_that_just_closes_ends_its_session_quietly() {
    let server = Server::start();
    let mut c = server.connect();
    c.sock.shutdown(Shutdown::Write).unwrap();
    c.assert_closed();
    // The server goes on serving.
    let mut d = server.connect();
    d.send(b"still here\n");
    assert_eq!(d.line(), "STILL HERE\n");
}

#[test]
fn several_clients_are_served_at_once() {
    let server = Server::start();
    let mut clients: Vec<Client> = (0..5).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("client {i} says").as_bytes()); // unfinished lines
    }
    for (i, c) in clients.iter_mut().enumerate().rev() {
        c.send(b" hi\n");
        assert_eq!(c.line(), format!("CLIENT {i} SAYS HI\n"));
    }
    for c in &mut clients {
        c.send(b"QUIT\n");
        assert_eq!(c.line(), "BYE\n");
        c.assert_closed();
    }
}

#[test]
fn the_command_line_takes_a_port_or_an_address_and_refuses_the_rest() {
    let args = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(args(&["7878"]), Ok("127.0.0.1:7878".parse().unwrap()));
    assert_eq!(args(&["0.0.0.0:80"]), Ok("0.0.0.0:80".parse().unwrap()));
    assert_eq!(args(&["[::1]:9"]), Ok("[::1]:9".parse().unwrap()));
    for bad in [&[][..], &["abc"], &["70000"], &["1", "2"], &["--help"]] {
        let usage = args(bad).unwrap_err();
        assert!(usage.starts_with("usage: line_server"), "{usage}");
    }
}
