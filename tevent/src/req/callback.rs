//! [`CallbackHandle`], the caller's hold on a request handed to
//! [`Req::set_callback`], and the top-level callback it stands for.

use std::marker::PhantomData;
use std::rc::Rc;

use crate::context::Context;

use super::handle::{Req, ReqState, cancel_node};
use super::request::Request;
use super::waiter::Resume;
use super::{Flag, NodePtr, ReqRef, table};

/// The caller's hold on a request handed to [`Req::set_callback`]: it can
/// still cancel or drop the request until the callback runs.
///
/// Dropping the handle detaches: the request goes on and its callback runs.
/// Once the callback ran (it received the request) or the context was
/// dropped, the handle's methods do nothing and return false.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqState, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let handle = wakeup_send(&ev, ev.now() + Duration::from_secs(5))
///     .set_callback(|_, _| unreachable!("aborted before it finished"));
/// assert!(handle.is_pending());
/// assert_eq!(handle.state(), ReqState::InProgress);
/// assert!(handle.abort());
/// assert!(!ev.has_events()); // its timer went with it
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct CallbackHandle<T: Request> {
    pub(super) target: Target,
    pub(super) _t: PhantomData<fn() -> T>,
}

pub(super) enum Target {
    /// A counted reference (not the owner's) to the request, and the epoch
    /// of this registration (a callback that ran hands the request to a new
    /// handle, which may register another).
    Node(ReqRef, u64),
    /// A request that could not be allocated: its callback is posted; the
    /// flag, once set, stops it.
    NoMemory(Rc<std::cell::Cell<bool>>),
    /// Nothing left to control.
    Gone,
}

impl<T: Request> CallbackHandle<T> {
    pub(super) fn gone() -> Self {
        CallbackHandle {
            target: Target::Gone,
            _t: PhantomData,
        }
    }

    /// The request, while the runtime still holds it for the callback (the
    /// callback has not run and the context is alive).
    fn held(&self) -> Option<(Context, &ReqRef)> {
        let Target::Node(node, epoch) = &self.target else {
            return None;
        };
        let h = node.hdr();
        if h.owner.get() != table::Owner::Context || h.has(Flag::DOOMED) || h.epoch.get() != *epoch
        {
            return None;
        }
        h.context().map(|ev| (ev, node))
    }

    /// Whether the callback has not run yet (and still will, unless the
    /// request is aborted or the context dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqState, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let h = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(|_, _| {});
    /// assert!(h.is_pending());
    /// assert_eq!(h.state(), ReqState::InProgress);
    /// assert!(!h.cancel()); // a wake-up has no cancel hook
    /// ev.loop_wait()?;
    /// assert!(!h.is_pending()); // the callback ran
    /// assert!(!h.abort());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn is_pending(&self) -> bool {
        match &self.target {
            Target::NoMemory(done) => !done.get(),
            _ => self.held().is_some(),
        }
    }

    /// Where the request is in its life: [`ReqState::Dropped`] once it was
    /// aborted, handed to its callback, or dropped with its context.
    ///
    /// The example of [`is_pending`](Self::is_pending) shows this too.
    pub fn state(&self) -> ReqState {
        match &self.target {
            Target::NoMemory(done) if !done.get() => ReqState::NoMemory,
            _ => self
                .held()
                .map_or(ReqState::Dropped, |(_, n)| n.hdr().state.get()),
        }
    }

    /// Asks the request to cancel itself through its cancel hook, as
    /// [`Req::cancel`] does (tevent's `tevent_req_cancel`); the callback
    /// then runs with the request's outcome. False if cancellation did not
    /// start (no hook, already finished, or the callback already ran).
    ///
    /// The example of [`is_pending`](Self::is_pending) shows this too.
    pub fn cancel(&self) -> bool {
        let Some((ev, node)) = self.held() else {
            return false;
        };
        if node.hdr().state.get() != ReqState::InProgress {
            return false;
        }
        cancel_node::<T>(&ev, node)
    }

    /// Drops the request (its subtree, events and cleanup hooks, as dropping
    /// a [`Req`] does) and the callback unrun: C's `TALLOC_FREE(req)` after
    /// `tevent_req_set_callback`. Returns whether there was something to
    /// drop (false once the callback ran or the context is gone). Works
    /// whether the request is still running or finished and waiting for its
    /// callback's turn.
    ///
    /// The example of [`is_pending`](Self::is_pending) shows this too.
    pub fn abort(self) -> bool {
        match &self.target {
            Target::NoMemory(done) => !done.replace(true),
            _ => {
                let Some((ev, node)) = self.held() else {
                    return false;
                };
                let _scope = ev.enter();
                // The runtime holds the owner's reference (owner `Context`),
                // which the drop takes over.
                ev.req_drop(node.ptr());
                true
            }
        }
    }
}

impl<T: Request> std::fmt::Debug for CallbackHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("type", &T::name())
            .field("state", &self.state())
            .field("pending", &self.is_pending())
            .finish()
    }
}

/// A top-level callback.
pub(super) struct Callback<T, F> {
    pub(super) f: F,
    pub(super) _t: PhantomData<fn(T)>,
}

impl<T: Request, F: FnOnce(&Context, Req<T>) + 'static> Resume for Callback<T, F> {
    fn resume(self, ev: &Context, _parent: Option<NodePtr>, child: ReqRef) {
        let req = Req::<T>::adopt(child);
        (self.f)(ev, req)
    }
}
