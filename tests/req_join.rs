//! Waiting for several requests (join_all, first), and poll_recv: results in
//! order, failures kept in place, losers dropped, use from a step and from
//! the top level, and how loop and request errors come back.

use std::convert::Infallible;
use std::time::Duration;

use tests::Log;
use tevent::{
    Context, Ctl, Error, NoRequests, Progress, Req, ReqError, ReqState, Request, StepResult,
    Wakeup, first_recv, first_send, join_all_recv, join_all_send, wakeup_send,
};

/// Finishes `secs` seconds after it starts with `Ok(id)`, or `Err(id)` when
/// `fail`; its cleanup hook logs `(id, state reached)`.
struct Job {
    id: u32,
    fail: bool,
    log: Log<(u32, ReqState)>,
}

impl Request for Job {
    type Output = u32;
    type Error = u32;
}

impl Job {
    fn woke(&mut self, _: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
        if self.fail {
            Err(ReqError::User(self.id))
        } else {
            Ok(Progress::Done(self.id))
        }
    }
}

fn job_send(ev: &Context, id: u32, secs: u64, fail: bool, log: &Log<(u32, ReqState)>) -> Req<Job> {
    let st = Job {
        id,
        fail,
        log: log.clone(),
    };
    Req::start(ev, st, move |_, ctl| {
        ctl.set_cleanup(|st, reached| st.log.push((st.id, reached)));
        let at = ctl.ev().now() + Duration::from_secs(secs);
        ctl.wait(wakeup_send(ctl.ev(), at), Job::woke)?;
        Ok(Progress::Pending)
    })
}

#[test]
fn join_all_gives_every_result_in_the_order_given() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let t0 = ev.now();
    let all = join_all_send(
        &ev,
        vec![
            job_send(&ev, 1, 3, false, &log),
            job_send(&ev, 2, 1, true, &log),
            job_send(&ev, 3, 2, false, &log),
        ],
    );
    all.poll(&ev).unwrap();
    assert_eq!(
        ev.now(),
        t0 + Duration::from_secs(3),
        "waited for the slowest"
    );
    assert_eq!(
        join_all_recv(all).unwrap(),
        [Ok(1), Err(ReqError::User(2)), Ok(3)],
        "a failure stays in its place and does not stop the others"
    );
    assert_eq!(
        log.get(),
        [
            (2, ReqState::Error),
            (3, ReqState::Done),
            (1, ReqState::Done)
        ]
    );
}

#[test]
fn join_all_of_nothing_finishes_from_the_loop_with_no_results() {
    let ev = Context::new().unwrap();
    let all = join_all_send::<Job>(&ev, Vec::new());
    assert_eq!(all.state(), ReqState::Done);
    assert_eq!(all.poll_recv(&ev).unwrap(), Ok(Vec::new()));
}

#[test]
fn dropping_a_join_drops_the_requests_still_running() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let all = join_all_send(
        &ev,
        vec![
            job_send(&ev, 1, 1, false, &log),
            job_send(&ev, 2, 5, false, &log),
        ],
    );
    ev.loop_until(|| log.len() == 1).unwrap();
    assert_eq!(log.take(), [(1, ReqState::Done)]);
    drop(all);
    assert_eq!(log.take(), [(2, ReqState::Dropped)]);
    assert!(!ev.has_events());
}

#[test]
fn a_join_with_a_request_of_another_context_fails_wrong_context() {
    let ev = Context::new().unwrap();
    let other = Context::new().unwrap();
    let log = Log::new();
    let all = join_all_send(&ev, vec![job_send(&other, 1, 1, false, &log)]);
    assert_eq!(all.poll_recv(&ev).unwrap(), Err(ReqError::WrongContext));
}

/// A parent that waits for a group from one of its steps.
struct Sum {
    ids: Vec<u32>,
}

impl Request for Sum {
    type Output = u32;
    type Error = u32;
}

impl Sum {
    fn all_done(
        &mut self,
        _: &mut Ctl<'_, Self>,
        all: Req<tevent::JoinAll<Job>>,
    ) -> StepResult<Self> {
        let mut total = 0;
        for r in all.recv().map_err(ReqError::widen)? {
            total += r?;
        }
        Ok(Progress::Done(total))
    }
}

#[test]
fn a_step_waits_for_a_group() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let l = log.clone();
    let sum = Req::start(&ev, Sum { ids: vec![4, 5, 6] }, move |st, ctl| {
        let subs = st
            .ids
            .iter()
            .map(|&id| job_send(ctl.ev(), id, u64::from(id), false, &l))
            .collect();
        ctl.wait(join_all_send(ctl.ev(), subs), Sum::all_done)?;
        Ok(Progress::Pending)
    });
    assert_eq!(sum.poll_recv(&ev).unwrap(), Ok(15));
    assert_eq!(log.len(), 3);
}

#[test]
fn first_finishes_with_the_first_and_drops_the_rest() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let t0 = ev.now();
    let race = first_send(
        &ev,
        vec![
            job_send(&ev, 1, 30, false, &log),
            job_send(&ev, 2, 2, false, &log),
            job_send(&ev, 3, 60, false, &log),
        ],
    );
    race.poll(&ev).unwrap();
    assert_eq!(ev.now(), t0 + Duration::from_secs(2));
    assert_eq!(first_recv(race), Ok((1, Ok(2))));
    let mut seen = log.get();
    seen.sort_by_key(|(id, _)| *id);
    assert_eq!(
        seen,
        [
            (1, ReqState::Dropped),
            (2, ReqState::Done),
            (3, ReqState::Dropped)
        ]
    );
    assert!(!ev.has_events(), "the losers' timers are gone");
}

#[test]
fn a_failure_can_finish_first() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let race = first_send(
        &ev,
        vec![
            job_send(&ev, 1, 5, false, &log),
            job_send(&ev, 2, 1, true, &log),
        ],
    );
    assert_eq!(
        race.poll_recv(&ev).unwrap(),
        Ok((1, Err(ReqError::User(2))))
    );
}

#[test]
fn first_of_nothing_fails_no_requests() {
    let ev = Context::new().unwrap();
    let race = first_send::<Job>(&ev, Vec::new());
    assert_eq!(
        race.poll_recv(&ev).unwrap(),
        Err(ReqError::User(NoRequests))
    );
}

#[test]
fn first_from_a_step_with_an_end_time_on_the_group() {
    struct Race;
    impl Request for Race {
        type Output = &'static str;
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let l = log.clone();
    let race = Req::start(&ev, Race, move |_, ctl| {
        let group = first_send(ctl.ev(), vec![job_send(ctl.ev(), 1, 10, false, &l)]);
        group
            .set_endtime(ctl.ev().now() + Duration::from_secs(1))
            .map_err(|e| e.map_user(|_| unreachable!("no user error here")))?;
        ctl.wait(group, |_, _, group| {
            Ok(Progress::Done(match first_recv(group) {
                Err(ReqError::TimedOut) => "timed out",
                _ => "finished",
            }))
        })?;
        Ok(Progress::Pending)
    });
    assert_eq!(race.poll_recv(&ev).unwrap(), Ok("timed out"));
    assert_eq!(log.get(), [(1, ReqState::Dropped)]);
}

#[test]
fn poll_recv_keeps_request_errors_inside_and_loop_errors_outside() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    assert_eq!(
        job_send(&ev, 7, 1, false, &log).poll_recv(&ev).unwrap(),
        Ok(7)
    );
    assert_eq!(
        job_send(&ev, 8, 1, true, &log).poll_recv(&ev).unwrap(),
        Err(ReqError::User(8))
    );

    // The loop's failure: the request is dropped with the handle.
    let other = Context::new().unwrap();
    let req = job_send(&ev, 9, 1, false, &log);
    assert!(matches!(req.poll_recv(&other), Err(Error::WrongContext)));
    assert_eq!(log.get().last(), Some(&(9, ReqState::Dropped)));

    // Inside a handler of the same context: Nested.
    let seen = Log::new();
    let s = seen.clone();
    let l = log.clone();
    ev.post(move |ev| {
        let req = job_send(ev, 10, 1, false, &l);
        s.push(matches!(req.poll_recv(ev), Err(Error::Nested)));
    });
    ev.loop_once().unwrap();
    assert_eq!(seen.get(), [true]);
}

#[test]
fn poll_recv_of_a_request_that_can_never_finish_is_stalled() {
    struct Never;
    impl Request for Never {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::new().unwrap();
    let req = Req::start(&ev, Never, |_, _| Ok(Progress::Pending));
    assert!(matches!(req.poll_recv(&ev), Err(Error::RequestStalled)));
    assert_eq!(ev.event_counts().requests, 0, "dropped with its handle");
}
