//! Immediate events: handlers that run "as soon as possible", one per loop step,
//! in FIFO order, ahead of timers and fds.
//!
//! The queue is an intrusive doubly linked list threaded through the slab, so
//! scheduling, rescheduling (which moves an event to the tail, as in tevent)
//! and cancelling are O(1) and allocate nothing once the slab has grown.

use std::rc::Weak;

use crate::Error;
use crate::context::{Context, Inner, upgrade};
use crate::panic::run_handler;
use crate::slab::{Key, Slab};
use crate::trace::{EventKind, EventPoint};

/// The handler of a reusable immediate event.
pub(crate) type ImmediateFn = Box<dyn FnMut(&Context, &ImmediateRef<'_>)>;

pub(crate) enum ImmHandler {
    /// A reusable immediate owned by an [`Immediate`] handle.
    User(ImmediateFn),
    /// A fire-and-forget closure from [`Context::post`] or a [`crate::Remote`].
    Once(Box<dyn FnOnce(&Context)>),
}

pub(crate) struct ImmEntry {
    /// `None` while the handler runs.
    handler: Option<ImmHandler>,
    prev: Key,
    next: Key,
    queued: bool,
    /// Reported attached to the trace hook and not detached since: queued,
    /// or running its handler.
    traced: bool,
    tag: u64,
}

impl ImmEntry {
    fn new(handler: ImmHandler) -> ImmEntry {
        ImmEntry {
            handler: Some(handler),
            prev: Key::NONE,
            next: Key::NONE,
            queued: false,
            traced: false,
            tag: 0,
        }
    }

    /// Marks the event detached; its tag if it was attached.
    fn untrace(&mut self) -> Option<u64> {
        std::mem::replace(&mut self.traced, false).then_some(self.tag)
    }
}

/// The FIFO of scheduled immediates plus the storage of all immediates.
#[derive(Default)]
pub(crate) struct ImmediateQueue {
    slab: Slab<ImmEntry>,
    head: Option<Key>,
    tail: Option<Key>,
    queued: usize,
}

impl ImmediateQueue {
    pub(crate) fn scheduled(&self) -> usize {
        self.queued
    }

    pub(crate) fn entries(&self) -> usize {
        self.slab.len()
    }

    /// Appends a live, unqueued immediate; returns its tag.
    #[inline]
    fn link_tail(&mut self, key: Key) -> u64 {
        let old_tail = self.tail;
        let e = self.slab.get_mut(key).expect("linking a live immediate");
        // Linked twice, the FIFO would loop: a real check.
        if e.queued {
            return e.tag;
        }
        e.queued = true;
        e.prev = old_tail.unwrap_or(Key::NONE);
        e.next = Key::NONE;
        let tag = e.tag;
        match old_tail {
            Some(t) => self.slab.get_mut(t).expect("tail is live").next = key,
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        self.queued += 1;
        tag
    }

    /// Unlinks `key` if it is queued; returns whether it was.
    fn unlink(&mut self, key: Key) -> bool {
        let Some(e) = self.slab.get_mut(key) else {
            return false;
        };
        if !e.queued {
            return false;
        }
        e.queued = false;
        let (prev, next) = (e.prev, e.next);
        match self.slab.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = (next != Key::NONE).then_some(next),
        }
        match self.slab.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = (prev != Key::NONE).then_some(prev),
        }
        self.queued -= 1;
        true
    }

    /// Unlinks the head and takes its handler out (it is put back after it
    /// runs, also if it panics). Returns the key, the handler and the tag.
    #[inline(always)]
    fn pop_front(&mut self) -> Option<(Key, Option<ImmHandler>, u64)> {
        let key = self.head?;
        let e = self.slab.get_mut(key).expect("head is live");
        e.queued = false;
        let next = e.next;
        let handler = e.handler.take();
        let tag = e.tag;
        if next == Key::NONE {
            self.head = None;
            self.tail = None;
        } else {
            self.slab.get_mut(next).expect("linked").prev = Key::NONE;
            self.head = Some(next);
        }
        self.queued -= 1;
        Some((key, handler, tag))
    }

    /// Every handler, taken out for dropping outside the borrow.
    pub(crate) fn take_all(&mut self) -> Vec<ImmHandler> {
        self.head = None;
        self.tail = None;
        self.queued = 0;
        self.slab
            .drain()
            .into_iter()
            .filter_map(|e| e.handler)
            .collect()
    }
}

impl Context {
    /// Creates an immediate event with `handler`, not yet scheduled.
    ///
    /// Call [`Immediate::schedule`] to queue it; the handler then runs once, from
    /// the loop, and may schedule its own immediate again through the
    /// [`ImmediateRef`] it receives. Dropping the [`Immediate`] removes the event,
    /// also from inside any handler.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let runs = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let r = runs.clone();
    /// let imm = ev.add_immediate(move |_, me| {
    ///     r.set(r.get() + 1);
    ///     if r.get() < 2 {
    ///         me.schedule(); // once more, behind what is queued
    ///     }
    /// });
    /// imm.schedule()?;
    /// ev.loop_wait()?;
    /// assert_eq!(runs.get(), 2);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_immediate(
        &self,
        handler: impl FnMut(&Context, &ImmediateRef<'_>) + 'static,
    ) -> Immediate {
        let key = self
            .inner
            .imm
            .borrow_mut()
            .slab
            .insert(ImmEntry::new(ImmHandler::User(Box::new(handler))));
        Immediate {
            ctx: self.weak(),
            key,
        }
    }

    /// Runs `f` once, from the loop, as an immediate event (at the tail of the
    /// immediate FIFO). There is no handle: the closure always runs unless the
    /// context is dropped first, in which case it is dropped unrun.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let l = log.clone();
    ///     ev.post(move |_ev| l.borrow_mut().push(i));
    /// }
    /// ev.loop_wait()?;
    /// assert_eq!(*log.borrow(), [0, 1, 2]); // FIFO
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn post(&self, f: impl FnOnce(&Context) + 'static) {
        let _scope = self.enter();
        self.post_boxed(Box::new(f));
    }

    pub(crate) fn post_boxed(&self, f: Box<dyn FnOnce(&Context)>) {
        let mut q = self.inner.imm.borrow_mut();
        let key = q.slab.insert(ImmEntry::new(ImmHandler::Once(f)));
        q.link_tail(key);
        q.slab.get_mut(key).expect("inserted").traced = true;
        drop(q);
        self.inner
            .trace_event(EventKind::Immediate, EventPoint::Attach, key.to_u64(), 0);
    }

    /// Schedules the immediate named by `key` (from [`Immediate::key_u64`]);
    /// false if it is gone. Keys are generational, so a key kept after its
    /// event was removed never reaches another event.
    pub(crate) fn schedule_immediate_key(&self, key: u64) -> bool {
        self.imm_schedule(Key::from_u64(key))
    }

    /// Queues (or moves to the tail) the immediate; false if it is gone. An
    /// event still attached (queued, or running its handler) is reported
    /// detached first, as C tevent does when it re-arms.
    #[inline]
    fn imm_schedule(&self, key: Key) -> bool {
        let mut q = self.inner.imm.borrow_mut();
        let tail = q.tail;
        let Some(e) = q.slab.get_mut(key) else {
            return false;
        };
        let was_traced = std::mem::replace(&mut e.traced, true);
        let tag = if e.queued {
            q.unlink(key);
            q.link_tail(key)
        } else {
            // The common case, inlined: one lookup for the entry, one for the tail.
            e.queued = true;
            e.prev = tail.unwrap_or(Key::NONE);
            e.next = Key::NONE;
            let tag = e.tag;
            match tail {
                Some(t) => q.slab.get_mut(t).expect("tail is live").next = key,
                None => q.head = Some(key),
            }
            q.tail = Some(key);
            q.queued += 1;
            tag
        };
        drop(q);
        let inner = &*self.inner;
        if inner.hooks.has_event.get() {
            if was_traced {
                inner.trace_event(EventKind::Immediate, EventPoint::Detach, key.to_u64(), tag);
            }
            inner.trace_event(EventKind::Immediate, EventPoint::Attach, key.to_u64(), tag);
        }
        true
    }

    fn imm_cancel(&self, key: Key) -> bool {
        let mut q = self.inner.imm.borrow_mut();
        let was = q.unlink(key);
        let detach = q.slab.get_mut(key).and_then(ImmEntry::untrace);
        drop(q);
        if let Some(tag) = detach {
            self.inner
                .trace_event(EventKind::Immediate, EventPoint::Detach, key.to_u64(), tag);
        }
        was
    }

    fn imm_is_scheduled(&self, key: Key) -> bool {
        self.inner
            .imm
            .borrow()
            .slab
            .get(key)
            .is_some_and(|e| e.queued)
    }

    fn imm_tag(&self, key: Key) -> u64 {
        self.inner.imm.borrow().slab.get(key).map_or(0, |e| e.tag)
    }

    fn imm_set_tag(&self, key: Key, tag: u64) {
        if let Some(e) = self.inner.imm.borrow_mut().slab.get_mut(key) {
            e.tag = tag;
        }
    }

    fn imm_remove(&self, key: Key) {
        let mut q = self.inner.imm.borrow_mut();
        q.unlink(key);
        let entry = q.slab.remove(key);
        drop(q);
        if let Some(tag) = entry.as_ref().and_then(|e| e.traced.then_some(e.tag)) {
            self.inner
                .trace_event(EventKind::Immediate, EventPoint::Detach, key.to_u64(), tag);
        }
        // The handler (and whatever it captured) is dropped here, outside the borrow.
        self.inner.drop_handler(entry);
    }

    /// Runs the head of the immediate FIFO, if any. Returns whether one ran.
    #[inline(always)]
    pub(crate) fn run_one_immediate(&self) -> bool {
        let inner = &*self.inner;
        let Some((key, handler, tag)) = inner.imm.borrow_mut().pop_front() else {
            return false;
        };
        if inner.trace_before_handler(EventKind::Immediate, key.to_u64(), tag)
            && inner.imm.borrow().slab.get(key).is_none()
        {
            // Removed by the hook: never called.
            drop(handler);
            return true;
        }
        match handler {
            // The handler goes back into its event (and the end of this run is
            // reported) when it returns or panics.
            Some(ImmHandler::User(f)) => {
                let f = run_handler(
                    f,
                    |f| self.imm_ran(key, f),
                    |f| f(self, &ImmediateRef { ctx: self, key }),
                );
                self.imm_ran(key, f);
            }
            Some(ImmHandler::Once(f)) => {
                inner.imm.borrow_mut().slab.remove(key);
                let _detach = OnceDetach { ev: self, key, tag };
                f(self);
            }
            None => {}
        }
        true
    }

    /// Ends a run of a reusable immediate: puts its handler back (or drops
    /// it if the handle went meanwhile) and reports it detached unless it was
    /// scheduled again.
    #[inline(always)]
    fn imm_ran(&self, key: Key, handler: ImmediateFn) {
        let mut q = self.inner.imm.borrow_mut();
        let (leftover, detach) = match q.slab.get_mut(key) {
            Some(e) => {
                e.handler = Some(ImmHandler::User(handler));
                (None, if e.queued { None } else { e.untrace() })
            }
            None => (Some(handler), None),
        };
        drop(q);
        if let Some(tag) = detach {
            self.inner
                .trace_event(EventKind::Immediate, EventPoint::Detach, key.to_u64(), tag);
        }
        drop(leftover);
    }

    /// Reports every immediate still attached as detached (the context is
    /// being dropped).
    pub(crate) fn immediates_detach_all(inner: &Inner) {
        let q = inner.imm.borrow();
        let attached = q.slab.iter().filter(|(_, e)| e.traced);
        let attached = attached.map(|(k, e)| (k.to_u64(), e.tag)).collect();
        drop(q);
        inner.trace_detach_all(EventKind::Immediate, attached);
    }
}

/// Reports a posted closure detached once it ran (or panicked).
struct OnceDetach<'a> {
    ev: &'a Context,
    key: Key,
    tag: u64,
}

impl Drop for OnceDetach<'_> {
    fn drop(&mut self) {
        self.ev.inner.trace_event(
            EventKind::Immediate,
            EventPoint::Detach,
            self.key.to_u64(),
            self.tag,
        );
    }
}

/// An immediate event, owned: dropping it removes the event.
///
/// Created by [`Context::add_immediate`].
///
/// ```
/// let ev = tevent::Context::new()?;
/// let imm = ev.add_immediate(|_, _| unreachable!("cancelled"));
/// imm.schedule()?;
/// assert!(imm.is_scheduled());
/// assert!(imm.cancel());
/// ev.loop_wait()?; // nothing left
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping an Immediate removes the event"]
pub struct Immediate {
    ctx: Weak<Inner>,
    key: Key,
}

/// A borrowed view of an immediate event, given to its handler.
///
/// ```
/// let ev = tevent::Context::new()?;
/// let imm = ev.add_immediate(|_, me: &tevent::ImmediateRef<'_>| {
///     assert!(!me.is_scheduled()); // it is running
///     me.set_tag(7);
/// });
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(imm.tag(), 7);
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct ImmediateRef<'a> {
    ctx: &'a Context,
    key: Key,
}

impl ImmediateRef<'_> {
    /// Queues the event at the tail of the immediate FIFO; if it is already
    /// queued it moves to the tail (tevent's rescheduling rule).
    pub fn schedule(&self) {
        // The event is live while its handler runs, unless the handler dropped
        // its own handle, in which case there is nothing to schedule.
        self.ctx.imm_schedule(self.key);
    }

    /// Removes the event from the queue; returns whether it was queued.
    pub fn cancel(&self) -> bool {
        self.ctx.imm_cancel(self.key)
    }

    /// Whether the event is queued.
    pub fn is_scheduled(&self) -> bool {
        self.ctx.imm_is_scheduled(self.key)
    }

    /// The event's tag (0 unless set).
    pub fn tag(&self) -> u64 {
        self.ctx.imm_tag(self.key)
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        self.ctx.imm_set_tag(self.key, tag)
    }
}

impl Immediate {
    /// The event's key, as a plain number another thread can carry (see
    /// [`Context::schedule_immediate_key`]).
    pub(crate) fn key_u64(&self) -> u64 {
        self.key.to_u64()
    }

    /// Queues the event at the tail of the immediate FIFO; if it is already
    /// queued it moves to the tail (tevent's rescheduling rule).
    pub fn schedule(&self) -> Result<(), Error> {
        let c = upgrade(&self.ctx)?;
        let _scope = c.enter();
        if c.imm_schedule(self.key) {
            Ok(())
        } else {
            Err(Error::EventGone)
        }
    }

    /// Removes the event from the queue; returns whether it was queued.
    pub fn cancel(&self) -> bool {
        upgrade(&self.ctx).is_ok_and(|c| {
            let _scope = c.enter();
            c.imm_cancel(self.key)
        })
    }

    /// Whether the event is queued.
    pub fn is_scheduled(&self) -> bool {
        upgrade(&self.ctx).is_ok_and(|c| c.imm_is_scheduled(self.key))
    }

    /// The event's tag (0 unless set).
    pub fn tag(&self) -> u64 {
        upgrade(&self.ctx).map_or(0, |c| c.imm_tag(self.key))
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        if let Ok(c) = upgrade(&self.ctx) {
            c.imm_set_tag(self.key, tag)
        }
    }
}

impl Drop for Immediate {
    fn drop(&mut self) {
        if let Ok(c) = upgrade(&self.ctx) {
            let _scope = c.enter();
            c.imm_remove(self.key);
        }
    }
}

impl std::fmt::Debug for Immediate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Immediate")
            .field("id", &self.key.to_u64())
            .field("scheduled", &self.is_scheduled())
            .finish()
    }
}
