//! The ready-made I/O requests: read, write, write_all, accept, connect.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use tests::socketpair;
use tevent::io::{accept_send, connect_send, read_send, write_all_send, write_send};
use tevent::{Context, ReqError, ReqState};

#[test]
fn read_waits_for_data_and_reports_end_of_file() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let r = read_send(&ev, &a, vec![0; 16]);
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev.loop_once().unwrap();
    assert!(r.is_in_progress(), "no data yet");
    (&b).write_all(b"hello").unwrap();
    ev.set_wait_timeout(None);
    r.poll(&ev).unwrap();
    assert_eq!(r.recv().unwrap(), b"hello");
    drop(b);
    let eof = read_send(&ev, &a, vec![0; 16]);
    eof.poll(&ev).unwrap();
    assert_eq!(eof.recv().unwrap(), b"", "end of file is an empty read");
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn a_stale_readiness_is_harmless() {
    // Two readers wait on one socket; one byte arrives. One reader gets it,
    // the other sees WouldBlock and keeps waiting instead of failing.
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let r1 = read_send(&ev, &a, vec![0; 1]);
    let r2 = read_send(&ev, &a, vec![0; 1]);
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
    assert_eq!(done.recv().unwrap(), b"x");
    (&b).write_all(b"y").unwrap();
    ev.set_wait_timeout(None);
    waiting.poll(&ev).unwrap();
    assert_eq!(waiting.recv().unwrap(), b"y");
}

#[test]
fn write_all_pushes_a_large_buffer_through_a_full_socket() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let w = write_all_send(&ev, &a, data.clone());
    assert!(w.is_in_progress(), "4 MiB do not fit in the socket buffer");
    // Drain the other end from the loop as it becomes readable.
    let received = Rc::new(std::cell::RefCell::new(Vec::new()));
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
    let back = w.recv().unwrap();
    assert_eq!(back.len(), data.len(), "the buffer is handed back");
    ev.loop_until(|| received.borrow().len() == data.len())
        .unwrap();
    assert!(*received.borrow() == data, "every byte arrived, in order");
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
    match w.recv() {
        Err(ReqError::User(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn single_write_and_empty_write() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let w = write_send(&ev, &a, b"abc".to_vec());
    w.poll(&ev).unwrap();
    assert_eq!(w.recv().unwrap(), 3);
    let mut got = [0u8; 3];
    (&b).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    let empty = write_send(&ev, &a, Vec::new());
    assert_eq!(empty.recv().unwrap(), 0);
}

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
    let server = std::net::TcpStream::from(acc.recv().unwrap());
    let mut client = con.recv().unwrap();
    client.set_nonblocking(false).unwrap();
    client.write_all(b"ping").unwrap();
    let server = Rc::new(server);
    let r = read_send(&ev, &server, vec![0; 4]);
    r.poll(&ev).unwrap();
    assert_eq!(r.recv().unwrap(), b"ping");
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
    match con.recv() {
        Err(ReqError::User(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected ECONNREFUSED, got {other:?}"),
    }
}

#[test]
fn dropping_an_io_request_in_flight_removes_its_watcher() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair();
    let a = Rc::new(a);
    let r = read_send(&ev, &a, vec![0; 8]);
    assert_eq!(ev.event_counts().fd_watchers, 1);
    drop(r);
    assert_eq!(ev.event_counts().total(), 0);
}
