//! The echo server (examples/echo.rs), driven in-process: byte-exact echo,
//! tevent's output lines in tevent's order, the client that resets while the
//! server waits to write (C tevent hangs and leaks the fd), and teardown.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use examples::echo::{
    HARNESS_BACKLOG, Options, Out, TUTORIAL_BACKLOG, echo_server_send, listen_on, strerror,
};
use tevent::{Context, Remote};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A `Write` that appends to a buffer the test thread can read.
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl Write for SharedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A server running on its own thread and loop.
struct Server {
    port: u16,
    log: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(opts: Options) -> Server {
        Server::start_with(opts, TUTORIAL_BACKLOG)
    }

    fn start_with(opts: Options, backlog: i32) -> Server {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (l2, s2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let ev = Context::new().unwrap();
            let listener = listen_on(loopback(0), backlog, false).unwrap();
            let port = listener.local_addr().unwrap().port();
            let out: Out = Rc::new(RefCell::new(SharedLog(l2)));
            let accepted = Rc::new(std::cell::Cell::new(0));
            let server = echo_server_send(&ev, listener, opts, &out, &accepted);
            tx.send((port, ev.remote())).unwrap();
            ev.loop_until(|| s2.load(Ordering::SeqCst) || !server.is_in_progress())
                .unwrap();
            drop(server); // drops every client: their Closing lines are printed
        });
        let (port, remote) = rx.recv().unwrap();
        Server {
            port,
            log,
            stop,
            remote,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.log.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (a liveness bound, not a timing check) until `pred` holds.
    fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.lines();
            if pred(&lines) {
                return lines;
            }
            assert!(Instant::now() < deadline, "never saw {what}: {lines:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.remote.send(|_| {}).unwrap(); // wake the loop
        self.thread.take().unwrap().join().unwrap();
        self.lines()
    }
}

/// The outcome line that follows `Closing client fd <fd>` in `lines`.
fn outcome_of(lines: &[String], fd: &str) -> Option<String> {
    let closing = format!("Closing client fd {fd}");
    let i = lines.iter().position(|l| *l == closing)?;
    lines.get(i + 1).cloned()
}

fn fd_of_nth_client(lines: &[String], n: usize) -> String {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("new client fd "))
        .nth(n)
        .expect("client announced")
        .to_string()
}

#[test]
fn two_clients_are_echoed_exactly_and_reported_in_tevent_order() {
    let server = Server::start(Options::default());
    let mut a = server.connect();
    let mut b = server.connect();
    let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    a.write_all(&payload).unwrap();
    b.write_all(b"xyz").unwrap();
    let mut back = vec![0u8; payload.len()];
    a.read_exact(&mut back).unwrap();
    assert_eq!(back, payload, "byte-exact, in order, over 100-byte reads");
    let mut small = [0u8; 3];
    b.read_exact(&mut small).unwrap();
    assert_eq!(&small, b"xyz");

    a.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        a.read(&mut [0u8; 1]).unwrap(),
        0,
        "the server closes after EOF"
    );
    let lines = server.wait_for("client a's outcome", |l| {
        l.iter().any(|x| x == "Client done")
    });
    let fd_a = fd_of_nth_client(&lines, 0);
    assert_eq!(outcome_of(&lines, &fd_a).as_deref(), Some("Client done"));
    let new_a = lines
        .iter()
        .position(|l| *l == format!("new client fd {fd_a}"))
        .unwrap();
    let closing_a = lines
        .iter()
        .position(|l| *l == format!("Closing client fd {fd_a}"))
        .unwrap();
    assert!(new_a < closing_a, "{lines:?}");

    drop(b);
    // Wait for the outcome line itself: it follows the Closing line, and the
    // server may not have written it yet when the Closing line is seen.
    let fd_b = fd_of_nth_client(&lines, 1);
    let lines = server.wait_for("client b's outcome", |l| outcome_of(l, &fd_b).is_some());
    assert_eq!(outcome_of(&lines, &fd_b).as_deref(), Some("Client done"));
    let lines = server.stop();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("new client fd"))
            .count(),
        2
    );
}

#[test]
fn a_client_that_resets_while_the_server_waits_to_write_is_reported_and_closed() {
    // C tevent's echo_server hangs here: its write waits only for WRITE, a
    // hang-up clears that interest silently, and the fd leaks.
    let server = Server::start(Options::default());
    let mut c = server.connect();
    c.set_nonblocking(true).unwrap();
    // Send without reading until the server can no longer write its echoes
    // back (and so stops reading): both directions fill up.
    let chunk = [b'q'; 65536];
    let mut stalled_since = None;
    loop {
        match c.write(&chunk) {
            Ok(_) => stalled_since = None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(200) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("client write: {e}"),
        }
    }
    drop(c); // unread data: the kernel resets the connection
    // The outcome line follows the Closing line: wait for it, not for that.
    let fd = fd_of_nth_client(&server.lines(), 0);
    let lines = server.wait_for("the reset client's outcome", |l| {
        outcome_of(l, &fd).is_some()
    });
    let outcome = outcome_of(&lines, &fd);
    assert!(
        matches!(
            outcome.as_deref(),
            Some("Client failed: Connection reset by peer") | Some("Client done")
        ),
        "{lines:?}"
    );
    server.stop();
}

#[test]
fn stopping_the_server_closes_every_client() {
    let server = Server::start(Options::default());
    let mut a = server.connect();
    let mut b = server.connect();
    server.wait_for("both clients", |l| {
        l.iter().filter(|x| x.starts_with("new client fd")).count() == 2
    });
    let lines = server.stop();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Closing client fd"))
            .count(),
        2,
        "{lines:?}"
    );
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0, "closed by the server");
    }
}

#[test]
fn errors_read_like_perror() {
    let e = std::io::Error::from_raw_os_error(libc::ECONNRESET);
    assert_eq!(strerror(&e), "Connection reset by peer");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    match listen_on(loopback(port), TUTORIAL_BACKLOG, false) {
        Err((what, e)) => {
            assert_eq!(what, "bind()");
            assert_eq!(strerror(&e), "Address already in use");
        }
        Ok(_) => panic!("bound a port that is in use"),
    }
}

/// 200 clients connect at once (before the server accepts any), then each is
/// echoed: 200 echo requests in flight under one server request, each with
/// its own subrequest. (With the tutorial's backlog of 5 the kernel drops
/// most of these connections from the full accept queue and they recover
/// only through TCP retransmission, seconds later; the harness mode listens
/// with the peers' backlog, 1024.)
#[test]
fn a_burst_of_clients_is_served() {
    let server = Server::start_with(
        Options {
            bufsize: 16384,
            nodelay: true,
            idle_timeout: None,
        },
        HARNESS_BACKLOG,
    );
    let mut clients: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(format!("client {i:03}").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = [0u8; 10];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, format!("client {i:03}").as_bytes());
    }
    drop(clients);
    let lines = server.wait_for("every client done", |l| {
        l.iter().filter(|s| *s == "Client done").count() == 200
    });
    assert_eq!(
        lines
            .iter()
            .filter(|s| s.starts_with("new client fd"))
            .count(),
        200
    );
    server.stop();
}

/// A restart on the port of a server that just closed a client binds: the
/// closed connection waits in TIME_WAIT on that port, which refused the
/// new listener before it set SO_REUSEADDR.
#[test]
fn a_restart_right_after_closing_a_client_binds_the_same_port() {
    let listener = listen_on(loopback(0), TUTORIAL_BACKLOG, false).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(loopback(port)).unwrap();
    let (served, _) = loop {
        match listener.accept() {
            Ok(pair) => break pair,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("accept: {e}"),
        }
    };
    drop(served); // the server side closes first: its end goes to TIME_WAIT
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    drop(client);
    drop(listener);
    let again = listen_on(loopback(port), TUTORIAL_BACKLOG, false);
    assert!(
        again.is_ok(),
        "rebinding port {port}: {:?}",
        again.err().map(|(what, e)| format!("{what} {e}"))
    );
    // A port with a live listener is still refused.
    let taken = listen_on(loopback(port), TUTORIAL_BACKLOG, false);
    assert!(taken.is_err());
}
