//! The cross-thread `Remote` handle.

use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tevent::Context;

#[test]
fn a_hundred_threads_times_a_hundred_closures_all_run_once() {
    let ev = Context::new().unwrap();
    let seen = Rc::new(std::cell::RefCell::new(vec![0u8; 100 * 100]));
    // Closures are Send; they reach loop-local state through the context's
    // thread: a posted counter keyed by (thread, n) in a thread-local.
    thread_local! {
        static HITS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let remote = ev.remote();
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100u32)
        .map(|t| {
            let r = remote.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for n in 0..100u32 {
                    r.send(move |_| HITS.with(|h| h.borrow_mut().push(t * 100 + n)))
                        .unwrap();
                }
            })
        })
        .collect();
    let done = || HITS.with(|h| h.borrow().len()) == 10_000;
    ev.loop_until(done).unwrap();
    for t in threads {
        t.join().unwrap();
    }
    HITS.with(|h| {
        for id in h.borrow().iter() {
            seen.borrow_mut()[*id as usize] += 1;
        }
    });
    assert!(
        seen.borrow().iter().all(|c| *c == 1),
        "each closure ran exactly once"
    );
    // Per sending thread, arrival order is kept.
    HITS.with(|h| {
        let h = h.borrow();
        for t in 0..100 {
            let mine: Vec<_> = h.iter().filter(|id| **id / 100 == t).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
        }
    });
}

#[test]
fn a_send_wakes_a_loop_blocked_without_timeout() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(None); // only a wake-up can end the wait
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let remote = ev.remote();
    let f = flag.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        remote
            .send(move |_| f.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap();
    });
    // Liveness watchdog: a loop that is never woken fails instead of hanging.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !d.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("remote send did not wake the loop");
            std::process::abort();
        }
    });
    ev.loop_until(|| flag.load(std::sync::atomic::Ordering::SeqCst))
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sender.join().unwrap();
}

/// A send that ends a blocked `loop_once` runs in that same call: the call
/// reports that it ran something (it used to return `Ok(false)` and leave the
/// closure to the next step, so `while ev.loop_once()? {}` stopped early).
#[test]
fn a_send_that_wakes_loop_once_runs_in_that_step() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(Some(Duration::from_secs(60)));
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let remote = ev.remote();
    let f = flag.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        remote
            .send(move |_| f.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap();
    });
    assert!(
        ev.loop_once().unwrap(),
        "the step that was woken ran nothing"
    );
    assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    sender.join().unwrap();
}

/// The same for a request finished from another thread through the pool's
/// `Completer`: the woken step runs the completer's closure, which schedules
/// the request's wake-up, and the next step delivers the result without
/// waiting again.
#[test]
fn a_completion_that_wakes_loop_once_is_delivered_in_that_step() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(Some(Duration::from_secs(60)));
    let (req, completer) = tevent::pool::completion_send::<u32>(&ev);
    let got = std::rc::Rc::new(std::cell::Cell::new(None));
    let g = got.clone();
    let _h = req.set_callback(move |_, req| g.set(Some(tevent::pool::job_recv(req))));
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        completer.complete(7).unwrap();
    });
    assert!(
        ev.loop_once().unwrap(),
        "the step that was woken ran nothing"
    );
    ev.set_wait_timeout(Some(Duration::ZERO));
    assert!(ev.loop_once().unwrap(), "the wake-up did not run");
    assert_eq!(got.take(), Some(Ok(7)));
    sender.join().unwrap();
}

#[test]
fn sending_after_the_context_is_dropped_fails_and_returns_the_closure() {
    let ev = Context::new().unwrap();
    let remote = ev.remote();
    assert!(!remote.is_closed());
    remote.send(|_| panic!("queued but never run")).unwrap();
    drop(ev);
    assert!(remote.is_closed());
    let err = remote.send(|_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the event context behind this Remote has been dropped"
    );
    let _f: tevent::RemoteFn = err.0;
}

#[test]
fn remote_is_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<tevent::Remote>();
}
