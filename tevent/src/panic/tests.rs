//! Panics in every kind of user code the runtime calls without a syscall
//! (the fd and signal call sites are in `tests/panic.rs` and
//! `tests/signal.rs`). Each test panics at one call site, catches the panic
//! as a caller would, and checks that the panic reached the right public
//! call, that the context and every other event and request still work, and
//! that nothing leaked. They need no poller, so they run under Miri, which
//! checks the request core's `unsafe` on these paths.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use crate::trace::{EventKind, EventPoint};
use crate::{
    Context, Progress, Queue, Req, ReqError, ReqState, Request, Wakeup, wakeup_recv, wakeup_send,
};

fn ctx() -> Context {
    Context::with_manual_clock(true).expect("context")
}

/// Runs `f`, expecting it to panic with `msg`.
fn panics_with(msg: &str, f: impl FnOnce()) {
    let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
        panic!("expected a panic with {msg:?}");
    };
    let got = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert_eq!(got, msg);
}

/// Counts drops of the values it is attached to.
#[derive(Clone, Default)]
struct Drops(Rc<Cell<u32>>);

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone(), false)
    }
    /// A token that panics when dropped.
    fn bomb(&self) -> DropToken {
        DropToken(self.0.clone(), true)
    }
    fn get(&self) -> u32 {
        self.0.get()
    }
}

/// Counted when dropped; panics when dropped if armed.
struct DropToken(Rc<Cell<u32>>, bool);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        if self.1 && !std::thread::panicking() {
            panic!("drop");
        }
    }
}

/// A request whose behaviour is chosen per test.
struct Job {
    _token: DropToken,
    log: Rc<RefCell<Vec<ReqState>>>,
}

impl Request for Job {
    type Output = u32;
    type Error = u8;
}

fn job(drops: &Drops) -> Job {
    Job {
        _token: drops.token(),
        log: Rc::default(),
    }
}

/// A `Job` whose state panics when dropped.
fn bomb_job(drops: &Drops) -> Job {
    Job {
        _token: drops.bomb(),
        log: Rc::default(),
    }
}

/// Checks what every test ends with: no request, no event left, and the
/// context still runs requests and drops cleanly.
fn still_usable(ev: &Context) {
    assert_eq!(ev.event_counts().requests, 0, "{:?}", ev.event_counts());
    let ok = Req::start(ev, job(&Drops::default()), |_, _| Ok(Progress::Done(7)));
    ok.poll(ev).expect("poll");
    assert_eq!(ok.recv(), Ok(7));
    assert_eq!(ev.event_counts().total(), 0, "{:?}", ev.event_counts());
}

#[test]
fn a_panicking_first_step_caught_by_the_caller_leaves_the_context_usable() {
    // Issue 7's reproduction: this used to free the request inside
    // `Req::start` and write to it afterwards.
    let ev = ctx();
    let drops = Drops::default();
    panics_with("boom", || {
        drop(Req::start(&ev, job(&drops), |_, _| panic!("boom")));
    });
    assert_eq!(drops.get(), 1, "the state was dropped once");
    still_usable(&ev);
    drop(ev);
}

#[test]
fn a_panicking_later_step_finishes_the_request_as_panicked() {
    let ev = ctx();
    let drops = Drops::default();
    let req = Req::start(&ev, job(&drops), |_, ctl| {
        ctl.set_cleanup(|st, reached| st.log.borrow_mut().push(reached));
        let at = ctl.ev().now() + Duration::from_millis(5);
        ctl.wait(wakeup_send(ctl.ev(), at), |_, _, _: Req<Wakeup>| {
            panic!("later")
        })?;
        Ok(Progress::Pending)
    });
    panics_with("later", || req.poll(&ev).map_err(drop).unwrap_or(()));
    assert_eq!(req.state(), ReqState::Error);
    assert_eq!(drops.get(), 1);
    assert_eq!(req.recv(), Err(ReqError::Panicked));
    still_usable(&ev);
}

#[test]
fn a_parent_is_told_that_its_subrequest_panicked() {
    struct Parent;
    impl Request for Parent {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let drops = Drops::default();
    let child = Req::start(&ev, job(&drops), |_, ctl| {
        ctl.wait(
            wakeup_send(ctl.ev(), ctl.ev().now()),
            |_, _, _: Req<Wakeup>| panic!("child"),
        )?;
        Ok(Progress::Pending)
    });
    let parent = Req::start(&ev, Parent, move |_, ctl| {
        ctl.wait(child, |_, _, sub: Req<Job>| {
            assert_eq!(sub.recv(), Err(ReqError::Panicked));
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    panics_with("child", || drop(parent.poll(&ev)));
    // The program goes on: the parent hears of it from the loop.
    parent.poll(&ev).expect("poll");
    assert_eq!(parent.recv(), Ok(()));
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}

#[test]
fn a_panicking_cancel_hook_reaches_cancel_and_finishes_the_request() {
    let ev = ctx();
    let drops = Drops::default();
    let req = Req::start(&ev, job(&drops), |_, ctl| {
        ctl.set_cancel(|_, _| panic!("cancel"));
        Ok(Progress::Pending)
    });
    panics_with("cancel", || {
        req.cancel();
    });
    assert_eq!(req.recv(), Err(ReqError::Panicked));
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}

#[test]
fn a_panicking_cleanup_hook_keeps_the_result_and_drops_the_state() {
    let ev = ctx();
    let drops = Drops::default();
    let req = Req::start(&ev, job(&drops), |_, ctl| {
        ctl.set_cleanup(|_, _| panic!("cleanup"));
        let at = ctl.ev().now();
        ctl.wait(wakeup_send(ctl.ev(), at), |_, _, w: Req<Wakeup>| {
            assert!(wakeup_recv(w));
            Ok(Progress::Done(3))
        })?;
        Ok(Progress::Pending)
    });
    panics_with("cleanup", || drop(req.poll(&ev)));
    assert_eq!(
        drops.get(),
        1,
        "the state is dropped although its hook panicked"
    );
    assert_eq!(req.recv(), Ok(3));
    still_usable(&ev);
}

#[test]
fn a_state_that_panics_when_dropped_is_dropped_with_its_subtree() {
    let ev = ctx();
    let drops = Drops::default();
    let state = bomb_job(&drops);
    let d2 = drops.clone();
    let req = Req::start(&ev, state, move |_, ctl| {
        // A subrequest that is dropped with its parent.
        let sub = Req::start(ctl.ev(), job(&d2), |_, _| Ok(Progress::Pending));
        ctl.wait(sub, |_, _, _: Req<Job>| Ok(Progress::Done(0)))?;
        Ok(Progress::Pending)
    });
    assert_eq!(ev.event_counts().requests, 2);
    panics_with("drop", || drop(req));
    assert_eq!(drops.get(), 2, "parent and child states dropped");
    still_usable(&ev);
}

#[test]
fn a_state_that_panics_when_finishing_is_dropped_and_the_result_kept() {
    let ev = ctx();
    let drops = Drops::default();
    let state = bomb_job(&drops);
    panics_with("drop", || {
        let req = Req::start(&ev, state, |_, _| Ok(Progress::Done(5)));
        // Not reached: the panic leaves `start`, and `req` with it.
        drop(req);
    });
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}

#[test]
fn a_result_that_panics_when_dropped_unreceived() {
    struct Out;
    impl Request for Out {
        type Output = DropToken;
        type Error = u8;
    }
    let ev = ctx();
    let drops = Drops::default();
    let token = drops.bomb();
    let req = Req::start(&ev, Out, move |_, _| Ok(Progress::Done(token)));
    panics_with("drop", || drop(req));
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}

#[test]
fn a_waiter_closure_that_panics_when_dropped_with_its_parent() {
    struct Parent;
    impl Request for Parent {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let drops = Drops::default();
    let token = drops.bomb();
    let d2 = drops.clone();
    let parent = Req::start(&ev, Parent, move |_, ctl| {
        let sub = Req::start(ctl.ev(), job(&d2), |_, _| Ok(Progress::Pending));
        ctl.wait(sub, move |_, _, _: Req<Job>| {
            drop(token);
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    panics_with("drop", || drop(parent));
    assert_eq!(
        drops.get(),
        2,
        "the child's state and the closure's capture"
    );
    still_usable(&ev);
}

#[test]
fn the_context_drop_survives_states_that_panic_when_dropped() {
    let ev = ctx();
    let drops = Drops::default();
    let mut reqs = Vec::new();
    for i in 0..4 {
        let state = if i % 2 == 0 {
            bomb_job(&drops)
        } else {
            job(&drops)
        };
        reqs.push(Req::start(&ev, state, |_, _| Ok(Progress::Pending)));
    }
    let timer_drops = Drops::default();
    let token = timer_drops.token();
    let _timer = ev.add_timer_after(Duration::from_secs(1), move |_, _| {
        let _ = &token;
    });
    panics_with("drop", || drop(ev));
    assert_eq!(
        drops.get(),
        4,
        "every state dropped, the panicking ones too"
    );
    assert_eq!(timer_drops.get(), 1, "the events went too");
    for r in reqs {
        assert_eq!(r.recv(), Err(ReqError::ContextGone));
    }
}

#[test]
fn a_panicking_callback_reaches_the_loop_call() {
    let ev = ctx();
    let drops = Drops::default();
    let req = Req::start(&ev, job(&drops), |_, _| Ok(Progress::Done(1)));
    req.set_callback(|_, r| {
        assert_eq!(r.recv(), Ok(1));
        panic!("callback")
    });
    panics_with("callback", || drop(ev.loop_once()));
    assert!(!ev.has_events());
    still_usable(&ev);
}

#[test]
fn a_panicking_queue_trigger_finishes_its_request_and_the_queue_moves_on() {
    let ev = ctx();
    let q = Queue::new(&ev, "q");
    let drops = Drops::default();
    let a = Req::start(&ev, job(&drops), |_, _| Ok(Progress::Pending));
    let b = Req::start(&ev, job(&drops), |_, _| Ok(Progress::Pending));
    q.add(&a, |_, _| panic!("trigger")).expect("add");
    q.add(&b, |_, _| Ok(Progress::Done(2))).expect("add");
    panics_with("trigger", || drop(ev.loop_once()));
    assert_eq!(a.recv(), Err(ReqError::Panicked));
    b.poll(&ev).expect("poll");
    assert_eq!(b.recv(), Ok(2));
    assert!(q.is_empty());
    drop(q);
    still_usable(&ev);
}

#[test]
fn a_panicking_timer_handler_keeps_its_timer() {
    let ev = ctx();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let t = ev.add_timer_after(Duration::from_millis(1), move |_, _| {
        r.set(r.get() + 1);
        if r.get() == 1 {
            panic!("timer");
        }
    });
    panics_with("timer", || drop(ev.loop_once()));
    assert_eq!(ev.event_counts().timers, 1);
    t.restart_after(Duration::from_millis(1)).expect("restart");
    ev.loop_wait().expect("loop");
    assert_eq!(runs.get(), 2, "the handler ran again");
    drop(t);
    still_usable(&ev);
}

#[test]
fn a_panicking_immediate_handler_keeps_its_event() {
    let ev = ctx();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let im = ev.add_immediate(move |_, _| {
        r.set(r.get() + 1);
        if r.get() == 1 {
            panic!("immediate");
        }
    });
    im.schedule().expect("schedule");
    panics_with("immediate", || drop(ev.loop_once()));
    im.schedule().expect("schedule");
    ev.loop_wait().expect("loop");
    assert_eq!(runs.get(), 2);
    drop(im);
    still_usable(&ev);
}

#[test]
fn a_panicking_posted_or_remote_closure_leaves_the_others_queued() {
    let ev = ctx();
    let ran = Rc::new(Cell::new(0));
    ev.post(|_| panic!("posted"));
    let r = ran.clone();
    ev.post(move |_| r.set(r.get() + 1));
    panics_with("posted", || drop(ev.loop_once()));
    ev.loop_wait().expect("loop");
    assert_eq!(ran.get(), 1);

    let remote = ev.remote();
    remote.send(|_| panic!("remote")).expect("send");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    remote
        .send(move |_| f.store(true, std::sync::atomic::Ordering::SeqCst))
        .expect("send");
    panics_with("remote", || drop(ev.loop_wait()));
    ev.loop_wait().expect("loop");
    assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    still_usable(&ev);
}

#[test]
fn a_panicking_event_trace_hook_in_request_bookkeeping() {
    // The hook hears of a request's end-time timer while the request starts
    // and while it finishes: both in the middle of the request core's work.
    let ev = ctx();
    let panic_on = Rc::new(Cell::new(EventPoint::Attach));
    let p = panic_on.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| {
        if t.kind == EventKind::Timer && t.point == p.get() {
            panic!("hook");
        }
    })));
    // Attach, while the wake-up's first step arms its end time: the panic
    // leaves `wakeup_send`, and the request with it.
    panics_with("hook", || drop(wakeup_send(&ev, ev.now())));
    assert_eq!(ev.event_counts().total(), 0, "{:?}", ev.event_counts());
    // Detach, while the request finishes: the panic leaves the loop call,
    // the request finished all the same.
    panic_on.set(EventPoint::Detach);
    let w = wakeup_send(&ev, ev.now());
    panics_with("hook", || drop(w.poll(&ev)));
    assert_eq!(w.state(), ReqState::TimedOut);
    assert!(wakeup_recv(w));
    ev.set_event_trace_hook(None);
    still_usable(&ev);
}

#[test]
fn a_panicking_loop_trace_hook_reaches_the_loop_call() {
    let ev = ctx();
    let once = Cell::new(false);
    ev.set_loop_trace_hook(Some(Box::new(move |p| {
        if p == crate::trace::LoopPoint::AfterLoopOnce && !once.replace(true) {
            panic!("loop hook");
        }
    })));
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    ev.post(move |_| r.set(r.get() + 1));
    panics_with("loop hook", || drop(ev.loop_once()));
    assert_eq!(ran.get(), 1, "the step ran before the hook panicked");
    assert!(!ev.in_handler());
    ev.post(|_| {});
    ev.loop_once().expect("the next step runs");
    ev.set_loop_trace_hook(None);
    still_usable(&ev);
}

#[test]
fn a_handler_closure_that_panics_when_its_handle_drops() {
    let ev = ctx();
    let drops = Drops::default();
    let token = drops.bomb();
    let t = ev.add_timer_after(Duration::from_secs(1), move |_, _| {
        let _ = &token;
    });
    panics_with("drop", || drop(t));
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}

#[test]
fn a_panic_inside_a_step_that_drops_a_panicking_request() {
    // User code inside a step drops a request whose state panics: the panic
    // passes through the step (which ends `Panicked`) like through any code.
    struct Holder {
        inner: Option<Req<Job>>,
    }
    impl Request for Holder {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let drops = Drops::default();
    let state = bomb_job(&drops);
    let inner = Req::start(&ev, state, |_, _| Ok(Progress::Pending));
    let outer = Req::start(&ev, Holder { inner: Some(inner) }, |_, ctl| {
        ctl.wait(
            wakeup_send(ctl.ev(), ctl.ev().now()),
            |st, _, _: Req<Wakeup>| {
                drop(st.inner.take());
                Ok(Progress::Done(()))
            },
        )?;
        Ok(Progress::Pending)
    });
    panics_with("drop", || drop(outer.poll(&ev)));
    assert_eq!(outer.recv(), Err(ReqError::Panicked));
    assert_eq!(drops.get(), 1);
    still_usable(&ev);
}
