//! Looking at a running program (issue 19): profiles that show where a
//! request was stuck, the live request tree, and `Debug` of a request with
//! the chain of its waits.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use tevent::{
    Context, Ctl, Error, FdEvent, FdFlags, Progress, Queue, Req, ReqError, ReqState, Request,
    StepResult, Wait, Wakeup, wakeup_recv, wakeup_send,
};

// ---------------------------------------------------------------------------
// The requests of the tests.

/// A request that finishes in its first step.
struct Quick;
impl Request for Quick {
    type Output = u32;
    type Error = Error;
}

fn quick_send(ev: &Context) -> Req<Quick> {
    Req::start(ev, Quick, |_, _| Ok(Progress::Done(7)))
}

/// Waits for its fd to become readable.
struct Leaf {
    watch: Option<FdEvent<'static>>,
}
impl Request for Leaf {
    type Output = ();
    type Error = Error;
}

impl Leaf {
    fn ready(&mut self, _: &mut Ctl<'_, Self>, _: FdFlags) -> StepResult<Self> {
        Ok(Progress::Done(()))
    }
}

fn leaf_send(ev: &Context, sock: &Rc<UnixStream>) -> Req<Leaf> {
    let sock = sock.clone();
    Req::start(ev, Leaf { watch: None }, move |st, ctl| {
        st.watch = Some(ctl.watch_fd(sock, FdFlags::READ, Leaf::ready)?);
        Ok(Progress::Pending)
    })
}

/// Waits for a leaf (on an fd) or for a wake-up, within `limit`.
struct Mid;
impl Request for Mid {
    type Output = ();
    type Error = Error;
}

impl Mid {
    fn leaf_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Leaf>) -> StepResult<Self> {
        sub.recv()?;
        Ok(Progress::Done(()))
    }

    fn woke(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Wakeup>) -> StepResult<Self> {
        assert!(wakeup_recv(sub));
        Ok(Progress::Done(()))
    }
}

fn mid_on_fd_send(ev: &Context, sock: &Rc<UnixStream>, limit: Duration) -> Req<Mid> {
    let sock = sock.clone();
    Req::start(ev, Mid, move |_, ctl| {
        ctl.set_timeout(limit)?;
        ctl.wait(leaf_send(ctl.ev(), &sock), Mid::leaf_done)?;
        Ok(Progress::Pending)
    })
}

fn mid_nap_send(ev: &Context, nap: Duration) -> Req<Mid> {
    Req::start(ev, Mid, move |_, ctl| {
        ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + nap), Mid::woke)?;
        Ok(Progress::Pending)
    })
}

/// Waits for a quick request (finished before the wait began), then for
/// two mids at once.
struct Top {
    left: u32,
}
impl Request for Top {
    type Output = ();
    type Error = Error;
}

impl Top {
    fn quick_done(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Quick>) -> StepResult<Self> {
        assert_eq!(sub.recv().ok(), Some(7));
        let _ = ctl;
        Ok(Progress::Pending)
    }

    fn mid_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Mid>) -> StepResult<Self> {
        sub.recv()?;
        self.left -= 1;
        Ok(if self.left == 0 {
            Progress::Done(())
        } else {
            Progress::Pending
        })
    }
}

/// `Top`: a quick request, then a mid on `sock` (limit `limit`) and a mid
/// that naps `nap`.
fn top_send(ev: &Context, sock: &Rc<UnixStream>, limit: Duration, nap: Duration) -> Req<Top> {
    let sock = sock.clone();
    Req::start(ev, Top { left: 2 }, move |_, ctl| {
        ctl.enable_profile();
        ctl.wait(quick_send(ctl.ev()), Top::quick_done)?;
        ctl.wait(mid_on_fd_send(ctl.ev(), &sock, limit), Top::mid_done)?;
        ctl.wait(mid_nap_send(ctl.ev(), nap), Top::mid_done)?;
        Ok(Progress::Pending)
    })
}

fn pair() -> (Rc<UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (Rc::new(a), b)
}

// ---------------------------------------------------------------------------
// Profiles.

/// A request whose end time passes while a subrequest waits: the profile
/// lists that subrequest (and the one under it) as cut off by the
/// timeout, in the step that waited for it.
#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn a_timed_out_request_lists_what_it_still_waited_for_in_its_step() {
    struct Attempt {
        /// The leaf's peer, which never writes.
        peer: Option<UnixStream>,
    }
    impl Request for Attempt {
        type Output = ();
        type Error = Error;
    }
    impl Attempt {
        fn connected(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Quick>) -> StepResult<Self> {
            sub.recv()?;
            let (sock, peer) = pair();
            self.peer = Some(peer);
            ctl.wait(
                mid_on_fd_send(ctl.ev(), &sock, Duration::from_secs(60)),
                Attempt::read,
            )?;
            Ok(Progress::Pending)
        }
        fn read(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Mid>) -> StepResult<Self> {
            sub.recv()?;
            Ok(Progress::Done(()))
        }
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let attempt = Req::start(&ev, Attempt { peer: None }, |_, ctl| {
        ctl.set_timeout(Duration::from_secs(5))?;
        ctl.wait(quick_send(ctl.ev()), Attempt::connected)?;
        Ok(Progress::Pending)
    });
    assert!(attempt.enable_profile());
    attempt.poll(&ev).unwrap();
    let p = attempt.take_profile().expect("profiled");
    assert!(matches!(attempt.recv(), Err(ReqError::TimedOut)));

    assert_eq!((p.name(), p.state()), ("Attempt", ReqState::TimedOut));
    assert_eq!(p.len(), 4, "the attempt, quick, mid and its leaf: {p:?}");
    let [quick, mid] = p.subprofiles() else {
        panic!("two subprofiles: {p:?}")
    };
    // Finished inside its send, before the wait began: listed, in its step.
    assert_eq!(
        (
            quick.name(),
            quick.state(),
            quick.waited_in(),
            quick.cut_off_by()
        ),
        ("Quick", ReqState::Done, Some("connected"), None)
    );
    assert_eq!(quick.duration(), Some(Duration::ZERO));
    // Still waiting when the end time passed.
    assert_eq!(
        (mid.name(), mid.state(), mid.waited_in(), mid.cut_off_by()),
        (
            "Mid",
            ReqState::Cancelled,
            Some("read"),
            Some(ReqState::TimedOut)
        )
    );
    assert_eq!(mid.duration(), Some(Duration::from_secs(5)));
    let [leaf] = mid.subprofiles() else {
        panic!("the leaf under the mid: {mid:?}")
    };
    assert_eq!(
        (
            leaf.name(),
            leaf.state(),
            leaf.waited_in(),
            leaf.cut_off_by()
        ),
        (
            "Leaf",
            ReqState::Cancelled,
            Some("leaf_done"),
            Some(ReqState::Cancelled)
        )
    );
    let text = p.render();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Attempt TimedOut 5s ("), "{text}");
    assert!(
        lines[1].starts_with("  [connected] Quick Done 0ns ("),
        "{text}"
    );
    assert!(
        lines[2].starts_with("  [read] Mid Cancelled (parent timed out) 5s ("),
        "{text}"
    );
    assert!(
        lines[3].starts_with("    [leaf_done] Leaf Cancelled (parent cancelled) 5s ("),
        "{text}"
    );
}

/// Every way a profiled parent can end while a subrequest still runs:
/// the subrequest is recorded with that end.
#[test]
fn a_subrequest_cut_off_records_how_its_parent_ended() {
    /// Waits for a long nap, and ends as `how` when a short one is over.
    struct Parent {
        how: ReqState,
    }
    impl Request for Parent {
        type Output = ();
        type Error = &'static str;
    }
    impl Parent {
        fn long(&mut self, _: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
            unreachable!("cut off first")
        }
        fn short(&mut self, _: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
            match self.how {
                ReqState::Done => Ok(Progress::Done(())),
                ReqState::Error => Err(ReqError::User("failed")),
                ReqState::Cancelled => Err(ReqError::Cancelled),
                _ => Ok(Progress::Pending),
            }
        }
    }
    fn cancel(_: &mut Parent, _: &mut Ctl<'_, Parent>) -> Option<StepResult<Parent>> {
        Some(Err(ReqError::Cancelled))
    }
    for how in [
        ReqState::Done,
        ReqState::Error,
        ReqState::Cancelled,
        ReqState::TimedOut,
    ] {
        let ev = Context::with_manual_clock(true).unwrap();
        let req = Req::start(&ev, Parent { how }, move |st, ctl| {
            ctl.enable_profile();
            let now = ctl.ev().now();
            ctl.wait(
                wakeup_send(ctl.ev(), now + Duration::from_secs(9)),
                Parent::long,
            )?;
            if st.how == ReqState::TimedOut {
                ctl.set_timeout(Duration::from_secs(2))?;
            } else if st.how != ReqState::Cancelled {
                ctl.wait(
                    wakeup_send(ctl.ev(), now + Duration::from_secs(2)),
                    Parent::short,
                )?;
            }
            ctl.set_cancel(cancel);
            Ok(Progress::Pending)
        });
        if how == ReqState::Cancelled {
            ev.advance(Duration::from_secs(2));
            assert!(req.cancel());
        }
        req.poll(&ev).unwrap();
        let p = req.take_profile().expect("profiled");
        assert_eq!(p.state(), how);
        let long = p.subprofiles().last().expect("the long nap");
        assert_eq!(
            (long.state(), long.cut_off_by(), long.waited_in()),
            (ReqState::Cancelled, Some(how), Some("long")),
            "{how:?}: {p:?}"
        );
        assert_eq!(long.duration(), Some(Duration::from_secs(2)), "{how:?}");
        let why = match how {
            ReqState::Done => "finished",
            ReqState::Error => "failed",
            ReqState::Cancelled => "cancelled",
            _ => "timed out",
        };
        assert!(
            p.render()
                .contains(&format!("[long] Wakeup Cancelled (parent {why}) 2s")),
            "{}",
            p.render()
        );
    }
}

/// A subrequest that finished inside its send, waited for by a profiled
/// request, is in the profile (it was missing: nothing recorded it once
/// the wait began).
#[test]
fn a_subrequest_that_finished_within_its_first_step_is_listed() {
    let ev = Context::with_manual_clock(true).unwrap();
    let top = Req::start(&ev, Top { left: 1 }, |_, ctl| {
        ctl.enable_profile();
        ctl.wait(quick_send(ctl.ev()), Top::quick_done)?;
        ctl.wait(
            mid_nap_send(ctl.ev(), Duration::from_secs(1)),
            Top::mid_done,
        )?;
        Ok(Progress::Pending)
    });
    top.poll(&ev).unwrap();
    let p = top.take_profile().unwrap();
    let kids: Vec<_> = p
        .subprofiles()
        .iter()
        .map(|k| (k.name(), k.state(), k.waited_in(), k.len()))
        .collect();
    assert_eq!(
        kids,
        [
            ("Quick", ReqState::Done, Some("quick_done"), 1),
            ("Mid", ReqState::Done, Some("mid_done"), 2),
        ]
    );
    // A wait that began after a step kept a finished request: the same.
    let early = quick_send(&ev);
    early.poll(&ev).unwrap();
    let held = Req::start(&ev, Top { left: 1 }, move |_, ctl| {
        ctl.enable_profile();
        ctl.wait(early, Top::quick_done)?;
        Ok(Progress::Pending)
    });
    assert!(held.is_in_progress());
    ev.loop_once().unwrap();
    let p = held.take_profile().unwrap();
    assert_eq!(p.subprofiles().len(), 1);
    assert_eq!(p.subprofiles()[0].state(), ReqState::Done);
}

// ---------------------------------------------------------------------------
// The live tree.

/// (depth, name, waited in, waiting in, waits) of every request of the
/// context's tree, in its order.
type Row = (usize, String, Option<String>, Vec<String>, Vec<Wait>);

fn rows(ev: &Context) -> Vec<Row> {
    ev.request_tree()
        .requests()
        .iter()
        .map(|r| {
            (
                r.depth(),
                r.name().to_string(),
                r.waited_in().map(String::from),
                r.waiting_in().iter().map(|s| s.to_string()).collect(),
                r.waits().to_vec(),
            )
        })
        .collect()
}

fn row(d: usize, name: &str, waited_in: Option<&str>, steps: &[&str], waits: Vec<Wait>) -> Row {
    (
        d,
        name.to_string(),
        waited_in.map(String::from),
        steps.iter().map(|s| s.to_string()).collect(),
        waits,
    )
}

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn the_live_tree_of_three_levels_follows_the_run() {
    let ev = Context::with_manual_clock(false).unwrap();
    let t0 = ev.now();
    let (sock, peer) = pair();
    let fd = sock.as_raw_fd();
    let top = top_send(&ev, &sock, Duration::from_secs(30), Duration::from_secs(1));
    let read = Wait::Fd {
        fd,
        flags: FdFlags::READ,
    };
    // Just started: the quick request finished, its waiter not run yet.
    let tree = ev.request_tree();
    assert_eq!(tree.roots(), [0]);
    assert_eq!(tree.requests()[1].state(), ReqState::Done);
    assert_eq!(
        rows(&ev),
        [
            row(
                0,
                "Top",
                None,
                &["mid_done", "mid_done", "quick_done"],
                vec![]
            ),
            row(1, "Quick", Some("quick_done"), &[], vec![]),
            row(
                1,
                "Mid",
                Some("mid_done"),
                &["leaf_done"],
                vec![Wait::EndTime(t0 + Duration::from_secs(30))]
            ),
            row(2, "Leaf", Some("leaf_done"), &[], vec![read.clone()]),
            row(1, "Mid", Some("mid_done"), &["woke"], vec![]),
            row(
                2,
                "Wakeup",
                Some("woke"),
                &[],
                vec![Wait::EndTime(t0 + Duration::from_secs(1))]
            ),
        ]
    );
    let r = &tree.requests()[3];
    assert_eq!(r.parent(), Some(2));
    assert_eq!(tree.requests()[0].children(), [1, 2, 4]);

    // The quick request was delivered.
    ev.loop_once().unwrap();
    let after_quick = rows(&ev);
    assert_eq!(after_quick.len(), 5);
    assert_eq!(after_quick[0].3, ["mid_done", "mid_done"]);

    // The nap is over: its mid finished, its waiter ran.
    ev.advance(Duration::from_secs(1));
    ev.loop_once().unwrap(); // the wake-up's end time
    ev.loop_once().unwrap(); // (the mid's waiter, if not in the same step)
    assert_eq!(
        rows(&ev),
        [
            row(0, "Top", None, &["mid_done"], vec![]),
            row(
                1,
                "Mid",
                Some("mid_done"),
                &["leaf_done"],
                vec![Wait::EndTime(t0 + Duration::from_secs(30))]
            ),
            row(2, "Leaf", Some("leaf_done"), &[], vec![read]),
        ]
    );
    let text = ev.request_tree().render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("Top@mid_done ("), "{text}");
    assert!(
        lines[1].starts_with("  [mid_done] Mid@leaf_done: end time in 29s ("),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!("    [leaf_done] Leaf: fd {fd} READ (")),
        "{text}"
    );
    assert!(lines[2].contains("tests/inspect.rs:"), "{text}");

    // Data on the fd: the leaf, then its mid, then the top finish.
    std::io::Write::write_all(&mut &peer, b"x").unwrap();
    top.poll(&ev).unwrap();
    assert!(ev.request_tree().is_empty());
    assert!(top.recv().is_ok());
}

#[test]
fn the_live_tree_shows_callbacks_queues_and_ages() {
    let ev = Context::with_manual_clock(false).unwrap();
    assert!(!ev.set_request_ages(true));
    let q = Queue::new(&ev, "turns");
    let first = tevent::queue_wait_send(&ev, &q);
    ev.advance(Duration::from_secs(2));
    let second = tevent::queue_wait_send(&ev, &q);
    let _cb = mid_nap_send(&ev, Duration::from_secs(4)).set_callback(|_, _| {});
    ev.advance(Duration::from_secs(1));
    let tree = ev.request_tree();
    let r = tree.requests();
    assert_eq!(r.len(), 4);
    assert_eq!(
        (r[0].name(), r[0].age()),
        ("QueueWait", Some(Duration::from_secs(3)))
    );
    assert_eq!(
        r[0].waits(),
        [Wait::Queue {
            name: "turns".into(),
            place: 0
        }]
    );
    assert_eq!(r[1].age(), Some(Duration::from_secs(1)));
    assert_eq!(
        r[1].waits(),
        [Wait::Queue {
            name: "turns".into(),
            place: 1
        }]
    );
    assert_eq!((r[2].name(), r[2].waited_in()), ("Mid", Some("callback")));
    assert_eq!(r[3].depth(), 1);
    let text = tree.render();
    assert!(
        text.contains("QueueWait: queue \"turns\" place 1, age 1s ("),
        "{text}"
    );
    assert!(text.contains("[callback] Mid@woke, age 1s ("), "{text}");
    assert!(ev.set_request_ages(false));
    drop((first, second));
}

/// A snapshot taken from inside a step sees that step running.
#[test]
fn a_snapshot_from_inside_a_step_sees_it_running() {
    let ev = Context::with_manual_clock(true).unwrap();
    let seen = Rc::new(std::cell::RefCell::new(String::new()));
    let s = seen.clone();
    let top = Req::start(&ev, Top { left: 1 }, move |_, ctl| {
        ctl.wait(
            mid_nap_send(ctl.ev(), Duration::from_secs(1)),
            Top::mid_done,
        )?;
        *s.borrow_mut() = ctl.ev().request_tree().render();
        Ok(Progress::Pending)
    });
    let text = seen.borrow().clone();
    assert!(text.starts_with("Top@mid_done (running) ("), "{text}");
    top.poll(&ev).unwrap();
}

// ---------------------------------------------------------------------------
// Debug of a request.

#[test]
#[cfg_attr(
    miri,
    ignore = "needs sockets or the poller, which Miri cannot run (docs/reliability.md)"
)]
fn debug_of_a_request_shows_the_chain_of_its_waits() {
    let ev = Context::with_manual_clock(false).unwrap();
    let (sock, _peer) = pair();
    let fd = sock.as_raw_fd();
    let mid = mid_on_fd_send(&ev, &sock, Duration::from_secs(30));
    let text = format!("{mid:?}");
    assert!(
        text.contains(&format!(
            r#"waits: "end time in 30s; [leaf_done] Leaf: fd {fd} READ""#
        )),
        "{text}"
    );
    let top = top_send(&ev, &sock, Duration::from_secs(30), Duration::from_secs(1));
    let text = format!("{top:?}");
    assert!(
        text.contains(&format!(
            r#"waits: "[[quick_done] Quick Done | [mid_done] Mid@leaf_done: end time in 30s → [leaf_done] Leaf: fd {fd} READ | [mid_done] Mid@woke → [woke] Wakeup: end time in 1s]""#
        )),
        "{text}"
    );
    // A request that waits for nothing the runtime sees has no `waits`.
    let q = quick_send(&ev);
    assert!(!format!("{q:?}").contains("waits"));
    drop((mid, top));
}
