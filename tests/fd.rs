//! Fd watchers: flags, level triggering, round-robin, hang-up delivery,
//! ownership of the fd, and errors for fds that cannot be watched.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;

use tests::{Log, is_open, peer_closed, send, socketpair, socketpair_fds};
use tevent::{Context, Error, FdFlags};

#[test]
fn a_read_write_watcher_gets_exactly_what_is_ready() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let got = Log::new();
    let g = got.clone();
    let a = Rc::new(a);
    let _w = ev
        .add_fd_shared(a.clone(), FdFlags::READ | FdFlags::WRITE, move |_, _, f| {
            g.push(f)
        })
        .unwrap();
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.take(), [FdFlags::WRITE], "nothing to read yet");
    send(&b, b"hello");
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.take(), [FdFlags::READ | FdFlags::WRITE]);
    let mut buf = [0u8; 16];
    assert_eq!((&*a).read(&mut buf).unwrap(), 5);
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.take(), [FdFlags::WRITE], "drained: only writable again");
}

#[test]
fn level_triggered_until_consumed() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    send(&b, b"x");
    let n = Log::new();
    let l = n.clone();
    let _w = ev
        .add_fd(a.into(), FdFlags::READ, move |_, _, _| l.push(()))
        .unwrap();
    for _ in 0..3 {
        assert!(ev.loop_once().unwrap());
    }
    assert_eq!(n.len(), 3, "unread data keeps firing (level-triggered)");
}

#[test]
fn nine_watchers_on_one_fd_are_served_round_robin() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    send(&b, b"x");
    let a = Rc::new(a);
    let served = Log::new();
    let watchers: Vec<_> = (0..9)
        .map(|i| {
            let s = served.clone();
            ev.add_fd_shared(a.clone(), FdFlags::READ, move |_, _, _| s.push(i))
                .unwrap()
        })
        .collect();
    for _ in 0..9 * 5 {
        assert!(ev.loop_once().unwrap());
    }
    let order = served.get();
    for round in order.chunks(9) {
        let mut r = round.to_vec();
        r.sort();
        assert_eq!(
            r,
            (0..9).collect::<Vec<_>>(),
            "each round serves every watcher once: {order:?}"
        );
    }
    // The rotation moves: rounds do not all start with the same watcher.
    let starts: std::collections::HashSet<_> = order.chunks(9).map(|r| r[0]).collect();
    assert!(starts.len() > 1, "{order:?}");
    drop(watchers);
}

#[test]
fn watchers_with_different_flags_on_one_fd() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let got = Log::new();
    let (g1, g2) = (got.clone(), got.clone());
    let _r = ev
        .add_fd_shared(a.clone(), FdFlags::READ, move |_, _, f| g1.push(("r", f)))
        .unwrap();
    let _w = ev
        .add_fd_shared(a.clone(), FdFlags::WRITE, move |_, _, f| g2.push(("w", f)))
        .unwrap();
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.take(), [("w", FdFlags::WRITE)]);
    send(&b, b"x");
    assert!(ev.loop_once().unwrap());
    assert!(ev.loop_once().unwrap());
    let mut seen = got.take();
    seen.sort_by_key(|(n, _)| *n);
    assert_eq!(seen, [("r", FdFlags::READ), ("w", FdFlags::WRITE)]);
}

#[test]
fn set_flags_inside_the_handler_and_empty_flags_pause() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair_fds();
    let n = Log::new();
    let l = n.clone();
    let w = ev
        .add_fd(a, FdFlags::WRITE, move |_, me, f| {
            l.push(f);
            me.set_flags(FdFlags::empty());
        })
        .unwrap();
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    assert!(ev.loop_once().unwrap());
    assert!(!ev.loop_once().unwrap(), "paused: never fires");
    assert_eq!(n.len(), 1);
    assert_eq!(w.flags(), FdFlags::empty());
    w.set_flags(FdFlags::WRITE).unwrap();
    assert!(ev.loop_once().unwrap());
    assert_eq!(n.len(), 2);
}

#[test]
fn hang_up_reaches_a_watcher_that_waits_only_for_write() {
    // C tevent silently clears such a watcher's WRITE interest and never calls
    // it, so a request waiting to write hangs forever. Here it is woken and the
    // write reports the error.
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    // Fill the socket so it is not writable, then hang up the peer.
    let chunk = [0u8; 65536];
    let a = Rc::new(a);
    while std::io::Write::write(&mut &*a, &chunk).is_ok() {}
    let got = Log::new();
    let g = got.clone();
    let a2 = a.clone();
    let _w = ev
        .add_fd_shared(a.clone(), FdFlags::WRITE, move |_, me, f| {
            let err = std::io::Write::write(&mut &*a2, b"x").unwrap_err();
            g.push((f, err.kind()));
            me.set_flags(FdFlags::empty());
        })
        .unwrap();
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    assert!(!ev.loop_once().unwrap(), "full socket: not writable yet");
    drop(b);
    ev.set_wait_timeout(Some(std::time::Duration::from_secs(10)));
    assert!(ev.loop_once().unwrap());
    assert_eq!(
        got.get(),
        [(FdFlags::WRITE, std::io::ErrorKind::BrokenPipe)]
    );
}

#[test]
fn error_flag_reports_hang_up() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair_fds();
    let got = Log::new();
    let g = got.clone();
    let _w = ev
        .add_fd(a, FdFlags::ERROR, move |_, me, f| {
            g.push(f);
            me.set_flags(FdFlags::empty());
        })
        .unwrap();
    drop(b);
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.get(), [FdFlags::ERROR]);
}

#[test]
fn an_owned_fd_is_closed_after_its_last_watcher_goes() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let raw = a.as_raw_fd();
    let w = ev.add_fd(a.into(), FdFlags::READ, |_, _, _| {}).unwrap();
    assert_eq!(w.fd(), raw);
    assert!(!peer_closed(&b));
    drop(w);
    assert!(peer_closed(&b), "closed after its last watcher went");
    assert_eq!(ev.event_counts().registered_fds, 0);
}

#[test]
fn a_borrowed_fd_stays_open_and_leaves_the_poller() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair_fds();
    {
        let w = ev
            .add_fd_borrowed(a.as_fd(), FdFlags::READ, |_, _, _| {})
            .unwrap();
        assert_eq!(ev.event_counts().registered_fds, 1);
        drop(w);
    }
    assert_eq!(ev.event_counts().registered_fds, 0);
    assert!(is_open(a.as_raw_fd()));
    // It can be watched again.
    let _w = ev
        .add_fd_borrowed(a.as_fd(), FdFlags::WRITE, |_, _, _| {})
        .unwrap();
    assert!(ev.loop_once().unwrap());
}

#[test]
fn a_shared_fd_is_released_at_the_next_wait() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair();
    let a = Rc::new(a);
    let w = ev
        .add_fd_shared(a.clone(), FdFlags::READ, |_, _, _| {})
        .unwrap();
    drop(w);
    assert_eq!(Rc::strong_count(&a), 2, "kept until the next wait");
    // A new watcher in between reuses the registration.
    let w = ev
        .add_fd_shared(a.clone(), FdFlags::READ, |_, _, _| {})
        .unwrap();
    drop(w);
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    ev.loop_once().unwrap();
    assert_eq!(Rc::strong_count(&a), 1, "released once the loop synced");
    assert_eq!(ev.event_counts().registered_fds, 0);
}

/// A watcher dropped on a shared fd is parked, and the next watcher on the
/// fd takes its place under a new identity: a ready entry of the dropped
/// watcher still in the loop's batch never runs the new one, and the
/// counts never show the parked one.
#[test]
fn a_watcher_that_takes_a_dropped_ones_place_never_gets_its_readiness() {
    use std::cell::{Cell, RefCell};
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    a.set_nonblocking(true).unwrap();
    let a = Rc::new(a);
    let second: Rc<RefCell<Option<tevent::FdEvent<'static>>>> = Rc::default();
    let third: Rc<RefCell<Option<tevent::FdEvent<'static>>>> = Rc::default();
    let third_ran = Rc::new(Cell::new(0));
    let (s2, s3, ran, fd) = (second.clone(), third.clone(), third_ran.clone(), a.clone());
    // The first watcher's handler drops the second watcher (whose entry is
    // in the same batch, after it), adds a third on the fd, and drains it.
    let _first = ev
        .add_fd_shared(a.clone(), FdFlags::READ, move |ev, _, _| {
            if s2.borrow_mut().take().is_none() {
                return;
            }
            let ran = ran.clone();
            let w = ev
                .add_fd_shared(fd.clone(), FdFlags::READ, move |_, _, _| {
                    ran.set(ran.get() + 1)
                })
                .unwrap();
            *s3.borrow_mut() = Some(w);
            let mut buf = [0u8; 16];
            while (&*fd).read(&mut buf).is_ok_and(|n| n > 0) {}
        })
        .unwrap();
    *second.borrow_mut() = Some(
        ev.add_fd_shared(a.clone(), FdFlags::READ, |_, _, _| {
            panic!("dropped before its turn")
        })
        .unwrap(),
    );
    assert_eq!(ev.event_counts().fd_watchers, 2);
    send(&b, b"ready");
    assert!(ev.loop_once().unwrap(), "the first watcher ran");
    assert!(third.borrow().is_some());
    assert_eq!(
        ev.event_counts().fd_watchers,
        2,
        "first and third; none parked"
    );
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    for _ in 0..4 {
        ev.loop_once().unwrap();
    }
    assert_eq!(
        third_ran.get(),
        0,
        "the dropped watcher's readiness is not the third's"
    );
    send(&b, b"again");
    ev.set_wait_timeout(None);
    while third_ran.get() == 0 {
        ev.loop_once().unwrap();
    }
}

#[test]
fn fds_that_cannot_be_watched_are_errors_at_registration() {
    let ev = Context::new().unwrap();
    // A regular file: epoll refuses it.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let err = ev
        .add_fd(OwnedFd::from(file), FdFlags::READ, |_, _, _| {})
        .unwrap_err();
    assert!(matches!(err, Error::BadFd { .. }), "{err}");
    // A closed descriptor (borrowed by number after closing it).
    let (a, _b) = socketpair_fds();
    let raw = a.as_raw_fd();
    drop(a);
    // SAFETY: deliberately a dangling number; registration must refuse it.
    let dangling = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    for flags in [FdFlags::READ, FdFlags::empty()] {
        let err = ev
            .add_fd_borrowed(dangling, flags, |_, _, _| {})
            .unwrap_err();
        match err {
            Error::BadFd { fd, .. } => assert_eq!(fd, raw),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn flags_formatting_and_algebra() {
    let rw = FdFlags::READ | FdFlags::WRITE;
    assert!(rw.contains(FdFlags::READ) && !rw.contains(FdFlags::ERROR));
    assert_eq!(rw - FdFlags::READ, FdFlags::WRITE);
    assert_eq!(rw.bits(), 3);
    assert_eq!(format!("{rw:?}"), "FdFlags(READ | WRITE)");
    assert_eq!(format!("{:?}", FdFlags::empty()), "FdFlags(empty)");
}

/// `mem::forget` ends a borrow without dropping the watcher: the fd can then
/// close under it and its number go to another file. A watcher of the new
/// file on that number must still be called (the table notices that its
/// old entry is stale instead of sharing the old registration, which the
/// kernel dropped with the old file).
#[test]
fn a_watcher_on_a_reused_fd_number_fires_after_a_forgotten_watcher_on_the_old_file() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    let (a, _b) = socketpair_fds();
    let mut a = a;
    let forgotten = ev
        .add_fd_borrowed(a.as_fd(), FdFlags::READ, |_, _, _| {
            unreachable!("the old file never becomes readable")
        })
        .unwrap();
    std::mem::forget(forgotten);
    // The number of `a` now names another file (atomically: no other test
    // thread can take the number in between); the old one is closed.
    let (c, d) = socketpair_fds();
    rustix::io::dup2(&c, &mut a).unwrap();
    drop(c);
    let fired = Rc::new(std::cell::Cell::new(0));
    let f = fired.clone();
    let _w = ev
        .add_fd_borrowed(a.as_fd(), FdFlags::READ, move |_, _, _| f.set(f.get() + 1))
        .unwrap();
    send(&std::os::unix::net::UnixStream::from(d), b"x");
    assert!(ev.loop_once().unwrap(), "the new file is readable");
    assert_eq!(fired.get(), 1);
    // The forgotten watcher keeps nothing busy: with the new one paused,
    // the loop has no fd event left.
    drop(_w);
    assert!(!ev.has_events(), "{:?}", ev.event_counts());
}
