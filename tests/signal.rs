//! Signal events. `harness = false`: this binary runs on one thread (plus the
//! ones a test starts itself), so libtest's worker threads cannot take the
//! signals. Each check runs in turn; a failure panics and the binary exits
//! non-zero. The checks of sender details (siginfo) are at the end.

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

/// Our real user id.
#[cfg(not(target_vendor = "apple"))]
fn uid() -> u32 {
    // SAFETY: getuid() cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

// Linux's codes: `raise` is `tgkill`, `SI_TKILL`.
#[cfg(target_os = "linux")]
fn a_handler_with_info_is_told_who_sent_each_signal() {
    use tevent::signal::{SI_TKILL, SIGUSR1, SigInfo, raise};
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _s = ev
        .add_signal_with_info(SIGUSR1, move |_, me, d| {
            assert_eq!(me.signum(), SIGUSR1);
            g.push((d.count, d.infos.to_vec(), d.lost));
        })
        .unwrap();
    raise(SIGUSR1).unwrap();
    raise(SIGUSR1).unwrap();
    ev.loop_once().unwrap();
    let me = SigInfo {
        pid: std::process::id() as i32,
        uid: uid(),
        code: SI_TKILL, // raise() is tgkill() on Linux
    };
    assert_eq!(got.get(), [(2, vec![me, me], 0)]);
}

// macOS reports no `si_code` for `kill` (and so has no `SI_USER`).
#[cfg(not(target_vendor = "apple"))]
fn a_signal_from_another_process_names_that_process() {
    use tevent::signal::{SI_USER, SIGUSR2};
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _s = ev
        .add_signal_with_info(SIGUSR2, move |_, _, d| g.push(d.infos.to_vec()))
        .unwrap();
    let mut kill = std::process::Command::new("kill")
        .arg("-USR2")
        .arg(std::process::id().to_string())
        .spawn()
        .expect("the kill(1) command");
    let sender = kill.id() as i32;
    assert!(kill.wait().unwrap().success());
    ev.loop_once().unwrap();
    let infos = got.get().concat();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!((infos[0].pid, infos[0].code), (sender, SI_USER));
    assert_eq!(infos[0].uid, uid());
}

fn when_the_ring_overflows_counts_stay_exact_and_the_handler_is_told() {
    use tevent::signal::{SIGINFO_RING, SIGUSR1, raise};
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _s = ev
        .add_signal_with_info(SIGUSR1, move |_, _, d| {
            g.push((d.count, d.infos.len(), d.lost, d.overflowed()))
        })
        .unwrap();
    let n = SIGINFO_RING + 5;
    for _ in 0..n {
        raise(SIGUSR1).unwrap();
    }
    ev.loop_once().unwrap();
    assert_eq!(got.take(), [(n as u32, SIGINFO_RING, 5, true)]);
    // The next delivery has its details again.
    raise(SIGUSR1).unwrap();
    ev.loop_once().unwrap();
    assert_eq!(got.take(), [(1, 1, 0, false)]);
}

/// C tevent keeps the details of 256 deliveries per signal: so does the
/// loop, whatever it does before it reads them (it kept 16, losing 184 of
/// a burst of 200).
fn a_burst_of_256_signals_before_one_loop_step_keeps_every_sender() {
    use tevent::signal::{SIGINFO_RING, SIGUSR2, raise};
    assert_eq!(SIGINFO_RING, 256);
    let ev = Context::new().unwrap();
    let got = Log::new();
    let g = got.clone();
    let _s = ev
        .add_signal_with_info(SIGUSR2, move |_, _, d| {
            g.push((d.count, d.infos.to_vec(), d.lost))
        })
        .unwrap();
    for _ in 0..256 {
        raise(SIGUSR2).unwrap();
    }
    ev.loop_once().unwrap();
    let got = got.take();
    assert_eq!(got.len(), 1, "one dispatch");
    let (count, infos, lost) = &got[0];
    assert_eq!((*count, infos.len(), *lost), (256, 256, 0));
    let me = std::process::id() as i32;
    assert!(infos.iter().all(|i| i.pid == me));
    #[cfg(not(target_vendor = "apple"))]
    assert!(infos.iter().all(|i| i.uid == uid()));
}

fn plain_and_info_handlers_of_one_signal_see_the_same_count() {
    use tevent::signal::{SIGUSR2, raise};
    let ev = Context::new().unwrap();
    let other = Context::new().unwrap();
    let got = Log::new();
    let (g1, g2, g3) = (got.clone(), got.clone(), got.clone());
    let _a = ev
        .add_signal(SIGUSR2, move |_, _, n| g1.push(("plain", n, 0)))
        .unwrap();
    let _b = ev
        .add_signal_with_info(SIGUSR2, move |_, _, d| {
            g2.push(("info", d.count, d.infos.len()))
        })
        .unwrap();
    let _c = other
        .add_signal_with_info_oneshot(SIGUSR2, move |_, _, d| {
            g3.push(("other", d.count, d.infos.len()))
        })
        .unwrap();
    raise(SIGUSR2).unwrap();
    raise(SIGUSR2).unwrap();
    raise(SIGUSR2).unwrap();
    ev.loop_once().unwrap();
    other.loop_once().unwrap();
    assert_eq!(
        got.get(),
        [("plain", 3, 0), ("info", 3, 3), ("other", 3, 3)],
        "each context reads every delivery's details"
    );
}

// Real-time signals (Linux's are inside the table; macOS has none,
// FreeBSD's are beyond it).
#[cfg(target_os = "linux")]
fn concurrent_deliveries_on_several_threads_keep_details_and_losses_exact() {
    // Real-time signals queue, and raise() delivers on the raising thread
    // before it returns: every raise is one delivery, and OS handlers run
    // on several threads at once.
    const THREADS: usize = 4;
    const EACH: u32 = 300;
    let sig = libc::SIGRTMIN() + 3;
    let ev = Context::new().unwrap();
    let totals = Rc::new(Cell::new((0u32, 0u32, 0u32)));
    let t = totals.clone();
    let _s = ev
        .add_signal_with_info(sig, move |_, _, d| {
            let (c, i, l) = t.get();
            assert!(
                d.infos
                    .iter()
                    .all(|info| info.pid == std::process::id() as i32)
            );
            t.set((c + d.count, i + d.infos.len() as u32, l + d.lost));
        })
        .unwrap();
    ev.set_wait_timeout(Some(Duration::ZERO));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    tevent::signal::raise(sig).unwrap();
                }
            })
        })
        .collect();
    let all = THREADS as u32 * EACH;
    while threads.iter().any(|t| !t.is_finished()) {
        ev.loop_once().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    while ev.loop_once().unwrap() {}
    let (count, infos, lost) = totals.get();
    assert_eq!(count, all, "every delivery counted once");
    assert_eq!(
        infos + lost,
        all,
        "each one has its details or is counted lost"
    );
}

fn main() {
    // The expected panic of a check is not printed; any other is.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"signal handler") {
            default_hook(info);
        }
    }));
    let mut checks: Vec<(&str, fn())> = vec![
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
    #[cfg(target_os = "linux")]
    checks.push((
        "a_handler_with_info_is_told_who_sent_each_signal",
        a_handler_with_info_is_told_who_sent_each_signal,
    ));
    #[cfg(not(target_vendor = "apple"))]
    checks.push((
        "a_signal_from_another_process_names_that_process",
        a_signal_from_another_process_names_that_process,
    ));
    checks.extend([
        (
            "when_the_ring_overflows_counts_stay_exact_and_the_handler_is_told",
            when_the_ring_overflows_counts_stay_exact_and_the_handler_is_told as fn(),
        ),
        (
            "plain_and_info_handlers_of_one_signal_see_the_same_count",
            plain_and_info_handlers_of_one_signal_see_the_same_count,
        ),
        (
            "a_burst_of_256_signals_before_one_loop_step_keeps_every_sender",
            a_burst_of_256_signals_before_one_loop_step_keeps_every_sender,
        ),
    ]);
    #[cfg(target_os = "linux")]
    checks.push((
        "concurrent_deliveries_on_several_threads_keep_details_and_losses_exact",
        concurrent_deliveries_on_several_threads_keep_details_and_losses_exact,
    ));
    for (name, check) in &checks {
        check();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", checks.len());
}
