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
