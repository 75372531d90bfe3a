//! Trace hooks: loop points and per-event attach / before-handler / detach,
//! with tags.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tests::Log;
use tevent::trace::{EventKind, EventPoint, LoopPoint};
use tevent::{Context, FdFlags, wakeup_recv, wakeup_send};

/// Installs an event hook that logs (kind, point) pairs.
fn points(ev: &Context) -> Log<(EventKind, EventPoint)> {
    let log = Log::new();
    let l = log.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| l.push((t.kind, t.point)))));
    log
}

use EventPoint::{Attach, BeforeHandler, Detach};

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn loop_points_surround_steps_and_waits() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    assert!(
        ev.set_loop_trace_hook(Some(Box::new(move |p| l.push(p))))
            .is_none()
    );
    ev.post(|_| {});
    ev.loop_once().unwrap();
    assert_eq!(
        log.take(),
        [LoopPoint::BeforeLoopOnce, LoopPoint::AfterLoopOnce]
    );
    let _t = ev.add_timer_after(Duration::from_millis(2), |_, _| {});
    ev.loop_once().unwrap();
    assert_eq!(
        log.take(),
        [
            LoopPoint::BeforeLoopOnce,
            LoopPoint::BeforeWait,
            LoopPoint::AfterWait,
            LoopPoint::AfterLoopOnce
        ]
    );
    // Chaining: the previous hook is handed back.
    let prev = ev.set_loop_trace_hook(None);
    assert!(prev.is_some());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn event_points_carry_tags() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let l = log.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| l.push((t.kind, t.point, t.tag)))));

    let im = ev.add_immediate(|_, _| {});
    im.set_tag(7);
    im.schedule().unwrap();
    ev.loop_once().unwrap();
    assert_eq!(
        log.take(),
        [
            (EventKind::Immediate, EventPoint::Attach, 7),
            (EventKind::Immediate, EventPoint::BeforeHandler, 7),
            (EventKind::Immediate, EventPoint::Detach, 7),
        ]
    );

    let t = ev.add_timer_after(Duration::from_secs(1), |_, me| {
        me.restart_after(Duration::from_secs(1))
    });
    t.set_tag(9);
    ev.loop_once().unwrap();
    drop(t);
    assert_eq!(
        log.take(),
        [
            (EventKind::Timer, EventPoint::Attach, 0),
            (EventKind::Timer, EventPoint::BeforeHandler, 9),
            (EventKind::Timer, EventPoint::Detach, 9),
            (EventKind::Timer, EventPoint::Attach, 9),
            (EventKind::Timer, EventPoint::Detach, 9),
        ],
        "re-armed inside its handler: detached and attached again (as C tevent), detached when dropped"
    );

    let (a, _b) = tests::socketpair_fds();
    let w = ev
        .add_fd(a, FdFlags::WRITE, |_, me, _| me.set_tag(3))
        .unwrap();
    ev.loop_once().unwrap();
    drop(w);
    assert_eq!(
        log.take(),
        [
            (EventKind::Fd, EventPoint::Attach, 0),
            (EventKind::Fd, EventPoint::BeforeHandler, 0),
            (EventKind::Fd, EventPoint::Detach, 3),
        ]
    );
}

#[test]
fn freed_before_dispatch_gives_attach_then_detach() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| l.push((t.kind, t.point)))));
    let im = ev.add_immediate(|_, _| {});
    im.schedule().unwrap();
    drop(im);
    ev.loop_wait().unwrap();
    assert_eq!(
        log.get(),
        [
            (EventKind::Immediate, EventPoint::Attach),
            (EventKind::Immediate, EventPoint::Detach)
        ]
    );
}

#[test]
fn a_hook_may_replace_itself_while_running() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    ev.set_loop_trace_hook(Some(Box::new(move |_| {
        l.push("first");
    })));
    let ev2 = ev.clone();
    let l = log.clone();
    ev.post(move |_| {
        let l = l.clone();
        ev2.set_loop_trace_hook(Some(Box::new(move |_| l.push("second"))));
    });
    ev.loop_once().unwrap();
    ev.post(|_| {});
    ev.loop_once().unwrap();
    assert_eq!(log.get(), ["first", "second", "second", "second"]);
}

// Every path that ends or re-arms an event reports it, exactly once (each of
// the following lost its `Detach`).

#[test]
fn a_timer_dropped_inside_its_own_handler_is_detached() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = points(&ev);
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    *slot.borrow_mut() = Some(ev.add_timer_after(Duration::from_millis(1), move |_, _| {
        s.borrow_mut().take();
    }));
    ev.loop_once().unwrap();
    let t = EventKind::Timer;
    assert_eq!(log.get(), [(t, Attach), (t, BeforeHandler), (t, Detach)]);
}

#[test]
fn an_immediate_dropped_inside_its_own_handler_is_detached() {
    let ev = Context::new().unwrap();
    let log = points(&ev);
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let im = ev.add_immediate(move |_, _| {
        s.borrow_mut().take();
    });
    im.schedule().unwrap();
    *slot.borrow_mut() = Some(im);
    ev.loop_once().unwrap();
    let i = EventKind::Immediate;
    assert_eq!(log.get(), [(i, Attach), (i, BeforeHandler), (i, Detach)]);
}

#[test]
fn a_request_end_time_that_fires_is_detached() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = points(&ev);
    let w = wakeup_send(&ev, ev.now());
    w.poll(&ev).unwrap();
    assert!(wakeup_recv(w));
    let t = EventKind::Timer;
    assert_eq!(log.get(), [(t, Attach), (t, BeforeHandler), (t, Detach)]);
}

#[test]
fn re_arming_a_pending_event_detaches_it_first() {
    let ev = Context::with_manual_clock(false).unwrap();
    let log = points(&ev);
    let im = ev.add_immediate(|_, _| {});
    im.schedule().unwrap();
    im.schedule().unwrap();
    let t = ev.add_timer_after(Duration::from_secs(1), |_, _| {});
    t.restart_after(Duration::from_secs(2)).unwrap();
    let (i, tm) = (EventKind::Immediate, EventKind::Timer);
    assert_eq!(
        log.take(),
        [
            (i, Attach),
            (i, Detach),
            (i, Attach),
            (tm, Attach),
            (tm, Detach),
            (tm, Attach)
        ]
    );
    // Rescheduled from inside its own handler: detached, attached again.
    let im2 = ev.add_immediate(|_, me| {
        if me.tag() == 0 {
            me.set_tag(1);
            me.schedule();
        }
    });
    im2.schedule().unwrap();
    im.cancel();
    log.take();
    ev.loop_once().unwrap();
    assert_eq!(log.take(), [(i, BeforeHandler), (i, Detach), (i, Attach)]);
    ev.loop_once().unwrap();
    assert_eq!(log.take(), [(i, BeforeHandler), (i, Detach)]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn dropping_the_context_detaches_every_event_still_registered() {
    let ev = Context::with_manual_clock(false).unwrap();
    let log = points(&ev);
    let _t = ev.add_timer_after(Duration::from_secs(1), |_, _| {});
    let im = ev.add_immediate(|_, _| {});
    im.schedule().unwrap();
    let (a, _b) = tests::socketpair_fds();
    let _w = ev.add_fd(a, FdFlags::READ, |_, _, _| {}).unwrap();
    let _s = ev.add_signal(libc::SIGWINCH, |_, _, _| {}).unwrap();
    let _r = wakeup_send(&ev, ev.now() + Duration::from_secs(5));
    let attached = log.len();
    assert_eq!(attached, 5);
    drop(ev);
    let got = log.get();
    let detached: Vec<_> = got[attached..].iter().map(|(k, _)| *k).collect();
    assert!(got[attached..].iter().all(|(_, p)| *p == Detach), "{got:?}");
    for k in [
        EventKind::Timer,
        EventKind::Immediate,
        EventKind::Fd,
        EventKind::Signal,
    ] {
        assert!(detached.contains(&k), "{k:?} in {detached:?}");
    }
    assert_eq!(detached.len(), 5, "{got:?}");
}

/// splitmix64, for reproducible random sequences.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn attaches_minus_detaches_is_the_live_count_over_random_sequences() {
    let mut seed = 0x7e7e_2026_u64;
    for case in 0..150 {
        let ev = Context::with_manual_clock(true).unwrap();
        ev.set_wait_timeout(Some(Duration::ZERO));
        let balance = Rc::new(Cell::new(0i64));
        let b = balance.clone();
        ev.set_event_trace_hook(Some(Box::new(move |t| match t.point {
            Attach => b.set(b.get() + 1),
            Detach => b.set(b.get() - 1),
            BeforeHandler => {}
        })));
        let mut timers = Vec::new();
        let mut imms = Vec::new();
        let mut fds = Vec::new();
        let mut sigs = Vec::new();
        let mut reqs = Vec::new();
        let peers: Vec<_> = (0..3).map(|_| tests::socketpair()).collect();
        for _ in 0..80 {
            let r = next(&mut seed);
            match r % 14 {
                0 => timers.push(
                    ev.add_timer_after(Duration::from_millis(r % 5), move |_, me| {
                        if r & 64 != 0 {
                            me.restart_after(Duration::from_millis(1));
                        }
                    }),
                ),
                1 if !timers.is_empty() => {
                    let i = (r as usize >> 8) % timers.len();
                    timers[i]
                        .restart_after(Duration::from_millis(r % 3))
                        .unwrap();
                }
                2 if !timers.is_empty() => {
                    let i = (r as usize >> 8) % timers.len();
                    timers[i].cancel();
                }
                3 if !timers.is_empty() => {
                    drop(timers.swap_remove((r as usize >> 8) % timers.len()));
                }
                4 => {
                    let im = ev.add_immediate(move |_, me| {
                        if r & 128 != 0 {
                            me.schedule();
                        }
                    });
                    im.schedule().unwrap();
                    imms.push(im);
                }
                5 if !imms.is_empty() => {
                    let i = (r as usize >> 8) % imms.len();
                    imms[i].schedule().unwrap();
                }
                6 if !imms.is_empty() => {
                    let i = (r as usize >> 8) % imms.len();
                    imms[i].cancel();
                }
                7 if !imms.is_empty() => {
                    drop(imms.swap_remove((r as usize >> 8) % imms.len()));
                }
                8 => {
                    let (a, _) = &peers[(r as usize >> 8) % peers.len()];
                    let fd = Rc::new(a.try_clone().unwrap());
                    fds.push(ev.add_fd_shared(fd, FdFlags::WRITE, |_, _, _| {}).unwrap());
                }
                9 if !fds.is_empty() => {
                    drop(fds.swap_remove((r as usize >> 8) % fds.len()));
                }
                10 => sigs.push(ev.add_signal(libc::SIGWINCH, |_, _, _| {}).unwrap()),
                11 if !sigs.is_empty() => {
                    drop(sigs.swap_remove((r as usize >> 8) % sigs.len()));
                }
                12 => reqs.push(wakeup_send(&ev, ev.now() + Duration::from_millis(r % 4))),
                13 if !reqs.is_empty() => {
                    drop(reqs.swap_remove((r as usize >> 8) % reqs.len()));
                }
                _ => {
                    for _ in 0..(r % 4) {
                        ev.loop_once().unwrap();
                    }
                }
            }
            let c = ev.event_counts();
            let live = c.armed_timers + c.scheduled_immediates + c.fd_watchers + c.signal_handlers;
            assert_eq!(balance.get(), live as i64, "case {case}: {c:?}");
        }
        drop(ev);
        assert_eq!(balance.get(), 0, "case {case}: after the context's drop");
    }
}

// ---------------------------------------------------------------------------
// The request and queue trace hooks (issue 19).

mod req_and_queue {
    use std::cell::RefCell;
    use std::rc::Rc;
    use tevent::trace::{EventPoint, ReqPoint, ReqTrace};
    use tevent::{
        Context, Ctl, Progress, Queue, Req, ReqError, ReqState, Request, StepResult, Wakeup,
        queue_wait_send, wakeup_send,
    };

    struct Outer;
    impl Request for Outer {
        type Output = ();
        type Error = std::convert::Infallible;
    }
    struct Inner;
    impl Request for Inner {
        type Output = ();
        type Error = std::convert::Infallible;
    }

    impl Outer {
        fn inner_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Inner>) -> StepResult<Self> {
            sub.recv()?;
            Ok(Progress::Done(()))
        }
    }
    impl Inner {
        fn woke(&mut self, _: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
            Ok(Progress::Done(()))
        }
    }

    fn inner_send(ev: &Context) -> Req<Inner> {
        Req::start(ev, Inner, |_, ctl| {
            ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), Inner::woke)?;
            Ok(Progress::Pending)
        })
    }

    fn outer_send(ev: &Context) -> Req<Outer> {
        Req::start(ev, Outer, |_, ctl| {
            ctl.wait(inner_send(ctl.ev()), Outer::inner_done)?;
            Ok(Progress::Pending)
        })
    }

    type Seen = Rc<RefCell<Vec<ReqTrace>>>;

    fn record(ev: &Context) -> Seen {
        let seen: Seen = Rc::default();
        let s = seen.clone();
        ev.set_req_trace_hook(Some(Box::new(move |t| s.borrow_mut().push(*t))));
        seen
    }

    fn lines(seen: &Seen) -> Vec<String> {
        seen.borrow()
            .iter()
            .map(|t| {
                format!(
                    "{:?} {} {} {} {:?}",
                    t.point,
                    t.name,
                    t.depth,
                    t.step.unwrap_or("-"),
                    t.state
                )
            })
            .collect()
    }

    #[test]
    fn every_point_of_a_nested_request_in_order_with_depth_and_step() {
        let ev = Context::with_manual_clock(true).unwrap();
        let seen = record(&ev);
        let outer = outer_send(&ev);
        outer.poll(&ev).unwrap();
        assert!(outer.recv().is_ok());
        assert_eq!(
            lines(&seen),
            [
                "Create Outer 0 - InProgress",
                "Create Inner 1 - InProgress",
                "Create Wakeup 2 - InProgress",
                "Notify Wakeup 2 woke TimedOut",
                "Step Inner 1 woke InProgress",
                "Cleanup Wakeup 0 - TimedOut", // dropped unreceived by `woke`
                "Notify Inner 1 inner_done Done",
                "Step Outer 0 inner_done InProgress",
                "Cleanup Inner 0 - Done", // received
                "Cleanup Outer 0 - Done",
            ]
        );
        // One identity per request, the same from Create to Cleanup.
        let seen = seen.borrow();
        let outer_id = seen[0].id;
        assert_eq!(seen.last().unwrap().id, outer_id);
        assert!(seen[0].created.file().ends_with("trace.rs"));
    }

    #[test]
    fn cancel_and_drop_are_reported() {
        fn on_cancel(_: &mut Outer, _: &mut Ctl<'_, Outer>) -> Option<StepResult<Outer>> {
            Some(Err(ReqError::Cancelled))
        }
        let ev = Context::with_manual_clock(true).unwrap();
        let seen = record(&ev);
        let r = Req::start(&ev, Outer, |_, ctl| {
            ctl.set_cancel(on_cancel);
            ctl.wait(inner_send(ctl.ev()), Outer::inner_done)?;
            Ok(Progress::Pending)
        });
        assert!(r.cancel());
        assert!(!r.cancel(), "finished: not reported again");
        drop(r);
        assert_eq!(
            lines(&seen)[3..],
            [
                "Cancel Outer 0 - InProgress",
                "Step Outer 0 cancel InProgress",
                // Its subrequests go when it finishes, deepest last.
                "Cleanup Inner 0 - Dropped",
                "Cleanup Wakeup 0 - Dropped",
                "Cleanup Outer 0 - Cancelled",
            ]
        );
    }

    #[test]
    fn the_context_s_drop_reports_the_cleanup_of_every_request_left() {
        let ev = Context::with_manual_clock(true).unwrap();
        let seen = record(&ev);
        let outer = outer_send(&ev);
        drop(ev);
        let l = lines(&seen);
        assert_eq!(l.iter().filter(|l| l.starts_with("Create")).count(), 3);
        assert_eq!(l.iter().filter(|l| l.starts_with("Cleanup")).count(), 3);
        drop(outer);
    }

    #[test]
    fn a_hook_that_ends_the_request_before_its_step_keeps_the_step_from_running() {
        let ev = Context::with_manual_clock(true).unwrap();
        let target: Rc<RefCell<Option<Req<Outer>>>> = Rc::default();
        let t = target.clone();
        ev.set_req_trace_hook(Some(Box::new(move |tr| {
            if tr.point == ReqPoint::Step && tr.name == "Outer" {
                // Drop the request whose step is about to run.
                drop(t.borrow_mut().take());
            }
        })));
        *target.borrow_mut() = Some(Req::start(&ev, Outer, |_, ctl| {
            ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), |_, _, _| {
                panic!("the step of a dropped request ran")
            })?;
            Ok(Progress::Pending)
        }));
        ev.loop_wait().unwrap();
        assert!(target.borrow().is_none());
        assert_eq!(ev.event_counts().requests, 0);
    }

    #[test]
    fn a_hook_that_drops_the_parent_at_notify_stops_the_delivery() {
        let ev = Context::with_manual_clock(true).unwrap();
        let target: Rc<RefCell<Option<Req<Outer>>>> = Rc::default();
        let t = target.clone();
        ev.set_req_trace_hook(Some(Box::new(move |tr| {
            if tr.point == ReqPoint::Notify && tr.name == "Inner" {
                drop(t.borrow_mut().take());
            }
        })));
        *target.borrow_mut() = Some(Req::start(&ev, Outer, |_, ctl| {
            ctl.wait(inner_send(ctl.ev()), |_, _, _| {
                panic!("the waiter of a dropped parent ran")
            })?;
            Ok(Progress::Pending)
        }));
        ev.loop_wait().unwrap();
        assert_eq!(ev.event_counts().requests, 0);
    }

    #[test]
    fn a_panicking_hook_leaves_through_the_public_call_and_the_run_goes_on() {
        let ev = Context::with_manual_clock(true).unwrap();
        ev.set_req_trace_hook(Some(Box::new(|t| {
            if t.point == ReqPoint::Notify {
                panic!("hook");
            }
        })));
        let outer = outer_send(&ev);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.loop_once()));
        assert!(r.is_err(), "the hook's panic left loop_once");
        ev.set_req_trace_hook(None);
        outer.poll(&ev).unwrap();
        assert!(outer.recv().is_ok());
    }

    #[test]
    fn each_hook_keeps_its_place_when_it_installs_another() {
        // A hook that installs another kind of hook while it runs stays
        // installed (one epoch per hook).
        let ev = Context::with_manual_clock(true).unwrap();
        let n = Rc::new(std::cell::Cell::new(0));
        let (n2, ev2) = (n.clone(), ev.clone());
        ev.set_req_trace_hook(Some(Box::new(move |_| {
            n2.set(n2.get() + 1);
            ev2.set_queue_trace_hook(Some(Box::new(|_| {})));
            ev2.set_loop_trace_hook(Some(Box::new(|_| {})));
        })));
        let a = wakeup_send(&ev, ev.now());
        let b = wakeup_send(&ev, ev.now());
        assert_eq!(n.get(), 2);
        drop((a, b));
        let l = Rc::new(std::cell::Cell::new(0));
        let (l2, ev2) = (l.clone(), ev.clone());
        ev.set_loop_trace_hook(Some(Box::new(move |_| {
            l2.set(l2.get() + 1);
            ev2.set_event_trace_hook(None);
        })));
        ev.post(|_| {});
        ev.loop_once().unwrap();
        ev.post(|_| {});
        ev.loop_once().unwrap();
        assert_eq!(l.get(), 4, "the loop hook stayed");
        // (The hooks hold the context: removed, so that it is freed.)
        ev.set_req_trace_hook(None);
        ev.set_loop_trace_hook(None);
    }

    #[test]
    fn queue_points_carry_entry_tags_in_order() {
        let ev = Context::new().unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        ev.set_queue_trace_hook(Some(Box::new(move |t| {
            s.borrow_mut()
                .push((t.point, t.queue.to_string(), t.tag, t.id, t.len))
        })));
        let q = Queue::new(&ev, "q");
        let a = queue_wait_send(&ev, &q);
        let b = queue_wait_send(&ev, &q);
        let blocker = Req::start(&ev, Outer, |_, _| Ok(Progress::Pending));
        q.add_blocker(&blocker).unwrap();
        assert!(q.set_entry_tag(&a, 1));
        assert!(q.set_entry_tag(&b, 2));
        assert!(q.set_entry_tag(&blocker, 3));
        let ga = a.poll_recv(&ev).unwrap().unwrap();
        drop(ga);
        let gb = b.poll_recv(&ev).unwrap().unwrap();
        drop(gb);
        drop(q); // the blocker's entry leaves with the queue
        use EventPoint::*;
        let q = "q".to_string();
        assert_eq!(
            *seen.borrow(),
            [
                (Attach, q.clone(), 0, 0, 1),
                (Attach, q.clone(), 0, 1, 2),
                (Attach, q.clone(), 0, 2, 3),
                (BeforeHandler, q.clone(), 1, 0, 3),
                (Detach, q.clone(), 1, 0, 2),
                (BeforeHandler, q.clone(), 2, 1, 2),
                (Detach, q.clone(), 2, 1, 1),
                (Detach, q.clone(), 3, 2, 0),
            ]
        );
        assert_eq!(blocker.state(), ReqState::Error);
    }

    #[test]
    fn a_queue_hook_that_drops_the_queue_before_a_trigger_is_safe() {
        let ev = Context::new().unwrap();
        let q: Rc<RefCell<Option<Queue>>> = Rc::new(RefCell::new(Some(Queue::new(&ev, "q"))));
        let q2 = q.clone();
        ev.set_queue_trace_hook(Some(Box::new(move |t| {
            if t.point == EventPoint::BeforeHandler {
                drop(q2.borrow_mut().take());
            }
        })));
        let w = queue_wait_send(&ev, q.borrow().as_ref().unwrap());
        w.poll(&ev).unwrap();
        assert!(matches!(w.recv(), Err(ReqError::QueueDropped)));
    }
}

/// A step of a `#[tevent_request]` request resumed by a delivery is
/// reported once, by the delivery, with its name (the transition used to
/// report it a second time, without a name).
#[test]
fn generated_step_is_reported_once() {
    use tevent::{Next, Req, Wakeup, tevent_request};
    struct Twice;
    #[tevent_request(steps(start => [first], first => [done]))]
    impl Twice {
        type Output = ();
        type Error = std::convert::Infallible;
        fn start(to: TwiceStartStep<'_>) -> Next<Self> {
            let to = to.create(Twice);
            to.first(wakeup_send(to.ev(), to.ev().now()))
        }
        fn first(&mut self, to: TwiceFirstStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
            to.done(())
        }
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let l = log.clone();
    ev.set_req_trace_hook(Some(Box::new(move |t| {
        l.push(format!("{:?} {} {:?}", t.point, t.name, t.step))
    })));
    let r = twice_send(&ev);
    r.poll(&ev).unwrap();
    assert_eq!(
        log.take(),
        [
            "Create Twice None",
            "Create Wakeup None",
            "Notify Wakeup Some(\"first\")",
            "Step Twice Some(\"first\")",
            "Cleanup Wakeup None",
        ]
    );
    assert_eq!(r.recv(), Ok(()));
}
