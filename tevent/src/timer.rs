//! Timers: one-shot events at an [`Instant`] on the context's clock.
//!
//! Pending timers sit in a binary min-heap of 16-byte entries ordered by
//! (deadline, arming sequence), so equal deadlines fire in the order they were
//! armed and insert and fire are O(log n). (The sequence is 32 bits: two
//! timers with the very same nanosecond deadline armed four billion arms apart
//! could swap; nothing else depends on it.) Cancelling or moving a timer leaves its old heap
//! entry behind (lazy deletion); such dead entries are skipped when they reach
//! the top, and the heap is rebuilt once they outnumber the live ones, so they
//! never accumulate beyond that bound.
//!
//! A timer that fired stays in its slot, disarmed, until its [`Timer`] handle
//! is dropped; [`TimerRef::restart`] or [`Timer::restart`] arms it again, which
//! is how a repeating timer is written.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Weak;
use std::time::{Duration, Instant};

use crate::Error;
use crate::context::{Context, Inner, upgrade};
use crate::panic::run_handler;
use crate::slab::{Key, Slab};
use crate::trace::{EventKind, EventPoint};

/// The handler of a timer.
pub(crate) type TimerFn = Box<dyn FnMut(&Context, &TimerRef<'_>)>;

pub(crate) enum TimerHandler {
    /// A user timer owned by a [`Timer`] handle.
    User(TimerFn),
    /// The end time of a request: expiry finishes the request as timed out.
    ReqEndtime(crate::req::NodePtr),
}

pub(crate) struct TimerEntry {
    /// `None` while the handler runs.
    handler: Option<TimerHandler>,
    deadline: Instant,
    /// Sequence of the heap entry that currently represents this timer.
    seq: u32,
    armed: bool,
    /// Reported attached to the trace hook and not detached since: armed, or
    /// running its handler.
    traced: bool,
    tag: u64,
}

impl TimerEntry {
    /// Marks the timer detached; its tag if it was attached.
    fn untrace(&mut self) -> Option<u64> {
        std::mem::replace(&mut self.traced, false).then_some(self.tag)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct HeapItem {
    /// Deadline as nanoseconds since the queue's base instant.
    at: u64,
    /// Arming sequence (high half) and slab index (low half).
    tie: u64,
}

impl HeapItem {
    fn seq(self) -> u32 {
        (self.tie >> 32) as u32
    }

    fn idx(self) -> u32 {
        self.tie as u32
    }
}

impl Ord for HeapItem {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.at, other.tie).cmp(&(self.at, self.tie))
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Heap plus slab of all timers of a context.
pub(crate) struct TimerQueue {
    slab: Slab<TimerEntry>,
    heap: BinaryHeap<HeapItem>,
    next_seq: u32,
    armed: usize,
    base: Instant,
}

/// What the timer phase of a loop step found.
pub(crate) enum TimerStep {
    /// A due timer ran.
    Ran,
    /// The earliest armed timer is due at this instant.
    Next(Instant),
    /// No timer is armed.
    Idle,
}

impl TimerQueue {
    pub(crate) fn new(now: Instant) -> TimerQueue {
        // Deadlines are stored as offsets from `base`; anything earlier clamps
        // to 0 (it is overdue either way and keeps FIFO order among its peers).
        let base = [3600, 60, 1]
            .iter()
            .find_map(|s| now.checked_sub(Duration::from_secs(*s)))
            .unwrap_or(now);
        TimerQueue {
            slab: Slab::default(),
            heap: BinaryHeap::new(),
            next_seq: 0,
            armed: 0,
            base,
        }
    }

    pub(crate) fn armed(&self) -> usize {
        self.armed
    }

    /// The deadline of timer `key`, if it is armed (for the live request
    /// tree: a request's end time).
    pub(crate) fn deadline_of(&self, key: Key) -> Option<Instant> {
        self.slab.get(key).filter(|e| e.armed).map(|e| e.deadline)
    }

    /// The instant deadlines are measured from.
    pub(crate) fn base(&self) -> Instant {
        self.base
    }

    pub(crate) fn entries(&self) -> usize {
        self.slab.len()
    }

    /// Heap entries, live or dead (for the compaction bound test).
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn offset(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn arm(
        &mut self,
        key: Key,
        deadline: Instant,
    ) -> Result<(), std::collections::TryReserveError> {
        self.heap.try_reserve(1)?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let at = self.offset(deadline);
        let e = self.slab.get_mut(key).expect("arming a live timer");
        let rearm = e.armed;
        e.armed = true;
        e.deadline = deadline;
        e.seq = seq;
        self.heap.push(HeapItem {
            at,
            tie: (u64::from(seq) << 32) | u64::from(key.index()),
        });
        if rearm {
            // Moving an armed timer left its old heap entry behind.
            self.maybe_compact();
        } else {
            self.armed += 1;
        }
        Ok(())
    }

    fn disarm(&mut self, key: Key) -> bool {
        match self.slab.get_mut(key) {
            Some(e) if e.armed => {
                e.armed = false;
                self.armed -= 1;
                self.maybe_compact();
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn is_live(&self, item: &HeapItem) -> bool {
        self.slab
            .get_at(item.idx())
            .is_some_and(|e| e.armed && e.seq == item.seq())
    }

    /// Rebuilds the heap when dead entries outnumber live ones (plus slack), so
    /// cancelled or moved timers cost O(1) amortised and never pile up.
    fn maybe_compact(&mut self) {
        let dead = self.heap.len() - self.armed.min(self.heap.len());
        if dead > 64 && dead > self.armed {
            let items = std::mem::take(&mut self.heap).into_vec();
            let live: Vec<HeapItem> = items.into_iter().filter(|i| self.is_live(i)).collect();
            self.heap = BinaryHeap::from(live);
        }
    }

    /// The earliest armed timer's heap entry and deadline, dropping dead heap
    /// entries on the way.
    #[inline]
    fn peek(&mut self) -> Option<(HeapItem, Instant)> {
        loop {
            let top = *self.heap.peek()?;
            if let Some(e) = self.slab.get_at(top.idx())
                && e.armed
                && e.seq == top.seq()
            {
                return Some((top, e.deadline));
            }
            self.heap.pop();
        }
    }

    pub(crate) fn take_all(&mut self) -> Vec<TimerHandler> {
        self.heap.clear();
        self.armed = 0;
        self.slab
            .drain()
            .into_iter()
            .filter_map(|e| e.handler)
            .collect()
    }
}

impl Context {
    /// Adds a timer that fires once at `deadline` (on this context's clock).
    ///
    /// The handler runs from the loop. The timer stays owned by the returned
    /// handle: dropping it cancels the timer (also from inside any handler); after
    /// it fired, [`TimerRef::restart`] inside the handler or [`Timer::restart`]
    /// arms it again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::Context;
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let at = ev.now() + Duration::from_secs(5);
    /// let fired = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let f = fired.clone();
    /// let timer = ev.add_timer(at, move |_ev, me| {
    ///     assert_eq!(me.deadline(), at);
    ///     f.set(true);
    /// });
    /// ev.loop_wait()?;
    /// assert!(fired.get() && !timer.is_armed());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_timer(
        &self,
        deadline: Instant,
        handler: impl FnMut(&Context, &TimerRef<'_>) + 'static,
    ) -> Timer {
        let scope = self.enter();
        let key = self.timer_insert(deadline, TimerHandler::User(Box::new(handler)));
        scope.end(Timer {
            ctx: self.weak(),
            key,
        })
    }

    /// Adds a timer that fires once, `after` from now. A duration beyond
    /// [`FAR_FUTURE`](crate::FAR_FUTURE) (such as `Duration::MAX`, "never")
    /// is clamped to it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::Context;
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let t = ticks.clone();
    /// let _every_second = ev.add_timer_after(Duration::from_secs(1), move |_, me| {
    ///     t.set(t.get() + 1);
    ///     if t.get() < 3 {
    ///         me.restart_after(Duration::from_secs(1)); // a repeating timer
    ///     }
    /// });
    /// ev.loop_wait()?;
    /// assert_eq!(ticks.get(), 3);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_timer_after(
        &self,
        after: Duration,
        handler: impl FnMut(&Context, &TimerRef<'_>) + 'static,
    ) -> Timer {
        self.add_timer(self.deadline_after(after), handler)
    }

    fn timer_insert(&self, deadline: Instant, handler: TimerHandler) -> Key {
        match self.timer_try_insert(deadline, handler) {
            Ok(k) => k,
            Err(e) => panic!("timer allocation failed: {e}"),
        }
    }

    /// Inserts and arms a timer; allocation failure is returned, not fatal.
    pub(crate) fn timer_try_insert(
        &self,
        deadline: Instant,
        handler: TimerHandler,
    ) -> Result<Key, std::collections::TryReserveError> {
        let mut q = self.inner.timers.borrow_mut();
        let key = q.slab.try_insert(TimerEntry {
            handler: Some(handler),
            deadline,
            seq: 0,
            armed: false,
            traced: true,
            tag: 0,
        })?;
        if let Err(e) = q.arm(key, deadline) {
            q.slab.remove(key);
            return Err(e);
        }
        drop(q);
        self.inner
            .trace_event(EventKind::Timer, EventPoint::Attach, key.to_u64(), 0);
        Ok(key)
    }

    /// Moves (or re-arms) the timer to `deadline`. Out of memory for the heap
    /// entry aborts, as for any Rust collection (see `timer_try_restart`).
    pub(crate) fn timer_restart(&self, key: Key, deadline: Instant) -> Result<(), Error> {
        match self.timer_try_restart(key, deadline) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::EventGone),
            Err(e) => panic!("timer allocation failed: {e}"),
        }
    }

    /// Moves (or re-arms) the timer to `deadline`; `Ok(false)` if it is gone,
    /// and an allocation failure is returned (request end times need that).
    /// A timer that was still attached (pending, or running its handler) is
    /// reported detached first, as C tevent does when it re-arms.
    pub(crate) fn timer_try_restart(
        &self,
        key: Key,
        deadline: Instant,
    ) -> Result<bool, std::collections::TryReserveError> {
        let mut q = self.inner.timers.borrow_mut();
        let Some(e) = q.slab.get(key) else {
            return Ok(false);
        };
        let (tag, was_traced) = (e.tag, e.traced);
        q.arm(key, deadline)?;
        q.slab.get_mut(key).expect("armed above").traced = true;
        drop(q);
        let id = key.to_u64();
        if was_traced {
            self.inner
                .trace_event(EventKind::Timer, EventPoint::Detach, id, tag);
        }
        self.inner
            .trace_event(EventKind::Timer, EventPoint::Attach, id, tag);
        Ok(true)
    }

    /// Disarms the timer, keeping its slot; returns whether it was armed.
    pub(crate) fn timer_cancel(&self, key: Key) -> bool {
        let mut q = self.inner.timers.borrow_mut();
        let was = q.disarm(key);
        let detach = q.slab.get_mut(key).and_then(TimerEntry::untrace);
        drop(q);
        if let Some(tag) = detach {
            self.inner
                .trace_event(EventKind::Timer, EventPoint::Detach, key.to_u64(), tag);
        }
        was
    }

    /// Removes the timer entirely.
    pub(crate) fn timer_remove(&self, key: Key) {
        let mut q = self.inner.timers.borrow_mut();
        q.disarm(key);
        let entry = q.slab.remove(key);
        drop(q);
        if let Some(tag) = entry.as_ref().and_then(|e| e.traced.then_some(e.tag)) {
            self.inner
                .trace_event(EventKind::Timer, EventPoint::Detach, key.to_u64(), tag);
        }
        self.inner.drop_handler(entry);
    }

    fn timer_info(&self, key: Key) -> Option<(bool, Instant, u64)> {
        self.inner
            .timers
            .borrow()
            .slab
            .get(key)
            .map(|e| (e.armed, e.deadline, e.tag))
    }

    fn timer_set_tag(&self, key: Key, tag: u64) {
        if let Some(e) = self.inner.timers.borrow_mut().slab.get_mut(key) {
            e.tag = tag;
        }
    }

    /// Fires the earliest timer if it is due. The clock is read only when the
    /// earliest deadline is later than the loop's last reading, so a burst of
    /// overdue timers costs one clock read.
    pub(crate) fn run_due_timer(&self) -> TimerStep {
        let inner = &*self.inner;
        let (key, deadline, handler, tag) = {
            let mut q = inner.timers.borrow_mut();
            let Some((top, deadline)) = q.peek() else {
                return TimerStep::Idle;
            };
            if deadline > inner.loop_now.get() {
                let now = inner.clock.now();
                inner.loop_now.set(now);
                if deadline > now {
                    return TimerStep::Next(deadline);
                }
            }
            q.heap.pop();
            q.armed -= 1;
            let (key, e) = q.slab.get_at_mut(top.idx()).expect("live");
            e.armed = false;
            (key, deadline, e.handler.take(), e.tag)
        };
        if inner.trace_before_handler(EventKind::Timer, key.to_u64(), tag)
            && inner.timers.borrow().slab.get(key).is_none()
        {
            // Removed by the hook (for an end time: its request is gone or
            // reset it); the handler is dropped unrun.
            drop(handler);
            return TimerStep::Ran;
        }
        match handler {
            // The handler goes back into its timer (and the end of this firing
            // is reported) when it returns or panics.
            Some(TimerHandler::User(f)) => {
                let f = run_handler(
                    f,
                    |f| self.timer_fired(key, Some(f)),
                    |f| {
                        f(
                            self,
                            &TimerRef {
                                ctx: self,
                                key,
                                deadline,
                            },
                        )
                    },
                );
                self.timer_fired(key, Some(f));
            }
            Some(TimerHandler::ReqEndtime(req)) => {
                // The timer belongs to the request, which removes it when it
                // finishes; put the handler back until then.
                if let Some(e) = inner.timers.borrow_mut().slab.get_mut(key) {
                    e.handler = Some(TimerHandler::ReqEndtime(req));
                }
                self.req_timed_out(req);
                self.timer_fired(key, None);
            }
            None => self.timer_fired(key, None),
        }
        TimerStep::Ran
    }

    /// Ends a firing: puts the handler back into its entry (or drops it if
    /// the handle went meanwhile) and reports the timer detached unless its
    /// handler armed it again.
    fn timer_fired(&self, key: Key, handler: Option<TimerFn>) {
        let mut q = self.inner.timers.borrow_mut();
        let (leftover, detach) = match q.slab.get_mut(key) {
            Some(e) => {
                if let Some(h) = handler {
                    e.handler = Some(TimerHandler::User(h));
                }
                (None, if e.armed { None } else { e.untrace() })
            }
            None => (handler, None),
        };
        drop(q);
        if let Some(tag) = detach {
            self.inner
                .trace_event(EventKind::Timer, EventPoint::Detach, key.to_u64(), tag);
        }
        drop(leftover);
    }

    /// Reports every timer still attached as detached (the context is being
    /// dropped).
    pub(crate) fn timers_detach_all(inner: &Inner) {
        let q = inner.timers.borrow();
        let attached = q.slab.iter().filter(|(_, e)| e.traced);
        let attached = attached.map(|(k, e)| (k.to_u64(), e.tag)).collect();
        drop(q);
        inner.trace_detach_all(EventKind::Timer, attached);
    }
}

/// A timer, owned: dropping it cancels and removes the timer.
///
/// Created by [`Context::add_timer`] or [`Context::add_timer_after`].
///
/// ```
/// use std::time::Duration;
/// let ev = tevent::Context::with_manual_clock(false)?;
/// let timer = ev.add_timer_after(Duration::from_secs(1), |_, _| unreachable!());
/// assert!(timer.is_armed());
/// timer.restart_after(Duration::from_secs(10))?; // moved
/// assert!(timer.cancel());
/// drop(timer); // removed
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping a Timer cancels it"]
pub struct Timer {
    ctx: Weak<Inner>,
    key: Key,
}

/// A borrowed view of a timer, given to its handler.
///
/// ```
/// use std::time::Duration;
/// let ev = tevent::Context::with_manual_clock(true)?;
/// let _t = ev.add_timer_after(Duration::from_secs(1), |ev, me: &tevent::TimerRef<'_>| {
///     assert!(ev.loop_time() >= me.deadline());
///     assert!(!me.is_armed()); // it fired; restart() would arm it again
/// });
/// ev.loop_wait()?;
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct TimerRef<'a> {
    ctx: &'a Context,
    key: Key,
    deadline: Instant,
}

impl TimerRef<'_> {
    /// Arms the timer again at `deadline` (a repeating timer calls this from
    /// its handler).
    pub fn restart(&self, deadline: Instant) {
        let _ = self.ctx.timer_restart(self.key, deadline);
    }

    /// Arms the timer again, `after` from now (clamped to
    /// [`FAR_FUTURE`](crate::FAR_FUTURE)).
    pub fn restart_after(&self, after: Duration) {
        self.restart(self.ctx.deadline_after(after))
    }

    /// The deadline this run of the handler was due at (a `restart` inside
    /// the handler does not change it).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the timer is armed (false inside its handler unless restarted).
    pub fn is_armed(&self) -> bool {
        self.ctx.timer_info(self.key).is_some_and(|(a, _, _)| a)
    }

    /// The timer's tag.
    pub fn tag(&self) -> u64 {
        self.ctx.timer_info(self.key).map_or(0, |(_, _, t)| t)
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        self.ctx.timer_set_tag(self.key, tag)
    }
}

impl Timer {
    /// Moves the timer to `deadline`, arming it again if it already fired or
    /// was cancelled.
    pub fn restart(&self, deadline: Instant) -> Result<(), Error> {
        let c = upgrade(&self.ctx)?;
        let _scope = c.enter();
        c.timer_restart(self.key, deadline)
    }

    /// Moves the timer to `after` from now (clamped to
    /// [`FAR_FUTURE`](crate::FAR_FUTURE)).
    pub fn restart_after(&self, after: Duration) -> Result<(), Error> {
        let c = upgrade(&self.ctx)?;
        let _scope = c.enter();
        c.timer_restart(self.key, c.deadline_after(after))
    }

    /// Disarms the timer without removing it; returns whether it was armed.
    /// Cancelling a timer that already fired is a harmless `false`.
    pub fn cancel(&self) -> bool {
        upgrade(&self.ctx).is_ok_and(|c| {
            let _scope = c.enter();
            c.timer_cancel(self.key)
        })
    }

    /// Whether the timer is armed.
    pub fn is_armed(&self) -> bool {
        upgrade(&self.ctx).is_ok_and(|c| c.timer_info(self.key).is_some_and(|(a, _, _)| a))
    }

    /// The deadline the timer was (last) armed for.
    pub fn deadline(&self) -> Option<Instant> {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.timer_info(self.key).map(|(_, d, _)| d))
    }

    /// The timer's tag.
    pub fn tag(&self) -> u64 {
        upgrade(&self.ctx).map_or(0, |c| c.timer_info(self.key).map_or(0, |(_, _, t)| t))
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        if let Ok(c) = upgrade(&self.ctx) {
            c.timer_set_tag(self.key, tag)
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Ok(c) = upgrade(&self.ctx) {
            let _scope = c.enter();
            c.timer_remove(self.key);
        }
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("id", &self.key.to_u64())
            .field("armed", &self.is_armed())
            .field("deadline", &self.deadline())
            .finish()
    }
}
