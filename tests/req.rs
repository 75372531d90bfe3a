//! Requests: finishing exactly once, notification from the loop, recv, poll
//! (and on the wrong context), callbacks, Debug, cleanup and cancel hooks,
//! end times and wake-ups, request fd watchers and blocking fds, and the
//! caller's hold on a request after set_callback (abort, cancel, detach).

use std::cell::Cell;
use std::convert::Infallible;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use tests::Log;
use tevent::{
    Context, Ctl, Error, FdEvent, FdFlags, Progress, Req, ReqError, ReqState, Request, StepResult,
    Wakeup, wakeup_recv, wakeup_send,
};

/// A request that finishes inside its own send.
struct Echo {
    v: u64,
}

impl Request for Echo {
    type Output = u64;
    type Error = Infallible;
}

fn echo_send(ev: &Context, v: u64) -> Req<Echo> {
    Req::start(ev, Echo { v }, |st, _| Ok(Progress::Done(st.v ^ 0xa5)))
}

/// A request that finishes when its wake-up subrequest does.
struct Sleep {
    woke: bool,
}

impl Request for Sleep {
    type Output = &'static str;
    type Error = std::io::Error;
}

impl Sleep {
    fn woke(&mut self, _: &mut tevent::Ctl<'_, Self>, sub: Req<Wakeup>) -> StepResult<Self> {
        self.woke = wakeup_recv(sub);
        Ok(Progress::Done(if self.woke { "woke" } else { "failed" }))
    }
}

fn sleep_send(ev: &Context, d: Duration) -> Req<Sleep> {
    Req::start(ev, Sleep { woke: false }, |_, ctl| {
        ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + d), Sleep::woke)?;
        Ok(Progress::Pending)
    })
}

#[test]
fn a_request_finished_in_send_is_delivered_from_the_loop() {
    let ev = Context::new().unwrap();
    let req = echo_send(&ev, 1);
    assert_eq!(req.state(), ReqState::Done);
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    req.set_callback(move |_, r| g.set(Some(r.recv())));
    assert!(
        got.take().is_none(),
        "never called from inside send or set_callback"
    );
    assert!(
        ev.has_events(),
        "a pending notification keeps the loop going"
    );
    ev.loop_once().unwrap();
    assert_eq!(got.take(), Some(Ok(1 ^ 0xa5)));
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn poll_drives_the_loop_until_finished() {
    let ev = Context::with_manual_clock(true).unwrap();
    let req = sleep_send(&ev, Duration::from_secs(5));
    assert!(req.is_in_progress());
    let t0 = ev.now();
    req.poll(&ev).unwrap();
    assert_eq!(ev.now() - t0, Duration::from_secs(5));
    assert_eq!(req.recv().unwrap(), "woke");
    assert_eq!(ev.event_counts().total(), 0, "nothing left behind");
}

#[test]
fn poll_reports_a_request_nothing_can_finish() {
    struct Never;
    impl Request for Never {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::new().unwrap();
    let req = Req::start(&ev, Never, |_, _| Ok(Progress::Pending));
    assert!(matches!(req.poll(&ev), Err(Error::RequestStalled)));
    // Receiving it unfinished is a clear error and drops it.
    assert_eq!(req.recv(), Err(ReqError::InProgress));
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn poll_on_another_context_is_wrong_context() {
    let ev = Context::new().unwrap();
    let other = Context::new().unwrap();
    let req = sleep_send(&ev, Duration::from_millis(1));
    let e = req.poll(&other).unwrap_err();
    assert!(matches!(e, Error::WrongContext), "{e:?}");
    assert!(e.to_string().contains("does not belong"), "{e}");
    // Still a misuse once the request is finished.
    req.poll(&ev).unwrap();
    assert!(matches!(req.poll(&other), Err(Error::WrongContext)));
    assert_eq!(req.recv().unwrap(), "woke");
}

/// Finishes when its fd is readable: a request with its own fd watcher.
struct Readable {
    watch: Option<FdEvent<'static>>,
}

impl Request for Readable {
    type Output = ();
    type Error = Error;
}

fn readable_send<F: AsFd + 'static>(ev: &Context, fd: Rc<F>) -> Req<Readable> {
    fn ready(_: &mut Readable, _: &mut Ctl<'_, Readable>, _: FdFlags) -> StepResult<Readable> {
        Ok(Progress::Done(()))
    }
    Req::start(ev, Readable { watch: None }, |st, ctl| {
        st.watch = Some(ctl.watch_fd(fd, FdFlags::READ, ready)?);
        Ok(Progress::Pending)
    })
}

/// The error of a request watcher given a blocking fd.
#[track_caller]
fn assert_blocking(r: Result<(), ReqError<Error>>, fd: RawFd) {
    match r {
        Err(ReqError::User(e @ Error::Blocking { .. })) => {
            assert!(matches!(e, Error::Blocking { fd: n } if n == fd));
            let msg = e.to_string();
            assert!(msg.contains("blocking mode"), "{msg}");
            assert!(msg.contains("set_nonblocking(true)"), "{msg}");
        }
        other => panic!("expected Error::Blocking, got {other:?}"),
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn watch_fd_refuses_a_blocking_fd_that_add_fd_accepts() {
    let ev = Context::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap(); // blocking
    let a = Rc::new(a);
    let r = readable_send(&ev, a.clone());
    r.poll(&ev).unwrap();
    assert_blocking(r.recv(), a.as_raw_fd());
    // A plain watcher takes it, as in tevent...
    let plain = ev
        .add_fd_shared(a.clone(), FdFlags::READ, |_, _, _| {})
        .unwrap();
    // ...and a request watcher joining that fd is still refused.
    let r = readable_send(&ev, a.clone());
    r.poll(&ev).unwrap();
    assert_blocking(r.recv(), a.as_raw_fd());
    drop(plain);
    // Made nonblocking, it is accepted.
    a.set_nonblocking(true).unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev.loop_once().unwrap(); // the entry made while blocking is released
    ev.set_wait_timeout(None);
    let r = readable_send(&ev, a.clone());
    (&b).write_all(b"x").unwrap();
    r.poll(&ev).unwrap();
    assert!(r.recv().is_ok());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn watch_fd_checks_the_mode_once_per_fd_registration() {
    let ev = Context::new().unwrap();
    let (a, _b) = tests::socketpair();
    let a = Rc::new(a);
    let first = readable_send(&ev, a.clone());
    assert!(first.is_in_progress());
    // Switched to blocking while registered: the entry was checked already.
    a.set_nonblocking(false).unwrap();
    let second = readable_send(&ev, a.clone());
    assert!(second.is_in_progress(), "{second:?}");
    // Once the fd left the table (its watchers gone, the loop waited), the
    // next registration checks again.
    drop((first, second));
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev.loop_once().unwrap();
    let third = readable_send(&ev, a.clone());
    assert_blocking(third.recv(), a.as_raw_fd());
}

#[test]
fn poll_inside_a_handler_is_a_nested_loop_error() {
    let ev = Context::new().unwrap();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    ev.post(move |ev| {
        let r = echo_send(ev, 3);
        s.set(matches!(r.poll(ev), Ok(())));
        let r2 = sleep_send(ev, Duration::from_secs(1));
        assert!(matches!(r2.poll(ev), Err(Error::Nested)));
    });
    ev.loop_once().unwrap();
    assert!(seen.get(), "an already finished request needs no loop");
}

#[test]
fn wakeups_finish_as_timed_out_and_in_time_order() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    for s in [3u64, 1, 2] {
        let l = log.clone();
        wakeup_send(&ev, ev.now() + Duration::from_secs(s))
            .set_callback(move |_, r| l.push((s, wakeup_recv(r))));
    }
    // A past time: the next loop step, never inside send.
    let l = log.clone();
    let past = wakeup_send(&ev, ev.now() - Duration::from_millis(1));
    assert!(past.is_in_progress());
    past.set_callback(move |_, r| l.push((0, wakeup_recv(r))));
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), [(0, true), (1, true), (2, true), (3, true)]);
}

#[test]
fn end_time_times_out_and_can_be_moved_or_reset() {
    let ev = Context::with_manual_clock(true).unwrap();
    // Times out.
    let r = sleep_send(&ev, Duration::from_secs(10));
    r.set_endtime(ev.now() + Duration::from_secs(1)).unwrap();
    r.poll(&ev).unwrap();
    assert_eq!(r.state(), ReqState::TimedOut);
    assert!(matches!(r.recv(), Err(ReqError::TimedOut)));
    // Moved later than the work: finishes normally.
    let r = sleep_send(&ev, Duration::from_secs(10));
    r.set_endtime(ev.now() + Duration::from_secs(1)).unwrap();
    r.set_endtime(ev.now() + Duration::from_secs(20)).unwrap();
    r.poll(&ev).unwrap();
    assert_eq!(r.recv().unwrap(), "woke");
    // Reset: no timeout.
    let r = sleep_send(&ev, Duration::from_secs(10));
    r.set_endtime(ev.now() + Duration::from_secs(1)).unwrap();
    r.reset_endtime();
    r.poll(&ev).unwrap();
    assert_eq!(r.recv().unwrap(), "woke");
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn cleanup_runs_once_with_the_state_reached() {
    struct C;
    impl Request for C {
        type Output = ();
        type Error = &'static str;
    }
    thread_local! { static SEEN: std::cell::RefCell<Vec<ReqState>> = const { std::cell::RefCell::new(Vec::new()) }; }
    fn record(_: &mut C, s: ReqState) {
        SEEN.with(|v| v.borrow_mut().push(s));
    }
    let ev = Context::new().unwrap();
    let done = Req::start(&ev, C, |_, ctl| {
        ctl.set_cleanup(record);
        Ok(Progress::Done(()))
    });
    let failed = Req::start(&ev, C, |_, ctl| {
        ctl.set_cleanup(record);
        Err(ReqError::User("nope"))
    });
    let dropped = Req::start(&ev, C, |_, ctl| {
        ctl.set_cleanup(record);
        Ok(Progress::Pending)
    });
    assert_eq!(done.recv(), Ok(()));
    assert_eq!(failed.recv(), Err(ReqError::User("nope")));
    drop(dropped);
    SEEN.with(|v| {
        assert_eq!(
            *v.borrow(),
            [ReqState::Done, ReqState::Error, ReqState::Dropped]
        );
    });
}

#[test]
fn cancel_runs_the_hook_and_the_request_finishes_normally() {
    struct Cancellable {
        sub: Option<Req<Wakeup>>,
    }
    impl Request for Cancellable {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let r = Req::start(&ev, Cancellable { sub: None }, |st, ctl| {
        st.sub = Some(wakeup_send(
            ctl.ev(),
            ctl.ev().now() + Duration::from_secs(60),
        ));
        ctl.set_cancel(|st, _| {
            st.sub = None; // stop the work
            Some(Err(ReqError::Cancelled))
        });
        Ok(Progress::Pending)
    });
    assert!(r.cancel());
    assert_eq!(r.state(), ReqState::Cancelled);
    assert!(!r.cancel(), "already finished");
    assert_eq!(r.recv(), Err(ReqError::Cancelled));
    // Without a hook, cancel says no and changes nothing.
    let s = sleep_send(&ev, Duration::from_secs(1));
    assert!(!s.cancel());
    assert!(s.is_in_progress());
    assert_eq!(
        ev.event_counts().requests,
        2,
        "the sleep and its wake-up subrequest"
    );
}

#[test]
fn debug_shows_type_step_state_and_creation_place() {
    let ev = Context::new().unwrap();
    let r = sleep_send(&ev, Duration::from_secs(1));
    let s = format!("{r:?}");
    // `@woke`: the step its wake-up resumes (`ctl.wait(.., Sleep::woke)`).
    assert!(s.contains("type: \"Sleep@woke\""), "{s}");
    assert!(s.contains("state: InProgress"), "{s}");
    assert!(
        s.contains("tests/req.rs:"),
        "created where Req::start was called: {s}"
    );
}

#[test]
fn dropping_the_context_drops_its_requests_and_their_callbacks() {
    let ev = Context::new().unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    sleep_send(&ev, Duration::from_secs(60)).set_callback(move |_, _| c.set(true));
    let held = sleep_send(&ev, Duration::from_secs(60));
    drop(ev);
    assert!(!called.get());
    assert_eq!(held.state(), ReqState::Dropped);
    assert!(matches!(held.recv(), Err(ReqError::ContextGone)));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn set_timeout_duration_max_is_an_end_time_that_never_comes() {
    // Panicked with "overflow when adding duration to instant", and then
    // corrupted memory (the step panicked mid-bookkeeping).
    struct Forever;
    impl Request for Forever {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(false).unwrap();
    let req = Req::start(&ev, Forever, |_, ctl| {
        ctl.set_timeout(Duration::MAX)?;
        Ok(Progress::Pending)
    });
    assert!(req.is_in_progress());
    ev.advance(Duration::from_secs(3600 * 24 * 365 * 50));
    ev.set_wait_timeout(Some(Duration::ZERO));
    assert!(!ev.loop_once().unwrap());
    assert!(req.is_in_progress());
    // Wake-ups at any instant far away work too.
    let w = wakeup_send(&ev, ev.deadline_after(Duration::MAX));
    assert!(w.is_in_progress());
}

/// A request with a cleanup hook logging the state it reached, and a cancel
/// hook that finishes it `Cancelled`.
struct Held {
    log: Log<ReqState>,
}

impl Request for Held {
    type Output = ();
    type Error = Infallible;
}

fn held_send(ev: &Context, log: &Log<ReqState>, secs: u64) -> Req<Held> {
    Req::start(ev, Held { log: log.clone() }, move |_, ctl| {
        ctl.set_cleanup(|st, reached| st.log.push(reached));
        ctl.set_cancel(|_, _| Some(Err(ReqError::Cancelled)));
        let at = ctl.ev().now() + Duration::from_secs(secs);
        ctl.wait(wakeup_send(ctl.ev(), at), |_, _, _| Ok(Progress::Done(())))?;
        Ok(Progress::Pending)
    })
}

#[test]
fn aborting_after_set_callback_drops_the_request_and_the_callback_unrun() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let handle = held_send(&ev, &log, 10).set_callback(move |_, _| c.set(true));
    assert!(handle.is_pending());
    assert_eq!(handle.state(), ReqState::InProgress);
    assert!(handle.abort());
    assert_eq!(log.get(), [ReqState::Dropped], "cleanup ran, once");
    assert!(!ev.has_events(), "its subrequest and timer went with it");
    ev.loop_wait().unwrap();
    assert!(!called.get());
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn aborting_a_finished_request_before_its_callback_ran_stops_the_callback() {
    let ev = Context::new().unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    // Finished inside send: its callback waits for the loop.
    let handle = echo_send(&ev, 1).set_callback(move |_, _| c.set(true));
    assert_eq!(handle.state(), ReqState::Done);
    assert!(handle.is_pending());
    assert!(handle.abort());
    assert!(!ev.has_events());
    ev.loop_wait().unwrap();
    assert!(!called.get());
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn a_callback_handle_does_nothing_once_the_callback_ran() {
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let handle = echo_send(&ev, 1).set_callback(move |_, r| g.push(r.recv()));
    ev.loop_once().unwrap();
    assert_eq!(got.get(), [Ok(1 ^ 0xa5)]);
    assert!(!handle.is_pending());
    assert_eq!(handle.state(), ReqState::Dropped);
    assert!(!handle.cancel());
    assert!(!handle.abort());
}

#[test]
fn cancelling_through_a_callback_handle_delivers_the_outcome_to_the_callback() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let got = Log::new();
    let g = got.clone();
    let handle = held_send(&ev, &log, 10).set_callback(move |_, r| g.push(r.recv()));
    assert!(handle.cancel());
    assert!(!handle.cancel(), "finished: nothing left to cancel");
    ev.loop_wait().unwrap();
    assert_eq!(got.get(), [Err(ReqError::Cancelled)]);
    assert_eq!(log.get(), [ReqState::Cancelled]);
}

#[test]
fn dropping_a_callback_handle_detaches() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let got = Log::new();
    let g = got.clone();
    drop(held_send(&ev, &log, 1).set_callback(move |_, r| g.push(r.recv())));
    ev.loop_wait().unwrap();
    assert_eq!(got.get(), [Ok(())]);
    assert_eq!(log.get(), [ReqState::Done]);
}

#[test]
fn a_callback_handle_outliving_its_context_is_inert() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let handle = held_send(&ev, &log, 1).set_callback(|_, _| unreachable!());
    drop(ev);
    assert_eq!(log.get(), [ReqState::Dropped]);
    assert!(!handle.is_pending());
    assert!(!handle.abort());
}
