//! Nested requests: outcomes propagate through every level, subtrees are owned
//! and dropped with their parent, depth costs no stack, and parents run right
//! after the handler that finished their child.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use tests::Log;
use tevent::{
    Context, Ctl, Progress, Req, ReqError, ReqState, Request, StepResult, Wakeup, wakeup_recv,
    wakeup_send,
};

// ---------------------------------------------------------------------------
// A 3-level tree: Top (error type TopError) -> Mid (MidError) -> Inner (InnerError).

#[derive(Debug, PartialEq, Clone, Copy)]
enum Fail {
    Not,
    Error,
    TimeOut,
    NoMemory,
    Cancel,
}

#[derive(Debug, PartialEq)]
struct InnerError(u32);
#[derive(Debug, PartialEq)]
struct MidError(u32);
#[derive(Debug, PartialEq)]
struct TopError(u32);

impl From<InnerError> for MidError {
    fn from(e: InnerError) -> Self {
        MidError(e.0 + 100)
    }
}
impl From<MidError> for TopError {
    fn from(e: MidError) -> Self {
        TopError(e.0 + 1000)
    }
}

struct Inner {
    how: Fail,
}
impl Request for Inner {
    type Output = u32;
    type Error = InnerError;
}
impl Inner {
    fn woke(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Wakeup>) -> StepResult<Self> {
        assert!(wakeup_recv(sub));
        match self.how {
            Fail::Not => Ok(Progress::Done(7)),
            Fail::Error => Err(ReqError::User(InnerError(7))),
            Fail::NoMemory => {
                // A fallible allocation that fails: `?` finishes NoMemory.
                let _huge: Vec<u64> = tevent::alloc::try_vec(usize::MAX / 8)?;
                unreachable!()
            }
            Fail::TimeOut | Fail::Cancel => unreachable!("never woken"),
        }
    }
}
fn inner_send(ev: &Context, how: Fail) -> Req<Inner> {
    Req::start(ev, Inner { how }, |st, ctl| {
        let wait = if matches!(st.how, Fail::TimeOut | Fail::Cancel) {
            3600
        } else {
            1
        };
        ctl.wait(
            wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(wait)),
            Inner::woke,
        )?;
        if st.how == Fail::TimeOut {
            ctl.set_timeout(Duration::from_secs(2))?;
        }
        ctl.set_cancel(|_, _| Some(Err(ReqError::Cancelled)));
        Ok(Progress::Pending)
    })
}

struct Mid;
impl Request for Mid {
    type Output = u32;
    type Error = MidError;
}
fn mid_send(ev: &Context, how: Fail, inner_out: &Rc<RefCell<Option<Req<Inner>>>>) -> Req<Mid> {
    let slot = inner_out.clone();
    Req::start(ev, Mid, move |_, ctl| {
        let inner = inner_send(ctl.ev(), how);
        if how == Fail::Cancel {
            // Keep a handle on the innermost to cancel it from outside: the
            // mid level holds it through a shared slot instead of waiting.
            *slot.borrow_mut() = Some(inner);
            let watcher = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(5));
            ctl.wait(watcher, move |_, _, _| {
                let inner = slot.borrow_mut().take().expect("held");
                // `?` converts InnerError into MidError, keeping runtime outcomes.
                let v = inner.recv_into::<MidError>()?;
                Ok(Progress::Done(v + 1))
            })?;
            return Ok(Progress::Pending);
        }
        ctl.wait(inner, |_, _, sub| {
            Ok(Progress::Done(sub.recv_into::<MidError>()? + 1))
        })?;
        Ok(Progress::Pending)
    })
}

struct Top;
impl Request for Top {
    type Output = u32;
    type Error = TopError;
}
fn top_send(ev: &Context, how: Fail, inner_out: &Rc<RefCell<Option<Req<Inner>>>>) -> Req<Top> {
    let mid = mid_send(ev, how, inner_out);
    Req::start(ev, Top, |_, ctl| {
        ctl.wait(mid, |_, _, sub| {
            Ok(Progress::Done(sub.recv_into::<TopError>()? + 1))
        })?;
        Ok(Progress::Pending)
    })
}

fn run_tree(how: Fail) -> Result<u32, ReqError<TopError>> {
    let ev = Context::with_manual_clock(true).unwrap();
    let inner_slot = Rc::new(RefCell::new(None));
    let top = top_send(&ev, how, &inner_slot);
    if how == Fail::Cancel {
        let inner = inner_slot.borrow();
        assert!(inner.as_ref().unwrap().cancel(), "cancellation started");
    }
    top.poll(&ev).unwrap();
    let r = top.recv();
    assert_eq!(ev.event_counts().total(), 0, "{how:?}: nothing left behind");
    r
}

#[test]
fn the_top_of_a_three_level_tree_sees_the_innermost_outcome() {
    assert_eq!(run_tree(Fail::Not), Ok(9));
    assert_eq!(run_tree(Fail::Error), Err(ReqError::User(TopError(1107))));
    assert_eq!(run_tree(Fail::TimeOut), Err(ReqError::TimedOut));
    assert_eq!(run_tree(Fail::NoMemory), Err(ReqError::NoMemory));
    assert_eq!(run_tree(Fail::Cancel), Err(ReqError::Cancelled));
}

// ---------------------------------------------------------------------------
// Dropping a tree in flight.

thread_local! {
    static CLEANUPS: RefCell<Vec<ReqState>> = const { RefCell::new(Vec::new()) };
}

struct Node {
    _leaf: Option<Req<Wakeup>>,
}
impl Request for Node {
    type Output = ();
    type Error = Infallible;
}
fn node_cleanup(_: &mut Node, s: ReqState) {
    CLEANUPS.with(|c| c.borrow_mut().push(s));
}
fn parent_step(_: &mut Node, _: &mut Ctl<'_, Node>, _: Req<Node>) -> StepResult<Node> {
    panic!("no parent step may run when the tree is dropped")
}

/// A tree of exactly `size` nodes, each with up to `fanout` children (the
/// remaining nodes split evenly); leaves hold a wake-up (a timer event) in
/// their state.
fn tree_send(ev: &Context, size: u32, fanout: u32) -> Req<Node> {
    let rest = size - 1;
    let kids = rest.min(fanout);
    let children: Vec<_> = (0..kids)
        .map(|i| {
            let share = rest / kids + u32::from(i < rest % kids);
            tree_send(ev, share, fanout)
        })
        .collect();
    Req::start(ev, Node { _leaf: None }, move |st, ctl| {
        ctl.set_cleanup(node_cleanup);
        if children.is_empty() {
            st._leaf = Some(wakeup_send(
                ctl.ev(),
                ctl.ev().now() + Duration::from_secs(60),
            ));
        }
        for c in children {
            ctl.wait(c, parent_step)?;
        }
        Ok(Progress::Pending)
    })
}

#[test]
fn dropping_the_top_of_a_hundred_request_tree_in_flight() {
    let ev = Context::with_manual_clock(true).unwrap();
    CLEANUPS.with(|c| c.borrow_mut().clear());
    let top = tree_send(&ev, 100, 3);
    let counts = ev.event_counts();
    let leaves = counts.armed_timers;
    // Every node plus each leaf's wake-up subrequest.
    assert_eq!(counts.requests, 100 + leaves, "{counts:?}");
    assert!(leaves > 0);
    ev.loop_once().unwrap(); // everything is in flight, nothing finished
    drop(top); // `parent_step` panics if any parent is called back
    ev.loop_wait().unwrap();
    CLEANUPS.with(|c| {
        let c = c.borrow();
        assert_eq!(c.len(), 100, "every cleanup hook ran exactly once");
        assert!(c.iter().all(|s| *s == ReqState::Dropped));
    });
    assert_eq!(ev.event_counts().total(), 0, "{:?}", ev.event_counts());
}

// ---------------------------------------------------------------------------
// Depth.

struct Link {
    depth: u32,
}
impl Request for Link {
    type Output = u32;
    type Error = Infallible;
}
fn link_send(ev: &Context, child: Req<Link>) -> Req<Link> {
    Req::start(ev, Link { depth: 0 }, |_, ctl| {
        ctl.wait(child, |st, _, sub| {
            st.depth = sub.recv()? + 1;
            Ok(Progress::Done(st.depth))
        })?;
        Ok(Progress::Pending)
    })
}
fn leaf_send(ev: &Context) -> Req<Link> {
    Req::start(ev, Link { depth: 0 }, |_, ctl| {
        ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), |_, _, w| {
            assert!(wakeup_recv(w));
            Ok(Progress::Done(0))
        })?;
        Ok(Progress::Pending)
    })
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn a_ten_thousand_deep_chain_completes_and_drops_on_a_small_stack() {
    // 128 KiB of stack: any per-level recursion in the runtime would overflow.
    let t = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let ev = Context::new().unwrap();
            let mut r = leaf_send(&ev);
            for _ in 0..10_000 {
                r = link_send(&ev, r);
            }
            assert_eq!(ev.event_counts().requests, 10_002);
            r.poll(&ev).unwrap();
            assert_eq!(r.recv(), Ok(10_000));
            assert_eq!(ev.event_counts().total(), 0);

            // And dropping one that is in flight.
            let mut r = leaf_send(&ev);
            for _ in 0..10_000 {
                r = link_send(&ev, r);
            }
            drop(r);
            assert_eq!(ev.event_counts().total(), 0);
        })
        .unwrap();
    t.join().unwrap();
}

// ---------------------------------------------------------------------------
// Ordering and subtree ownership.

#[test]
fn a_parent_runs_after_the_handler_that_finished_its_child_and_before_the_next_event() {
    struct P;
    impl Request for P {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let l = log.clone();
    let p = Req::start(&ev, P, move |_, ctl| {
        let l2 = l.clone();
        ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), move |_, _, _| {
            l2.push("parent");
            Ok(Progress::Done(()))
        })?;
        Ok(Progress::Pending)
    });
    // Two timers due at the same instant: the wake-up's end time (armed first)
    // and this one. The parent must run between them.
    let l = log.clone();
    let _t = ev.add_timer(ev.now(), move |_, _| l.push("next timer"));
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), ["parent", "next timer"]);
    assert_eq!(p.recv(), Ok(()));
}

#[test]
fn a_finished_parent_drops_the_subrequests_it_still_owned() {
    struct Race;
    impl Request for Race {
        type Output = u64;
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let r = Req::start(&ev, Race, |_, ctl| {
        for secs in [1u64, 100, 200] {
            ctl.wait(
                wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(secs)),
                move |_, _, _| Ok(Progress::Done(secs)),
            )?;
        }
        Ok(Progress::Pending)
    });
    let t0 = ev.now();
    r.poll(&ev).unwrap();
    assert_eq!(r.recv(), Ok(1), "the first to finish wins");
    assert_eq!(ev.event_counts().total(), 0, "the losers were dropped");
    ev.loop_wait().unwrap();
    assert_eq!(
        ev.now() - t0,
        Duration::from_secs(1),
        "their timers are gone"
    );
}
