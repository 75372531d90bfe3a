//! The worker pool and completers: results delivered on the loop, the loop
//! waiting for a job, dropped requests (queued jobs skipped, results
//! discarded), panics in a job, a saturated pool, and finishing a request
//! from another thread. Every wait on another thread is for an event, never
//! for a length of time (the generous timeouts only turn a hang into a
//! failure).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tevent::pool::{Pool, completion_send, job_recv, job_send};
use tevent::trace::LoopPoint;
use tevent::{Context, Req, ReqError, ReqState, join_all_send};

/// Long enough to mean "hung", never reached when things work.
const HUNG: Duration = Duration::from_secs(120);

/// A gate a job waits at until the test opens it.
#[derive(Clone)]
struct Gate(Arc<Mutex<Receiver<()>>>);

fn gate() -> (Sender<()>, Gate) {
    let (tx, rx) = channel();
    (tx, Gate(Arc::new(Mutex::new(rx))))
}

impl Gate {
    fn wait(&self) {
        self.0
            .lock()
            .unwrap()
            .recv_timeout(HUNG)
            .expect("the test opens the gate");
    }
}

#[test]
fn a_job_runs_off_the_loop_and_its_result_arrives_on_the_loop() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(2);
    let loop_thread = std::thread::current().id();
    let req = job_send(&ev, &pool, move || {
        assert_ne!(std::thread::current().id(), loop_thread);
        6 * 7
    });
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(42));
}

#[test]
fn the_loop_waits_for_a_job_instead_of_reporting_a_stall() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(1);
    let (open, gate) = gate();
    // The job may only finish once the loop is blocked in its wait: a loop
    // that did not count the job would have returned RequestStalled first.
    let open = Mutex::new(Some(open));
    ev.set_loop_trace_hook(Some(Box::new(move |p| {
        if p == LoopPoint::BeforeWait
            && let Some(tx) = open.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
    })));
    let req = job_send(&ev, &pool, move || {
        gate.wait();
        "done"
    });
    assert!(ev.has_events(), "a job in flight is an event");
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok("done"));
    assert!(!ev.has_events());
}

#[test]
fn a_panic_in_a_job_finishes_its_request_panicked_and_the_worker_goes_on() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(1);
    let bad = job_send(&ev, &pool, || -> u32 {
        panic!("a job panics (expected by the test)")
    });
    assert_eq!(bad.poll_recv(&ev).unwrap(), Err(ReqError::Panicked));
    let good = job_send(&ev, &pool, || 5u32);
    assert_eq!(good.poll_recv(&ev).unwrap(), Ok(5));
    assert_eq!(pool.threads(), 1, "the same worker ran both");
}

/// Sends on a channel when dropped, from whichever thread drops it.
struct Noisy(Sender<std::thread::ThreadId>);

impl Drop for Noisy {
    fn drop(&mut self) {
        let _ = self.0.send(std::thread::current().id());
    }
}

#[test]
fn dropping_a_running_jobs_request_discards_its_result_on_the_worker() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(1);
    let (open, gate) = gate();
    let (started_tx, started) = channel();
    let (dropped_tx, dropped) = channel();
    let req = job_send(&ev, &pool, move || {
        started_tx.send(std::thread::current().id()).unwrap();
        gate.wait();
        Noisy(dropped_tx)
    });
    let worker = started.recv_timeout(HUNG).unwrap();
    drop(req);
    assert!(!ev.has_events(), "nothing to wait for any more");
    open.send(()).unwrap();
    assert_eq!(
        dropped.recv_timeout(HUNG).unwrap(),
        worker,
        "dropped on the worker"
    );
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev.loop_wait().unwrap();
    assert_eq!(ev.event_counts().requests, 0);
}

#[test]
fn a_queued_job_whose_request_was_dropped_never_runs() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(1);
    let (open, gate) = gate();
    let (started_tx, started) = channel();
    let ran = Arc::new(AtomicUsize::new(0));
    let blocker = job_send(&ev, &pool, move || {
        started_tx.send(()).unwrap();
        gate.wait();
    });
    started.recv_timeout(HUNG).unwrap();
    let r = ran.clone();
    let skipped = job_send(&ev, &pool, move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let r = ran.clone();
    let after = job_send(&ev, &pool, move || r.fetch_add(10, Ordering::SeqCst));
    assert_eq!(pool.queued(), 2);
    drop(skipped);
    open.send(()).unwrap();
    assert_eq!(blocker.poll_recv(&ev).unwrap(), Ok(()));
    // One thread, FIFO: `after` runs after the place of `skipped`.
    assert_eq!(after.poll_recv(&ev).unwrap(), Ok(0));
    assert_eq!(ran.load(Ordering::SeqCst), 10);
}

#[test]
fn a_saturated_pool_queues_jobs_and_never_runs_more_than_its_threads() {
    const THREADS: usize = 2;
    const JOBS: usize = 6;
    let ev = Context::new().unwrap();
    let pool = Pool::new(THREADS);
    let (open, gate) = gate();
    let (started_tx, started) = channel();
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let reqs: Vec<_> = (0..JOBS)
        .map(|i| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            let (now, most) = (now.clone(), most.clone());
            job_send(&ev, &pool, move || {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                gate.wait();
                now.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    for _ in 0..THREADS {
        started.recv_timeout(HUNG).unwrap();
    }
    assert_eq!(pool.threads(), THREADS);
    assert_eq!(pool.running(), THREADS);
    assert_eq!(pool.queued(), JOBS - THREADS);
    for _ in 0..JOBS {
        open.send(()).unwrap();
    }
    let all = join_all_send(&ev, reqs).poll_recv(&ev).unwrap().unwrap();
    assert_eq!(all, (0..JOBS).map(Ok).collect::<Vec<_>>());
    assert_eq!(most.load(Ordering::SeqCst), THREADS);
    assert_eq!(pool.threads(), THREADS, "no thread beyond the bound");
}

#[test]
fn one_pool_serves_requests_waited_for_from_steps() {
    struct Twice;
    impl tevent::Request for Twice {
        type Output = u64;
        type Error = std::convert::Infallible;
    }
    let ev = Context::new().unwrap();
    let pool = Pool::new(2);
    let p = pool.clone();
    let req = Req::start(&ev, Twice, move |_, ctl| {
        ctl.wait(job_send(ctl.ev(), &p, || 21u64), |_, _, job| {
            Ok(tevent::Progress::Done(job_recv(job)? * 2))
        })?;
        Ok(tevent::Progress::Pending)
    });
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(42));
}

#[test]
fn dropping_the_pool_still_runs_the_jobs_it_accepted() {
    let ev = Context::new().unwrap();
    let pool = Pool::new(1);
    let reqs: Vec<_> = (0..3u32).map(|i| job_send(&ev, &pool, move || i)).collect();
    drop(pool);
    let all = join_all_send(&ev, reqs).poll_recv(&ev).unwrap().unwrap();
    assert_eq!(all, [Ok(0), Ok(1), Ok(2)]);
}

#[test]
fn a_completer_finishes_a_request_from_another_thread() {
    let ev = Context::new().unwrap();
    let (req, completer) = completion_send::<Vec<u8>>(&ev);
    assert!(completer.is_wanted());
    let t = std::thread::spawn(move || completer.complete(b"hi".to_vec()));
    assert_eq!(req.poll_recv(&ev).unwrap(), Ok(b"hi".to_vec()));
    assert_eq!(t.join().unwrap(), Ok(()));
}

#[test]
fn a_completer_dropped_unused_cancels_its_request() {
    let ev = Context::new().unwrap();
    let (req, completer) = completion_send::<u8>(&ev);
    std::thread::spawn(move || drop(completer)).join().unwrap();
    assert_eq!(req.poll_recv(&ev).unwrap(), Err(ReqError::Cancelled));
}

#[test]
fn a_completer_of_a_dropped_request_hands_the_value_back() {
    let ev = Context::new().unwrap();
    let (req, completer) = completion_send::<u8>(&ev);
    assert_eq!(req.state(), ReqState::InProgress);
    drop(req);
    assert!(!completer.is_wanted());
    assert_eq!(completer.complete(7), Err(7));

    let (req, completer) = completion_send::<u8>(&ev);
    drop(ev);
    assert!(!completer.is_wanted(), "its context is gone");
    assert_eq!(completer.complete(8), Err(8));
    assert!(matches!(req.recv(), Err(ReqError::ContextGone)));
}
