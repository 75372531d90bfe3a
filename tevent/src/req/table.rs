//! Storage and bookkeeping of requests: the per-context table, the completion
//! queue, finishing, recycling of request cells, and iterative dropping of
//! request trees.
//!
//! Every request is one slab entry (`ReqMeta`, untyped bookkeeping, about 100
//! bytes) plus one heap cell holding its typed part (`ReqCell<T>`: the user's
//! state, the result, the hooks). The typed part is taken out of the table
//! while one of the request's steps runs, so no table borrow is ever held
//! across user code. Cells of received or dropped requests are kept in a small
//! per-type pool and reused, so a steady stream of requests of a few types
//! does not go through the allocator at all.
//!
//! The subrequests a parent waits for form an intrusive doubly linked list
//! through their entries: adding and removing one is O(1) and never
//! allocates, however many a parent waits for.
//!
//! Notification is queued, never re-entrant: when a request finishes and
//! someone waits for it, its key goes into the completion queue, which the
//! loop drains after every handler (and before anything else in a step). The
//! queue's capacity is reserved when a wait is registered, so pushing to it
//! never allocates; chains of any depth are walked iteratively.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::panic::Location;

use crate::context::Context;
use crate::req::{Ctl, Failure, ReqState, Request, StepResult};
use crate::slab::{Key, Slab};
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
pub type CleanupFn<T> = fn(&mut T, ReqState);
/// A cancel hook: returns `None` if cancellation cannot start, otherwise the
/// step result (usually `Pending`, or the request finished as cancelled).
pub type CancelFn<T> = fn(&mut T, &mut Ctl<'_, T>) -> Option<StepResult<T>>;

/// Hooks of a request, set through its [`Ctl`].
pub(crate) struct Hooks<T: Request> {
    pub(crate) cleanup: Option<CleanupFn<T>>,
    pub(crate) cancel: Option<CancelFn<T>>,
}

impl<T: Request> ReqCell<T> {
    pub(crate) fn new(state: T) -> Self {
        ReqCell {
            state: Some(state),
            result: None,
            hooks: Hooks {
                cleanup: None,
                cancel: None,
            },
        }
    }

    /// Stores the outcome, runs the cleanup hook and drops the state.
    pub(crate) fn finish(&mut self, r: Result<T::Output, ReqError<T::Error>>) -> ReqState {
        let reached = match &r {
            Ok(_) => ReqState::Done,
            Err(e) => e.state(),
        };
        self.result = Some(r);
        self.drop_state(reached);
        reached
    }

    /// Runs the cleanup hook (once) and drops the state.
    pub(crate) fn drop_state(&mut self, reached: ReqState) {
        if let Some(mut state) = self.state.take() {
            if let Some(cleanup) = self.hooks.cleanup.take() {
                cleanup(&mut state, reached);
            }
            drop(state);
        }
    }

    /// Runs `f` as a step; returns the state reached if it finished.
    pub(crate) fn step(
        &mut self,
        ev: &Context,
        key: Key,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Option<ReqState> {
        let ReqCell { state, hooks, .. } = self;
        let state = state
            .as_mut()
            .expect("an in-progress request has its state");
        let mut ctl = Ctl::new(ev, key, hooks);
        match f(state, &mut ctl) {
            Ok(Progress::Pending) => None,
            Ok(Progress::Done(out)) => Some(self.finish(Ok(out))),
            Err(e) => Some(self.finish(Err(e))),
        }
    }
}

/// The untyped view of a request's typed part.
pub(crate) trait ErasedCell: Any {
    /// Finishes the request with a runtime failure.
    fn fail(&mut self, why: Failure) -> ReqState;
    /// The request is being dropped unfinished: cleanup hook, then the state.
    fn discard(&mut self);
    /// Drops whatever the cell still holds (result, hooks) before reuse.
    fn clear(&mut self);
}

impl<T: Request> ErasedCell for [ReqCell<T>; 1] {
    fn fail(&mut self, why: Failure) -> ReqState {
        self[0].finish(Err(why.to_req()))
    }

    fn discard(&mut self) {
        self[0].drop_state(ReqState::Dropped);
    }

    fn clear(&mut self) {
        self[0].drop_state(ReqState::Dropped);
        self[0].result = None;
        self[0].hooks.cleanup = None;
        self[0].hooks.cancel = None;
    }
}

/// Resumes a waiter when the request it waits for has finished.
pub(crate) trait Resume {
    /// `parent` is the waiting request (`Key::NONE` for a top-level callback),
    /// `child` the finished one, already handed to a handle.
    fn resume(self: Box<Self>, ev: &Context, parent: Key, child: Key);
}

/// Who owns a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    /// A `Req<T>` handle.
    Handle,
    /// The parent in `ReqMeta::parent`, which waits for it.
    Parent,
    /// The context: a top-level request whose callback is pending.
    Context,
}

/// Where a request is in the notification protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Notify {
    /// Nobody waits for it yet.
    Idle,
    /// A waiter is registered and the request has not finished.
    Waiting,
    /// It finished and its key is in the completion queue (it was finished
    /// when the wait began, so it is not in its parent's list).
    Queued,
    /// It finished while linked into its parent's list and is queued.
    Linked,
}

/// Rarely used parts of a request, boxed so the common entry stays small.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) profile: Option<crate::req::profile::Profile>,
    pub(crate) queue: Option<crate::queue::QueueLink>,
}

/// The untyped bookkeeping of one request (a slab entry).
pub(crate) struct ReqMeta {
    /// The typed part; `None` while one of its steps runs.
    pub(crate) cell: Option<Box<dyn ErasedCell>>,
    pub(crate) waiter: Option<Box<dyn Resume>>,
    pub(crate) created: &'static Location<'static>,
    /// The request type's name, computed only when asked for (Debug, profiles).
    pub(crate) name: fn() -> &'static str,
    /// The waiting parent when `owner` is `Parent`.
    pub(crate) parent: Key,
    /// First of the runtime-owned subrequests (linked through `next`/`prev`).
    first_child: Key,
    /// Next sibling; for a doomed request, the next doomed one.
    next: Key,
    prev: Key,
    /// The end-time timer, or `Key::NONE`.
    pub(crate) endtime: Key,
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) state: ReqState,
    pub(crate) owner: Owner,
    notify: Notify,
    /// Dropped while one of its own steps ran.
    zombie: bool,
    doomed: bool,
    /// The request's span; entered while its steps run.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

/// Cells kept for reuse per type.
const POOL_PER_TYPE: usize = 64;
/// Types whose cells are pooled.
const POOL_TYPES: usize = 16;

/// All requests of a context.
pub(crate) struct ReqTable {
    pub(crate) slab: Slab<ReqMeta>,
    completions: VecDeque<Key>,
    /// Waiters registered and not yet consumed: the capacity the completion
    /// queue keeps reserved so that pushing never allocates.
    outstanding: usize,
    /// A drop is being processed; nested drops join the doomed list.
    dropping: bool,
    doomed_head: Key,
    pool: Vec<(TypeId, Vec<Box<dyn ErasedCell>>)>,
}

impl Default for ReqTable {
    fn default() -> Self {
        ReqTable {
            slab: Slab::default(),
            completions: VecDeque::new(),
            outstanding: 0,
            dropping: false,
            doomed_head: Key::NONE,
            pool: Vec::new(),
        }
    }
}

impl ReqTable {
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Reserves room in the completion queue for one more waiter.
    #[inline]
    fn reserve_waiter(&mut self) -> Result<(), Failure> {
        let need = self.outstanding + 1;
        if self.completions.capacity() < need {
            let extra = need - self.completions.len();
            self.completions
                .try_reserve(extra)
                .map_err(|_| Failure::NoMemory)?;
        }
        self.outstanding = need;
        Ok(())
    }

    /// Queues the notification of a finished, waited-for request.
    #[inline]
    fn queue_notification(&mut self, key: Key) {
        // Capacity was reserved by `reserve_waiter`: this never allocates.
        self.completions.push_back(key);
    }

    /// Appends the runtime-owned subrequests of `key` to `out`.
    pub(crate) fn children_of(&self, key: Key, out: &mut Vec<Key>) {
        let mut c = self.slab.get(key).map_or(Key::NONE, |m| m.first_child);
        while let Some(m) = self.slab.get(c) {
            out.push(c);
            c = m.next;
        }
    }

    /// Puts `child` at the head of `parent`'s subrequest list; returns
    /// whether the parent is profiled (the caller needs both).
    #[inline]
    fn link_child(&mut self, parent: Key, child: Key) -> bool {
        let Some(p) = self.slab.get_mut(parent) else {
            return false;
        };
        let first = std::mem::replace(&mut p.first_child, child);
        let profiled = p.extra.as_ref().is_some_and(|e| e.profile.is_some());
        if first != Key::NONE
            && let Some(f) = self.slab.get_mut(first)
        {
            f.prev = child;
        }
        let c = self.slab.get_mut(child).expect("live child");
        c.parent = parent;
        c.prev = Key::NONE;
        c.next = first;
        profiled
    }

    #[inline]
    fn unlink_child(&mut self, child: Key) {
        let Some(c) = self.slab.get_mut(child) else {
            return;
        };
        let (parent, prev, next) = (c.parent, c.prev, c.next);
        c.parent = Key::NONE;
        c.prev = Key::NONE;
        c.next = Key::NONE;
        match self.slab.get_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if let Some(p) = self.slab.get_mut(parent) {
                    p.first_child = next;
                }
            }
        }
        if let Some(n) = self.slab.get_mut(next) {
            n.prev = prev;
        }
    }

    /// Links `key` into the doomed list; false if it is gone or already doomed.
    fn doom(&mut self, key: Key) -> bool {
        let head = self.doomed_head;
        match self.slab.get_mut(key) {
            Some(m) if !m.doomed => {
                m.doomed = true;
                m.next = head;
                self.doomed_head = key;
                true
            }
            _ => false,
        }
    }

    /// Dooms every request of a sibling list.
    fn doom_list(&mut self, first: Key) {
        let mut k = first;
        while let Some(m) = self.slab.get(k) {
            let next = m.next;
            self.doom(k);
            k = next;
        }
    }

    fn pop_doomed(&mut self) -> Option<Key> {
        let key = self.doomed_head;
        let m = self.slab.get_mut(key)?;
        self.doomed_head = m.next;
        Some(key)
    }

    /// A recycled cell of type `id`, if one is pooled.
    #[inline]
    fn pool_take(&mut self, id: TypeId) -> Option<Box<dyn ErasedCell>> {
        self.pool.iter_mut().find(|(t, _)| *t == id)?.1.pop()
    }

    /// Keeps a cleared cell for reuse (or lets it go if the pool is full).
    #[inline]
    fn pool_put(&mut self, cell: Box<dyn ErasedCell>) -> Option<Box<dyn ErasedCell>> {
        let id = (*cell).type_id();
        if let Some((_, v)) = self.pool.iter_mut().find(|(t, _)| *t == id) {
            if v.len() < POOL_PER_TYPE && v.try_reserve(1).is_ok() {
                v.push(cell);
                return None;
            }
            return Some(cell);
        }
        if self.pool.len() < POOL_TYPES && self.pool.try_reserve(1).is_ok() {
            let mut v = Vec::new();
            if v.try_reserve(POOL_PER_TYPE).is_ok() {
                v.push(cell);
                self.pool.push((id, v));
                return None;
            }
        }
        Some(cell)
    }

    /// Everything, for context teardown (the caller drops it outside the borrow).
    pub(crate) fn take_all(&mut self) -> (Vec<ReqMeta>, Vec<Box<dyn ErasedCell>>) {
        self.completions.clear();
        self.outstanding = 0;
        let pooled = self.pool.drain(..).flat_map(|(_, v)| v).collect();
        (self.slab.drain(), pooled)
    }
}

/// Moves the result out of a finished request's cell.
fn take_result<T: Request>(
    cell: &mut Box<dyn ErasedCell>,
) -> Result<T::Output, ReqError<T::Error>> {
    let any: &mut dyn Any = &mut **cell;
    any.downcast_mut::<[ReqCell<T>; 1]>()
        .expect("a request key always names a request of its type")[0]
        .result
        .take()
        .expect("a finished request has a result")
}

impl Context {
    /// Creates the entry of a request whose typed part is `cell` (of type
    /// `T`), runs `first` as its first step, and stores the cell. Returns the
    /// key, or `None` if the entry could not be allocated.
    pub(crate) fn req_create<T: Request>(
        &self,
        state: T,
        created: &'static Location<'static>,
        first: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Option<Key> {
        let (mut cell, key) = {
            let mut t = self.inner.reqs.borrow_mut();
            let cell: Box<[ReqCell<T>; 1]> = match t.pool_take(TypeId::of::<[ReqCell<T>; 1]>()) {
                Some(c) => {
                    let any: Box<dyn Any> = c;
                    let mut b = any.downcast::<[ReqCell<T>; 1]>().expect("pooled by type");
                    b[0] = ReqCell::new(state);
                    b
                }
                None => match crate::alloc::try_box(ReqCell::new(state)) {
                    Ok(b) => b,
                    Err(_) => return None,
                },
            };
            let meta = ReqMeta {
                cell: None, // taken: the first step runs now
                waiter: None,
                created,
                name: T::name,
                parent: Key::NONE,
                first_child: Key::NONE,
                next: Key::NONE,
                prev: Key::NONE,
                endtime: Key::NONE,
                extra: None,
                state: ReqState::InProgress,
                owner: Owner::Handle,
                notify: Notify::Idle,
                zombie: false,
                doomed: false,
                #[cfg(feature = "tracing")]
                span: tracing::trace_span!(
                    "request",
                    name = T::name(),
                    created = %created
                ),
            };
            match t.slab.try_insert(meta) {
                Ok(key) => (cell, key),
                Err(_) => return None,
            }
        };
        #[cfg(feature = "tracing")]
        let _entered = self.req_span(key).entered();
        let finished = cell[0].step(self, key, first);
        self.req_put_back(key, cell, finished);
        Some(key)
    }

    /// Registers `child` as waited for by `parent` (`Key::NONE`: a top-level
    /// callback), resumed through `resume` when it finishes. Returns whether
    /// the parent is profiled. On failure nothing changed and the caller still
    /// owns `child`.
    #[inline]
    pub(crate) fn req_wait(
        &self,
        parent: Key,
        child: Key,
        resume: Box<dyn Resume>,
    ) -> Result<bool, Failure> {
        let mut t = self.inner.reqs.borrow_mut();
        t.reserve_waiter()?;
        let finished = match t.slab.get_mut(child) {
            // A live handle always owns its request; anything else would hang.
            Some(m) if m.owner == Owner::Handle => {
                m.owner = if parent == Key::NONE {
                    Owner::Context
                } else {
                    Owner::Parent
                };
                m.waiter = Some(resume);
                let finished = m.state != ReqState::InProgress;
                m.notify = if finished {
                    Notify::Queued
                } else {
                    Notify::Waiting
                };
                finished
            }
            _ => {
                t.outstanding -= 1;
                return Err(Failure::NoMemory);
            }
        };
        if finished {
            // Already finished: it sits in the completion queue until its
            // parent's step takes it, and is never linked into the parent's
            // list (if the parent is gone by then, the drain drops it).
            t.queue_notification(child);
            self.inner.req_pending.set(true);
            if parent != Key::NONE {
                t.slab.get_mut(child).expect("checked").parent = parent;
                return Ok(t
                    .slab
                    .get(parent)
                    .is_some_and(|p| p.extra.as_ref().is_some_and(|e| e.profile.is_some())));
            }
            return Ok(false);
        }
        Ok(parent != Key::NONE && t.link_child(parent, child))
    }

    /// Delivers queued notifications until the queue is empty. Returns whether
    /// any waiter ran. Each finished child is handed to a handle (taken out of
    /// its parent's care) before its waiter runs.
    #[inline]
    pub(crate) fn run_completions(&self) -> bool {
        let mut ran = false;
        loop {
            let (key, parent, resume) = {
                let mut t = self.inner.reqs.borrow_mut();
                let Some(key) = t.completions.pop_front() else {
                    self.inner.req_pending.set(false);
                    return ran;
                };
                t.outstanding -= 1;
                let Some(m) = t.slab.get_mut(key) else {
                    continue; // dropped after it was queued
                };
                let Some(resume) = m.waiter.take() else {
                    continue;
                };
                // Linked into its parent's list only if it was waited for
                // while in progress.
                let linked = m.notify == Notify::Linked;
                m.notify = Notify::Idle;
                let parent = match m.owner {
                    Owner::Parent => m.parent,
                    _ => Key::NONE,
                };
                m.owner = Owner::Handle;
                if linked {
                    t.unlink_child(key);
                } else if parent != Key::NONE
                    && !t
                        .slab
                        .get(parent)
                        .is_some_and(|p| p.state == ReqState::InProgress)
                {
                    // Its parent went away (or finished) before it could be
                    // told: the subrequest goes with it.
                    drop(t);
                    drop(resume);
                    self.req_drop(key);
                    continue;
                }
                (key, parent, resume)
            };
            resume.resume(self, parent, key);
            ran = true;
        }
    }

    /// Takes the typed part of an in-progress request out of the table, to run
    /// a step or finish it; `None` if it is gone, finished, or a step of it
    /// runs already.
    #[inline]
    fn req_take_cell(&self, key: Key) -> Option<Box<dyn ErasedCell>> {
        let mut t = self.inner.reqs.borrow_mut();
        let m = t.slab.get_mut(key)?;
        if m.state != ReqState::InProgress {
            return None;
        }
        m.cell.take()
    }

    /// Finishes an in-progress request with a runtime failure (timeout, queue
    /// teardown). Returns false if it is not in progress or a step of it runs.
    pub(crate) fn req_fail(&self, key: Key, why: Failure) -> bool {
        let Some(mut cell) = self.req_take_cell(key) else {
            return false;
        };
        let reached = cell.fail(why);
        self.req_put_back(key, cell, Some(reached));
        true
    }

    /// The end time of a request passed.
    pub(crate) fn req_timed_out(&self, key: Key) {
        self.req_fail(key, Failure::TimedOut);
    }

    /// Returns a request's typed part to the table after a step. If the step
    /// finished the request, this also disarms its end time, drops the
    /// subrequests it still owned, leaves its queue, closes its profile and
    /// queues the notification of whoever waits, all in one table access. A
    /// request dropped during its own step (a zombie) is dropped now.
    #[inline]
    pub(crate) fn req_put_back(
        &self,
        key: Key,
        cell: Box<dyn ErasedCell>,
        finished: Option<ReqState>,
    ) {
        let (endtime, children, extra) = {
            let mut t = self.inner.reqs.borrow_mut();
            let Some(m) = t.slab.get_mut(key) else {
                drop(t);
                let mut cell = cell;
                cell.discard();
                return;
            };
            m.cell = Some(cell);
            let zombie = m.zombie;
            let Some(reached) = finished.filter(|_| !zombie) else {
                if zombie {
                    m.zombie = false;
                    drop(t);
                    self.req_drop(key);
                }
                return;
            };
            m.state = reached;
            let endtime = std::mem::replace(&mut m.endtime, Key::NONE);
            let children = std::mem::replace(&mut m.first_child, Key::NONE);
            let extra = m.extra.is_some();
            if m.notify == Notify::Waiting {
                m.notify = if m.owner == Owner::Parent {
                    Notify::Linked
                } else {
                    Notify::Queued
                };
                t.queue_notification(key);
                self.inner.req_pending.set(true);
            }
            if children != Key::NONE {
                t.doom_list(children);
            }
            (endtime, children, extra)
        };
        if extra {
            self.profile_stop(key, finished.expect("finished"));
            let link = self
                .inner
                .reqs
                .borrow_mut()
                .slab
                .get_mut(key)
                .and_then(|m| m.extra.as_mut())
                .and_then(|e| e.queue.take());
            if let Some(q) = link {
                q.release(self);
            }
        }
        if endtime != Key::NONE {
            self.timer_remove(endtime);
        }
        // The subtree of a finished request has nothing left to do for it.
        if children != Key::NONE {
            self.req_drain_doomed();
        }
    }

    /// Drops a request and its whole subtree (see [`Context::req_drain_doomed`]).
    #[inline]
    pub(crate) fn req_drop(&self, key: Key) {
        self.inner.reqs.borrow_mut().doom(key);
        self.req_drain_doomed();
    }

    /// Removes every doomed request, iteratively: requests dropped while this
    /// runs (subrequests held in a dropped state, the runtime-owned children)
    /// join the doomed list threaded through the table, so a 10 000-deep tree
    /// uses no extra stack and dropping allocates nothing.
    fn req_drain_doomed(&self) {
        {
            let mut t = self.inner.reqs.borrow_mut();
            if t.dropping || t.doomed_head == Key::NONE {
                return;
            }
            t.dropping = true;
        }
        loop {
            let taken = {
                let mut t = self.inner.reqs.borrow_mut();
                let Some(k) = t.pop_doomed() else {
                    t.dropping = false;
                    return;
                };
                let busy = t.slab.get(k).is_some_and(|m| m.cell.is_none());
                if busy {
                    // One of its steps is running: it is dropped when the step
                    // returns (see `req_put_back`).
                    let m = t.slab.get_mut(k).expect("live");
                    m.zombie = true;
                    m.doomed = false;
                    continue;
                }
                let m = t.slab.remove(k).expect("doomed entries are live");
                if m.first_child != Key::NONE {
                    t.doom_list(m.first_child);
                }
                if m.waiter.is_some() && m.notify == Notify::Waiting {
                    t.outstanding -= 1;
                }
                m
            };
            self.req_release(taken);
        }
    }

    /// Releases what a removed request held, outside any table borrow, and
    /// recycles its cell.
    fn req_release(&self, mut meta: ReqMeta) {
        if meta.endtime != Key::NONE {
            self.timer_remove(meta.endtime);
        }
        if let Some(q) = meta.extra.as_mut().and_then(|e| e.queue.take()) {
            q.release(self);
        }
        if let Some(mut c) = meta.cell.take() {
            c.clear(); // cleanup hook (if unfinished), state and result dropped here
            let rejected = self.inner.reqs.borrow_mut().pool_put(c);
            drop(rejected);
        }
        drop(meta);
    }

    /// Runs one step of request `key` (of type `T`): `f` gets the state and a
    /// [`Ctl`]. Returns false if the request is gone, finished, or already
    /// running a step.
    pub(crate) fn run_step<T: Request>(
        &self,
        key: Key,
        f: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> bool {
        let Some(mut cell) = self.req_take_cell(key) else {
            return false;
        };
        #[cfg(feature = "tracing")]
        let _entered = self.req_span(key).entered();
        let finished = {
            let any: &mut dyn Any = &mut *cell;
            let typed = any
                .downcast_mut::<[ReqCell<T>; 1]>()
                .expect("a request key always names a request of its type");
            typed[0].step(self, key, f)
        };
        self.req_put_back(key, cell, finished);
        true
    }

    /// Takes a finished request's result; the entry is freed and the cell
    /// recycled. An unfinished request is dropped and gives `InProgress`.
    pub(crate) fn req_recv<T: Request>(&self, key: Key) -> Result<T::Output, ReqError<T::Error>> {
        let mut t = self.inner.reqs.borrow_mut();
        let plain = match t.slab.get_mut(key) {
            Some(m) if m.state != ReqState::InProgress && m.cell.is_some() => {
                m.endtime == Key::NONE && m.extra.is_none()
            }
            _ => {
                drop(t);
                self.req_drop(key);
                return Err(ReqError::InProgress);
            }
        };
        if !plain {
            // An end time or queue link to release: the general path.
            let mut meta = t.slab.remove(key).expect("checked");
            drop(t);
            let result = take_result::<T>(meta.cell.as_mut().expect("checked"));
            self.req_release(meta);
            return result;
        }
        let mut cell = t
            .slab
            .get_mut(key)
            .and_then(|m| m.cell.take())
            .expect("checked");
        t.slab.vacate(key);
        // Finished: the state is already gone, so clearing runs no user code
        // and the cell can be recycled under this same borrow.
        let result = take_result::<T>(&mut cell);
        cell.clear();
        let rejected = t.pool_put(cell);
        drop(t);
        drop(rejected);
        result
    }

    /// Name, state and creation place of a request (for `Debug`).
    pub(crate) fn req_describe(
        &self,
        key: Key,
    ) -> Option<(&'static str, ReqState, &'static Location<'static>)> {
        let t = self.inner.reqs.borrow();
        t.slab.get(key).map(|m| ((m.name)(), m.state, m.created))
    }

    /// A clone of the request's span (to enter while a step runs).
    #[cfg(feature = "tracing")]
    fn req_span(&self, key: Key) -> tracing::Span {
        self.inner
            .reqs
            .borrow()
            .slab
            .get(key)
            .map_or_else(tracing::Span::none, |m| m.span.clone())
    }

    /// The state of a request, or `None` if it is gone.
    #[inline]
    pub(crate) fn req_state(&self, key: Key) -> Option<ReqState> {
        self.inner.reqs.borrow().slab.get(key).map(|m| m.state)
    }
}
