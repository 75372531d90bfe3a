//! Trace hooks: loop points and per-event lifecycle points, with user tags.
//!
//! Two hooks can be installed on a context. The loop hook sees
//! [`LoopPoint`]s (around every loop step and around every blocking wait), which
//! is what idle accounting and "release a lock while we sleep" need. The event
//! hook sees an [`EventTrace`] each time an event is attached, about to run its
//! handler, or detached, carrying the event's `u64` tag so a correlation id can
//! follow work across asynchronous hops.

use std::cell::RefCell;

use crate::context::Inner;
use crate::panic::PanicSlot;

/// A point in the life of one loop step.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{LoopHook, LoopPoint};
///
/// let ev = Context::new()?;
/// let points = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let p = points.clone();
/// let hook: LoopHook = Box::new(move |point| p.borrow_mut().push(point));
/// ev.set_loop_trace_hook(Some(hook));
/// ev.post(|_| {});
/// ev.loop_once()?;
/// assert_eq!(*points.borrow(), [LoopPoint::BeforeLoopOnce, LoopPoint::AfterLoopOnce]);
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopPoint {
    /// Just before the loop blocks in the poller.
    BeforeWait,
    /// Just after the poller returned.
    AfterWait,
    /// At the start of every `loop_once`.
    BeforeLoopOnce,
    /// At the end of every `loop_once`.
    AfterLoopOnce,
}

/// The kind of event an [`EventTrace`] is about.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{EventHook, EventKind, EventPoint, EventTrace};
///
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| s.borrow_mut().push((t.kind, t.point, t.tag)));
/// ev.set_event_trace_hook(Some(hook));
/// let imm = ev.add_immediate(|_, _| {});
/// imm.set_tag(9);
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(seen.borrow()[0], (EventKind::Immediate, EventPoint::Attach, 9));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A file-descriptor watcher.
    Fd,
    /// A timer.
    Timer,
    /// An immediate event (including closures posted with `Context::post`).
    Immediate,
    /// A signal handler.
    Signal,
}

/// A point in the life of one event.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{EventHook, EventKind, EventPoint, EventTrace};
///
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| s.borrow_mut().push((t.kind, t.point, t.tag)));
/// ev.set_event_trace_hook(Some(hook));
/// let imm = ev.add_immediate(|_, _| {});
/// imm.set_tag(9);
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(seen.borrow()[0], (EventKind::Immediate, EventPoint::Attach, 9));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventPoint {
    /// The event became pending: an fd watcher or signal handler was added, a
    /// timer was armed, an immediate was scheduled.
    Attach,
    /// The event's handler is about to run.
    BeforeHandler,
    /// The event stopped being pending without being re-armed: it was removed
    /// or cancelled, or (timers and immediates) it fired and its handler did not
    /// arm it again.
    Detach,
}

/// One report to the event hook.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{EventHook, EventKind, EventPoint, EventTrace};
///
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| s.borrow_mut().push((t.kind, t.point, t.tag)));
/// ev.set_event_trace_hook(Some(hook));
/// let imm = ev.add_immediate(|_, _| {});
/// imm.set_tag(9);
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(seen.borrow()[0], (EventKind::Immediate, EventPoint::Attach, 9));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventTrace {
    /// Which kind of event.
    pub kind: EventKind,
    /// What happened.
    pub point: EventPoint,
    /// The event's tag (0 unless set).
    pub tag: u64,
    /// An identifier of the event, unique among live events of its kind.
    pub id: u64,
}

/// A loop hook.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{LoopHook, LoopPoint};
///
/// let ev = Context::new()?;
/// let points = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let p = points.clone();
/// let hook: LoopHook = Box::new(move |point| p.borrow_mut().push(point));
/// ev.set_loop_trace_hook(Some(hook));
/// ev.post(|_| {});
/// ev.loop_once()?;
/// assert_eq!(*points.borrow(), [LoopPoint::BeforeLoopOnce, LoopPoint::AfterLoopOnce]);
/// # Ok::<(), tevent::Error>(())
/// ```
pub type LoopHook = Box<dyn FnMut(LoopPoint)>;
/// An event hook.
///
/// ```
/// use tevent::Context;
/// use tevent::trace::{EventHook, EventKind, EventPoint, EventTrace};
///
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| s.borrow_mut().push((t.kind, t.point, t.tag)));
/// ev.set_event_trace_hook(Some(hook));
/// let imm = ev.add_immediate(|_, _| {});
/// imm.set_tag(9);
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(seen.borrow()[0], (EventKind::Immediate, EventPoint::Attach, 9));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type EventHook = Box<dyn FnMut(&EventTrace)>;

/// The installed hooks. A hook is taken out while it runs, so it may replace
/// itself or install the other one without a double borrow.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) loop_hook: RefCell<Option<LoopHook>>,
    pub(crate) event_hook: RefCell<Option<EventHook>>,
    /// Bumped each time a hook is installed, so a hook that replaced itself
    /// while running is not put back over its replacement.
    pub(crate) epoch: std::cell::Cell<u64>,
    /// Whether a loop hook is installed (the hot path checks only this).
    pub(crate) has_loop: std::cell::Cell<bool>,
    /// Whether an event hook is installed (the hot path checks only this).
    pub(crate) has_event: std::cell::Cell<bool>,
}

impl Inner {
    /// Reports a loop point, if a loop hook is installed.
    #[inline]
    pub(crate) fn trace_loop(&self, p: LoopPoint) {
        if self.hooks.has_loop.get() {
            self.hooks.call_loop_hook(&self.panic, p);
        }
    }

    /// Reports an event point, if an event hook is installed.
    #[inline]
    /// Reports each `(id, tag)` of `kind` detached (the context is being
    /// dropped with these events still attached).
    pub(crate) fn trace_detach_all(&self, kind: EventKind, attached: Vec<(u64, u64)>) {
        for (id, tag) in attached {
            self.trace_event(kind, EventPoint::Detach, id, tag);
        }
    }

    /// Reports that the handler of event `id` is about to run; returns
    /// whether an event hook ran. The hook is user code: it may remove the
    /// very event (or end the request an end time belongs to), so a caller
    /// for which it ran checks that the event is still there before it runs
    /// the handler (a removed event's handler is never called).
    #[inline]
    pub(crate) fn trace_before_handler(&self, kind: EventKind, id: u64, tag: u64) -> bool {
        if !self.hooks.has_event.get() {
            return false;
        }
        self.hooks
            .call_event_hook(&self.panic, kind, EventPoint::BeforeHandler, id, tag);
        true
    }

    pub(crate) fn trace_event(&self, kind: EventKind, point: EventPoint, id: u64, tag: u64) {
        if self.hooks.has_event.get() {
            self.hooks
                .call_event_hook(&self.panic, kind, point, id, tag);
        }
    }
}

impl Hooks {
    /// Runs the loop hook. It is taken out while it runs (so it may replace
    /// itself), and a panic in it is kept for the public call that caused it
    /// (see [`crate::panic`]): hooks run in the middle of the loop's
    /// bookkeeping.
    #[cold]
    #[inline(never)]
    fn call_loop_hook(&self, slot: &PanicSlot, p: LoopPoint) {
        let Some(mut h) = self.loop_hook.borrow_mut().take() else {
            return;
        };
        let epoch = self.epoch.get();
        slot.catch(|| h(p));
        if self.epoch.get() == epoch {
            *self.loop_hook.borrow_mut() = Some(h);
        }
    }

    /// Runs the event hook (see [`Hooks::call_loop_hook`]); events it causes
    /// are not reported to itself.
    #[cold]
    #[inline(never)]
    fn call_event_hook(
        &self,
        slot: &PanicSlot,
        kind: EventKind,
        point: EventPoint,
        id: u64,
        tag: u64,
    ) {
        let Some(mut h) = self.event_hook.borrow_mut().take() else {
            return;
        };
        let epoch = self.epoch.get();
        slot.catch(|| {
            h(&EventTrace {
                kind,
                point,
                tag,
                id,
            })
        });
        if self.epoch.get() == epoch {
            *self.event_hook.borrow_mut() = Some(h);
        }
    }
}
