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

use std::cell::Cell;
use std::panic::Location;

use crate::context::{Context, Inner, MAX_NOTIFICATIONS_PER_STEP};
use crate::panic::PanicSlot;
use crate::req::hooks::{About, StepName, reporting};
use crate::req::node::{Flag, Header, NodePtr, ReqRef, hdr};
use crate::req::step::{Next, StartCtl, Then};
use crate::req::waiter::Resume;
use crate::req::{Ctl, Failure, ReqState, Request, StepResult};
use crate::slab::Key;
use crate::trace::ReqPoint;
use crate::{Progress, ReqError};

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

impl Context {
    /// Creates a request with `state`, runs `first` as its first step, and
    /// returns the owner's reference, or `None` if the node could not be
    /// allocated.
    #[inline]
    pub(crate) fn req_create<T: Request>(
        &self,
        state: T,
        created: &'static Location<'static>,
        first: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Option<ReqRef> {
        self.req_create_with(Some(state), created, |cell, ev, node| {
            cell.step(ev, node, first)
        })
    }

    /// Creates a request without a state and runs `first`, which builds it
    /// (see `req::step`).
    #[inline]
    pub(crate) fn req_create_building<T: Request>(
        &self,
        created: &'static Location<'static>,
        first: impl FnOnce(StartCtl<'_, T>) -> Next<T>,
    ) -> Option<ReqRef> {
        self.req_create_with(None, created, |cell, ev, node| cell.build(ev, node, first))
    }

    /// Allocates a request's node with `state`, links it, and runs its first
    /// step through `run`; returns the owner's reference, or `None` if the
    /// node could not be allocated.
    #[inline(always)]
    fn req_create_with<T: Request>(
        &self,
        state: Option<T>,
        created: &'static Location<'static>,
        run: impl FnOnce(&mut ReqCell<T>, &Context, &ReqRef) -> Option<ReqState>,
    ) -> Option<ReqRef> {
        // `T::name` is user code: it runs here, before anything is linked.
        #[cfg(feature = "tracing")]
        let span = tracing::trace_span!("request", name = T::name(), created = %created);
        if self.inner.hooks.watching_creates() {
            return self.req_create_watched(
                state,
                created,
                run,
                #[cfg(feature = "tracing")]
                span,
            );
        }
        let node = ReqRef::alloc(
            &self.inner,
            created,
            state,
            #[cfg(feature = "tracing")]
            span,
        )
        .ok()?;
        self.inner.reqs.live_link(node.ptr());
        let h = node.hdr();
        h.raise(Flag::RUNNING);
        // SAFETY: the node is a `Node<T>` just created, and `RUNNING` is set.
        let finished = run(unsafe { node.cell::<T>() }, self, &node);
        self.req_put_back(&node, finished);
        Some(node)
    }

    /// [`Context::req_create_with`] while something watches requests being
    /// created: a simulation may fail the allocation here (see
    /// [`crate::sim::Faults::no_memory`]), as the allocator would.
    #[cold]
    #[inline(never)]
    fn req_create_watched<T: Request>(
        &self,
        state: Option<T>,
        created: &'static Location<'static>,
        run: impl FnOnce(&mut ReqCell<T>, &Context, &ReqRef) -> Option<ReqState>,
        #[cfg(feature = "tracing")] span: tracing::Span,
    ) -> Option<ReqRef> {
        if let Some(sim) = self.sim()
            && sim.inject(crate::sim::Fault::NoMemory)
        {
            // As a failed allocation (`ReqRef::alloc` hands the state
            // back, and the `?` below drops it): the state goes unrun.
            drop(state);
            return None;
        }
        let node = ReqRef::alloc(
            &self.inner,
            created,
            state,
            #[cfg(feature = "tracing")]
            span,
        )
        .ok()?;
        self.inner.reqs.live_link(node.ptr());
        Some(self.req_first_step_watched(node, run))
    }

    /// The first step of a new request while something watches requests
    /// (a request hook, ages, the `tracing` feature): records its age,
    /// reports its creation, runs the step.
    #[cold]
    #[inline(never)]
    fn req_first_step_watched<T: Request>(
        &self,
        node: ReqRef,
        run: impl FnOnce(&mut ReqCell<T>, &Context, &ReqRef) -> Option<ReqState>,
    ) -> ReqRef {
        let h = node.hdr();
        if self.inner.hooks.req_watch.get() & crate::trace::WATCH_AGES != 0 {
            self.record_birth(h);
        }
        // (Nothing can reach the new request but a snapshot: the hook
        // cannot end it.)
        let depth = reporting(&self.inner).then(|| self.inner.report_create(h));
        h.raise(Flag::RUNNING);
        #[cfg(feature = "tracing")]
        let _entered = h.span.clone().entered();
        // SAFETY: the node is a `Node<T>` just created, and `RUNNING` is set.
        let finished = run(unsafe { node.cell::<T>() }, self, &node);
        if let Some(d) = depth {
            self.inner.hooks.req_depth.set(d);
        }
        self.req_put_back(&node, finished);
        node
    }

    /// Registers `child` (owned by the caller's handle) as waited for by
    /// `parent` (`None`: a top-level callback), resumed through `resume` when
    /// it finishes. Returns whether the parent is profiled. On success the
    /// owner's reference belongs to the runtime (the caller gives it up); on
    /// failure nothing changed but `resume`, which is dropped (user code: the
    /// caller is a public call, where a panic of it may leave).
    #[inline(always)]
    pub(crate) fn req_wait<R: Resume>(
        &self,
        parent: Option<&ReqRef>,
        child: &ReqRef,
        resume: R,
    ) -> Result<bool, Failure> {
        let h = child.hdr();
        if !h.belongs_to(&self.inner) {
            return Err(Failure::WrongContext);
        }
        // A live handle owns its request, which is then not being dropped
        // and has no waiter (delivering a waiter gives the request to a
        // handle after taking the waiter; a wait takes it from its handle).
        // A real check: the owner's reference changes hands below.
        if h.owner.get() != Owner::Handle || h.has(Flag::DOOMED) {
            return Err(Failure::WrongContext);
        }
        if let Some(p) = parent
            && waits_under(child, p)
        {
            return Err(Failure::Cycle);
        }
        let t = &self.inner.reqs;
        h.waiter.set(resume)?;
        let profiled = match parent {
            Some(p) => {
                h.owner.set(Owner::Parent);
                let ph = p.hdr();
                link_child(ph, p.ptr(), h, child.ptr());
                is_profiled(ph)
            }
            None => {
                h.owner.set(Owner::Context);
                // A new callback registration (see `CallbackHandle`). 64
                // bits: it cannot wrap.
                h.epoch.set(h.epoch.get() + 1);
                false
            }
        };
        if h.state.get() == ReqState::InProgress {
            h.raise(Flag::WAITING);
        } else {
            t.queue_notification(child);
        }
        Ok(profiled)
    }

    /// Delivers queued notifications until the queue is empty, or
    /// [`MAX_NOTIFICATIONS_PER_STEP`] were delivered (the rest are delivered
    /// by the following steps, so a chain of waiters that keeps finishing
    /// requests cannot hold one step forever). Returns whether any waiter
    /// ran. Each finished child is handed to a handle (taken out of its
    /// parent's care) before its waiter runs.
    ///
    /// Whether request points are reported is checked once per delivery,
    /// not per waiter: a request trace hook installed by one of its waiters
    /// sees the waiters of the next delivery on. A reporting delivery
    /// reports each waiter's `Notify` and its parent's `Step`; the waiter
    /// itself never reports.
    #[inline]
    pub(crate) fn run_completions(&self) -> bool {
        if reporting(&self.inner) {
            return self.run_completions_reported();
        }
        self.deliver::<false>()
    }

    /// [`Context::run_completions`] while request points are reported.
    #[cold]
    #[inline(never)]
    fn run_completions_reported(&self) -> bool {
        self.deliver::<true>()
    }

    #[inline(always)]
    fn deliver<const REPORT: bool>(&self) -> bool {
        let t = &self.inner.reqs;
        let mut ran = false;
        for _ in 0..MAX_NOTIFICATIONS_PER_STEP {
            let Some(p) = t.pop_notification() else {
                return ran;
            };
            // SAFETY: queued requests are live (they leave the queue before
            // they are removed), and the runtime holds their owner's
            // reference until the handover below.
            let h = unsafe { hdr(p) };
            // Being dropped (its parent went) while a drop runs user code
            // that ran the loop: nobody is told.
            if h.has(Flag::DOOMED) {
                continue;
            }
            // The hook may drop the request (dropping its parent): it is
            // then removed, its memory kept until the step ends.
            if REPORT && !self.inner.report_notify(h) {
                continue;
            }
            if !REPORT {
                // The waiter is run from its slot: no user code runs before
                // it is moved out there.
                let Some(resume) = h.waiter.take_in_place() else {
                    continue;
                };
                let (parent, child) = self.hand_over(p, h);
                // SAFETY: the slot is as `take_in_place` left it (nothing
                // ran since), and `child` keeps its node allocated.
                unsafe { resume.resume(self, parent, child) };
                ran = true;
                if self.inner.entered_once() {
                    self.inner.node_pool.release_deferred();
                }
                continue;
            }
            let Some(resume) = h.waiter.take() else {
                continue;
            };
            // The owner's reference passes to the waiter's handle.
            let (parent, child) = self.hand_over(p, h);
            if let Some(up) = parent {
                // The parent's step, reported here: the waiter runs it
                // without reporting. (A hook that ends or drops the parent
                // keeps the step from running: the waiter finds it unable
                // to run one. Its memory stays while the loop step runs.)
                // SAFETY: the parent of a subrequest that was on its list
                // a moment ago is live; nothing ran since.
                let ph = unsafe { hdr(up) };
                let step = resume.step_name();
                let depth = runnable(ph).then(|| self.inner.report_step_named(ph, Some(step)));
                resume.resume(self, parent, child);
                if let Some(d) = depth {
                    self.inner.hooks.req_depth.set(d);
                }
            } else {
                resume.resume(self, parent, child);
            }
            ran = true;
            // Between two waiters, directly under the loop, no frame of the
            // runtime holds a node: what the waiter released goes back to
            // the pool now, for the next request (a chain of requests that
            // finish inside their sends runs many waiters in one step).
            if self.inner.entered_once() {
                self.inner.node_pool.release_deferred();
            }
        }
        ran
    }

    /// Takes a finished request whose waiter was just taken out of its
    /// parent's list (if a parent waits for it) and gives its owner's
    /// reference to the waiter's handle: returns the parent and that
    /// reference.
    #[inline(always)]
    fn hand_over(&self, p: NodePtr, h: &Header) -> (Option<NodePtr>, ReqRef) {
        // A request its parent waits for is on the parent's list.
        let parent = match h.owner.get() {
            Owner::Parent => {
                let parent = h.parent.get();
                unlink_child(h);
                parent
            }
            _ => None,
        };
        h.owner.set(Owner::Handle);
        // SAFETY: the runtime held the owner's reference (owner was
        // `Parent` or `Context`).
        (parent, unsafe { ReqRef::from_raw(p) })
    }

    /// Finishes an in-progress request with a runtime failure (timeout, queue
    /// teardown). Returns false if it is not in progress or a step of it runs.
    pub(crate) fn req_fail(&self, node: &ReqRef, why: Failure) -> bool {
        let h = node.hdr();
        if !runnable(h) {
            return false;
        }
        h.raise(Flag::RUNNING);
        // SAFETY: in progress and not borrowed (checked); `RUNNING` is set.
        let reached = unsafe { node.fail(why, &self.inner.panic) };
        self.req_put_back(node, Some(reached));
        true
    }

    /// The end time of a request passed.
    pub(crate) fn req_timed_out(&self, p: NodePtr) {
        // SAFETY: a request removes its end-time timer before it can be
        // freed, and the timer is what calls this.
        let node = unsafe { ReqRef::from_ptr(p) };
        self.req_fail(&node, Failure::TimedOut);
    }

    /// Ends a step (or failure) of `node`: clears `RUNNING` and, if the step
    /// finished the request, disarms its end time, drops the subrequests it
    /// still owned, leaves its queue, closes its profile and queues the
    /// notification of whoever waits. A request dropped during its own step
    /// (a zombie) is dropped now. The caller holds a counted reference.
    #[inline(always)]
    fn req_put_back(&self, node: &ReqRef, finished: Option<ReqState>) {
        let h = node.hdr();
        h.lower(Flag::RUNNING);
        if h.has(Flag::ZOMBIE) {
            h.lower(Flag::ZOMBIE);
            self.req_drop(node.ptr());
            return;
        }
        let Some(reached) = finished else {
            return;
        };
        h.state.set(reached);
        let t = &self.inner.reqs;
        if h.has(Flag::WAITING) {
            h.lower(Flag::WAITING);
            t.queue_notification(node);
        }
        let children = h.first_child.take();
        if let Some(c) = children {
            // A profiled request records what it still waited for.
            if h.has(Flag::PROFILED) {
                self.profile_cut_off(h, c, reached);
            }
            t.doom_list(c);
        }
        if h.has(Flag::EXTRA) {
            self.profile_stop(h, reached);
            let link = h
                .extra
                .borrow_mut()
                .as_mut()
                .and_then(|e| e[0].queue.take());
            if let Some(q) = link {
                q.release(self);
            }
        }
        let endtime = h.endtime.replace(Key::NONE);
        if endtime != Key::NONE {
            self.timer_remove(endtime);
        }
        // The subtree of a finished request has nothing left to do for it.
        if children.is_some() {
            self.req_drain_doomed();
        }
    }

    /// Drops a request owned by a handle, whose owner's reference is `node`
    /// (`Req` dropped, received too early, or its callback not registered).
    pub(crate) fn req_drop_owned(&self, node: ReqRef) {
        // The runtime takes the owner's reference over.
        node.hdr().owner.set(Owner::Context);
        self.req_drop(node.into_raw());
    }

    /// Drops a request and its whole subtree (see [`Context::req_drain_doomed`]).
    /// The runtime must hold the request's owner's reference (owner is not
    /// `Handle`).
    #[inline]
    pub(crate) fn req_drop(&self, p: NodePtr) {
        self.inner.reqs.doom(p);
        self.req_drain_doomed();
    }

    /// Removes every doomed request, iteratively: requests dropped while this
    /// runs (subrequests held in a dropped state, the runtime-owned children)
    /// join the doomed list threaded through the headers, so a 10 000-deep
    /// tree uses no extra stack and dropping allocates nothing.
    fn req_drain_doomed(&self) {
        let t = &self.inner.reqs;
        if t.dropping.get() || t.doomed_head.get().is_none() {
            return;
        }
        t.dropping.set(true);
        while let Some(p) = t.pop_doomed() {
            // SAFETY: doomed nodes are live (see `pop_doomed`).
            let h = unsafe { hdr(p) };
            h.lower(Flag::DOOMED);
            if h.has(Flag::RUNNING) {
                // One of its steps is running: it is dropped when the step
                // returns (see `req_put_back`).
                h.raise(Flag::ZOMBIE);
                continue;
            }
            if h.owner.get() == Owner::Handle {
                // Never doomed while a handle owns it (the drop paths hand
                // the owner's reference to the runtime first); a real check,
                // since removing it would release the handle's reference.
                continue;
            }
            h.raise(Flag::REMOVED);
            t.live_unlink(h);
            // Finished and queued, never to be delivered.
            if h.has(Flag::QUEUED) {
                t.unqueue(h);
            }
            if let Some(c) = h.first_child.take() {
                t.doom_list(c);
            }
            // SAFETY: the runtime held the owner's reference of a doomed node.
            self.req_release(unsafe { ReqRef::from_raw(p) });
        }
        t.dropping.set(false);
    }

    /// Releases what a removed request held (its end time, its queue entry,
    /// its state, result and waiter) and drops the owner's reference.
    fn req_release(&self, node: ReqRef) {
        let h = node.hdr();
        let about = reporting(&self.inner).then(|| About::of(h));
        let endtime = h.endtime.replace(Key::NONE);
        if endtime != Key::NONE {
            self.timer_remove(endtime);
        }
        let extra = h.extra.borrow_mut().take();
        if let Some(q) = extra.and_then(|mut e| e[0].queue.take()) {
            q.release(self);
        }
        // A waiter is user code (a step or callback closure, and what it
        // captured); so is what `clear` drops. Panics are kept.
        let waiter = h.waiter.take();
        self.inner.panic.catch(move || drop(waiter));
        // SAFETY: removed nodes never run a step again, and this one was not
        // running (checked by the caller).
        unsafe { node.clear(&self.inner.panic) };
        if let Some(about) = about {
            self.inner.report_req(about, ReqPoint::Cleanup, 0, None);
        }
        node.release_in(&self.inner);
    }

    /// Runs one step of request `node` (of type `T`): `f` gets the state and
    /// a [`Ctl`]. Returns false if the request is gone, finished, or already
    /// running a step (then `f` is dropped unrun).
    ///
    /// `T` must be the request's type: callers get it from a `Req<T>` or
    /// from a closure created with the request's own `Ctl<T>`.
    #[inline]
    pub(crate) fn run_step<T: Request>(
        &self,
        node: &ReqRef,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> bool {
        self.run_step_in(node, None, f)
    }

    /// [`Context::run_step`] of the step named by `step` (reported to the
    /// request trace hook).
    #[inline]
    pub(crate) fn run_step_in<T: Request>(
        &self,
        node: &ReqRef,
        step: StepName,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> bool {
        let h = node.hdr();
        if !runnable(h) {
            // The step closure is the user's (with what it captured).
            self.inner.panic.catch(move || drop(f));
            return false;
        }
        if reporting(&self.inner) {
            return self.run_step_reported(node, step, f);
        }
        h.raise(Flag::RUNNING);
        // SAFETY: the node is a `Node<T>` (the caller's contract above), it is
        // not borrowed (checked) and `RUNNING` is set for the step.
        let finished = unsafe { node.cell::<T>() }.step(self, node, f);
        self.req_put_back(node, finished);
        true
    }

    /// [`Context::run_step`] without reporting the step: for a waiter that
    /// a delivery resumes (the delivery reports the step, if it reports,
    /// see [`Context::run_completions`]).
    #[inline]
    pub(crate) fn run_step_unreported<T: Request>(
        &self,
        node: &ReqRef,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> bool {
        let h = node.hdr();
        if !runnable(h) {
            // The step closure is the user's (with what it captured).
            self.inner.panic.catch(move || drop(f));
            return false;
        }
        h.raise(Flag::RUNNING);
        // SAFETY: as in `run_step_in`.
        let finished = unsafe { node.cell::<T>() }.step(self, node, f);
        self.req_put_back(node, finished);
        true
    }

    /// [`Context::run_step_in`] while request points are reported: the
    /// step is reported first, and runs only if the hook left the request
    /// able to run it.
    #[cold]
    #[inline(never)]
    fn run_step_reported<T: Request>(
        &self,
        node: &ReqRef,
        step: StepName,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> bool {
        let h = node.hdr();
        let depth = self.inner.report_step(h, step);
        // The hook may have ended or dropped the request.
        if !runnable(h) {
            self.inner.hooks.req_depth.set(depth);
            self.inner.panic.catch(move || drop(f));
            return false;
        }
        h.raise(Flag::RUNNING);
        #[cfg(feature = "tracing")]
        let _entered = h.span.clone().entered();
        // SAFETY: as in `run_step_in`: a `Node<T>`, not borrowed, `RUNNING`.
        let finished = unsafe { node.cell::<T>() }.step(self, node, f);
        self.inner.hooks.req_depth.set(depth);
        self.req_put_back(node, finished);
        true
    }
}

/// Takes the result of a request owned by a handle and frees it. An
/// unfinished request is dropped and gives `InProgress`; one whose context
/// is gone gives `ContextGone`.
#[inline]
pub(crate) fn req_recv<T: Request>(node: ReqRef) -> Result<T::Output, ReqError<T::Error>> {
    let h = node.hdr();
    // A request owned by a handle is removed only by its context's teardown.
    let Some(ev) = h.context() else {
        return Err(ReqError::ContextGone);
    };
    if h.state.get() == ReqState::InProgress {
        let _scope = ev.enter();
        ev.req_drop_owned(node);
        return Err(ReqError::InProgress);
    }
    if reporting(&ev.inner) {
        return req_recv_reported::<T>(&ev, node);
    }
    // SAFETY: a `Req<T>` names a `Node<T>`; a finished request runs no
    // step, and no user code runs while the reference is used.
    let result = unsafe { node.cell::<T>() }
        .result
        .take()
        .expect("a finished request has a result");
    // A finished request already let go of its end time, subrequests and
    // queue entry: removing it is unlinking it. Nothing left in the node runs
    // user code when it is freed.
    ev.inner.reqs.live_unlink(h);
    h.raise(Flag::REMOVED);
    // SAFETY: a `Req<T>` names a `Node<T>`.
    unsafe { node.release::<T>(&ev.inner) };
    result
}

/// The end of [`req_recv`] while request points are reported: the
/// request's `Cleanup` is reported once it is gone (a panic of the hook is
/// raised as the call ends, and takes the result with it).
#[cold]
#[inline(never)]
fn req_recv_reported<T: Request>(
    ev: &Context,
    node: ReqRef,
) -> Result<T::Output, ReqError<T::Error>> {
    // SAFETY: as in `req_recv`.
    let result = unsafe { node.cell::<T>() }
        .result
        .take()
        .expect("a finished request has a result");
    let h = node.hdr();
    let about = About::of(h);
    ev.inner.reqs.live_unlink(h);
    h.raise(Flag::REMOVED);
    // SAFETY: a `Req<T>` names a `Node<T>`.
    unsafe { node.release::<T>(&ev.inner) };
    let scope = ev.enter();
    ev.inner.report_req(about, ReqPoint::Cleanup, 0, None);
    scope.end(result)
}

/// Whether a step (or a failure) may run now.
#[inline(always)]
fn runnable(h: &Header) -> bool {
    h.state.get() == ReqState::InProgress && !h.has(Flag::BUSY)
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
