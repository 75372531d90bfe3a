//! Adding and removing every kind of event from inside every kind of handler,
//! including a handler removing its own event, and removal within one
//! dispatch batch.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use tests::{send, socketpair};
use tevent::{Context, FdFlags};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fd,
    Timer,
    Immediate,
    Signal,
}

const HOSTS: [Kind; 3] = [Kind::Fd, Kind::Timer, Kind::Immediate];
const TARGETS: [Kind; 4] = [Kind::Fd, Kind::Timer, Kind::Immediate, Kind::Signal];

type Slot = Rc<RefCell<Option<Box<dyn Any>>>>;

/// An event of `kind` whose handler runs `action` once, at the next step it
/// can. The handle goes into `slot` (so the action may drop it).
fn host(ev: &Context, kind: Kind, slot: &Slot, mut action: impl FnMut(&Context) + 'static) {
    let handle: Box<dyn Any> = match kind {
        Kind::Fd => {
            let (a, b) = socketpair();
            let keep_peer = RefCell::new(Some(b));
            Box::new(
                ev.add_fd(a.into(), FdFlags::WRITE, move |ev, me, _| {
                    me.set_flags(FdFlags::empty());
                    keep_peer.borrow_mut().take();
                    action(ev)
                })
                .unwrap(),
            )
        }
        Kind::Timer => Box::new(ev.add_timer(ev.now(), move |ev, _| action(ev))),
        Kind::Immediate => {
            let im = ev.add_immediate(move |ev, _| action(ev));
            im.schedule().unwrap();
            Box::new(im)
        }
        Kind::Signal => unreachable!("signal hosts are covered in tests/signal.rs"),
    };
    *slot.borrow_mut() = Some(handle);
}

/// A target event that is pending but cannot fire until `arm` is called.
struct Target {
    /// Held only to keep the event alive; dropping it removes the event.
    _handle: Box<dyn Any>,
    peer: Option<UnixStream>,
}

fn target(ev: &Context, kind: Kind, fired: &Rc<Cell<u32>>, ready_now: bool) -> Target {
    let f = fired.clone();
    let bump = move || f.set(f.get() + 1);
    match kind {
        Kind::Fd => {
            let (a, b) = socketpair();
            if ready_now {
                send(&b, b"x");
            }
            let handle = ev
                .add_fd(a.into(), FdFlags::READ, move |_, me, _| {
                    me.set_flags(FdFlags::empty());
                    bump()
                })
                .unwrap();
            Target {
                _handle: Box::new(handle),
                peer: Some(b),
            }
        }
        Kind::Timer => {
            let at = if ready_now {
                ev.now()
            } else {
                ev.now() + Duration::from_secs(3600)
            };
            Target {
                _handle: Box::new(ev.add_timer(at, move |_, _| bump())),
                peer: None,
            }
        }
        Kind::Immediate => {
            let im = ev.add_immediate(move |_, _| bump());
            if ready_now {
                im.schedule().unwrap();
            }
            Target {
                _handle: Box::new(im),
                peer: None,
            }
        }
        Kind::Signal => Target {
            // Never raised here: this binary is multi-threaded.
            _handle: Box::new(
                ev.add_signal(libc::SIGWINCH, move |_, _, _| bump())
                    .unwrap(),
            ),
            peer: None,
        },
    }
}

fn run_until_idle(ev: &Context) {
    ev.set_wait_timeout(Some(Duration::ZERO));
    for _ in 0..100 {
        ev.loop_once().unwrap();
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn every_kind_can_be_added_from_every_handler() {
    for h in HOSTS {
        for t in TARGETS {
            let ev = Context::with_manual_clock(false).unwrap();
            let fired = Rc::new(Cell::new(0));
            let added: Rc<RefCell<Option<Target>>> = Rc::default();
            let slot: Slot = Rc::default();
            let (f, a) = (fired.clone(), added.clone());
            host(&ev, h, &slot, move |ev| {
                a.borrow_mut()
                    .get_or_insert_with(|| target(ev, t, &f, true));
            });
            run_until_idle(&ev);
            assert!(added.borrow().is_some(), "{h:?} handler ran");
            let expect = if matches!(t, Kind::Signal) { 0 } else { 1 };
            assert_eq!(
                fired.get(),
                expect,
                "{t:?} added from a {h:?} handler fired"
            );
            drop(added.borrow_mut().take());
            drop(slot.borrow_mut().take());
            assert_eq!(ev.event_counts().total(), 0, "{h:?}/{t:?}");
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn every_kind_can_be_removed_from_every_handler() {
    for h in HOSTS {
        for t in TARGETS {
            let ev = Context::with_manual_clock(false).unwrap();
            let fired = Rc::new(Cell::new(0));
            let tgt = Rc::new(RefCell::new(Some(target(&ev, t, &fired, false))));
            let peer = tgt.borrow_mut().as_mut().unwrap().peer.take();
            let slot: Slot = Rc::default();
            let tg = tgt.clone();
            host(&ev, h, &slot, move |_| drop(tg.borrow_mut().take()));
            run_until_idle(&ev);
            assert!(tgt.borrow().is_none(), "{h:?} handler removed the {t:?}");
            // Now make the removed target's condition true: nothing may fire.
            if let Some(p) = &peer {
                // The removed watcher owned its fd, so the peer may see EPIPE.
                let _ = std::io::Write::write(&mut &*p, b"x");
            }
            ev.advance(Duration::from_secs(7200));
            run_until_idle(&ev);
            assert_eq!(
                fired.get(),
                0,
                "{t:?} removed from a {h:?} handler never fired"
            );
            drop(slot.borrow_mut().take());
            assert_eq!(ev.event_counts().total(), 0, "{h:?}/{t:?}");
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn every_handler_can_remove_its_own_event() {
    for h in HOSTS {
        let ev = Context::with_manual_clock(false).unwrap();
        let runs = Rc::new(Cell::new(0));
        let slot: Slot = Rc::default();
        let (r, s) = (runs.clone(), slot.clone());
        host(&ev, h, &slot, move |_| {
            r.set(r.get() + 1);
            drop(s.borrow_mut().take()); // drops this very handler's event
        });
        run_until_idle(&ev);
        assert_eq!(runs.get(), 1, "{h:?}");
        assert!(slot.borrow().is_none());
        assert_eq!(ev.event_counts().total(), 0, "{h:?}");
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn removal_within_one_dispatch_batch() {
    // Three watchers on three fds, all ready in the same wait. Whichever runs
    // first drops all three (itself included): the other two were already in
    // the batch and must never be called.
    let ev = Context::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let all: Rc<RefCell<Vec<tevent::FdEvent<'static>>>> = Rc::default();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (a, b) = socketpair();
        send(&b, b"x");
        peers.push(b);
        let (c, all2) = (calls.clone(), all.clone());
        let w = ev
            .add_fd(a.into(), FdFlags::READ, move |_, _, _| {
                c.set(c.get() + 1);
                all2.borrow_mut().clear();
            })
            .unwrap();
        all.borrow_mut().push(w);
    }
    ev.set_wait_timeout(Some(Duration::ZERO));
    for _ in 0..10 {
        ev.loop_once().unwrap();
    }
    assert_eq!(
        calls.get(),
        1,
        "watchers dropped in the same batch were never called"
    );
    assert_eq!(ev.event_counts().fd_watchers, 0);
}

#[test]
fn timers_due_together_and_one_removes_the_next() {
    let ev = Context::with_manual_clock(true).unwrap();
    let at = ev.now() + Duration::from_millis(1);
    let second_called = Rc::new(Cell::new(false));
    let second: Rc<RefCell<Option<tevent::Timer>>> = Rc::default();
    let s = second.clone();
    let _first = ev.add_timer(at, move |_, _| drop(s.borrow_mut().take()));
    let c = second_called.clone();
    *second.borrow_mut() = Some(ev.add_timer(at, move |_, _| c.set(true)));
    ev.loop_wait().unwrap();
    assert!(!second_called.get());
}

#[test]
fn dropping_the_context_from_inside_a_handler_of_a_clone_is_safe() {
    // The running loop holds the context alive; dropping every other clone
    // inside a handler must not pull the loop out from under it.
    let ev = Context::new().unwrap();
    let holder: Rc<RefCell<Option<Context>>> = Rc::new(RefCell::new(Some(ev.clone())));
    let h = holder.clone();
    let im = ev.add_immediate(move |_, _| drop(h.borrow_mut().take()));
    im.schedule().unwrap();
    ev.loop_once().unwrap();
    assert!(holder.borrow().is_none());
    drop(im);
}
