//! Timers: deadline order, FIFO on ties, restart and cancel, bounded heap
//! growth, and no starvation by always-ready fds.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tests::{Log, send, socketpair};
use tevent::{Context, FdFlags};

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn a_hundred_thousand_random_timers_fire_in_deadline_order() {
    let ev = Context::with_manual_clock(true).unwrap();
    let t0 = ev.now();
    let fired: Log<(Instant, usize)> = Log::new();
    let mut seed = 42;
    let timers: Vec<_> = (0..100_000)
        .map(|i| {
            let at = t0 + Duration::from_micros(splitmix64(&mut seed) % 50_000);
            let f = fired.clone();
            ev.add_timer(at, move |ev, me| {
                assert!(ev.now() >= me.deadline(), "never early");
                f.push((me.deadline(), i));
            })
        })
        .collect();
    ev.loop_wait().unwrap();
    let order = fired.get();
    assert_eq!(order.len(), 100_000);
    for w in order.windows(2) {
        assert!(
            w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "out of order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    drop(timers);
}

#[test]
fn real_clock_timers_fire_in_order_and_never_early() {
    let ev = Context::new().unwrap();
    let fired: Log<Instant> = Log::new();
    let base = ev.now();
    let mut seed = 7;
    let timers: Vec<_> = (0..1000)
        .map(|_| {
            let at = base + Duration::from_micros(splitmix64(&mut seed) % 20_000);
            let f = fired.clone();
            ev.add_timer(at, move |ev, me| {
                let d = me.deadline();
                assert!(ev.now() >= d, "fired early");
                f.push(d);
            })
        })
        .collect();
    ev.loop_wait().unwrap();
    let got = fired.get();
    assert_eq!(got.len(), 1000);
    assert!(got.windows(2).all(|w| w[0] <= w[1]));
    drop(timers);
}

#[test]
fn equal_deadlines_fire_in_the_order_armed() {
    let ev = Context::with_manual_clock(true).unwrap();
    let at = ev.now() + Duration::from_millis(5);
    let fired = Log::new();
    let timers: Vec<_> = (0..50)
        .map(|i| {
            let f = fired.clone();
            ev.add_timer(at, move |_, _| f.push(i))
        })
        .collect();
    ev.loop_wait().unwrap();
    assert_eq!(fired.get(), (0..50).collect::<Vec<_>>());
    drop(timers);
}

#[test]
fn restart_moves_and_dropping_cancels() {
    let ev = Context::with_manual_clock(true).unwrap();
    let t0 = ev.now();
    let fired = Log::new();
    let (fa, fb) = (fired.clone(), fired.clone());
    let a = ev.add_timer(t0 + Duration::from_secs(1), move |ev, _| {
        fa.push(("a", ev.now() - t0))
    });
    let b = ev.add_timer(t0 + Duration::from_secs(2), move |ev, _| {
        fb.push(("b", ev.now() - t0))
    });
    a.restart(t0 + Duration::from_secs(3)).unwrap();
    let c = ev.add_timer(t0 + Duration::from_secs(1), |_, _| panic!("cancelled"));
    drop(c);
    ev.loop_wait().unwrap();
    assert_eq!(
        fired.get(),
        [("b", Duration::from_secs(2)), ("a", Duration::from_secs(3))]
    );
    assert!(!a.is_armed() && !b.is_armed());
    assert!(!a.cancel(), "cancelling a fired timer is a harmless false");
    // A fired timer can be armed again.
    a.restart_after(Duration::from_secs(1)).unwrap();
    assert!(a.is_armed());
    ev.loop_wait().unwrap();
    assert_eq!(fired.len(), 3);
}

#[test]
fn a_repeating_timer_restarts_itself() {
    let ev = Context::with_manual_clock(true).unwrap();
    let t0 = ev.now();
    let ticks = Log::new();
    let t = ticks.clone();
    let _timer = ev.add_timer_after(Duration::from_millis(100), move |ev, me| {
        t.push((ev.now() - t0).as_millis());
        if t.len() < 5 {
            me.restart_after(Duration::from_millis(100));
        }
    });
    ev.loop_wait().unwrap();
    assert_eq!(ticks.get(), [100, 200, 300, 400, 500]);
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn cancelled_entries_do_not_pile_up() {
    let ev = Context::with_manual_clock(false).unwrap();
    let far = ev.now() + Duration::from_secs(3600);
    let keep: Vec<_> = (0..100).map(|_| ev.add_timer(far, |_, _| {})).collect();
    for round in 0..10_000u64 {
        let t = ev.add_timer(far + Duration::from_secs(round), |_, _| {});
        t.restart(far + Duration::from_secs(round + 1)).unwrap();
        drop(t);
        keep[(round % 100) as usize]
            .restart(far + Duration::from_millis(round))
            .unwrap();
    }
    let c = ev.event_counts();
    assert_eq!(c.armed_timers, 100);
    assert!(
        c.timer_heap_entries <= 2 * c.armed_timers + 65,
        "heap holds {} entries for {} armed timers",
        c.timer_heap_entries,
        c.armed_timers
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn an_always_ready_fd_does_not_starve_a_due_timer() {
    // Deterministic: each fd dispatch advances the manual clock by 1 ms; the
    // timer due at 50 ms must run on the first step after it is due.
    let ev = Context::with_manual_clock(false).unwrap();
    let (a, b) = socketpair();
    send(&b, b"never read");
    let fd_calls = Rc::new(Cell::new(0u32));
    let fc = fd_calls.clone();
    let _w = ev
        .add_fd(a.into(), FdFlags::READ, move |ev, _, _| {
            fc.set(fc.get() + 1);
            ev.advance(Duration::from_millis(1));
        })
        .unwrap();
    let fired_after = Rc::new(Cell::new(None));
    let fa = fired_after.clone();
    let fc = fd_calls.clone();
    let _t = ev.add_timer_after(Duration::from_millis(50), move |_, _| {
        fa.set(Some(fc.get()))
    });
    ev.loop_until(|| fired_after.get().is_some()).unwrap();
    assert_eq!(fired_after.get(), Some(50), "fired as soon as it was due");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn an_always_ready_fd_does_not_starve_a_timer_on_the_real_clock() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    send(&b, b"never read");
    let fd_calls = Rc::new(Cell::new(0u64));
    let fc = fd_calls.clone();
    let _w = ev
        .add_fd(a.into(), FdFlags::READ, move |_, _, _| fc.set(fc.get() + 1))
        .unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let _t = ev.add_timer_after(Duration::from_millis(50), move |_, _| f.set(true));
    ev.loop_until(|| fired.get()).unwrap();
    assert!(fd_calls.get() > 0, "the fd was served meanwhile");
}

#[test]
fn zero_slack_and_default_slack_both_fire_every_timer() {
    for slack in [Duration::ZERO, tevent::DEFAULT_TIMER_SLACK] {
        let ev = Context::new().unwrap();
        assert_eq!(ev.set_timer_slack(slack), tevent::DEFAULT_TIMER_SLACK);
        let n = Rc::new(Cell::new(0));
        let timers: Vec<_> = (0..20)
            .map(|i| {
                let n = n.clone();
                ev.add_timer_after(Duration::from_micros(300 * i), move |ev, me| {
                    assert!(ev.now() >= me.deadline());
                    n.set(n.get() + 1)
                })
            })
            .collect();
        ev.loop_wait().unwrap();
        assert_eq!(n.get(), 20);
        drop(timers);
    }
}

// Duration::MAX is how callers write "never": every entry point that adds a
// duration to an instant clamps it to tevent::FAR_FUTURE instead of
// overflowing (each of these panicked with "overflow when adding duration to
// instant").

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn add_timer_after_duration_max_is_a_timer_that_never_fires() {
    let ev = Context::with_manual_clock(false).unwrap();
    let t0 = ev.now();
    let t = ev.add_timer_after(Duration::MAX, |_, _| panic!("never"));
    assert!(t.is_armed());
    assert_eq!(t.deadline(), Some(t0 + tevent::FAR_FUTURE));
    ev.advance(Duration::from_secs(3600 * 24 * 365));
    ev.set_wait_timeout(Some(Duration::ZERO));
    assert!(!ev.loop_once().unwrap());
}

#[test]
fn restart_after_duration_max_from_the_handle_and_from_the_handler() {
    let ev = Context::with_manual_clock(true).unwrap();
    let t0 = ev.now();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let t = ev.add_timer_after(Duration::from_millis(1), move |_, me| {
        f.set(f.get() + 1);
        me.restart_after(Duration::MAX);
    });
    ev.loop_once().unwrap();
    assert_eq!(fired.get(), 1);
    assert!(t.deadline().unwrap() >= t0 + tevent::FAR_FUTURE);
    t.restart_after(Duration::MAX).unwrap();
    assert!(t.is_armed());
}

#[test]
fn advancing_a_manual_clock_by_duration_max_moves_it_far_ahead() {
    let ev = Context::with_manual_clock(false).unwrap();
    let t0 = ev.now();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let _t = ev.add_timer_after(Duration::from_secs(3600), move |_, _| f.set(true));
    assert!(ev.advance(Duration::MAX));
    assert_eq!(ev.now(), t0 + tevent::FAR_FUTURE);
    ev.loop_once().unwrap();
    assert!(fired.get());
    // Once more: still no overflow.
    assert!(ev.advance(Duration::MAX));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn a_wait_timeout_of_duration_max_waits_without_end() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(Some(Duration::MAX));
    let far = ev.add_timer_after(Duration::MAX, |_, _| panic!("never"));
    let remote = ev.remote();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .send(move |_| r.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap();
    });
    // Blocks (no timer is near) until the remote closure wakes it.
    ev.loop_until(|| ran.load(std::sync::atomic::Ordering::SeqCst))
        .unwrap();
    sender.join().unwrap();
    drop(far);
}
