//! The handles of a signal handler: [`Signal`], owned, and [`SignalRef`],
//! borrowed by the handler while it runs.

use std::rc::Weak;

use crate::context::{Context, Inner, upgrade};
use crate::slab::Key;

/// A signal handler, owned: dropping it removes the handler.
///
/// ```
/// use tevent::signal::SIGTERM;
/// let ev = tevent::Context::new()?;
/// let term = ev.add_signal(SIGTERM, |_, _, _| println!("shutting down"))?;
/// assert_eq!(term.signum(), Some(SIGTERM));
/// term.set_tag(1);
/// drop(term); // SIGTERM's previous disposition is back
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping a Signal removes the handler"]
pub struct Signal {
    pub(super) ctx: Weak<Inner>,
    pub(super) key: Key,
}

/// A borrowed view of a signal handler, given to the handler.
///
/// ```
/// use tevent::signal::{SIGUSR1, raise};
/// let ev = tevent::Context::new()?;
/// let _h = ev.add_signal(SIGUSR1, |_, me: &tevent::SignalRef<'_>, _| assert_eq!(me.signum(), SIGUSR1))?;
/// raise(SIGUSR1)?;
/// ev.loop_once()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SignalRef<'a> {
    pub(super) ctx: &'a Context,
    pub(super) key: Key,
}

impl SignalRef<'_> {
    /// The signal number.
    ///
    /// ```
    /// use tevent::signal::{SIGUSR2, raise};
    /// let ev = tevent::Context::new()?;
    /// let h = ev.add_signal(SIGUSR2, |_, me, _| {
    ///     assert_eq!(me.signum(), SIGUSR2);
    ///     me.set_tag(me.tag() + 1); // seen by the event trace hook
    /// })?;
    /// raise(SIGUSR2)?;
    /// ev.loop_once()?;
    /// assert_eq!(h.tag(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signum(&self) -> i32 {
        self.ctx.signal_info(self.key).map_or(0, |(s, _)| s)
    }

    /// The handler's tag.
    ///
    /// The example of [`signum`](Self::signum) shows this too.
    pub fn tag(&self) -> u64 {
        self.ctx.signal_info(self.key).map_or(0, |(_, t)| t)
    }

    /// Sets the tag reported to the event trace hook.
    ///
    /// The example of [`signum`](Self::signum) shows this too.
    pub fn set_tag(&self, tag: u64) {
        self.ctx.signal_set_tag(self.key, tag)
    }
}

impl Signal {
    /// The signal number, or `None` once a one-shot handler has fired.
    ///
    /// ```
    /// use tevent::signal::{SIGUSR1, raise};
    /// let ev = tevent::Context::new()?;
    /// let once = ev.add_signal_oneshot(SIGUSR1, |_, _, _| {})?;
    /// once.set_tag(5);
    /// assert_eq!((once.signum(), once.tag(), once.is_active()), (Some(SIGUSR1), 5, true));
    /// raise(SIGUSR1)?;
    /// ev.loop_once()?;
    /// assert_eq!((once.signum(), once.is_active()), (None, false)); // it fired
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signum(&self) -> Option<i32> {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.signal_info(self.key))
            .map(|(s, _)| s)
    }

    /// Whether the handler is still registered.
    ///
    /// The example of [`signum`](Self::signum) shows this too.
    pub fn is_active(&self) -> bool {
        self.signum().is_some()
    }

    /// The handler's tag.
    ///
    /// The example of [`signum`](Self::signum) shows this too.
    pub fn tag(&self) -> u64 {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.signal_info(self.key))
            .map_or(0, |(_, t)| t)
    }

    /// Sets the tag reported to the event trace hook.
    ///
    /// The example of [`signum`](Self::signum) shows this too.
    pub fn set_tag(&self, tag: u64) {
        if let Ok(c) = upgrade(&self.ctx) {
            c.signal_set_tag(self.key, tag)
        }
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Ok(c) = upgrade(&self.ctx) {
            let _scope = c.enter();
            c.signal_remove(self.key);
        }
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("signum", &self.signum())
            .finish()
    }
}
