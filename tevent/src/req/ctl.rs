//! [`Ctl`], what a step may do besides changing its state, and the
//! resumption of a parent waiting for a subrequest.

use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::context::Context;
use crate::fd::{FdEvent, FdFlags, Require};

#[cfg(doc)]
use super::handle::ReqState;
use super::handle::{Req, Slot};
use super::request::{Request, StepResult};
use super::table::Hooks;
use super::waiter::Resume;
use super::{CancelFn, CleanupFn, Failure, NodePtr, ReqError, ReqRef, inspect, step};

/// What a step may do besides changing its state: wait for subrequests and
/// events, set its end time and hooks. A step gets `&mut Ctl<Self>`.
///
/// ```
/// use std::time::Duration;
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
/// let nap = Req::start(&ev, Nap, |_, ctl: &mut Ctl<'_, Nap>| {
///     ctl.set_timeout(Duration::from_secs(10))?; // an end time for the whole request
///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1)), woke)?;
///     Ok(Progress::Pending)
/// });
/// assert_eq!(nap.poll_recv(&ev)?, Ok(()));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Ctl<'a, T: Request> {
    pub(super) ev: &'a Context,
    pub(super) node: &'a ReqRef,
    pub(super) hooks: &'a mut Hooks<T>,
}

impl<'a, T: Request> Ctl<'a, T> {
    pub(crate) fn new(ev: &'a Context, node: &'a ReqRef, hooks: &'a mut Hooks<T>) -> Self {
        Ctl { ev, node, hooks }
    }

    /// The context the request runs on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     let soon = ctl.ev().now() + Duration::from_secs(1);
    ///     ctl.set_endtime(soon)?;
    ///     ctl.reset_endtime(); // changed its mind
    ///     ctl.set_endtime(soon + Duration::from_secs(1))?;
    ///     ctl.enable_profile();
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn ev(&self) -> &'a Context {
        self.ev
    }

    /// The request's node (for the runtime's own requests).
    pub(crate) fn node_ref(&self) -> &'a ReqRef {
        self.node
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_recv, wakeup_send};
    ///
    /// /// Waits for two wake-ups in parallel.
    /// struct Both { left: u32 }
    /// impl Request for Both {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn one_done(st: &mut Both, _: &mut Ctl<'_, Both>, sub: Req<Wakeup>) -> StepResult<Both> {
    ///     assert!(wakeup_recv(sub));
    ///     st.left -= 1;
    ///     Ok(if st.left == 0 { Progress::Done(()) } else { Progress::Pending })
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let t0 = ev.now();
    /// let both = Req::start(&ev, Both { left: 2 }, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), t0 + Duration::from_secs(1)), one_done)?;
    ///     ctl.wait(wakeup_send(ctl.ev(), t0 + Duration::from_secs(2)), one_done)?;
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(both.poll_recv(&ev)?, Ok(()));
    /// assert_eq!(ev.now(), t0 + Duration::from_secs(2));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn wait<C: Request>(
        &self,
        sub: Req<C>,
        then: impl FnOnce(&mut T, &mut Ctl<'_, T>, Req<C>) -> StepResult<T> + 'static,
    ) -> Result<(), ReqError<T::Error>> {
        self.wait_with(
            sub,
            WaitFor::<T, C, _> {
                f: then,
                _t: PhantomData,
            },
        )
    }

    /// Waits for `sub` with waiter `resume` (a step closure of
    /// [`Ctl::wait`], or a generated transition), always inlined (the
    /// generated successor methods call it).
    #[inline(always)]
    pub(crate) fn wait_with<C: Request, R: Resume>(
        &self,
        sub: Req<C>,
        resume: R,
    ) -> Result<(), ReqError<T::Error>> {
        let Slot::Live(child) = &*sub.slot else {
            return Err(ReqError::NoMemory);
        };
        let profiled = self
            .ev
            .req_wait(Some(self.node), child, resume)
            .map_err(Failure::to_req)?;
        let Slot::Live(child) = sub.into_slot() else {
            unreachable!("checked above")
        };
        // The parent holds the owner's reference now.
        let child = child.into_raw();
        if profiled {
            self.ev.profile_start(child);
        }
        Ok(())
    }

    /// Sets (or moves) this request's end time (see [`Req::set_endtime`]).
    ///
    /// The example of [`ev`](Self::ev) shows this too.
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        self.ev
            .req_set_endtime(self.node, at)
            .map_err(Failure::to_req)
    }

    /// Sets this request's end time `after` from now (clamped to
    /// [`FAR_FUTURE`](crate::FAR_FUTURE), so `Duration::MAX` means "never").
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Forever;
    /// impl Request for Forever {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Forever, |_, ctl| {
    ///     ctl.set_timeout(Duration::from_secs(3))?; // 3 s from now, on the context's clock
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_timeout(&self, after: Duration) -> Result<(), ReqError<T::Error>> {
        let at = self.ev.deadline_after(after);
        self.set_endtime(at)
    }

    /// Removes this request's end time.
    ///
    /// The example of [`ev`](Self::ev) shows this too.
    pub fn reset_endtime(&self) {
        self.ev.req_reset_endtime(self.node);
    }

    /// Sets the cleanup hook: it runs exactly once, when the state is dropped,
    /// with the state the request reached ([`ReqState::Dropped`] if the
    /// request was dropped unfinished).
    ///
    /// ```
    /// use tevent::{Context, Progress, Req, ReqState, Request};
    ///
    /// struct Tmp { path: &'static str, removed: std::rc::Rc<std::cell::Cell<bool>> }
    /// impl Request for Tmp {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::new()?;
    /// let removed = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let r = Req::start(&ev, Tmp { path: "/tmp/x", removed: removed.clone() }, |_, ctl| {
    ///     ctl.set_cleanup(|st, reached| {
    ///         assert_eq!(reached, ReqState::Done);
    ///         st.removed.set(!st.path.is_empty()); // e.g. remove the file
    ///     });
    ///     Ok(Progress::Done(()))
    /// });
    /// assert!(removed.get()); // the state is dropped as soon as the request finishes
    /// assert_eq!(r.poll_recv(&ev)?, Ok(()));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_cleanup(&mut self, hook: CleanupFn<T>) {
        self.hooks.cleanup = Some(hook);
    }

    /// Sets the cancel hook run by [`Req::cancel`].
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn cancel(_: &mut Job, _: &mut Ctl<'_, Job>) -> Option<StepResult<Job>> {
    ///     Some(Err(ReqError::Cancelled))
    /// }
    /// let ev = Context::new()?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     ctl.set_cancel(cancel);
    ///     Ok(Progress::Pending)
    /// });
    /// assert!(r.cancel());
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::Cancelled));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_cancel(&mut self, hook: CancelFn<T>) {
        self.hooks.cancel = Some(step::CancelHook::Step(hook));
    }

    /// Watches `fd` for this request: while the returned watcher is alive
    /// (keep it in the state), each readiness runs `step` as a step of this
    /// request, with the ready flags. Dropping the state drops the watcher.
    ///
    /// The fd must be nonblocking: a step that reads or writes once too
    /// often (readiness is only a hint) would otherwise block the whole loop.
    /// A blocking fd is refused with [`Error::Blocking`]. The check is one
    /// `fcntl(F_GETFL)` when the fd gets its entry in the context's fd table
    /// (or when the first request watcher joins an entry made by a plain
    /// [`Context::add_fd_shared`]), not one per call: the next one-shot
    /// request on the same fd finds the entry and costs nothing. Errors with
    /// [`Error::BadFd`] as [`Context::add_fd`] does.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use tevent::{Context, Ctl, Error, FdEvent, FdFlags, Progress, Req, Request, StepResult};
    ///
    /// /// Finishes when the fd becomes readable.
    /// struct Readable { watch: Option<FdEvent<'static>> }
    /// impl Request for Readable {
    ///     type Output = ();
    ///     type Error = Error;
    /// }
    /// fn ready(_: &mut Readable, _: &mut Ctl<'_, Readable>, _: FdFlags) -> StepResult<Readable> {
    ///     Ok(Progress::Done(()))
    /// }
    /// fn readable_send(ev: &Context, fd: Rc<UnixStream>) -> Req<Readable> {
    ///     Req::start(ev, Readable { watch: None }, |st, ctl| {
    ///         st.watch = Some(ctl.watch_fd(fd, FdFlags::READ, ready)?);
    ///         Ok(Progress::Pending)
    ///     })
    /// }
    ///
    /// let ev = Context::new()?;
    /// let (a, b) = UnixStream::pair().unwrap();
    /// // Left blocking: refused.
    /// let r = readable_send(&ev, Rc::new(a.try_clone().unwrap()));
    /// assert!(matches!(r.recv(), Err(tevent::ReqError::User(Error::Blocking { .. }))));
    /// a.set_nonblocking(true).unwrap();
    /// let r = readable_send(&ev, Rc::new(a));
    /// std::io::Write::write_all(&mut &b, b"x").unwrap();
    /// r.poll(&ev)?;
    /// assert!(r.recv().is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn watch_fd<F: std::os::fd::AsFd + 'static>(
        &mut self,
        fd: Rc<F>,
        flags: FdFlags,
        step: fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T>,
    ) -> Result<FdEvent<'static>, Error> {
        self.watch_fd_with(fd, flags, step, Require::Nonblocking)
    }

    /// [`Ctl::watch_fd`] with another requirement on the fd's mode
    /// ([`crate::io`] accepts blocking sockets: its calls never block them).
    ///
    /// `step` is usually a function item (`Foo::ready`), which is zero-sized:
    /// the watcher then costs no allocation.
    pub(crate) fn watch_fd_with<F, S>(
        &mut self,
        fd: Rc<F>,
        flags: FdFlags,
        step: S,
        require: Require,
    ) -> Result<FdEvent<'static>, Error>
    where
        F: std::os::fd::AsFd + 'static,
        S: Fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T> + Copy + 'static,
    {
        let run: crate::fd::ReqFdFn = Box::new(move |ev, node, ready| {
            let name = inspect::step_name_of::<S>;
            ev.run_step_in::<T>(node, Some(name), |st, ctl| step(st, ctl, ready));
        });
        self.ev.add_fd_shared_with(
            fd,
            flags,
            crate::fd::FdHandler::Req(self.node.clone(), run),
            require,
        )
    }

    /// Starts profiling this request (see [`Req::enable_profile`]).
    ///
    /// The example of [`ev`](Self::ev) shows this too.
    pub fn enable_profile(&self) -> bool {
        self.ev.profile_start(self.node.ptr())
    }

    /// Moves this request's queue entry out (queue waits hand it to a guard).
    pub(crate) fn take_queue_link(&mut self) -> Option<crate::queue::QueueLink> {
        self.node
            .hdr()
            .extra
            .borrow_mut()
            .as_mut()
            .and_then(|e| e[0].queue.take())
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
    fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        let sub = Req::<C>::adopt(child);
        let Some(parent) = parent else {
            return;
        };
        // SAFETY: the child was on the parent's list until now, so the parent
        // is live; the count keeps it so while its step runs.
        let parent = unsafe { ReqRef::from_ptr(parent) };
        let f = self.f;
        // If the parent cannot run a step, the closure (and `sub`) is dropped.
        ev.run_step_unreported::<P>(&parent, move |st, ctl| f(st, ctl, sub));
    }

    fn step_name(&self) -> &'static str {
        step::step_name::<F>()
    }
}
