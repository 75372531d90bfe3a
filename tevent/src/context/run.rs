//! The loop: [`Context::loop_once`], [`Context::loop_wait`] and
//! [`Context::loop_until`]: one dispatch step (timers, immediates, signals,
//! fds, request notifications, in the order the module documentation
//! gives) and the wait in the poller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::clock::{Clock, FAR_FUTURE};
use crate::signal::SIGNAL_KEY;
use crate::timer::TimerStep;
use crate::trace::LoopPoint;

use super::{Context, FAIR_STEPS, Inner};

/// What one step did.
enum Step {
    Ran,
    Nothing,
    /// `loop_wait` asked to stop when nothing can happen any more.
    NoEvents,
}

/// A loop step, on the stack: a call of the context that runs user code
/// (see [`Entered`]), whose end raises any panic kept meanwhile (loop steps
/// never nest, so every kept panic is raised there).
struct LoopGuard<'a>(&'a Inner);

impl<'a> LoopGuard<'a> {
    #[inline]
    fn enter(inner: &'a Inner) -> Self {
        inner.entered.set(inner.entered.get() + 1);
        LoopGuard(inner)
    }
}

impl Drop for LoopGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.leave();
        crate::panic::raise_kept(&self.0.panic);
    }
}

impl Context {
    /// Runs one dispatch step (see the module documentation for the order),
    /// waiting if nothing is due. Returns whether a handler ran: `Ok(false)`
    /// means the wait ended (timeout, a wake-up) with nothing to run.
    ///
    /// Calling it from inside a handler of the same context, or from any
    /// other user code the context runs (see [`Context::in_handler`]),
    /// returns [`Error::Nested`] (C tevent aborts). A panic in a handler (or in any
    /// user code the step runs) propagates out of this call, with the
    /// context left usable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::Context;
    ///
    /// let ev = Context::new()?;
    /// ev.post(|_| {});
    /// assert!(ev.loop_once()?); // ran the posted closure
    /// ev.set_wait_timeout(Some(Duration::ZERO));
    /// assert!(!ev.loop_once()?); // nothing to run, did not block
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn loop_once(&self) -> Result<bool, Error> {
        self.guarded_step(false).map(|s| matches!(s, Step::Ran))
    }

    /// Runs steps while the context has events (see [`Context::has_events`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let _t = ev.add_timer_after(Duration::from_secs(1), |ev, _| ev.post(|_| {}));
    /// ev.loop_wait()?; // the timer, then the closure it posted, then nothing is left
    /// assert!(!ev.has_events());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn loop_wait(&self) -> Result<(), Error> {
        loop {
            match self.guarded_step(true)? {
                Step::Ran => {}
                Step::NoEvents => return Ok(()),
                Step::Nothing => {
                    if self.stalled() {
                        return Err(Error::ClockStalled);
                    }
                }
            }
        }
    }

    /// Runs steps until `done()` returns true (checked before every step).
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let n = std::rc::Rc::new(std::cell::Cell::new(0));
    /// for _ in 0..5 {
    ///     let n = n.clone();
    ///     ev.post(move |_| n.set(n.get() + 1));
    /// }
    /// ev.loop_until(|| n.get() == 2)?;
    /// assert_eq!(n.get(), 2); // three are still queued
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn loop_until(&self, mut done: impl FnMut() -> bool) -> Result<(), Error> {
        while !done() {
            if !self.loop_once()? && self.stalled() {
                return Err(Error::ClockStalled);
            }
        }
        Ok(())
    }

    /// A manual clock without auto-advance, and nothing but timers that are
    /// not due: no step can ever run anything.
    fn stalled(&self) -> bool {
        let inner = &*self.inner;
        matches!(
            inner.clock,
            Clock::Manual {
                auto_advance: false,
                ..
            }
        ) && inner.timers.borrow().armed() > 0
            && inner.imm.borrow().scheduled() == 0
            && inner.sig_handlers.get() == 0
            && inner.fds.borrow().active() == 0
            && !inner.remote.get().is_some_and(|r| r.is_pending())
            && inner.outstanding.get() == 0
    }

    fn guarded_step(&self, stop_if_idle: bool) -> Result<Step, Error> {
        let inner = &*self.inner;
        // From inside a handler, or from any other user code the runtime
        // runs (a request's first step or hook run outside the loop, a
        // `Drop`, ...): the loop would run under the runtime's feet.
        if inner.entered() {
            return Err(Error::Nested);
        }
        let _guard = LoopGuard::enter(inner);
        inner.trace_loop(LoopPoint::BeforeLoopOnce);
        let r = self.step(stop_if_idle);
        inner.trace_loop(LoopPoint::AfterLoopOnce);
        r
    }

    /// One step for `Req::poll`: false when nothing is left that could run.
    pub(crate) fn step_for_poll(&self) -> Result<bool, Error> {
        match self.guarded_step(true)? {
            Step::Ran => Ok(true),
            Step::NoEvents => Ok(false),
            Step::Nothing if self.stalled() => Err(Error::ClockStalled),
            Step::Nothing => Ok(true),
        }
    }

    fn step(&self, stop_if_idle: bool) -> Result<Step, Error> {
        self.inner.notified.set(false);
        let ran = self.dispatch(stop_if_idle)?;
        // Waiters of requests finished by that handler run now, before the
        // next event: notification is never re-entrant, and never late. (A
        // step that delivered notifications as its handler has used its
        // budget of them.)
        if !self.inner.notified.get() && self.inner.reqs.has_notifications() {
            self.run_completions();
        }
        Ok(ran)
    }

    fn dispatch(&self, stop_if_idle: bool) -> Result<Step, Error> {
        let inner = &*self.inner;
        if inner.busy.get() >= FAIR_STEPS {
            inner.busy.set(0);
            if self.fair_turn()? {
                return Ok(Step::Ran);
            }
        }
        if inner.reqs.has_notifications() && self.run_completions() {
            inner.notified.set(true);
            return Ok(self.ran_busy());
        }
        if self.signals_pending() && self.run_signals() {
            return Ok(self.ran_busy());
        }
        if let Some(r) = inner.remote.get()
            && r.is_pending()
        {
            for f in r.take() {
                self.post_boxed(f);
            }
        }
        if self.run_one_immediate() {
            return Ok(self.ran_busy());
        }
        let mut next_timer = None;
        if inner.timers.borrow().armed() > 0 {
            match self.run_due_timer() {
                TimerStep::Ran => return Ok(self.ran_busy()),
                TimerStep::Next(at) => next_timer = Some(at),
                TimerStep::Idle => {}
            }
        }
        // Nothing above the fds was pending: they are not being passed over.
        inner.busy.set(0);
        if self.run_one_fd() {
            return Ok(Step::Ran);
        }
        if stop_if_idle && !self.has_events() {
            return Ok(Step::NoEvents);
        }
        self.wait(next_timer, false)?;
        if self.signals_pending() && self.run_signals() {
            return Ok(Step::Ran);
        }
        // A `Remote` that woke the wait: its closures run in this step (the
        // first now, ahead of the timers, as an immediate would).
        if let Some(r) = inner.remote.get()
            && r.is_pending()
        {
            for f in r.take() {
                self.post_boxed(f);
            }
            if self.run_one_immediate() {
                return Ok(Step::Ran);
            }
        }
        if inner.timers.borrow().armed() > 0 && matches!(self.run_due_timer(), TimerStep::Ran) {
            return Ok(Step::Ran);
        }
        Ok(if self.run_one_fd() {
            Step::Ran
        } else {
            Step::Nothing
        })
    }

    /// Counts a step in which a class above the fds ran.
    #[inline]
    fn ran_busy(&self) -> Step {
        let busy = &self.inner.busy;
        busy.set(busy.get() + 1);
        Step::Ran
    }

    /// The fairness step: after [`FAIR_STEPS`] steps in a row that ran
    /// request notifications, signals, immediates or timers, the fd, timer
    /// and immediate classes get a turn in rotation, lowest first: the first
    /// of them (starting after the one served by the previous fairness step)
    /// that has something ready runs. Returns whether one ran.
    #[cold]
    fn fair_turn(&self) -> Result<bool, Error> {
        let inner = &*self.inner;
        for i in 0..3 {
            let class = (inner.fair_next.get() + i) % 3;
            let ran = match class {
                0 => self.fair_fd()?,
                1 => {
                    inner.timers.borrow().armed() > 0
                        && matches!(self.run_due_timer(), TimerStep::Ran)
                }
                _ => self.run_one_immediate(),
            };
            if ran {
                inner.fair_next.set((class + 1) % 3);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The fd class's fairness turn: the next entry of the ready batch, or,
    /// if the batch is used up, a poll that does not block to refill it.
    fn fair_fd(&self) -> Result<bool, Error> {
        if self.run_one_fd() {
            return Ok(true);
        }
        if self.inner.fds.borrow().active() == 0 {
            return Ok(false);
        }
        self.wait(None, true)?;
        Ok(self.run_one_fd())
    }

    /// Blocks in the poller until an fd is ready, the next timer (plus slack)
    /// is due, a signal or remote wake-up arrives, or the wait timeout ends.
    /// With `poll_only`, does not block at all.
    fn wait(&self, next_timer: Option<Instant>, poll_only: bool) -> Result<(), Error> {
        let inner = &*self.inner;
        // A clone, not a borrow: the trace hooks below are user code.
        let Some(poller) = inner.poller().map(|p| Arc::clone(&p)) else {
            // Under Miri: nothing can be polled; a manual clock moves on.
            return match (&inner.clock, next_timer) {
                (_, _) if poll_only => Ok(()),
                (
                    Clock::Manual {
                        auto_advance: true, ..
                    },
                    Some(at),
                ) => {
                    inner.clock.advance_to(at);
                    Ok(())
                }
                // A wait that would not block (wait timeout zero) finds
                // nothing.
                _ if inner.wait_timeout.get() == Some(Duration::ZERO) => Ok(()),
                _ => Err(Error::Poller(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "no poller (running under Miri, or it could not be re-created after fork)",
                ))),
            };
        };
        let released = inner.fds.borrow_mut().sync(&poller)?;
        drop(released);

        // A wait of FAR_FUTURE or more is a wait without end (the poller's
        // own arithmetic would overflow on `Duration::MAX`).
        let mut timeout = inner.wait_timeout.get().filter(|t| *t < FAR_FUTURE);
        let mut advance_to = None;
        if let Some(at) = next_timer {
            let until = match &inner.clock {
                Clock::System => {
                    let wake = self.round_up(at);
                    wake.saturating_duration_since(Instant::now())
                }
                Clock::Manual { auto_advance, .. } => {
                    if *auto_advance {
                        advance_to = Some(at);
                    }
                    Duration::ZERO
                }
            };
            timeout = Some(timeout.map_or(until, |t| t.min(until)));
        }
        if poll_only || inner.remote.get().is_some_and(|r| r.is_pending()) {
            timeout = Some(Duration::ZERO);
        }

        // On Linux, a wait reads epoll directly (one system call; see
        // `crate::fast_wait`), unless its end needs sub-millisecond
        // precision (timer slack 0) or this context's check of `polling`'s
        // encoding failed: then, as on every other platform, it goes
        // through the poller's own wait (on Linux, a timerfd times it out).
        let precise = inner.timer_slack.get().is_zero()
            && timeout.is_some_and(|t| t.subsec_nanos() % 1_000_000 != 0);
        let fast = !precise && inner.fast.on();

        inner.trace_loop(LoopPoint::BeforeWait);
        let res = if fast {
            inner.fast.wait(&poller, timeout)
        } else {
            let mut events = inner.events.borrow_mut();
            events.clear();
            poller.wait(&mut events, timeout)
        };
        inner.trace_loop(LoopPoint::AfterWait);
        let n = res.map_err(Error::Poller)?;
        if n == 0 {
            if let Some(at) = advance_to {
                match inner.sim.get() {
                    None => inner.clock.advance_to(at),
                    Some(sim) => self.sim_jump(sim, at),
                }
            }
            return Ok(());
        }
        if fast {
            let seen = {
                let mut fds = inner.fds.borrow_mut();
                inner.fast.deliver(&mut fds, || self.drain_signal_wake())
            };
            if !seen.notified && !seen.unexpected {
                return Ok(());
            }
            // The poller's notifier (a `Remote` woke the loop) is one-shot and
            // only the poller's own wait clears and re-arms it; a wait that
            // does not block does that. Registrations are level-triggered, so
            // its fd events are those of the fast wait again: after an
            // unexpected key they replace the fast wait's (dropped), and are
            // delivered below; otherwise they are left alone.
            let mut events = inner.events.borrow_mut();
            events.clear();
            poller
                .wait(&mut events, Some(Duration::ZERO))
                .map_err(Error::Poller)?;
            if !seen.unexpected {
                events.clear();
                return Ok(());
            }
        }
        let mut fds = inner.fds.borrow_mut();
        let events = inner.events.borrow();
        for ev in events.iter() {
            if ev.key == SIGNAL_KEY {
                self.drain_signal_wake();
                continue;
            }
            fds.push_ready(&ev);
        }
        // A simulated context never takes the fast wait (see
        // `Context::simulated`): this is its one check per wait.
        if let Some(sim) = inner.sim.get() {
            fds.sim_reorder(sim);
        }
        Ok(())
    }

    /// Under simulation, the clock's jump to the timer due at `at`: late by
    /// the seed's choice (see [`crate::sim::Faults::late_timer`]).
    #[cold]
    #[inline(never)]
    fn sim_jump(&self, sim: &crate::sim::SimState, at: Instant) {
        let clock = &self.inner.clock;
        let late = sim.timer_lateness();
        let to = crate::clock::add(at, late);
        sim.note(|| format!("clock +{:?} (late {late:?})", to - clock.now()));
        clock.advance_to(to);
    }

    /// Empties this context's signal wake-up pipe: the counters, not the
    /// bytes, say what arrived, and a byte left behind would make every
    /// level-triggered wait return.
    fn drain_signal_wake(&self) {
        if let Some((_, rd)) = self.signal_wake() {
            crate::signal::sys::drain(rd);
        }
    }

    fn signal_wake(&self) -> Option<(usize, std::os::fd::RawFd)> {
        self.inner.sig.borrow().wake()
    }

    /// The wake-up time for a timer due at `at`: the next slack boundary.
    fn round_up(&self, at: Instant) -> Instant {
        let slack = self.inner.timer_slack.get().as_nanos();
        if slack == 0 {
            return at;
        }
        let off = at.saturating_duration_since(self.inner.base).as_nanos();
        // In 64 bits while the figures fit (585 years of nanoseconds): the
        // 128-bit division is a call into the runtime at every wait.
        let extra = match (u64::try_from(off), u64::try_from(slack)) {
            (Ok(off), Ok(slack)) => match off.div_ceil(slack).checked_mul(slack) {
                Some(rounded) => rounded - off,
                None => u64::try_from(off.div_ceil(slack) as u128 * slack as u128 - off as u128)
                    .unwrap_or(u64::MAX),
            },
            _ => {
                let rounded = off.div_ceil(slack) * slack;
                u64::try_from(rounded - off).unwrap_or(u64::MAX)
            }
        };
        crate::clock::add(at, Duration::from_nanos(extra))
    }
}
