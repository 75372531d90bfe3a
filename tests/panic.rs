//! Panics in the user code the runtime calls with an fd involved: an fd
//! watcher's handler and a request step run by an fd watcher. (Every other
//! call site is tested, under Miri too, in `tevent/src/panic/tests.rs`;
//! signal handlers in `tests/signal.rs`.) The panic reaches the loop call;
//! the watcher stays registered, the request ends `Panicked`, and the
//! context goes on.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use tests::{send, socketpair};
use tevent::{Context, FdFlags, Progress, Req, ReqError, Request};

fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn a_panicking_fd_handler_keeps_its_watcher() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let w = ev
        .add_fd_shared(Rc::new(a), FdFlags::READ, move |_, _, _| {
            r.set(r.get() + 1);
            if r.get() == 1 {
                panic!("fd handler");
            }
        })
        .unwrap();
    send(&b, b"x");
    assert!(panics(|| drop(ev.loop_once())));
    assert!(!ev.in_handler());
    assert_eq!(w.flags(), FdFlags::READ);
    // Still readable (level-triggered): the handler runs again.
    assert!(ev.loop_once().unwrap());
    assert_eq!(runs.get(), 2);
    drop(w);
    assert_eq!(ev.event_counts().total(), 0);
}

/// Waits for its fd to be readable; its step panics.
struct Boom {
    watch: Option<tevent::FdEvent<'static>>,
    dropped: Rc<Cell<bool>>,
}

impl Drop for Boom {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

impl Request for Boom {
    type Output = ();
    type Error = u8;
}

#[test]
fn a_panicking_step_run_by_an_fd_watcher_ends_the_request() {
    let ev = Context::new().unwrap();
    let (a, b) = socketpair();
    let a = Rc::new(a);
    let dropped = Rc::new(Cell::new(false));
    let state = Boom {
        watch: None,
        dropped: dropped.clone(),
    };
    let req = Req::start(&ev, state, move |st, ctl| {
        let w = ctl
            .watch_fd(a.clone(), FdFlags::READ, |_, _, _| panic!("fd step"))
            .map_err(|_| ReqError::User(1))?;
        st.watch = Some(w);
        Ok(Progress::Pending)
    });
    send(&b, b"x");
    assert!(panics(|| drop(req.poll(&ev))));
    assert!(dropped.get(), "the state (and its watcher) went");
    assert_eq!(req.recv(), Err(ReqError::Panicked));
    assert_eq!(ev.event_counts().total(), 0, "{:?}", ev.event_counts());
}
