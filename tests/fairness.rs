//! The fairness bound: tevent's order (request notifications, signals,
//! immediates, timers, fds) holds step by step, but a class that keeps
//! coming back can no longer starve the ones below it. After
//! `FAIR_STEPS` steps in a row above the fds, a fairness step serves the fd,
//! timer and immediate classes in rotation, so each of them gets a step at
//! least once in every `3 * (FAIR_STEPS + 1)` steps.

use std::cell::Cell;
use std::rc::Rc;

use tests::{send, socketpair};
use tevent::{
    Context, Ctl, FAIR_STEPS, FdFlags, MAX_NOTIFICATIONS_PER_STEP, Progress, Req, Request,
    StepResult, Wakeup, wakeup_send,
};

/// The most steps a class with work may wait, whatever runs above it.
const BOUND: u32 = 3 * (FAIR_STEPS + 1);

/// Runs steps until `done()`; returns how many it took (at most `limit`).
fn steps_until(ev: &Context, limit: u32, done: impl Fn() -> bool) -> u32 {
    for n in 1..=limit {
        ev.loop_once().unwrap();
        if done() {
            return n;
        }
    }
    panic!("not served within {limit} steps");
}

/// A ready fd whose handler counts its runs.
fn ready_fd(
    ev: &Context,
) -> (
    tevent::FdEvent<'static>,
    Rc<Cell<u32>>,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = socketpair();
    send(&b, b"ready");
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let w = ev
        .add_fd_shared(Rc::new(a), FdFlags::READ, move |_, _, _| r.set(r.get() + 1))
        .unwrap();
    (w, runs, b)
}

/// Yields forever by waiting for a wake-up at "now" (issue 7's case).
struct Yielder {
    turns: Rc<Cell<u64>>,
}

impl Request for Yielder {
    type Output = ();
    type Error = std::convert::Infallible;
}

impl Yielder {
    fn again(&mut self, ctl: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
        self.turns.set(self.turns.get() + 1);
        ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), Yielder::again)?;
        Ok(Progress::Pending)
    }
}

fn yielder_send(ev: &Context, turns: &Rc<Cell<u64>>) -> Req<Yielder> {
    Req::start(
        ev,
        Yielder {
            turns: turns.clone(),
        },
        |_, ctl| {
            ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), Yielder::again)?;
            Ok(Progress::Pending)
        },
    )
}

#[test]
fn a_request_yielding_through_wakeups_does_not_starve_a_ready_fd() {
    // Used to run 100 000 steps without a single fd call.
    let ev = Context::new().unwrap();
    let turns = Rc::new(Cell::new(0));
    let _y = yielder_send(&ev, &turns);
    let (_w, fd_runs, _peer) = ready_fd(&ev);
    let n = steps_until(&ev, BOUND, || fd_runs.get() > 0);
    assert!(turns.get() > 0, "the yielding request ran too ({n} steps)");
    // And keeps being served, once per fairness rotation at least.
    steps_until(&ev, BOUND, || fd_runs.get() > 1);
}

#[test]
fn self_rescheduling_immediates_starve_neither_timers_nor_fds() {
    let ev = Context::with_manual_clock(false).unwrap();
    let imm = ev.add_immediate(|_, me| me.schedule());
    imm.schedule().unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let _t = ev.add_timer(ev.now(), move |_, _| f.set(f.get() + 1));
    let (_w, fd_runs, _peer) = ready_fd(&ev);
    steps_until(&ev, BOUND, || fired.get() > 0);
    steps_until(&ev, BOUND, || fd_runs.get() > 0);
}

#[test]
fn an_always_due_timer_does_not_starve_a_ready_fd() {
    let ev = Context::with_manual_clock(false).unwrap();
    let _t = ev.add_timer(ev.now(), |ev, me| me.restart(ev.now()));
    let (_w, fd_runs, _peer) = ready_fd(&ev);
    steps_until(&ev, BOUND, || fd_runs.get() > 0);
    steps_until(&ev, BOUND, || fd_runs.get() > 1);
}

/// Starts a subrequest that finishes inside its own send and waits for it,
/// forever: every step has a notification pending.
struct Chain;

impl Request for Chain {
    type Output = ();
    type Error = std::convert::Infallible;
}

struct Instant0;

impl Request for Instant0 {
    type Output = ();
    type Error = std::convert::Infallible;
}

fn chain_next(_: &mut Chain, ctl: &mut Ctl<'_, Chain>, _: Req<Instant0>) -> StepResult<Chain> {
    let sub = Req::start(ctl.ev(), Instant0, |_, _| Ok(Progress::Done(())));
    ctl.wait(sub, chain_next)?;
    Ok(Progress::Pending)
}

#[test]
fn notifications_that_keep_coming_starve_no_class() {
    let ev = Context::with_manual_clock(false).unwrap();
    let _c = Req::start(&ev, Chain, |_, ctl| {
        let sub = Req::start(ctl.ev(), Instant0, |_, _| Ok(Progress::Done(())));
        ctl.wait(sub, chain_next)?;
        Ok(Progress::Pending)
    });
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    ev.post(move |_| r.set(r.get() + 1));
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let _t = ev.add_timer(ev.now(), move |_, _| f.set(f.get() + 1));
    let (_w, fd_runs, _peer) = ready_fd(&ev);
    steps_until(&ev, BOUND, || ran.get() > 0);
    steps_until(&ev, BOUND, || fired.get() > 0);
    steps_until(&ev, BOUND, || fd_runs.get() > 0);
}

#[test]
fn one_step_delivers_at_most_max_notifications() {
    let ev = Context::with_manual_clock(false).unwrap();
    let delivered = Rc::new(Cell::new(0));
    let total = MAX_NOTIFICATIONS_PER_STEP + 100;
    for _ in 0..total {
        let d = delivered.clone();
        Req::start(&ev, Instant0, |_, _| Ok(Progress::Done(()))).set_callback(move |_, r| {
            r.recv().unwrap();
            d.set(d.get() + 1)
        });
    }
    assert!(ev.loop_once().unwrap());
    assert_eq!(delivered.get(), MAX_NOTIFICATIONS_PER_STEP);
    assert!(ev.loop_once().unwrap());
    assert_eq!(delivered.get(), total);
}

#[test]
fn below_the_bound_tevents_order_is_kept() {
    // Fewer than FAIR_STEPS immediates: all run before the due timer and the
    // ready fd, as in tevent.
    let ev = Context::with_manual_clock(false).unwrap();
    let order = tests::Log::new();
    let (a, b) = socketpair();
    send(&b, b"x");
    let o = order.clone();
    let _w = ev
        .add_fd_shared(Rc::new(a), FdFlags::READ, move |_, me, _| {
            o.push("fd");
            me.set_flags(FdFlags::empty());
        })
        .unwrap();
    let o = order.clone();
    let _t = ev.add_timer(ev.now(), move |_, _| o.push("timer"));
    for _ in 0..(FAIR_STEPS - 1) {
        let o = order.clone();
        ev.post(move |_| o.push("imm"));
    }
    ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    while ev.loop_once().unwrap() {}
    let got = order.get();
    assert_eq!(got.len(), FAIR_STEPS as usize + 1);
    assert!(got[..FAIR_STEPS as usize - 1].iter().all(|s| *s == "imm"));
    assert_eq!(&got[FAIR_STEPS as usize - 1..], ["timer", "fd"]);
}
