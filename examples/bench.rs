//! Micro-benchmarks, run beside C tevent's and tokio's by `benches/run.sh`
//! (the peers' programs are in `benches/`, see `benches/README.md`).
//!
//! ```text
//! cargo run --release --example bench -- <workload> <N>
//! ```
//!
//! Prints exactly one line on stdout:
//!
//! ```text
//! workload=<name> impl=tevent-rs n=<N> ns_per_op=<f> ops_per_s=<f> allocs_per_op=<f>
//! ```
//!
//! Diagnostics go to stderr, prefixed `#`. Each workload first runs a warm-up
//! of N/10 operations (at most 200 000), then one timed pass; it exits non-zero
//! if its self-check fails. `allocs_per_op` counts heap allocations (including
//! reallocations) made during the timed pass, by a counting global allocator.
//!
//! Workloads (the same definitions as the C tevent and tokio programs in
//! `benches/`):
//! - `immediate`: one immediate event that reschedules itself N times;
//! - `immediate_alloc`: a chain of N immediates, each hop a fresh event, the
//!   old one dropped in its own handler;
//! - `timers`: N one-shot timers with deadlines uniform over the next 50 ms
//!   (splitmix64, the peers' seed), fired in deadline order; ns_per_op is
//!   process CPU time, the wall time goes to stderr.
//! - `fd`: one fd event dispatched: a byte bounced between the two ends of a
//!   Unix socket pair, each end with a read watcher that reads the byte and
//!   writes the next one back through its own end (so every op is one wait
//!   of the loop, one `read` and one `write`).
//! - `req_lifecycle`: one request created with a small state, finished at once
//!   inside its send, its completion delivered from the loop, received and
//!   freed; one outstanding at a time.
//! - `req_lifecycle_batch`: the same with 1000 chains, so 1000 outstanding.
//! - `req_lifecycle_macro`, `nested_macro`: the two workloads above with
//!   every request written with `#[tevent_request]` (to compare generated
//!   requests with hand-written ones; not in the peers).
//! - `steps`, `steps_macro`: one request walking three steps round and
//!   round, N transitions in all; each step waits for a request finished
//!   inside its send (as in `req_lifecycle`) and hands a 32-byte value to the
//!   next step: kept in the state's fields by hand, carried by the
//!   transition in the generated request (not in the peers).
//! - `nested`: a chain of 16 nested requests whose innermost waits for a
//!   wake-up request at a time already passed; odd reps fail at the innermost
//!   level (EPROTO) and the error propagates out. ns_per_op is per (sub)request
//!   of the 16; each rep also creates the wake-up request, so the line adds
//!   `reqs_per_op` (17/16) and `allocs_per_req`.
//!
//! The request workloads are driven by a driver request that waits for each
//! request with a plain-function step (the C peer sets a callback with private
//! data), and every result is checked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tevent::{
    Context, Ctl, FdFlags, Immediate, Next, Progress, Req, ReqError, Request, StepResult, Wakeup,
    tevent_request, wakeup_recv, wakeup_send,
};

const IMPL: &str = "tevent-rs";
/// Same seed and PRNG as the peers, so every implementation sees the same deadlines.
const SEED: u64 = 0x5eed_5eed_1234_5678;
const TIMER_SPREAD_US: u64 = 50_000;
/// Depth of the request chain in `nested` (as the peers).
const NEST_DEPTH: u32 = 16;
/// Outstanding requests in `req_lifecycle_batch`.
const BATCH_WIDTH: u64 = 1000;
/// EPROTO: the error injected at the innermost level of odd `nested` reps.
const NEST_INJECTED_ERR: i32 = libc::EPROTO;

/// Counts allocations so the result line can report allocations per operation.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Process CPU time (user + system), as the peers measure timers.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a valid, properly aligned timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        die("clock_gettime failed");
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn warmup_n(n: u64) -> u64 {
    (n / 10).clamp(1, 200_000)
}

/// What one timed pass measured.
struct Pass {
    ns: u128,
    allocs: u64,
}

fn measure(f: impl FnOnce() -> u128) -> Pass {
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let ns = f();
    Pass {
        ns,
        allocs: ALLOCS.load(Ordering::Relaxed) - a0,
    }
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn run_immediate(ev: &Context, n: u64) -> u128 {
    let fired = Rc::new(Cell::new(0u64));
    let f = fired.clone();
    let im = ev.add_immediate(move |_, me| {
        f.set(f.get() + 1);
        if f.get() < n {
            me.schedule();
        }
    });
    let t0 = Instant::now();
    im.schedule().unwrap_or_else(|e| die(&e.to_string()));
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if fired.get() != n {
        die(&format!("immediate: fired {} of {n}", fired.get()));
    }
    ns
}

fn run_immediate_alloc(ev: &Context, n: u64) -> u128 {
    struct Chain {
        fired: Cell<u64>,
        target: u64,
        current: RefCell<Option<Immediate>>,
    }
    fn hop(ev: &Context, chain: &Rc<Chain>) {
        let c = chain.clone();
        let im = ev.add_immediate(move |ev, _| {
            c.fired.set(c.fired.get() + 1);
            // Drop our own event (freed in its handler, as the C peer does) and
            // continue with a fresh one.
            let me = c.current.borrow_mut().take();
            if c.fired.get() < c.target {
                hop(ev, &c);
            }
            drop(me);
        });
        im.schedule().unwrap_or_else(|e| die(&e.to_string()));
        *chain.current.borrow_mut() = Some(im);
    }
    let chain = Rc::new(Chain {
        fired: Cell::new(0),
        target: n,
        current: RefCell::new(None),
    });
    let t0 = Instant::now();
    hop(ev, &chain);
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if chain.fired.get() != n {
        die(&format!(
            "immediate_alloc: fired {} of {n}",
            chain.fired.get()
        ));
    }
    ns
}

/// Returns process CPU ns; `wall` gets the wall time.
fn run_timers(ev: &Context, n: u64, wall: &mut Duration) -> u128 {
    struct Check {
        fired: Cell<u64>,
        order_errors: Cell<u64>,
        early: Cell<u64>,
        last: Cell<Option<Instant>>,
    }
    let mut seed = SEED;
    let offs: Vec<u64> = (0..n)
        .map(|_| splitmix64(&mut seed) % TIMER_SPREAD_US)
        .collect();
    let check = Rc::new(Check {
        fired: Cell::new(0),
        order_errors: Cell::new(0),
        early: Cell::new(0),
        last: Cell::new(None),
    });
    let mut timers = Vec::with_capacity(n as usize);
    let c0 = cpu_now();
    let t0 = Instant::now();
    let base = ev.now();
    for off in offs {
        let c = check.clone();
        timers.push(
            ev.add_timer(base + Duration::from_micros(off), move |ev, me| {
                let deadline = me.deadline();
                if c.last.get().is_some_and(|l| deadline < l) {
                    c.order_errors.set(c.order_errors.get() + 1);
                } else {
                    c.last.set(Some(deadline));
                }
                if ev.loop_time() < deadline {
                    c.early.set(c.early.get() + 1);
                }
                c.fired.set(c.fired.get() + 1);
            }),
        );
    }
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    *wall = t0.elapsed();
    let cpu = (cpu_now() - c0).as_nanos();
    if check.fired.get() != n {
        die(&format!("timers: fired {} of {n}", check.fired.get()));
    }
    if check.order_errors.get() != 0 {
        die(&format!(
            "timers: {} fired out of deadline order",
            check.order_errors.get()
        ));
    }
    if check.early.get() != 0 {
        die(&format!(
            "timers: {} fired before their deadline",
            check.early.get()
        ));
    }
    drop(timers);
    cpu
}

/// A byte bounced between the two ends of a socket pair, `n` times.
fn run_fd(ev: &Context, n: u64) -> u128 {
    struct Bounce {
        done: Cell<u64>,
        bad: Cell<u64>,
    }
    let (a, b) = UnixStream::pair().unwrap_or_else(|e| die(&format!("socketpair: {e}")));
    let ends = [Rc::new(a), Rc::new(b)];
    let bounce = Rc::new(Bounce {
        done: Cell::new(0),
        bad: Cell::new(0),
    });
    let mut watchers = Vec::with_capacity(2);
    for end in &ends {
        end.set_nonblocking(true)
            .unwrap_or_else(|e| die(&e.to_string()));
        let (sock, c) = (end.clone(), bounce.clone());
        let w = ev.add_fd_shared(end.clone(), FdFlags::READ, move |_, _, _| {
            let mut byte = [0u8];
            if !matches!((&*sock).read(&mut byte), Ok(1)) {
                die("fd: read failed");
            }
            if byte[0] != c.done.get() as u8 {
                c.bad.set(c.bad.get() + 1);
            }
            c.done.set(c.done.get() + 1);
            if c.done.get() < n && !matches!((&*sock).write(&[c.done.get() as u8]), Ok(1)) {
                die("fd: write failed");
            }
        });
        watchers.push(w.unwrap_or_else(|e| die(&e.to_string())));
    }
    let t0 = Instant::now();
    // The first byte goes in at end 1, so end 0 reads it first.
    if !matches!((&*ends[1]).write(&[0]), Ok(1)) {
        die("fd: write failed");
    }
    ev.loop_until(|| bounce.done.get() >= n)
        .unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if bounce.bad.get() != 0 {
        die(&format!("fd: {} bytes out of sequence", bounce.bad.get()));
    }
    drop(watchers);
    ns
}

// ---------------------------------------------------------------------------
// req_lifecycle

/// The measured request: a small state, finished inside its send.
struct Lc {
    id: u64,
}

impl Request for Lc {
    type Output = u64;
    type Error = Infallible;
}

fn lc_send(ev: &Context, id: u64) -> Req<Lc> {
    Req::start(ev, Lc { id }, |st, _| {
        Ok(Progress::Done(st.id ^ 0xa5a5_a5a5_a5a5_a5a5))
    })
}

/// Runs `width` chains of `per_chain` sequential `Lc` requests.
struct LcDriver {
    per_chain: u64,
    issued: Vec<u64>,
    completed: u64,
    errors: u64,
}

impl Request for LcDriver {
    type Output = (u64, u64);
    type Error = Infallible;
}

impl LcDriver {
    fn issue(&mut self, ctl: &mut Ctl<'_, Self>, chain: u64) -> Result<(), ReqError<Infallible>> {
        let id = (chain << 32) | self.issued[chain as usize];
        self.issued[chain as usize] += 1;
        ctl.wait(lc_send(ctl.ev(), id), LcDriver::done)
    }

    fn done(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Lc>) -> StepResult<Self> {
        match sub.recv() {
            Ok(echo) => {
                let id = echo ^ 0xa5a5_a5a5_a5a5_a5a5;
                let chain = id >> 32;
                if id & 0xffff_ffff != self.issued[chain as usize] - 1 {
                    self.errors += 1;
                }
                self.completed += 1;
                if self.issued[chain as usize] < self.per_chain {
                    self.issue(ctl, chain)?;
                }
            }
            Err(_) => self.errors += 1,
        }
        let total = self.per_chain * self.issued.len() as u64;
        Ok(if self.completed == total {
            Progress::Done((self.completed, self.errors))
        } else {
            Progress::Pending
        })
    }
}

fn run_req_lifecycle(ev: &Context, width: u64, per_chain: u64) -> u128 {
    let t0 = Instant::now();
    let driver = Req::start(
        ev,
        LcDriver {
            per_chain,
            issued: vec![0; width as usize],
            completed: 0,
            errors: 0,
        },
        |st, ctl| {
            for chain in 0..st.issued.len() as u64 {
                st.issue(ctl, chain)?;
            }
            Ok(Progress::Pending)
        },
    );
    driver.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match driver.recv() {
        Ok((completed, 0)) if completed == width * per_chain => ns,
        other => die(&format!("req_lifecycle: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// nested

/// One level of the chain; the innermost waits for a wake-up.
struct Nest {
    fail: bool,
}

impl Request for Nest {
    type Output = ();
    type Error = i32;
}

impl Nest {
    fn leaf_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Wakeup>) -> StepResult<Self> {
        if !wakeup_recv(sub) {
            return Err(ReqError::User(libc::EIO));
        }
        if self.fail {
            return Err(ReqError::User(NEST_INJECTED_ERR));
        }
        Ok(Progress::Done(()))
    }

    fn child_done(&mut self, _: &mut Ctl<'_, Self>, sub: Req<Nest>) -> StepResult<Self> {
        sub.recv()?;
        Ok(Progress::Done(()))
    }
}

fn nest_send(ev: &Context, depth: u32, fail: bool) -> Req<Nest> {
    Req::start(ev, Nest { fail }, |_, ctl| {
        let ev = ctl.ev();
        if depth == 0 {
            // A time already passed (the loop's last clock reading): due at the
            // next step, like tevent_timeval_zero() in the C peer.
            ctl.wait(wakeup_send(ev, ev.loop_time()), Nest::leaf_done)?;
        } else {
            ctl.wait(nest_send(ev, depth - 1, fail), Nest::child_done)?;
        }
        Ok(Progress::Pending)
    })
}

/// Runs `reps` chains one after the other, checking each outcome.
struct NestDriver {
    reps: u64,
    issued: u64,
    completed: u64,
    errors: u64,
}

impl Request for NestDriver {
    type Output = (u64, u64);
    type Error = Infallible;
}

impl NestDriver {
    fn issue(&mut self, ctl: &mut Ctl<'_, Self>) -> Result<(), ReqError<Infallible>> {
        let fail = self.issued % 2 == 1;
        self.issued += 1;
        ctl.wait(nest_send(ctl.ev(), NEST_DEPTH - 1, fail), NestDriver::done)
    }

    fn done(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Nest>) -> StepResult<Self> {
        let fail = (self.issued - 1) % 2 == 1;
        let expect = if fail {
            Err(ReqError::User(NEST_INJECTED_ERR))
        } else {
            Ok(())
        };
        if sub.recv() != expect {
            self.errors += 1;
        }
        self.completed += 1;
        if self.issued < self.reps {
            self.issue(ctl)?;
            return Ok(Progress::Pending);
        }
        Ok(Progress::Done((self.completed, self.errors)))
    }
}

fn run_nested(ev: &Context, reps: u64) -> u128 {
    let t0 = Instant::now();
    let driver = Req::start(
        ev,
        NestDriver {
            reps,
            issued: 0,
            completed: 0,
            errors: 0,
        },
        |st, ctl| {
            st.issue(ctl)?;
            Ok(Progress::Pending)
        },
    );
    driver.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match driver.recv() {
        Ok((completed, 0)) if completed == reps => ns,
        other => die(&format!("nested: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// req_lifecycle_macro and nested_macro: the same two workloads, every request
// (measured and driver) written with #[tevent_request] instead of by hand.

/// The measured request, generated: finishes in its start step.
struct LcM {
    _id: u64,
}

#[tevent_request(steps(start => [done]))]
impl LcM {
    type Output = u64;
    type Error = Infallible;

    fn start(to: LcMStartStep<'_>, id: u64) -> Next<Self> {
        to.create(LcM { _id: id }).done(id ^ 0xa5a5_a5a5_a5a5_a5a5)
    }
}

/// Runs `width` chains of `per_chain` sequential `LcM` requests.
struct LcDriverM {
    per_chain: u64,
    issued: Vec<u64>,
    completed: u64,
    errors: u64,
}

#[tevent_request(steps(start => [finished], finished => [finished, done]))]
impl LcDriverM {
    type Output = (u64, u64);
    type Error = Infallible;

    fn start(to: LcDriverMStartStep<'_>, width: u64, per_chain: u64) -> Next<Self> {
        let to = to.create(LcDriverM {
            per_chain,
            issued: vec![1; width as usize],
            completed: 0,
            errors: 0,
        });
        for chain in 0..width {
            to.finished(lc_m_send(to.ev(), chain << 32))?;
        }
        to.pending()
    }

    fn finished(&mut self, to: LcDriverMFinishedStep<'_>, echo: u64) -> Next<Self> {
        let id = echo ^ 0xa5a5_a5a5_a5a5_a5a5;
        let chain = (id >> 32) as usize;
        if id & 0xffff_ffff != self.issued[chain] - 1 {
            self.errors += 1;
        }
        self.completed += 1;
        if self.issued[chain] < self.per_chain {
            let next = ((chain as u64) << 32) | self.issued[chain];
            self.issued[chain] += 1;
            to.finished(lc_m_send(to.ev(), next))?;
        }
        if self.completed == self.per_chain * self.issued.len() as u64 {
            return to.done((self.completed, self.errors));
        }
        to.pending()
    }
}

fn run_req_lifecycle_macro(ev: &Context, width: u64, per_chain: u64) -> u128 {
    let t0 = Instant::now();
    let driver = lc_driver_m_send(ev, width, per_chain);
    driver.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match lc_driver_m_recv(driver) {
        Ok((completed, 0)) if completed == width * per_chain => ns,
        other => die(&format!("req_lifecycle_macro: {other:?}")),
    }
}

/// One level of the chain, generated; the innermost waits for a wake-up.
struct NestM {
    fail: bool,
}

#[tevent_request(steps(
    start => [leaf_done, child_done],
    leaf_done => [done],
    child_done => [done],
))]
impl NestM {
    type Output = ();
    type Error = i32;

    fn start(to: NestMStartStep<'_>, depth: u32, fail: bool) -> Next<Self> {
        let ev = to.ev();
        let to = to.create(NestM { fail });
        if depth == 0 {
            // As in `nest_send`: a time already passed, due at the next step.
            to.leaf_done(wakeup_send(ev, ev.loop_time()))
        } else {
            to.child_done(nest_m_send(ev, depth - 1, fail))
        }
    }

    fn leaf_done(&mut self, to: NestMLeafDoneStep<'_>, w: Req<Wakeup>) -> Next<Self> {
        if !wakeup_recv(w) {
            return Err(ReqError::User(libc::EIO));
        }
        if self.fail {
            return Err(ReqError::User(NEST_INJECTED_ERR));
        }
        to.done(())
    }

    /// The child's failure has already ended this request (the glue
    /// propagates it); only its success arrives here.
    fn child_done(&mut self, to: NestMChildDoneStep<'_>, _: ()) -> Next<Self> {
        to.done(())
    }
}

/// Runs `reps` generated chains one after the other, checking each outcome.
struct NestDriverM {
    reps: u64,
    issued: u64,
    completed: u64,
    errors: u64,
}

#[tevent_request(steps(start => [finished], finished => [finished, done]))]
impl NestDriverM {
    type Output = (u64, u64);
    type Error = Infallible;

    fn start(to: NestDriverMStartStep<'_>, reps: u64) -> Next<Self> {
        let first = nest_m_send(to.ev(), NEST_DEPTH - 1, false);
        to.create(NestDriverM {
            reps,
            issued: 1,
            completed: 0,
            errors: 0,
        })
        .finished(first)
    }

    fn finished(
        &mut self,
        to: NestDriverMFinishedStep<'_>,
        outcome: Result<(), ReqError<i32>>,
    ) -> Next<Self> {
        let fail = (self.issued - 1) % 2 == 1;
        let expect = if fail {
            Err(ReqError::User(NEST_INJECTED_ERR))
        } else {
            Ok(())
        };
        if outcome != expect {
            self.errors += 1;
        }
        self.completed += 1;
        if self.issued < self.reps {
            let fail = self.issued % 2 == 1;
            self.issued += 1;
            return to.finished(nest_m_send(to.ev(), NEST_DEPTH - 1, fail));
        }
        to.done((self.completed, self.errors))
    }
}

fn run_nested_macro(ev: &Context, reps: u64) -> u128 {
    let t0 = Instant::now();
    let driver = nest_driver_m_send(ev, reps);
    driver.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match nest_driver_m_recv(driver) {
        Ok((completed, 0)) if completed == reps => ns,
        other => die(&format!("nested_macro: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// steps and steps_macro: one request walking its steps, each step waiting
// for a leaf request (the hand-written `Lc`, finished inside its send) and
// handing data to the next step: by hand in the state's fields, generated
// as values carried by the transition (not in the peers).

/// The data each step hands to the next: a count, a running hash, bytes.
#[derive(Debug, Clone, Copy)]
struct Baton {
    n: u64,
    hash: u64,
    bytes: [u8; 16],
}

impl Baton {
    /// The next step's baton, from a leaf's output.
    #[inline]
    fn next(self, echo: u64) -> Baton {
        let mut bytes = self.bytes;
        bytes[(self.n % 16) as usize] ^= echo as u8;
        Baton {
            n: self.n + 1,
            hash: self.hash.rotate_left(5) ^ echo,
            bytes,
        }
    }
}

/// By hand: the baton lives in the state between steps.
struct StepsH {
    total: u64,
    baton: Baton,
}

impl Request for StepsH {
    type Output = Baton;
    type Error = Infallible;
}

impl StepsH {
    fn step(
        &mut self,
        ctl: &mut Ctl<'_, Self>,
        sub: Req<Lc>,
        next: StepFn<Self>,
    ) -> StepResult<Self> {
        let echo = sub.recv()?;
        self.baton = self.baton.next(echo);
        if self.baton.n == self.total {
            return Ok(Progress::Done(self.baton));
        }
        ctl.wait(lc_send(ctl.ev(), self.baton.n), next)?;
        Ok(Progress::Pending)
    }
    fn s1(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Lc>) -> StepResult<Self> {
        self.step(ctl, sub, StepsH::s2)
    }
    fn s2(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Lc>) -> StepResult<Self> {
        self.step(ctl, sub, StepsH::s3)
    }
    fn s3(&mut self, ctl: &mut Ctl<'_, Self>, sub: Req<Lc>) -> StepResult<Self> {
        self.step(ctl, sub, StepsH::s1)
    }
}

/// A step of a hand-written request taking a finished `Lc`.
type StepFn<T> = fn(&mut T, &mut Ctl<'_, T>, Req<Lc>) -> StepResult<T>;

fn run_steps(ev: &Context, n: u64) -> u128 {
    let t0 = Instant::now();
    let first = Baton {
        n: 0,
        hash: 0,
        bytes: [0; 16],
    };
    let req = Req::start(
        ev,
        StepsH {
            total: n,
            baton: first,
        },
        |st, ctl| {
            ctl.wait(lc_send(ctl.ev(), st.baton.n), StepsH::s1)?;
            Ok(Progress::Pending)
        },
    );
    req.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match req.recv() {
        Ok(b) if b.n == n => ns,
        other => die(&format!("steps: {other:?}")),
    }
}

/// Generated: the baton is carried by each transition; the state holds only
/// what every step shares.
struct StepsM {
    total: u64,
}

#[tevent_request(steps(start => s1 => s2 => s3 => [s1, done]))]
impl StepsM {
    type Output = Baton;
    type Error = Infallible;

    fn start(to: _, total: u64) -> Next<Self> {
        let to = to.create(StepsM { total });
        let first = Baton {
            n: 0,
            hash: 0,
            bytes: [0; 16],
        };
        to.s1(lc_send(to.ev(), 0), first)
    }

    fn s1(&mut self, to: _, echo: u64, baton: Baton) -> Next<Self> {
        let b = baton.next(echo);
        to.s2(lc_send(to.ev(), b.n), b)
    }

    fn s2(&mut self, to: _, echo: u64, baton: Baton) -> Next<Self> {
        let b = baton.next(echo);
        to.s3(lc_send(to.ev(), b.n), b)
    }

    fn s3(&mut self, to: _, echo: u64, baton: Baton) -> Next<Self> {
        let b = baton.next(echo);
        if b.n == self.total {
            return to.done(b);
        }
        to.s1(lc_send(to.ev(), b.n), b)
    }
}

fn run_steps_macro(ev: &Context, n: u64) -> u128 {
    let t0 = Instant::now();
    let req = steps_m_send(ev, n);
    req.poll(ev).unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    match steps_m_recv(req) {
        Ok(b) if b.n == n => ns,
        other => die(&format!("steps_macro: {other:?}")),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: bench <workload> <N>");
    eprintln!(
        "workloads: immediate immediate_alloc timers fd req_lifecycle req_lifecycle_batch nested \
         req_lifecycle_macro nested_macro steps steps_macro"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return usage();
    }
    let workload = args[1].as_str();
    let n: u64 = match args[2].parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("error: bad N '{}' (want a positive integer)", args[2]);
            return ExitCode::from(2);
        }
    };
    let ev = Context::new().unwrap_or_else(|e| die(&e.to_string()));
    let mut n = n;
    let mut extra = String::new();
    let pass = match workload {
        "immediate" => {
            run_immediate(&ev, warmup_n(n));
            measure(|| run_immediate(&ev, n))
        }
        "immediate_alloc" => {
            run_immediate_alloc(&ev, warmup_n(n));
            measure(|| run_immediate_alloc(&ev, n))
        }
        "timers" => {
            let mut wall = Duration::ZERO;
            run_timers(&ev, warmup_n(n), &mut wall);
            let p = measure(|| run_timers(&ev, n, &mut wall));
            eprintln!(
                "# timers: ns_per_op is process CPU time; wall={:.3} ms (deadlines spread over {} ms)",
                wall.as_secs_f64() * 1e3,
                TIMER_SPREAD_US / 1000
            );
            p
        }
        "fd" => {
            run_fd(&ev, warmup_n(n));
            measure(|| run_fd(&ev, n))
        }
        "req_lifecycle" => {
            run_req_lifecycle(&ev, 1, warmup_n(n));
            measure(|| run_req_lifecycle(&ev, 1, n))
        }
        "steps" | "steps_macro" => {
            // Multiples of three: the generated request finishes in `s3`.
            n = n.div_ceil(3) * 3;
            let run = if workload == "steps" {
                run_steps
            } else {
                run_steps_macro
            };
            run(&ev, warmup_n(n).div_ceil(3) * 3);
            measure(|| run(&ev, n))
        }
        "req_lifecycle_macro" => {
            run_req_lifecycle_macro(&ev, 1, warmup_n(n));
            measure(|| run_req_lifecycle_macro(&ev, 1, n))
        }
        "req_lifecycle_batch" => {
            let per_chain = n.div_ceil(BATCH_WIDTH);
            n = per_chain * BATCH_WIDTH;
            run_req_lifecycle(&ev, BATCH_WIDTH, (per_chain / 10).max(1));
            let p = measure(|| run_req_lifecycle(&ev, BATCH_WIDTH, per_chain));
            eprintln!("# req_lifecycle_batch: {BATCH_WIDTH} outstanding");
            p
        }
        "nested" | "nested_macro" => {
            let run = if workload == "nested" {
                run_nested
            } else {
                run_nested_macro
            };
            let reps = (n / u64::from(NEST_DEPTH)).max(1);
            n = reps * u64::from(NEST_DEPTH);
            run(&ev, warmup_n(reps));
            let p = measure(|| run(&ev, reps));
            let reqs = reps * u64::from(NEST_DEPTH + 1);
            extra = format!(
                " reqs_per_op={:.4} allocs_per_req={:.3}",
                reqs as f64 / n as f64,
                p.allocs as f64 / reqs as f64
            );
            eprintln!(
                "# nested: depth={NEST_DEPTH} reps={reps}, ns_per_op is per (sub)request; \
                 each rep also creates one wake-up request"
            );
            p
        }
        _ => return usage(),
    };
    let ns_per_op = pass.ns as f64 / n as f64;
    let ops_per_s = if ns_per_op > 0.0 {
        1e9 / ns_per_op
    } else {
        0.0
    };
    println!(
        "workload={workload} impl={IMPL} n={n} ns_per_op={ns_per_op:.3} ops_per_s={ops_per_s:.1} allocs_per_op={:.3}{extra}",
        pass.allocs as f64 / n as f64
    );
    ExitCode::SUCCESS
}
