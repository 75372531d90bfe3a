//! Requests: asynchronous computations with a typed state, tevent's
//! `foo_send` / `foo_recv` pairs.
//!
//! A request is a value of a type implementing [`Request`] (its *state*; the
//! type is the request's identity) plus the runtime's bookkeeping. It is
//! started with [`Req::start`], which runs its first step at once; every later
//! step runs because something it waits for happened: a subrequest finished
//! ([`Ctl::wait`]), an fd became ready ([`Ctl::watch_fd`]), its end time passed
//! ([`Ctl::set_endtime`]). A step returns a [`StepResult`]: `Ok(Progress::Pending)`
//! to keep waiting, `Ok(Progress::Done(output))` or `Err(error)` to finish. A
//! request therefore finishes exactly once, by construction: there is no
//! `done()` to call twice.
//!
//! The caller gets a [`Req<T>`] and later calls [`Req::recv`], which consumes
//! it. A parent owns its subrequests; dropping any request drops its subtree,
//! removes their events, runs each cleanup hook once, and calls nothing back.
//!
//! ## When waiters run
//!
//! Notification is never synchronous. When a request finishes, the waiter
//! (the parent's step, or a callback) runs from the loop: after the handler in
//! which it finished returns, before the loop dispatches the next event. A
//! request that finishes inside its own `send` is therefore delivered exactly
//! like any other, so tevent's `tevent_req_post` is unnecessary. A chain of
//! finishing parents is walked iteratively, so nesting depth costs no stack.

mod error;
pub(crate) mod profile;
mod table;
mod wakeup;

use std::marker::PhantomData;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

pub(crate) use error::Failure;
pub use error::ReqError;
pub use profile::Profile;
pub use table::{CancelFn, CleanupFn};
pub(crate) use table::{Extra, ReqTable};
pub use wakeup::{Wakeup, wakeup_recv, wakeup_send};

use crate::Error;
use crate::context::{Context, Inner, upgrade};
use crate::fd::{FdEvent, FdFlags};
use crate::slab::Key;
use crate::timer::TimerHandler;
use table::{Hooks, Resume};

/// A request type: the state of one asynchronous computation.
///
/// ```
/// use tevent::{Context, Progress, Req, Request};
///
/// /// Adds two numbers, "asynchronously".
/// struct Add { a: u32, b: u32 }
///
/// impl Request for Add {
///     type Output = u32;
///     type Error = std::convert::Infallible;
/// }
///
/// fn add_send(ev: &Context, a: u32, b: u32) -> Req<Add> {
///     Req::start(ev, Add { a, b }, |st, _ctl| Ok(Progress::Done(st.a + st.b)))
/// }
///
/// let ev = Context::new()?;
/// let req = add_send(&ev, 2, 3);
/// req.poll(&ev)?;
/// assert_eq!(req.recv(), Ok(5));
/// # Ok::<(), tevent::Error>(())
/// ```
pub trait Request: Sized + 'static {
    /// What the request produces.
    type Output: 'static;
    /// The request's own error type (carried in [`ReqError::User`]).
    type Error: 'static;

    /// A short name for `Debug` output and profiles (default: the type name
    /// without its module path).
    fn name() -> &'static str {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full)
    }
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<O> {
    /// Keep waiting: something registered in this step will run the next step.
    Pending,
    /// The request is done, with this output.
    Done(O),
}

/// The result of a step of request `T`.
pub type StepResult<T> = Result<Progress<<T as Request>::Output>, ReqError<<T as Request>::Error>>;

/// Where a request is in its life.
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

enum Slot {
    /// A request in the context's table.
    Live(Key),
    /// The request could not even be allocated: it is finished, `NoMemory`.
    NoMemory,
    /// Ownership went elsewhere (a parent, a callback); dropping does nothing.
    Moved,
}

/// An owned request of type `T`. Dropping it cancels the request and its
/// whole subtree (no callback runs).
#[must_use = "dropping a Req cancels the request"]
pub struct Req<T: Request> {
    ctx: Weak<Inner>,
    slot: Slot,
    _t: PhantomData<fn() -> T>,
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
    #[track_caller]
    pub fn start(
        ev: &Context,
        state: T,
        first: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Req<T> {
        let slot = match ev.req_create(state, Location::caller(), first) {
            Some(key) => Slot::Live(key),
            None => Slot::NoMemory,
        };
        Req {
            ctx: ev.weak(),
            slot,
            _t: PhantomData,
        }
    }

    /// A handle for a request the runtime held until now (the completion
    /// queue already handed it over).
    pub(crate) fn adopt(ev: &Context, key: Key) -> Req<T> {
        Req {
            ctx: ev.weak(),
            slot: Slot::Live(key),
            _t: PhantomData,
        }
    }

    /// Gives up ownership: the runtime now holds the request.
    fn into_key(mut self) -> Slot {
        std::mem::replace(&mut self.slot, Slot::Moved)
    }

    fn live(&self) -> Option<(Context, Key)> {
        match self.slot {
            Slot::Live(k) => upgrade(&self.ctx).ok().map(|c| (c, k)),
            _ => None,
        }
    }

    /// Where the request is in its life.
    pub fn state(&self) -> ReqState {
        match self.slot {
            Slot::NoMemory => ReqState::NoMemory,
            _ => self
                .live()
                .and_then(|(c, k)| c.req_state(k))
                .unwrap_or(ReqState::Dropped),
        }
    }

    /// Whether the request has not finished yet.
    pub fn is_in_progress(&self) -> bool {
        self.state() == ReqState::InProgress
    }

    /// Takes the result, consuming the handle (tevent's `foo_recv`).
    ///
    /// A request received before it finished is dropped (cancelled) and the
    /// result is `Err(ReqError::InProgress)`.
    pub fn recv(self) -> Result<T::Output, ReqError<T::Error>> {
        let ctx = self.ctx.clone();
        let key = match self.into_key() {
            Slot::Live(k) => k,
            Slot::NoMemory => return Err(ReqError::NoMemory),
            Slot::Moved => unreachable!("a handle in use is never moved"),
        };
        let Some(ctx) = ctx.upgrade().map(|inner| Context { inner }) else {
            return Err(ReqError::ContextGone);
        };
        ctx.req_recv::<T>(key)
    }

    /// [`Req::recv`], converting the error into the caller's error type: the
    /// `User` payload goes through `From`, timeouts, no-memory and the other
    /// runtime outcomes stay as they are. In a step, `sub.recv_into()?`
    /// propagates a subrequest's failure whatever its error type.
    pub fn recv_into<E2: From<T::Error>>(self) -> Result<T::Output, ReqError<E2>> {
        self.recv().map_err(ReqError::convert)
    }

    /// Runs the loop until the request is finished (tevent's `tevent_req_poll`).
    ///
    /// Fails with [`Error::Nested`] inside a handler of the same context, and
    /// with [`Error::RequestStalled`] if the request is unfinished and the
    /// context has no event left that could finish it (C tevent would wait
    /// forever).
    pub fn poll(&self, ev: &Context) -> Result<(), Error> {
        while self.is_in_progress() {
            if !ev.step_for_poll()? {
                return Err(Error::RequestStalled);
            }
        }
        Ok(())
    }

    /// Hands the request to the context and runs `callback` with it, from the
    /// loop, once it finished (at once if it already has). Dropping the
    /// context first drops the request and the callback unrun.
    pub fn set_callback(self, callback: impl FnOnce(&Context, Req<T>) + 'static) {
        let ctx = self.ctx.clone();
        let slot = self.into_key();
        let Some(ev) = ctx.upgrade().map(|inner| Context { inner }) else {
            return;
        };
        match slot {
            Slot::Live(key) => {
                let registered = make_resume(Callback::<T, _> {
                    f: callback,
                    _t: PhantomData,
                })
                .and_then(|r| ev.req_wait(Key::NONE, key, r).map(|_| ()));
                if registered.is_err() {
                    // Out of memory even for the waiter's bookkeeping: the
                    // request could never be delivered, so it is dropped
                    // (cleanup hooks run) together with the callback.
                    ev.req_drop(key);
                }
            }
            Slot::NoMemory => {
                ev.post(move |ev| {
                    callback(
                        ev,
                        Req {
                            ctx: ev.weak(),
                            slot: Slot::NoMemory,
                            _t: PhantomData,
                        },
                    )
                });
            }
            Slot::Moved => {}
        }
    }

    /// Asks the request to cancel itself: runs its cancel hook (see
    /// [`Ctl::set_cancel`]). Returns whether cancellation started; the request
    /// still finishes through the normal path, and only its result says
    /// whether it really was cancelled. Without a hook, or once finished, this
    /// returns false (tevent's `tevent_req_cancel`).
    pub fn cancel(&self) -> bool {
        let Some((ev, key)) = self.live() else {
            return false;
        };
        let mut started = false;
        ev.run_step::<T>(key, |st, ctl| match ctl.hooks.cancel {
            Some(hook) => match hook(st, ctl) {
                Some(r) => {
                    started = true;
                    r
                }
                None => Ok(Progress::Pending),
            },
            None => Ok(Progress::Pending),
        });
        started
    }

    /// Sets (or moves) the request's end time: if it has not finished by
    /// `at`, it finishes [`ReqError::TimedOut`] and its subtree is dropped.
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        match (&self.slot, self.live()) {
            (_, Some((ev, key))) => ev.req_set_endtime(key, at).map_err(Failure::to_req),
            (Slot::NoMemory, _) => Err(ReqError::NoMemory),
            _ => Err(ReqError::ContextGone),
        }
    }

    /// Removes the end time.
    pub fn reset_endtime(&self) {
        if let Some((ev, key)) = self.live() {
            ev.req_reset_endtime(key);
        }
    }

    /// Starts recording a [`Profile`] of this request, of the subrequests it
    /// already waits for (their start is now) and of every subrequest it waits
    /// for from now on. Returns false if it could not be allocated.
    pub fn enable_profile(&self) -> bool {
        self.live().is_some_and(|(ev, key)| ev.profile_start(key))
    }

    /// Takes the profile out (after the request finished, it holds the
    /// subrequests' profiles too). The profile outlives the request.
    pub fn take_profile(&self) -> Option<Profile> {
        self.live().and_then(|(ev, key)| ev.profile_take(key))
    }

    /// Where the request was created (the caller of `Req::start`).
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.live()
            .and_then(|(ev, key)| ev.req_describe(key).map(|(_, _, l)| l))
    }

    pub(crate) fn key(&self) -> Option<Key> {
        match self.slot {
            Slot::Live(k) => Some(k),
            _ => None,
        }
    }
}

impl<T: Request> Drop for Req<T> {
    fn drop(&mut self) {
        if let Slot::Live(key) = self.slot
            && let Ok(ev) = upgrade(&self.ctx)
        {
            ev.req_drop(key);
        }
    }
}

impl<T: Request> std::fmt::Debug for Req<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Req");
        d.field("type", &T::name()).field("state", &self.state());
        if let Some(loc) = self.location() {
            d.field(
                "created",
                &format_args!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
            );
        }
        d.finish()
    }
}

/// What a step may do besides changing its state: wait for subrequests and
/// events, set its end time and hooks. A step gets `&mut Ctl<Self>`.
pub struct Ctl<'a, T: Request> {
    ev: &'a Context,
    key: Key,
    hooks: &'a mut Hooks<T>,
}

impl<'a, T: Request> Ctl<'a, T> {
    pub(crate) fn new(ev: &'a Context, key: Key, hooks: &'a mut Hooks<T>) -> Self {
        Ctl { ev, key, hooks }
    }

    /// The context the request runs on.
    pub fn ev(&self) -> &'a Context {
        self.ev
    }

    /// Waits for `sub`: when it finishes, `then` runs as the next step of this
    /// request and receives the finished subrequest (call `recv` on it).
    ///
    /// The subrequest is owned by this request until then: if this request
    /// finishes or is dropped first, `sub` is dropped (cancelled). A `then`
    /// that is a plain function (or a closure capturing nothing) costs no
    /// allocation.
    ///
    /// Fails with `NoMemory` if `sub` could not be allocated or the wait could
    /// not be recorded; `ctl.wait(sub, ..)?` then finishes this request
    /// `NoMemory` (tevent's `tevent_req_nomem(subreq, req)`).
    pub fn wait<C: Request>(
        &mut self,
        sub: Req<C>,
        then: impl FnOnce(&mut T, &mut Ctl<'_, T>, Req<C>) -> StepResult<T> + 'static,
    ) -> Result<(), ReqError<T::Error>> {
        let child = match sub.slot {
            Slot::Live(k) => k,
            _ => return Err(ReqError::NoMemory),
        };
        let resume = make_resume(WaitFor::<T, C, _> {
            f: then,
            _t: PhantomData,
        })
        .map_err(Failure::to_req)?;
        let profiled = self
            .ev
            .req_wait(self.key, child, resume)
            .map_err(Failure::to_req)?;
        let _ = sub.into_key();
        if profiled {
            self.ev.profile_start(child);
        }
        Ok(())
    }

    /// Sets (or moves) this request's end time (see [`Req::set_endtime`]).
    pub fn set_endtime(&mut self, at: Instant) -> Result<(), ReqError<T::Error>> {
        self.ev
            .req_set_endtime(self.key, at)
            .map_err(Failure::to_req)
    }

    /// Sets this request's end time `after` from now.
    pub fn set_timeout(&mut self, after: Duration) -> Result<(), ReqError<T::Error>> {
        let at = self.ev.now() + after;
        self.set_endtime(at)
    }

    /// Removes this request's end time.
    pub fn reset_endtime(&mut self) {
        self.ev.req_reset_endtime(self.key);
    }

    /// Sets the cleanup hook: it runs exactly once, when the state is dropped,
    /// with the state the request reached ([`ReqState::Dropped`] if the
    /// request was dropped unfinished).
    pub fn set_cleanup(&mut self, hook: CleanupFn<T>) {
        self.hooks.cleanup = Some(hook);
    }

    /// Sets the cancel hook run by [`Req::cancel`].
    pub fn set_cancel(&mut self, hook: CancelFn<T>) {
        self.hooks.cancel = Some(hook);
    }

    /// Watches `fd` for this request: while the returned watcher is alive
    /// (keep it in the state), each readiness runs `step` as a step of this
    /// request, with the ready flags. Dropping the state drops the watcher.
    pub fn watch_fd<F: std::os::fd::AsFd + 'static>(
        &mut self,
        fd: Rc<F>,
        flags: FdFlags,
        step: fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T>,
    ) -> Result<FdEvent<'static>, Error> {
        let key = self.key;
        self.ev.add_fd_shared(fd, flags, move |ev, _, ready| {
            ev.run_step::<T>(key, |st, ctl| step(st, ctl, ready));
        })
    }

    /// Starts profiling this request (see [`Req::enable_profile`]).
    pub fn enable_profile(&mut self) -> bool {
        self.ev.profile_start(self.key)
    }

    /// Moves this request's queue entry out (queue waits hand it to a guard).
    pub(crate) fn take_queue_link(&mut self) -> Option<crate::queue::QueueLink> {
        self.ev
            .inner
            .reqs
            .borrow_mut()
            .slab
            .get_mut(self.key)
            .and_then(|m| m.extra.as_mut())
            .and_then(|e| e.queue.take())
    }
}

/// Boxes a waiter; zero-sized waiters (plain functions) do not allocate.
fn make_resume<R: Resume + 'static>(r: R) -> Result<Box<dyn Resume>, Failure> {
    if std::mem::size_of::<R>() == 0 {
        Ok(Box::new(r))
    } else {
        crate::alloc::try_box(r)
            .map(|b| b as Box<dyn Resume>)
            .map_err(|_| Failure::NoMemory)
    }
}

impl<R: Resume> Resume for [R; 1] {
    fn resume(self: Box<Self>, ev: &Context, parent: Key, child: Key) {
        let [r] = *self;
        Box::new(r).resume(ev, parent, child)
    }
}

/// A parent waiting for a subrequest of type `C`.
struct WaitFor<P, C, F> {
    f: F,
    _t: PhantomData<fn(P, C)>,
}

impl<P, C, F> Resume for WaitFor<P, C, F>
where
    P: Request,
    C: Request,
    F: FnOnce(&mut P, &mut Ctl<'_, P>, Req<C>) -> StepResult<P> + 'static,
{
    fn resume(self: Box<Self>, ev: &Context, parent: Key, child: Key) {
        let sub = Req::<C>::adopt(ev, child);
        let f = self.f;
        // If the parent is gone or finished, the closure (and `sub`) is dropped.
        ev.run_step::<P>(parent, move |st, ctl| f(st, ctl, sub));
    }
}

/// A top-level callback.
struct Callback<T, F> {
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<T: Request, F: FnOnce(&Context, Req<T>) + 'static> Resume for Callback<T, F> {
    fn resume(self: Box<Self>, ev: &Context, _parent: Key, child: Key) {
        let req = Req::<T>::adopt(ev, child);
        (self.f)(ev, req)
    }
}

impl Context {
    /// Arms (or moves) a request's end-time timer.
    fn req_set_endtime(&self, key: Key, at: Instant) -> Result<(), Failure> {
        let existing = {
            let t = self.inner.reqs.borrow();
            match t.slab.get(key) {
                Some(m) if m.state == ReqState::InProgress => m.endtime,
                _ => return Ok(()),
            }
        };
        if existing != Key::NONE {
            // The end-time timer lives as long as its request's entry.
            return self
                .timer_try_restart(existing, at)
                .map(|_| ())
                .map_err(|_| Failure::NoMemory);
        }
        let timer = self
            .timer_try_insert(at, TimerHandler::ReqEndtime(key))
            .map_err(|_| Failure::NoMemory)?;
        if let Some(m) = self.inner.reqs.borrow_mut().slab.get_mut(key) {
            m.endtime = timer;
        }
        Ok(())
    }

    fn req_reset_endtime(&self, key: Key) {
        let timer = self
            .inner
            .reqs
            .borrow_mut()
            .slab
            .get_mut(key)
            .map_or(Key::NONE, |m| std::mem::replace(&mut m.endtime, Key::NONE));
        if timer != Key::NONE {
            self.timer_remove(timer);
        }
    }
}
