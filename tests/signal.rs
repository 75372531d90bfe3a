//! Signal events. `harness = false`: this binary runs on one thread (plus the
//! ones a test starts itself), so libtest's worker threads cannot take the
//! signals. Each check runs in turn; a failure panics and the binary exits
//! non-zero.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tests::Log;
use tevent::{Context, Error};

fn raise(sig: i32) {
    // SAFETY: raise() is always safe to call; the disposition is ours.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// The handler address currently installed for `sig`.
fn disposition(sig: i32) -> libc::sighandler_t {
    // SAFETY: querying with a null new action only writes into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

fn counts_add_up_over_a_thousand_signals() {
    let ev = Context::new().unwrap();
    let total = Rc::new(Cell::new(0u32));
    let calls = Rc::new(Cell::new(0u32));
    let (t, c) = (total.clone(), calls.clone());
    let _s = ev
        .add_signal(libc::SIGUSR1, move |_, me, count| {
            assert_eq!(me.signum(), libc::SIGUSR1);
            t.set(t.get() + count);
            c.set(c.get() + 1);
        })
        .unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    for i in 0..1000 {
        raise(libc::SIGUSR1);
        if i % 7 == 0 {
            ev.loop_once().unwrap();
        }
    }
    while ev.loop_once().unwrap() {}
    assert_eq!(total.get(), 1000, "every signal counted exactly once");
    assert!(calls.get() < 1000, "signals between dispatches coalesce");
}

fn handlers_run_from_the_loop_with_coalesced_counts() {
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _s = ev
        .add_signal(libc::SIGUSR2, move |_, _, n| g.push(n))
        .unwrap();
    raise(libc::SIGUSR2);
    raise(libc::SIGUSR2);
    assert!(got.is_empty(), "nothing runs in signal context");
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.get(), [2]);
}

fn signals_dispatch_before_immediates() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    let im = ev.add_immediate(move |_, _| l.push("immediate"));
    let l = log.clone();
    let _s = ev
        .add_signal(libc::SIGUSR1, move |_, _, _| l.push("signal"))
        .unwrap();
    im.schedule().unwrap();
    raise(libc::SIGUSR1);
    ev.loop_once().unwrap();
    ev.loop_once().unwrap();
    assert_eq!(log.get(), ["signal", "immediate"]);
}

fn one_shot_handlers_fire_once() {
    let ev = Context::new().unwrap();
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    let s = ev
        .add_signal_oneshot(libc::SIGUSR1, move |_, _, _| c.set(c.get() + 1))
        .unwrap();
    assert!(s.is_active());
    raise(libc::SIGUSR1);
    ev.loop_once().unwrap();
    assert_eq!(n.get(), 1);
    assert!(!s.is_active());
    assert_eq!(s.signum(), None);
    assert_eq!(ev.event_counts().signal_handlers, 0);
    assert_eq!(
        disposition(libc::SIGUSR1),
        libc::SIG_DFL,
        "released after firing"
    );
}

static PREVIOUS_HANDLER_CALLS: AtomicU32 = AtomicU32::new(0);
extern "C" fn previous_handler(_: libc::c_int) {
    PREVIOUS_HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn the_previous_disposition_is_restored_after_the_last_handler() {
    let sig = libc::SIGUSR2;
    // SAFETY: installs a trivial async-signal-safe handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = previous_handler as *const () as libc::sighandler_t;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
    let before = disposition(sig);
    let ev = Context::new().unwrap();
    let ev2 = Context::new().unwrap();
    let a = ev.add_signal(sig, |_, _, _| {}).unwrap();
    let b = ev2.add_signal(sig, |_, _, _| {}).unwrap();
    assert_ne!(disposition(sig), before);
    raise(sig);
    assert_eq!(PREVIOUS_HANDLER_CALLS.load(Ordering::SeqCst), 0);
    drop(a);
    assert_ne!(disposition(sig), before, "another handler remains");
    drop(b);
    assert_eq!(disposition(sig), before, "restored");
    raise(sig);
    assert_eq!(PREVIOUS_HANDLER_CALLS.load(Ordering::SeqCst), 1);
    // SAFETY: back to the default for the remaining checks.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

fn a_signal_wakes_a_blocked_loop() {
    let ev = Context::new().unwrap();
    ev.set_wait_timeout(None);
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let _s = ev
        .add_signal(libc::SIGUSR1, move |_, _, n| g.set(n))
        .unwrap();
    // SAFETY: getpid/kill are always safe to call.
    let pid = unsafe { libc::getpid() };
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGUSR1) };
    });
    ev.loop_until(|| got.get() > 0).unwrap();
    t.join().unwrap();
    assert_eq!(got.get(), 1);
}

fn each_context_runs_only_its_own_handlers() {
    let (ev1, ev2) = (Context::new().unwrap(), Context::new().unwrap());
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let _a = ev1
        .add_signal(libc::SIGUSR1, move |_, _, n| l1.push((1, n)))
        .unwrap();
    let _b = ev2
        .add_signal(libc::SIGUSR1, move |_, _, n| l2.push((2, n)))
        .unwrap();
    raise(libc::SIGUSR1);
    ev1.loop_once().unwrap();
    assert_eq!(log.take(), [(1, 1)]);
    ev2.loop_once().unwrap();
    assert_eq!(log.take(), [(2, 1)], "each context sees the signal once");
}

fn a_handler_removed_by_another_in_the_same_dispatch_is_never_called() {
    let ev = Context::new().unwrap();
    let victim: Rc<Cell<Option<tevent::Signal>>> = Rc::new(Cell::new(None));
    let v = victim.clone();
    let _first = ev
        .add_signal(libc::SIGUSR1, move |_, _, _| drop(v.take()))
        .unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    victim.set(Some(
        ev.add_signal(libc::SIGUSR1, move |_, _, _| c.set(true))
            .unwrap(),
    ));
    raise(libc::SIGUSR1);
    ev.loop_once().unwrap();
    assert!(!called.get());
}

fn invalid_signals_are_refused() {
    let ev = Context::new().unwrap();
    for sig in [0, -1, 65, 1000, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        match ev.add_signal(sig, |_, _, _| {}) {
            Err(Error::InvalidSignal(s)) => assert_eq!(s, sig),
            other => panic!("signal {sig}: {other:?}"),
        }
    }
    assert_eq!(ev.event_counts().signal_handlers, 0);
}

fn dropping_a_context_with_handlers_releases_them() {
    let ev = Context::new().unwrap();
    let s = ev.add_signal(libc::SIGUSR1, |_, _, _| {}).unwrap();
    assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    drop(ev);
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    assert!(!s.is_active());
    drop(s);
}

fn a_signal_handler_adds_and_removes_events_and_itself() {
    let ev = Context::with_manual_clock(true).unwrap();
    let log = Log::new();
    let slot: Rc<std::cell::RefCell<Option<tevent::Signal>>> = Rc::default();
    let victim = Rc::new(std::cell::RefCell::new(Some(
        ev.add_timer_after(Duration::from_secs(5), |_, _| panic!("removed timer fired")),
    )));
    let added: Rc<std::cell::RefCell<Vec<tevent::Immediate>>> = Rc::default();
    let (l, s, v, a) = (log.clone(), slot.clone(), victim.clone(), added.clone());
    *slot.borrow_mut() = Some(
        ev.add_signal(libc::SIGUSR1, move |ev, _, _| {
            l.push("signal");
            drop(v.borrow_mut().take());
            let l2 = l.clone();
            let im = ev.add_immediate(move |_, _| l2.push("added immediate"));
            im.schedule().unwrap();
            a.borrow_mut().push(im);
            drop(s.borrow_mut().take()); // itself
        })
        .unwrap(),
    );
    raise(libc::SIGUSR1);
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), ["signal", "added immediate"]);
    assert!(slot.borrow().is_none());
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
}

fn a_panicking_handler_leaves_the_other_handlers_their_deliveries() {
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _first = ev
        .add_signal(libc::SIGUSR2, |_, _, _| panic!("signal handler"))
        .unwrap();
    let _second = ev
        .add_signal(libc::SIGUSR2, move |_, _, n| g.push(n))
        .unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    raise(libc::SIGUSR2);
    raise(libc::SIGUSR2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.loop_once()));
    assert!(r.is_err(), "the panic reaches the loop call");
    assert!(got.is_empty());
    // The second handler's deliveries were kept: the next step runs it.
    assert!(ev.loop_once().unwrap());
    assert_eq!(got.get(), [2]);
    // The handler that panicked is still registered.
    assert_eq!(ev.event_counts().signal_handlers, 2);
}

fn main() {
    // The expected panic of a check is not printed; any other is.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"signal handler") {
            default_hook(info);
        }
    }));
    let checks: &[(&str, fn())] = &[
        (
            "a_panicking_handler_leaves_the_other_handlers_their_deliveries",
            a_panicking_handler_leaves_the_other_handlers_their_deliveries,
        ),
        (
            "counts_add_up_over_a_thousand_signals",
            counts_add_up_over_a_thousand_signals,
        ),
        (
            "handlers_run_from_the_loop_with_coalesced_counts",
            handlers_run_from_the_loop_with_coalesced_counts,
        ),
        (
            "signals_dispatch_before_immediates",
            signals_dispatch_before_immediates,
        ),
        ("one_shot_handlers_fire_once", one_shot_handlers_fire_once),
        (
            "the_previous_disposition_is_restored_after_the_last_handler",
            the_previous_disposition_is_restored_after_the_last_handler,
        ),
        (
            "a_signal_wakes_a_blocked_loop",
            a_signal_wakes_a_blocked_loop,
        ),
        (
            "each_context_runs_only_its_own_handlers",
            each_context_runs_only_its_own_handlers,
        ),
        (
            "a_handler_removed_by_another_in_the_same_dispatch_is_never_called",
            a_handler_removed_by_another_in_the_same_dispatch_is_never_called,
        ),
        ("invalid_signals_are_refused", invalid_signals_are_refused),
        (
            "dropping_a_context_with_handlers_releases_them",
            dropping_a_context_with_handlers_releases_them,
        ),
        (
            "a_signal_handler_adds_and_removes_events_and_itself",
            a_signal_handler_adds_and_removes_events_and_itself,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", checks.len());
}
