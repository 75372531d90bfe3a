//! The loop's time source: the monotonic system clock, or a manual clock for tests.
//!
//! Timers are kept on [`Instant`]s, never on wall-clock time, so a clock step
//! (NTP, suspend) does not make them fire early or late. A manual clock only
//! moves when the test moves it ([`crate::Context::advance`]) or, with
//! auto-advance, when the loop would otherwise sleep until the next timer.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How far ahead the runtime reaches: a timeout, end time or clock advance
/// longer than this (100 years) is clamped to it. `Duration::MAX` is how
/// callers often write "never"; clamped, it is a deadline no loop reaches,
/// where unclamped it would overflow [`Instant`] arithmetic.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, with `d` clamped to [`FAR_FUTURE`] (and, on a platform whose
/// `Instant` cannot reach that far, to the farthest instant it can).
pub(crate) fn add(t: Instant, d: Duration) -> Instant {
    let mut d = d.min(FAR_FUTURE);
    loop {
        if let Some(at) = t.checked_add(d) {
            return at;
        }
        d /= 2;
    }
}

/// Which clock a [`crate::Context`] reads.
#[derive(Debug)]
pub(crate) enum Clock {
    /// `Instant::now()`.
    System,
    /// A clock that moves only when told to.
    Manual {
        /// The current reading.
        now: Cell<Instant>,
        /// Jump to the next timer's deadline instead of sleeping.
        auto_advance: bool,
    },
}

impl Clock {
    /// The current time on this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual { now, .. } => now.get(),
        }
    }

    /// Whether this is a manual clock.
    pub(crate) fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual { .. })
    }

    /// Moves a manual clock forward; returns false on the system clock.
    pub(crate) fn advance(&self, by: Duration) -> bool {
        match self {
            Clock::System => false,
            Clock::Manual { now, .. } => {
                now.set(add(now.get(), by));
                true
            }
        }
    }

    /// Sets a manual clock to `to` if that is later than its reading.
    pub(crate) fn advance_to(&self, to: Instant) {
        if let Clock::Manual { now, .. } = self
            && to > now.get()
        {
            now.set(to);
        }
    }
}
