//! Blocking work off the loop: a worker pool whose jobs are requests, as
//! Samba's `pthreadpool_tevent_job_send` / `_recv`.
//!
//! [`job_send`] runs a closure on a thread of a [`Pool`] and returns a
//! [`Req`] that finishes **on the loop** with the closure's result (delivered
//! through the context's [`Remote`], so the loop wakes up for it). Use it for
//! what must not run on the loop: a blocking system call (`getaddrinfo`,
//! `fsync`, a file read), a long computation, a library without a
//! nonblocking interface.
//!
//! - **Dropping the request discards the result.** A job that has not
//!   started yet is taken out of the queue and never runs (as
//!   `pthreadpool_tevent` cancels a queued job); one already running runs to
//!   its end (a thread cannot be interrupted) and its result is dropped on
//!   the worker thread.
//! - **A panic in a job** finishes its request with [`ReqError::Panicked`];
//!   the worker thread goes on with the next job and the loop is not
//!   disturbed (the panic message is printed by the panic hook, on the
//!   worker thread).
//! - **Threads are bounded**: a pool starts at most `max_threads` threads,
//!   each when a job finds no idle thread, and keeps them until the last
//!   [`Pool`] clone is dropped; then the threads run the jobs still queued
//!   and exit (dropping the pool never blocks the loop, and no accepted job
//!   is lost).
//! - **A saturated pool queues jobs** in FIFO order. The queue is unbounded
//!   (one boxed closure per job); [`Pool::queued`] tells how long it is, for
//!   a caller that wants to apply back-pressure itself.
//! - While a job's request is in progress, the context counts it as an event
//!   ([`Context::has_events`]): `loop_wait` and [`Req::poll`] wait for it
//!   instead of returning (or reporting [`crate::Error::RequestStalled`]).
//!
//! **Finishing a request from another thread.** A `Context` and its
//! requests never leave their thread; another thread finishes a request
//! through a [`Completer`], the `Send` half of [`completion_send`]. It is what
//! the pool uses for every job, and what a thread of your own (or a callback
//! of a threaded library) uses to hand a value to a request on the loop.
//!
//! ```
//! use tevent::Context;
//! use tevent::pool::{Pool, job_recv, job_send};
//!
//! let ev = Context::new()?;
//! let pool = Pool::new(2);
//! let sum = job_send(&ev, &pool, || (1..=100u64).sum::<u64>()); // on a worker
//! sum.poll(&ev)?; // the loop waits for the job
//! assert_eq!(job_recv(sum), Ok(5050));
//! # Ok::<(), tevent::Error>(())
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::context::{Context, Inner};
use crate::{Immediate, Progress, Remote, Req, ReqError, Request, StepResult};

/// What a job (or a [`Completer`]) hands to its request.
type Delivered<R> = Result<R, ReqError<Infallible>>;

/// What a request and its completer share.
struct Shared<R> {
    result: Mutex<Option<Delivered<R>>>,
    /// The request is gone (dropped, finished, or never started): nobody
    /// takes a result any more.
    gone: AtomicBool,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Option<Delivered<R>>> {
        self.result.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts the request as an event of its context while it lives.
struct Hold {
    ctx: Weak<Inner>,
}

impl Hold {
    fn new(ev: &Context) -> Hold {
        let n = &ev.inner.outstanding;
        n.set(n.get() + 1);
        Hold { ctx: ev.weak() }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(inner) = self.ctx.upgrade() {
            inner.outstanding.set(inner.outstanding.get() - 1);
        }
    }
}

/// The state of a request that another thread finishes: a [`job_send`]
/// job, or the request half of [`completion_send`]. Its output is the value
/// handed over.
///
/// ```
/// use tevent::pool::{Job, Pool, job_send};
/// let ev = tevent::Context::new()?;
/// let job: tevent::Req<Job<u8>> = job_send(&ev, &Pool::new(1), || 7);
/// assert_eq!(job.poll_recv(&ev)?, Ok(7));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Job<R: Send + 'static> {
    shared: Arc<Shared<R>>,
    /// Scheduled (from the loop, through the `Remote`) when the value is
    /// there; its handler runs the request's last step.
    wake: Option<Immediate>,
    _hold: Option<Hold>,
}

impl<R: Send + 'static> Request for Job<R> {
    /// The job's result (the value given to [`Completer::complete`]).
    type Output = R;
    /// Never a failure of its own: a job ends with its value, or with
    /// [`ReqError::Panicked`] (the closure panicked) or
    /// [`ReqError::Cancelled`] (the [`Completer`] was dropped unused).
    type Error = Infallible;
}

impl<R: Send + 'static> Job<R> {
    /// The last step: takes what the other thread delivered.
    fn arrived(&mut self, _: &mut crate::Ctl<'_, Self>) -> StepResult<Self> {
        match self.shared.lock().take() {
            Some(Ok(v)) => Ok(Progress::Done(v)),
            Some(Err(e)) => Err(e),
            None => Ok(Progress::Pending),
        }
    }
}

impl<R: Send + 'static> Drop for Job<R> {
    fn drop(&mut self) {
        self.shared.gone.store(true, Ordering::Release);
    }
}

/// The `Send` half of [`completion_send`]: finishes its request, on the
/// request's loop, from any thread.
///
/// Dropping it without calling [`Completer::complete`] finishes the request
/// with [`ReqError::Cancelled`], so a request never waits for a completer
/// that is gone.
///
/// ```
/// use tevent::pool::completion_send;
/// let ev = tevent::Context::new()?;
/// let (req, completer) = completion_send::<u32>(&ev);
/// std::thread::spawn(move || drop(completer)).join().unwrap(); // never completed
/// assert_eq!(req.poll_recv(&ev)?, Err(tevent::ReqError::Cancelled));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Completer<R: Send + 'static> {
    shared: Arc<Shared<R>>,
    remote: Remote,
    /// The request's wake-up immediate (a generational key).
    key: u64,
    used: bool,
}

impl<R: Send + 'static> Completer<R> {
    /// Whether the request still wants a value (it has not been dropped, and
    /// its context is alive). A thread may skip work nobody waits for.
    ///
    /// ```
    /// use tevent::pool::completion_send;
    /// let ev = tevent::Context::new()?;
    /// let (req, completer) = completion_send::<u64>(&ev);
    /// assert!(completer.is_wanted());
    /// drop(req); // nobody waits any more: a thread may skip the work
    /// assert!(!completer.is_wanted());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn is_wanted(&self) -> bool {
        !self.shared.gone.load(Ordering::Acquire) && !self.remote.is_closed()
    }

    /// Finishes the request with `value`: the request's loop wakes up and
    /// the request finishes there, in a step of its own (never inside this
    /// call, which may run on any thread).
    ///
    /// Hands `value` back if the request is gone (dropped, or its context
    /// dropped): nobody will receive it.
    ///
    /// ```
    /// use tevent::pool::completion_send;
    /// let ev = tevent::Context::new()?;
    /// let (req, completer) = completion_send::<&str>(&ev);
    /// std::thread::spawn(move || completer.complete("done").expect("still wanted"));
    /// assert_eq!(req.poll_recv(&ev)?, Ok("done"));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn complete(mut self, value: R) -> Result<(), R> {
        self.used = true;
        self.deliver(Ok(value)).map_err(|back| match back {
            Ok(v) => v,
            Err(_) => unreachable!("handed back as given"),
        })
    }

    /// Finishes the request with a runtime outcome (`Panicked`, `Cancelled`).
    fn fail(mut self, why: ReqError<Infallible>) {
        self.used = true;
        let _ = self.deliver(Err(why));
    }

    fn deliver(&self, r: Delivered<R>) -> Result<(), Delivered<R>> {
        if self.shared.gone.load(Ordering::Acquire) {
            return Err(r);
        }
        *self.shared.lock() = Some(r);
        let key = self.key;
        if self
            .remote
            .send(move |ev| {
                ev.schedule_immediate_key(key);
            })
            .is_err()
        {
            return match self.shared.lock().take() {
                Some(r) => Err(r),
                None => Ok(()),
            };
        }
        Ok(())
    }
}

impl<R: Send + 'static> Drop for Completer<R> {
    fn drop(&mut self) {
        if !self.used {
            self.used = true;
            let _ = self.deliver(Err(ReqError::Cancelled));
        }
    }
}

impl<R: Send + 'static> std::fmt::Debug for Completer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completer")
            .field("wanted", &self.is_wanted())
            .finish()
    }
}

/// A request that another thread finishes, and the [`Completer`] that
/// finishes it: the way to finish a request from outside its loop (C tevent
/// programs use a threaded immediate or a pipe for this).
///
/// The completer is `Send`: move it to the thread that produces the value.
/// While the request is in progress, its context counts it as an event, so
/// `loop_wait` and `poll` wait for the value.
///
/// ```
/// use tevent::Context;
/// use tevent::pool::{completion_send, job_recv};
///
/// let ev = Context::new()?;
/// let (req, completer) = completion_send::<String>(&ev);
/// let t = std::thread::spawn(move || completer.complete("from a thread".to_string()));
/// req.poll(&ev)?;
/// assert_eq!(job_recv(req).unwrap(), "from a thread");
/// assert!(t.join().unwrap().is_ok());
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn completion_send<R: Send + 'static>(ev: &Context) -> (Req<Job<R>>, Completer<R>) {
    let shared = Arc::new(Shared {
        result: Mutex::new(None),
        gone: AtomicBool::new(false),
    });
    let state = Job {
        shared: shared.clone(),
        wake: None,
        _hold: None,
    };
    let mut key = None;
    let req = Req::start(ev, state, |st, ctl| {
        let node = ctl.node_ref().clone();
        let wake = ctl.ev().add_immediate(move |ev, _| {
            ev.run_step::<Job<R>>(&node, Job::arrived);
        });
        key = Some(wake.key_u64());
        st.wake = Some(wake);
        st._hold = Some(Hold::new(ctl.ev()));
        Ok(Progress::Pending)
    });
    if key.is_none() {
        // The request could not be allocated: it is finished `NoMemory`.
        shared.gone.store(true, Ordering::Release);
    }
    let completer = Completer {
        shared,
        remote: ev.remote(),
        key: key.unwrap_or(0),
        used: false,
    };
    (req, completer)
}

/// Takes the result of a [`job_send`] or [`completion_send`] request: the
/// job's value, or [`ReqError::Panicked`] if the job panicked,
/// [`ReqError::Cancelled`] if the completer was dropped unused, and the
/// runtime's other outcomes (`TimedOut` for an end time set on it, ...).
///
/// ```
/// use tevent::pool::{Pool, job_recv, job_send};
/// let ev = tevent::Context::new()?;
/// let job = job_send(&ev, &Pool::new(1), || "blocking result".len());
/// job.poll(&ev)?;
/// assert_eq!(job_recv(job), Ok(15));
/// # Ok::<(), tevent::Error>(())
/// ```
pub fn job_recv<R: Send + 'static>(req: Req<Job<R>>) -> Result<R, ReqError<Infallible>> {
    req.recv()
}

type Task = Box<dyn FnOnce() + Send + 'static>;

struct PoolState {
    queue: VecDeque<Task>,
    /// Worker threads started and not yet exited.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Jobs running now.
    running: usize,
    /// The last `Pool` handle is gone: threads exit once the queue is empty.
    closing: bool,
}

struct PoolShared {
    max_threads: usize,
    state: Mutex<PoolState>,
    work: Condvar,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock and every update is a plain assignment,
        // so a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn worker(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if let Some(task) = st.queue.pop_front() {
                st.running += 1;
                drop(st);
                // A task catches its job's panic itself; this one is a
                // last resort that keeps the thread (and the counts) intact.
                let _ = catch_unwind(AssertUnwindSafe(task));
                st = self.lock();
                st.running -= 1;
                continue;
            }
            if st.closing {
                st.threads -= 1;
                return;
            }
            st.idle += 1;
            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
        }
    }
}

/// The owner's side: when the last [`Pool`] clone goes, the threads are told
/// to exit once the queue is empty.
struct PoolHandle {
    shared: Arc<PoolShared>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
    }
}

/// A bounded pool of worker threads for [`job_send`] (Samba's `pthreadpool`).
///
/// Cheap to clone (an `Arc`), `Send + Sync`: one pool can serve several
/// contexts on several threads. See the [module documentation](self) for
/// what happens to jobs when their request or the pool is dropped.
///
/// ```
/// use tevent::pool::Pool;
///
/// let pool = Pool::new(4);
/// assert_eq!(pool.max_threads(), 4);
/// assert_eq!(pool.threads(), 0); // threads start with the first jobs
/// ```
#[derive(Clone)]
pub struct Pool {
    handle: Arc<PoolHandle>,
}

impl Pool {
    /// A pool of at most `max_threads` worker threads (started on demand,
    /// each when a job finds no idle thread).
    ///
    /// # Panics
    ///
    /// If `max_threads` is 0: such a pool could never run a job.
    ///
    /// ```
    /// let pool = tevent::pool::Pool::new(8); // at most 8 worker threads, started on demand
    /// assert_eq!((pool.max_threads(), pool.threads(), pool.queued()), (8, 0, 0));
    /// ```
    pub fn new(max_threads: usize) -> Pool {
        assert!(max_threads > 0, "a worker pool needs at least one thread");
        Pool {
            handle: Arc::new(PoolHandle {
                shared: Arc::new(PoolShared {
                    max_threads,
                    state: Mutex::new(PoolState {
                        queue: VecDeque::new(),
                        threads: 0,
                        idle: 0,
                        running: 0,
                        closing: false,
                    }),
                    work: Condvar::new(),
                }),
            }),
        }
    }

    fn shared(&self) -> &Arc<PoolShared> {
        &self.handle.shared
    }

    /// The most threads this pool runs at once.
    ///
    /// ```
    /// assert_eq!(tevent::pool::Pool::new(3).max_threads(), 3);
    /// ```
    pub fn max_threads(&self) -> usize {
        self.shared().max_threads
    }

    /// Worker threads started and not exited.
    ///
    /// ```
    /// use tevent::pool::{Pool, job_send};
    /// let ev = tevent::Context::new()?;
    /// let pool = Pool::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let blocked = job_send(&ev, &pool, move || rx.recv().unwrap());
    /// let waiting = job_send(&ev, &pool, || ());
    /// while pool.running() == 0 {
    ///     std::thread::yield_now(); // until the worker took the first job
    /// }
    /// assert_eq!((pool.threads(), pool.running(), pool.queued()), (1, 1, 1));
    /// tx.send(()).unwrap();
    /// assert!(blocked.poll_recv(&ev)?.is_ok() && waiting.poll_recv(&ev)?.is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.shared().lock().threads
    }

    /// Jobs waiting for a thread (not counting those running).
    ///
    /// The example of [`threads`](Self::threads) shows this too.
    pub fn queued(&self) -> usize {
        self.shared().lock().queue.len()
    }

    /// Jobs running on a worker thread now.
    ///
    /// The example of [`threads`](Self::threads) shows this too.
    pub fn running(&self) -> usize {
        self.shared().lock().running
    }

    /// Queues `task`, starting a thread if none is idle and the bound
    /// allows.
    fn submit(&self, task: Task) {
        let shared = self.shared();
        let mut st = shared.lock();
        st.queue.push_back(task);
        if st.idle >= st.queue.len() || st.threads >= shared.max_threads {
            drop(st);
            shared.work.notify_one();
            return;
        }
        st.threads += 1;
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("tevent-pool".into())
            .spawn(move || worker.worker());
        if spawned.is_err() {
            st.threads -= 1;
            if st.threads == 0 {
                // No thread will ever run them: dropping a job's task drops
                // its completer, which finishes the request `Cancelled`.
                let dropped = std::mem::take(&mut st.queue);
                drop(st);
                drop(dropped);
                return;
            }
        }
        drop(st);
        shared.work.notify_one();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared().lock();
        f.debug_struct("Pool")
            .field("max_threads", &self.shared().max_threads)
            .field("threads", &st.threads)
            .field("running", &st.running)
            .field("queued", &st.queue.len())
            .finish()
    }
}

/// Runs `job` on a thread of `pool` and returns a request that finishes on
/// `ev`'s loop with its result (Samba's `pthreadpool_tevent_job_send`).
///
/// The job must be `Send + 'static` (it runs on another thread) and so must
/// its result. It never runs on the loop's thread, and never inside this
/// call. Dropping the request drops the job if it has not started, or its
/// result if it has; a panic in the job finishes the request with
/// [`ReqError::Panicked`]. Use from a step like any subrequest:
/// `ctl.wait(job_send(ctl.ev(), &pool, job), Self::done)?`.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqError};
/// use tevent::pool::{Pool, job_recv, job_send};
///
/// let ev = Context::new()?;
/// let pool = Pool::new(1);
/// let slow = job_send(&ev, &pool, || { std::thread::sleep(Duration::from_millis(10)); 1 });
/// let bad = job_send(&ev, &pool, || -> u32 { panic!("a job that fails") });
/// assert_eq!(slow.poll_recv(&ev)?, Ok(1));
/// assert_eq!(bad.poll_recv(&ev)?, Err(ReqError::Panicked));
/// assert_eq!(pool.threads(), 1); // the worker survived the panic
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn job_send<R, F>(ev: &Context, pool: &Pool, job: F) -> Req<Job<R>>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (req, completer) = completion_send(ev);
    if !completer.is_wanted() {
        // Not even allocated: nothing to run the job for.
        return req;
    }
    pool.submit(Box::new(move || {
        if !completer.is_wanted() {
            // Dropped before the job started: the job never runs.
            return;
        }
        match catch_unwind(AssertUnwindSafe(job)) {
            Ok(value) => {
                // A request dropped meanwhile hands the value back: it is
                // dropped here, on the worker.
                let _ = completer.complete(value);
            }
            Err(payload) => {
                completer.fail(ReqError::Panicked);
                // Its `Drop` is user code too.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            }
        }
    }));
    req
}
