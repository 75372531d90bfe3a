//! Unit tests of the request core's memory handling: every path that creates,
//! links, queues, removes or frees a request node. They need no poller (a
//! manual clock stands in for waiting), so they run under Miri, which checks
//! the node code's `unsafe` for leaks, use-after-free and aliasing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::{
    Context, Ctl, Progress, Queue, Req, ReqError, ReqState, Request, StepResult, Wakeup,
    queue_wait_recv, queue_wait_send, wakeup_recv, wakeup_send,
};

type Log = Rc<RefCell<Vec<(u32, ReqState)>>>;

fn ctx() -> Context {
    Context::with_manual_clock(true).expect("context")
}

/// Finishes in its first step with `v`.
struct Now(u32);

impl Request for Now {
    type Output = u32;
    type Error = u8;
}

fn now_send(ev: &Context, v: u32) -> Req<Now> {
    Req::start(ev, Now(v), |st, _| Ok(Progress::Done(st.0)))
}

/// Waits for a wake-up `ms` from now, then finishes with `v`; counts its
/// cleanups in `log`.
struct Sleep {
    v: u32,
    log: Log,
}

impl Request for Sleep {
    type Output = u32;
    type Error = u8;
}

fn sleep_send(ev: &Context, ms: u64, v: u32, log: &Log) -> Req<Sleep> {
    let at = ev.now() + Duration::from_millis(ms);
    Req::start(
        ev,
        Sleep {
            v,
            log: log.clone(),
        },
        move |_, ctl| {
            ctl.set_cleanup(|st, reached| st.log.borrow_mut().push((st.v, reached)));
            ctl.wait(wakeup_send(ctl.ev(), at), |st, _, w: Req<Wakeup>| {
                if wakeup_recv(w) {
                    Ok(Progress::Done(st.v))
                } else {
                    Err(ReqError::User(1))
                }
            })?;
            Ok(Progress::Pending)
        },
    )
}

/// Sums what its subrequests return; `width` of them, each a `Sleep` or a
/// nested `Sum` while `depth > 0`.
struct Sum {
    total: u32,
    left: u32,
}

impl Request for Sum {
    type Output = u32;
    type Error = u8;
}

fn sum_send(ev: &Context, depth: u32, width: u32, log: &Log) -> Req<Sum> {
    let log = log.clone();
    Req::start(
        ev,
        Sum {
            total: 0,
            left: width,
        },
        move |_, ctl| {
            for i in 0..width {
                if depth == 0 {
                    ctl.wait(sleep_send(ctl.ev(), 10, i + 1, &log), add::<Sleep>)?;
                } else {
                    ctl.wait(sum_send(ctl.ev(), depth - 1, width, &log), add::<Sum>)?;
                }
            }
            Ok(Progress::Pending)
        },
    )
}

fn add<C: Request<Output = u32, Error = u8>>(
    st: &mut Sum,
    _: &mut Ctl<'_, Sum>,
    sub: Req<C>,
) -> StepResult<Sum> {
    st.total += sub.recv()?;
    st.left -= 1;
    Ok(if st.left == 0 {
        Progress::Done(st.total)
    } else {
        Progress::Pending
    })
}

#[test]
fn a_finished_request_is_received_and_freed() {
    let ev = ctx();
    let r = now_send(&ev, 7);
    assert_eq!(ev.event_counts().requests, 1);
    r.poll(&ev).unwrap();
    assert_eq!(r.recv(), Ok(7));
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn receiving_too_early_drops_the_request() {
    let ev = ctx();
    let log: Log = Rc::default();
    let r = sleep_send(&ev, 10, 3, &log);
    assert_eq!(r.recv(), Err(ReqError::InProgress));
    assert_eq!(*log.borrow(), vec![(3, ReqState::Dropped)]);
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn a_tree_completes_and_frees_every_node() {
    let ev = ctx();
    let log: Log = Rc::default();
    let top = sum_send(&ev, 2, 3, &log);
    top.poll(&ev).unwrap();
    // 9 leaves, each 1 + 2 + 3.
    assert_eq!(top.recv(), Ok(9 * 6));
    assert_eq!(log.borrow().len(), 27);
    assert!(log.borrow().iter().all(|(_, s)| *s == ReqState::Done));
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn dropping_a_tree_in_flight_drops_every_node_once() {
    let ev = ctx();
    let log: Log = Rc::default();
    let top = sum_send(&ev, 2, 3, &log);
    assert_eq!(ev.event_counts().requests, 1 + 3 + 9 + 27 + 27);
    drop(top);
    assert_eq!(log.borrow().len(), 27);
    assert!(log.borrow().iter().all(|(_, s)| *s == ReqState::Dropped));
    assert_eq!(ev.event_counts().total(), 0);
}

/// A parent whose child finished but was not yet delivered, dropped: the
/// queued child is skipped when the queue is drained, and freed then.
#[test]
fn a_queued_child_of_a_dropped_parent_is_never_delivered() {
    let ev = ctx();
    let delivered = Rc::new(Cell::new(false));
    struct P(Rc<Cell<bool>>);
    impl Request for P {
        type Output = ();
        type Error = u8;
    }
    let d = delivered.clone();
    let parent = Req::start(&ev, P(d), |_, ctl| {
        ctl.wait(now_send(ctl.ev(), 1), |st, _, _sub: Req<Now>| {
            st.0.set(true);
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    assert!(ev.has_events(), "the finished child is queued");
    drop(parent);
    assert_eq!(ev.event_counts().requests, 0);
    assert!(!ev.has_events(), "its notification went with it");
    // Run the loop (the queue is drained first) until something else happens.
    let w = wakeup_send(&ev, ev.now());
    w.poll(&ev).unwrap();
    assert!(wakeup_recv(w));
    assert!(!delivered.get());
}

/// A request whose own handle is dropped during its step (a zombie) goes
/// when the step returns.
#[test]
fn a_request_dropped_during_its_own_step_goes_after_the_step() {
    type Slot = Rc<RefCell<Option<Req<Z>>>>;
    struct Z {
        slot: Slot,
        cleaned: Rc<Cell<u32>>,
    }
    impl Request for Z {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let slot: Slot = Rc::default();
    let cleaned = Rc::new(Cell::new(0));
    let log: Log = Rc::default();
    let r = Req::start(
        &ev,
        Z {
            slot: slot.clone(),
            cleaned: cleaned.clone(),
        },
        |_, ctl| {
            ctl.set_cleanup(|st, reached| {
                assert_eq!(reached, ReqState::Dropped);
                st.cleaned.set(st.cleaned.get() + 1);
            });
            // Two subrequests: the first to finish drops this request (and
            // so the second) from inside the step it runs.
            ctl.wait(sleep_send(ctl.ev(), 5, 1, &log), |st, _, _: Req<Sleep>| {
                drop(st.slot.borrow_mut().take());
                Ok(Progress::Pending)
            })?;
            ctl.wait(sleep_send(ctl.ev(), 50, 2, &log), |_, _, _: Req<Sleep>| {
                Ok(Progress::Done(()))
            })?;
            Ok(Progress::Pending)
        },
    );
    *slot.borrow_mut() = Some(r);
    ev.loop_until(|| cleaned.get() > 0).unwrap();
    assert_eq!(cleaned.get(), 1);
    assert_eq!(
        *log.borrow(),
        vec![(1, ReqState::Done), (2, ReqState::Dropped)]
    );
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn dropping_the_context_tears_down_what_it_owns_and_leaves_handles_inert() {
    let ev = ctx();
    let log: Log = Rc::default();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    // Owned by the context (a callback), owned by a handle (with a subtree),
    // finished and queued for a callback.
    sleep_send(&ev, 10, 1, &log).set_callback(move |_, _| c.set(true));
    let held = sum_send(&ev, 1, 2, &log);
    let c2 = called.clone();
    now_send(&ev, 5).set_callback(move |_, _| c2.set(true));
    let finished = now_send(&ev, 6);
    drop(ev);
    assert!(!called.get());
    // 1 + 4 sleeps, each dropped with its state.
    assert_eq!(log.borrow().len(), 5);
    assert_eq!(held.state(), ReqState::Dropped);
    assert_eq!(held.recv(), Err(ReqError::ContextGone));
    assert_eq!(finished.state(), ReqState::Dropped);
    drop(finished);
}

#[test]
fn a_request_dropped_with_its_context_while_its_handle_drops_inside_teardown() {
    // The state of one request holds the handle of another: the context's
    // teardown drops the first, which drops the second's handle while the
    // second is still on the teardown's list.
    struct Holder(#[allow(dead_code)] Option<Req<Sleep>>);
    impl Request for Holder {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let log: Log = Rc::default();
    let inner = sleep_send(&ev, 10, 1, &log);
    let outer = Req::start(&ev, Holder(Some(inner)), |_, _| Ok(Progress::Pending));
    drop(ev);
    assert_eq!(*log.borrow(), vec![(1, ReqState::Dropped)]);
    drop(outer);
}

#[test]
fn an_unreceived_result_holding_a_request_is_dropped_with_it() {
    struct Outer;
    impl Request for Outer {
        type Output = Req<Sleep>;
        type Error = u8;
    }
    let ev = ctx();
    let log: Log = Rc::default();
    let l = log.clone();
    let r = Req::start(&ev, Outer, move |_, ctl| {
        Ok(Progress::Done(sleep_send(ctl.ev(), 10, 4, &l)))
    });
    drop(r);
    assert_eq!(*log.borrow(), vec![(4, ReqState::Dropped)]);
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn nodes_are_recycled_across_types_and_large_states_are_not() {
    #[repr(align(64))]
    struct Aligned(u8);
    impl Request for Aligned {
        type Output = u8;
        type Error = u8;
    }
    struct Big([u8; 4096]);
    impl Request for Big {
        type Output = u8;
        type Error = u8;
    }
    let ev = ctx();
    for i in 0..100u32 {
        let a = now_send(&ev, i);
        let b = Req::start(&ev, Aligned(3), |st, _| Ok(Progress::Done(st.0)));
        let c = Req::start(&ev, Big([i as u8; 4096]), |st, _| {
            Ok(Progress::Done(st.0[4095]))
        });
        let d = Req::start(&ev, Sum { total: i, left: 0 }, |st, _| {
            Ok(Progress::Done(st.total))
        });
        // All four finished in their first step.
        assert_eq!(a.recv(), Ok(i));
        assert_eq!(b.recv(), Ok(3));
        assert_eq!(c.recv(), Ok(i as u8));
        assert_eq!(d.recv(), Ok(i));
    }
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn an_end_time_times_the_subtree_out() {
    let ev = ctx();
    let log: Log = Rc::default();
    let top = sum_send(&ev, 1, 2, &log);
    top.set_endtime(ev.now() + Duration::from_millis(5))
        .unwrap();
    top.poll(&ev).unwrap();
    assert_eq!(top.recv(), Err(ReqError::TimedOut));
    assert_eq!(log.borrow().len(), 4);
    assert!(log.borrow().iter().all(|(_, s)| *s == ReqState::Dropped));
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn a_deep_chain_completes_and_is_freed() {
    struct Link;
    impl Request for Link {
        type Output = u32;
        type Error = u8;
    }
    fn link_send(ev: &Context, depth: u32) -> Req<Link> {
        Req::start(ev, Link, move |_, ctl| {
            if depth == 0 {
                return Ok(Progress::Done(0));
            }
            ctl.wait(link_send(ctl.ev(), depth - 1), |_, _, sub: Req<Link>| {
                Ok(Progress::Done(sub.recv()? + 1))
            })?;
            Ok(Progress::Pending)
        })
    }
    let ev = ctx();
    let top = link_send(&ev, 300);
    top.poll(&ev).unwrap();
    assert_eq!(top.recv(), Ok(300));
    let top = link_send(&ev, 300);
    drop(top);
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn waiting_for_a_request_of_another_context_is_an_error() {
    struct P;
    impl Request for P {
        type Output = ();
        type Error = u8;
    }
    let ev = ctx();
    let other = ctx();
    let foreign = now_send(&other, 1);
    let cell = Rc::new(RefCell::new(Some(foreign)));
    let c = cell.clone();
    let r = Req::start(&ev, P, move |_, ctl| {
        let sub = c.borrow_mut().take().expect("once");
        ctl.wait(sub, |_, _, _: Req<Now>| Ok(Progress::Done(())))?;
        Ok(Progress::Pending)
    });
    r.poll(&ev).unwrap();
    assert_eq!(r.recv(), Err(ReqError::WrongContext));
    // The foreign request went back to its context's control and was dropped
    // with the failed wait's closure.
    assert_eq!(other.event_counts().requests, 0);
}

#[test]
fn queue_entries_hold_their_requests() {
    let ev = ctx();
    let q = Queue::new(&ev, "q");
    let first = queue_wait_send(&ev, &q);
    let second = queue_wait_send(&ev, &q);
    let third = queue_wait_send(&ev, &q);
    first.poll(&ev).unwrap();
    let guard = queue_wait_recv(first).unwrap();
    drop(second); // leaves the queue while waiting
    drop(guard);
    third.poll(&ev).unwrap();
    let g3 = queue_wait_recv(third).unwrap();
    let fourth = queue_wait_send(&ev, &q);
    drop(q);
    fourth.poll(&ev).unwrap();
    assert_eq!(fourth.recv().unwrap_err(), ReqError::QueueDropped);
    drop(g3);
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn profiles_outlive_their_requests() {
    let ev = ctx();
    let log: Log = Rc::default();
    let top = sum_send(&ev, 1, 2, &log);
    assert!(top.enable_profile());
    top.poll(&ev).unwrap();
    let p = top.take_profile().expect("profiled");
    assert_eq!(top.recv(), Ok(6));
    assert_eq!(p.len(), 1 + 2 + 4 + 4);
    drop(ev);
    assert_eq!(p.state(), ReqState::Done);
}

// ---------------------------------------------------------------------------
// Random trees: random shapes, failures, end times, drops, receives, cancels
// and callbacks, checked against two invariants: every request's cleanup hook
// runs exactly once (and never twice), and nothing is left once every handle
// is gone. Under Miri this also checks the node code for leaks and UB on
// paths no hand-written test thought of.

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the random requests share.
struct World {
    rng: RefCell<Rng>,
    created: Cell<u32>,
    /// Cleanup hooks run, per request id.
    cleaned: RefCell<Vec<u32>>,
}

impl World {
    fn roll(&self, n: u64) -> u64 {
        self.rng.borrow_mut().below(n)
    }
}

/// A random request: waits for up to three random subrequests and maybe a
/// wake-up, then finishes (or fails, at random).
struct Rand {
    id: u32,
    world: Rc<World>,
    left: u32,
    fail: bool,
}

impl Request for Rand {
    type Output = u32;
    type Error = u32;
}

fn rand_send(ev: &Context, world: &Rc<World>, depth: u32) -> Req<Rand> {
    let id = world.created.get();
    world.created.set(id + 1);
    world.cleaned.borrow_mut().push(0);
    let fail = world.roll(8) == 0;
    let st = Rand {
        id,
        world: world.clone(),
        left: 0,
        fail,
    };
    Req::start(ev, st, move |st, ctl| {
        ctl.set_cleanup(|st, _| st.world.cleaned.borrow_mut()[st.id as usize] += 1);
        let w = st.world.clone();
        if w.roll(6) == 0 {
            ctl.set_timeout(Duration::from_millis(w.roll(20)))?;
        }
        let subs = if depth == 0 { 0 } else { w.roll(4) as u32 };
        for _ in 0..subs {
            ctl.wait(rand_send(ctl.ev(), &w, depth - 1), rand_sub_done)?;
            st.left += 1;
        }
        if subs == 0 || w.roll(3) == 0 {
            let at = ctl.ev().now() + Duration::from_millis(w.roll(10));
            ctl.wait(wakeup_send(ctl.ev(), at), |st, _, w: Req<Wakeup>| {
                wakeup_recv(w);
                st.left -= 1;
                rand_progress(st)
            })?;
            st.left += 1;
        }
        if w.roll(10) == 0 {
            // Finishes at once, abandoning what it waits for.
            return Ok(Progress::Done(st.id));
        }
        Ok(Progress::Pending)
    })
}

fn rand_sub_done(st: &mut Rand, _: &mut Ctl<'_, Rand>, sub: Req<Rand>) -> StepResult<Rand> {
    st.left -= 1;
    match sub.recv() {
        Ok(_) => {}
        // Half of the failures propagate.
        Err(e) if st.world.roll(2) == 0 => return Err(e),
        Err(_) => {}
    }
    rand_progress(st)
}

fn rand_progress(st: &mut Rand) -> StepResult<Rand> {
    match (st.left, st.fail) {
        (0, false) => Ok(Progress::Done(st.id)),
        (0, true) => Err(ReqError::User(st.id)),
        _ => Ok(Progress::Pending),
    }
}

/// One run; returns the requests created and the callbacks that ran.
fn random_run(seed: u64, ops: u32) -> (u32, u32) {
    let ev = ctx();
    let world = Rc::new(World {
        rng: RefCell::new(Rng(seed)),
        created: Cell::new(0),
        cleaned: RefCell::default(),
    });
    let callbacks = Rc::new(Cell::new(0u32));
    let mut held: Vec<Req<Rand>> = Vec::new();
    for _ in 0..ops {
        match world.roll(8) {
            0 | 1 => held.push(rand_send(&ev, &world, 3)),
            2 if !held.is_empty() => {
                let i = world.roll(held.len() as u64) as usize;
                drop(held.swap_remove(i));
            }
            3 if !held.is_empty() => {
                let i = world.roll(held.len() as u64) as usize;
                let _ = held.swap_remove(i).recv();
            }
            4 if !held.is_empty() => {
                let i = world.roll(held.len() as u64) as usize;
                let c = callbacks.clone();
                held.swap_remove(i).set_callback(move |_, r| {
                    c.set(c.get() + 1);
                    let _ = r.recv();
                });
            }
            5 if !held.is_empty() => {
                let i = world.roll(held.len() as u64) as usize;
                assert!(!held[i].cancel(), "no cancel hook: nothing starts");
                let _ = held[i].set_endtime(ev.now());
            }
            _ => {
                // Only a loop with something to do returns at once.
                if ev.has_events() {
                    ev.loop_once().unwrap();
                }
            }
        }
        assert!(
            world.cleaned.borrow().iter().all(|&n| n <= 1),
            "seed {seed}: a cleanup hook ran twice"
        );
    }
    // Half the runs end with the context dropped under live requests, the
    // other half drain everything first.
    if seed.is_multiple_of(2) {
        for r in held.drain(..) {
            r.poll(&ev).unwrap();
            let _ = r.recv();
        }
        while ev.event_counts().requests > 0 {
            assert!(
                ev.has_events(),
                "seed {seed}: requests left with nothing to run them"
            );
            ev.loop_once().unwrap();
        }
        assert_eq!(ev.event_counts().total(), 0, "seed {seed}");
        drop(ev);
    } else {
        drop(ev);
        for r in held.drain(..) {
            assert_eq!(r.recv(), Err(ReqError::ContextGone));
        }
    }
    let cleaned = world.cleaned.borrow();
    assert_eq!(cleaned.len() as u32, world.created.get());
    assert!(
        cleaned.iter().all(|&n| n == 1),
        "seed {seed}: every request cleaned up exactly once: {cleaned:?}"
    );
    (world.created.get(), callbacks.get())
}

#[test]
fn random_trees_clean_up_every_request_exactly_once() {
    let (seeds, ops) = if cfg!(miri) { (8, 40) } else { (300, 200) };
    let (mut created, mut callbacks) = (0, 0);
    for seed in 0..seeds {
        let (c, k) = random_run(seed, ops);
        created += c;
        callbacks += k;
    }
    // The runs did exercise trees and callbacks.
    assert!(created > seeds as u32 * 10, "{created} requests");
    assert!(callbacks > 0);
}

#[test]
fn type_names_keep_generic_arguments_without_paths() {
    use super::strip_paths;
    assert_eq!(
        strip_paths("tevent::io::ReadSome<std::os::unix::net::UnixStream>"),
        "ReadSome<UnixStream>"
    );
    assert_eq!(
        strip_paths(
            "a::Outer<b::Inner<alloc::string::String>, std::collections::hash::map::HashMap<u8, alloc::vec::Vec<u8>>>"
        ),
        "Outer<Inner<String>, HashMap<u8, Vec<u8>>>"
    );
    assert_eq!(
        strip_paths("x::Job<tests::main::{{closure}}>"),
        "Job<{{closure}}>"
    );
    assert_eq!(
        strip_paths("m::T<(a::B, [c::D; 4], &e::F, *const g::H)>"),
        "T<(B, [D; 4], &F, *const H)>"
    );
    assert_eq!(
        strip_paths("m::T<dyn core::ops::Fn(u8) -> a::B>"),
        "T<dyn Fn(u8) -> B>"
    );
    assert_eq!(
        strip_paths("<m::A<u8> as n::Tr>::Out"),
        "<A<u8> as Tr>::Out"
    );
}

#[test]
fn the_default_name_of_a_generic_request_is_readable() {
    struct Gen<T>(T);
    impl<T: 'static> Request for Gen<T> {
        type Output = ();
        type Error = ();
    }
    let closure = || ();
    fn name_of<T: Request>(_: &T) -> &'static str {
        T::name()
    }
    assert_eq!(Gen::<Vec<String>>::name(), "Gen<Vec<String>>");
    assert_eq!(name_of(&Gen(closure)), "Gen<{{closure}}>");
    // Computed once: the same `&'static str` each time.
    assert!(std::ptr::eq(
        Gen::<Vec<String>>::name(),
        Gen::<Vec<String>>::name()
    ));
    assert_eq!(Now::name(), "Now");
    let ev = ctx();
    let r = Req::start(&ev, Gen(vec![String::new()]), |_, _| Ok(Progress::Pending));
    assert!(
        format!("{r:?}").contains(r#"type: "Gen<Vec<String>>""#),
        "{r:?}"
    );
}

/// `mem::forget` of handles is safe, so a reference count must not wrap
/// (it would come back to zero and free a node in use, as `Rc` would if it
/// did not abort): at its limit it sticks, and the node is never freed.
#[test]
fn a_reference_count_at_its_limit_sticks_instead_of_wrapping() {
    let ev = ctx();
    let r = Req::start(&ev, Now(0), |_, _| Ok(Progress::Pending));
    let node = r.node().expect("allocated");
    node.hdr().set_refs(u32::MAX - 1);
    let a = node.clone();
    let b = node.clone();
    assert_eq!(node.hdr().refs(), u32::MAX);
    drop((a, b));
    assert_eq!(node.hdr().refs(), u32::MAX, "saturated: never counted down");
    // Back to the handle's one reference, so the test frees what it made.
    node.hdr().set_refs(1);
    drop(r);
    assert_eq!(ev.event_counts().requests, 0);
}
