//! Seeded simulation: a context whose time is virtual, whose choices among
//! events ready together come from a seed, and whose I/O and allocations
//! fail on purpose, so that a test can walk many paths of a program's
//! requests and replay any failure from its seed.
//!
//! A simulated context ([`Context::simulated`]) is an ordinary context with
//! three differences, all driven by one seeded pseudo-random generator
//! (SplitMix64, in this module):
//!
//! - **virtual time**: it runs on a manual clock that jumps to the next
//!   timer whenever nothing else is ready (as
//!   [`Context::with_manual_clock`]`(true)`), so a five-second timeout takes
//!   no time;
//! - **a seeded order** among the fds that one wait of the poller reports
//!   ready together: the fds are served in an order drawn from the seed
//!   (the watchers of one fd keep their round-robin rotation), instead of
//!   the kernel's order. The other classes keep their documented order
//!   (signals, then immediates FIFO, then timers by deadline, FIFO on ties,
//!   then fds; see [`crate::context`]), so every guarantee of the loop still
//!   holds;
//! - **faults** ([`Faults`]), each with its own probability: short reads
//!   and writes, `EINTR` or `EAGAIN` after a readiness report, a connection
//!   reset, an early end of file, a readiness reported one wait later, a
//!   timer that fires late (never early) and a request that cannot be
//!   allocated (`NoMemory`). They happen inside the real code: the reads and
//!   writes of [`crate::io`]'s requests are made on the real fds, with a
//!   shorter length, or replaced by the error the system call would have
//!   given; a reset also shuts the socket down, so its peer sees it; a
//!   failed allocation takes the path a real one takes.
//!
//! Nothing of this exists in a context made otherwise. A simulated
//! context's waits go through `polling` (never the Linux fast wait, which
//! has no check), where the loop checks for the simulation once per wait
//! that found events; a manual clock checks once per jump to a timer; the
//! I/O requests check once per system call; request creation checks only
//! the flag word it already tests for trace hooks (with `NoMemory` faults
//! asked for, creation takes the path a request trace hook takes).
//!
//! # Seeds, runs, replay
//!
//! [`run`] runs a test body once per seed, each on a fresh simulated
//! context, and on a failure (a panic) names the seed:
//!
//! ```text
//! tevent simulation failed with seed 417: assertion failed: ...
//! replay it with TEVENT_SEED=417
//! ```
//!
//! Which seeds: [`Seeds::from_env`] reads `TEVENT_SEED` (one seed: replay
//! it) and `TEVENT_SIM_RUNS` (how many seeds, from `TEVENT_SEED` or 0 on);
//! with neither, the test's own count from 0. The same seed gives the same
//! run as long as the program does not depend on anything outside the
//! context (other threads, the wall clock, a server elsewhere).
//! [`check_determinism`] checks that: it runs a body twice with one seed
//! and compares what happened.
//!
//! ```
//! use std::time::Duration;
//! use tevent::sim::{self, Faults, Seeds};
//!
//! // 50 seeds (or those of TEVENT_SEED / TEVENT_SIM_RUNS): two timers and
//! // an immediate always run in the documented order.
//! sim::run(Seeds::from_env(50), Faults::NONE, |ev| {
//!     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
//!     let l = log.clone();
//!     let _t = ev.add_timer_after(Duration::from_secs(2), move |_, _| l.borrow_mut().push("late"));
//!     let l = log.clone();
//!     let _u = ev.add_timer_after(Duration::from_secs(1), move |_, _| l.borrow_mut().push("early"));
//!     let l = log.clone();
//!     ev.post(move |_| l.borrow_mut().push("now"));
//!     ev.loop_wait().unwrap();
//!     assert_eq!(*log.borrow(), ["now", "early", "late"]);
//! });
//! ```
//!
//! The tutorial's [chapter 8](crate::tutorial::ch8_simulation) tests a
//! request written with `#[tevent_request]` this way.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::{Context, Error};

/// The environment variable that names the seed to run (to replay a
/// failure), read by [`Seeds::from_env`].
pub const SEED_VAR: &str = "TEVENT_SEED";
/// The environment variable that says how many seeds to run, read by
/// [`Seeds::from_env`].
pub const RUNS_VAR: &str = "TEVENT_SIM_RUNS";

/// The faults a simulated context injects, each a probability from 0.0
/// (never) to 1.0 (every time it can). Build one from [`Faults::NONE`] or
/// [`Faults::uniform`] and change the fields you need.
///
/// Where each applies, and what the request sees, is said per field; the
/// I/O faults apply to the requests of [`crate::io`] (their `recv` / `read`
/// / `send` / `write` and `accept` calls), not to I/O a program does by
/// itself.
///
/// ```
/// use std::time::Duration;
/// use tevent::sim::Faults;
///
/// let f = Faults {
///     short_read: 0.3,
///     late_timer: 0.5,
///     late_timer_max: Duration::from_millis(20),
///     ..Faults::NONE
/// };
/// assert_eq!(f.reset, 0.0);
/// let every = Faults::uniform(0.05); // every fault, 5 % each
/// assert_eq!(every.no_memory, 0.05);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// A read asks for fewer bytes than it has room for (at least one), so
    /// it returns less than is there: the request must come back for the
    /// rest.
    pub short_read: f64,
    /// A write offers fewer bytes than it has (at least one): the request
    /// must write the rest later.
    pub short_write: f64,
    /// A read or an accept after a readiness report, or a write, gives
    /// `EINTR` instead of being made: the request waits for readiness
    /// again (the fd is still ready, so it comes at once).
    pub interrupted: f64,
    /// As `interrupted`, with `EAGAIN` (a stale readiness report).
    pub would_block: f64,
    /// A read or write fails with `ECONNRESET` (kind
    /// [`ConnectionReset`](std::io::ErrorKind::ConnectionReset)), and a
    /// socket is shut down both ways, so its peer and later calls see the
    /// connection gone.
    pub reset: f64,
    /// A read returns end of file (0 bytes), and a socket is shut down for
    /// reading: the peer's data that was not read yet is lost, as when a
    /// peer goes away early.
    pub early_eof: f64,
    /// An fd that a wait reported ready is left out of this wait's batch
    /// (the next wait reports it again: registrations are
    /// level-triggered). Applied per ready fd, per wait.
    pub delayed_readiness: f64,
    /// When the virtual clock jumps to the next timer, it jumps further,
    /// by up to [`Faults::late_timer_max`]: that timer (and any other due
    /// by then) fires late, never early.
    pub late_timer: f64,
    /// The most a late timer is late (a duration drawn evenly up to it).
    pub late_timer_max: Duration,
    /// Creating a request fails as if its memory could not be allocated:
    /// the request is finished `NoMemory` ([`crate::ReqError::NoMemory`])
    /// and its first step does not run, and a step that waits for it with
    /// [`Ctl::wait`](crate::Ctl::wait) gets `NoMemory`.
    pub no_memory: f64,
}

impl Faults {
    /// No faults: only virtual time and the seeded order.
    pub const NONE: Faults = Faults {
        short_read: 0.0,
        short_write: 0.0,
        interrupted: 0.0,
        would_block: 0.0,
        reset: 0.0,
        early_eof: 0.0,
        delayed_readiness: 0.0,
        late_timer: 0.0,
        late_timer_max: Duration::from_millis(10),
        no_memory: 0.0,
    };

    /// Every fault with probability `p` (late timers up to 10 ms late).
    pub fn uniform(p: f64) -> Faults {
        Faults {
            short_read: p,
            short_write: p,
            interrupted: p,
            would_block: p,
            reset: p,
            early_eof: p,
            delayed_readiness: p,
            late_timer: p,
            late_timer_max: Duration::from_millis(10),
            no_memory: p,
        }
    }

    /// The probability of `kind`.
    pub fn of(&self, kind: Fault) -> f64 {
        match kind {
            Fault::ShortRead => self.short_read,
            Fault::ShortWrite => self.short_write,
            Fault::Interrupted => self.interrupted,
            Fault::WouldBlock => self.would_block,
            Fault::Reset => self.reset,
            Fault::EarlyEof => self.early_eof,
            Fault::DelayedReadiness => self.delayed_readiness,
            Fault::LateTimer => self.late_timer,
            Fault::NoMemory => self.no_memory,
        }
    }
}

impl Default for Faults {
    /// [`Faults::NONE`].
    fn default() -> Self {
        Faults::NONE
    }
}

/// One kind of fault (see the fields of [`Faults`]), to count them with
/// [`injected`].
///
/// ```
/// use tevent::sim::{Fault, Faults};
///
/// let f = Faults { reset: 0.25, ..Faults::NONE };
/// assert_eq!(f.of(Fault::Reset), 0.25);
/// assert_eq!(Fault::ALL.iter().filter(|k| f.of(**k) > 0.0).count(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// [`Faults::short_read`].
    ShortRead,
    /// [`Faults::short_write`].
    ShortWrite,
    /// [`Faults::interrupted`].
    Interrupted,
    /// [`Faults::would_block`].
    WouldBlock,
    /// [`Faults::reset`].
    Reset,
    /// [`Faults::early_eof`].
    EarlyEof,
    /// [`Faults::delayed_readiness`].
    DelayedReadiness,
    /// [`Faults::late_timer`].
    LateTimer,
    /// [`Faults::no_memory`].
    NoMemory,
}

impl Fault {
    /// Every kind, in declaration order.
    pub const ALL: [Fault; 9] = [
        Fault::ShortRead,
        Fault::ShortWrite,
        Fault::Interrupted,
        Fault::WouldBlock,
        Fault::Reset,
        Fault::EarlyEof,
        Fault::DelayedReadiness,
        Fault::LateTimer,
        Fault::NoMemory,
    ];
}

/// SplitMix64: a 64-bit state, one add and three mix steps per number.
/// Small, fast, and good enough to pick orders and faults.
struct SplitMix64(Cell<u64>);

impl SplitMix64 {
    fn next(&self) -> u64 {
        let s = self.0.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.0.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the bias is below 2^-32 for the sizes
    /// used here).
    fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`. Draws nothing when `p` is 0, so a fault
    /// that is off does not change the other draws.
    fn chance(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a number in [0, 1).
        ((self.next() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
}

/// What a read of [`crate::io`] does under simulation.
pub(crate) enum ReadFault {
    /// Read as asked.
    None,
    /// Read at most this many bytes (at least 1).
    Short(usize),
    /// Do not read: `EINTR` or `EAGAIN` (wait for readiness again).
    Again,
    /// Fail with `ECONNRESET` (the socket is shut down).
    Reset,
    /// Return end of file (the socket is shut down for reading).
    Eof,
}

/// The simulation state of a context (see the module docs).
pub(crate) struct SimState {
    seed: u64,
    rng: SplitMix64,
    faults: Faults,
    counts: [Cell<u64>; Fault::ALL.len()],
    /// The record of what happened, when one is kept ([`check_determinism`]).
    log: Option<Rc<RefCell<Vec<String>>>>,
}

impl SimState {
    fn new(seed: u64, faults: Faults, log: Option<Rc<RefCell<Vec<String>>>>) -> SimState {
        SimState {
            seed,
            rng: SplitMix64(Cell::new(seed)),
            faults,
            counts: Default::default(),
            log,
        }
    }

    /// Whether `kind` happens now (counted and recorded if it does).
    pub(crate) fn inject(&self, kind: Fault) -> bool {
        let hit = self.rng.chance(self.faults.of(kind));
        if hit {
            let c = &self.counts[kind as usize];
            c.set(c.get() + 1);
            self.note(|| format!("fault {kind:?}"));
        }
        hit
    }

    /// Whether `NoMemory` faults are asked for.
    pub(crate) fn fails_allocations(&self) -> bool {
        self.faults.no_memory > 0.0
    }

    /// Records `what` if a record is kept.
    pub(crate) fn note(&self, what: impl FnOnce() -> String) {
        if let Some(log) = &self.log {
            log.borrow_mut().push(what());
        }
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    /// The fault of one read of up to `len` bytes after a readiness report.
    pub(crate) fn read_fault(&self, len: usize) -> ReadFault {
        if self.inject(Fault::Interrupted) || self.inject(Fault::WouldBlock) {
            return ReadFault::Again;
        }
        if self.inject(Fault::Reset) {
            return ReadFault::Reset;
        }
        if self.inject(Fault::EarlyEof) {
            return ReadFault::Eof;
        }
        if len > 1 && self.inject(Fault::ShortRead) {
            return ReadFault::Short(1 + self.below(len - 1));
        }
        ReadFault::None
    }

    /// The fault of one write of `len` bytes: as [`SimState::read_fault`],
    /// without end of file.
    pub(crate) fn write_fault(&self, len: usize) -> ReadFault {
        if self.inject(Fault::Interrupted) || self.inject(Fault::WouldBlock) {
            return ReadFault::Again;
        }
        if self.inject(Fault::Reset) {
            return ReadFault::Reset;
        }
        if len > 1 && self.inject(Fault::ShortWrite) {
            return ReadFault::Short(1 + self.below(len - 1));
        }
        ReadFault::None
    }

    /// How late the clock's jump to a timer lands (zero: on time).
    pub(crate) fn timer_lateness(&self) -> Duration {
        if !self.inject(Fault::LateTimer) {
            return Duration::ZERO;
        }
        let max = u64::try_from(self.faults.late_timer_max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if max == 0 { 0 } else { 1 + self.rng.below(max) })
    }
}

impl Context {
    /// Creates a simulated context (see the [`sim`](crate::sim) module):
    /// virtual time that jumps to the next timer when nothing else is
    /// ready, the fds ready together served in an order drawn from `seed`,
    /// and the `faults` asked for, drawn from `seed` too.
    ///
    /// # Errors
    ///
    /// [`Error::Poller`] if the poller cannot be created (as
    /// [`Context::new`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::Context;
    /// use tevent::sim::{self, Faults};
    ///
    /// let ev = Context::simulated(7, Faults::NONE)?;
    /// assert_eq!(sim::seed(&ev), Some(7));
    /// let t0 = ev.now();
    /// let _t = ev.add_timer_after(Duration::from_secs(3600), |_, _| {});
    /// ev.loop_wait()?; // an hour, at once
    /// assert_eq!(ev.now() - t0, Duration::from_secs(3600));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn simulated(seed: u64, faults: Faults) -> Result<Context, Error> {
        Context::with_sim(SimState::new(seed, faults, None))
    }

    fn with_sim(sim: SimState) -> Result<Context, Error> {
        let fails_allocations = sim.fails_allocations();
        let ev = Context::with_manual_clock(true)?;
        // Set once, before anything can see the context.
        let _ = ev.inner.sim.set(Box::new(sim));
        // Its waits go through `polling`, where the loop checks for the
        // simulation: the fast wait of other contexts has no check at all.
        ev.inner.fast.turn_off();
        if fails_allocations {
            ev.inner.hooks.set_watch(crate::trace::WATCH_SIM, true);
        }
        Ok(ev)
    }

    /// The simulation state, if this context is simulated.
    #[inline]
    pub(crate) fn sim(&self) -> Option<&SimState> {
        self.inner.sim.get().map(|b| &**b)
    }
}

/// The seed of a simulated context (`None` for any other context).
pub fn seed(ev: &Context) -> Option<u64> {
    ev.sim().map(|s| s.seed)
}

/// How many faults of `kind` the simulated context `ev` injected so far (0
/// for any other context).
///
/// ```
/// use tevent::Context;
/// use tevent::sim::{self, Fault, Faults};
///
/// let ev = Context::simulated(1, Faults::NONE)?;
/// assert_eq!(sim::injected(&ev, Fault::Reset), 0);
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn injected(ev: &Context, kind: Fault) -> u64 {
    ev.sim().map_or(0, |s| s.counts[kind as usize].get())
}

/// Adds `what` to the record [`check_determinism`] keeps of the run (does
/// nothing on a context that keeps none): a value the test computed that
/// must come out the same for the same seed.
pub fn note(ev: &Context, what: impl fmt::Display) {
    if let Some(s) = ev.sim() {
        s.note(|| format!("note {what}"));
    }
}

/// Which seeds to run: `runs` seeds from `first` on.
///
/// ```
/// use tevent::sim::Seeds;
///
/// let s = Seeds::parse(None, None, 3)?; // neither variable: 0, 1, 2
/// assert_eq!(s.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// let s = Seeds::parse(Some("417"), None, 1000)?; // TEVENT_SEED=417: replay it
/// assert_eq!(s.iter().collect::<Vec<_>>(), [417]);
/// let s = Seeds::parse(Some("10"), Some("2"), 1000)?; // and TEVENT_SIM_RUNS=2
/// assert_eq!(s.iter().collect::<Vec<_>>(), [10, 11]);
/// assert!(Seeds::parse(Some("x"), None, 1).is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seeds {
    /// The first seed.
    pub first: u64,
    /// How many seeds, `first` and those after it.
    pub runs: u64,
}

impl Seeds {
    /// The seeds the environment asks for: `TEVENT_SEED` alone is one seed
    /// (a replay), `TEVENT_SIM_RUNS` is how many (from `TEVENT_SEED`, or
    /// 0); with neither, `default_runs` seeds from 0.
    ///
    /// # Panics
    ///
    /// If a variable is set to something other than a whole number (a
    /// test must not run other seeds than the ones asked for).
    pub fn from_env(default_runs: u64) -> Seeds {
        let seed = std::env::var(SEED_VAR).ok();
        let runs = std::env::var(RUNS_VAR).ok();
        Seeds::parse(seed.as_deref(), runs.as_deref(), default_runs)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Seeds::from_env`] with the variables' values given.
    ///
    /// # Errors
    ///
    /// A message naming the variable whose value is not a whole number.
    pub fn parse(
        seed: Option<&str>,
        runs: Option<&str>,
        default_runs: u64,
    ) -> Result<Seeds, String> {
        let num = |name: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}={v}: expected a whole number"))
        };
        let first = seed.map(|v| num(SEED_VAR, v)).transpose()?;
        let runs = runs.map(|v| num(RUNS_VAR, v)).transpose()?;
        Ok(match (first, runs) {
            (Some(first), None) => Seeds { first, runs: 1 },
            (first, runs) => Seeds {
                first: first.unwrap_or(0),
                runs: runs.unwrap_or(default_runs),
            },
        })
    }

    /// The seeds, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + use<> {
        let first = self.first;
        (0..self.runs).map(move |i| first.wrapping_add(i))
    }
}

/// A failed run of [`explore`]: its seed and the panic's message. Its
/// text (`Display`) is what [`run`] panics with: the seed, the message,
/// and the variable that replays it.
///
/// ```
/// use tevent::sim::Failure;
///
/// let f = Failure { seed: 417, message: "lost".to_string() };
/// assert_eq!(
///     f.to_string(),
///     "tevent simulation failed with seed 417: lost\nreplay it with TEVENT_SEED=417"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The seed of the run that failed.
    pub seed: u64,
    /// The panic's message (or a note that it was not a string).
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tevent simulation failed with seed {}: {}\nreplay it with {}={}",
            self.seed, self.message, SEED_VAR, self.seed
        )
    }
}

impl std::error::Error for Failure {}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic whose payload is not a string".to_string()
    }
}

/// Runs `body` once per seed of `seeds`, each time on a fresh context made
/// by [`Context::simulated`] with that seed and `faults` (dropped after the
/// body, inside the run: a panic of a `Drop` counts). Stops at the first
/// run that panics and returns it; otherwise returns how many ran.
///
/// # Errors
///
/// The first [`Failure`]: its seed and message.
///
/// # Panics
///
/// If a simulated context cannot be created (no poller).
///
/// ```
/// use tevent::sim::{self, Faults, Seeds};
///
/// // A body that fails for one seed in four, found and named.
/// let found = sim::explore(Seeds { first: 0, runs: 100 }, Faults::NONE, |ev| {
///     assert!(sim::seed(ev).unwrap() % 4 != 3, "unlucky");
/// });
/// let failure = found.unwrap_err();
/// assert_eq!(failure.seed, 3);
/// assert!(failure.to_string().contains("TEVENT_SEED=3"));
/// ```
pub fn explore(
    seeds: Seeds,
    faults: Faults,
    mut body: impl FnMut(&Context),
) -> Result<u64, Failure> {
    let mut ran = 0;
    for seed in seeds.iter() {
        let ev = Context::simulated(seed, faults).expect("a simulated context");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body(&ev);
            drop(ev);
        }));
        if let Err(p) = r {
            return Err(Failure {
                seed,
                message: panic_message(&*p),
            });
        }
        ran += 1;
    }
    Ok(ran)
}

/// [`explore`], failing the test on a failure: panics with the
/// [`Failure`]'s text, which names the seed and how to replay it.
///
/// # Panics
///
/// On the first run that panics (see above).
pub fn run(seeds: Seeds, faults: Faults, body: impl FnMut(&Context)) {
    if let Err(f) = explore(seeds, faults, body) {
        panic!("{f}");
    }
}

/// Two runs of one seed that did not do the same, from
/// [`check_determinism`]: where their records first differ.
///
/// ```
/// use std::cell::Cell;
/// use tevent::sim::{self, Faults};
///
/// let runs = Cell::new(0);
/// let d = sim::check_determinism(3, Faults::NONE, |ev| {
///     runs.set(runs.get() + 1);
///     sim::note(ev, runs.get()); // not the same twice
/// })
/// .unwrap_err();
/// assert_eq!((d.seed, d.first.as_deref(), d.second.as_deref()), (3, Some("note 1"), Some("note 2")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The seed.
    pub seed: u64,
    /// The index of the first entry of the records that differs.
    pub at: usize,
    /// That entry in the first run (`None`: the record ended before).
    pub first: Option<String>,
    /// That entry in the second run.
    pub second: Option<String>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} is not deterministic: entry {} of the record was {:?} in the first run and {:?} in the second\nreplay it with {}={}",
            self.seed, self.at, self.first, self.second, SEED_VAR, self.seed
        )
    }
}

impl std::error::Error for Divergence {}

/// Runs `body` twice on a simulated context with `seed` and `faults`, and
/// compares what happened: every point the event and request trace hooks
/// report (handlers run, requests created, steps run, requests notified,
/// cancelled and cleaned up, with their states, that is their outcomes),
/// every fault injected and every [`note`], in order, then `body`'s
/// result. Returns the record of the first run.
///
/// The check installs an event and a request trace hook before `body`
/// runs; a body that installs its own should pass the previous hook on
/// (the setters return it), or the record misses what the hooks would
/// have seen. The record ends when the context is dropped, after `body`.
///
/// # Errors
///
/// A [`Divergence`]: the first entry that differs.
///
/// # Panics
///
/// If `body` panics (the panic is passed on, after a line on stderr that
/// names the seed), or a simulated context cannot be created.
///
/// ```
/// use tevent::sim::{self, Faults};
///
/// let record = sim::check_determinism(5, Faults::NONE, |ev| {
///     ev.post(|_| {});
///     ev.loop_wait().unwrap();
/// })
/// .unwrap();
/// assert!(record.iter().any(|e| e.starts_with("event Immediate BeforeHandler")));
/// ```
pub fn check_determinism<R: fmt::Debug>(
    seed: u64,
    faults: Faults,
    mut body: impl FnMut(&Context) -> R,
) -> Result<Vec<String>, Divergence> {
    let first = record_run(seed, faults, &mut body);
    let second = record_run(seed, faults, &mut body);
    let at = first
        .iter()
        .zip(&second)
        .position(|(a, b)| a != b)
        .unwrap_or(first.len().min(second.len()));
    if at == first.len() && at == second.len() {
        return Ok(first);
    }
    Err(Divergence {
        seed,
        at,
        first: first.get(at).cloned(),
        second: second.get(at).cloned(),
    })
}

/// One recorded run of [`check_determinism`].
fn record_run<R: fmt::Debug>(
    seed: u64,
    faults: Faults,
    body: &mut impl FnMut(&Context) -> R,
) -> Vec<String> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let ev = Context::with_sim(SimState::new(seed, faults, Some(log.clone())))
        .expect("a simulated context");
    let l = log.clone();
    ev.set_event_trace_hook(Some(Box::new(move |t| {
        l.borrow_mut().push(format!(
            "event {:?} {:?} {} {}",
            t.kind, t.point, t.id, t.tag
        ))
    })));
    let l = log.clone();
    // A request's id is its address, which differs from run to run: the
    // record numbers requests in the order it first sees them instead.
    let mut ids = std::collections::HashMap::new();
    let mut seen = 0usize;
    ev.set_req_trace_hook(Some(Box::new(move |t| {
        let n = *ids.entry(t.id).or_insert_with(|| {
            seen += 1;
            seen
        });
        if t.point == crate::trace::ReqPoint::Cleanup {
            // The address may be reused by a later request.
            ids.remove(&t.id);
        }
        l.borrow_mut().push(format!(
            "req {:?} {} #{n} depth {} {:?} {:?}",
            t.point, t.name, t.depth, t.step, t.state
        ))
    })));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let out = body(&ev);
        drop(ev);
        out
    }));
    match r {
        Ok(out) => log.borrow_mut().push(format!("result {out:?}")),
        Err(p) => {
            eprintln!(
                "tevent simulation: the body panicked with seed {seed} (replay it with {SEED_VAR}={seed})"
            );
            std::panic::resume_unwind(p);
        }
    }
    log.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_reproducible_and_spreads() {
        let a = SplitMix64(Cell::new(1));
        let b = SplitMix64(Cell::new(1));
        let xs: Vec<u64> = (0..8).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        let c = SplitMix64(Cell::new(2));
        assert_ne!(xs[0], c.next());
        let mut hist = [0u32; 4];
        for _ in 0..4000 {
            hist[a.below(4) as usize] += 1;
        }
        assert!(hist.iter().all(|&h| (800..1200).contains(&h)), "{hist:?}");
    }

    #[test]
    fn a_fault_of_probability_zero_never_happens_and_one_always() {
        let s = SimState::new(3, Faults::NONE, None);
        assert!((0..1000).all(|_| !s.inject(Fault::Reset)));
        let s = SimState::new(3, Faults::uniform(1.0), None);
        assert!((0..1000).all(|_| s.inject(Fault::Reset)));
        assert_eq!(s.counts[Fault::Reset as usize].get(), 1000);
    }

    #[test]
    fn a_late_timer_is_late_by_at_most_the_maximum() {
        let f = Faults {
            late_timer: 1.0,
            late_timer_max: Duration::from_millis(3),
            ..Faults::NONE
        };
        let s = SimState::new(9, f, None);
        for _ in 0..1000 {
            let d = s.timer_lateness();
            assert!(d > Duration::ZERO && d <= Duration::from_millis(3), "{d:?}");
        }
    }
}
