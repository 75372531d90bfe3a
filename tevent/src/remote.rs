//! The thread-safe door into a loop: [`Remote`] queues closures that the loop
//! runs as immediate events.
//!
//! A `Remote` is `Send + Sync + Clone`. [`Remote::send`] appends the closure to
//! a mutex-protected list and wakes the loop through the poller's notifier; the
//! loop moves the whole list, in arrival order, to the tail of its immediate
//! FIFO at the start of its next step (tevent's threaded immediates). Once the
//! context is dropped, `send` fails with [`RemoteError`] and returns nothing to
//! the queue, so no closure is ever accepted and then silently forgotten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use polling::Poller;

use crate::context::Context;

/// A closure sent to a loop from another thread.
///
/// ```
/// let f: tevent::RemoteFn = Box::new(|_ev| println!("on the loop"));
/// let ev = tevent::Context::new()?;
/// ev.remote().send(f)?;
/// ev.loop_once()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type RemoteFn = Box<dyn FnOnce(&Context) + Send + 'static>;

/// `send` failed because the context is gone; the closure is handed back.
///
/// ```
/// let ev = tevent::Context::new()?;
/// let remote = ev.remote();
/// drop(ev);
/// let tevent::RemoteError(f) = remote.send(|_| println!("never runs")).unwrap_err();
/// drop(f); // the closure is back with the caller
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(thiserror::Error)]
#[error("the event context behind this Remote has been dropped")]
pub struct RemoteError(pub RemoteFn);

impl std::fmt::Debug for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteError(..)")
    }
}

struct Queue {
    items: Vec<RemoteFn>,
    closed: bool,
    /// Whose notifier wakes the loop: `None` under Miri (see
    /// `Inner::poller`) and once the context is gone. Replaced in a forked
    /// child (see `crate::fork`).
    poller: Option<Arc<Poller>>,
}

pub(crate) struct RemoteShared {
    queue: Mutex<Queue>,
    pending: AtomicBool,
}

impl RemoteShared {
    pub(crate) fn new(poller: Option<Arc<Poller>>) -> Self {
        RemoteShared {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                closed: false,
                poller,
            }),
            pending: AtomicBool::new(false),
        }
    }

    /// Sets the poller whose notifier wakes the loop; returns the old one.
    pub(crate) fn replace_poller(&self, poller: Option<Arc<Poller>>) -> Option<Arc<Poller>> {
        std::mem::replace(&mut self.lock().poller, poller)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether closures are waiting to be moved onto the loop.
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes the queued closures, in arrival order.
    pub(crate) fn take(&self) -> Vec<RemoteFn> {
        let mut q = self.lock();
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut q.items)
    }

    /// Refuses further sends and returns what was queued, with the poller
    /// (context teardown).
    pub(crate) fn close(&self) -> (Vec<RemoteFn>, Option<Arc<Poller>>) {
        let mut q = self.lock();
        q.closed = true;
        self.pending.store(false, Ordering::Release);
        (std::mem::take(&mut q.items), q.poller.take())
    }
}

/// A `Send + Sync` handle that schedules closures onto a [`Context`]'s loop
/// from any thread. Create it with [`Context::remote`].
///
/// ```
/// use std::sync::mpsc;
/// use tevent::Context;
///
/// let ev = Context::new()?;
/// let remote = ev.remote(); // Send + Sync + Clone
/// let (tx, rx) = mpsc::channel();
/// let worker = std::thread::spawn(move || {
///     remote.send(move |_ev| tx.send("ran on the loop").unwrap()).unwrap();
/// });
/// worker.join().unwrap();
/// ev.loop_wait()?; // a closure sent and not yet run is an event
/// assert_eq!(rx.recv().unwrap(), "ran on the loop");
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<RemoteShared>,
}

impl Remote {
    pub(crate) fn new(shared: Arc<RemoteShared>) -> Remote {
        Remote { shared }
    }

    /// Queues `f` to run on the loop (as an immediate event, after those already
    /// queued) and wakes the loop if it is waiting.
    ///
    /// Fails, handing `f` back, if the context has been dropped.
    ///
    /// ```
    /// use tevent::Context;
    ///
    /// let ev = Context::new()?;
    /// let remote = ev.remote();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// remote.send(move |_| tx.send(1).unwrap()).expect("the context is alive");
    /// ev.loop_once()?;
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// drop(ev);
    /// assert!(remote.send(|_| {}).is_err()); // handed back, never silently lost
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn send(&self, f: impl FnOnce(&Context) + Send + 'static) -> Result<(), RemoteError> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(RemoteError(Box::new(f)));
        }
        q.items.push(Box::new(f));
        self.shared.pending.store(true, Ordering::Release);
        // The notifier coalesces: a burst of sends costs one wake-up write.
        if let Some(p) = &q.poller {
            let _ = p.notify();
        }
        Ok(())
    }

    /// Whether the context is gone (a later `send` will fail).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}
