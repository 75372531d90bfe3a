//! The simulation mode (`tevent::sim`, `Context::simulated`): the same seed
//! gives the same run, different seeds serve fds ready together in
//! different orders (and never break the dispatch classes' order), each
//! fault kind reaches the request as the documented error or as a retry
//! with nothing lost or doubled, and a bug planted in a test-only request
//! (a lost wake-up after a short read) is found within 1 000 seeds and
//! replayed from the seed its failure names.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::Duration;

use tevent::io::{ReadSome, accept_send, read_exact_send, read_some_send, write_all_send};
use tevent::sim::{self, Fault, Faults, Seeds};
use tevent::{Context, Ctl, Progress, Req, ReqError, ReqState, Request, StepResult, wakeup_send};

/// Starts a `read_some` of one byte on each of `n` socket pairs whose peer
/// already wrote its index; returns the order in which they finished.
fn reads_ready_together(ev: &Context, n: u8) -> Vec<u8> {
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut keep = Vec::new();
    for i in 0..n {
        let (a, b) = tests::socketpair();
        (&b).write_all(&[i]).unwrap();
        let o = order.clone();
        let h = read_some_send(ev, &Rc::new(a), vec![0; 1]).set_callback(move |_, r| {
            o.borrow_mut().push(r.recv().expect("read")[0]);
        });
        keep.push((h, b));
    }
    ev.loop_wait().expect("loop");
    order.take()
}

#[test]
fn the_same_seed_gives_the_same_record_and_different_seeds_different_orders() {
    let mut orders = HashSet::new();
    for seed in 0..200 {
        let record = sim::check_determinism(seed, Faults::NONE, |ev| {
            let order = reads_ready_together(ev, 5);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4], "each read finished once");
            order
        })
        .unwrap_or_else(|d| panic!("{d}"));
        let result = record.last().expect("the result is recorded").clone();
        orders.insert(result);
    }
    // 120 orders are possible; the kernel's would be one.
    assert!(
        orders.len() > 20,
        "only {} orders over 200 seeds",
        orders.len()
    );
}

#[test]
fn the_dispatch_classes_keep_their_order_under_every_seed() {
    sim::run(
        Seeds {
            first: 0,
            runs: 200,
        },
        Faults::NONE,
        |ev| {
            let log = Rc::new(RefCell::new(Vec::new()));
            let (a, b) = tests::socketpair();
            (&b).write_all(b"x").unwrap();
            let l = log.clone();
            let _fd = read_some_send(ev, &Rc::new(a), vec![0; 1])
                .set_callback(move |_, _| l.borrow_mut().push("fd"));
            let l = log.clone();
            let _t = ev.add_timer(ev.now(), move |_, _| l.borrow_mut().push("timer"));
            let l = log.clone();
            ev.post(move |_| l.borrow_mut().push("immediate"));
            ev.loop_wait().unwrap();
            assert_eq!(*log.borrow(), ["immediate", "timer", "fd"]);
            drop(b);
        },
    );
}

#[test]
fn a_divergence_is_reported_with_its_seed_and_first_difference() {
    let runs = Cell::new(0);
    let d = sim::check_determinism(42, Faults::NONE, |ev| {
        runs.set(runs.get() + 1);
        sim::note(ev, runs.get()); // differs on purpose
    })
    .unwrap_err();
    assert_eq!(d.seed, 42);
    assert_eq!(d.first.as_deref(), Some("note 1"));
    assert_eq!(d.second.as_deref(), Some("note 2"));
    assert!(d.to_string().contains("TEVENT_SEED=42"), "{d}");
}

// ---------------------------------------------------------------------------
// Each fault kind.

fn only(kind: Fault, p: f64) -> Faults {
    let mut f = Faults::NONE;
    match kind {
        Fault::ShortRead => f.short_read = p,
        Fault::ShortWrite => f.short_write = p,
        Fault::Interrupted => f.interrupted = p,
        Fault::WouldBlock => f.would_block = p,
        Fault::Reset => f.reset = p,
        Fault::EarlyEof => f.early_eof = p,
        Fault::DelayedReadiness => f.delayed_readiness = p,
        Fault::LateTimer => f.late_timer = p,
        Fault::NoMemory => f.no_memory = p,
    }
    f
}

/// Bytes 0, 1, 2, ... as many as asked.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn short_reads_are_retried_and_every_byte_arrives_once() {
    let seen = Cell::new(0);
    sim::run(
        Seeds { first: 0, runs: 50 },
        only(Fault::ShortRead, 1.0),
        |ev| {
            let (a, b) = tests::socketpair();
            (&b).write_all(&pattern(1000)).unwrap();
            let a = Rc::new(a);
            let got = read_exact_send(ev, &a, 1000).poll_recv(ev).unwrap();
            assert_eq!(got.unwrap(), pattern(1000));
            // One read_some with room for 10 of the 10 bytes there reads fewer.
            (&b).write_all(&pattern(10)).unwrap();
            let some = read_some_send(ev, &a, vec![0; 10])
                .poll_recv(ev)
                .unwrap()
                .unwrap();
            assert!((1..10).contains(&some.len()), "{some:?}");
            assert!(sim::injected(ev, Fault::ShortRead) >= 2);
            seen.set(seen.get() + 1);
        },
    );
    assert_eq!(seen.get(), 50);
}

#[test]
fn short_writes_are_continued_and_the_peer_gets_every_byte_once() {
    sim::run(
        Seeds { first: 0, runs: 50 },
        only(Fault::ShortWrite, 1.0),
        |ev| {
            let (a, mut b) = tests::socketpair();
            let data = pattern(20_000);
            let out = write_all_send(ev, &Rc::new(a), data.clone())
                .poll_recv(ev)
                .unwrap();
            assert_eq!(out.unwrap(), data, "the buffer comes back");
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = b.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(got, data);
            assert!(sim::injected(ev, Fault::ShortWrite) >= 1);
        },
    );
}

#[test]
fn eintr_and_eagain_after_readiness_make_reads_writes_and_accepts_wait_again() {
    for kind in [Fault::Interrupted, Fault::WouldBlock] {
        let injected = Cell::new(0);
        sim::run(Seeds { first: 0, runs: 50 }, only(kind, 0.5), |ev| {
            let (a, b) = tests::socketpair();
            let (a, b) = (Rc::new(a), Rc::new(b));
            let w = write_all_send(ev, &b, pattern(300));
            let r = read_exact_send(ev, &a, 300);
            assert_eq!(r.poll_recv(ev).unwrap().unwrap(), pattern(300));
            assert_eq!(w.poll_recv(ev).unwrap().unwrap(), pattern(300));

            let dir = std::env::temp_dir().join(format!(
                "tevent-sim-{}-{}-{kind:?}",
                std::process::id(),
                sim::seed(ev).unwrap()
            ));
            let _ = std::fs::remove_file(&dir);
            let listener = UnixListener::bind(&dir).unwrap();
            listener.set_nonblocking(true).unwrap();
            let _client = UnixStream::connect(&dir).unwrap();
            let conn = accept_send(ev, &Rc::new(listener)).poll_recv(ev).unwrap();
            assert!(conn.is_ok(), "{conn:?}");
            let _ = std::fs::remove_file(&dir);
            injected.set(injected.get() + sim::injected(ev, kind));
        });
        assert!(injected.get() > 0, "{kind:?} never injected");
    }
}

#[test]
fn a_reset_fails_the_read_or_write_with_connection_reset_and_the_peer_sees_it() {
    sim::run(
        Seeds { first: 0, runs: 20 },
        only(Fault::Reset, 1.0),
        |ev| {
            let (a, b) = tests::socketpair();
            (&b).write_all(b"data").unwrap();
            let r = read_some_send(ev, &Rc::new(a), vec![0; 4])
                .poll_recv(ev)
                .unwrap();
            match r {
                Err(ReqError::User(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
                other => panic!("{other:?}"),
            }
            assert!(tests::peer_closed(&b), "the peer sees the connection end");

            let (a, b) = tests::socketpair();
            let w = write_all_send(ev, &Rc::new(a), vec![1u8; 10])
                .poll_recv(ev)
                .unwrap();
            match w {
                Err(ReqError::User(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
                other => panic!("{other:?}"),
            }
            assert!(tests::peer_closed(&b));
            assert_eq!(sim::injected(ev, Fault::Reset), 2);
        },
    );
}

#[test]
fn an_early_end_of_file_ends_a_read_some_empty_and_a_read_exact_unexpected_eof() {
    sim::run(
        Seeds { first: 0, runs: 20 },
        only(Fault::EarlyEof, 1.0),
        |ev| {
            let (a, b) = tests::socketpair();
            (&b).write_all(b"data").unwrap();
            let a = Rc::new(a);
            let r = read_some_send(ev, &a, vec![0; 4]).poll_recv(ev).unwrap();
            assert_eq!(r.unwrap(), b"", "end of file");
            let r = read_exact_send(ev, &a, 4).poll_recv(ev).unwrap();
            match r {
                Err(ReqError::User(e)) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof),
                other => panic!("{other:?}"),
            }
            assert_eq!(sim::injected(ev, Fault::EarlyEof), 2);
        },
    );
}

#[test]
fn delayed_readiness_delays_reads_without_losing_or_doubling_one() {
    let injected = Cell::new(0);
    sim::run(
        Seeds {
            first: 0,
            runs: 100,
        },
        only(Fault::DelayedReadiness, 0.5),
        |ev| {
            let order = reads_ready_together(ev, 4);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3]);
            injected.set(injected.get() + sim::injected(ev, Fault::DelayedReadiness));
        },
    );
    assert!(injected.get() > 0);
}

#[test]
fn a_late_timer_fires_late_never_early_and_timers_keep_their_order() {
    let faults = Faults {
        late_timer: 1.0,
        late_timer_max: Duration::from_millis(50),
        ..Faults::NONE
    };
    let strictly_late = Cell::new(0);
    sim::run(
        Seeds {
            first: 0,
            runs: 100,
        },
        faults,
        |ev| {
            let fired = Rc::new(RefCell::new(Vec::new()));
            let start = ev.now();
            let f = fired.clone();
            let _a = ev.add_timer(start + Duration::from_secs(1), move |ev, me| {
                f.borrow_mut().push(("a", me.deadline(), ev.loop_time()))
            });
            let f = fired.clone();
            let _b = ev.add_timer(start + Duration::from_millis(1010), move |ev, me| {
                f.borrow_mut().push(("b", me.deadline(), ev.loop_time()))
            });
            ev.loop_wait().unwrap();
            let fired = fired.borrow();
            assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), ["a", "b"]);
            let (_, deadline, at) = fired[0];
            assert!(at >= deadline, "early");
            assert!(
                at <= deadline + Duration::from_millis(50),
                "{:?}",
                at - deadline
            );
            if at > deadline {
                strictly_late.set(strictly_late.get() + 1);
            }
            assert!(sim::injected(ev, Fault::LateTimer) >= 1);
        },
    );
    assert!(strictly_late.get() > 90);
}

/// A state that counts its drops.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Request for Counted {
    type Output = u32;
    type Error = std::convert::Infallible;
}

#[test]
fn no_memory_finishes_the_request_no_memory_without_its_first_step() {
    sim::run(
        Seeds { first: 0, runs: 10 },
        only(Fault::NoMemory, 1.0),
        |ev| {
            let drops = Rc::new(Cell::new(0));
            let ran = Cell::new(false);
            let req = Req::start(ev, Counted(drops.clone()), |_, _| {
                ran.set(true);
                Ok(Progress::Done(1))
            });
            assert_eq!(req.state(), ReqState::NoMemory);
            assert!(!ran.get(), "the first step does not run");
            assert_eq!(drops.get(), 1, "the state is dropped once");
            assert_eq!(req.recv(), Err(ReqError::NoMemory));
            assert_eq!(sim::injected(ev, Fault::NoMemory), 1);
        },
    );
    // Some requests fail: a parent whose subrequest failed fails NoMemory
    // through `wait`, or all finish; either way every state made is
    // dropped exactly once, and nothing is left.
    let (failed, finished) = (Cell::new(0), Cell::new(0));
    sim::run(
        Seeds {
            first: 0,
            runs: 200,
        },
        only(Fault::NoMemory, 0.2),
        |ev| {
            let (made, drops) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
            let counted = {
                let (made, drops) = (made.clone(), drops.clone());
                move || {
                    made.set(made.get() + 1);
                    Counted(drops.clone())
                }
            };
            let parent = Parent {
                _c: counted(),
                left: 3,
            };
            let req = Req::start(ev, parent, move |_, ctl| {
                for i in 0..3 {
                    let sub = Req::start(ctl.ev(), counted(), move |_, ctl| {
                        let at = ctl.ev().now() + Duration::from_secs(i);
                        ctl.wait(wakeup_send(ctl.ev(), at), |_, _, _| Ok(Progress::Done(1)))?;
                        Ok(Progress::Pending)
                    });
                    ctl.wait(sub, Parent::got)?;
                }
                Ok(Progress::Pending)
            });
            match req.poll_recv(ev).unwrap() {
                Ok(3) => finished.set(finished.get() + 1),
                Err(ReqError::NoMemory) => failed.set(failed.get() + 1),
                other => panic!("{other:?}"),
            }
            assert_eq!(ev.event_counts().total(), 0);
            assert_eq!(drops.get(), made.get(), "every state dropped once");
        },
    );
    assert!(
        failed.get() > 0 && finished.get() > 0,
        "{failed:?} {finished:?}"
    );
}

struct Parent {
    _c: Counted,
    left: u32,
}

impl Request for Parent {
    type Output = u32;
    type Error = std::convert::Infallible;
}

impl Parent {
    fn got(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Counted>) -> StepResult<Self> {
        sub.recv()?;
        self.left -= 1;
        Ok(if self.left == 0 {
            Progress::Done(3)
        } else {
            Progress::Pending
        })
    }
}

// ---------------------------------------------------------------------------
// A planted bug.

/// Reads a message of `len` bytes through `read_some` subrequests. The
/// buggy one loses its wake-up after a short read: it says `Pending`
/// without waiting for anything more.
struct Message {
    sock: Rc<UnixStream>,
    got: Vec<u8>,
    len: usize,
    buggy: bool,
}

impl Request for Message {
    type Output = Vec<u8>;
    type Error = std::io::Error;
}

impl Message {
    fn read(
        &mut self,
        ctl: &mut Ctl<'_, Self>,
        sub: Req<ReadSome<UnixStream>>,
    ) -> StepResult<Self> {
        let bytes = sub.recv()?;
        if bytes.is_empty() {
            return Err(ReqError::User(ErrorKind::UnexpectedEof.into()));
        }
        self.got.extend_from_slice(&bytes);
        if self.got.len() == self.len {
            return Ok(Progress::Done(std::mem::take(&mut self.got)));
        }
        if !self.buggy {
            let room = vec![0; self.len - self.got.len()];
            ctl.wait(read_some_send(ctl.ev(), &self.sock, room), Message::read)?;
        }
        Ok(Progress::Pending)
    }
}

fn message_send(ev: &Context, sock: &Rc<UnixStream>, len: usize, buggy: bool) -> Req<Message> {
    let state = Message {
        sock: sock.clone(),
        got: Vec::new(),
        len,
        buggy,
    };
    Req::start(ev, state, |st, ctl| {
        ctl.wait(
            read_some_send(ctl.ev(), &st.sock, vec![0; st.len]),
            Message::read,
        )?;
        Ok(Progress::Pending)
    })
}

/// A message sent whole, received through [`Message`].
fn message_body(buggy: bool) -> impl FnMut(&Context) {
    move |ev| {
        let (a, b) = tests::socketpair();
        (&b).write_all(&pattern(64)).unwrap();
        let got = message_send(ev, &Rc::new(a), 64, buggy).poll_recv(ev);
        assert_eq!(got.expect("the message arrives").unwrap(), pattern(64));
    }
}

const PLANTED: Faults = Faults {
    short_read: 0.02,
    interrupted: 0.05,
    ..Faults::NONE
};

#[test]
fn a_lost_wakeup_after_a_short_read_is_found_within_1000_seeds_and_replayed_from_its_seed() {
    // Without faults the bug never shows: the message arrives in one read.
    sim::run(
        Seeds {
            first: 0,
            runs: 1000,
        },
        Faults::NONE,
        message_body(true),
    );
    // The fixed request survives every seed with faults.
    sim::run(
        Seeds {
            first: 0,
            runs: 1000,
        },
        PLANTED,
        message_body(false),
    );
    // The buggy one fails, and the failure names its seed.
    let failure = sim::explore(
        Seeds {
            first: 0,
            runs: 1000,
        },
        PLANTED,
        message_body(true),
    )
    .expect_err("the planted bug is found");
    assert!(failure.seed < 1000);
    println!("the planted bug was found with seed {}", failure.seed);
    assert!(failure.message.contains("the message arrives"), "{failure}");
    // Replay it as a user would: from the printed `TEVENT_SEED=...`.
    let text = failure.to_string();
    let printed = text
        .split("TEVENT_SEED=")
        .nth(1)
        .expect("the failure names the variable");
    let replay = Seeds::parse(Some(printed), None, 1000).unwrap();
    assert_eq!(replay.runs, 1);
    let again = sim::explore(replay, PLANTED, message_body(true)).expect_err("it fails again");
    assert_eq!(again, failure);
    // And the same seed passes with the fix.
    assert_eq!(sim::explore(replay, PLANTED, message_body(false)), Ok(1));
}

#[test]
fn a_context_that_is_not_simulated_has_no_seed_and_injects_nothing() {
    let ev = Context::new().unwrap();
    assert_eq!(sim::seed(&ev), None);
    sim::note(&ev, "ignored");
    assert!(Fault::ALL.iter().all(|k| sim::injected(&ev, *k) == 0));
}
