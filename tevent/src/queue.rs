//! Queues (tevent_queue): requests take turns.
//!
//! A [`Queue`] holds entries in FIFO order. The entry at the head, while the
//! queue runs, is *triggered*: its trigger function runs as a step of its
//! request, from the loop (never inside [`Queue::add`]). The head stays the
//! head until its request finishes or is dropped; then the next entry is
//! triggered at the next loop step.
//!
//! Deliberate differences from tevent:
//! - an entry is released when its request *finishes*, not when the request
//!   is freed, so a finished request that is kept around does not block the
//!   queue (tevent's "completed but unfreed head" trap);
//! - holding the queue as a lock is explicit: [`queue_wait_recv`] returns a
//!   [`QueueGuard`], and the queue advances when the guard is dropped;
//! - dropping the [`Queue`] finishes every request still in it with
//!   [`ReqError::QueueDropped`] instead of leaving them hanging forever.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::rc::{Rc, Weak};

use crate::context::{Context, Inner, upgrade};
use crate::req::{Ctl, Failure, Progress, Req, ReqError, ReqRef, Request, StepResult};

/// Runs the trigger of a head entry as a step of its request.
trait Trigger {
    fn run(self: Box<Self>, ev: &Context, req: &ReqRef);
}

struct TriggerFn<T, F> {
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<T, F> Trigger for TriggerFn<T, F>
where
    T: Request,
    F: FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T> + 'static,
{
    fn run(self: Box<Self>, ev: &Context, req: &ReqRef) {
        let f = self.f;
        ev.run_step_in::<T>(req, Some(|| "trigger"), f);
    }
}

impl<X: Trigger> Trigger for [X; 1] {
    fn run(self: Box<Self>, ev: &Context, req: &ReqRef) {
        let [x] = *self;
        Box::new(x).run(ev, req)
    }
}

struct Entry {
    id: u64,
    /// Reported to the queue trace hook (C's `tevent_queue_entry_set_tag`).
    tag: u64,
    req: ReqRef,
    /// `None` for a blocker, or once triggered.
    trigger: Option<Box<dyn Trigger>>,
    triggered: bool,
}

struct QueueState {
    running: bool,
    entries: VecDeque<Entry>,
    next_id: u64,
    /// A trigger of the head is scheduled on the loop.
    scheduled: bool,
}

pub(crate) struct QueueInner {
    name: String,
    ctx: Weak<Inner>,
    state: RefCell<QueueState>,
}

/// A request's place in a queue; releasing it removes the entry.
pub(crate) struct QueueLink {
    queue: Weak<QueueInner>,
    id: u64,
}

impl QueueLink {
    /// The queue's name and the entry's place in it (0: the head), if
    /// both are still there (for the live request tree). Runs no user
    /// code; `None` while the queue's entries are borrowed.
    pub(crate) fn place(&self) -> Option<(String, usize)> {
        let q = self.queue.upgrade()?;
        let st = q.state.try_borrow().ok()?;
        let pos = st.entries.iter().position(|e| e.id == self.id)?;
        Some((q.name.clone(), pos))
    }

    /// Removes the entry; if it was the head, the next one is triggered from
    /// the loop.
    pub(crate) fn release(self, ev: &Context) {
        let Some(q) = self.queue.upgrade() else {
            return;
        };
        let (pos, entry, len) = {
            let mut st = q.state.borrow_mut();
            let Some(pos) = st.entries.iter().position(|e| e.id == self.id) else {
                return;
            };
            let entry = st.entries.remove(pos);
            (pos, entry, st.entries.len())
        };
        let (id, tag) = entry.as_ref().map_or((self.id, 0), |e| (e.id, e.tag));
        // Dropped outside the borrow: its request reference may be the last,
        // and an untriggered trigger is a user closure (this runs while a
        // request finishes, so a panic in its `Drop` is kept).
        ev.inner.panic.catch(move || drop(entry));
        ev.inner
            .report_queue(crate::trace::EventPoint::Detach, &q.name, tag, id, len);
        if pos == 0 {
            QueueInner::schedule_head(&q, ev);
        }
    }
}

/// A FIFO of requests that take turns (see the module documentation).
///
/// ```
/// use tevent::{Context, Progress, Queue, Req, Request};
///
/// struct Job(u32);
/// impl Request for Job {
///     type Output = u32;
///     type Error = std::convert::Infallible;
/// }
///
/// let ev = Context::new()?;
/// let q = Queue::new(&ev, "jobs");
/// let a = Req::start(&ev, Job(1), |_, _| Ok(Progress::Pending));
/// let b = Req::start(&ev, Job(2), |_, _| Ok(Progress::Pending));
/// // Each finishes when its turn comes (its trigger runs as one of its steps).
/// q.add(&a, |st, _| Ok(Progress::Done(st.0))).unwrap();
/// q.add(&b, |st, _| Ok(Progress::Done(st.0 * 10))).unwrap();
/// assert_eq!(q.len(), 2);
/// assert_eq!(b.poll_recv(&ev)?, Ok(20));
/// assert_eq!(a.recv(), Ok(1));
/// assert!(q.is_empty());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Queue {
    inner: Rc<QueueInner>,
}

impl Queue {
    /// An empty, running queue on `ev`.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let q = tevent::Queue::new(&ev, "writes");
    /// assert_eq!(q.name(), "writes");
    /// assert!(q.is_running() && q.is_empty());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn new(ev: &Context, name: &str) -> Queue {
        Queue {
            inner: Rc::new(QueueInner {
                name: name.to_string(),
                ctx: ev.weak(),
                state: RefCell::new(QueueState {
                    running: true,
                    entries: VecDeque::new(),
                    next_id: 0,
                    scheduled: false,
                }),
            }),
        }
    }

    /// The queue's name.
    ///
    /// ```
    /// use tevent::{Context, Queue, queue_wait_send};
    /// let ev = Context::new()?;
    /// let q = Queue::new(&ev, "smb commands");
    /// assert_eq!(q.name(), "smb commands");
    /// assert!(q.is_empty() && q.is_running());
    /// let w = queue_wait_send(&ev, &q);
    /// assert_eq!(q.len(), 1);
    /// # drop(w);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Entries in the queue, the triggered head included.
    ///
    /// The example of [`name`](Self::name) shows this too.
    pub fn len(&self) -> usize {
        self.inner.state.borrow().entries.len()
    }

    /// Whether the queue has no entries.
    ///
    /// The example of [`name`](Self::name) shows this too.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue triggers its head.
    ///
    /// The example of [`name`](Self::name) shows this too.
    pub fn is_running(&self) -> bool {
        self.inner.state.borrow().running
    }

    /// Stops triggering. A head already triggered stays triggered.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let q = tevent::Queue::new(&ev, "q");
    /// q.stop();
    /// let w = tevent::queue_wait_send(&ev, &q);
    /// ev.loop_wait()?;
    /// assert!(w.is_in_progress()); // not triggered while stopped
    /// q.start();
    /// assert!(w.poll_recv(&ev)?.is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn stop(&self) {
        self.inner.state.borrow_mut().running = false;
    }

    /// Starts triggering again; an untriggered head is triggered from the loop.
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let q = tevent::Queue::new(&ev, "q");
    /// q.stop();
    /// let w = tevent::queue_wait_send(&ev, &q);
    /// q.start(); // the head is triggered from the loop
    /// assert!(w.poll_recv(&ev)?.is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn start(&self) {
        self.inner.state.borrow_mut().running = true;
        if let Ok(ev) = upgrade(&self.inner.ctx) {
            let _scope = ev.enter();
            QueueInner::schedule_head(&self.inner, &ev);
        }
    }

    /// Appends `req` to the queue: when it reaches the head, `trigger` runs as
    /// a step of `req`. The entry goes when `req` finishes or is dropped.
    ///
    /// Fails with `NoMemory` if the entry cannot be allocated (or `req` is a
    /// request that could not be allocated), and with `Cancelled` if `req`
    /// has already finished or is already in a queue.
    ///
    /// ```
    /// use tevent::{Context, Progress, Queue, Req, Request};
    ///
    /// struct Write;
    /// impl Request for Write {
    ///     type Output = &'static str;
    ///     type Error = std::convert::Infallible;
    /// }
    ///
    /// let ev = Context::new()?;
    /// let q = Queue::new(&ev, "writes");
    /// let w = Req::start(&ev, Write, |_, _| Ok(Progress::Pending));
    /// q.add(&w, |_, _| Ok(Progress::Done("my turn")))
    ///     .expect("in progress, in no queue");
    /// assert_eq!(w.poll_recv(&ev)?, Ok("my turn"));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add<T, F>(&self, req: &Req<T>, trigger: F) -> Result<(), ReqError<T::Error>>
    where
        T: Request,
        F: FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T> + 'static,
    {
        let t = TriggerFn::<T, F> {
            f: trigger,
            _t: PhantomData,
        };
        let boxed: Box<dyn Trigger> = if std::mem::size_of::<TriggerFn<T, F>>() == 0 {
            Box::new(t)
        } else {
            crate::alloc::try_box(t).map_err(|_| ReqError::NoMemory)?
        };
        self.add_entry(req.node(), Some(boxed))
            .map_err(Failure::to_req)
    }

    /// Appends a *blocker*: an entry with no trigger that holds its place
    /// (and, at the head, holds the queue) until `req` finishes or is dropped.
    ///
    /// ```
    /// use tevent::{Context, Progress, Queue, Req, Request};
    ///
    /// struct Hold;
    /// impl Request for Hold {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::new()?;
    /// let q = Queue::new(&ev, "q");
    /// let holder = Req::start(&ev, Hold, |_, _| Ok(Progress::Pending));
    /// q.add_blocker(&holder).unwrap();
    /// let waiter = tevent::queue_wait_send(&ev, &q);
    /// ev.loop_wait()?;
    /// assert!(waiter.is_in_progress()); // blocked behind `holder`
    /// drop(holder);
    /// assert!(waiter.poll_recv(&ev)?.is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_blocker<T: Request>(&self, req: &Req<T>) -> Result<(), ReqError<T::Error>> {
        self.add_entry(req.node(), None).map_err(Failure::to_req)
    }

    /// Sets the tag of `req`'s entry in this queue, reported to the queue
    /// trace hook ([`Context::set_queue_trace_hook`]); false if `req` has
    /// no entry here. C tevent's `tevent_queue_entry_set_tag`, with the
    /// entry named by its request (`add` returns no entry).
    ///
    /// ```
    /// use tevent::{Context, Queue, queue_wait_send};
    /// let ev = Context::new()?;
    /// let q = Queue::new(&ev, "q");
    /// let w = queue_wait_send(&ev, &q);
    /// assert_eq!(q.entry_tag(&w), Some(0));
    /// assert!(q.set_entry_tag(&w, 7));
    /// assert_eq!(q.entry_tag(&w), Some(7));
    /// let other = Queue::new(&ev, "other");
    /// assert!(!other.set_entry_tag(&w, 1)); // not in that queue
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_entry_tag<T: Request>(&self, req: &Req<T>, tag: u64) -> bool {
        let Some(node) = req.node() else {
            return false;
        };
        let mut st = self.inner.state.borrow_mut();
        match st.entries.iter_mut().find(|e| e.req.ptr() == node.ptr()) {
            Some(e) => {
                e.tag = tag;
                true
            }
            None => false,
        }
    }

    /// The tag of `req`'s entry in this queue, if it has one here (C
    /// tevent's `tevent_queue_entry_get_tag`).
    ///
    /// ```
    /// use tevent::{Context, Queue, queue_wait_send};
    /// let ev = Context::new()?;
    /// let q = Queue::new(&ev, "q");
    /// let w = queue_wait_send(&ev, &q);
    /// q.set_entry_tag(&w, 3);
    /// assert_eq!(q.entry_tag(&w), Some(3));
    /// drop(w); // its entry goes with it
    /// assert!(q.is_empty());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn entry_tag<T: Request>(&self, req: &Req<T>) -> Option<u64> {
        let node = req.node()?;
        let st = self.inner.state.borrow();
        st.entries
            .iter()
            .find(|e| e.req.ptr() == node.ptr())
            .map(|e| e.tag)
    }

    fn add_entry(
        &self,
        req: Option<&ReqRef>,
        trigger: Option<Box<dyn Trigger>>,
    ) -> Result<(), Failure> {
        let (Some(req), Ok(ev)) = (req, upgrade(&self.inner.ctx)) else {
            return Err(Failure::NoMemory);
        };
        let _scope = ev.enter();
        let h = req.hdr();
        if !h.belongs_to(&ev.inner) {
            return Err(Failure::WrongContext);
        }
        let queued = h
            .extra
            .borrow()
            .as_ref()
            .is_some_and(|e| e[0].queue.is_some());
        if h.state.get() != crate::ReqState::InProgress
            || h.has(crate::req::Flag::REMOVED)
            || queued
        {
            return Err(Failure::Cancelled);
        }
        // Room for the link first, so a failure leaves no entry behind.
        let mut extra = crate::req::extra_mut(h).ok_or(Failure::NoMemory)?;
        let (id, len) = {
            let mut st = self.inner.state.borrow_mut();
            st.entries.try_reserve(1).map_err(|_| Failure::NoMemory)?;
            let id = st.next_id;
            st.next_id += 1;
            st.entries.push_back(Entry {
                id,
                tag: 0,
                req: req.clone(),
                triggered: trigger.is_none(),
                trigger,
            });
            (id, st.entries.len())
        };
        extra.queue = Some(QueueLink {
            queue: Rc::downgrade(&self.inner),
            id,
        });
        drop(extra);
        ev.inner.report_queue(
            crate::trace::EventPoint::Attach,
            &self.inner.name,
            0,
            id,
            len,
        );
        QueueInner::schedule_head(&self.inner, &ev);
        Ok(())
    }
}

impl QueueInner {
    /// Schedules the head's trigger on the loop if it is due.
    fn schedule_head(q: &Rc<QueueInner>, ev: &Context) {
        {
            let mut st = q.state.borrow_mut();
            let due =
                st.running && !st.scheduled && st.entries.front().is_some_and(|e| !e.triggered);
            if !due {
                return;
            }
            st.scheduled = true;
        }
        let weak = Rc::downgrade(q);
        // `post_boxed`, not `post`: this runs inside the runtime's own
        // bookkeeping (a request finishing releases its entry), where a
        // panic kept meanwhile (the trace hook of the post is user code)
        // must wait for the public call that runs the bookkeeping to end.
        ev.post_boxed(Box::new(move |ev: &Context| {
            if let Some(q) = weak.upgrade() {
                QueueInner::trigger_head(&q, ev);
            }
        }));
    }

    /// Runs the head's trigger (from the loop).
    fn trigger_head(q: &Rc<QueueInner>, ev: &Context) {
        let (req, trigger, id, tag, len) = {
            let mut st = q.state.borrow_mut();
            st.scheduled = false;
            if !st.running {
                return;
            }
            // The head may have changed since the trigger was scheduled.
            let Some(head) = st.entries.front_mut() else {
                return;
            };
            if head.triggered {
                return;
            }
            head.triggered = true;
            let (id, tag) = (head.id, head.tag);
            let taken = (head.req.clone(), head.trigger.take());
            (taken.0, taken.1, id, tag, st.entries.len())
        };
        if let Some(t) = trigger {
            // (The hook may end or drop the request, or drop the queue:
            // the trigger then finds its request unable to run a step.)
            ev.inner.report_queue(
                crate::trace::EventPoint::BeforeHandler,
                &q.name,
                tag,
                id,
                len,
            );
            t.run(ev, &req);
        }
    }
}

/// Whether queue points are reported: a queue hook is installed, or the
/// `tracing` feature is on.
#[inline(always)]
fn reporting_queues(inner: &Inner) -> bool {
    cfg!(feature = "tracing") || inner.hooks.has_queue.get()
}

impl Inner {
    /// Reports a queue point to the queue trace hook (and as a `tracing`
    /// event): user code, called where the queue's state is not borrowed.
    #[inline]
    pub(crate) fn report_queue(
        &self,
        point: crate::trace::EventPoint,
        queue: &str,
        tag: u64,
        id: u64,
        len: usize,
    ) {
        if !reporting_queues(self) {
            return;
        }
        #[cfg(feature = "tracing")]
        tracing::trace!(target: "tevent::queue", point = ?point, queue, tag, id, len);
        if self.hooks.has_queue.get() {
            self.hooks.call_queue_hook(
                &self.panic,
                &crate::trace::QueueTrace {
                    point,
                    queue,
                    tag,
                    id,
                    len,
                },
            );
        }
    }
}

/// The entries of dropped queues whose requests are still to be failed
/// (one per context). A request's state may hold a queue, whose drop fails
/// its own requests, whose states may hold queues...: the queues dropped
/// while one is being dropped wait here, and the outermost drop fails them
/// all, so queues nested a million deep use no more stack than one.
#[derive(Default)]
pub(crate) struct DroppedQueues {
    dropping: std::cell::Cell<bool>,
    /// The entries of each queue, with its name if a queue hook wants it.
    pending: RefCell<Vec<(Option<String>, VecDeque<Entry>)>>,
}

impl Drop for Queue {
    /// Finishes every request still in the queue with `QueueDropped`.
    fn drop(&mut self) {
        let entries = std::mem::take(&mut self.inner.state.borrow_mut().entries);
        let Ok(ev) = upgrade(&self.inner.ctx) else {
            return;
        };
        let _scope = ev.enter();
        let dropped = &ev.inner.dropped_queues;
        let name = reporting_queues(&ev.inner).then(|| self.inner.name.clone());
        dropped.pending.borrow_mut().push((name, entries));
        if dropped.dropping.replace(true) {
            return;
        }
        /// Lets the next queue drop fail its entries itself, also if this
        /// one unwinds.
        struct Done<'a>(&'a DroppedQueues);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.dropping.set(false);
            }
        }
        let _done = Done(dropped);
        loop {
            let Some((name, entries)) = dropped.pending.borrow_mut().pop() else {
                break;
            };
            for (i, e) in entries.iter().enumerate() {
                let link = e
                    .req
                    .hdr()
                    .extra
                    .borrow_mut()
                    .as_mut()
                    .and_then(|x| x[0].queue.take());
                drop(link);
                ev.req_fail(&e.req, Failure::QueueDropped);
                if let Some(name) = &name {
                    let left = entries.len() - i - 1;
                    ev.inner.report_queue(
                        crate::trace::EventPoint::Detach,
                        name,
                        e.tag,
                        e.id,
                        left,
                    );
                }
            }
            // Untriggered triggers are user closures: every request of the
            // queue is failed before any of them is dropped.
            ev.inner.panic.catch(move || drop(entries));
        }
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("running", &self.is_running())
            .finish()
    }
}

/// Holding the queue: while the guard lives the queue does not advance past
/// its entry. Dropping it releases the queue.
///
/// ```
/// use tevent::{Context, Queue, queue_wait_recv, queue_wait_send};
///
/// let ev = Context::new()?;
/// let q = Queue::new(&ev, "lock");
/// let first = queue_wait_send(&ev, &q);
/// first.poll(&ev)?;
/// let guard = queue_wait_recv(first).expect("at the head");
/// let next = queue_wait_send(&ev, &q);
/// ev.loop_wait()?;
/// assert!(next.is_in_progress()); // the queue is held while the guard lives
/// drop(guard);
/// assert!(next.poll_recv(&ev)?.is_ok());
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping the guard releases the queue at once"]
pub struct QueueGuard {
    link: Option<QueueLink>,
    ctx: Weak<Inner>,
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        if let (Some(link), Ok(ev)) = (self.link.take(), upgrade(&self.ctx)) {
            let _scope = ev.enter();
            link.release(&ev);
        }
    }
}

impl std::fmt::Debug for QueueGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueGuard")
    }
}

/// The state of a [`queue_wait_send`] request.
///
/// ```
/// let ev = tevent::Context::new()?;
/// let q = tevent::Queue::new(&ev, "lock");
/// let w: tevent::Req<tevent::QueueWait> = tevent::queue_wait_send(&ev, &q);
/// assert!(w.poll_recv(&ev)?.is_ok());
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug)]
pub struct QueueWait;

impl Request for QueueWait {
    type Output = QueueGuard;
    type Error = Infallible;
}

/// A request that finishes when it reaches the head of `queue`; its output is
/// a [`QueueGuard`] that holds the queue until dropped (tevent's
/// `tevent_queue_wait_send`, with the lock made explicit).
///
/// ```
/// use tevent::{Context, Queue, queue_wait_recv, queue_wait_send};
///
/// let ev = Context::new()?;
/// let q = Queue::new(&ev, "one writer");
/// let turn = queue_wait_send(&ev, &q);
/// turn.poll(&ev)?;
/// let _guard = queue_wait_recv(turn).expect("the queue was empty");
/// assert_eq!(q.len(), 1); // our entry, held by the guard
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn queue_wait_send(ev: &Context, queue: &Queue) -> Req<QueueWait> {
    let req = Req::start(ev, QueueWait, |_, _| Ok(Progress::Pending));
    if let Err(e) = queue.add(&req, |_: &mut QueueWait, ctl: &mut Ctl<'_, QueueWait>| {
        let link = ctl.take_queue_link();
        Ok(Progress::Done(QueueGuard {
            link,
            ctx: ctl.ev().weak(),
        }))
    }) {
        // Could not join the queue: finish the request with that error.
        let why = match e {
            ReqError::NoMemory => Failure::NoMemory,
            _ => Failure::QueueDropped,
        };
        if let Some(node) = req.node() {
            ev.req_fail(node, why);
        }
    }
    req
}

/// The guard of a [`queue_wait_send`] request.
///
/// ```
/// let ev = tevent::Context::new()?;
/// let q = tevent::Queue::new(&ev, "q");
/// let w = tevent::queue_wait_send(&ev, &q);
/// w.poll(&ev)?;
/// let guard = tevent::queue_wait_recv(w).expect("at the head");
/// drop(guard); // the next entry may go
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn queue_wait_recv(req: Req<QueueWait>) -> Result<QueueGuard, ReqError<Infallible>> {
    req.recv()
}
