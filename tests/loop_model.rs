//! Model-based test of the loop: random sequences of adding, removing,
//! rescheduling, restarting, cancelling and changing the flags of
//! immediates, timers and fd watchers (several watchers on one fd), both from
//! the test and from inside handlers, run on a real context and on a small
//! reference model of the dispatch rules: immediates FIFO (rescheduling moves
//! to the tail), timers by deadline then arming order, fd watchers
//! round-robin within a poll's batch, tevent's class order, and the fairness
//! step (after `FAIR_STEPS` steps above the fds, the fd, timer and immediate
//! classes take turns). The same handlers must run in the same order, and
//! each step must report the same. (Signals, which run all at once ahead of
//! everything, are tested in `tests/signal.rs`; request notifications in the
//! request tests.)

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use tevent::{Context, FAIR_STEPS, FdEvent, FdFlags, Immediate, Timer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Imm,
    Timer,
    Fd,
}

/// One operation; an index names the event created `i % created`-th of its
/// kind (nothing happens if there is none, or it was dropped).
#[derive(Clone, Copy, Debug)]
enum Op {
    AddImm,
    Schedule(usize),
    CancelImm(usize),
    DropImm(usize),
    AddTimer(u8),
    Restart(usize, u8),
    CancelTimer(usize),
    DropTimer(usize),
    AddFd(u8),
    SetFlags(usize, u8),
    DropFd(usize),
    /// One `loop_once` (ignored inside handlers: loops do not nest).
    Step,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::AddImm),
        4 => any::<usize>().prop_map(Op::Schedule),
        1 => any::<usize>().prop_map(Op::CancelImm),
        1 => any::<usize>().prop_map(Op::DropImm),
        3 => (0u8..6).prop_map(Op::AddTimer),
        3 => (any::<usize>(), 0u8..6).prop_map(|(i, d)| Op::Restart(i, d)),
        1 => any::<usize>().prop_map(Op::CancelTimer),
        1 => any::<usize>().prop_map(Op::DropTimer),
        2 => (0u8..4).prop_map(Op::AddFd),
        2 => (any::<usize>(), 0u8..4).prop_map(|(i, f)| Op::SetFlags(i, f)),
        1 => any::<usize>().prop_map(Op::DropFd),
        12 => Just(Op::Step),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    ops: Vec<Op>,
    /// The n-th event created runs `handler_ops[n % len]`, one op per run of
    /// its handler (the k-th run does the k-th op, if there is one; with
    /// `cycle`, the `k % len`-th, so handlers can reschedule themselves
    /// forever and push the loop into its fairness steps).
    handler_ops: Vec<Vec<Op>>,
    cycle: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(op(), 1..80),
        prop::collection::vec(prop::collection::vec(op(), 0..4), 1..8),
        any::<bool>(),
    )
        .prop_map(|(mut ops, handler_ops, cycle)| {
            // Enough steps at the end to drain what is runnable, or, with
            // `cycle`, to pass several fairness steps.
            let tail = if cycle { 4 * FAIR_STEPS as usize } else { 40 };
            ops.extend(std::iter::repeat_n(Op::Step, tail));
            Case {
                ops,
                handler_ops,
                cycle,
            }
        })
}

/// The op the `k`-th run of the `nth` event's handler does.
fn handler_op(c: &Case, nth: usize, k: usize) -> Option<Op> {
    let ops = &c.handler_ops[nth % c.handler_ops.len()];
    match ops.len() {
        0 => None,
        n if c.cycle => Some(ops[k % n]),
        _ => ops.get(k).copied(),
    }
}

fn flags(f: u8) -> FdFlags {
    let mut out = FdFlags::empty();
    if f & 1 != 0 {
        out |= FdFlags::READ;
    }
    if f & 2 != 0 {
        out |= FdFlags::WRITE;
    }
    out
}

// ---------------------------------------------------------------------------
// The real context.

struct Real {
    ev: Context,
    sock: Rc<UnixStream>,
    imms: Vec<Option<Immediate>>,
    timers: Vec<Option<Timer>>,
    fds: Vec<Option<FdEvent<'static>>>,
    created: usize,
    log: Vec<(Kind, usize)>,
    case: Rc<Case>,
}

/// A handle removed from the world, dropped once no borrow of it is held.
type Gone = Box<dyn std::any::Any>;

fn pick<T>(v: &mut [Option<T>], i: usize) -> Option<&mut Option<T>> {
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    Some(&mut v[i % n])
}

/// Applies `op` to the real context; what it removed is returned to be
/// dropped after the world is released.
fn apply_real(world: &Rc<RefCell<Real>>, op: Op, in_handler: bool) -> Option<Gone> {
    let mut w = world.borrow_mut();
    let ev = w.ev.clone();
    match op {
        Op::Step => {
            if !in_handler {
                drop(w);
                ev.loop_once().expect("loop");
            }
        }
        Op::AddImm => {
            let id = w.imms.len();
            let nth = w.created;
            w.created += 1;
            let wr = Rc::downgrade(world);
            let mut runs = 0;
            let im = ev.add_immediate(move |_, _| {
                let Some(world) = wr.upgrade() else { return };
                let o = on_run(&world, Kind::Imm, id, nth, &mut runs);
                let gone = o.and_then(|o| apply_real(&world, o, true));
                drop(gone);
            });
            w.imms.push(Some(im));
        }
        Op::Schedule(i) => {
            if let Some(Some(im)) = pick(&mut w.imms, i) {
                im.schedule().expect("schedule");
            }
        }
        Op::CancelImm(i) => {
            if let Some(Some(im)) = pick(&mut w.imms, i) {
                im.cancel();
            }
        }
        Op::DropImm(i) => {
            return pick(&mut w.imms, i)
                .and_then(Option::take)
                .map(|e| Box::new(e) as Gone);
        }
        Op::AddTimer(d) => {
            let id = w.timers.len();
            let nth = w.created;
            w.created += 1;
            let wr = Rc::downgrade(world);
            let mut runs = 0;
            let t = ev.add_timer_after(Duration::from_millis(d.into()), move |_, _| {
                let Some(world) = wr.upgrade() else { return };
                let o = on_run(&world, Kind::Timer, id, nth, &mut runs);
                let gone = o.and_then(|o| apply_real(&world, o, true));
                drop(gone);
            });
            w.timers.push(Some(t));
        }
        Op::Restart(i, d) => {
            if let Some(Some(t)) = pick(&mut w.timers, i) {
                t.restart_after(Duration::from_millis(d.into()))
                    .expect("restart");
            }
        }
        Op::CancelTimer(i) => {
            if let Some(Some(t)) = pick(&mut w.timers, i) {
                t.cancel();
            }
        }
        Op::DropTimer(i) => {
            return pick(&mut w.timers, i)
                .and_then(Option::take)
                .map(|e| Box::new(e) as Gone);
        }
        Op::AddFd(f) => {
            let id = w.fds.len();
            let nth = w.created;
            w.created += 1;
            let wr = Rc::downgrade(world);
            let mut runs = 0;
            let fd = ev
                .add_fd_shared(w.sock.clone(), flags(f), move |_, _, _| {
                    let Some(world) = wr.upgrade() else { return };
                    let o = on_run(&world, Kind::Fd, id, nth, &mut runs);
                    let gone = o.and_then(|o| apply_real(&world, o, true));
                    drop(gone);
                })
                .expect("add_fd");
            w.fds.push(Some(fd));
        }
        Op::SetFlags(i, f) => {
            if let Some(Some(fd)) = pick(&mut w.fds, i) {
                fd.set_flags(flags(f)).expect("set_flags");
            }
        }
        Op::DropFd(i) => {
            return pick(&mut w.fds, i)
                .and_then(Option::take)
                .map(|e| Box::new(e) as Gone);
        }
    }
    None
}

/// Logs a handler run; the op it does this time.
fn on_run(
    world: &Rc<RefCell<Real>>,
    kind: Kind,
    id: usize,
    nth: usize,
    runs: &mut usize,
) -> Option<Op> {
    let mut w = world.borrow_mut();
    w.log.push((kind, id));
    let o = handler_op(&w.case, nth, *runs);
    *runs += 1;
    o
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Default)]
struct Model {
    now: u64,
    /// Per immediate: whether it exists.
    imms: Vec<bool>,
    queue: VecDeque<usize>,
    /// Per timer: `None` if dropped; else its deadline and arming sequence
    /// if armed.
    timers: Vec<Option<Option<(u64, u64)>>>,
    seq: u64,
    /// Per fd watcher: `None` if dropped, else its flags.
    fds: Vec<Option<u8>>,
    /// Watchers on the fd, in the order they joined; whether the fd entry
    /// exists (it outlives its last watcher until the next poll), and its
    /// round-robin start.
    watchers: Vec<usize>,
    file: bool,
    rr: usize,
    /// Ready entries: watcher and the readiness the poll reported (the
    /// interest registered for the fd then: it is readable and writable).
    batch: VecDeque<(usize, u8)>,
    busy: u32,
    fair_next: u32,
    fair_turns: usize,
    created: usize,
    /// Per event: (kind, id, creation rank, runs so far).
    runs: Vec<(Kind, usize, usize, usize)>,
    log: Vec<(Kind, usize)>,
}

impl Model {
    fn rank(&mut self, kind: Kind, id: usize) -> &mut (Kind, usize, usize, usize) {
        self.runs
            .iter_mut()
            .find(|r| r.0 == kind && r.1 == id)
            .expect("created")
    }

    fn apply(&mut self, op: Op, in_handler: bool, c: &Case) {
        let idx = |n: usize, i: usize| if n == 0 { None } else { Some(i % n) };
        match op {
            Op::Step => {
                if !in_handler {
                    self.step(c);
                }
            }
            Op::AddImm => {
                self.runs
                    .push((Kind::Imm, self.imms.len(), self.created, 0));
                self.created += 1;
                self.imms.push(true);
            }
            Op::Schedule(i) => {
                if let Some(i) = idx(self.imms.len(), i)
                    && self.imms[i]
                {
                    self.queue.retain(|q| *q != i);
                    self.queue.push_back(i);
                }
            }
            Op::CancelImm(i) => {
                if let Some(i) = idx(self.imms.len(), i) {
                    self.queue.retain(|q| *q != i);
                }
            }
            Op::DropImm(i) => {
                if let Some(i) = idx(self.imms.len(), i) {
                    self.imms[i] = false;
                    self.queue.retain(|q| *q != i);
                }
            }
            Op::AddTimer(d) => {
                self.runs
                    .push((Kind::Timer, self.timers.len(), self.created, 0));
                self.created += 1;
                self.seq += 1;
                self.timers
                    .push(Some(Some((self.now + u64::from(d), self.seq))));
            }
            Op::Restart(i, d) => {
                if let Some(i) = idx(self.timers.len(), i)
                    && let Some(t) = &mut self.timers[i]
                {
                    self.seq += 1;
                    *t = Some((self.now + u64::from(d), self.seq));
                }
            }
            Op::CancelTimer(i) => {
                if let Some(i) = idx(self.timers.len(), i)
                    && let Some(t) = &mut self.timers[i]
                {
                    *t = None;
                }
            }
            Op::DropTimer(i) => {
                if let Some(i) = idx(self.timers.len(), i) {
                    self.timers[i] = None;
                }
            }
            Op::AddFd(f) => {
                let id = self.fds.len();
                self.runs.push((Kind::Fd, id, self.created, 0));
                self.created += 1;
                self.fds.push(Some(f));
                if !self.file {
                    self.file = true;
                    self.rr = 0;
                }
                self.watchers.push(id);
            }
            Op::SetFlags(i, f) => {
                if let Some(i) = idx(self.fds.len(), i)
                    && let Some(fl) = &mut self.fds[i]
                {
                    *fl = f;
                }
            }
            Op::DropFd(i) => {
                if let Some(i) = idx(self.fds.len(), i)
                    && self.fds[i].take().is_some()
                {
                    self.watchers.retain(|w| *w != i);
                }
            }
        }
    }

    /// Runs a handler: logs it and does its op for this run.
    fn run(&mut self, kind: Kind, id: usize, c: &Case) {
        self.log.push((kind, id));
        let r = self.rank(kind, id);
        let (nth, k) = (r.2, r.3);
        r.3 += 1;
        if let Some(o) = handler_op(c, nth, k) {
            self.apply(o, true, c);
        }
    }

    fn due_timer(&self) -> Option<usize> {
        self.timers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.and_then(|t| t).map(|(d, s)| (d, s, i)))
            .filter(|(d, _, _)| *d <= self.now)
            .min()
            .map(|(_, _, i)| i)
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers
            .iter()
            .filter_map(|t| t.and_then(|t| t).map(|(d, _)| d))
            .min()
    }

    fn run_timer(&mut self, c: &Case) -> bool {
        let Some(i) = self.due_timer() else {
            return false;
        };
        self.timers[i] = Some(None);
        self.run(Kind::Timer, i, c);
        true
    }

    fn run_imm(&mut self, c: &Case) -> bool {
        let Some(i) = self.queue.pop_front() else {
            return false;
        };
        self.run(Kind::Imm, i, c);
        true
    }

    fn interest(&self) -> bool {
        self.watchers
            .iter()
            .any(|w| self.fds[*w].is_some_and(|f| f != 0))
    }

    fn run_fd(&mut self, c: &Case) -> bool {
        while let Some((w, ready)) = self.batch.pop_front() {
            // A watcher runs if it is still there and still wants some of
            // what was reported.
            if self.fds[w].is_some_and(|f| f & ready != 0) {
                self.run(Kind::Fd, w, c);
                return true;
            }
        }
        false
    }

    /// A poll: the fd leaves the poller when it has no watcher, and is
    /// reported ready when some watcher wants it.
    fn poll(&mut self) -> bool {
        if self.watchers.is_empty() {
            self.file = false;
        }
        if !self.interest() {
            return false;
        }
        let ready = self
            .watchers
            .iter()
            .fold(0, |u, w| u | self.fds[*w].unwrap_or(0));
        let n = self.watchers.len();
        let start = self.rr % n;
        self.rr = (start + 1) % n;
        for i in 0..n {
            self.batch
                .push_back((self.watchers[(start + i) % n], ready));
        }
        true
    }

    fn fair_turn(&mut self, c: &Case) -> bool {
        for i in 0..3 {
            let class = (self.fair_next + i) % 3;
            let ran = match class {
                0 => self.run_fd(c) || (self.interest() && self.poll() && self.run_fd(c)),
                1 => self.run_timer(c),
                _ => self.run_imm(c),
            };
            if ran {
                self.fair_turns += 1;
                self.fair_next = (class + 1) % 3;
                return true;
            }
        }
        false
    }

    /// One `loop_once` in poll mode on an auto-advancing manual clock.
    fn step(&mut self, c: &Case) -> bool {
        if self.busy >= FAIR_STEPS {
            self.busy = 0;
            if self.fair_turn(c) {
                return true;
            }
        }
        if self.run_imm(c) || self.run_timer(c) {
            self.busy += 1;
            return true;
        }
        let next = self.next_deadline();
        self.busy = 0;
        if self.run_fd(c) {
            return true;
        }
        let ready = self.poll();
        if !ready && let Some(at) = next {
            self.now = self.now.max(at);
        }
        self.run_timer(c) || self.run_fd(c)
    }
}

// ---------------------------------------------------------------------------

/// Runs one case on both; returns (handler runs, fairness steps taken).
fn run_case(c: &Case) -> Result<(usize, usize), TestCaseError> {
    let ev = Context::with_manual_clock(true).expect("context");
    run_case_on(&ev, c, true).map(|(runs, fair, _)| (runs, fair))
}

/// The handlers a context ran, in order.
type Ran = Vec<(Kind, usize)>;

/// Runs one case on `ev` (a simulated context or not), and with `compare`
/// on the model too, checking after every op that both ran the same
/// handlers; returns (handler runs, fairness steps taken, the handlers
/// `ev` ran, in order).
fn run_case_on(
    ev: &Context,
    c: &Case,
    compare: bool,
) -> Result<(usize, usize, Ran), TestCaseError> {
    let ev = ev.clone();
    ev.set_wait_timeout(Some(Duration::ZERO));
    let (a, b) = tests::socketpair();
    // Unread data keeps the fd readable; it is writable too.
    (&b).write_all(b"x").expect("write");
    let case = Rc::new(c.clone());
    let world = Rc::new(RefCell::new(Real {
        ev: ev.clone(),
        sock: Rc::new(a),
        imms: Vec::new(),
        timers: Vec::new(),
        fds: Vec::new(),
        created: 0,
        log: Vec::new(),
        case: case.clone(),
    }));
    let mut model = Model::default();
    for (n, op) in c.ops.iter().enumerate() {
        drop(apply_real(&world, *op, false));
        if compare {
            model.apply(*op, false, &case);
            let real = &world.borrow().log;
            prop_assert_eq!(real, &model.log, "after op {} ({:?})", n, op);
        }
    }
    // Drop the events inside the world before the context.
    let w = Rc::try_unwrap(world).ok().expect("one owner").into_inner();
    drop((w.imms, w.timers, w.fds));
    drop(b);
    Ok((model.log.len(), model.fair_turns, w.log))
}

/// Random schedules: 1000 per run (fixed seed), printed as `<N> random
/// schedules`, with how many handler runs and fairness steps they covered.
#[test]
fn the_loop_runs_handlers_in_the_reference_models_order() {
    const SCHEDULES: u32 = 1000;
    let mut runner = tests::random::runner(SCHEDULES, 0x5c);
    let ran = Cell::new(0u32);
    let (runs, fair) = (Cell::new(0usize), Cell::new(0usize));
    runner
        .run(&case(), |c| {
            let (r, f) = run_case(&c)?;
            ran.set(ran.get() + 1);
            runs.set(runs.get() + r);
            fair.set(fair.get() + f);
            Ok(())
        })
        .unwrap();
    println!(
        "{} random schedules ({} handler runs, {} fairness steps)",
        ran.get(),
        runs.get(),
        fair.get()
    );
    assert!(ran.get() >= runner.config().cases);
    assert!(fair.get() > 0, "no schedule reached a fairness step");
}

// ---------------------------------------------------------------------------
// Under simulation.

/// The schedule of seed `seed`: the same strategy, drawn from the seed.
fn case_of(seed: u64) -> Case {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    case().new_tree(&mut runner).expect("a schedule").current()
}

/// Without faults, a simulated context is the loop of the model: virtual
/// time and the seeded order of fds change nothing that the dispatch
/// rules fix (here every watcher is on one fd, whose watchers keep their
/// rotation). 300 seeds, each a schedule drawn from it.
#[test]
fn a_simulated_context_without_faults_runs_handlers_in_the_reference_models_order() {
    use tevent::sim::{Faults, Seeds};
    for seed in Seeds::from_env(300).iter() {
        let c = case_of(seed);
        let ev = Context::simulated(seed, Faults::NONE).expect("context");
        if let Err(e) = run_case_on(&ev, &c, true) {
            panic!("seed {seed}: {e}\n{c:?}");
        }
    }
}

/// 1 000 seeds (or those of `TEVENT_SEED` / `TEVENT_SIM_RUNS`), each a
/// schedule drawn from the seed, run twice on a simulated context whose
/// readiness comes late and whose timers fire late now and then: both runs
/// run the same handlers in the same order (the determinism check), and
/// the faults do change the order against the model's in some of them.
#[test]
fn simulated_schedules_with_late_readiness_and_timers_run_the_same_twice_from_one_seed() {
    use tevent::sim::{self, Faults, Seeds};
    let faults = Faults {
        delayed_readiness: 0.2,
        late_timer: 0.2,
        late_timer_max: Duration::from_millis(4),
        ..Faults::NONE
    };
    let seeds = Seeds::from_env(1000);
    let mut differ = 0;
    for seed in seeds.iter() {
        let c = case_of(seed);
        let record = sim::check_determinism(seed, faults, |ev| match run_case_on(ev, &c, false) {
            Ok((_, _, log)) => log,
            Err(e) => panic!("seed {seed}: {e}\n{c:?}"),
        })
        .unwrap_or_else(|d| panic!("{d}\n{c:?}"));
        let ran = record.last().expect("the result is recorded").clone();
        let ev = Context::with_manual_clock(true).expect("context");
        let (_, _, model_order) = run_case_on(&ev, &c, true).expect("the model's order");
        if ran != format!("result {model_order:?}") {
            differ += 1;
        }
    }
    println!(
        "{} simulated schedules, {differ} in another order than the model's",
        seeds.runs
    );
    if seeds.runs >= 1000 {
        assert!(differ > 0, "the faults never changed an order");
    }
}
