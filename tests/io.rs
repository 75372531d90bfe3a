//! The ready-made I/O requests (`tevent::io`): read_some, read_exact,
//! read_until, read_to_end, write_some, write_all, accept, connect,
//! connect_unix, shutdown, on TCP, Unix sockets and pipes; fds left in
//! blocking mode.
//!
//! No test depends on timing: a request is driven by `poll` (the loop waits
//! for readiness), and a split across reads is made by running one loop step
//! between two writes. A watchdog turns a hang (the bug the blocking-mode
//! tests look for) into a failure after two minutes.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use tests::socketpair;
use tevent::io::{
    accept_recv, accept_send, connect_recv, connect_send, connect_unix_recv, connect_unix_send,
    read_exact_recv, read_exact_send, read_some_recv, read_some_send, read_to_end_recv,
    read_to_end_send, read_until_recv, read_until_send, shutdown_recv, shutdown_send,
    write_all_recv, write_all_send, write_some_recv, write_some_send,
};
use tevent::{Context, ReqError, ReqState};

// ---------------------------------------------------------------------------
// Fd pairs: a reader end as its own type (what the requests get) and a
// blocking writer end as a `File` (what the test writes with; dropping it is
// end of file).

/// A TCP connection on loopback: (server end, nonblocking; client end).
fn tcp() -> (TcpStream, File) {
    let (server, client) = tcp_streams();
    (server, File::from(OwnedFd::from(client)))
}

/// A TCP connection as two streams: (server end, nonblocking; client end,
/// blocking).
fn tcp_streams() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (server, client)
}

/// A Unix socket pair: (nonblocking end; blocking end).
fn unix() -> (UnixStream, File) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (a, File::from(OwnedFd::from(b)))
}

/// A pipe: (read end, nonblocking; write end, blocking).
fn pipe() -> (OwnedFd, File) {
    let (r, w) = tests::pipe_cloexec();
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    (r, File::from(w))
}

/// A pipe whose ends are both left in blocking mode: (read end, write end).
fn blocking_pipe() -> (OwnedFd, OwnedFd) {
    tests::pipe_cloexec()
}

/// Runs a test body on each kind of fd, as `name::tcp`, `name::unix` and
/// `name::pipe`.
macro_rules! on_each_fd {
    ($(#[$m:meta])* fn $name:ident<F>($reader:ident, $writer:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$m])*
            fn run<F: AsFd + 'static>($reader: F, #[allow(unused_mut)] mut $writer: File) $body

            #[test]
            fn tcp() {
                let (r, w) = super::tcp();
                run(r, w);
            }

            #[test]
            fn unix() {
                let (r, w) = super::unix();
                run(r, w);
            }

            #[test]
            fn pipe() {
                let (r, w) = super::pipe();
                run(r, w);
            }
        }
    };
}

/// The I/O error a request failed with.
#[track_caller]
fn io_error<T: std::fmt::Debug>(r: Result<T, ReqError<std::io::Error>>) -> std::io::Error {
    match r {
        Err(ReqError::User(e)) => e,
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// Aborts the test process if it is still running after two minutes: a test
/// that would hang (a loop blocked in a system call) fails instead. Dropping
/// the watchdog disarms it.
struct Watchdog(#[expect(dead_code, reason = "held to disarm on drop")] mpsc::Sender<()>);

fn watchdog(what: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(120)) {
            eprintln!("watchdog: {what} still hangs after 120 s");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

// ---------------------------------------------------------------------------
// read_some

#[test]
fn read_some_waits_for_data_and_reports_end_of_file() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let r = read_some_send(&ev, &a, vec![0; 16]);
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev.loop_once().unwrap();
    assert!(r.is_in_progress(), "no data yet");
    (&b).write_all(b"hello").unwrap();
    ev.set_wait_timeout(None);
    r.poll(&ev).unwrap();
    assert_eq!(read_some_recv(r).unwrap(), b"hello");
    drop(b);
    let eof = read_some_send(&ev, &a, vec![0; 16]);
    eof.poll(&ev).unwrap();
    assert_eq!(
        read_some_recv(eof).unwrap(),
        b"",
        "end of file is an empty read"
    );
    assert_eq!(ev.event_counts().total(), 0);
}

on_each_fd! {
    fn read_some_reads_what_is_there_then_end_of_file<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        writer.write_all(b"abc").unwrap();
        let r = read_some_send(&ev, &reader, vec![0; 64]);
        r.poll(&ev).unwrap();
        assert_eq!(read_some_recv(r).unwrap(), b"abc");
        drop(writer);
        let r = read_some_send(&ev, &reader, vec![0; 64]);
        r.poll(&ev).unwrap();
        assert_eq!(read_some_recv(r).unwrap(), b"");
    }
}

/// Two readers wait on one socket; one byte arrives. One reader gets it,
/// the other sees `WouldBlock` and keeps waiting instead of failing (or, on
/// a blocking socket, blocking the loop in `read()`).
fn stale_readiness(a: UnixStream, b: UnixStream) {
    let ev = Context::new().unwrap();
    let a = Rc::new(a);
    let r1 = read_some_send(&ev, &a, vec![0; 1]);
    let r2 = read_some_send(&ev, &a, vec![0; 1]);
    (&b).write_all(b"x").unwrap();
    ev.loop_until(|| !r1.is_in_progress() || !r2.is_in_progress())
        .unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    for _ in 0..5 {
        ev.loop_once().unwrap();
    }
    let states = [r1.state(), r2.state()];
    assert!(
        states.contains(&ReqState::Done) && states.contains(&ReqState::InProgress),
        "{states:?}"
    );
    let (done, waiting) = if r1.state() == ReqState::Done {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert_eq!(read_some_recv(done).unwrap(), b"x");
    (&b).write_all(b"y").unwrap();
    ev.set_wait_timeout(None);
    waiting.poll(&ev).unwrap();
    assert_eq!(read_some_recv(waiting).unwrap(), b"y");
}

#[test]
fn a_stale_readiness_is_harmless() {
    let (a, b) = socketpair();
    stale_readiness(a, b);
}

#[test]
fn a_stale_readiness_on_a_blocking_socket_does_not_block_the_loop() {
    let _dog = watchdog("a read on a blocking socket");
    let (a, b) = UnixStream::pair().unwrap(); // both left blocking
    stale_readiness(a, b);
}

#[test]
fn dropping_an_io_request_in_flight_removes_its_watcher() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair();
    let a = Rc::new(a);
    let r = read_some_send(&ev, &a, vec![0; 8]);
    assert_eq!(ev.event_counts().fd_watchers, 1);
    drop(r);
    assert_eq!(ev.event_counts().total(), 0);
}

// ---------------------------------------------------------------------------
// read_exact

on_each_fd! {
    fn read_exact_collects_a_length_written_in_pieces<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        let r = read_exact_send(&ev, &reader, 10);
        writer.write_all(b"0123").unwrap();
        ev.loop_once().unwrap(); // reads the first piece
        assert!(r.is_in_progress());
        writer.write_all(b"456789tail").unwrap();
        r.poll(&ev).unwrap();
        assert_eq!(read_exact_recv(r).unwrap(), b"0123456789");
        // What followed is still there for the next request.
        let r = read_exact_send(&ev, &reader, 4);
        r.poll(&ev).unwrap();
        assert_eq!(read_exact_recv(r).unwrap(), b"tail");
    }
}

on_each_fd! {
    fn read_exact_fails_with_unexpected_eof_on_a_short_stream<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        let r = read_exact_send(&ev, &reader, 10);
        writer.write_all(b"abcd").unwrap();
        drop(writer);
        r.poll(&ev).unwrap();
        let e = io_error(read_exact_recv(r));
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("4 of 10 bytes"), "{e}");
    }
}

#[test]
fn read_exact_of_zero_bytes_finishes_at_once() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair();
    let r = read_exact_send(&ev, &Rc::new(a), 0);
    assert_eq!(ev.event_counts().fd_watchers, 0, "nothing to wait for");
    r.poll(&ev).unwrap();
    assert_eq!(read_exact_recv(r).unwrap(), b"");
}

// ---------------------------------------------------------------------------
// read_until

on_each_fd! {
    fn read_until_joins_a_line_split_across_reads<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        let r = read_until_send(&ev, &reader, b'\n', 100);
        writer.write_all(b"hel").unwrap();
        ev.loop_once().unwrap(); // takes "hel", no delimiter yet
        assert!(r.is_in_progress());
        writer.write_all(b"lo\nwor").unwrap();
        r.poll(&ev).unwrap();
        assert_eq!(read_until_recv(r).unwrap(), b"hello\n");
        // Nothing past the delimiter was taken.
        writer.write_all(b"ld\n").unwrap();
        let r = read_until_send(&ev, &reader, b'\n', 100);
        r.poll(&ev).unwrap();
        assert_eq!(read_until_recv(r).unwrap(), b"world\n");
    }
}

on_each_fd! {
    fn read_until_leaves_the_next_lines_in_the_fd<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        writer.write_all(b"a\nbb\n\nccc").unwrap();
        drop(writer);
        let mut lines = Vec::new();
        loop {
            let r = read_until_send(&ev, &reader, b'\n', 100);
            r.poll(&ev).unwrap();
            let line = read_until_recv(r).unwrap();
            if line.is_empty() {
                break;
            }
            lines.push(String::from_utf8(line).unwrap());
            assert!(lines.len() <= 4, "{lines:?}");
        }
        assert_eq!(lines, ["a\n", "bb\n", "\n", "ccc"]);
    }
}

on_each_fd! {
    fn read_until_returns_the_unterminated_tail_then_empty_at_end_of_file<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        writer.write_all(b"one\ntwo").unwrap();
        drop(writer);
        let mut got = Vec::new();
        for _ in 0..3 {
            let r = read_until_send(&ev, &reader, b'\n', 100);
            r.poll(&ev).unwrap();
            got.push(read_until_recv(r).unwrap());
        }
        assert_eq!(got, [b"one\n".to_vec(), b"two".to_vec(), Vec::new()]);
    }
}

on_each_fd! {
    fn read_until_fails_on_a_line_longer_than_max<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        let r = read_until_send(&ev, &reader, b'\n', 8);
        writer.write_all(b"0123456789\n").unwrap();
        r.poll(&ev).unwrap();
        let e = io_error(read_until_recv(r));
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("line longer than max"), "{e}");
    }
}

on_each_fd! {
    fn read_until_accepts_a_line_of_exactly_max_bytes<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        writer.write_all(b"hello\nnext\n").unwrap();
        let r = read_until_send(&ev, &reader, b'\n', 6);
        r.poll(&ev).unwrap();
        assert_eq!(read_until_recv(r).unwrap(), b"hello\n");
    }
}

#[test]
fn read_until_reads_a_line_longer_than_its_first_chunk() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let mut line = vec![b'x'; 5000];
    line.push(b'\n');
    (&b).write_all(&line).unwrap();
    (&b).write_all(b"after\n").unwrap();
    let r = read_until_send(&ev, &a, b'\n', 10_000);
    r.poll(&ev).unwrap();
    assert_eq!(read_until_recv(r).unwrap(), line);
    let r = read_until_send(&ev, &a, b'\n', 10_000);
    r.poll(&ev).unwrap();
    assert_eq!(read_until_recv(r).unwrap(), b"after\n");
}

#[test]
fn read_until_with_max_zero_is_invalid_input() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair();
    let r = read_until_send(&ev, &Rc::new(a), b'\n', 0);
    r.poll(&ev).unwrap();
    assert_eq!(io_error(read_until_recv(r)).kind(), ErrorKind::InvalidInput);
}

// ---------------------------------------------------------------------------
// read_to_end

on_each_fd! {
    fn read_to_end_collects_everything_until_end_of_file<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        // More than the pipe and socket buffers: a thread writes while the
        // loop reads.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let expect = data.clone();
        let t = std::thread::spawn(move || {
            writer.write_all(&data).unwrap();
        });
        let r = read_to_end_send(&ev, &reader, 1 << 20);
        r.poll(&ev).unwrap();
        t.join().unwrap();
        assert!(read_to_end_recv(r).unwrap() == expect, "every byte, in order");
    }
}

on_each_fd! {
    fn read_to_end_fails_past_max<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        // No end of file needed: the 11th byte is already too many.
        writer.write_all(b"0123456789A").unwrap();
        let r = read_to_end_send(&ev, &reader, 10);
        r.poll(&ev).unwrap();
        let e = io_error(read_to_end_recv(r));
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("more than max"), "{e}");
    }
}

on_each_fd! {
    fn read_to_end_accepts_exactly_max_bytes<F>(reader, writer) {
        let ev = Context::new().unwrap();
        let reader = Rc::new(reader);
        writer.write_all(b"0123456789").unwrap();
        drop(writer);
        let r = read_to_end_send(&ev, &reader, 10);
        r.poll(&ev).unwrap();
        assert_eq!(read_to_end_recv(r).unwrap(), b"0123456789");
    }
}

// ---------------------------------------------------------------------------
// A peer that resets.

/// A TCP connection whose client end resets (an RST, not a FIN) when
/// dropped: `SO_LINGER` with a zero timeout.
fn tcp_resetting() -> (TcpStream, TcpStream) {
    let (server, client) = tcp_streams();
    rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
    (server, client)
}

/// A Unix socket pair whose second end resets when dropped: it has unread
/// data, which the kernel reports to the first end as `ECONNRESET`.
fn unix_resetting() -> (UnixStream, UnixStream) {
    let (a, b) = socketpair();
    (&a).write_all(b"never read").unwrap();
    (a, b)
}

/// Every read request on `reader` fails with `ECONNRESET` once `peer` reset.
fn reads_report_the_reset<F: AsFd + 'static, P>(pair: impl Fn() -> (F, P)) {
    let ev = Context::new().unwrap();
    let check = |e: std::io::Error| assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");

    let (reader, peer) = pair();
    let r = read_some_send(&ev, &Rc::new(reader), vec![0; 16]);
    drop(peer);
    r.poll(&ev).unwrap();
    check(io_error(read_some_recv(r)));

    let (reader, peer) = pair();
    let r = read_exact_send(&ev, &Rc::new(reader), 16);
    drop(peer);
    r.poll(&ev).unwrap();
    check(io_error(read_exact_recv(r)));

    let (reader, peer) = pair();
    let r = read_until_send(&ev, &Rc::new(reader), b'\n', 16);
    drop(peer);
    r.poll(&ev).unwrap();
    check(io_error(read_until_recv(r)));

    let (reader, peer) = pair();
    let r = read_to_end_send(&ev, &Rc::new(reader), 16);
    drop(peer);
    r.poll(&ev).unwrap();
    check(io_error(read_to_end_recv(r)));
}

#[test]
fn reads_fail_with_connection_reset_when_a_tcp_peer_resets() {
    reads_report_the_reset(tcp_resetting);
}

#[test]
fn reads_fail_with_connection_reset_when_a_unix_peer_resets() {
    reads_report_the_reset(unix_resetting);
}

// ---------------------------------------------------------------------------
// write_some, write_all

#[test]
fn write_all_pushes_a_large_buffer_through_a_full_socket() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let w = write_all_send(&ev, &a, data.clone());
    assert!(w.is_in_progress(), "4 MiB do not fit in the socket buffer");
    // Drain the other end from the loop as it becomes readable.
    let received = Rc::new(RefCell::new(Vec::new()));
    let (rx, bb) = (received.clone(), Rc::new(b));
    let b2 = bb.clone();
    let _reader = ev
        .add_fd_shared(bb.clone(), tevent::FdFlags::READ, move |_, _, _| {
            let mut buf = [0u8; 65536];
            if let Ok(n) = (&*b2).read(&mut buf) {
                rx.borrow_mut().extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
    w.poll(&ev).unwrap();
    let back = write_all_recv(w).unwrap();
    assert_eq!(back.len(), data.len(), "the buffer is handed back");
    ev.loop_until(|| received.borrow().len() == data.len())
        .unwrap();
    assert!(*received.borrow() == data, "every byte arrived, in order");
}

on_each_fd! {
    fn write_all_reaches_the_reader<F>(writer_end, reader_end) {
        // Here the requests write on the first end and the test reads the
        // second; pipes are turned around (the read end cannot write).
        let ev = Context::new().unwrap();
        let (w, mut r) = turn_around(writer_end, reader_end);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let expect = data.clone();
        let t = std::thread::spawn(move || {
            let mut got = vec![0; expect.len()];
            r.read_exact(&mut got).unwrap();
            assert!(got == expect, "every byte, in order");
        });
        let req = write_all_send(&ev, &w, data);
        req.poll(&ev).unwrap();
        assert_eq!(write_all_recv(req).unwrap().len(), 300_000);
        t.join().unwrap();
    }
}

/// The end to write with (nonblocking) and the end to read from (blocking).
/// A socket's first end writes (a duplicate of it: same socket); a pipe's
/// read end cannot, so the pipe is replaced by a new one written at its
/// write end.
fn turn_around<F: AsFd>(first: F, second: File) -> (Rc<OwnedFd>, File) {
    if rustix::net::sockopt::socket_type(&first).is_ok() {
        (Rc::new(first.as_fd().try_clone_to_owned().unwrap()), second)
    } else {
        let (r, w) = tests::pipe_cloexec();
        rustix::io::ioctl_fionbio(&w, true).unwrap();
        (Rc::new(w), File::from(r))
    }
}

#[test]
fn write_reports_a_closed_peer_instead_of_hanging() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    // Fill the socket so the writer has to wait, then the peer goes away.
    while (&*a).write(&[0u8; 65536]).is_ok() {}
    let w = write_all_send(&ev, &a, vec![1; 1024]);
    assert!(w.is_in_progress());
    drop(b);
    w.poll(&ev).unwrap();
    let e = io_error(write_all_recv(w));
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
}

#[test]
fn write_to_a_pipe_without_reader_is_broken_pipe() {
    let ev = Context::new().unwrap();
    let (r, w) = tests::pipe_cloexec();
    rustix::io::ioctl_fionbio(&w, true).unwrap();
    drop(r);
    let req = write_all_send(&ev, &Rc::new(w), b"x".to_vec());
    req.poll(&ev).unwrap();
    assert_eq!(io_error(write_all_recv(req)).kind(), ErrorKind::BrokenPipe);
}

#[test]
fn write_some_writes_once_and_an_empty_write_is_zero() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let w = write_some_send(&ev, &a, b"abc".to_vec());
    w.poll(&ev).unwrap();
    assert_eq!(write_some_recv(w).unwrap(), 3);
    let mut got = [0u8; 3];
    (&b).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    let empty = write_some_send(&ev, &a, Vec::new());
    assert_eq!(write_some_recv(empty).unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Fds left in blocking mode.

/// `write_all` on a full socket in blocking mode waits for writability (the
/// loop keeps running meanwhile) instead of blocking in `write()`; a second
/// thread then drains the peer and the request finishes.
fn write_all_on_a_full_blocking_socket<S>(mine: S, mut peer: File)
where
    S: AsFd + 'static,
    for<'a> &'a S: std::io::Write,
{
    let _dog = watchdog("write_all on a full blocking socket");
    let ev = Context::new().unwrap();
    let mine = Rc::new(mine);
    // Fill it (nonblocking for that), then leave it blocking.
    rustix::io::ioctl_fionbio(&*mine, true).unwrap();
    let mut filled = 0;
    while let Ok(n) = (&*mine).write(&[7u8; 65536]) {
        filled += n;
    }
    rustix::io::ioctl_fionbio(&*mine, false).unwrap();
    let fl = rustix::fs::fcntl_getfl(&*mine).unwrap();
    assert!(
        !fl.contains(rustix::fs::OFlags::NONBLOCK),
        "left in blocking mode"
    );

    let data = vec![9u8; 16 << 20];
    let w = write_all_send(&ev, &mine, data); // must not block here...
    assert!(
        w.is_in_progress(),
        "16 MiB more do not fit in a full socket"
    );
    // ...nor in the loop: a timer still runs.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let _t = ev.add_timer_after(Duration::ZERO, move |_, _| f.set(true));
    ev.loop_until(|| fired.get()).unwrap();
    assert!(w.is_in_progress());

    let total = filled + (16 << 20);
    let drain = std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while got < total {
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0, "end of file after {got} of {total} bytes");
            got += n;
        }
    });
    w.poll(&ev).unwrap();
    assert_eq!(write_all_recv(w).unwrap().len(), 16 << 20);
    drain.join().unwrap();
}

#[test]
fn write_all_to_a_full_blocking_unix_socket_waits_instead_of_blocking() {
    let (a, b) = UnixStream::pair().unwrap();
    write_all_on_a_full_blocking_socket(a, File::from(OwnedFd::from(b)));
}

#[test]
fn write_all_to_a_full_blocking_tcp_socket_waits_instead_of_blocking() {
    let (server, client) = tcp_streams();
    write_all_on_a_full_blocking_socket(server, File::from(OwnedFd::from(client)));
}

#[test]
fn read_until_on_a_blocking_socket_works() {
    let ev = Context::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap(); // both left blocking
    let a = Rc::new(a);
    (&b).write_all(b"line\nrest").unwrap();
    let r = read_until_send(&ev, &a, b'\n', 100);
    r.poll(&ev).unwrap();
    assert_eq!(read_until_recv(r).unwrap(), b"line\n");
    drop(b);
    let r = read_to_end_send(&ev, &a, 100);
    r.poll(&ev).unwrap();
    assert_eq!(read_to_end_recv(r).unwrap(), b"rest");
}

/// The error for a blocking non-socket fd: `InvalidInput`, saying what is
/// wrong and how to fix it, carrying `tevent::Error::Blocking`.
#[track_caller]
fn assert_refused_as_blocking<T: std::fmt::Debug>(
    r: Result<T, ReqError<std::io::Error>>,
    fd: &impl AsRawFd,
) {
    let e = io_error(r);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("blocking mode"), "{msg}");
    assert!(msg.contains("set_nonblocking(true)"), "{msg}");
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<tevent::Error>())
    {
        Some(tevent::Error::Blocking { fd: n }) => assert_eq!(*n, fd.as_raw_fd()),
        other => panic!("expected tevent::Error::Blocking inside, got {other:?}"),
    }
}

#[test]
fn every_request_refuses_a_blocking_pipe_with_a_clear_error() {
    let _dog = watchdog("a request on a blocking pipe");
    let ev = Context::new().unwrap();
    let (r, w) = blocking_pipe();
    let (r, w) = (Rc::new(r), Rc::new(w));
    // Reads are refused when they start, before any data arrives.
    let req = read_some_send(&ev, &r, vec![0; 8]);
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(read_some_recv(req), &*r);
    let req = read_exact_send(&ev, &r, 8);
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(read_exact_recv(req), &*r);
    let req = read_until_send(&ev, &r, b'\n', 8);
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(read_until_recv(req), &*r);
    let req = read_to_end_send(&ev, &r, 8);
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(read_to_end_recv(req), &*r);
    // Writes at their first write.
    let req = write_some_send(&ev, &w, b"x".to_vec());
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(write_some_recv(req), &*w);
    let req = write_all_send(&ev, &w, b"x".to_vec());
    req.poll(&ev).unwrap();
    assert_refused_as_blocking(write_all_recv(req), &*w);
    // Nothing was written, nothing is left watching.
    assert_eq!(ev.event_counts().fd_watchers, 0);
    rustix::io::ioctl_fionbio(&*r, true).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        rustix::io::read(&*r, &mut buf),
        Err(rustix::io::Errno::AGAIN)
    );
}

#[test]
fn a_pipe_made_nonblocking_is_accepted() {
    let ev = Context::new().unwrap();
    let (r, w) = blocking_pipe();
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    rustix::io::ioctl_fionbio(&w, true).unwrap();
    let (r, w) = (Rc::new(r), Rc::new(w));
    let req = write_all_send(&ev, &w, b"ok\n".to_vec());
    req.poll(&ev).unwrap();
    write_all_recv(req).unwrap();
    let req = read_until_send(&ev, &r, b'\n', 8);
    req.poll(&ev).unwrap();
    assert_eq!(read_until_recv(req).unwrap(), b"ok\n");
}

// ---------------------------------------------------------------------------
// accept, connect, connect_unix

#[test]
fn accept_and_connect_on_loopback() {
    let ev = Context::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Rc::new(listener);
    let acc = accept_send(&ev, &listener);
    let con = connect_send(&ev, addr);
    acc.poll(&ev).unwrap();
    con.poll(&ev).unwrap();
    let server: TcpStream = accept_recv(acc).unwrap(); // typed after the listener
    let mut client = connect_recv(con).unwrap();
    client.set_nonblocking(false).unwrap();
    client.write_all(b"ping").unwrap();
    let server = Rc::new(server);
    let r = read_some_send(&ev, &server, vec![0; 4]);
    r.poll(&ev).unwrap();
    assert_eq!(read_some_recv(r).unwrap(), b"ping");
}

#[test]
fn accept_yields_a_unix_stream_from_a_unix_listener_and_an_owned_fd_from_an_owned_fd() {
    let ev = Context::new().unwrap();
    let dir = TempDir::new("accept");
    let path = dir.path("l.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = Rc::new(listener);
    let acc = accept_send(&ev, &listener);
    let con = connect_unix_send(&ev, &path);
    acc.poll(&ev).unwrap();
    con.poll(&ev).unwrap();
    let server: UnixStream = accept_recv(acc).unwrap();
    let client: UnixStream = connect_unix_recv(con).unwrap();
    assert!(server.peer_addr().is_ok() && client.peer_addr().is_ok());
    let fl = rustix::fs::fcntl_getfl(&server).unwrap();
    assert!(
        fl.contains(rustix::fs::OFlags::NONBLOCK),
        "accepted nonblocking"
    );

    // The same listener as a raw fd: connections come out as raw fds.
    drop(listener);
    let raw = UnixListener::bind(dir.path("raw.sock")).unwrap();
    raw.set_nonblocking(true).unwrap();
    let raw = Rc::new(OwnedFd::from(raw));
    let acc = accept_send(&ev, &raw);
    let con = connect_unix_send(&ev, dir.path("raw.sock"));
    acc.poll(&ev).unwrap();
    con.poll(&ev).unwrap();
    let fd: OwnedFd = accept_recv(acc).unwrap();
    assert!(rustix::net::sockopt::socket_type(&fd).is_ok());
    drop(connect_unix_recv(con).unwrap());
}

#[test]
fn accept_refuses_a_blocking_listener() {
    let _dog = watchdog("accept on a blocking listener");
    let ev = Context::new().unwrap();
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap()); // blocking
    let acc = accept_send(&ev, &listener);
    acc.poll(&ev).unwrap();
    assert_refused_as_blocking(accept_recv(acc), &*listener);
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let ev = Context::new().unwrap();
    // Bind then drop to find a port that nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let con = connect_send(&ev, port);
    con.poll(&ev).unwrap();
    assert_eq!(
        io_error(connect_recv(con)).kind(),
        ErrorKind::ConnectionRefused
    );
}

#[test]
fn connect_unix_to_a_missing_path_is_not_found_and_to_a_stale_one_refused() {
    let ev = Context::new().unwrap();
    let dir = TempDir::new("connect");
    let con = connect_unix_send(&ev, dir.path("none.sock"));
    con.poll(&ev).unwrap();
    assert_eq!(io_error(connect_unix_recv(con)).kind(), ErrorKind::NotFound);
    // A socket file whose listener is gone.
    drop(UnixListener::bind(dir.path("stale.sock")).unwrap());
    let con = connect_unix_send(&ev, dir.path("stale.sock"));
    con.poll(&ev).unwrap();
    assert_eq!(
        io_error(connect_unix_recv(con)).kind(),
        ErrorKind::ConnectionRefused
    );
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tevent-io-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// shutdown

/// After `shutdown(Write)` the peer reads end of file, and this end can
/// still read the peer's answer.
fn shutdown_write_then_read_the_answer<S>(mine: S, mut peer: File)
where
    S: AsFd + 'static,
{
    let ev = Context::new().unwrap();
    let mine = Rc::new(mine);
    let w = write_all_send(&ev, &mine, b"question".to_vec());
    w.poll(&ev).unwrap();
    write_all_recv(w).unwrap();
    let s = shutdown_send(&ev, &mine, Shutdown::Write);
    s.poll(&ev).unwrap();
    shutdown_recv(s).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap(); // ends: the shutdown is end of file
    assert_eq!(got, b"question");
    peer.write_all(b"answer").unwrap();
    drop(peer);
    let r = read_to_end_send(&ev, &mine, 100);
    r.poll(&ev).unwrap();
    assert_eq!(read_to_end_recv(r).unwrap(), b"answer");
}

#[test]
fn shutdown_write_sends_end_of_file_on_tcp() {
    let (server, client) = tcp_streams();
    shutdown_write_then_read_the_answer(server, File::from(OwnedFd::from(client)));
}

#[test]
fn shutdown_write_sends_end_of_file_on_unix() {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    shutdown_write_then_read_the_answer(a, File::from(OwnedFd::from(b)));
}

#[test]
fn shutdown_is_delivered_from_the_loop_and_fails_on_a_pipe() {
    let ev = Context::new().unwrap();
    let (_r, w) = pipe();
    let s = shutdown_send(&ev, &Rc::new(w), Shutdown::Both);
    s.poll(&ev).unwrap();
    assert_eq!(
        io_error(shutdown_recv(s)).raw_os_error(),
        Some(libc::ENOTSOCK)
    );
}

// ---------------------------------------------------------------------------
// read_pooled and BufPool

mod pooled {
    use super::*;
    use tevent::io::{BufPool, read_pooled_recv, read_pooled_send};

    /// A read that waits holds no buffer; once data is there it takes one,
    /// and the buffer goes back when its output is dropped.
    fn a_waiting_read_holds_no_buffer<F: AsFd + 'static>(reader: F, mut writer: File) {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(64);
        let reader = Rc::new(reader);
        let reads: Vec<_> = (0..3)
            .map(|_| read_pooled_send(&ev, &reader, &pool))
            .collect();
        ev.set_wait_timeout(Some(Duration::ZERO));
        for _ in 0..5 {
            ev.loop_once().unwrap();
        }
        assert!(reads.iter().all(|r| r.is_in_progress()), "nothing to read");
        assert_eq!(
            (pool.lent(), pool.cached()),
            (0, 0),
            "no buffer while waiting"
        );
        drop(reads);
        ev.set_wait_timeout(None);

        writer.write_all(b"pooled").unwrap();
        let r = read_pooled_send(&ev, &reader, &pool);
        r.poll(&ev).unwrap();
        let got = read_pooled_recv(r).unwrap();
        assert_eq!(&got[..], b"pooled");
        assert!(got.capacity() >= 64);
        assert_eq!((pool.lent(), pool.cached()), (1, 0));
        drop(got);
        assert_eq!(
            (pool.lent(), pool.cached()),
            (0, 1),
            "back for the next read"
        );

        // The next read reuses that buffer: nothing new is allocated.
        writer.write_all(b"again").unwrap();
        let r = read_pooled_send(&ev, &reader, &pool);
        r.poll(&ev).unwrap();
        let got = read_pooled_recv(r).unwrap();
        assert_eq!(&got[..], b"again");
        assert_eq!((pool.lent(), pool.cached()), (1, 0));
        drop(got);

        drop(writer);
        let r = read_pooled_send(&ev, &reader, &pool);
        r.poll(&ev).unwrap();
        assert!(read_pooled_recv(r).unwrap().is_empty(), "end of file");
        assert_eq!((pool.lent(), pool.cached()), (0, 1));
    }

    #[test]
    fn a_waiting_read_holds_no_buffer_tcp() {
        let (r, w) = super::tcp();
        a_waiting_read_holds_no_buffer(r, w);
    }

    #[test]
    fn a_waiting_read_holds_no_buffer_unix() {
        let (r, w) = super::unix();
        a_waiting_read_holds_no_buffer(r, w);
    }

    #[test]
    fn a_waiting_read_holds_no_buffer_pipe() {
        let (r, w) = super::pipe();
        a_waiting_read_holds_no_buffer(r, w);
    }

    #[test]
    fn a_read_takes_at_most_the_pool_size_and_leaves_the_rest() {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(4);
        let (a, mut b) = super::unix();
        let a = Rc::new(a);
        b.write_all(b"abcdefghij").unwrap();
        let mut got = Vec::new();
        while got.len() < 10 {
            let r = read_pooled_send(&ev, &a, &pool);
            r.poll(&ev).unwrap();
            let buf = read_pooled_recv(r).unwrap();
            assert!(!buf.is_empty() && buf.len() <= 4, "{buf:?}");
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"abcdefghij");
        assert_eq!(pool.cached(), 1, "one buffer served every read");
    }

    /// Two reads wait on one fd and one byte arrives: the first takes it;
    /// the second, woken by the same readiness, finds nothing, gives its
    /// buffer back and waits on (readiness is only a hint).
    #[test]
    fn a_read_that_finds_nothing_gives_its_buffer_back_and_waits() {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(16);
        let (a, mut b) = super::unix();
        let a = Rc::new(a);
        let first = read_pooled_send(&ev, &a, &pool);
        let second = read_pooled_send(&ev, &a, &pool);
        b.write_all(b"x").unwrap();
        first.poll(&ev).unwrap();
        // Serve what is left of the batch (the second reader's turn).
        ev.set_wait_timeout(Some(Duration::ZERO));
        for _ in 0..4 {
            ev.loop_once().unwrap();
        }
        assert!(second.is_in_progress());
        let got = read_pooled_recv(first).unwrap();
        assert_eq!(&got[..], b"x");
        assert_eq!(
            pool.lent(),
            1,
            "only the first read's output holds a buffer"
        );
        drop(got);
        ev.set_wait_timeout(None);
        b.write_all(b"y").unwrap();
        second.poll(&ev).unwrap();
        assert_eq!(&read_pooled_recv(second).unwrap()[..], b"y");
    }

    #[test]
    fn the_pool_keeps_at_most_keep_buffers() {
        let pool = BufPool::with_keep(8, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.take::<()>().unwrap()).collect();
        assert_eq!((pool.lent(), pool.cached()), (5, 0));
        drop(bufs);
        assert_eq!((pool.lent(), pool.cached()), (0, 2), "three were freed");
        let none = BufPool::with_keep(8, 0);
        drop(none.take::<()>().unwrap());
        assert_eq!(none.cached(), 0);
        assert_eq!(BufPool::new(0).size(), 1, "a size of 0 is taken as 1");
    }

    #[test]
    fn a_pooled_buffer_never_grows_and_into_vec_detaches_it() {
        let pool = BufPool::new(4);
        let mut buf = pool.take::<()>().unwrap();
        let room = buf.capacity();
        assert_eq!(buf.extend_from_slice(&vec![1; room + 3]), Err(3));
        assert!(buf.is_empty(), "nothing appended when it does not fit");
        buf.extend_from_slice(b"ab").unwrap();
        buf[1] = b'z';
        assert_eq!(&buf[..], b"az");
        buf.clear();
        assert!(buf.is_empty());
        buf.extend_from_slice(b"kept").unwrap();
        let v = buf.into_vec();
        assert_eq!(v, b"kept");
        assert_eq!(
            (pool.lent(), pool.cached()),
            (0, 0),
            "detached, not returned"
        );
    }

    /// The echo: read into a pooled buffer, write it back with write_all,
    /// which hands the same buffer back; dropping it returns it.
    #[test]
    fn write_all_takes_a_pooled_buffer_and_hands_it_back() {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(32);
        let (a, mut b) = super::unix();
        let a = Rc::new(a);
        b.write_all(b"echo me").unwrap();
        let r = read_pooled_send(&ev, &a, &pool);
        r.poll(&ev).unwrap();
        let data = read_pooled_recv(r).unwrap();
        let w = write_all_send(&ev, &a, data);
        w.poll(&ev).unwrap();
        let back = write_all_recv(w).unwrap();
        assert_eq!(&back[..], b"echo me");
        assert_eq!(pool.lent(), 1);
        drop(back);
        assert_eq!((pool.lent(), pool.cached()), (0, 1));
        let mut got = [0u8; 7];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"echo me");
    }

    #[test]
    fn a_pooled_read_refuses_a_blocking_pipe() {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(8);
        let (r, _w) = blocking_pipe();
        let req = read_pooled_send(&ev, &Rc::new(r), &pool);
        req.poll(&ev).unwrap();
        let e = io_error(read_pooled_recv(req));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(pool.lent(), 0);
    }

    /// Read after read on one connection: each request's fd watcher is
    /// parked when the request ends and taken over by the next one. The
    /// counts never show a parked watcher, and a parked watcher is never
    /// called (the fd is readable while none of them waits).
    #[test]
    fn one_shot_reads_in_turn_leave_no_watcher_behind() {
        let ev = Context::new().unwrap();
        let pool = BufPool::new(8);
        let (a, mut b) = super::unix();
        let a = Rc::new(a);
        for round in 0..5u8 {
            b.write_all(&[round; 3]).unwrap();
            let r = read_pooled_send(&ev, &a, &pool);
            assert_eq!(ev.event_counts().fd_watchers, 1);
            r.poll(&ev).unwrap();
            assert_eq!(&read_pooled_recv(r).unwrap()[..], &[round; 3]);
            assert_eq!(ev.event_counts().fd_watchers, 0, "round {round}");
            assert_eq!(ev.event_counts().active_fd_watchers, 0);
        }
        // Readable, with nobody waiting: no handler runs, and the loop has
        // nothing left to wait for.
        b.write_all(b"unread").unwrap();
        ev.set_wait_timeout(Some(Duration::ZERO));
        assert!(!ev.loop_once().unwrap());
        assert!(!ev.has_events());
        ev.loop_wait().unwrap();
    }
}
