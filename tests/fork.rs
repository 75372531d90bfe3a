//! fork(): a child that uses or drops the context it inherited never
//! disturbs the parent, and gets a working loop of its own.
//!
//! `harness = false`: forking a process with libtest's worker threads would
//! leave their locks to the child. Each check runs in turn; a failure panics
//! and the binary exits non-zero. A child reports through its exit status.

use std::cell::Cell;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tests::{send, socketpair};
use tevent::{Context, FdFlags};

/// Forks; the child runs `child` and exits 0 if it returned true, 1 if it
/// returned false or panicked. Returns the child's exit status.
fn in_child(child: impl FnOnce() -> bool) -> i32 {
    // SAFETY: fork is safe to call; the child runs only the closure and then
    // _exit()s, without returning into the parent's frames.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        let _ = std::io::stdout().flush();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "the child died: status {status}");
    libc::WEXITSTATUS(status)
}

/// A pipe whose read end is nonblocking.
fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = tests::pipe_cloexec();
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    (r, w)
}

/// The parent's loop, checked after each child: an fd watcher still fires,
/// a timer still fires (the poller's timeout timer is intact), a remote
/// closure still wakes the loop, and nothing runs that should not.
fn parent_still_works(ev: &Context, fired: &Rc<Cell<u32>>, peer: &std::os::unix::net::UnixStream) {
    ev.set_wait_timeout(Some(Duration::from_millis(200)));
    // Nothing is ready: the step finds nothing (no readiness of the child's).
    assert!(!ev.loop_once().unwrap(), "a step ran with nothing ready");
    let before = fired.get();
    send(peer, b"x");
    assert!(ev.loop_once().unwrap(), "the watcher did not fire");
    assert_eq!(fired.get(), before + 1);
    let t = Rc::new(Cell::new(false));
    let t2 = t.clone();
    let _timer = ev.add_timer_after(Duration::from_millis(10), move |_, _| t2.set(true));
    ev.set_wait_timeout(None);
    ev.loop_until(|| t.get()).unwrap();
    let woke = Arc::new(AtomicBool::new(false));
    let w = woke.clone();
    let remote = ev.remote();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        remote
            .send(move |_| w.store(true, Ordering::SeqCst))
            .unwrap();
    });
    ev.loop_until(|| woke.load(Ordering::SeqCst)).unwrap();
    th.join().unwrap();
}

/// A parent context with one fd watcher (reading and counting) and a remote.
fn parent() -> (
    Context,
    tevent::FdEvent<'static>,
    Rc<Cell<u32>>,
    std::os::unix::net::UnixStream,
) {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let a = Rc::new(a);
    let reader = a.clone();
    let w = ev
        .add_fd_shared(a, FdFlags::READ, move |_, _, _| {
            let mut buf = [0u8; 64];
            let _ = std::io::Read::read(&mut &*reader, &mut buf);
            f.set(f.get() + 1);
        })
        .unwrap();
    let _ = ev.remote();
    (ev, w, fired, b)
}

fn a_child_that_drops_the_inherited_context_leaves_the_parent_working() {
    let (ev, w, fired, peer) = parent();
    // The child takes the context and its watcher out and drops them: the
    // watcher's deregistration and the poller's drop used to reach the
    // epoll set the parent shares.
    let slot = std::cell::RefCell::new(Some((ev, w)));
    let status = in_child(|| {
        let (ev, w) = slot.borrow_mut().take().expect("inherited");
        drop(w);
        drop(ev);
        true
    });
    assert_eq!(status, 0);
    let (ev, _w) = slot.into_inner().expect("the parent's");
    parent_still_works(&ev, &fired, &peer);
}

fn a_child_that_registers_fds_never_wakes_the_parent() {
    let (ev, _w, fired, peer) = parent();
    let status = in_child(|| {
        let (r, wr) = pipe();
        rustix::io::write(&wr, b"child").unwrap();
        let got = Rc::new(Cell::new(false));
        let g = got.clone();
        let _cw = ev
            .add_fd(r, FdFlags::READ, move |_, _, _| g.set(true))
            .unwrap();
        ev.set_wait_timeout(Some(Duration::from_secs(2)));
        // The parent's watcher is not ready; the child's is.
        ev.loop_once().unwrap() && got.get() && fired.get() == 0
    });
    assert_eq!(status, 0, "the child's own watcher did not fire");
    parent_still_works(&ev, &fired, &peer);
}

fn a_child_runs_timers_remotes_and_signals_of_its_own() {
    let (ev, _w, fired, peer) = parent();
    let sig_runs = Rc::new(Cell::new(0));
    let s = sig_runs.clone();
    let _sig = ev
        .add_signal(libc::SIGUSR2, move |_, _, n| s.set(s.get() + n))
        .unwrap();
    let status = in_child(|| {
        let t = Rc::new(Cell::new(false));
        let t2 = t.clone();
        let _timer = ev.add_timer_after(Duration::from_millis(5), move |_, _| t2.set(true));
        ev.set_wait_timeout(Some(Duration::from_secs(2)));
        ev.loop_until(|| t.get()).unwrap();
        let woke = Arc::new(AtomicBool::new(false));
        let w = woke.clone();
        let remote = ev.remote();
        std::thread::spawn(move || {
            remote
                .send(move |_| w.store(true, Ordering::SeqCst))
                .unwrap()
        })
        .join()
        .unwrap();
        ev.loop_until(|| woke.load(Ordering::SeqCst)).unwrap();
        // SAFETY: raise() is always safe to call.
        unsafe { libc::raise(libc::SIGUSR2) };
        ev.loop_until(|| sig_runs.get() == 1).unwrap();
        true
    });
    assert_eq!(status, 0);
    // The child's signal went to the child: the parent has nothing to run.
    assert_eq!(sig_runs.get(), 0);
    parent_still_works(&ev, &fired, &peer);
    assert_eq!(sig_runs.get(), 0);
}

fn main() {
    // SAFETY: alarm() only schedules SIGALRM: a hang (a parent whose poller
    // lost its timeout timer waits forever) ends the binary instead.
    unsafe { libc::alarm(60) };
    let checks: &[(&str, fn())] = &[
        (
            "a_child_that_drops_the_inherited_context_leaves_the_parent_working",
            a_child_that_drops_the_inherited_context_leaves_the_parent_working,
        ),
        (
            "a_child_that_registers_fds_never_wakes_the_parent",
            a_child_that_registers_fds_never_wakes_the_parent,
        ),
        (
            "a_child_runs_timers_remotes_and_signals_of_its_own",
            a_child_runs_timers_remotes_and_signals_of_its_own,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", checks.len());
}
