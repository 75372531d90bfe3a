//! Step-local data of `#[tevent_request]` requests: values a transition
//! carries to the step it leads to (`to.step(sub, values..)`, received as
//! the step's parameters after what the subrequest gives). They reach
//! their step; they live in the request's step enum while it waits, and go
//! exactly once, with the request, when it is cancelled, times out, is
//! dropped (also in the middle of a step) or fails. The step read from a
//! request (`Req::step`) is the step it waits in at every point; fan-out
//! waits each carry their own; generic requests carry generic values;
//! `Debug` shows the step and its data.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tevent::{
    Cancel, Context, Next, Req, ReqError, StepMachine, Wakeup, tevent_request, wakeup_recv,
    wakeup_send,
};

/// A manual clock in poll mode.
fn ctx() -> Context {
    let ev = Context::with_manual_clock(true).unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev
}

fn nap(ev: &Context, ms: u64) -> Req<Wakeup> {
    wakeup_send(ev, ev.now() + Duration::from_millis(ms))
}

/// A value that counts its drops.
#[derive(Debug)]
struct Counted {
    id: u32,
    drops: Rc<Cell<u32>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

// ---------------------------------------------------------------------------
// A three-step request whose data exists only in some steps.

/// What `Relay` saw, in order.
type Seen = Rc<RefCell<Vec<String>>>;

/// Carries a line from `start` to `sent`, then a counter and a tuple (a
/// pattern) to `acked`: the state itself holds only the log.
struct Relay {
    seen: Seen,
}

#[tevent_request(steps(start => [sent], sent => [acked, done], acked => [done]))]
impl Relay {
    type Output = String;
    type Error = std::convert::Infallible;

    fn start(to: RelayStartStep<'_>, line: String, seen: &Seen, ms: u64) -> Next<Self> {
        let to = to.create(Relay { seen: seen.clone() });
        to.sent(nap(to.ev(), ms), line)
    }

    fn sent(&mut self, to: RelaySentStep<'_>, w: Req<Wakeup>, line: String) -> Next<Self> {
        assert!(wakeup_recv(w));
        self.seen.borrow_mut().push(format!("sent {line}"));
        if line.is_empty() {
            return to.done(line);
        }
        to.acked(nap(to.ev(), 1), line.len(), (line, 7u8))
    }

    fn acked(
        &mut self,
        to: RelayAckedStep<'_>,
        w: Req<Wakeup>,
        n: usize,
        (line, tag): (String, u8),
    ) -> Next<Self> {
        assert!(wakeup_recv(w));
        self.seen
            .borrow_mut()
            .push(format!("acked {n} {line} {tag}"));
        to.done(format!("{line}:{n}:{tag}"))
    }
}

#[test]
fn carried_values_reach_their_step() {
    let ev = ctx();
    let seen = Seen::default();
    let req = relay_send(&ev, "hello".to_string(), &seen, 5);
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok("hello:5:7".to_string()));
    assert_eq!(*seen.borrow(), ["sent hello", "acked 5 hello 7"]);
}

#[test]
fn the_step_read_from_a_request_is_the_step_it_waits_in() {
    let ev = ctx();
    let seen = Seen::default();
    let req = relay_send(&ev, "hi".to_string(), &seen, 5);
    assert_eq!(req.step(), Some(RelayStepName::Sent));
    assert_eq!(RelayStepName::Sent.name(), "sent");
    assert!(
        format!("{req:?}").contains(r#"step: Sent { line: "hi" }"#),
        "{req:?}"
    );
    while seen.borrow().is_empty() {
        assert_eq!(req.step(), Some(RelayStepName::Sent));
        ev.loop_once().unwrap();
    }
    assert_eq!(req.step(), Some(RelayStepName::Acked));
    assert!(
        format!("{req:?}").contains(r#"step: Acked { n: 2, value1: ("hi", 7) }"#),
        "{req:?}"
    );
    req.poll(&ev).unwrap();
    assert_eq!(req.step(), None);
    assert_eq!(req.recv(), Ok("hi:2:7".to_string()));
}

#[test]
fn the_step_enum_and_the_graph_come_from_one_list() {
    assert_eq!(
        RelayStepName::ALL,
        [
            RelayStepName::Start,
            RelayStepName::Sent,
            RelayStepName::Acked
        ]
    );
    let names: Vec<&str> = RelayStepName::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, Relay::STEPS);
    assert_eq!(<Relay as StepMachine>::STEP_NAMES, Relay::STEPS);
    assert_eq!(<Relay as StepMachine>::FINISHES, [false, true, true]);
    let data = RelayStep::Sent {
        line: "x".to_string(),
    };
    assert_eq!(data.name(), RelayStepName::Sent);
    assert_eq!(format!("{data:?}"), r#"Sent { line: "x" }"#);
}

// ---------------------------------------------------------------------------
// Drop exactly once, whatever ends the request.

/// Carries a `Counted` to `woke`; fails, hangs or finishes there.
struct Carrier;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    Finish,
    Fail,
    Hang,
}

#[derive(Debug, PartialEq)]
struct Failed;

#[tevent_request(steps(start => [woke], woke => [done]))]
impl Carrier {
    type Output = u32;
    type Error = Failed;

    fn start(to: CarrierStartStep<'_>, value: Counted, ms: u64, then: Then) -> Next<Self> {
        let mut to = to.create(Carrier);
        to.set_cancel(|_| Cancel::Cancelled);
        if then == Then::Hang {
            // A subrequest that never finishes.
            return to.woke(nap(to.ev(), u64::MAX / 2), value, then);
        }
        to.woke(nap(to.ev(), ms), value, then)
    }

    fn woke(
        &mut self,
        to: CarrierWokeStep<'_>,
        _w: Req<Wakeup>,
        value: Counted,
        then: Then,
    ) -> Next<Self> {
        match then {
            Then::Fail => Err(ReqError::User(Failed)),
            _ => to.done(value.id),
        }
    }
}

fn carrier(ev: &Context, then: Then) -> (Req<Carrier>, Rc<Cell<u32>>) {
    let drops = Rc::new(Cell::new(0));
    let value = Counted {
        id: 9,
        drops: drops.clone(),
    };
    (carrier_send(ev, value, 10, then), drops)
}

#[test]
fn a_carried_value_is_dropped_once_when_the_step_takes_it() {
    let ev = ctx();
    let (req, drops) = carrier(&ev, Then::Finish);
    assert_eq!(drops.get(), 0, "it waits in the request");
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(9));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_carried_value_is_dropped_once_when_the_request_fails() {
    let ev = ctx();
    let (req, drops) = carrier(&ev, Then::Fail);
    assert_eq!(req.poll_recv(&ev).unwrap(), Err(ReqError::User(Failed)));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_carried_value_is_dropped_once_when_the_request_is_cancelled() {
    let ev = ctx();
    let (req, drops) = carrier(&ev, Then::Hang);
    assert!(req.cancel());
    assert_eq!(
        drops.get(),
        1,
        "the waiting transition went with the request"
    );
    assert_eq!(req.poll_recv(&ev).unwrap(), Err(ReqError::Cancelled));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_carried_value_is_dropped_once_when_the_request_times_out() {
    let ev = ctx();
    let (req, drops) = carrier(&ev, Then::Hang);
    req.set_endtime(ev.now() + Duration::from_millis(3))
        .unwrap();
    assert_eq!(req.poll_recv(&ev).unwrap(), Err(ReqError::TimedOut));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_carried_value_is_dropped_once_when_the_request_is_dropped() {
    let ev = ctx();
    let (req, drops) = carrier(&ev, Then::Hang);
    drop(req);
    assert_eq!(drops.get(), 1);
    assert_eq!(ev.event_counts().requests, 0);
}

/// Drops its own request (a handle parked in a thread-local) in the middle
/// of the step that received the carried values.
struct SelfDrop;

thread_local! {
    static PARKED: RefCell<Option<Req<SelfDrop>>> = const { RefCell::new(None) };
}

#[tevent_request(steps(start => [woke], woke => [done]))]
impl SelfDrop {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: SelfDropStartStep<'_>, value: Counted) -> Next<Self> {
        let to = to.create(SelfDrop);
        to.woke(nap(to.ev(), 1), value)
    }

    fn woke(&mut self, to: SelfDropWokeStep<'_>, _w: Req<Wakeup>, value: Counted) -> Next<Self> {
        // The request goes while its step runs; the value is the step's.
        drop(PARKED.with(|p| p.borrow_mut().take()));
        assert_eq!(value.drops.get(), 0);
        to.done(())
    }
}

#[test]
fn a_carried_value_is_dropped_once_when_the_request_is_dropped_mid_step() {
    let ev = ctx();
    let drops = Rc::new(Cell::new(0));
    let req = self_drop_send(
        &ev,
        Counted {
            id: 1,
            drops: drops.clone(),
        },
    );
    PARKED.with(|p| *p.borrow_mut() = Some(req));
    ev.loop_wait().unwrap();
    assert_eq!(drops.get(), 1);
    assert_eq!(ev.event_counts().requests, 0);
}

// ---------------------------------------------------------------------------
// Fan-out, generics, visibility.

/// Starts one wait per value, each carrying its value to `got`.
struct Gather {
    left: usize,
    sum: u32,
}

#[tevent_request(steps(start => [got], got => [done]))]
impl Gather {
    type Output = u32;
    type Error = std::convert::Infallible;

    fn start(to: GatherStartStep<'_>, values: Vec<u32>) -> Next<Self> {
        let to = to.create(Gather {
            left: values.len(),
            sum: 0,
        });
        for (i, v) in values.into_iter().enumerate() {
            to.got(nap(to.ev(), 1 + i as u64), v, format!("#{i}"))?;
        }
        to.pending()
    }

    fn got(
        &mut self,
        to: GatherGotStep<'_>,
        _w: Req<Wakeup>,
        value: u32,
        label: String,
    ) -> Next<Self> {
        assert!(label.starts_with('#'));
        self.sum += value;
        self.left -= 1;
        if self.left == 0 {
            return to.done(self.sum);
        }
        to.pending()
    }
}

#[test]
fn fan_out_waits_each_carry_their_own_values() {
    let ev = ctx();
    let req = gather_send(&ev, vec![1, 20, 300]);
    assert_eq!(req.step(), Some(GatherStepName::Got));
    let text = format!("{req:?}");
    for label in ["#0", "#1", "#2"] {
        assert!(text.contains(label), "{text}");
    }
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(321));
}

mod inner {
    use super::*;

    /// A generic request in a module, its items public to the crate:
    /// carries a `T` and an `Rc<T>`.
    pub(crate) struct Echoes<T> {
        pub(crate) seen: Rc<RefCell<Vec<T>>>,
    }

    #[tevent_request(steps(start => [back], back => [done]))]
    impl<T: Clone + std::fmt::Debug> Echoes<T> {
        type Output = T;
        type Error = std::convert::Infallible;

        pub(crate) fn start(to: EchoesStartStep<'_, T>, value: T) -> Next<Self> {
            let seen = Rc::new(RefCell::new(Vec::new()));
            let to = to.create(Echoes { seen });
            let shared = Rc::new(value.clone());
            to.back(nap(to.ev(), 1), value, shared)
        }

        fn back(
            &mut self,
            to: EchoesBackStep<'_, T>,
            _w: Req<Wakeup>,
            value: T,
            shared: Rc<T>,
        ) -> Next<Self> {
            self.seen.borrow_mut().push((*shared).clone());
            to.done(value)
        }
    }
}

#[test]
fn generic_requests_carry_generic_values_across_modules() {
    let ev = ctx();
    let req = inner::echoes_send(&ev, vec!["a".to_string()]);
    assert_eq!(req.step(), Some(inner::EchoesStepName::Back));
    // The block bounds `T: Debug`, so the data shows.
    assert!(
        format!("{req:?}").contains(r#"step: Back { value: ["a"], shared: ["a"] }"#),
        "{req:?}"
    );
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(vec!["a".to_string()]));
}

// ---------------------------------------------------------------------------
// Carrying allocates nothing: a transition's values wait inline in the node
// of the request waited for (up to 64 bytes of waiter).

/// Counts this thread's heap allocations (other test threads' are theirs).
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches a const
// thread-local `Cell` (no allocation, no re-entry).
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// A leaf finished inside its send.
struct Echo(u64);

impl tevent::Request for Echo {
    type Output = u64;
    type Error = std::convert::Infallible;
}

fn echo_send(ev: &Context, v: u64) -> Req<Echo> {
    Req::start(ev, Echo(v), |st, _| Ok(tevent::Progress::Done(st.0)))
}

/// Walks `total` transitions, each carrying 48 bytes to the next step.
struct Walk {
    total: u64,
}

#[tevent_request(steps(start => walked => [walked, done]))]
impl Walk {
    type Output = u64;
    type Error = std::convert::Infallible;

    fn start(to: _, total: u64) -> Next<Self> {
        let to = to.create(Walk { total });
        to.walked(echo_send(to.ev(), 1), [0; 6])
    }

    fn walked(&mut self, to: _, v: u64, mut data: [u64; 6]) -> Next<Self> {
        data[(v % 6) as usize] += v;
        if v == self.total {
            return to.done(data.iter().sum());
        }
        to.walked(echo_send(to.ev(), v + 1), data)
    }
}

/// The same walk by hand, its data in the state.
struct WalkH {
    total: u64,
    data: [u64; 6],
}

impl tevent::Request for WalkH {
    type Output = u64;
    type Error = std::convert::Infallible;
}

impl WalkH {
    fn walked(
        &mut self,
        ctl: &mut tevent::Ctl<'_, Self>,
        sub: Req<Echo>,
    ) -> tevent::StepResult<Self> {
        let v = sub.recv()?;
        self.data[(v % 6) as usize] += v;
        if v == self.total {
            return Ok(tevent::Progress::Done(self.data.iter().sum()));
        }
        ctl.wait(echo_send(ctl.ev(), v + 1), WalkH::walked)?;
        Ok(tevent::Progress::Pending)
    }
}

/// The heap allocations of one walk of `n` transitions.
fn allocs_of(ev: &Context, n: u64, generated: bool) -> u64 {
    let before = allocs();
    let out = if generated {
        walk_send(ev, n).poll_recv(ev).unwrap()
    } else {
        let state = WalkH {
            total: n,
            data: [0; 6],
        };
        Req::start(ev, state, |_, ctl| {
            ctl.wait(echo_send(ctl.ev(), 1), WalkH::walked)?;
            Ok(tevent::Progress::Pending)
        })
        .poll_recv(ev)
        .unwrap()
    };
    assert_eq!(out, Ok(n * (n + 1) / 2));
    allocs() - before
}

#[test]
fn carrying_values_allocates_nothing_per_transition() {
    let ev = ctx();
    // Warm the context's pools, then compare what 100 more transitions
    // cost: as many allocations as the hand-written walk (none once its
    // pools are warm; one per request under Miri, which keeps no pool).
    for generated in [false, true] {
        allocs_of(&ev, 200, generated);
    }
    let by_hand = allocs_of(&ev, 200, false) - allocs_of(&ev, 100, false);
    let generated = allocs_of(&ev, 200, true) - allocs_of(&ev, 100, true);
    assert_eq!(generated, by_hand, "allocations per 100 transitions");
}
