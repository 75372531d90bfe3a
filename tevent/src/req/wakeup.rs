//! `wakeup_send` / `wakeup_recv`: a request that finishes at a given time.
//!
//! As in tevent, its only action is its end time: it "finishes" timed out, and
//! `wakeup_recv` reports whether that is how it ended. A time in the past
//! finishes it at the next loop step, never inside `wakeup_send`.

use std::convert::Infallible;
use std::time::Instant;

use crate::context::Context;
use crate::req::{Progress, Req, ReqError, Request};

/// The state of a [`wakeup_send`] request (it has none of its own).
///
/// ```
/// use std::time::Duration;
/// let ev = tevent::Context::with_manual_clock(true)?;
/// let w: tevent::Req<tevent::Wakeup> = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(1));
/// w.poll(&ev)?;
/// assert!(tevent::wakeup_recv(w));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug)]
pub struct Wakeup;

impl Request for Wakeup {
    type Output = Infallible;
    type Error = Infallible;
}

/// A request that finishes (as timed out) at `at`.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, wakeup_recv, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let t0 = ev.now();
/// let nap = wakeup_send(&ev, t0 + Duration::from_secs(30));
/// nap.poll(&ev)?;
/// assert_eq!(ev.now(), t0 + Duration::from_secs(30));
/// assert!(wakeup_recv(nap)); // woke at its time
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn wakeup_send(ev: &Context, at: Instant) -> Req<Wakeup> {
    Req::start(ev, Wakeup, |_, ctl| {
        ctl.set_endtime(at)?;
        Ok(Progress::Pending)
    })
}

/// True if the wake-up time was reached (the request timed out, as intended);
/// false if it failed otherwise (for example, no memory for its timer).
pub fn wakeup_recv(req: Req<Wakeup>) -> bool {
    matches!(req.recv(), Err(ReqError::TimedOut))
}
