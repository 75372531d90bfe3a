//! Bookkeeping of requests: creating them, the completion queue, finishing,
//! the ownership tree and iterative dropping of request trees.
//!
//! Every request is one heap node (see [`super::node`]): the untyped header
//! followed by its typed part (`ReqCell<T>`: the user's state, the result,
//! the hooks). The hot operations reach the node directly through the
//! pointers kept by its handle, its parent and the completion queue; the
//! context keeps only the queue, a few counters and the list of live requests
//! (for teardown).
//!
//! The subrequests a parent waits for form an intrusive doubly linked list
//! through their headers: adding and removing one is O(1) and never
//! allocates, however many a parent waits for. A subrequest that had already
//! finished when the wait began is linked too, so that whatever happens to
//! the parent also happens to it.
//!
//! Notification is queued, never re-entrant: when a request finishes and
//! someone waits for it, it goes into the completion queue, which the loop
//! drains after every handler (and before anything else in a step). The
//! queue is threaded through the headers, so queueing never allocates (and
//! never fails); chains of any depth are walked iteratively.

mod life;

use std::cell::Cell;

use crate::context::{Context, Inner};
use crate::panic::PanicSlot;
use crate::req::hooks::{About, reporting};
use crate::req::node::{Flag, Header, NodePtr, ReqRef, hdr};
use crate::req::step::{Next, StartCtl, Then};
use crate::req::{Ctl, ReqState, Request, StepResult};
use crate::slab::Key;
use crate::trace::ReqPoint;
use crate::{Progress, ReqError};

pub(crate) use life::req_recv;

/// The typed part of a request.
pub(crate) struct ReqCell<T: Request> {
    /// `None` once the request finished (the state is dropped then).
    pub(crate) state: Option<T>,
    /// Set when the request finishes; taken by `recv`.
    pub(crate) result: Option<Result<T::Output, ReqError<T::Error>>>,
    pub(crate) hooks: Hooks<T>,
}

/// A cleanup hook: runs once, with the state the request reached.
///
/// ```
/// use tevent::{Context, Progress, Req, ReqState, Request};
///
/// struct Conn { log: std::rc::Rc<std::cell::Cell<Option<ReqState>>> }
/// impl Request for Conn {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// fn cleanup(st: &mut Conn, reached: ReqState) {
///     st.log.set(Some(reached)); // close what the state holds, log the outcome...
/// }
///
/// let ev = Context::new()?;
/// let log = std::rc::Rc::new(std::cell::Cell::new(None));
/// let req = Req::start(&ev, Conn { log: log.clone() }, |_, ctl| {
///     ctl.set_cleanup(cleanup);
///     Ok(Progress::Pending)
/// });
/// drop(req);
/// assert_eq!(log.get(), Some(ReqState::Dropped));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type CleanupFn<T> = fn(&mut T, ReqState);
/// A cancel hook: returns `None` if cancellation cannot start, otherwise the
/// step result (usually `Pending`, or the request finished as cancelled).
///
/// ```
/// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};
///
/// struct Lookup;
/// impl Request for Lookup {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// fn cancel(_: &mut Lookup, _: &mut Ctl<'_, Lookup>) -> Option<StepResult<Lookup>> {
///     Some(Err(ReqError::Cancelled)) // cancellation possible: finish at once
/// }
///
/// let ev = Context::new()?;
/// let req = Req::start(&ev, Lookup, |_, ctl| {
///     ctl.set_cancel(cancel);
///     Ok(Progress::Pending)
/// });
/// assert!(req.cancel());
/// assert_eq!(req.poll_recv(&ev)?, Err(ReqError::Cancelled));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type CancelFn<T> = fn(&mut T, &mut Ctl<'_, T>) -> Option<StepResult<T>>;

/// Hooks of a request, set through its [`Ctl`].
pub(crate) struct Hooks<T: Request> {
    pub(crate) cleanup: Option<CleanupFn<T>>,
    pub(crate) cancel: Option<crate::req::step::CancelHook<T>>,
}

impl<T: Request> ReqCell<T> {
    pub(crate) fn new(state: Option<T>) -> Self {
        ReqCell {
            state,
            result: None,
            hooks: Hooks {
                cleanup: None,
                cancel: None,
            },
        }
    }

    /// Stores the outcome, runs the cleanup hook and drops the state.
    pub(crate) fn finish(
        &mut self,
        r: Result<T::Output, ReqError<T::Error>>,
        panics: &PanicSlot,
    ) -> ReqState {
        let reached = match &r {
            Ok(_) => ReqState::Done,
            Err(e) => e.state(),
        };
        self.result = Some(r);
        self.drop_state(reached, panics);
        reached
    }

    /// Runs the cleanup hook (once) and drops the state. Both are user code
    /// run mid-bookkeeping: a panic in either is kept in `panics` (the state
    /// is dropped even if the hook panicked).
    pub(crate) fn drop_state(&mut self, reached: ReqState, panics: &PanicSlot) {
        if let Some(mut state) = self.state.take() {
            if let Some(cleanup) = self.hooks.cleanup.take() {
                panics.catch(|| cleanup(&mut state, reached));
            }
            panics.catch(move || drop(state));
        }
    }

    /// Runs `f` as a step; returns the state reached if it finished. A step
    /// that panics finishes the request with [`ReqError::Panicked`]; the
    /// panic is kept in the context and raised when the public call that ran
    /// the step returns.
    #[inline]
    fn step(
        &mut self,
        ev: &Context,
        node: &ReqRef,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Option<ReqState> {
        let panics = &ev.inner.panic;
        let ReqCell { state, hooks, .. } = self;
        let state = state
            .as_mut()
            .expect("an in-progress request has its state");
        let mut ctl = Ctl::new(ev, node, hooks);
        match panics.catch(|| f(state, &mut ctl)) {
            Some(Ok(Progress::Pending)) => None,
            Some(Ok(Progress::Done(out))) => Some(self.finish(Ok(out), panics)),
            Some(Err(e)) => Some(self.finish(Err(e), panics)),
            None => Some(self.finish(Err(ReqError::Panicked), panics)),
        }
    }
}

impl<T: Request> ReqCell<T> {
    /// Runs the first step of a request that starts without a state: `f`
    /// builds the state through its [`StartCtl`]. Returns the state reached
    /// if it finished (a panic finishes it `Panicked`, as in `step`).
    #[inline]
    fn build(
        &mut self,
        ev: &Context,
        node: &ReqRef,
        f: impl FnOnce(StartCtl<'_, T>) -> Next<T>,
    ) -> Option<ReqState> {
        let panics = &ev.inner.panic;
        let ReqCell { state, hooks, .. } = self;
        let start = StartCtl::new(Ctl::new(ev, node, hooks), state);
        let r = panics
            .catch(|| Then::__into_step(f(start)))
            .unwrap_or(Err(ReqError::Panicked));
        match r {
            Ok(Progress::Pending) if self.state.is_none() => {
                // Only reachable through the hidden constructors: the typed
                // handles let no step keep waiting before `create`.
                panics.catch(|| panic!("a start step kept waiting without creating its state"));
                Some(self.finish(Err(ReqError::Panicked), panics))
            }
            Ok(Progress::Pending) => None,
            Ok(Progress::Done(out)) => Some(self.finish(Ok(out), panics)),
            Err(e) => Some(self.finish(Err(e), panics)),
        }
    }
}

/// Who owns a request (and holds its owner's reference).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    /// A `Req<T>` handle.
    Handle,
    /// The parent in `Header::parent`, which waits for it.
    Parent,
    /// The runtime: a top-level request whose callback is pending, or a
    /// request being dropped.
    Context,
}

/// Rarely used parts of a request, boxed so the common header stays small.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) profile: Option<crate::req::profile::Profile>,
    pub(crate) queue: Option<crate::queue::QueueLink>,
    /// When the request was created, on its context's clock, if the
    /// context records request ages (see `Context::set_request_ages`).
    pub(crate) born: Option<std::time::Instant>,
}

/// The requests of a context.
#[derive(Default)]
pub(crate) struct ReqTable {
    /// Finished requests whose waiters have not run, linked through
    /// `Header::qnext` / `qprev` (uncounted: a request leaves the queue
    /// before it is removed).
    q_head: Cell<Option<NodePtr>>,
    q_tail: Cell<Option<NodePtr>>,
    /// A drop is being processed; nested drops join the doomed list.
    dropping: Cell<bool>,
    doomed_head: Cell<Option<NodePtr>>,
    /// The list of live (not removed) requests, through `live_next`.
    live_head: Cell<Option<NodePtr>>,
    live: Cell<usize>,
}

impl ReqTable {
    /// Live requests.
    pub(crate) fn len(&self) -> usize {
        self.live.get()
    }

    /// The newest live request (the live list goes on through
    /// `Header::live_next`).
    pub(crate) fn live_head(&self) -> Option<NodePtr> {
        self.live_head.get()
    }

    /// Whether a finished request's waiter is due (the loop drains the
    /// queue before anything else).
    #[inline(always)]
    pub(crate) fn has_notifications(&self) -> bool {
        self.q_head.get().is_some()
    }

    /// Queues the notification of a finished, waited-for request (a request
    /// is queued at most once at a time: it is queued when it finishes or
    /// when a wait for it begins, and a wait consumes it).
    #[inline(always)]
    fn queue_notification(&self, node: &ReqRef) {
        let p = node.ptr();
        let h = node.hdr();
        // Queued twice, the intrusive list would loop: a real check.
        if h.has(Flag::QUEUED) {
            return;
        }
        h.raise(Flag::QUEUED);
        h.qnext.set(None);
        h.qprev.set(self.q_tail.get());
        match self.q_tail.replace(Some(p)) {
            // SAFETY: queued requests are live (they leave the queue before
            // they are removed).
            Some(tail) => unsafe { hdr(tail) }.qnext.set(Some(p)),
            None => self.q_head.set(Some(p)),
        }
    }

    /// Takes the oldest queued notification out of the queue.
    #[inline(always)]
    fn pop_notification(&self) -> Option<NodePtr> {
        let p = self.q_head.get()?;
        // SAFETY: queued requests are live.
        self.unqueue(unsafe { hdr(p) });
        Some(p)
    }

    /// Takes a queued request out of the queue.
    #[inline(always)]
    fn unqueue(&self, h: &Header) {
        h.lower(Flag::QUEUED);
        let (prev, next) = (h.qprev.take(), h.qnext.take());
        match prev {
            // SAFETY: queued requests are live.
            Some(p) => unsafe { hdr(p) }.qnext.set(next),
            None => self.q_head.set(next),
        }
        match next {
            // SAFETY: as above.
            Some(n) => unsafe { hdr(n) }.qprev.set(prev),
            None => self.q_tail.set(prev),
        }
    }

    #[inline]
    fn live_link(&self, p: NodePtr) {
        // SAFETY: `p` is a fresh node held by its creator; the old head is
        // live (on the list, so not removed).
        let h = unsafe { hdr(p) };
        let head = self.live_head.replace(Some(p));
        h.live_next.set(head);
        if let Some(n) = head {
            // SAFETY: see above.
            unsafe { hdr(n) }.live_prev.set(Some(p));
        }
        self.live.set(self.live.get() + 1);
    }

    #[inline]
    fn live_unlink(&self, h: &Header) {
        let (prev, next) = (h.live_prev.take(), h.live_next.take());
        match prev {
            // SAFETY: neighbours on the live list are not removed.
            Some(p) => unsafe { hdr(p) }.live_next.set(next),
            None => self.live_head.set(next),
        }
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { hdr(n) }.live_prev.set(prev);
        }
        self.live.set(self.live.get() - 1);
    }

    /// Links `p` into the doomed list, unless it is already doomed or
    /// removed. A doomed subrequest has left its parent's list (the caller
    /// took the list): it forgets its parent, and the runtime holds its
    /// owner's reference from now on, so nothing follows a pointer from it
    /// to a parent that may be gone before it is removed.
    fn doom(&self, p: NodePtr) {
        // SAFETY: callers pass a node that is not removed (a child on a live
        // parent's list, or one whose owner's reference the runtime holds).
        let h = unsafe { hdr(p) };
        if !h.has(Flag::DOOMED | Flag::REMOVED) {
            h.raise(Flag::DOOMED);
            if h.owner.get() == Owner::Parent {
                h.owner.set(Owner::Context);
            }
            h.parent.set(None);
            h.prev.set(None);
            h.next.set(self.doomed_head.replace(Some(p)));
        }
    }

    /// Dooms every request of a sibling list.
    fn doom_list(&self, first: NodePtr) {
        let mut c = Some(first);
        while let Some(p) = c {
            // SAFETY: the siblings of a list being doomed are not removed.
            c = unsafe { hdr(p) }.next.get();
            self.doom(p);
        }
    }

    fn pop_doomed(&self) -> Option<NodePtr> {
        let p = self.doomed_head.get()?;
        // SAFETY: doomed nodes are live (the runtime holds their owner's
        // reference until it removes them).
        self.doomed_head.set(unsafe { hdr(p) }.next.take());
        Some(p)
    }
}

/// Whether request `child` (owned by a handle, so the root of its own tree)
/// is `parent` or one of its ancestors: waiting for it would make a request
/// wait for itself. Walks from `parent` up to its root, unless `child` has
/// no subrequests (then only `parent` itself can be it).
#[inline(always)]
fn waits_under(child: &ReqRef, parent: &ReqRef) -> bool {
    let c = child.ptr();
    if c == parent.ptr() {
        return true;
    }
    if child.hdr().first_child.get().is_none() {
        return false;
    }
    let mut at = parent.hdr();
    while at.owner.get() == Owner::Parent {
        let Some(up) = at.parent.get() else {
            return false;
        };
        if up == c {
            return true;
        }
        // SAFETY: the parent of a linked subrequest is live.
        at = unsafe { hdr(up) };
    }
    false
}

/// Puts `child` at the head of `parent`'s subrequest list.
#[inline(always)]
fn link_child(parent: &Header, parent_ptr: NodePtr, child: &Header, child_ptr: NodePtr) {
    let first = parent.first_child.replace(Some(child_ptr));
    if let Some(f) = first {
        // SAFETY: the parent is live, so are the subrequests on its list.
        unsafe { hdr(f) }.prev.set(Some(child_ptr));
    }
    child.parent.set(Some(parent_ptr));
    child.prev.set(None);
    child.next.set(first);
}

/// Takes `child` out of its parent's subrequest list.
#[inline(always)]
fn unlink_child(child: &Header) {
    let (parent, prev, next) = (child.parent.take(), child.prev.take(), child.next.take());
    match prev {
        // SAFETY: siblings of a linked child are live.
        Some(p) => unsafe { hdr(p) }.next.set(next),
        None => {
            if let Some(p) = parent {
                // SAFETY: the parent of a linked child is live.
                unsafe { hdr(p) }.first_child.set(next);
            }
        }
    }
    if let Some(n) = next {
        // SAFETY: as above.
        unsafe { hdr(n) }.prev.set(prev);
    }
}

/// Whether a request records a profile.
#[inline]
pub(crate) fn is_profiled(h: &Header) -> bool {
    h.has(Flag::PROFILED) && has_profile(h)
}

#[cold]
fn has_profile(h: &Header) -> bool {
    h.extra
        .borrow()
        .as_ref()
        .is_some_and(|e| e[0].profile.is_some())
}

/// The request's rarely used parts, allocated (fallibly) on first use.
pub(crate) fn extra_mut(h: &Header) -> Option<std::cell::RefMut<'_, Extra>> {
    let mut e = h.extra.borrow_mut();
    if e.is_none() {
        *e = Some(crate::alloc::try_box(Extra::default()).ok()?);
        h.raise(Flag::EXTRA);
    }
    Some(std::cell::RefMut::map(e, |e| match e {
        Some(b) => &mut b[0],
        None => unreachable!("allocated above"),
    }))
}

impl ReqTable {
    /// Tears every request down, for the context's drop (the context can no
    /// longer be reached: handles see it gone). States are dropped (cleanup
    /// hooks run with `Dropped`); nodes still held by handles stay allocated
    /// until their handles go.
    pub(crate) fn teardown(&self, inner: &Inner) {
        let panics = &inner.panic;
        self.dropping.set(true);
        let mut all = Vec::with_capacity(self.live.get());
        let mut c = self.live_head.take();
        while let Some(p) = c {
            // SAFETY: nodes on the live list are live.
            let node = unsafe { ReqRef::from_ptr(p) };
            c = node.hdr().live_next.take();
            node.hdr().live_prev.set(None);
            all.push(node);
        }
        self.live.set(0);
        self.doomed_head.set(None);
        while self.pop_notification().is_some() {}
        for node in &all {
            let h = node.hdr();
            h.raise(Flag::REMOVED);
            h.lower(Flag::DOOMED);
            h.first_child.set(None);
            h.next.set(None);
            h.prev.set(None);
            h.parent.set(None);
            // Timers go with the context; nothing is told.
            h.endtime.set(Key::NONE);
        }
        for node in &all {
            let h = node.hdr();
            let about = reporting(inner).then(|| About::of(h));
            let extra = h.extra.borrow_mut().take();
            drop(extra);
            let waiter = h.waiter.take();
            panics.catch(move || drop(waiter));
            // SAFETY: no step runs while the context is dropped.
            unsafe { node.clear(panics) };
            if let Some(about) = about {
                inner.report_req(about, ReqPoint::Cleanup, 0, None);
            }
            // A handle's reference goes with the handle.
            if h.owner.get() != Owner::Handle {
                // SAFETY: the runtime held the owner's reference.
                drop(unsafe { ReqRef::from_raw(node.ptr()) });
            }
        }
        drop(all);
    }
}
