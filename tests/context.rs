//! The context: dispatch order between classes, nesting, loop_wait termination,
//! wait timeout, manual clock, teardown.

use std::time::Duration;

use tests::{Log, peer_closed, send, socketpair, socketpair_fds};
use tevent::{Context, Error, FdFlags};

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn one_handler_per_step_in_tevent_order() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let (a, b) = socketpair();
    send(&b, b"x");
    let l = log.clone();
    let _fd = ev
        .add_fd(a.into(), FdFlags::READ, move |_, _, _| l.push("fd"))
        .unwrap();
    let l = log.clone();
    let _t = ev.add_timer(ev.now(), move |_, _| l.push("timer"));
    let l = log.clone();
    let im = ev.add_immediate(move |_, _| l.push("immediate"));
    im.schedule().unwrap();

    assert!(ev.loop_once().unwrap());
    assert_eq!(log.get(), ["immediate"]);
    assert!(ev.loop_once().unwrap());
    assert_eq!(log.get(), ["immediate", "timer"]);
    assert!(ev.loop_once().unwrap());
    assert_eq!(log.get(), ["immediate", "timer", "fd"]);
}

#[test]
fn nested_loop_call_is_an_error_not_an_abort() {
    let ev = Context::new().unwrap();
    let seen = Log::new();
    let s = seen.clone();
    let im = ev.add_immediate(move |ev, _| {
        s.push(matches!(ev.loop_once(), Err(Error::Nested)));
        s.push(matches!(ev.loop_wait(), Err(Error::Nested)));
        s.push(matches!(ev.loop_until(|| true), Ok(())));
        s.push(matches!(ev.loop_until(|| false), Err(Error::Nested)));
        s.push(ev.in_handler());
    });
    im.schedule().unwrap();
    ev.loop_once().unwrap();
    assert_eq!(seen.get(), [true, true, true, true, true]);
    assert!(!ev.in_handler());
    // The loop is usable again afterwards.
    im.schedule().unwrap();
    assert!(ev.loop_once().unwrap());
}

#[test]
fn loop_wait_returns_when_no_event_is_left() {
    let ev = Context::new().unwrap();
    ev.loop_wait().unwrap(); // nothing at all
    let n = Log::new();
    let l = n.clone();
    let im = ev.add_immediate(move |_, me| {
        l.push(());
        if l.len() < 5 {
            me.schedule();
        }
    });
    im.schedule().unwrap();
    ev.loop_wait().unwrap();
    assert_eq!(n.len(), 5);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn paused_fd_watchers_do_not_keep_loop_wait_alive() {
    let ev = Context::new().unwrap();
    let (a, _b) = socketpair_fds();
    let fde = ev.add_fd(a, FdFlags::empty(), |_, _, _| {}).unwrap();
    assert!(!ev.has_events());
    ev.loop_wait().unwrap();
    fde.set_flags(FdFlags::READ).unwrap();
    assert!(ev.has_events());
    fde.set_flags(FdFlags::empty()).unwrap();
    assert!(!ev.has_events());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn zero_wait_timeout_is_poll_mode() {
    let ev = Context::new().unwrap();
    assert_eq!(
        ev.set_wait_timeout(Some(Duration::ZERO)),
        Some(tevent::DEFAULT_WAIT_TIMEOUT)
    );
    let (a, _b) = socketpair_fds();
    let _fde = ev
        .add_fd(a, FdFlags::READ, |_, _, _| panic!("not readable"))
        .unwrap();
    assert!(!ev.loop_once().unwrap(), "nothing ready: returns at once");
}

#[test]
fn loop_until_stops_on_the_predicate() {
    let ev = Context::new().unwrap();
    let n = Log::new();
    let l = n.clone();
    let im = ev.add_immediate(move |_, me| {
        l.push(());
        me.schedule();
    });
    im.schedule().unwrap();
    ev.loop_until(|| n.len() == 7).unwrap();
    assert_eq!(n.len(), 7);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn manual_clock_moves_only_when_told() {
    let ev = Context::with_manual_clock(false).unwrap();
    let t0 = ev.now();
    let fired = Log::new();
    let f = fired.clone();
    let _t = ev.add_timer_after(Duration::from_secs(3600), move |ev, _| f.push(ev.now()));
    assert!(!ev.loop_once().unwrap(), "an hour-long timer is not due");
    assert!(matches!(ev.loop_wait(), Err(Error::ClockStalled)));
    assert!(ev.advance(Duration::from_secs(3599)));
    assert!(!ev.loop_once().unwrap());
    ev.advance(Duration::from_secs(1));
    assert!(ev.loop_once().unwrap());
    assert_eq!(fired.get(), [t0 + Duration::from_secs(3600)]);
}

#[test]
fn auto_advancing_clock_jumps_to_each_deadline() {
    let ev = Context::with_manual_clock(true).unwrap();
    let t0 = ev.now();
    let fired = Log::new();
    let mut timers = Vec::new();
    for s in [30, 10, 20] {
        let f = fired.clone();
        timers.push(ev.add_timer_after(Duration::from_secs(s), move |ev, _| {
            f.push(ev.now().duration_since(t0).as_secs())
        }));
    }
    ev.loop_wait().unwrap();
    assert_eq!(fired.get(), [10, 20, 30]);
    assert!(
        !Context::new().unwrap().advance(Duration::from_secs(1)),
        "system clock does not move"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn dropping_the_context_removes_everything_and_handles_go_inert() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let fde = ev.add_fd(a.into(), FdFlags::READ, |_, _, _| {}).unwrap();
    let timer = ev.add_timer_after(Duration::from_secs(1), |_, _| {});
    let im = ev.add_immediate(|_, _| {});
    im.schedule().unwrap();
    let posted = Log::new();
    let p = posted.clone();
    ev.post(move |_| p.push(()));
    let remote = ev.remote();
    assert!(!peer_closed(&b));
    drop(ev);
    assert!(peer_closed(&b), "owned fd closed with the context");
    assert!(posted.is_empty(), "posted closure dropped unrun");
    assert!(matches!(im.schedule(), Err(Error::ContextGone)));
    assert!(matches!(
        timer.restart_after(Duration::ZERO),
        Err(Error::ContextGone)
    ));
    assert!(matches!(
        fde.set_flags(FdFlags::WRITE),
        Err(Error::ContextGone)
    ));
    assert!(!timer.is_armed());
    assert!(remote.send(|_| {}).is_err());
    drop((fde, timer, im)); // inert drops
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn event_counts_track_what_is_held() {
    let ev = Context::new().unwrap();
    assert_eq!(ev.event_counts().total(), 0);
    let (a, _b) = socketpair_fds();
    let fde = ev.add_fd(a, FdFlags::READ, |_, _, _| {}).unwrap();
    let t = ev.add_timer_after(Duration::from_secs(9), |_, _| {});
    let im = ev.add_immediate(|_, _| {});
    let c = ev.event_counts();
    assert_eq!(
        (c.fd_watchers, c.timers, c.armed_timers, c.immediates),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (c.scheduled_immediates, c.registered_fds, c.total()),
        (0, 1, 3)
    );
    drop((fde, t, im));
    let c = ev.event_counts();
    assert_eq!((c.total(), c.registered_fds), (0, 0));
}
