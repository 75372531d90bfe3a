//! Queues: FIFO triggering from the loop, stop/start, length, blockers, the
//! wait-as-lock guard, and teardown that fails waiting requests.

use std::convert::Infallible;
use std::time::Duration;

use tests::Log;
use tevent::{
    Context, Ctl, Progress, Queue, Req, ReqError, Request, StepResult, queue_wait_recv,
    queue_wait_send, wakeup_recv, wakeup_send,
};

/// A job that, once triggered, works for `ms` milliseconds.
struct Job {
    id: u32,
    ms: u64,
    log: Log<String>,
}
impl Request for Job {
    type Output = u32;
    type Error = Infallible;
}
fn job_trigger(st: &mut Job, ctl: &mut Ctl<'_, Job>) -> StepResult<Job> {
    st.log.push(format!("start {}", st.id));
    let w = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(st.ms));
    ctl.wait(w, |st, _, w| {
        assert!(wakeup_recv(w));
        st.log.push(format!("end {}", st.id));
        Ok(Progress::Done(st.id))
    })?;
    Ok(Progress::Pending)
}
fn job_send(ev: &Context, q: &Queue, id: u32, ms: u64, log: &Log<String>) -> Req<Job> {
    let log = log.clone();
    let req = Req::start(ev, Job { id, ms, log }, |_, _| Ok(Progress::Pending));
    q.add(&req, job_trigger).unwrap();
    req
}

#[test]
fn entries_run_one_at_a_time_in_fifo_order() {
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "jobs");
    assert_eq!(q.name(), "jobs");
    let log = Log::new();
    let jobs: Vec<_> = [(1, 30), (2, 10), (3, 20)]
        .into_iter()
        .map(|(id, ms)| job_send(&ev, &q, id, ms, &log))
        .collect();
    assert!(log.is_empty(), "the trigger never runs inside add");
    assert_eq!(q.len(), 3);
    for j in &jobs {
        j.poll(&ev).unwrap();
    }
    assert_eq!(
        log.get(),
        ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]
    );
    assert!(q.is_empty());
    assert_eq!(
        jobs.into_iter()
            .map(|j| j.recv().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn stop_and_start() {
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "q");
    let log = Log::new();
    q.stop();
    assert!(!q.is_running());
    let a = job_send(&ev, &q, 1, 5, &log);
    ev.loop_wait().unwrap();
    assert!(log.is_empty(), "a stopped queue triggers nothing");
    assert_eq!(q.len(), 1);
    q.start();
    a.poll(&ev).unwrap();
    assert_eq!(log.get(), ["start 1", "end 1"]);
}

#[test]
fn a_dropped_head_lets_the_next_entry_run() {
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "q");
    let log = Log::new();
    let a = job_send(&ev, &q, 1, 1000, &log);
    let b = job_send(&ev, &q, 2, 5, &log);
    ev.loop_once().unwrap(); // triggers 1
    assert_eq!(log.get(), ["start 1"]);
    drop(a);
    assert_eq!(q.len(), 1);
    b.poll(&ev).unwrap();
    assert_eq!(log.get(), ["start 1", "start 2", "end 2"]);
}

#[test]
fn a_blocker_holds_the_queue_until_its_request_finishes() {
    struct Hold;
    impl Request for Hold {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "q");
    let log = Log::new();
    let holder = Req::start(&ev, Hold, |_, ctl| {
        ctl.wait(
            wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(50)),
            |_, _, _| Ok(Progress::Done(())),
        )?;
        Ok(Progress::Pending)
    });
    q.add_blocker(&holder).unwrap();
    let job = job_send(&ev, &q, 1, 1, &log);
    let t0 = ev.now();
    job.poll(&ev).unwrap();
    assert_eq!(log.get(), ["start 1", "end 1"]);
    assert!(
        ev.now() - t0 >= Duration::from_millis(51),
        "the job waited for the blocker"
    );
    assert_eq!(
        holder.recv(),
        Ok(()),
        "finished, kept, and not blocking: released at finish"
    );
}

#[test]
fn queue_wait_is_a_lock_held_by_its_guard() {
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "lock");
    let first = queue_wait_send(&ev, &q);
    let second = queue_wait_send(&ev, &q);
    first.poll(&ev).unwrap();
    let guard = queue_wait_recv(first).unwrap();
    assert_eq!(q.len(), 2, "the guard holds the head");
    ev.loop_wait().unwrap();
    assert!(second.is_in_progress(), "blocked while the guard lives");
    drop(guard);
    second.poll(&ev).unwrap();
    let g2 = queue_wait_recv(second).unwrap();
    assert_eq!(q.len(), 1);
    drop(g2);
    assert!(q.is_empty());
}

#[test]
fn dropping_the_queue_fails_the_waiting_requests() {
    let ev = Context::with_manual_clock(true).unwrap();
    let q = Queue::new(&ev, "q");
    let log = Log::new();
    let running = job_send(&ev, &q, 1, 1000, &log);
    let waiting = job_send(&ev, &q, 2, 1, &log);
    let lock = queue_wait_send(&ev, &q);
    ev.loop_once().unwrap(); // triggers job 1
    drop(q);
    for r in [running, waiting] {
        assert_eq!(r.recv(), Err(ReqError::QueueDropped));
    }
    assert!(matches!(queue_wait_recv(lock), Err(ReqError::QueueDropped)));
    assert_eq!(log.get(), ["start 1"]);
    assert_eq!(ev.event_counts().total(), 0);
}

#[test]
fn adding_a_finished_request_is_refused() {
    struct Now;
    impl Request for Now {
        type Output = ();
        type Error = Infallible;
    }
    let ev = Context::new().unwrap();
    let q = Queue::new(&ev, "q");
    let done = Req::start(&ev, Now, |_, _| Ok(Progress::Done(())));
    assert!(q.add_blocker(&done).is_err());
    assert!(q.is_empty());
}

#[test]
fn a_request_of_another_context_cannot_join_a_queue() {
    let ev = Context::new().unwrap();
    let other = Context::new().unwrap();
    let q = Queue::new(&ev, "one context");
    let log = Log::default();
    let foreign = Req::start(
        &other,
        Job {
            id: 1,
            ms: 1,
            log: log.clone(),
        },
        |_, _| Ok(Progress::Pending),
    );
    assert_eq!(q.add(&foreign, job_trigger), Err(ReqError::WrongContext));
    assert_eq!(q.add_blocker(&foreign), Err(ReqError::WrongContext));
    assert!(q.is_empty());
    assert!(foreign.is_in_progress(), "the request itself is untouched");
}
