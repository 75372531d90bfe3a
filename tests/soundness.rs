//! Regression tests for the request core's promises under re-entrancy and
//! misuse from safe code: each test is one way they were broken, named
//! after what it broke (issue "Soundness of the request core"). The
//! random programs of `tests/reentrancy.rs` look for more of each kind;
//! these pin the known ones. None needs an fd, so all of them run under
//! Miri too (where the deep ones use a smaller depth).

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use tevent::{
    Context, Ctl, Error, Progress, Queue, Req, ReqError, ReqState, Request, StepResult, Wakeup,
    wakeup_recv, wakeup_send,
};

/// Depth of the deep structures: a million natively, less under Miri
/// (which checks memory, not stack depth, and is slow).
const DEEP: usize = if cfg!(miri) { 300 } else { 1_000_000 };

/// Runs `f` on a thread with a small stack (256 KiB): anything that walks
/// a deep structure recursively overflows it.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic, no overflow");
}

/// A request that waits for whatever it is given, or for nothing.
struct Holder {
    drops: Rc<Cell<u32>>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

impl Request for Holder {
    type Output = u32;
    type Error = Infallible;
}

fn pending_send(ev: &Context, drops: &Rc<Cell<u32>>) -> Req<Holder> {
    Req::start(
        ev,
        Holder {
            drops: drops.clone(),
        },
        |_, _| Ok(Progress::Pending),
    )
}

// ---------------------------------------------------------------------------
// Use after free through re-entrancy.

#[test]
fn a_cleanup_hook_that_runs_the_loop_while_its_request_is_dropped_is_refused() {
    thread_local! {
        static SEEN: RefCell<Option<Result<bool, Error>>> = const { RefCell::new(None) };
        static EV: RefCell<Option<Context>> = const { RefCell::new(None) };
    }
    fn cleanup(_: &mut Holder, _: ReqState) {
        let ev = EV.with(|e| e.borrow().clone()).expect("set");
        SEEN.with(|s| *s.borrow_mut() = Some(ev.loop_once()));
    }
    let ev = Context::with_manual_clock(true).unwrap();
    EV.with(|e| *e.borrow_mut() = Some(ev.clone()));
    let drops = Rc::new(Cell::new(0));
    let req = Req::start(
        &ev,
        Holder {
            drops: drops.clone(),
        },
        |_, ctl| {
            ctl.set_cleanup(cleanup);
            Ok(Progress::Pending)
        },
    );
    drop(req);
    let seen = SEEN.with(|s| s.borrow_mut().take());
    assert!(matches!(seen, Some(Err(Error::Nested))), "{seen:?}");
    assert_eq!(drops.get(), 1);
    EV.with(|e| e.borrow_mut().take());
}

/// The parent a child's step cancels and receives: profiled, so the
/// child's end records into it.
struct Parent;

impl Request for Parent {
    type Output = ();
    type Error = Infallible;
}

/// What the parent's `recv` gave, seen from the child.
type Seen = Rc<RefCell<Option<Result<(), ReqError<Infallible>>>>>;

struct Child {
    parent: Rc<RefCell<Option<Req<Parent>>>>,
    seen: Seen,
}

impl Request for Child {
    type Output = ();
    type Error = Infallible;
}

#[test]
fn a_child_step_that_cancels_and_receives_its_profiled_parent_frees_nothing_in_use() {
    let ev = Context::with_manual_clock(true).unwrap();
    let slot: Rc<RefCell<Option<Req<Parent>>>> = Rc::default();
    let seen = Rc::new(RefCell::new(None));
    let child = {
        let (slot, seen) = (slot.clone(), seen.clone());
        Req::start(&ev, Child { parent: slot, seen }, |_, ctl| {
            let nap = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1));
            ctl.wait(nap, |st: &mut Child, _: &mut Ctl<'_, Child>, nap| {
                assert!(wakeup_recv(nap));
                // The parent this child runs under: cancelled (its hook
                // finishes it) and received, from inside the child's step.
                let parent = st.parent.borrow_mut().take().expect("parked");
                assert!(parent.cancel());
                *st.seen.borrow_mut() = Some(parent.recv());
                Ok(Progress::Done(()))
            })?;
            Ok(Progress::Pending)
        })
    };
    let parent = Req::start(&ev, Parent, move |_, ctl| {
        ctl.set_cancel(|_, _| Some(Err(ReqError::Cancelled)));
        ctl.wait(child, |_, _, _| Ok(Progress::Done(())))?;
        Ok(Progress::Pending)
    });
    assert!(parent.enable_profile());
    *slot.borrow_mut() = Some(parent);
    ev.loop_wait().unwrap();
    // A cancel hook runs as a step of its own: the parent finished as
    // cancelled; it was received; the child was dropped with it.
    assert_eq!(*seen.borrow(), Some(Err(ReqError::Cancelled)));
    assert_eq!(ev.event_counts().requests, 0);
}

// ---------------------------------------------------------------------------
// Use after free across contexts.

#[test]
fn a_request_of_a_dropped_context_is_refused_by_a_context_at_the_same_address() {
    let drops = Rc::new(Cell::new(0));
    let old_ev = Context::with_manual_clock(true).unwrap();
    let old = pending_send(&old_ev, &drops);
    let finished = wakeup_send(&old_ev, old_ev.now());
    finished.poll(&old_ev).unwrap();
    drop(old_ev);
    assert_eq!(drops.get(), 1, "the context's teardown dropped the state");
    // The allocator is free to put the new context where the old one was.
    let ev = Context::with_manual_clock(true).unwrap();
    assert!(matches!(old.poll(&ev), Err(Error::WrongContext)));
    assert!(matches!(finished.poll(&ev), Err(Error::WrongContext)));
    let q = Queue::new(&ev, "q");
    assert!(q.add_blocker(&finished).is_err());
    let refused = Rc::new(RefCell::new(Vec::new()));
    let r = refused.clone();
    let waiter = Req::start(&ev, Parent, move |_, ctl| {
        r.borrow_mut()
            .push(ctl.wait(old, |_, _, _| Ok(Progress::Done(()))));
        r.borrow_mut()
            .push(ctl.wait(finished, |_, _, _| Ok(Progress::Done(()))));
        Ok(Progress::Done(()))
    });
    assert_eq!(waiter.poll_recv(&ev).unwrap(), Ok(()));
    assert_eq!(
        *refused.borrow(),
        [Err(ReqError::WrongContext), Err(ReqError::WrongContext)]
    );
}

// ---------------------------------------------------------------------------
// Use after free when user code panics.

thread_local! {
    static NAME_PANICS: Cell<bool> = const { Cell::new(false) };
}

struct Touchy;

impl Request for Touchy {
    type Output = u8;
    type Error = Infallible;

    fn name() -> &'static str {
        if NAME_PANICS.with(Cell::get) {
            panic!("Request::name panicked");
        }
        "Touchy"
    }
}

#[test]
fn a_panicking_request_name_during_a_profiled_wait_leaves_the_tree_intact() {
    let ev = Context::with_manual_clock(true).unwrap();
    let parent = Req::start(&ev, Parent, |_, ctl| {
        ctl.enable_profile();
        let at = ctl.ev().now() + Duration::from_secs(1);
        let sub = Req::start(ctl.ev(), Touchy, move |_, ctl| {
            ctl.set_endtime(at)?;
            Ok(Progress::Pending)
        });
        NAME_PANICS.with(|p| p.set(true));
        // Recording the wait in the profile must not call user code.
        ctl.wait(sub, |_, _, sub| {
            assert_eq!(sub.recv(), Err(ReqError::TimedOut));
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    ev.loop_wait().unwrap();
    let profile = parent.take_profile().expect("profiled");
    assert_eq!(parent.recv(), Ok(()));
    // The name is asked for when the profile is read: the panic is the
    // reader's.
    let render = catch_unwind(AssertUnwindSafe(|| profile.render()));
    assert!(render.is_err());
    NAME_PANICS.with(|p| p.set(false));
    assert_eq!(profile.len(), 2);
    assert!(profile.render().contains("Touchy TimedOut"));
}

// ---------------------------------------------------------------------------
// Recursion over structures the user sizes.

/// One level of a chain: waits for the level below.
struct Level;

impl Request for Level {
    type Output = ();
    type Error = Infallible;
}

fn level_send(ev: &Context, below: Req<Level>) -> Req<Level> {
    Req::start(ev, Level, move |_, ctl| {
        ctl.wait(below, |_, _, below| {
            below.recv()?;
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    })
}

/// A chain `DEEP` requests deep, each waiting for the one below, the last
/// for a wake-up one second away.
fn chain(ev: &Context) -> Req<Level> {
    let nap = wakeup_send(ev, ev.now() + Duration::from_secs(1));
    let mut top = Req::start(ev, Level, move |_, ctl| {
        ctl.wait(nap, |_, _, _| Ok(Progress::Done(())))?;
        Ok(Progress::Pending)
    });
    for _ in 1..DEEP {
        top = level_send(ev, top);
    }
    top
}

#[test]
fn a_profile_a_million_requests_deep_is_dropped_cloned_and_rendered_on_a_small_stack() {
    let ev = Context::with_manual_clock(true).unwrap();
    let top = chain(&ev);
    assert!(top.enable_profile());
    top.poll(&ev).unwrap();
    let profile = top.take_profile().expect("profiled");
    assert_eq!(top.recv(), Ok(()));
    drop(ev);
    on_small_stack(move || {
        assert_eq!(profile.len(), DEEP + 1, "every level and the wake-up");
        let copy = profile.clone();
        assert_eq!(copy.len(), DEEP + 1);
        let text = copy.render();
        assert_eq!(text.lines().count(), DEEP + 1);
        assert!(format!("{copy:?}").contains("requests"));
        drop(copy);
        drop(profile);
    });
}

#[test]
fn a_request_chain_a_million_deep_is_dropped_on_a_small_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        let top = chain(&ev);
        assert_eq!(ev.event_counts().requests, DEEP + 1);
        assert!(format!("{top:?}").contains("Level"));
        drop(top);
        assert_eq!(ev.event_counts().requests, 0);
    });
}

/// A profiled chain whose top's end time passes: every level below is
/// recorded as cut off (issue 19), by a walk that uses no stack.
#[test]
fn a_profiled_chain_a_million_deep_cut_off_by_a_timeout_is_recorded_on_a_small_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        let top = chain(&ev);
        assert!(top.enable_profile());
        top.set_endtime(ev.now() + Duration::from_millis(500))
            .unwrap();
        top.poll(&ev).unwrap();
        let profile = top.take_profile().expect("profiled");
        assert!(matches!(top.recv(), Err(ReqError::TimedOut)));
        assert_eq!(profile.len(), DEEP + 1, "every level and the wake-up");
        let text = profile.render();
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("Cancelled (parent cancelled) 500ms"))
                .count(),
            DEEP - 1,
            "every level below the first"
        );
        assert_eq!(ev.event_counts().requests, 0);
        drop(profile);
    });
}

/// The live tree and `Debug` of a chain a million deep: walked and
/// printed with heap stacks.
#[test]
fn the_live_tree_and_debug_of_a_chain_a_million_deep_use_no_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        let top = chain(&ev);
        let tree = ev.request_tree();
        assert_eq!(tree.len(), DEEP + 1);
        assert_eq!(tree.requests()[DEEP].depth(), DEEP);
        assert_eq!(tree.render().lines().count(), DEEP + 1);
        let text = format!("{top:?}");
        assert_eq!(text.matches(" → ").count(), DEEP - 1, "one per level");
        assert!(text.contains("Wakeup: end time in 1s"));
        drop(tree);
        drop(top);
    });
}

/// A request whose state holds another request (without waiting for it).
struct Nest {
    _inner: Option<Req<Nest>>,
}

impl Request for Nest {
    type Output = ();
    type Error = Infallible;
}

#[test]
fn states_holding_requests_a_million_deep_are_dropped_on_a_small_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        let mut top: Option<Req<Nest>> = None;
        for _ in 0..DEEP {
            let state = Nest { _inner: top.take() };
            top = Some(Req::start(&ev, state, |_, _| Ok(Progress::Pending)));
        }
        drop(top);
        assert_eq!(ev.event_counts().requests, 0);
    });
}

/// A request whose state holds a queue, in which the next such request
/// waits.
struct Queued {
    _queue: Option<Queue>,
}

impl Request for Queued {
    type Output = ();
    type Error = Infallible;
}

#[test]
fn queues_nested_a_million_deep_are_dropped_on_a_small_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        // From the bottom: each request waits in a queue that the state of
        // the request above holds.
        let mut waiting = Vec::with_capacity(DEEP);
        let mut below = Req::start(&ev, Queued { _queue: None }, |_, _| Ok(Progress::Pending));
        for _ in 0..DEEP {
            let q = Queue::new(&ev, "nested");
            q.add_blocker(&below).expect("joined");
            waiting.push(below);
            below = Req::start(&ev, Queued { _queue: Some(q) }, |_, _| {
                Ok(Progress::Pending)
            });
        }
        // Dropping the top drops its queue, which fails the request in it,
        // whose state holds the next queue, ...
        drop(below);
        for r in &waiting {
            assert_eq!(r.state(), ReqState::Error, "failed with QueueDropped");
        }
        drop(waiting);
        assert_eq!(ev.event_counts().requests, 0);
    });
}

// ---------------------------------------------------------------------------
// A hang: a request waiting for itself.

thread_local! {
    static SELF_HANDLE: RefCell<Option<Req<Holder>>> = const { RefCell::new(None) };
}

#[test]
fn a_request_waiting_for_itself_is_refused_with_wait_cycle() {
    let ev = Context::with_manual_clock(true).unwrap();
    let drops = Rc::new(Cell::new(0));
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let req = Req::start(
        &ev,
        Holder {
            drops: drops.clone(),
        },
        move |_, ctl| {
            let nap = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1));
            ctl.wait(nap, move |_, ctl: &mut Ctl<'_, Holder>, _| {
                let me = SELF_HANDLE.with(|h| h.borrow_mut().take()).expect("parked");
                let r = ctl.wait(me, |_, _, _| Ok(Progress::Done(1)));
                *s.borrow_mut() = Some(r.clone());
                r?;
                Ok(Progress::Done(2))
            })?;
            Ok(Progress::Pending)
        },
    );
    SELF_HANDLE.with(|h| *h.borrow_mut() = Some(req));
    ev.loop_wait().unwrap();
    assert_eq!(*seen.borrow(), Some(Err(ReqError::WaitCycle)));
    // Refusing the wait dropped the handle it was given, this request's own:
    // the request went with it when its step returned.
    assert_eq!(drops.get(), 1);
    assert_eq!(ev.event_counts().requests, 0);
}

/// Two requests: `a` waits for `b`; `b`'s step then waits for `a`.
#[test]
fn two_requests_waiting_for_each_other_are_refused_with_wait_cycle() {
    thread_local! {
        static A: RefCell<Option<Req<Level>>> = const { RefCell::new(None) };
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let b = Req::start(&ev, Level, move |_, ctl| {
        let nap = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1));
        ctl.wait(nap, move |_, ctl: &mut Ctl<'_, Level>, _| {
            let a = A.with(|h| h.borrow_mut().take()).expect("parked");
            let r = ctl.wait(a, |_, _, _| Ok(Progress::Done(())));
            *s.borrow_mut() = Some(r.clone());
            r?;
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    // And a third level, to refuse an ancestor that is not the parent.
    let c = level_send(&ev, b);
    let a = level_send(&ev, c);
    A.with(|h| *h.borrow_mut() = Some(a));
    ev.loop_wait().unwrap();
    assert_eq!(*seen.borrow(), Some(Err(ReqError::WaitCycle)));
    assert_eq!(ev.event_counts().requests, 0);
}

// ---------------------------------------------------------------------------
// Lost or misdirected callbacks.

#[test]
fn a_loop_call_from_a_first_step_at_top_level_is_refused() {
    let ev = Context::with_manual_clock(true).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let req = Req::start(&ev, Parent, move |_, ctl| {
        let nap = wakeup_send(ctl.ev(), ctl.ev().now());
        let other = wakeup_send(ctl.ev(), ctl.ev().now());
        s.borrow_mut().push(ctl.ev().loop_once().map(|_| ()));
        s.borrow_mut().push(other.poll(ctl.ev()));
        s.borrow_mut().push(ctl.ev().loop_wait());
        ctl.wait(nap, |_, _, nap| {
            assert!(wakeup_recv(nap));
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    assert!(
        seen.borrow()
            .iter()
            .all(|r| matches!(r, Err(Error::Nested))),
        "{:?}",
        seen.borrow()
    );
    // What the nested loop would have delivered reaches the request.
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(()));
}

#[test]
fn a_loop_call_from_a_cancel_hook_is_refused() {
    thread_local! {
        static EV: RefCell<Option<Context>> = const { RefCell::new(None) };
        static SEEN: RefCell<Option<Result<bool, Error>>> = const { RefCell::new(None) };
    }
    fn hook(_: &mut Parent, _: &mut Ctl<'_, Parent>) -> Option<StepResult<Parent>> {
        let ev = EV.with(|e| e.borrow().clone()).expect("set");
        SEEN.with(|s| *s.borrow_mut() = Some(ev.loop_once()));
        Some(Err(ReqError::Cancelled))
    }
    let ev = Context::with_manual_clock(true).unwrap();
    EV.with(|e| *e.borrow_mut() = Some(ev.clone()));
    let req = Req::start(&ev, Parent, |_, ctl| {
        ctl.set_cancel(hook);
        let nap = wakeup_send(ctl.ev(), ctl.ev().now());
        ctl.wait(nap, |_, _, _| Ok(Progress::Done(())))?;
        Ok(Progress::Pending)
    });
    assert!(req.cancel());
    assert!(matches!(
        SEEN.with(|s| s.borrow_mut().take()),
        Some(Err(Error::Nested))
    ));
    assert_eq!(req.poll_recv(&ev).unwrap(), Err(ReqError::Cancelled));
    EV.with(|e| e.borrow_mut().take());
}

#[test]
fn an_old_callback_handle_cannot_abort_a_later_registration() {
    let ev = Context::with_manual_clock(true).unwrap();
    let back: Rc<RefCell<Option<Req<Wakeup>>>> = Rc::default();
    let told = Rc::new(Cell::new(0));
    let b = back.clone();
    let t = told.clone();
    let first = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(move |_, req| {
        t.set(t.get() + 1);
        *b.borrow_mut() = Some(req); // finished, handed back to the program
    });
    ev.loop_wait().unwrap();
    assert_eq!(told.get(), 1);
    assert!(!first.is_pending(), "its callback ran");
    // The same request, registered again: its callback is due at once.
    let req = back.borrow_mut().take().expect("handed back");
    let t = told.clone();
    let second = req.set_callback(move |_, req| {
        t.set(t.get() + 1);
        assert!(wakeup_recv(req));
    });
    assert!(second.is_pending());
    assert!(!first.abort(), "the first registration is over");
    assert!(second.is_pending(), "and the second untouched");
    ev.loop_wait().unwrap();
    assert_eq!(told.get(), 2);
}

// ---------------------------------------------------------------------------
// Trace hooks are user code in the middle of the loop's bookkeeping.

#[test]
fn an_end_time_whose_request_a_trace_hook_drops_never_fires_on_it() {
    let ev = Context::with_manual_clock(true).unwrap();
    let drops = Rc::new(Cell::new(0));
    let slot: Rc<RefCell<Option<Req<Holder>>>> = Rc::default();
    let req = pending_send(&ev, &drops);
    req.set_endtime(ev.now() + Duration::from_secs(1)).unwrap();
    *slot.borrow_mut() = Some(req);
    let s = slot.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| {
        if t.point == tevent::trace::EventPoint::BeforeHandler {
            // The request the end time belongs to goes, just before the
            // end time would finish it.
            drop(s.borrow_mut().take());
        }
    })));
    ev.loop_wait().unwrap();
    assert_eq!(drops.get(), 1);
    assert!(slot.borrow().is_none());
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn a_handler_whose_event_a_trace_hook_removes_is_never_called() {
    let ev = Context::with_manual_clock(true).unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let imm = Rc::new(RefCell::new(Some(
        ev.add_immediate(move |_, _| c.set(c.get() + 1)),
    )));
    let c = calls.clone();
    let timer = Rc::new(RefCell::new(Some(
        ev.add_timer_after(Duration::from_secs(1), move |_, _| c.set(c.get() + 1)),
    )));
    imm.borrow().as_ref().unwrap().schedule().unwrap();
    let (i, t) = (imm.clone(), timer.clone());
    ev.set_event_trace_hook(Some(Box::new(move |e| {
        if e.point == tevent::trace::EventPoint::BeforeHandler {
            drop(i.borrow_mut().take());
            drop(t.borrow_mut().take());
        }
    })));
    ev.loop_wait().unwrap();
    assert_eq!(calls.get(), 0, "a removed event's handler never runs");
}

/// Events whose handlers own the next event's handle, a million deep.
#[test]
fn event_handlers_owning_events_a_million_deep_are_dropped_on_a_small_stack() {
    on_small_stack(|| {
        let ev = Context::with_manual_clock(true).unwrap();
        let mut timer = None;
        let mut imm = None;
        for _ in 0..DEEP {
            let (t, i) = (timer.take(), imm.take());
            timer = Some(ev.add_timer_after(Duration::from_secs(1), move |_, _| {
                let _owned = &t;
            }));
            imm = Some(ev.add_immediate(move |_, _| {
                let _owned = &i;
            }));
        }
        assert_eq!(ev.event_counts().timers, DEEP);
        drop((timer, imm));
        assert_eq!(ev.event_counts().total(), 0);
    });
}

/// Handlers dropped while a handler is dropped wait in a list; a panic in
/// one of those `Drop`s must neither end the list early (what is left would
/// be dropped later, in the middle of the runtime's bookkeeping: found by
/// the re-entrancy model as a request node leaked when an end time was
/// removed) nor escape before the others are dropped.
#[test]
fn a_panicking_handler_drop_leaves_no_other_handler_undropped() {
    struct Boom;
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("a handler's Drop panicked");
        }
    }
    struct Probe(Rc<Cell<u32>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let dropped = Rc::new(Cell::new(0));
    let after = Duration::from_secs(1);
    let mut outer = Vec::new();
    for boom_first in [true, false] {
        let boom = Some(ev.add_timer_after(after, {
            let b = Boom;
            move |_, _| {
                let _ = &b;
            }
        }));
        let probe = Some(ev.add_timer_after(after, {
            let p = Probe(dropped.clone());
            move |_, _| {
                let _ = &p;
            }
        }));
        let pair = if boom_first {
            (boom, probe)
        } else {
            (probe, boom)
        };
        outer.push(ev.add_timer_after(after, move |_, _| {
            let _ = &pair;
        }));
    }
    for t in outer {
        let r = catch_unwind(AssertUnwindSafe(|| drop(t)));
        assert!(r.is_err(), "the panic leaves through the drop");
    }
    assert_eq!(dropped.get(), 2, "every handler was dropped");
    assert_eq!(ev.event_counts().timers, 0);
    // The runtime goes on: a request whose end time leaves with it.
    let drops = Rc::new(Cell::new(0));
    let req = pending_send(&ev, &drops);
    req.set_endtime(ev.now() + after).unwrap();
    drop(req);
    assert_eq!(drops.get(), 1);
    assert_eq!(ev.event_counts().total(), 0);
}
