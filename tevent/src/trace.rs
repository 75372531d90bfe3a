//! Trace hooks: loop points, per-event lifecycle points with user tags, the
//! life of every request, and queue entries with their tags.
//!
//! Four hooks can be installed on a context. The loop hook sees
//! [`LoopPoint`]s (around every loop step and around every blocking wait), which
//! is what idle accounting and "release a lock while we sleep" need. The event
//! hook sees an [`EventTrace`] each time an event is attached, about to run its
//! handler, or detached, carrying the event's `u64` tag so a correlation id can
//! follow work across asynchronous hops. The request hook sees a [`ReqTrace`]
//! at every point of a request's life ([`ReqPoint`]: created, a step about
//! to run, cancellation asked, its waiter about to be told, gone), with its
//! depth in the request tree, its type and its step: C tevent's call-depth
//! tracking (`tevent_thread_call_depth_set_callback`, 0.14). The queue hook
//! sees a [`QueueTrace`] when a queue entry is added, about to be
//! triggered, or removed, with the entry's tag (C's
//! `tevent_set_trace_queue_callback` and `tevent_queue_entry_set_tag`).
//!
//! Every hook is user code run from the middle of the runtime's work, at
//! points where its tables are consistent. It may call anything but a
//! loop call on its context (which returns [`Error::Nested`](crate::Error::Nested)),
//! a panic in it is kept and raised when the public call that ran it
//! returns, and what it causes is not reported to itself (it is taken out
//! of the context while it runs). With the `tracing` feature, the request
//! and queue points are also emitted as `tracing` events (target
//! `tevent::req` and `tevent::queue`, level TRACE) inside the request's
//! span, hook or no hook.

use std::cell::{Cell, RefCell};
use std::panic::Location;

use crate::context::Inner;
use crate::panic::PanicSlot;
use crate::req::ReqState;

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
/// // The points of one timer's life: added, run, gone.
/// let ev = Context::with_manual_clock(true)?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| {
///     if t.kind == EventKind::Timer {
///         s.borrow_mut().push(t.point)
///     }
/// });
/// ev.set_event_trace_hook(Some(hook));
/// let _t = ev.add_timer(ev.now(), |_, _| {});
/// ev.loop_once()?;
/// assert_eq!(seen.borrow()[0], EventPoint::Attach);
/// assert!(seen.borrow().contains(&EventPoint::BeforeHandler));
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
/// use tevent::trace::{EventHook, EventTrace};
///
/// // The report carries the event's key and tag: here an immediate's.
/// let ev = Context::new()?;
/// let last = std::rc::Rc::new(std::cell::Cell::new(None));
/// let l = last.clone();
/// let hook: EventHook = Box::new(move |t: &EventTrace| l.set(Some(*t)));
/// ev.set_event_trace_hook(Some(hook));
/// let imm = ev.add_immediate(|_, _| {});
/// imm.set_tag(7);
/// imm.schedule()?;
/// ev.loop_once()?;
/// assert_eq!(last.get().map(|t| t.tag), Some(7));
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
/// The example of [`LoopPoint`] shows this too.
pub type LoopHook = Box<dyn FnMut(LoopPoint)>;
/// An event hook.
///
/// The example of [`EventKind`] shows this too.
pub type EventHook = Box<dyn FnMut(&EventTrace)>;

/// A point in the life of a request, reported to the request hook
/// ([`Context::set_req_trace_hook`](crate::Context::set_req_trace_hook)).
///
/// For every request created while the hook is installed, the hook sees
/// exactly one `Create` and, later, exactly one `Cleanup`; in between, a
/// `Step` before each later step, a `Cancel` for each cancellation asked
/// while it is in progress, and at most one `Notify`, after it finished,
/// when its waiter (a parent's step, or a callback) is about to run.
///
/// C tevent's call-depth callback (0.14) has the same points
/// (`TEVENT_CALL_FLOW_REQ_CREATE`, `_CANCEL`, `_CLEANUP`, `_NOTIFY_CB`),
/// differently placed: C reports a cleanup each time the request's cleanup
/// function runs (when it finishes, and again when it is freed), a notify
/// synchronously inside `tevent_req_done`, and no step (C does not know
/// where a request's steps are). Here `Cleanup` is once, when the request
/// leaves its context, `Notify` is from the loop, as waiters are, and
/// `Step` marks each step.
///
/// ```
/// use tevent::trace::{ReqPoint, ReqTrace};
/// use tevent::{Context, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// ev.set_req_trace_hook(Some(Box::new(move |t: &ReqTrace| {
///     s.borrow_mut().push((t.point, t.name, t.depth))
/// })));
/// let nap = wakeup_send(&ev, ev.now());
/// nap.poll(&ev)?;
/// drop(nap);
/// assert_eq!(
///     *seen.borrow(),
///     [(ReqPoint::Create, "Wakeup", 0), (ReqPoint::Cleanup, "Wakeup", 0)]
/// );
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReqPoint {
    /// The request was created; its first step is about to run.
    Create,
    /// A later step is about to run: a subrequest it waited for finished,
    /// an fd it watches is ready, its queue turn came, or its cancel hook
    /// runs ([`ReqTrace::step`] names it when it is known).
    Step,
    /// Cancellation was asked ([`Req::cancel`](crate::Req::cancel),
    /// [`CallbackHandle::cancel`](crate::CallbackHandle::cancel)) while it
    /// is in progress; its cancel hook, if any, runs next, as a `Step`.
    Cancel,
    /// It finished, and its waiter is about to run: the step of the parent
    /// that waited for it, or its callback ([`ReqTrace::step`] names it).
    Notify,
    /// It leaves its context: received, dropped (with its parent, its
    /// handle, or its context), its state and result gone. The last report
    /// about it; [`ReqTrace::state`] is the state it reached
    /// ([`ReqState::Dropped`] if it never finished).
    Cleanup,
}

/// One report to the request hook.
///
/// ```
/// use tevent::trace::{ReqPoint, ReqTrace};
/// use tevent::{Context, Progress, Req, Request};
///
/// struct Job;
/// impl Request for Job {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// ev.set_req_trace_hook(Some(Box::new(move |t: &ReqTrace| s.borrow_mut().push(*t))));
/// let job = Req::start(&ev, Job, |_, _| Ok(Progress::Done(())));
/// assert!(job.recv().is_ok());
/// let seen = seen.borrow();
/// assert_eq!(seen.len(), 2);
/// assert_eq!((seen[0].point, seen[0].name, seen[0].state), (ReqPoint::Create, "Job", tevent::ReqState::InProgress));
/// assert_eq!((seen[1].point, seen[1].state), (ReqPoint::Cleanup, tevent::ReqState::Done));
/// assert_eq!(seen[0].id, seen[1].id);
/// assert!(seen[0].created.file().ends_with(".rs"));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReqTrace {
    /// What happened.
    pub point: ReqPoint,
    /// An identifier of the request, the same in every report about it
    /// and unique among the live requests of its context (a later request
    /// may reuse it after its `Cleanup`).
    pub id: u64,
    /// Its depth in the request tree: 0 for a request nothing waits for
    /// but its handle, its parent's depth + 1 for a subrequest. At
    /// `Create`, the depth it has under the request whose step creates it
    /// (0 outside any step); at `Cleanup`, 0 (it left its tree).
    pub depth: usize,
    /// The request type's [`Request::name`](crate::Request::name).
    pub name: &'static str,
    /// The step the point is about, when known: at `Step`, the step about
    /// to run (the function a wait resumes or an fd watcher runs, as
    /// [`Req::waiting_in`](crate::Req::waiting_in) names them; `"cancel"`
    /// for its cancel hook, `"trigger"` for its queue turn); at `Notify`,
    /// the waiter's step (`"callback"` for a callback).
    pub step: Option<&'static str>,
    /// The state it is in ([`ReqState::InProgress`] but at `Notify` and
    /// `Cleanup`).
    pub state: ReqState,
    /// Where it was created.
    pub created: &'static Location<'static>,
}

/// A request hook.
///
/// ```
/// use tevent::trace::{ReqHook, ReqPoint};
/// let ev = tevent::Context::new()?;
/// let creates = std::rc::Rc::new(std::cell::Cell::new(0));
/// let c = creates.clone();
/// let hook: ReqHook = Box::new(move |t| if t.point == ReqPoint::Create { c.set(c.get() + 1) });
/// ev.set_req_trace_hook(Some(hook));
/// let _nap = tevent::wakeup_send(&ev, ev.now());
/// assert_eq!(creates.get(), 1);
/// # Ok::<(), tevent::Error>(())
/// ```
pub type ReqHook = Box<dyn FnMut(&ReqTrace)>;

/// One report to the queue hook: an entry of a [`Queue`](crate::Queue) was
/// added ([`EventPoint::Attach`]), is about to be triggered
/// ([`EventPoint::BeforeHandler`]: its trigger runs next, as a step of its
/// request) or was removed ([`EventPoint::Detach`]: its request finished or
/// was dropped, its [`QueueGuard`](crate::QueueGuard) dropped, or the queue
/// dropped), as C tevent's `tevent_set_trace_queue_callback` reports them.
///
/// Differences from C: a blocker entry ([`Queue::add_blocker`](crate::Queue::add_blocker))
/// is never triggered, so it has no `BeforeHandler`; an entry leaves when
/// its request finishes (C: when it is freed); entries still in a queue
/// when its context is dropped leave unreported (the hook went with the
/// context).
///
/// ```
/// use tevent::trace::{EventPoint, QueueTrace};
/// use tevent::{Context, Queue, queue_wait_send};
///
/// let ev = Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let s = seen.clone();
/// ev.set_queue_trace_hook(Some(Box::new(move |t: &QueueTrace<'_>| {
///     s.borrow_mut().push((t.point, t.queue.to_string(), t.tag))
/// })));
/// let q = Queue::new(&ev, "lock");
/// let w = queue_wait_send(&ev, &q);
/// assert!(q.set_entry_tag(&w, 42));
/// let guard = w.poll_recv(&ev)?.unwrap();
/// drop(guard);
/// let seen = seen.borrow();
/// assert_eq!(seen[0], (EventPoint::Attach, "lock".to_string(), 0)); // tagged after adding, as in C
/// assert_eq!(seen[1], (EventPoint::BeforeHandler, "lock".to_string(), 42));
/// assert_eq!(seen[2], (EventPoint::Detach, "lock".to_string(), 42));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueTrace<'a> {
    /// What happened to the entry.
    pub point: EventPoint,
    /// The queue's name.
    pub queue: &'a str,
    /// The entry's tag (0 unless set with
    /// [`Queue::set_entry_tag`](crate::Queue::set_entry_tag)).
    pub tag: u64,
    /// An identifier of the entry, unique in its queue.
    pub id: u64,
    /// Entries in the queue after the change (the triggered head
    /// included).
    pub len: usize,
}

/// A queue hook.
///
/// ```
/// use tevent::trace::QueueHook;
/// let ev = tevent::Context::new()?;
/// let hook: QueueHook = Box::new(|t| println!("{:?} {} #{}", t.point, t.queue, t.id));
/// assert!(ev.set_queue_trace_hook(Some(hook)).is_none());
/// # Ok::<(), tevent::Error>(())
/// ```
pub type QueueHook = Box<dyn for<'a> FnMut(&QueueTrace<'a>)>;

/// The installed hooks. A hook is taken out while it runs, so it may replace
/// itself or install another one without a double borrow.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) loop_hook: RefCell<Option<LoopHook>>,
    pub(crate) event_hook: RefCell<Option<EventHook>>,
    pub(crate) req_hook: RefCell<Option<ReqHook>>,
    pub(crate) queue_hook: RefCell<Option<QueueHook>>,
    /// Bumped each time the loop hook is installed, so a hook that replaced
    /// itself while running is not put back over its replacement (one
    /// epoch per hook: a hook that installs another is put back).
    pub(crate) loop_epoch: Cell<u64>,
    pub(crate) event_epoch: Cell<u64>,
    pub(crate) req_epoch: Cell<u64>,
    pub(crate) queue_epoch: Cell<u64>,
    /// Whether a loop hook is installed (the hot path checks only this).
    pub(crate) has_loop: Cell<bool>,
    /// Whether an event hook is installed (the hot path checks only this).
    pub(crate) has_event: Cell<bool>,
    /// Whether a request hook is installed.
    pub(crate) has_req: Cell<bool>,
    /// What watches requests being created and run ([`WATCH_HOOK`],
    /// [`WATCH_AGES`], [`WATCH_SIM`]): the one word the hot paths check.
    pub(crate) req_watch: Cell<u8>,
    /// Whether a queue hook is installed.
    pub(crate) has_queue: Cell<bool>,
    /// While the request hook is installed: the depth of the request whose
    /// step runs now, if one does (for the depth reported at `Create`).
    pub(crate) req_depth: Cell<Option<usize>>,
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

/// [`Hooks::req_watch`]: a request trace hook is installed.
pub(crate) const WATCH_HOOK: u8 = 1;
/// [`Hooks::req_watch`]: requests record when they were created.
pub(crate) const WATCH_AGES: u8 = 2;
/// [`Hooks::req_watch`]: a simulation may fail request allocations (see
/// [`crate::sim::Faults::no_memory`]).
pub(crate) const WATCH_SIM: u8 = 4;

impl Hooks {
    /// Sets or clears `bit` of [`Hooks::req_watch`].
    pub(crate) fn set_watch(&self, bit: u8, on: bool) {
        let w = self.req_watch.get();
        self.req_watch.set(if on { w | bit } else { w & !bit });
    }

    /// Whether request points are reported: a request hook is installed,
    /// or the `tracing` feature is on. One load and one branch.
    #[inline(always)]
    pub(crate) fn reporting(&self) -> bool {
        cfg!(feature = "tracing") || self.req_watch.get() & WATCH_HOOK != 0
    }

    /// Whether anything watches requests being created (a hook, ages, a
    /// simulation's `NoMemory` faults, or the `tracing` feature).
    #[inline(always)]
    pub(crate) fn watching_creates(&self) -> bool {
        cfg!(feature = "tracing") || self.req_watch.get() != 0
    }

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
        let epoch = self.loop_epoch.get();
        slot.catch(|| h(p));
        if self.loop_epoch.get() == epoch {
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
        let epoch = self.event_epoch.get();
        slot.catch(|| {
            h(&EventTrace {
                kind,
                point,
                tag,
                id,
            })
        });
        if self.event_epoch.get() == epoch {
            *self.event_hook.borrow_mut() = Some(h);
        }
    }

    /// Runs the request hook with the report `t` builds (see
    /// [`Hooks::call_loop_hook`]; `t` calls `Request::name`, user code,
    /// so it runs inside the catch too).
    #[cold]
    #[inline(never)]
    pub(crate) fn call_req_hook(&self, slot: &PanicSlot, t: impl FnOnce() -> ReqTrace) {
        let Some(mut h) = self.req_hook.borrow_mut().take() else {
            return;
        };
        let epoch = self.req_epoch.get();
        slot.catch(|| h(&t()));
        if self.req_epoch.get() == epoch {
            *self.req_hook.borrow_mut() = Some(h);
        }
    }

    /// Runs the queue hook (see [`Hooks::call_loop_hook`]).
    #[cold]
    #[inline(never)]
    pub(crate) fn call_queue_hook(&self, slot: &PanicSlot, t: &QueueTrace<'_>) {
        let Some(mut h) = self.queue_hook.borrow_mut().take() else {
            return;
        };
        let epoch = self.queue_epoch.get();
        slot.catch(|| h(t));
        if self.queue_epoch.get() == epoch {
            *self.queue_hook.borrow_mut() = Some(h);
        }
    }
}
