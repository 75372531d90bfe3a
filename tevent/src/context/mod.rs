//! The event context: owns every event, runs the loop, enforces dispatch order.
//!
//! One loop step ([`Context::loop_once`]) runs at most one handler, chosen in
//! tevent's order:
//!
//! 1. **signals**: if any handled signal arrived, the handlers of all pending
//!    signals run, and the step ends;
//! 2. closures sent through a [`Remote`] move to the tail of the immediate FIFO
//!    (nothing runs in this phase);
//! 3. **immediates**: the head of the FIFO runs;
//! 4. **timers**: the earliest timer runs if it is due;
//! 5. **fds**: the next entry of the ready batch runs; if the batch is empty the
//!    loop waits in the poller (until the next timer, or the wait timeout) and
//!    then serves signals, the first closure a [`Remote`] sent meanwhile, a
//!    due timer, or the first fd of the new batch.
//!
//! The poller is only entered when nothing of 1–4 is pending and the batch from
//! the previous wait is used up, so a burst of ready fds costs one wait.
//!
//! **Fairness bound.** The order holds step by step, but after
//! [`FAIR_STEPS`] steps in a row that ran something above the fds, a
//! fairness step serves the fd, timer and immediate classes in rotation,
//! lowest first (refilling the fd batch with a poll that does not block), so
//! no class can starve the ones below it: each class with work gets a step at
//! least once in every `3 * (FAIR_STEPS + 1)` steps. (C tevent has no such
//! bound: an immediate that keeps rescheduling itself starves its fds.)
//!
//! **Panics** in user code propagate out of the public call that ran it,
//! with the context and its other events and requests left usable; see
//! `docs/01-context.md`, "When user code panics". **After `fork()`**, a
//! context used in the child gets a poller of its own first, so the child
//! never disturbs the parent (see `docs/01-context.md`, "After fork()").
//!
//! **The wait** is `polling`'s: epoll on Linux, kqueue on macOS and
//! FreeBSD. On Linux the loop does not call [`polling::Poller::wait`] in its
//! steady state (five system calls: it arms a timerfd and re-arms its
//! notifier) but makes one `epoll_wait` on the poller's epoll fd itself and
//! decodes the events' keys, which is `polling`'s private encoding. So that a
//! `polling` release that encodes otherwise cannot misdeliver events
//! silently, each context checks the encoding once, when it is made, and
//! falls back to `Poller::wait` if it differs; a key nobody registered seen
//! by a fast wait makes the loop read that wait again through `polling`.
//! The design, and why it was chosen over owning the epoll instance, is in
//! the `fast_wait` module (`tevent/src/fast_wait.rs`).
//!
//! Requests add one rule. When a handler finishes a request that someone waits
//! for, the waiter (a parent's step or a callback) runs right after that
//! handler, in the same step, before the next event; finishing waiters may
//! finish their own waiters, and the whole chain runs there, iteratively (up
//! to [`MAX_NOTIFICATIONS_PER_STEP`]; the rest go to the next steps). A step
//! that starts with such notifications pending (a request finished outside
//! the loop, for instance inside its own `send`) delivers them and ends.

mod run;

use std::cell::{Cell, OnceCell, RefCell};
use std::num::NonZeroUsize;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Events, Poller};

use crate::Error;
use crate::clock::Clock;
#[cfg(doc)]
use crate::clock::FAR_FUTURE;
use crate::fd::FdTable;
use crate::immediate::ImmediateQueue;
use crate::panic::{PanicScope, PanicSlot};
use crate::remote::{Remote, RemoteShared};
use crate::signal::SignalTable;
use crate::timer::TimerQueue;
use crate::trace::{EventHook, Hooks, LoopHook};

/// Longest wait when no timer is pending, as in tevent.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timer slack: waits for a timer end on a whole millisecond, so timers
/// due within the same millisecond share one wake-up (tevent rounds its poll
/// timeout up to whole milliseconds too).
pub const DEFAULT_TIMER_SLACK: Duration = Duration::from_millis(1);

/// Poller events taken per wait.
const EVENTS_PER_WAIT: usize = 1024;

/// Steps in a row that may run request notifications, signals, immediates or
/// timers (tevent's priority order) before a fairness step gives the lower
/// classes a turn (see [`Context::loop_once`]).
pub const FAIR_STEPS: u32 = 32;

/// Waiters of finished requests (parent steps, callbacks) one loop step
/// delivers at most; the rest are delivered by the following steps.
pub const MAX_NOTIFICATIONS_PER_STEP: usize = 1024;

/// The state shared by every clone of a [`Context`] (and reachable, weakly,
/// from every event handle).
pub(crate) struct Inner {
    /// The poller (epoll on Linux, kqueue on macOS and FreeBSD); reach it
    /// through `Inner::poller`, which replaces
    /// it first in a forked child (see [`crate::fork`]). Always there, except
    /// under Miri, which cannot create one: there only what never waits for
    /// the OS can run (requests, immediates, timers on a manual clock).
    pub(crate) poller: RefCell<Option<Arc<Poller>>>,
    /// The fork generation the poller was made in.
    pub(crate) fork_gen: Cell<u64>,
    /// Steps in a row that ran a class above the fds (see `FAIR_STEPS`).
    busy: Cell<u32>,
    /// This step's handler was the delivery of request notifications.
    notified: Cell<bool>,
    /// The class the next fairness step tries first (0 fds, 1 timers, 2
    /// immediates).
    fair_next: Cell<u32>,
    pub(crate) clock: Clock,
    pub(crate) base: Instant,
    /// The loop's latest clock reading (timers due by then need no new read).
    pub(crate) loop_now: Cell<Instant>,
    pub(crate) hooks: Hooks,
    /// A panic of user code caught mid-bookkeeping, raised when the public
    /// call that ran the code returns (see [`crate::panic`]).
    pub(crate) panic: PanicSlot,
    pub(crate) imm: RefCell<ImmediateQueue>,
    pub(crate) timers: RefCell<TimerQueue>,
    pub(crate) fds: RefCell<FdTable>,
    pub(crate) sig: RefCell<SignalTable>,
    /// Number of signal handlers (checked on every step without a borrow).
    pub(crate) sig_handlers: Cell<usize>,
    /// Work done elsewhere that will finish a request through the
    /// [`Remote`] (worker-pool jobs, completers): keeps the loop waiting.
    pub(crate) outstanding: Cell<usize>,
    pub(crate) remote: OnceCell<Arc<RemoteShared>>,
    /// Every request of this context.
    pub(crate) reqs: crate::req::ReqTable,
    /// Recycled memory of freed requests.
    pub(crate) node_pool: crate::req::NodePool,
    /// This context, as a pointer that came from `Rc::into_raw` (requests
    /// keep it, uncounted, to reach their context while they are live).
    pub(crate) this: Cell<*const Inner>,
    /// Calls of this context that may run user code, now on the stack (see
    /// [`Entered`]).
    entered: Cell<u32>,
    /// Queues being dropped (see `queue::DroppedQueues`).
    pub(crate) dropped_queues: crate::queue::DroppedQueues,
    /// Event handlers whose drop waits for the one being dropped (see
    /// [`Inner::drop_handler`]).
    dropping_handlers: Cell<bool>,
    handlers_to_drop: RefCell<Vec<Box<dyn std::any::Any>>>,
    /// The poller's own event buffer (precise waits, clearing its notifier,
    /// and every wait where the fast wait is off).
    events: RefCell<Events>,
    /// The Linux fast wait: one `epoll_wait` (see [`crate::fast_wait`]).
    pub(crate) fast: crate::fast_wait::FastWait,
    wait_timeout: Cell<Option<Duration>>,
    timer_slack: Cell<Duration>,
    /// The simulation of a simulated context (see [`crate::sim`]); checked
    /// once per wait through `polling` that found events and once per jump
    /// of a manual clock (a simulated context never takes the fast wait).
    pub(crate) sim: OnceCell<Box<crate::sim::SimState>>,
}

/// A single-threaded event loop: fd, timer, immediate and signal events.
///
/// `Context` is a cheap-to-clone handle (`Rc`) and is neither `Send` nor `Sync`;
/// other threads reach the loop through a [`Remote`]. The loop lives as long as
/// some `Context` clone does: when the last one is dropped every event still
/// registered is removed (owned fds are closed, handlers dropped unrun), and
/// event handles that outlive it become inert ([`Error::ContextGone`]).
///
/// Handlers receive `&Context`; capturing a `Context` clone inside a handler
/// creates a reference cycle that keeps the loop alive, so don't.
///
/// ```
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let also = ev.clone(); // the same loop
/// also.post(|_| println!("hello from the loop"));
/// ev.loop_wait()?; // runs until nothing is left
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Rc<Inner>,
}

/// Resolves a handle's weak reference.
#[inline]
pub(crate) fn upgrade(w: &Weak<Inner>) -> Result<Context, Error> {
    w.upgrade()
        .map(|inner| Context { inner })
        .ok_or(Error::ContextGone)
}

/// Counts of what a context holds, from [`Context::event_counts`].
///
/// ```
/// let ev = tevent::Context::new()?;
/// let _t = ev.add_timer_after(std::time::Duration::from_secs(1), |_, _| {});
/// let counts = ev.event_counts();
/// assert_eq!((counts.timers, counts.armed_timers), (1, 1));
/// assert_eq!(counts.total(), 1);
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventCounts {
    /// Fd watchers (paused or not).
    pub fd_watchers: usize,
    /// Fd watchers with non-empty flags.
    pub active_fd_watchers: usize,
    /// Fds registered in the poller.
    pub registered_fds: usize,
    /// Timers (armed or not).
    pub timers: usize,
    /// Armed timers.
    pub armed_timers: usize,
    /// Entries in the timer heap, including those of cancelled or moved timers
    /// that have not been compacted away yet (bounded by about twice the armed
    /// timers).
    pub timer_heap_entries: usize,
    /// Immediate events, including queued posted closures.
    pub immediates: usize,
    /// Queued immediate events.
    pub scheduled_immediates: usize,
    /// Signal handlers.
    pub signal_handlers: usize,
    /// Requests (in progress, or finished and not yet received).
    pub requests: usize,
}

impl EventCounts {
    /// Every live event and request: fd watchers, timers, immediates, signal
    /// handlers and requests.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// ev.post(|_| {});
    /// let _t = ev.add_timer_after(std::time::Duration::from_secs(1), |_, _| {});
    /// assert_eq!(ev.event_counts().total(), 2);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn total(&self) -> usize {
        self.fd_watchers + self.timers + self.immediates + self.signal_handlers + self.requests
    }
}

/// Ends a loop step however it ends: clears the nesting flag, then raises a
/// panic of user code that the runtime caught during the step (see
/// [`crate::panic`]; if a handler's panic is already unwinding, that one
/// wins).
/// A public call of the context that may run user code (a loop step, or a
/// call such as dropping a request, which runs hooks and `Drop`s), on the
/// stack. While one lasts:
///
/// - loop calls on the context are refused with [`Error::Nested`]: user
///   code the runtime runs (a handler, a request's step or hook, a
///   callback, a `Drop`) never runs the loop under the runtime's feet;
/// - request nodes whose last reference goes are released only when the
///   outermost call ends (see `req::node`), so no frame of the runtime
///   finds a node it still points to freed or recycled;
/// - a panic of user code kept meanwhile is raised when it ends (see
///   [`crate::panic`]).
pub(crate) struct Entered<'a> {
    inner: &'a Inner,
    /// Dropped after `Entered::drop` ran (fields drop after the struct's
    /// own `Drop`): a kept panic is raised last.
    _panics: PanicScope<'a>,
}

impl Entered<'_> {
    /// Ends the call and returns `value`. Use this where a public call
    /// returns something that owns resources: if a kept panic is raised
    /// here, `value` is dropped on the way out (a value returned past a
    /// panicking guard would be leaked instead).
    #[inline]
    pub(crate) fn end<R>(self, value: R) -> R {
        drop(self);
        value
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        self.inner.leave();
    }
}

impl Inner {
    /// See [`Entered`].
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        self.entered.set(self.entered.get() + 1);
        Entered {
            inner: self,
            _panics: self.panic.scope(),
        }
    }

    /// Ends a call that [`Inner::enter`] (or a loop step) began.
    #[inline]
    fn leave(&self) {
        let n = self.entered.get() - 1;
        self.entered.set(n);
        if n == 0 {
            self.node_pool.release_deferred();
        }
    }

    /// Whether a call of the context that may run user code is on the stack.
    #[inline]
    pub(crate) fn entered(&self) -> bool {
        self.entered.get() > 0
    }

    /// Whether exactly one such call is (the loop's own step, when the loop
    /// asks between two handlers).
    #[inline]
    pub(crate) fn entered_once(&self) -> bool {
        self.entered.get() == 1
    }

    /// Drops a removed event's handler (and what it captured: user code).
    /// A handler may own another event's handle, whose handler owns
    /// another...: a handler dropped while one is being dropped waits in a
    /// list that the outermost drop empties, so a chain of a million events
    /// is dropped without a million nested frames. Events are removed in
    /// the middle of the runtime's bookkeeping too (an end time leaves with
    /// its request), so a panic in a `Drop` is kept and raised when the
    /// public call that removed the event returns (see [`crate::panic`]).
    pub(crate) fn drop_handler<H: 'static>(&self, handler: H) {
        if self.dropping_handlers.replace(true) {
            self.handlers_to_drop.borrow_mut().push(Box::new(handler));
            return;
        }
        self.panic.catch(move || drop(handler));
        loop {
            let Some(next) = self.handlers_to_drop.borrow_mut().pop() else {
                break;
            };
            self.panic.catch(move || drop(next));
        }
        self.dropping_handlers.set(false);
    }
}

impl Context {
    /// Creates a context on the monotonic system clock.
    ///
    /// ```
    /// let ev = tevent::Context::new()?; // tevent_context_init
    /// assert!(!ev.has_manual_clock());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn new() -> Result<Context, Error> {
        Self::with_clock(Clock::System)
    }

    /// Creates a context on a manual clock that starts at the current instant
    /// and moves only through [`Context::advance`] or, if `auto_advance` is set,
    /// by jumping to the next timer's deadline whenever the loop would otherwise
    /// sleep for it (fds are still polled, without blocking). Timer and timeout
    /// behaviour can then be tested without sleeping.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(false)?;
    /// let t0 = ev.now();
    /// ev.advance(Duration::from_secs(10)); // only this moves it
    /// assert_eq!(ev.now(), t0 + Duration::from_secs(10));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn with_manual_clock(auto_advance: bool) -> Result<Context, Error> {
        Self::with_clock(Clock::Manual {
            now: Cell::new(Instant::now()),
            auto_advance,
        })
    }

    fn with_clock(clock: Clock) -> Result<Context, Error> {
        #[cfg(not(miri))]
        let poller = Some(Arc::new(Poller::new().map_err(Error::Poller)?));
        #[cfg(miri)]
        let poller = None;
        let fast = crate::fast_wait::FastWait::new(poller.as_deref(), EVENTS_PER_WAIT);
        let fork_gen = crate::fork::watch();
        let now = clock.now();
        let timers = TimerQueue::new(now);
        let base = timers.base();
        let inner = Rc::new(Inner {
            poller: RefCell::new(poller),
            fork_gen: Cell::new(fork_gen),
            busy: Cell::new(0),
            notified: Cell::new(false),
            fair_next: Cell::new(0),
            clock,
            base,
            loop_now: Cell::new(now),
            hooks: Hooks::default(),
            panic: PanicSlot::default(),
            imm: RefCell::default(),
            timers: RefCell::new(timers),
            fds: RefCell::default(),
            sig: RefCell::default(),
            sig_handlers: Cell::new(0),
            outstanding: Cell::new(0),
            remote: OnceCell::new(),
            reqs: Default::default(),
            node_pool: Default::default(),
            this: Cell::new(std::ptr::null()),
            entered: Cell::new(0),
            dropped_queues: Default::default(),
            dropping_handlers: Cell::new(false),
            handlers_to_drop: RefCell::new(Vec::new()),
            events: RefCell::new(Events::with_capacity(
                NonZeroUsize::new(EVENTS_PER_WAIT).expect("non-zero"),
            )),
            fast,
            wait_timeout: Cell::new(Some(DEFAULT_WAIT_TIMEOUT)),
            timer_slack: Cell::new(DEFAULT_TIMER_SLACK),
            sim: OnceCell::new(),
        });
        let raw = Rc::into_raw(inner);
        // SAFETY: `raw` comes from `Rc::into_raw` just above; this takes its
        // strong count back.
        let inner = unsafe { Rc::from_raw(raw) };
        inner.this.set(raw);
        Ok(Context { inner })
    }

    /// Marks a public call that may run user code; see [`Entered`].
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        self.inner.enter()
    }

    #[inline]
    pub(crate) fn weak(&self) -> Weak<Inner> {
        Rc::downgrade(&self.inner)
    }

    /// The current time on this context's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(false)?;
    /// assert!(ev.has_manual_clock());
    /// let t0 = ev.now();
    /// assert!(ev.advance(Duration::from_secs(2)));
    /// assert_eq!(ev.now() - t0, Duration::from_secs(2));
    /// assert!(!tevent::Context::new()?.advance(Duration::from_secs(1))); // the system clock does not move by hand
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[inline]
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// The loop's latest reading of its clock: never later than
    /// [`Context::now`], and inside a timer handler never earlier than that
    /// timer's deadline. The loop reads the clock only when it must decide
    /// whether a timer is due, so this costs nothing, like the `current_time`
    /// tevent passes to timer handlers.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let _t = ev.add_timer_after(Duration::from_secs(1), |ev, me| {
    ///     assert!(ev.loop_time() >= me.deadline()); // free: no clock read
    /// });
    /// ev.loop_wait()?;
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[inline]
    pub fn loop_time(&self) -> Instant {
        self.inner.loop_now.get()
    }

    /// Moves a manual clock forward by `by` (at most [`FAR_FUTURE`]). Returns
    /// false (and does nothing) on the system clock.
    ///
    /// The example of [`now`](Self::now) shows this too.
    pub fn advance(&self, by: Duration) -> bool {
        self.inner.clock.advance(by)
    }

    /// The instant `after` from now on this context's clock, with `after`
    /// clamped to [`FAR_FUTURE`] so that `Duration::MAX` means "never"
    /// instead of overflowing.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(false)?;
    /// assert_eq!(ev.deadline_after(Duration::from_secs(1)), ev.now() + Duration::from_secs(1));
    /// let never = ev.deadline_after(Duration::MAX); // no overflow: "never"
    /// assert_eq!(never, ev.now() + tevent::FAR_FUTURE);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[inline]
    pub fn deadline_after(&self, after: Duration) -> Instant {
        crate::clock::add(self.now(), after)
    }

    /// Whether this context runs on a manual clock.
    ///
    /// The example of [`now`](Self::now) shows this too.
    pub fn has_manual_clock(&self) -> bool {
        self.inner.clock.is_manual()
    }

    /// Sets the longest time one step waits when no timer is pending; returns
    /// the previous value. `None` (or anything from [`FAR_FUTURE`] on, such as
    /// `Duration::MAX`) waits forever; `Some(Duration::ZERO)` is poll mode: a
    /// step that finds nothing ready returns `Ok(false)` at once (tevent's
    /// `tevent_context_set_wait_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::new()?;
    /// let old = ev.set_wait_timeout(Some(Duration::ZERO)); // poll mode
    /// assert_eq!(old, Some(tevent::DEFAULT_WAIT_TIMEOUT));
    /// assert!(!ev.loop_once()?); // returned at once
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_wait_timeout(&self, timeout: Option<Duration>) -> Option<Duration> {
        self.inner.wait_timeout.replace(timeout)
    }

    /// The current wait timeout (see [`Context::set_wait_timeout`]).
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// assert_eq!(ev.wait_timeout(), Some(tevent::DEFAULT_WAIT_TIMEOUT)); // 30 s, as tevent
    /// ev.set_wait_timeout(None); // wait forever
    /// assert_eq!(ev.wait_timeout(), None);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn wait_timeout(&self) -> Option<Duration> {
        self.inner.wait_timeout.get()
    }

    /// Sets the timer slack; returns the previous value. A wait for a timer
    /// ends on the next multiple of the slack (measured on the clock) at or
    /// after the deadline, so nearby timers share one wake-up. A timer never
    /// fires early; with a non-zero slack it may fire up to the slack plus
    /// 1 ms late (on Linux the wait itself is in whole milliseconds: one
    /// `epoll_wait`, no timer fd to arm), so up to 2 ms with the default 1 ms.
    /// `Duration::ZERO` wakes exactly at each deadline (on Linux each such
    /// wait arms a timerfd: four more system calls; kqueue, on macOS and
    /// FreeBSD, takes a timeout in nanoseconds in every wait). C tevent
    /// rounds its waits up to whole milliseconds too.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::new()?;
    /// let old = ev.set_timer_slack(Duration::ZERO); // wake exactly at each deadline
    /// assert_eq!(old, tevent::DEFAULT_TIMER_SLACK);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_timer_slack(&self, slack: Duration) -> Duration {
        self.inner.timer_slack.replace(slack)
    }

    /// A thread-safe handle that schedules closures onto this loop.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let remote = ev.remote();
    /// std::thread::spawn(move || remote.send(|_ev| println!("on the loop")).unwrap())
    ///     .join()
    ///     .unwrap();
    /// ev.loop_once()?;
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn remote(&self) -> Remote {
        let shared = self.inner.remote.get_or_init(|| {
            Arc::new(RemoteShared::new(
                self.inner.poller().map(|p| Arc::clone(&p)),
            ))
        });
        Remote::new(shared.clone())
    }

    /// Installs (or with `None` removes) the loop trace hook; returns the
    /// previous one, so a component can chain onto it.
    ///
    /// ```
    /// use tevent::trace::LoopPoint;
    /// let ev = tevent::Context::new()?;
    /// let waits = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let w = waits.clone();
    /// let previous = ev.set_loop_trace_hook(Some(Box::new(move |p| {
    ///     if p == LoopPoint::BeforeWait {
    ///         w.set(w.get() + 1);
    ///     }
    /// })));
    /// assert!(previous.is_none());
    /// ev.set_wait_timeout(Some(std::time::Duration::ZERO));
    /// ev.loop_once()?; // nothing to run: it waited (without blocking)
    /// assert_eq!(waits.get(), 1);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_loop_trace_hook(&self, hook: Option<LoopHook>) -> Option<LoopHook> {
        let hooks = &self.inner.hooks;
        hooks.loop_epoch.set(hooks.loop_epoch.get() + 1);
        hooks.has_loop.set(hook.is_some());
        hooks.loop_hook.replace(hook)
    }

    /// Installs (or with `None` removes) the event trace hook; returns the
    /// previous one.
    ///
    /// ```
    /// use tevent::trace::EventPoint;
    /// let ev = tevent::Context::new()?;
    /// let ran = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let r = ran.clone();
    /// ev.set_event_trace_hook(Some(Box::new(move |t| {
    ///     if t.point == EventPoint::BeforeHandler {
    ///         r.set(r.get() + 1);
    ///     }
    /// })));
    /// ev.post(|_| {});
    /// ev.loop_once()?;
    /// assert_eq!(ran.get(), 1);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_event_trace_hook(&self, hook: Option<EventHook>) -> Option<EventHook> {
        let hooks = &self.inner.hooks;
        hooks.event_epoch.set(hooks.event_epoch.get() + 1);
        hooks.has_event.set(hook.is_some());
        hooks.event_hook.replace(hook)
    }

    /// Installs (or with `None` removes) the request trace hook; returns
    /// the previous one. The hook sees every point of the life of each
    /// request of this context ([`ReqPoint`](crate::trace::ReqPoint)),
    /// with its depth in the request tree, its type's name and its step:
    /// C tevent's `tevent_thread_call_depth_set_callback` (per context
    /// here, not per thread), with the differences listed at
    /// [`ReqPoint`](crate::trace::ReqPoint).
    ///
    /// Nothing is reported while no hook is installed, and a request
    /// created before the hook was installed has no `Create` (its later
    /// points are reported). The loop checks for the hook once per delivery
    /// of finished requests to their waiters, so a hook installed by one of
    /// those waiters sees the `Notify` and `Step` of the next delivery on.
    /// Without a hook, each request pays a test of one flag when it is
    /// created, when a step of it runs outside a delivery, when a delivery
    /// starts and when it is received. The hook is user code (see the
    /// [`trace`](crate::trace) module): reports it causes itself are not
    /// given to it.
    ///
    /// ```
    /// use tevent::trace::{ReqPoint, ReqTrace};
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// struct Nap;
    /// impl Request for Nap {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn woke(_: &mut Nap, _: &mut Ctl<'_, Nap>, _: Req<Wakeup>) -> StepResult<Nap> {
    ///     Ok(Progress::Done(()))
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// let l = log.clone();
    /// ev.set_req_trace_hook(Some(Box::new(move |t: &ReqTrace| {
    ///     l.borrow_mut().push(format!("{:?} {} depth {} {:?}", t.point, t.name, t.depth, t.step))
    /// })));
    /// let nap = Req::start(&ev, Nap, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), woke)?;
    ///     Ok(Progress::Pending)
    /// });
    /// nap.poll(&ev)?;
    /// drop(nap);
    /// assert_eq!(
    ///     *log.borrow(),
    ///     [
    ///         "Create Nap depth 0 None",
    ///         "Create Wakeup depth 1 None",
    ///         "Notify Wakeup depth 1 Some(\"woke\")",
    ///         "Step Nap depth 0 Some(\"woke\")",
    ///         "Cleanup Wakeup depth 0 None", // received in `woke`, dropped there
    ///         "Cleanup Nap depth 0 None",
    ///     ]
    /// );
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_req_trace_hook(
        &self,
        hook: Option<crate::trace::ReqHook>,
    ) -> Option<crate::trace::ReqHook> {
        let hooks = &self.inner.hooks;
        hooks.req_epoch.set(hooks.req_epoch.get() + 1);
        hooks.has_req.set(hook.is_some());
        hooks.set_watch(crate::trace::WATCH_HOOK, hook.is_some());
        if hook.is_none() {
            hooks.req_depth.set(None);
        }
        hooks.req_hook.replace(hook)
    }

    /// Installs (or with `None` removes) the queue trace hook; returns the
    /// previous one. It sees every entry of this context's queues added,
    /// about to be triggered and removed, with the entry's tag
    /// ([`QueueTrace`](crate::trace::QueueTrace)): C tevent's
    /// `tevent_set_trace_queue_callback`.
    ///
    /// ```
    /// use tevent::trace::EventPoint;
    /// use tevent::{Context, Queue, queue_wait_send};
    ///
    /// let ev = Context::new()?;
    /// let lens = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// let l = lens.clone();
    /// ev.set_queue_trace_hook(Some(Box::new(move |t| l.borrow_mut().push((t.point, t.len)))));
    /// let q = Queue::new(&ev, "q");
    /// let a = queue_wait_send(&ev, &q);
    /// let b = queue_wait_send(&ev, &q);
    /// drop(b); // leaves the queue
    /// drop(a);
    /// use EventPoint::*;
    /// assert_eq!(*lens.borrow(), [(Attach, 1), (Attach, 2), (Detach, 1), (Detach, 0)]);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_queue_trace_hook(
        &self,
        hook: Option<crate::trace::QueueHook>,
    ) -> Option<crate::trace::QueueHook> {
        let hooks = &self.inner.hooks;
        hooks.queue_epoch.set(hooks.queue_epoch.get() + 1);
        hooks.has_queue.set(hook.is_some());
        hooks.queue_hook.replace(hook)
    }

    /// What this context holds right now.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let imm = ev.add_immediate(|_, _| {});
    /// imm.schedule()?;
    /// let c = ev.event_counts();
    /// assert_eq!((c.immediates, c.scheduled_immediates), (1, 1));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn event_counts(&self) -> EventCounts {
        let inner = &*self.inner;
        let imm = inner.imm.borrow();
        let timers = inner.timers.borrow();
        let fds = inner.fds.borrow();
        EventCounts {
            fd_watchers: fds.watchers(),
            active_fd_watchers: fds.active(),
            registered_fds: fds.registered_fds(),
            timers: timers.entries(),
            armed_timers: timers.armed(),
            timer_heap_entries: timers.heap_len(),
            immediates: imm.entries(),
            scheduled_immediates: imm.scheduled(),
            signal_handlers: inner.sig.borrow().handlers(),
            requests: inner.reqs.len(),
        }
    }

    /// Whether `loop_wait` would keep going: an armed timer, a queued
    /// immediate, a signal handler, an fd watcher with non-empty flags, a
    /// closure sent through a [`Remote`] and not yet run, a finished request
    /// whose waiter has not run yet, or a request that another thread will
    /// finish (a [`crate::pool`] job or a [`crate::pool::Completer`]).
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// assert!(!ev.has_events());
    /// ev.post(|_| {});
    /// assert!(ev.has_events());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn has_events(&self) -> bool {
        let inner = &*self.inner;
        inner.reqs.has_notifications()
            || inner.timers.borrow().armed() > 0
            || inner.imm.borrow().scheduled() > 0
            || inner.sig_handlers.get() > 0
            || inner.fds.borrow().active() > 0
            || inner.remote.get().is_some_and(|r| r.is_pending())
            || inner.outstanding.get() > 0
    }

    /// Whether user code run by this context is running right now: a
    /// handler, or a request's step, hook, callback or `Drop` run by any
    /// call of the context (a loop-driving call would fail with
    /// [`Error::Nested`]).
    ///
    /// ```
    /// use tevent::{Progress, Req, Request};
    ///
    /// struct Probe;
    /// impl Request for Probe {
    ///     type Output = bool;
    ///     type Error = std::convert::Infallible;
    /// }
    ///
    /// let ev = tevent::Context::new()?;
    /// assert!(!ev.in_handler());
    /// ev.post(|ev| assert!(ev.in_handler()));
    /// ev.loop_once()?;
    /// // A first step runs inside `Req::start`, outside the loop, but it is
    /// // user code run by the context all the same.
    /// let req = Req::start(&ev, Probe, |_, ctl| Ok(Progress::Done(ctl.ev().in_handler())));
    /// assert_eq!(req.poll_recv(&ev)?, Ok(true));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn in_handler(&self) -> bool {
        self.inner.entered()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nothing here can reach `Inner` again: every handle holds a `Weak`,
        // which no longer upgrades, so dropping handlers (and the handles they
        // captured) is inert.
        // In a forked child, the inherited poller is the parent's too: it is
        // let go of untouched, and nothing is deregistered from it.
        self.forget_inherited_poller();
        let remote = self.remote.get().map(|r| r.close());
        // Requests first: their states hold event handles (inert now).
        self.reqs.teardown(self);
        // Every event still attached ends here: the trace hook hears of it.
        if self.hooks.has_event.get() {
            Context::timers_detach_all(self);
            Context::immediates_detach_all(self);
            Context::fds_detach_all(self);
            Context::signals_detach_all(self);
        }
        let imm = self.imm.get_mut().take_all();
        let timers = self.timers.get_mut().take_all();
        let poller = self.poller.get_mut().take();
        let (fd_handlers, kept_fds) = self.fds.get_mut().take_all(poller.as_deref());
        let sig = self.sig.get_mut().take_all();
        drop((remote, imm, timers, fd_handlers, sig, poller));
        // Fds close last, after they left the poller.
        drop(kept_fds);
        // A panic of user code caught during the teardown leaves now.
        crate::panic::raise_kept(&self.panic);
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("events", &self.event_counts())
            .field("manual_clock", &self.has_manual_clock())
            .finish()
    }
}
