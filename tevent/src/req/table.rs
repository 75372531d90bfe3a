//! Storage and bookkeeping of requests: the per-context table, the completion
//! queue, finishing, and iterative dropping of request trees.
//!
//! Every request is one slab entry (`ReqMeta`, untyped bookkeeping) plus one
//! heap allocation holding its typed part (`ReqCell<T>`: the user's state,
//! the result, the hooks). The typed part is taken out of the table while one
//! of the request's steps runs, so no table borrow is ever held across user
//! code.
//!
//! Notification is queued, never re-entrant: when a request finishes and
//! someone waits for it, its key goes into the completion queue, which the
//! loop drains after every handler (and before anything else in a step). The
//! queue's capacity is reserved when a wait is registered, so pushing to it
//! never allocates; chains of any depth are walked iteratively.

use std::any::Any;
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
}

/// The untyped view of a request's typed part.
pub(crate) trait ErasedCell: Any {
    /// Finishes the request with a runtime failure.
    fn fail(&mut self, why: Failure) -> ReqState;
    /// The request is being dropped unfinished: cleanup hook, then the state.
    fn discard(&mut self);
}

impl<T: Request> ErasedCell for [ReqCell<T>; 1] {
    fn fail(&mut self, why: Failure) -> ReqState {
        self[0].finish(Err(why.to_req()))
    }

    fn discard(&mut self) {
        self[0].drop_state(ReqState::Dropped);
    }
}

/// Resumes a waiter when the request it waits for has finished.
pub(crate) trait Resume {
    /// `parent` is the waiting request (`Key::NONE` for a top-level callback),
    /// `child` the finished one.
    fn resume(self: Box<Self>, ev: &Context, parent: Key, child: Key);
}

/// Who owns a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    /// A `Req<T>` handle.
    Handle,
    /// A parent request, which waits for it.
    Parent(Key),
    /// The context: a top-level request whose callback is pending.
    Context,
}

/// Subrequests owned by the runtime on behalf of a parent.
#[derive(Default)]
pub(crate) enum Children {
    #[default]
    None,
    One(Key),
    Many(Vec<Key>),
}

impl Children {
    fn try_push(&mut self, k: Key) -> Result<(), ()> {
        match self {
            Children::None => *self = Children::One(k),
            Children::One(a) => {
                let mut v = Vec::new();
                v.try_reserve(4).map_err(|_| ())?;
                v.push(*a);
                v.push(k);
                *self = Children::Many(v);
            }
            Children::Many(v) => {
                v.try_reserve(1).map_err(|_| ())?;
                v.push(k);
            }
        }
        Ok(())
    }

    fn remove(&mut self, k: Key) {
        match self {
            Children::One(a) if *a == k => *self = Children::None,
            Children::Many(v) => {
                if let Some(i) = v.iter().position(|c| *c == k) {
                    v.swap_remove(i);
                }
            }
            _ => {}
        }
    }

    fn take(&mut self) -> Children {
        std::mem::take(self)
    }

    fn for_each(&self, mut f: impl FnMut(Key)) {
        match self {
            Children::None => {}
            Children::One(a) => f(*a),
            Children::Many(v) => v.iter().copied().for_each(f),
        }
    }
}

/// Where a finished request is in the notification protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Notify {
    /// Nobody waits for it yet.
    Idle,
    /// A waiter is registered and the request has not finished.
    Waiting,
    /// It finished and its key is in the completion queue.
    Queued,
}

/// The untyped bookkeeping of one request (a slab entry).
pub(crate) struct ReqMeta {
    /// The typed part; `None` while one of its steps runs.
    pub(crate) cell: Option<Box<dyn ErasedCell>>,
    pub(crate) state: ReqState,
    pub(crate) owner: Owner,
    pub(crate) waiter: Option<Box<dyn Resume>>,
    pub(crate) notify: Notify,
    pub(crate) children: Children,
    pub(crate) endtime: Option<Key>,
    pub(crate) created: &'static Location<'static>,
    pub(crate) name: &'static str,
    pub(crate) profile: Option<Box<[crate::req::profile::Profile; 1]>>,
    pub(crate) queue: Option<crate::queue::QueueLink>,
    /// Set when the request was dropped while one of its own steps ran.
    pub(crate) zombie: bool,
    /// Marked for dropping; `next_doomed` links the pending drops.
    doomed: bool,
    next_doomed: Key,
}

impl ReqMeta {
    pub(crate) fn new(
        cell: Box<dyn ErasedCell>,
        created: &'static Location<'static>,
        name: &'static str,
    ) -> Self {
        ReqMeta {
            cell: Some(cell),
            state: ReqState::InProgress,
            owner: Owner::Handle,
            waiter: None,
            notify: Notify::Idle,
            children: Children::None,
            endtime: None,
            created,
            name,
            profile: None,
            queue: None,
            zombie: false,
            doomed: false,
            next_doomed: Key::NONE,
        }
    }
}

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
}

impl Default for ReqTable {
    fn default() -> Self {
        ReqTable {
            slab: Slab::default(),
            completions: VecDeque::new(),
            outstanding: 0,
            dropping: false,
            doomed_head: Key::NONE,
        }
    }
}

impl ReqTable {
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Reserves room in the completion queue for one more waiter.
    pub(crate) fn reserve_waiter(&mut self) -> Result<(), Failure> {
        let need = self.outstanding + 1;
        let extra = need.saturating_sub(self.completions.len());
        self.completions
            .try_reserve(extra)
            .map_err(|_| Failure::NoMemory)?;
        self.outstanding = need;
        Ok(())
    }

    /// Queues the notification of a finished, waited-for request.
    fn queue_notification(&mut self, key: Key) {
        // Capacity was reserved by `reserve_waiter`: this never allocates.
        self.completions.push_back(key);
    }

    /// Appends the runtime-owned subrequests of `key` to `out`.
    pub(crate) fn children_of(&self, key: Key, out: &mut Vec<Key>) {
        if let Some(m) = self.slab.get(key) {
            m.children.for_each(|c| out.push(c));
        }
    }

    /// Links `key` into the doomed list; false if it is gone or already doomed.
    fn doom(&mut self, key: Key) -> bool {
        let head = self.doomed_head;
        match self.slab.get_mut(key) {
            Some(m) if !m.doomed => {
                m.doomed = true;
                m.next_doomed = head;
                self.doomed_head = key;
                true
            }
            _ => false,
        }
    }

    fn pop_doomed(&mut self) -> Option<Key> {
        let key = self.doomed_head;
        let m = self.slab.get_mut(key)?;
        self.doomed_head = m.next_doomed;
        Some(key)
    }

    /// Everything, for context teardown (the caller drops it outside the borrow).
    pub(crate) fn take_all(&mut self) -> Vec<ReqMeta> {
        self.completions.clear();
        self.outstanding = 0;
        self.slab.drain()
    }
}

impl Context {
    /// Registers `child` as a subrequest of `parent`, resumed through `resume`
    /// when it finishes. On failure nothing is changed and `child` stays owned
    /// by the caller.
    pub(crate) fn req_wait(
        &self,
        parent: Key,
        child: Key,
        resume: Box<dyn Resume>,
    ) -> Result<(), Failure> {
        let mut t = self.inner.reqs.borrow_mut();
        if !t.slab.get(child).is_some_and(|m| m.owner == Owner::Handle) {
            // A handle always names a live request it owns; anything else is a
            // runtime invariant violation, reported as no memory would hang.
            debug_assert!(false, "waiting for a request the handle does not own");
            return Err(Failure::NoMemory);
        }
        t.reserve_waiter()?;
        if parent != Key::NONE {
            let pushed = t.slab.get_mut(parent).map(|p| p.children.try_push(child));
            if !matches!(pushed, Some(Ok(()))) {
                t.outstanding -= 1;
                return Err(Failure::NoMemory);
            }
        }
        let finished = {
            let m = t.slab.get_mut(child).expect("checked above");
            m.owner = if parent == Key::NONE {
                Owner::Context
            } else {
                Owner::Parent(parent)
            };
            m.waiter = Some(resume);
            if m.state == ReqState::InProgress {
                m.notify = Notify::Waiting;
                false
            } else {
                m.notify = Notify::Queued;
                true
            }
        };
        if finished {
            t.queue_notification(child);
            self.inner.req_pending.set(true);
        }
        Ok(())
    }

    /// Takes a child out of its parent's care and gives it to a handle.
    pub(crate) fn req_adopt(&self, child: Key) {
        let mut t = self.inner.reqs.borrow_mut();
        let Some(m) = t.slab.get_mut(child) else {
            return;
        };
        let owner = std::mem::replace(&mut m.owner, Owner::Handle);
        if let Owner::Parent(p) = owner
            && let Some(pm) = t.slab.get_mut(p)
        {
            pm.children.remove(child);
        }
    }

    /// Delivers queued notifications until the queue is empty. Returns whether
    /// any waiter ran.
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
                m.notify = Notify::Idle;
                let parent = match m.owner {
                    Owner::Parent(p) => p,
                    _ => Key::NONE,
                };
                (key, parent, resume)
            };
            resume.resume(self, parent, key);
            ran = true;
        }
    }

    /// Bookkeeping after a request reached a final state (its typed part has
    /// stored the result and dropped the state): disarm the end time, drop the
    /// runtime-owned subrequests, leave any queue, close the profile, and
    /// queue the notification of whoever waits.
    pub(crate) fn req_finished(&self, key: Key, reached: ReqState) {
        let (endtime, children, queue) = {
            let mut t = self.inner.reqs.borrow_mut();
            let Some(m) = t.slab.get_mut(key) else {
                return;
            };
            m.state = reached;
            let endtime = m.endtime.take();
            let children = m.children.take();
            let queue = m.queue.take();
            let notify = m.notify == Notify::Waiting;
            if notify {
                m.notify = Notify::Queued;
                t.queue_notification(key);
                self.inner.req_pending.set(true);
            }
            (endtime, children, queue)
        };
        self.profile_stop(key, reached);
        if let Some(timer) = endtime {
            self.timer_remove(timer);
        }
        // The subtree of a finished request has nothing left to do for it.
        children.for_each(|c| self.req_drop(c));
        if let Some(q) = queue {
            q.release(self);
        }
    }

    /// Finishes an in-progress request with a runtime failure (timeout, queue
    /// teardown). Returns false if it is not in progress or a step of it runs.
    pub(crate) fn req_fail(&self, key: Key, why: Failure) -> bool {
        let mut cell = {
            let mut t = self.inner.reqs.borrow_mut();
            let Some(m) = t.slab.get_mut(key) else {
                return false;
            };
            if m.state != ReqState::InProgress {
                return false;
            }
            let Some(c) = m.cell.take() else {
                return false;
            };
            c
        };
        let reached = cell.fail(why);
        self.req_put_back(key, cell, Some(reached));
        true
    }

    /// The end time of a request passed.
    pub(crate) fn req_timed_out(&self, key: Key) {
        self.req_fail(key, Failure::TimedOut);
    }

    /// Returns a request's typed part to the table after a step, and finishes
    /// the bookkeeping if the step finished it. A request dropped during its
    /// own step (a zombie) is dropped now, with its subtree.
    pub(crate) fn req_put_back(
        &self,
        key: Key,
        mut cell: Box<dyn ErasedCell>,
        finished: Option<ReqState>,
    ) {
        let zombie = {
            let mut t = self.inner.reqs.borrow_mut();
            match t.slab.get_mut(key) {
                Some(m) => {
                    m.cell = Some(cell);
                    std::mem::take(&mut m.zombie)
                }
                None => {
                    drop(t);
                    cell.discard();
                    return;
                }
            }
        };
        if zombie {
            self.req_drop(key);
        } else if let Some(reached) = finished {
            self.req_finished(key, reached);
        }
    }

    /// Drops a request and its whole subtree, iteratively: requests dropped
    /// while a drop is in progress (subrequests held in a dropped state, the
    /// runtime-owned children) join a list threaded through the table, so a
    /// 10 000-deep tree uses no extra stack and the drop allocates nothing.
    pub(crate) fn req_drop(&self, key: Key) {
        {
            let mut t = self.inner.reqs.borrow_mut();
            if !t.doom(key) || t.dropping {
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
                    // One of its steps is running: it is discarded when the step
                    // returns (see `req_put_back`).
                    let m = t.slab.get_mut(k).expect("live");
                    m.zombie = true;
                    m.doomed = false;
                    continue;
                }
                let m = t.slab.remove(k).expect("doomed entries are live");
                m.children.for_each(|c| {
                    t.doom(c);
                });
                if m.waiter.is_some() && m.notify == Notify::Waiting {
                    t.outstanding -= 1;
                }
                m
            };
            self.req_release(taken);
        }
    }

    /// Releases what a removed request held, outside any table borrow.
    fn req_release(&self, mut meta: ReqMeta) {
        if let Some(timer) = meta.endtime.take() {
            self.timer_remove(timer);
        }
        if let Some(q) = meta.queue.take() {
            q.release(self);
        }
        if let Some(mut c) = meta.cell.take() {
            if meta.state == ReqState::InProgress {
                c.discard();
            }
            drop(c);
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
        let mut cell = {
            let mut t = self.inner.reqs.borrow_mut();
            let Some(m) = t.slab.get_mut(key) else {
                return false;
            };
            if m.state != ReqState::InProgress {
                return false;
            }
            let Some(c) = m.cell.take() else {
                return false;
            };
            c
        };
        let finished = {
            let any: &mut dyn Any = &mut *cell;
            let typed = &mut any
                .downcast_mut::<[ReqCell<T>; 1]>()
                .expect("a request key always names a request of its type")[0];
            let ReqCell { state, hooks, .. } = typed;
            let state = state
                .as_mut()
                .expect("an in-progress request has its state");
            let mut ctl = Ctl::new(self, key, hooks);
            match f(state, &mut ctl) {
                Ok(Progress::Pending) => None,
                Ok(Progress::Done(out)) => Some(typed.finish(Ok(out))),
                Err(e) => Some(typed.finish(Err(e))),
            }
        };
        self.req_put_back(key, cell, finished);
        true
    }

    /// Name, state and creation place of a request (for `Debug`).
    pub(crate) fn req_describe(
        &self,
        key: Key,
    ) -> Option<(&'static str, ReqState, &'static Location<'static>)> {
        let t = self.inner.reqs.borrow();
        t.slab.get(key).map(|m| (m.name, m.state, m.created))
    }

    /// The state of a request, or `None` if it is gone.
    pub(crate) fn req_state(&self, key: Key) -> Option<ReqState> {
        self.inner.reqs.borrow().slab.get(key).map(|m| m.state)
    }
}
