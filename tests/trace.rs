//! Trace hooks: loop points and per-event attach / before-handler / detach,
//! with tags.

use std::time::Duration;

use tests::Log;
use tevent::trace::{EventKind, EventPoint, LoopPoint};
use tevent::{Context, FdFlags};

#[test]
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
            (EventKind::Timer, EventPoint::Attach, 9),
            (EventKind::Timer, EventPoint::Detach, 9),
        ],
        "re-armed inside its handler: no detach until dropped"
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
