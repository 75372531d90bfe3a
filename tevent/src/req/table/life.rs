//! A request's life on the table, as `Context` methods: creating a request
//! and running its first step, waiting for a subrequest, delivering
//! completions, failing and timing out, dropping and releasing nodes,
//! running steps; and receiving the output (`req_recv`).

use std::panic::Location;

use crate::ReqError;
use crate::context::{Context, MAX_NOTIFICATIONS_PER_STEP};
use crate::req::hooks::{About, StepName, reporting};
use crate::req::node::{Flag, Header, NodePtr, ReqRef, hdr};
use crate::req::step::{Next, StartCtl};
use crate::req::waiter::Resume;
use crate::req::{Ctl, Failure, ReqState, Request, StepResult};
use crate::slab::Key;
use crate::trace::ReqPoint;

use super::{Owner, ReqCell, is_profiled, link_child, unlink_child, waits_under};

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
