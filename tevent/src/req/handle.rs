//! [`Req`], the owned handle of a request, and [`ReqState`], where a
//! request is in its life; also what `Req` and [`CallbackHandle`] share
//! (cancelling a node, arming its end time).

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::Instant;

use crate::Error;
use crate::context::{Context, Inner};
use crate::slab::Key;
use crate::timer::TimerHandler;

#[cfg(doc)]
use super::RequestTree;
use super::callback::{Callback, CallbackHandle, Target};
use super::ctl::Ctl;
use super::request::{Progress, Request, StepResult};
use super::{Failure, Flag, Profile, ReqError, ReqRef, hooks, inspect, step, table};

/// Where a request is in its life.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqState, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
/// assert_eq!(nap.state(), ReqState::InProgress);
/// nap.poll(&ev)?;
/// assert_eq!(nap.state(), ReqState::TimedOut); // how a wake-up finishes
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReqState {
    /// Not finished yet.
    InProgress,
    /// Finished with an output.
    Done,
    /// Finished with an error of its own ([`ReqError::User`]) or a runtime error
    /// other than the ones below.
    Error,
    /// Its end time passed.
    TimedOut,
    /// An allocation failed.
    NoMemory,
    /// Cancelled.
    Cancelled,
    /// Dropped before it finished (only ever seen by cleanup hooks).
    Dropped,
}

pub(super) enum Slot {
    /// A request, with its owner's reference.
    Live(ReqRef),
    /// The request could not even be allocated: it is finished, `NoMemory`
    /// (the context is kept to deliver a callback).
    NoMemory(Weak<Inner>),
}

/// An owned request of type `T`. Dropping it cancels the request and its
/// whole subtree (no callback runs).
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, Req, Wakeup, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap: Req<Wakeup> = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
/// assert!(nap.is_in_progress());
/// drop(nap); // cancelled: its timer is gone, nothing is called back
/// assert!(!ev.has_events());
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping a Req cancels the request"]
pub struct Req<T: Request> {
    /// Dropped by hand, in `Drop` or `into_slot`.
    pub(super) slot: ManuallyDrop<Slot>,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T: Request> Req<T> {
    /// Creates a request with `state` and runs its first step, `first`.
    ///
    /// `first` registers what the request waits for and returns
    /// `Ok(Progress::Pending)`, or finishes it at once. Either way the caller
    /// is notified from the loop, never from inside `start`.
    ///
    /// If the request cannot be allocated, the returned handle is a finished
    /// request in state [`ReqState::NoMemory`] (and `first` does not run).
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// /// Counts to `n`, one loop step at a time.
    /// struct Count { n: u32, at: u32 }
    /// impl Request for Count {
    ///     type Output = u32;
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn tick(st: &mut Count, ctl: &mut Ctl<'_, Count>, _: Req<Wakeup>) -> StepResult<Count> {
    ///     st.at += 1;
    ///     if st.at == st.n {
    ///         return Ok(Progress::Done(st.at));
    ///     }
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), tick)?;
    ///     Ok(Progress::Pending)
    /// }
    /// fn count_send(ev: &Context, n: u32) -> Req<Count> {
    ///     Req::start(ev, Count { n, at: 0 }, |_, ctl| {
    ///         ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), tick)?;
    ///         Ok(Progress::Pending)
    ///     })
    /// }
    ///
    /// let ev = Context::new()?;
    /// assert_eq!(count_send(&ev, 3).poll_recv(&ev)?, Ok(3));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[track_caller]
    pub fn start(
        ev: &Context,
        state: T,
        first: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Req<T> {
        // A panic of `first` (kept while the request is finished) leaves
        // after the handle exists, so it is dropped on the way out.
        let scope = ev.enter();
        let slot = match ev.req_create(state, Location::caller(), first) {
            Some(node) => Slot::Live(node),
            None => Slot::NoMemory(ev.weak()),
        };
        scope.end(Req {
            slot: ManuallyDrop::new(slot),
            _t: PhantomData,
        })
    }

    /// A handle for a request the runtime held until now (the completion
    /// queue hands it over with its owner's reference).
    pub(crate) fn adopt(node: ReqRef) -> Req<T> {
        Req {
            slot: ManuallyDrop::new(Slot::Live(node)),
            _t: PhantomData,
        }
    }

    /// Takes the slot out, consuming the handle without running its `Drop`.
    #[inline]
    pub(super) fn into_slot(self) -> Slot {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is neither used nor dropped after this, so the slot is
        // moved out exactly once.
        unsafe { ManuallyDrop::take(&mut me.slot) }
    }

    /// The request and its context, if both are still there.
    fn live(&self) -> Option<(Context, &ReqRef)> {
        match &*self.slot {
            Slot::Live(node) => node.hdr().context().map(|ev| (ev, node)),
            _ => None,
        }
    }

    /// Where the request is in its life.
    ///
    /// ```
    /// use tevent::{Context, ReqState, wakeup_send};
    /// let ev = Context::with_manual_clock(true)?;
    /// let w = wakeup_send(&ev, ev.now());
    /// assert_eq!(w.state(), ReqState::InProgress);
    /// w.poll(&ev)?;
    /// assert_eq!(w.state(), ReqState::TimedOut);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn state(&self) -> ReqState {
        match &*self.slot {
            Slot::NoMemory(_) => ReqState::NoMemory,
            // Removed: by its context's teardown.
            Slot::Live(node) if !node.hdr().has(Flag::REMOVED) => node.hdr().state.get(),
            _ => ReqState::Dropped,
        }
    }

    /// Whether the request has not finished yet.
    ///
    /// ```
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now());
    /// assert!(w.is_in_progress()); // finishes at the next loop step, never inside send
    /// w.poll(&ev)?;
    /// assert!(!w.is_in_progress());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn is_in_progress(&self) -> bool {
        self.state() == ReqState::InProgress
    }

    /// Takes the result, consuming the handle (tevent's `foo_recv`).
    ///
    /// A request received before it finished is dropped (cancelled) and the
    /// result is `Err(ReqError::InProgress)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqError, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// nap.poll(&ev)?;
    /// assert_eq!(nap.recv(), Err(ReqError::TimedOut));
    /// let early = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// assert_eq!(early.recv(), Err(ReqError::InProgress)); // and it is dropped
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[inline]
    pub fn recv(self) -> Result<T::Output, ReqError<T::Error>> {
        let node = match self.into_slot() {
            Slot::Live(node) => node,
            Slot::NoMemory(_) => return Err(ReqError::NoMemory),
        };
        table::req_recv::<T>(node)
    }

    /// [`Req::recv`], converting the error into the caller's error type: the
    /// `User` payload goes through `From`, timeouts, no-memory and the other
    /// runtime outcomes stay as they are. In a step, `sub.recv_into()?`
    /// propagates a subrequest's failure whatever its error type.
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct MyError;
    /// impl From<std::convert::Infallible> for MyError {
    ///     fn from(never: std::convert::Infallible) -> Self { match never {} }
    /// }
    /// struct Op;
    /// impl Request for Op {
    ///     type Output = ();
    ///     type Error = MyError;
    /// }
    /// fn woke(_: &mut Op, _: &mut Ctl<'_, Op>, sub: Req<Wakeup>) -> StepResult<Op> {
    ///     sub.recv_into()?; // a wake-up "fails" TimedOut: propagated as is
    ///     Ok(Progress::Done(()))
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let op = Req::start(&ev, Op, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), woke)?;
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(op.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn recv_into<E2: From<T::Error>>(self) -> Result<T::Output, ReqError<E2>> {
        self.recv().map_err(ReqError::convert)
    }

    /// Runs the loop until the request is finished (tevent's `tevent_req_poll`).
    ///
    /// # Errors
    ///
    /// [`Error::Nested`] if the request is unfinished and this is called
    /// from inside a handler or any other user code the same context runs
    /// (a step, a hook, a callback, a `Drop`): the loop cannot run there (C
    /// tevent aborts; a finished request needs no loop, and polling it is
    /// fine anywhere); [`Error::WrongContext`] if `ev` is not the context the
    /// request was started on (that loop could never finish it);
    /// [`Error::RequestStalled`] if the request is unfinished and the
    /// context has no event left that could finish it (C tevent would wait
    /// forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Error, Progress, Req, Request, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// nap.poll(&ev)?; // runs the loop until it finished
    /// assert!(!nap.is_in_progress());
    ///
    /// struct Never;
    /// impl Request for Never {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let stuck = Req::start(&ev, Never, |_, _| Ok(Progress::Pending));
    /// assert!(matches!(stuck.poll(&ev), Err(Error::RequestStalled))); // C would hang
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn poll(&self, ev: &Context) -> Result<(), Error> {
        let ours = match &*self.slot {
            Slot::Live(node) => node.hdr().belongs_to(&ev.inner),
            Slot::NoMemory(ctx) => std::ptr::eq(ctx.as_ptr(), Rc::as_ptr(&ev.inner)),
        };
        if !ours {
            return Err(Error::WrongContext);
        }
        while self.is_in_progress() {
            if !ev.step_for_poll()? {
                return Err(Error::RequestStalled);
            }
        }
        Ok(())
    }

    /// Runs the loop until the request is finished, then takes its result:
    /// [`Req::poll`] and [`Req::recv`] in one call (tevent's `tevent_req_poll`
    /// followed by `foo_recv`).
    ///
    /// The two kinds of failure stay apart, as in C, where `tevent_req_poll`
    /// returning false is checked before `foo_recv` runs: the **outer**
    /// `Result` is the loop's ([`Error::Nested`], [`Error::WrongContext`],
    /// [`Error::RequestStalled`], a poller failure), the **inner** one is the
    /// request's own result. In a function that returns [`Error`] (as `main`
    /// or a test often does), `req.poll_recv(&ev)?` leaves the request's
    /// result. If the loop fails, the request is dropped (cancelled) with the
    /// handle, as if it had been received unfinished.
    ///
    /// ```
    /// use tevent::{Context, ReqError, wakeup_send};
    /// use std::time::Duration;
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// // A wake-up "finishes" timed out: that is the request's result.
    /// assert_eq!(nap.poll_recv(&ev)?, Err(ReqError::TimedOut));
    ///
    /// let other = Context::new()?;
    /// let nap = wakeup_send(&ev, ev.now());
    /// // Polled on the wrong context: the loop's error, the request is dropped.
    /// assert!(matches!(nap.poll_recv(&other), Err(tevent::Error::WrongContext)));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn poll_recv(self, ev: &Context) -> Result<Result<T::Output, ReqError<T::Error>>, Error> {
        self.poll(ev)?;
        Ok(self.recv())
    }

    /// Hands the request to the context and runs `callback` with it, from the
    /// loop, once it finished (at once if it already has): tevent's
    /// `tevent_req_set_callback`. Dropping the context first drops the
    /// request and the callback unrun.
    ///
    /// The returned [`CallbackHandle`] keeps the caller in charge of the
    /// request until the callback runs, as the C caller who keeps the
    /// `struct tevent_req *` is: [`CallbackHandle::abort`] drops the request
    /// and the callback unrun (C's `TALLOC_FREE(req)`),
    /// [`CallbackHandle::cancel`] asks for cooperative cancellation
    /// (`tevent_req_cancel`). Dropping the handle does *neither*: the
    /// request goes on and the callback runs (like dropping a tokio
    /// `JoinHandle`, it detaches), so `req.set_callback(..);` without keeping
    /// the handle is the fire-and-forget form.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use tevent::{Context, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let fired = Rc::new(Cell::new(0));
    /// let f = fired.clone();
    /// wakeup_send(&ev, ev.now() + Duration::from_secs(1))
    ///     .set_callback(move |_ev, req| { assert!(tevent::wakeup_recv(req)); f.set(f.get() + 1) });
    /// let f = fired.clone();
    /// let handle = wakeup_send(&ev, ev.now() + Duration::from_secs(2))
    ///     .set_callback(move |_, _| f.set(f.get() + 100));
    /// assert!(handle.abort()); // cancelled: the request and its callback are gone
    /// ev.loop_wait()?;
    /// assert_eq!(fired.get(), 1);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_callback(
        self,
        callback: impl FnOnce(&Context, Req<T>) + 'static,
    ) -> CallbackHandle<T> {
        match self.into_slot() {
            Slot::Live(node) => {
                let Some(ev) = node.hdr().context() else {
                    return CallbackHandle::gone();
                };
                let _scope = ev.enter();
                let registered = ev.req_wait(
                    None,
                    &node,
                    Callback::<T, _> {
                        f: callback,
                        _t: PhantomData,
                    },
                );
                match registered {
                    Ok(_) => {
                        // The runtime holds the owner's reference now; the
                        // handle keeps a counted one to find the request,
                        // and the registration's epoch to know it is its own.
                        let epoch = node.hdr().epoch.get();
                        let watch = node.clone();
                        let _ = node.into_raw();
                        CallbackHandle {
                            target: Target::Node(watch, epoch),
                            _t: PhantomData,
                        }
                    }
                    // Out of memory even for the waiter's bookkeeping: the
                    // request could never be delivered, so it is dropped
                    // (cleanup hooks run) together with the callback.
                    Err(_) => {
                        ev.req_drop_owned(node);
                        CallbackHandle::gone()
                    }
                }
            }
            Slot::NoMemory(ctx) => {
                let Some(inner) = ctx.upgrade() else {
                    return CallbackHandle::gone();
                };
                let aborted = Rc::new(std::cell::Cell::new(false));
                let flag = aborted.clone();
                Context { inner }.post(move |ev| {
                    if flag.replace(true) {
                        return;
                    }
                    callback(
                        ev,
                        Req {
                            slot: ManuallyDrop::new(Slot::NoMemory(ev.weak())),
                            _t: PhantomData,
                        },
                    )
                });
                CallbackHandle {
                    target: Target::NoMemory(aborted),
                    _t: PhantomData,
                }
            }
        }
    }

    /// Asks the request to cancel itself: runs its cancel hook (see
    /// [`Ctl::set_cancel`]). Returns whether cancellation started; the request
    /// still finishes through the normal path, and only its result says
    /// whether it really was cancelled. Without a hook, or once finished, this
    /// returns false (tevent's `tevent_req_cancel`).
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};
    ///
    /// struct Op;
    /// impl Request for Op {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn on_cancel(_: &mut Op, _: &mut Ctl<'_, Op>) -> Option<StepResult<Op>> {
    ///     Some(Err(ReqError::Cancelled))
    /// }
    /// let ev = Context::new()?;
    /// let op = Req::start(&ev, Op, |_, ctl| {
    ///     ctl.set_cancel(on_cancel);
    ///     Ok(Progress::Pending)
    /// });
    /// assert!(op.cancel()); // cancellation started (here it finished at once)
    /// assert_eq!(op.poll_recv(&ev)?, Err(ReqError::Cancelled));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        let Some((ev, node)) = self.live() else {
            return false;
        };
        cancel_node::<T>(&ev, node)
    }

    /// Sets (or moves) the request's end time: if it has not finished by
    /// `at`, it finishes [`ReqError::TimedOut`] and its subtree is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqError, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let t0 = ev.now();
    /// let slow = wakeup_send(&ev, t0 + Duration::from_secs(60));
    /// slow.set_endtime(t0 + Duration::from_secs(2))?;
    /// assert_eq!(slow.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// assert_eq!(ev.now(), t0 + Duration::from_secs(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        match (&*self.slot, self.live()) {
            (_, Some((ev, node))) => {
                let _scope = ev.enter();
                ev.req_set_endtime(node, at).map_err(Failure::to_req)
            }
            (Slot::NoMemory(_), _) => Err(ReqError::NoMemory),
            _ => Err(ReqError::ContextGone),
        }
    }

    /// Removes the end time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(10));
    /// w.reset_endtime(); // a wake-up *is* an end time: now nothing can finish it
    /// assert!(matches!(w.poll(&ev), Err(tevent::Error::RequestStalled)));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn reset_endtime(&self) {
        if let Some((ev, node)) = self.live() {
            let _scope = ev.enter();
            ev.req_reset_endtime(node);
        }
    }

    /// Starts recording a [`Profile`] of this request, of the subrequests it
    /// already waits for (their start is now) and of every subrequest it waits
    /// for from now on. Returns false if it could not be allocated.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// assert!(w.enable_profile());
    /// w.poll(&ev)?;
    /// let p = w.take_profile().expect("profiled");
    /// assert_eq!(p.len(), 1); // just this request: it has no subrequests
    /// println!("{}", p.render());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn enable_profile(&self) -> bool {
        self.live()
            .is_some_and(|(ev, node)| ev.profile_start(node.ptr()))
    }

    /// Takes the profile out (after the request finished, it holds the
    /// subrequests' profiles too). The profile outlives the request.
    ///
    /// The example of [`enable_profile`](Self::enable_profile) shows this too.
    pub fn take_profile(&self) -> Option<Profile> {
        self.live()
            .and_then(|(_, node)| crate::req::profile::take(node.hdr()))
    }

    /// Where the request was created (the caller of `Req::start`).
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let w = tevent::wakeup_send(&ev, ev.now());
    /// assert!(w.location().unwrap().file().ends_with(".rs")); // where wakeup_send was called
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.live().map(|(_, node)| node.hdr().created)
    }

    /// The request's node, unless it could not be allocated.
    pub(crate) fn node(&self) -> Option<&ReqRef> {
        match &*self.slot {
            Slot::Live(node) => Some(node),
            _ => None,
        }
    }
}

impl<T: Request> Drop for Req<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and the slot is not used afterwards.
        let slot = unsafe { ManuallyDrop::take(&mut self.slot) };
        if let Slot::Live(node) = slot {
            // Once the context is gone, its teardown has dropped the request:
            // only the memory is left, freed with this last reference.
            if let Some(ev) = node.hdr().context() {
                let _scope = ev.enter();
                ev.req_drop_owned(node);
            }
        }
    }
}

impl<T: Request> std::fmt::Debug for Req<T> {
    /// `Req { type: "Echo@read", step: Read { .. }, state: InProgress,
    /// created: "file:line:col", waits: "[read] ReadPooled<TcpStream>: fd 5
    /// READ" }`: the type's name, followed by the step(s) the request waits
    /// in (see [`Req::waiting_in`]); for a `#[tevent_request]` request
    /// waiting in a step, that step with the values its transition carries
    /// (shown with their `Debug` where they have one); and, while it waits
    /// for something, the chain of its waits down to the last subrequest (as
    /// a line of a [`RequestTree`]; several subrequests in `[a | b]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What the request waits for is read first, and the context let go
        // of: the names (user code, which may drop the context's last
        // handle) are asked for once nothing of the runtime is held.
        let tree = self.live().map(|(ev, node)| ev.subtree(node.ptr()));
        let waits = tree.as_ref().and_then(inspect::waits_text);
        let mut d = f.debug_struct("Req");
        d.field(
            "type",
            &step::Waiting(T::name(), &self.waiting_in()).to_string(),
        );
        if let Some((ev, node)) = self.live()
            && node.hdr().first_child.get().is_some()
        {
            d.field("step", &step::WaitsOf(&ev, node));
        }
        d.field("state", &self.state());
        if let Some(loc) = self.location() {
            d.field(
                "created",
                &format_args!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
            );
        }
        if let Some(w) = waits {
            d.field("waits", &w);
        }
        d.finish()
    }
}

impl Context {
    /// Arms (or moves) a request's end-time timer.
    pub(super) fn req_set_endtime(&self, node: &ReqRef, at: Instant) -> Result<(), Failure> {
        let h = node.hdr();
        if h.state.get() != ReqState::InProgress || h.has(Flag::REMOVED) {
            return Ok(());
        }
        let existing = h.endtime.get();
        if existing != Key::NONE {
            // The end-time timer lives as long as its request's entry.
            return self
                .timer_try_restart(existing, at)
                .map(|_| ())
                .map_err(|_| Failure::NoMemory);
        }
        let timer = self
            .timer_try_insert(at, TimerHandler::ReqEndtime(node.ptr()))
            .map_err(|_| Failure::NoMemory)?;
        h.endtime.set(timer);
        Ok(())
    }

    pub(super) fn req_reset_endtime(&self, node: &ReqRef) {
        let timer = node.hdr().endtime.replace(Key::NONE);
        if timer != Key::NONE {
            self.timer_remove(timer);
        }
    }
}

/// Runs `node`'s cancel hook (`tevent_req_cancel`) as a step of its own:
/// whether cancellation started (a request without a hook, or whose hook
/// declines, goes on). For [`Req::cancel`] and [`CallbackHandle::cancel`].
pub(super) fn cancel_node<T: Request>(ev: &Context, node: &ReqRef) -> bool {
    let _scope = ev.enter();
    if hooks::reporting(&ev.inner) {
        ev.report_cancel(node.hdr());
    }
    let mut started = false;
    ev.run_step_in::<T>(node, Some(|| "cancel"), |st, ctl| match ctl.hooks.cancel {
        Some(step::CancelHook::Step(hook)) => match hook(st, ctl) {
            Some(r) => {
                started = true;
                r
            }
            None => Ok(Progress::Pending),
        },
        Some(step::CancelHook::Sealed(hook)) => match hook(st) {
            step::Cancel::Declined => Ok(Progress::Pending),
            step::Cancel::Cancelled => {
                started = true;
                Err(ReqError::Cancelled)
            }
        },
        None => Ok(Progress::Pending),
    });
    started
}
