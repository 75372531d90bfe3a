//! Requests: asynchronous computations with a typed state, tevent's
//! `foo_send` / `foo_recv` pairs.
//!
//! A request is a value of a type implementing [`Request`] (its *state*; the
//! type is the request's identity) plus the runtime's bookkeeping. It is
//! started with [`Req::start`], which runs its first step at once; every later
//! step runs because something it waits for happened: a subrequest finished
//! ([`Ctl::wait`]), an fd became ready ([`Ctl::watch_fd`]), its end time passed
//! ([`Ctl::set_endtime`]). A step returns a [`StepResult`]: `Ok(Progress::Pending)`
//! to keep waiting, `Ok(Progress::Done(output))` or `Err(error)` to finish. A
//! request therefore finishes exactly once, by construction: there is no
//! `done()` to call twice.
//!
//! The caller gets a [`Req<T>`] and later calls [`Req::recv`], which consumes
//! it. A parent owns its subrequests; dropping any request drops its subtree,
//! removes their events, runs each cleanup hook once, and calls nothing back.
//!
//! ## When waiters run
//!
//! Notification is never synchronous. When a request finishes, the waiter
//! (the parent's step, or a callback) runs from the loop: after the handler in
//! which it finished returns, before the loop dispatches the next event. A
//! request that finishes inside its own `send` is therefore delivered exactly
//! like any other, so tevent's `tevent_req_post` is unnecessary. A chain of
//! finishing parents is walked iteratively, so nesting depth costs no stack.
//!
//! ## The re-entrancy model
//!
//! The runtime calls user code in many places, and user code may call the
//! runtime back: from safe code, whatever it does, no memory is used after
//! it is freed, every request finishes at most once and its waiter is told
//! exactly once (unless the request is dropped first), and every call that
//! cannot work where it is made returns an error. The rules:
//!
//! | user code | runs from | may call |
//! |---|---|---|
//! | a first step | [`Req::start`] (or a generated `foo_send`) | anything but a loop call on this context ([`Error::Nested`]) |
//! | a later step, a queue trigger | the loop | the same |
//! | a cancel hook | [`Req::cancel`], [`CallbackHandle::cancel`] | the same |
//! | a cleanup hook; `Drop` of a state, an output, an error, a waiter or callback closure, a queue trigger | whatever finishes or drops the request: a step's end, a timeout, dropping or receiving a `Req`, [`CallbackHandle::abort`], dropping a [`Queue`](crate::Queue), dropping the context | the same |
//! | a callback ([`Req::set_callback`]) | the loop | the same |
//! | an event handler, a [`Remote`](crate::Remote) closure, a loop or event trace hook | the loop (an event trace hook also from the call that attached or detached the event) | the same |
//! | the request trace hook ([`Context::set_req_trace_hook`](crate::Context::set_req_trace_hook)) | whatever creates a request (before its first step), runs a step (before it), cancels one, delivers a finished one (before its waiter), or releases one (receiving, dropping, a parent's end, the context's drop) | the same |
//! | the queue trace hook ([`Context::set_queue_trace_hook`](crate::Context::set_queue_trace_hook)) | [`Queue::add`](crate::Queue::add) and its siblings, the loop (before a trigger), whatever removes an entry (its request finishing or dropped, a guard or the queue dropped) | the same |
//! | `Drop` of an event's handler | removing the event | the same |
//! | [`Request::name`] | `Debug` of a request, [`Profile::name`] / [`Profile::render`], [`LiveRequest::name`] / [`RequestTree::render`], when *you* call them; with the `tracing` feature, [`Req::start`] before the request exists; with a request trace hook, each report, just before the hook | anything when you call them (the runtime is not in the middle of anything then); otherwise as the request trace hook |
//!
//! "A loop call" is [`Context::loop_once`](crate::Context::loop_once),
//! `loop_wait`, `loop_until` and [`Req::poll`] of an unfinished request:
//! running the loop there would run steps and deliver notifications under
//! the feet of the code that called this user code (C tevent aborts when a
//! loop nests; here the call returns [`Error::Nested`]). Loop calls on
//! *another* context are fine.
//!
//! Specific refusals: a request may not wait for itself or for a request it
//! runs under ([`ReqError::WaitCycle`]), nor for a request of another
//! context, or of a context that was dropped, wherever the new one was
//! allocated ([`ReqError::WrongContext`]).
//!
//! What the runtime guarantees about what it walks while user code runs:
//!
//! - **No node is freed under a frame.** A frame of the runtime that keeps
//!   a request across user code holds a counted reference to it (an end
//!   time, whose timer holds a bare pointer, checks after the trace hook
//!   that its timer is still there); the runtime's lists hold the owner's
//!   reference of every request on them. On top of that, a request that a
//!   drop removes is released only when the outermost call of its context
//!   that runs user code ends, so a pointer taken before finds it removed,
//!   not freed or recycled. A released request is never counted again, and
//!   a count that would free a request still linked anywhere leaks it
//!   instead.
//! - **Links never point at a gone request.** A subrequest leaves its
//!   parent's list (and forgets its parent) the moment the parent finishes
//!   or is dropped, before any user code runs; an end time leaves the timer
//!   table before its request is released.
//! - **No user code runs inside bookkeeping that is not finished**: hooks,
//!   `Drop`s and trait methods run where the tables are consistent, and a
//!   panic in them is caught there and raised when the public call that
//!   ran them returns ([chapter 1](crate::tutorial::ch1_context), "When user
//!   code panics").
//! - **Nothing recurses over what the user sizes.** Request trees, chains
//!   of states holding requests, queues inside states, handlers owning
//!   events, profiles (dropping, cloning, rendering) are walked with lists
//!   or heap stacks: a million levels cost no stack.
//! - **Counts and identities do not wrap.** Reference counts stick at
//!   their maximum (the request is then never freed); event keys retire a
//!   slot rather than reuse a generation; a [`CallbackHandle`] knows its
//!   own registration from a later one.
//!
//! `tests/reentrancy.rs` checks these rules with random programs issued
//! from every kind of user code; `docs/reliability.md` has its figures.

mod error;
mod hooks;
mod inspect;
mod join;
mod node;
pub(crate) mod profile;
pub(crate) mod step;
mod table;
#[cfg(test)]
mod tests;
mod waiter;
mod wakeup;

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

pub(crate) use error::Failure;
pub use error::ReqError;
pub use inspect::{LiveRequest, RequestTree, Wait};
pub use join::{
    First, JoinAll, NoRequests, Outcome, first_recv, first_send, join_all_recv, join_all_send,
};
pub(crate) use node::{Flag, NodePool, NodePtr, ReqRef};
pub use profile::Profile;
pub use step::{Cancel, Next, StartCtl, StepCtl, StepMachine, Then, glue};
pub use table::{CancelFn, CleanupFn};
pub(crate) use table::{ReqTable, extra_mut};
pub use wakeup::{Wakeup, wakeup_recv, wakeup_send};

use crate::Error;
use crate::context::{Context, Inner};
use crate::fd::{FdEvent, FdFlags, Require};
use crate::slab::Key;
use crate::timer::TimerHandler;
use table::Hooks;
use waiter::Resume;

/// A request type: the state of one asynchronous computation.
///
/// The tutorial: [chapter 3](crate::tutorial::ch3_requests) (requests by
/// hand: steps, subrequests, end times, cancellation), [chapter
/// 5](crate::tutorial::ch5_tevent_request_macro) (the same with
/// `#[tevent_request]`, which implements this trait for you) and [chapter
/// 6](crate::tutorial::ch6_inspecting) (where a request waits, the live
/// request tree, profiles, trace hooks).
///
/// ```
/// use tevent::{Context, Progress, Req, Request};
///
/// /// Adds two numbers, "asynchronously".
/// struct Add { a: u32, b: u32 }
///
/// impl Request for Add {
///     type Output = u32;
///     type Error = std::convert::Infallible;
/// }
///
/// fn add_send(ev: &Context, a: u32, b: u32) -> Req<Add> {
///     Req::start(ev, Add { a, b }, |st, _ctl| Ok(Progress::Done(st.a + st.b)))
/// }
///
/// let ev = Context::new()?;
/// let req = add_send(&ev, 2, 3);
/// req.poll(&ev)?;
/// assert_eq!(req.recv(), Ok(5));
/// # Ok::<(), tevent::Error>(())
/// ```
pub trait Request: Sized + 'static {
    /// What the request produces.
    type Output: 'static;
    /// The request's own error type (carried in [`ReqError::User`]).
    type Error: 'static;

    /// A short name for `Debug` output and profiles (default: the type name
    /// with every module path left out, generic arguments kept:
    /// `tevent::io::ReadSome<std::os::unix::net::UnixStream>` gives
    /// `ReadSome<UnixStream>`). Override it to name a request otherwise.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use tevent::Request;
    /// use tevent::io::ReadSome;
    ///
    /// assert_eq!(ReadSome::<UnixStream>::name(), "ReadSome<UnixStream>");
    ///
    /// struct Login;
    /// impl Request for Login {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    ///     fn name() -> &'static str {
    ///         "login"
    ///     }
    /// }
    /// let ev = tevent::Context::new()?;
    /// let req = tevent::Req::start(&ev, Login, |_, _| Ok(tevent::Progress::Pending));
    /// assert!(format!("{req:?}").contains(r#"type: "login""#));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    fn name() -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// `full` (a `std::any::type_name`) without module paths, in every
/// generic argument too. Names of generic types are computed once per
/// process and kept (a few bytes per request type).
pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    if !full.contains('<') {
        return full.rsplit("::").next().unwrap_or(full);
    }
    /// Keyed by the full name's address and length.
    static SHORT: Mutex<BTreeMap<(usize, usize), &'static str>> = Mutex::new(BTreeMap::new());
    let mut names = SHORT.lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry((full.as_ptr() as usize, full.len()))
        .or_insert_with(|| Box::leak(strip_paths(full).into_boxed_str()))
}

/// Drops every `path::` prefix in a type name: each run of path segments
/// keeps its last segment (closures keep `{{closure}}`).
fn strip_paths(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    // Where the current path began in `out`.
    let mut start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            // `<T as Trait>::Assoc` keeps its separator.
            if out.ends_with('>') {
                out.push_str("::");
                start = out.len();
            } else {
                out.truncate(start);
            }
            rest = after;
            continue;
        }
        out.push(c);
        if matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ' ' | '&' | '*'
        ) {
            start = out.len();
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What a step decided.
///
/// ```
/// use tevent::{Context, Progress, Req, Request};
///
/// struct Countdown(u32);
/// impl Request for Countdown {
///     type Output = &'static str;
///     type Error = std::convert::Infallible;
/// }
/// let ev = Context::new()?;
/// let now = Req::start(&ev, Countdown(0), |st, _| {
///     Ok(if st.0 == 0 { Progress::Done("liftoff") } else { Progress::Pending })
/// });
/// assert_eq!(now.poll_recv(&ev)?, Ok("liftoff"));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<O> {
    /// Keep waiting: something registered in this step will run the next step.
    Pending,
    /// The request is done, with this output.
    Done(O),
}

/// The result of a step of request `T`.
///
/// ```
/// use tevent::{Ctl, Progress, ReqError, Request, StepResult};
///
/// struct Parse { input: String }
/// impl Request for Parse {
///     type Output = u32;
///     type Error = std::num::ParseIntError;
/// }
/// fn parse(st: &mut Parse, _: &mut Ctl<'_, Parse>) -> StepResult<Parse> {
///     let n = st.input.trim().parse()?; // an error of its own ends the request
///     Ok(Progress::Done(n))
/// }
/// let ev = tevent::Context::new()?;
/// let r = tevent::Req::start(&ev, Parse { input: " 42 ".into() }, parse);
/// assert_eq!(r.poll_recv(&ev)?, Ok(42));
/// let r = tevent::Req::start(&ev, Parse { input: "x".into() }, parse);
/// assert!(matches!(r.poll_recv(&ev)?, Err(ReqError::User(_))));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type StepResult<T> = Result<Progress<<T as Request>::Output>, ReqError<<T as Request>::Error>>;

/// Where a request is in its life.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqState, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
/// assert_eq!(nap.state(), ReqState::InProgress);
/// nap.poll(&ev)?;
/// assert_eq!(nap.state(), ReqState::TimedOut); // how a wake-up finishes
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReqState {
    /// Not finished yet.
    InProgress,
    /// Finished with an output.
    Done,
    /// Finished with an error of its own ([`ReqError::User`]) or a runtime error
    /// other than the ones below.
    Error,
    /// Its end time passed.
    TimedOut,
    /// An allocation failed.
    NoMemory,
    /// Cancelled.
    Cancelled,
    /// Dropped before it finished (only ever seen by cleanup hooks).
    Dropped,
}

enum Slot {
    /// A request, with its owner's reference.
    Live(ReqRef),
    /// The request could not even be allocated: it is finished, `NoMemory`
    /// (the context is kept to deliver a callback).
    NoMemory(Weak<Inner>),
}

/// An owned request of type `T`. Dropping it cancels the request and its
/// whole subtree (no callback runs).
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, Req, Wakeup, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap: Req<Wakeup> = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
/// assert!(nap.is_in_progress());
/// drop(nap); // cancelled: its timer is gone, nothing is called back
/// assert!(!ev.has_events());
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping a Req cancels the request"]
pub struct Req<T: Request> {
    /// Dropped by hand, in `Drop` or `into_slot`.
    slot: ManuallyDrop<Slot>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Request> Req<T> {
    /// Creates a request with `state` and runs its first step, `first`.
    ///
    /// `first` registers what the request waits for and returns
    /// `Ok(Progress::Pending)`, or finishes it at once. Either way the caller
    /// is notified from the loop, never from inside `start`.
    ///
    /// If the request cannot be allocated, the returned handle is a finished
    /// request in state [`ReqState::NoMemory`] (and `first` does not run).
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// /// Counts to `n`, one loop step at a time.
    /// struct Count { n: u32, at: u32 }
    /// impl Request for Count {
    ///     type Output = u32;
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn tick(st: &mut Count, ctl: &mut Ctl<'_, Count>, _: Req<Wakeup>) -> StepResult<Count> {
    ///     st.at += 1;
    ///     if st.at == st.n {
    ///         return Ok(Progress::Done(st.at));
    ///     }
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), tick)?;
    ///     Ok(Progress::Pending)
    /// }
    /// fn count_send(ev: &Context, n: u32) -> Req<Count> {
    ///     Req::start(ev, Count { n, at: 0 }, |_, ctl| {
    ///         ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), tick)?;
    ///         Ok(Progress::Pending)
    ///     })
    /// }
    ///
    /// let ev = Context::new()?;
    /// assert_eq!(count_send(&ev, 3).poll_recv(&ev)?, Ok(3));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[track_caller]
    pub fn start(
        ev: &Context,
        state: T,
        first: impl FnOnce(&mut T, &mut Ctl<'_, T>) -> StepResult<T>,
    ) -> Req<T> {
        // A panic of `first` (kept while the request is finished) leaves
        // after the handle exists, so it is dropped on the way out.
        let scope = ev.enter();
        let slot = match ev.req_create(state, Location::caller(), first) {
            Some(node) => Slot::Live(node),
            None => Slot::NoMemory(ev.weak()),
        };
        scope.end(Req {
            slot: ManuallyDrop::new(slot),
            _t: PhantomData,
        })
    }

    /// A handle for a request the runtime held until now (the completion
    /// queue hands it over with its owner's reference).
    pub(crate) fn adopt(node: ReqRef) -> Req<T> {
        Req {
            slot: ManuallyDrop::new(Slot::Live(node)),
            _t: PhantomData,
        }
    }

    /// Takes the slot out, consuming the handle without running its `Drop`.
    #[inline]
    fn into_slot(self) -> Slot {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `me` is neither used nor dropped after this, so the slot is
        // moved out exactly once.
        unsafe { ManuallyDrop::take(&mut me.slot) }
    }

    /// The request and its context, if both are still there.
    fn live(&self) -> Option<(Context, &ReqRef)> {
        match &*self.slot {
            Slot::Live(node) => node.hdr().context().map(|ev| (ev, node)),
            _ => None,
        }
    }

    /// Where the request is in its life.
    ///
    /// ```
    /// use tevent::{Context, ReqState, wakeup_send};
    /// let ev = Context::with_manual_clock(true)?;
    /// let w = wakeup_send(&ev, ev.now());
    /// assert_eq!(w.state(), ReqState::InProgress);
    /// w.poll(&ev)?;
    /// assert_eq!(w.state(), ReqState::TimedOut);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn state(&self) -> ReqState {
        match &*self.slot {
            Slot::NoMemory(_) => ReqState::NoMemory,
            // Removed: by its context's teardown.
            Slot::Live(node) if !node.hdr().has(Flag::REMOVED) => node.hdr().state.get(),
            _ => ReqState::Dropped,
        }
    }

    /// Whether the request has not finished yet.
    ///
    /// ```
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now());
    /// assert!(w.is_in_progress()); // finishes at the next loop step, never inside send
    /// w.poll(&ev)?;
    /// assert!(!w.is_in_progress());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn is_in_progress(&self) -> bool {
        self.state() == ReqState::InProgress
    }

    /// Takes the result, consuming the handle (tevent's `foo_recv`).
    ///
    /// A request received before it finished is dropped (cancelled) and the
    /// result is `Err(ReqError::InProgress)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqError, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// nap.poll(&ev)?;
    /// assert_eq!(nap.recv(), Err(ReqError::TimedOut));
    /// let early = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// assert_eq!(early.recv(), Err(ReqError::InProgress)); // and it is dropped
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[inline]
    pub fn recv(self) -> Result<T::Output, ReqError<T::Error>> {
        let node = match self.into_slot() {
            Slot::Live(node) => node,
            Slot::NoMemory(_) => return Err(ReqError::NoMemory),
        };
        table::req_recv::<T>(node)
    }

    /// [`Req::recv`], converting the error into the caller's error type: the
    /// `User` payload goes through `From`, timeouts, no-memory and the other
    /// runtime outcomes stay as they are. In a step, `sub.recv_into()?`
    /// propagates a subrequest's failure whatever its error type.
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct MyError;
    /// impl From<std::convert::Infallible> for MyError {
    ///     fn from(never: std::convert::Infallible) -> Self { match never {} }
    /// }
    /// struct Op;
    /// impl Request for Op {
    ///     type Output = ();
    ///     type Error = MyError;
    /// }
    /// fn woke(_: &mut Op, _: &mut Ctl<'_, Op>, sub: Req<Wakeup>) -> StepResult<Op> {
    ///     sub.recv_into()?; // a wake-up "fails" TimedOut: propagated as is
    ///     Ok(Progress::Done(()))
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let op = Req::start(&ev, Op, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), woke)?;
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(op.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn recv_into<E2: From<T::Error>>(self) -> Result<T::Output, ReqError<E2>> {
        self.recv().map_err(ReqError::convert)
    }

    /// Runs the loop until the request is finished (tevent's `tevent_req_poll`).
    ///
    /// # Errors
    ///
    /// [`Error::Nested`] if the request is unfinished and this is called
    /// from inside a handler or any other user code the same context runs
    /// (a step, a hook, a callback, a `Drop`): the loop cannot run there (C
    /// tevent aborts; a finished request needs no loop, and polling it is
    /// fine anywhere); [`Error::WrongContext`] if `ev` is not the context the
    /// request was started on (that loop could never finish it);
    /// [`Error::RequestStalled`] if the request is unfinished and the
    /// context has no event left that could finish it (C tevent would wait
    /// forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Error, Progress, Req, Request, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// nap.poll(&ev)?; // runs the loop until it finished
    /// assert!(!nap.is_in_progress());
    ///
    /// struct Never;
    /// impl Request for Never {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let stuck = Req::start(&ev, Never, |_, _| Ok(Progress::Pending));
    /// assert!(matches!(stuck.poll(&ev), Err(Error::RequestStalled))); // C would hang
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn poll(&self, ev: &Context) -> Result<(), Error> {
        let ours = match &*self.slot {
            Slot::Live(node) => node.hdr().belongs_to(&ev.inner),
            Slot::NoMemory(ctx) => std::ptr::eq(ctx.as_ptr(), Rc::as_ptr(&ev.inner)),
        };
        if !ours {
            return Err(Error::WrongContext);
        }
        while self.is_in_progress() {
            if !ev.step_for_poll()? {
                return Err(Error::RequestStalled);
            }
        }
        Ok(())
    }

    /// Runs the loop until the request is finished, then takes its result:
    /// [`Req::poll`] and [`Req::recv`] in one call (tevent's `tevent_req_poll`
    /// followed by `foo_recv`).
    ///
    /// The two kinds of failure stay apart, as in C, where `tevent_req_poll`
    /// returning false is checked before `foo_recv` runs: the **outer**
    /// `Result` is the loop's ([`Error::Nested`], [`Error::WrongContext`],
    /// [`Error::RequestStalled`], a poller failure), the **inner** one is the
    /// request's own result. In a function that returns [`Error`] (as `main`
    /// or a test often does), `req.poll_recv(&ev)?` leaves the request's
    /// result. If the loop fails, the request is dropped (cancelled) with the
    /// handle, as if it had been received unfinished.
    ///
    /// ```
    /// use tevent::{Context, ReqError, wakeup_send};
    /// use std::time::Duration;
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// // A wake-up "finishes" timed out: that is the request's result.
    /// assert_eq!(nap.poll_recv(&ev)?, Err(ReqError::TimedOut));
    ///
    /// let other = Context::new()?;
    /// let nap = wakeup_send(&ev, ev.now());
    /// // Polled on the wrong context: the loop's error, the request is dropped.
    /// assert!(matches!(nap.poll_recv(&other), Err(tevent::Error::WrongContext)));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn poll_recv(self, ev: &Context) -> Result<Result<T::Output, ReqError<T::Error>>, Error> {
        self.poll(ev)?;
        Ok(self.recv())
    }

    /// Hands the request to the context and runs `callback` with it, from the
    /// loop, once it finished (at once if it already has): tevent's
    /// `tevent_req_set_callback`. Dropping the context first drops the
    /// request and the callback unrun.
    ///
    /// The returned [`CallbackHandle`] keeps the caller in charge of the
    /// request until the callback runs, as the C caller who keeps the
    /// `struct tevent_req *` is: [`CallbackHandle::abort`] drops the request
    /// and the callback unrun (C's `TALLOC_FREE(req)`),
    /// [`CallbackHandle::cancel`] asks for cooperative cancellation
    /// (`tevent_req_cancel`). Dropping the handle does *neither*: the
    /// request goes on and the callback runs (like dropping a tokio
    /// `JoinHandle`, it detaches), so `req.set_callback(..);` without keeping
    /// the handle is the fire-and-forget form.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use tevent::{Context, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let fired = Rc::new(Cell::new(0));
    /// let f = fired.clone();
    /// wakeup_send(&ev, ev.now() + Duration::from_secs(1))
    ///     .set_callback(move |_ev, req| { assert!(tevent::wakeup_recv(req)); f.set(f.get() + 1) });
    /// let f = fired.clone();
    /// let handle = wakeup_send(&ev, ev.now() + Duration::from_secs(2))
    ///     .set_callback(move |_, _| f.set(f.get() + 100));
    /// assert!(handle.abort()); // cancelled: the request and its callback are gone
    /// ev.loop_wait()?;
    /// assert_eq!(fired.get(), 1);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_callback(
        self,
        callback: impl FnOnce(&Context, Req<T>) + 'static,
    ) -> CallbackHandle<T> {
        match self.into_slot() {
            Slot::Live(node) => {
                let Some(ev) = node.hdr().context() else {
                    return CallbackHandle::gone();
                };
                let _scope = ev.enter();
                let registered = ev.req_wait(
                    None,
                    &node,
                    Callback::<T, _> {
                        f: callback,
                        _t: PhantomData,
                    },
                );
                match registered {
                    Ok(_) => {
                        // The runtime holds the owner's reference now; the
                        // handle keeps a counted one to find the request,
                        // and the registration's epoch to know it is its own.
                        let epoch = node.hdr().epoch.get();
                        let watch = node.clone();
                        let _ = node.into_raw();
                        CallbackHandle {
                            target: Target::Node(watch, epoch),
                            _t: PhantomData,
                        }
                    }
                    // Out of memory even for the waiter's bookkeeping: the
                    // request could never be delivered, so it is dropped
                    // (cleanup hooks run) together with the callback.
                    Err(_) => {
                        ev.req_drop_owned(node);
                        CallbackHandle::gone()
                    }
                }
            }
            Slot::NoMemory(ctx) => {
                let Some(inner) = ctx.upgrade() else {
                    return CallbackHandle::gone();
                };
                let aborted = Rc::new(std::cell::Cell::new(false));
                let flag = aborted.clone();
                Context { inner }.post(move |ev| {
                    if flag.replace(true) {
                        return;
                    }
                    callback(
                        ev,
                        Req {
                            slot: ManuallyDrop::new(Slot::NoMemory(ev.weak())),
                            _t: PhantomData,
                        },
                    )
                });
                CallbackHandle {
                    target: Target::NoMemory(aborted),
                    _t: PhantomData,
                }
            }
        }
    }

    /// Asks the request to cancel itself: runs its cancel hook (see
    /// [`Ctl::set_cancel`]). Returns whether cancellation started; the request
    /// still finishes through the normal path, and only its result says
    /// whether it really was cancelled. Without a hook, or once finished, this
    /// returns false (tevent's `tevent_req_cancel`).
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};
    ///
    /// struct Op;
    /// impl Request for Op {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn on_cancel(_: &mut Op, _: &mut Ctl<'_, Op>) -> Option<StepResult<Op>> {
    ///     Some(Err(ReqError::Cancelled))
    /// }
    /// let ev = Context::new()?;
    /// let op = Req::start(&ev, Op, |_, ctl| {
    ///     ctl.set_cancel(on_cancel);
    ///     Ok(Progress::Pending)
    /// });
    /// assert!(op.cancel()); // cancellation started (here it finished at once)
    /// assert_eq!(op.poll_recv(&ev)?, Err(ReqError::Cancelled));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        let Some((ev, node)) = self.live() else {
            return false;
        };
        cancel_node::<T>(&ev, node)
    }

    /// Sets (or moves) the request's end time: if it has not finished by
    /// `at`, it finishes [`ReqError::TimedOut`] and its subtree is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqError, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let t0 = ev.now();
    /// let slow = wakeup_send(&ev, t0 + Duration::from_secs(60));
    /// slow.set_endtime(t0 + Duration::from_secs(2))?;
    /// assert_eq!(slow.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// assert_eq!(ev.now(), t0 + Duration::from_secs(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        match (&*self.slot, self.live()) {
            (_, Some((ev, node))) => {
                let _scope = ev.enter();
                ev.req_set_endtime(node, at).map_err(Failure::to_req)
            }
            (Slot::NoMemory(_), _) => Err(ReqError::NoMemory),
            _ => Err(ReqError::ContextGone),
        }
    }

    /// Removes the end time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(10));
    /// w.reset_endtime(); // a wake-up *is* an end time: now nothing can finish it
    /// assert!(matches!(w.poll(&ev), Err(tevent::Error::RequestStalled)));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn reset_endtime(&self) {
        if let Some((ev, node)) = self.live() {
            let _scope = ev.enter();
            ev.req_reset_endtime(node);
        }
    }

    /// Starts recording a [`Profile`] of this request, of the subrequests it
    /// already waits for (their start is now) and of every subrequest it waits
    /// for from now on. Returns false if it could not be allocated.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// assert!(w.enable_profile());
    /// w.poll(&ev)?;
    /// let p = w.take_profile().expect("profiled");
    /// assert_eq!(p.len(), 1); // just this request: it has no subrequests
    /// println!("{}", p.render());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn enable_profile(&self) -> bool {
        self.live()
            .is_some_and(|(ev, node)| ev.profile_start(node.ptr()))
    }

    /// Takes the profile out (after the request finished, it holds the
    /// subrequests' profiles too). The profile outlives the request.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = tevent::Context::with_manual_clock(true)?;
    /// let w = tevent::wakeup_send(&ev, ev.now() + Duration::from_secs(1));
    /// assert!(w.enable_profile());
    /// w.poll(&ev)?;
    /// let p = w.take_profile().expect("profiled");
    /// assert_eq!(p.len(), 1); // just this request: it has no subrequests
    /// println!("{}", p.render());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn take_profile(&self) -> Option<Profile> {
        self.live()
            .and_then(|(_, node)| crate::req::profile::take(node.hdr()))
    }

    /// Where the request was created (the caller of `Req::start`).
    ///
    /// ```
    /// let ev = tevent::Context::new()?;
    /// let w = tevent::wakeup_send(&ev, ev.now());
    /// assert!(w.location().unwrap().file().ends_with(".rs")); // where wakeup_send was called
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.live().map(|(_, node)| node.hdr().created)
    }

    /// The request's node, unless it could not be allocated.
    pub(crate) fn node(&self) -> Option<&ReqRef> {
        match &*self.slot {
            Slot::Live(node) => Some(node),
            _ => None,
        }
    }
}

impl<T: Request> Drop for Req<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and the slot is not used afterwards.
        let slot = unsafe { ManuallyDrop::take(&mut self.slot) };
        if let Slot::Live(node) = slot {
            // Once the context is gone, its teardown has dropped the request:
            // only the memory is left, freed with this last reference.
            if let Some(ev) = node.hdr().context() {
                let _scope = ev.enter();
                ev.req_drop_owned(node);
            }
        }
    }
}

impl<T: Request> std::fmt::Debug for Req<T> {
    /// `Req { type: "Echo@read", step: Read { .. }, state: InProgress,
    /// created: "file:line:col", waits: "[read] ReadPooled<TcpStream>: fd 5
    /// READ" }`: the type's name, followed by the step(s) the request waits
    /// in (see [`Req::waiting_in`]); for a `#[tevent_request]` request
    /// waiting in a step, that step with the values its transition carries
    /// (shown with their `Debug` where they have one); and, while it waits
    /// for something, the chain of its waits down to the last subrequest (as
    /// a line of a [`RequestTree`]; several subrequests in `[a | b]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What the request waits for is read first, and the context let go
        // of: the names (user code, which may drop the context's last
        // handle) are asked for once nothing of the runtime is held.
        let tree = self.live().map(|(ev, node)| ev.subtree(node.ptr()));
        let waits = tree.as_ref().and_then(inspect::waits_text);
        let mut d = f.debug_struct("Req");
        d.field(
            "type",
            &step::Waiting(T::name(), &self.waiting_in()).to_string(),
        );
        if let Some((ev, node)) = self.live()
            && node.hdr().first_child.get().is_some()
        {
            d.field("step", &step::WaitsOf(&ev, node));
        }
        d.field("state", &self.state());
        if let Some(loc) = self.location() {
            d.field(
                "created",
                &format_args!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
            );
        }
        if let Some(w) = waits {
            d.field("waits", &w);
        }
        d.finish()
    }
}

/// The caller's hold on a request handed to [`Req::set_callback`]: it can
/// still cancel or drop the request until the callback runs.
///
/// Dropping the handle detaches: the request goes on and its callback runs.
/// Once the callback ran (it received the request) or the context was
/// dropped, the handle's methods do nothing and return false.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqState, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let handle = wakeup_send(&ev, ev.now() + Duration::from_secs(5))
///     .set_callback(|_, _| unreachable!("aborted before it finished"));
/// assert!(handle.is_pending());
/// assert_eq!(handle.state(), ReqState::InProgress);
/// assert!(handle.abort());
/// assert!(!ev.has_events()); // its timer went with it
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct CallbackHandle<T: Request> {
    target: Target,
    _t: PhantomData<fn() -> T>,
}

enum Target {
    /// A counted reference (not the owner's) to the request, and the epoch
    /// of this registration (a callback that ran hands the request to a new
    /// handle, which may register another).
    Node(ReqRef, u64),
    /// A request that could not be allocated: its callback is posted; the
    /// flag, once set, stops it.
    NoMemory(Rc<std::cell::Cell<bool>>),
    /// Nothing left to control.
    Gone,
}

impl<T: Request> CallbackHandle<T> {
    fn gone() -> Self {
        CallbackHandle {
            target: Target::Gone,
            _t: PhantomData,
        }
    }

    /// The request, while the runtime still holds it for the callback (the
    /// callback has not run and the context is alive).
    fn held(&self) -> Option<(Context, &ReqRef)> {
        let Target::Node(node, epoch) = &self.target else {
            return None;
        };
        let h = node.hdr();
        if h.owner.get() != table::Owner::Context || h.has(Flag::DOOMED) || h.epoch.get() != *epoch
        {
            return None;
        }
        h.context().map(|ev| (ev, node))
    }

    /// Whether the callback has not run yet (and still will, unless the
    /// request is aborted or the context dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqState, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let h = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(|_, _| {});
    /// assert!(h.is_pending());
    /// assert_eq!(h.state(), ReqState::InProgress);
    /// assert!(!h.cancel()); // a wake-up has no cancel hook
    /// ev.loop_wait()?;
    /// assert!(!h.is_pending()); // the callback ran
    /// assert!(!h.abort());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn is_pending(&self) -> bool {
        match &self.target {
            Target::NoMemory(done) => !done.get(),
            _ => self.held().is_some(),
        }
    }

    /// Where the request is in its life: [`ReqState::Dropped`] once it was
    /// aborted, handed to its callback, or dropped with its context.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqState, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let h = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(|_, _| {});
    /// assert!(h.is_pending());
    /// assert_eq!(h.state(), ReqState::InProgress);
    /// assert!(!h.cancel()); // a wake-up has no cancel hook
    /// ev.loop_wait()?;
    /// assert!(!h.is_pending()); // the callback ran
    /// assert!(!h.abort());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn state(&self) -> ReqState {
        match &self.target {
            Target::NoMemory(done) if !done.get() => ReqState::NoMemory,
            _ => self
                .held()
                .map_or(ReqState::Dropped, |(_, n)| n.hdr().state.get()),
        }
    }

    /// Asks the request to cancel itself through its cancel hook, as
    /// [`Req::cancel`] does (tevent's `tevent_req_cancel`); the callback
    /// then runs with the request's outcome. False if cancellation did not
    /// start (no hook, already finished, or the callback already ran).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqState, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let h = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(|_, _| {});
    /// assert!(h.is_pending());
    /// assert_eq!(h.state(), ReqState::InProgress);
    /// assert!(!h.cancel()); // a wake-up has no cancel hook
    /// ev.loop_wait()?;
    /// assert!(!h.is_pending()); // the callback ran
    /// assert!(!h.abort());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        let Some((ev, node)) = self.held() else {
            return false;
        };
        if node.hdr().state.get() != ReqState::InProgress {
            return false;
        }
        cancel_node::<T>(&ev, node)
    }

    /// Drops the request (its subtree, events and cleanup hooks, as dropping
    /// a [`Req`] does) and the callback unrun: C's `TALLOC_FREE(req)` after
    /// `tevent_req_set_callback`. Returns whether there was something to
    /// drop (false once the callback ran or the context is gone). Works
    /// whether the request is still running or finished and waiting for its
    /// callback's turn.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, ReqState, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let h = wakeup_send(&ev, ev.now() + Duration::from_secs(1)).set_callback(|_, _| {});
    /// assert!(h.is_pending());
    /// assert_eq!(h.state(), ReqState::InProgress);
    /// assert!(!h.cancel()); // a wake-up has no cancel hook
    /// ev.loop_wait()?;
    /// assert!(!h.is_pending()); // the callback ran
    /// assert!(!h.abort());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn abort(self) -> bool {
        match &self.target {
            Target::NoMemory(done) => !done.replace(true),
            _ => {
                let Some((ev, node)) = self.held() else {
                    return false;
                };
                let _scope = ev.enter();
                // The runtime holds the owner's reference (owner `Context`),
                // which the drop takes over.
                ev.req_drop(node.ptr());
                true
            }
        }
    }
}

impl<T: Request> std::fmt::Debug for CallbackHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("type", &T::name())
            .field("state", &self.state())
            .field("pending", &self.is_pending())
            .finish()
    }
}

/// What a step may do besides changing its state: wait for subrequests and
/// events, set its end time and hooks. A step gets `&mut Ctl<Self>`.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
///
/// struct Nap;
/// impl Request for Nap {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// fn woke(_: &mut Nap, _: &mut Ctl<'_, Nap>, _: Req<Wakeup>) -> StepResult<Nap> {
///     Ok(Progress::Done(()))
/// }
/// let ev = Context::with_manual_clock(true)?;
/// let nap = Req::start(&ev, Nap, |_, ctl: &mut Ctl<'_, Nap>| {
///     ctl.set_timeout(Duration::from_secs(10))?; // an end time for the whole request
///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1)), woke)?;
///     Ok(Progress::Pending)
/// });
/// assert_eq!(nap.poll_recv(&ev)?, Ok(()));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Ctl<'a, T: Request> {
    ev: &'a Context,
    node: &'a ReqRef,
    hooks: &'a mut Hooks<T>,
}

impl<'a, T: Request> Ctl<'a, T> {
    pub(crate) fn new(ev: &'a Context, node: &'a ReqRef, hooks: &'a mut Hooks<T>) -> Self {
        Ctl { ev, node, hooks }
    }

    /// The context the request runs on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     let soon = ctl.ev().now() + Duration::from_secs(1);
    ///     ctl.set_endtime(soon)?;
    ///     ctl.reset_endtime(); // changed its mind
    ///     ctl.set_endtime(soon + Duration::from_secs(1))?;
    ///     ctl.enable_profile();
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn ev(&self) -> &'a Context {
        self.ev
    }

    /// The request's node (for the runtime's own requests).
    pub(crate) fn node_ref(&self) -> &'a ReqRef {
        self.node
    }

    /// Waits for `sub`: when it finishes, `then` runs as the next step of this
    /// request and receives the finished subrequest (call `recv` on it).
    ///
    /// The subrequest is owned by this request until then: if this request
    /// finishes or is dropped first, `sub` is dropped (cancelled). A `then`
    /// that is a plain function (or a closure capturing nothing) costs no
    /// allocation.
    ///
    /// Fails with `NoMemory` if `sub` could not be allocated or the wait could
    /// not be recorded; `ctl.wait(sub, ..)?` then finishes this request
    /// `NoMemory` (tevent's `tevent_req_nomem(subreq, req)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_recv, wakeup_send};
    ///
    /// /// Waits for two wake-ups in parallel.
    /// struct Both { left: u32 }
    /// impl Request for Both {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn one_done(st: &mut Both, _: &mut Ctl<'_, Both>, sub: Req<Wakeup>) -> StepResult<Both> {
    ///     assert!(wakeup_recv(sub));
    ///     st.left -= 1;
    ///     Ok(if st.left == 0 { Progress::Done(()) } else { Progress::Pending })
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let t0 = ev.now();
    /// let both = Req::start(&ev, Both { left: 2 }, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), t0 + Duration::from_secs(1)), one_done)?;
    ///     ctl.wait(wakeup_send(ctl.ev(), t0 + Duration::from_secs(2)), one_done)?;
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(both.poll_recv(&ev)?, Ok(()));
    /// assert_eq!(ev.now(), t0 + Duration::from_secs(2));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn wait<C: Request>(
        &self,
        sub: Req<C>,
        then: impl FnOnce(&mut T, &mut Ctl<'_, T>, Req<C>) -> StepResult<T> + 'static,
    ) -> Result<(), ReqError<T::Error>> {
        self.wait_with(
            sub,
            WaitFor::<T, C, _> {
                f: then,
                _t: PhantomData,
            },
        )
    }

    /// Waits for `sub` with waiter `resume` (a step closure of
    /// [`Ctl::wait`], or a generated transition), always inlined (the
    /// generated successor methods call it).
    #[inline(always)]
    pub(crate) fn wait_with<C: Request, R: Resume>(
        &self,
        sub: Req<C>,
        resume: R,
    ) -> Result<(), ReqError<T::Error>> {
        let Slot::Live(child) = &*sub.slot else {
            return Err(ReqError::NoMemory);
        };
        let profiled = self
            .ev
            .req_wait(Some(self.node), child, resume)
            .map_err(Failure::to_req)?;
        let Slot::Live(child) = sub.into_slot() else {
            unreachable!("checked above")
        };
        // The parent holds the owner's reference now.
        let child = child.into_raw();
        if profiled {
            self.ev.profile_start(child);
        }
        Ok(())
    }

    /// Sets (or moves) this request's end time (see [`Req::set_endtime`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     let soon = ctl.ev().now() + Duration::from_secs(1);
    ///     ctl.set_endtime(soon)?;
    ///     ctl.reset_endtime(); // changed its mind
    ///     ctl.set_endtime(soon + Duration::from_secs(1))?;
    ///     ctl.enable_profile();
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        self.ev
            .req_set_endtime(self.node, at)
            .map_err(Failure::to_req)
    }

    /// Sets this request's end time `after` from now (clamped to
    /// [`FAR_FUTURE`](crate::FAR_FUTURE), so `Duration::MAX` means "never").
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Forever;
    /// impl Request for Forever {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Forever, |_, ctl| {
    ///     ctl.set_timeout(Duration::from_secs(3))?; // 3 s from now, on the context's clock
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_timeout(&self, after: Duration) -> Result<(), ReqError<T::Error>> {
        let at = self.ev.deadline_after(after);
        self.set_endtime(at)
    }

    /// Removes this request's end time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     let soon = ctl.ev().now() + Duration::from_secs(1);
    ///     ctl.set_endtime(soon)?;
    ///     ctl.reset_endtime(); // changed its mind
    ///     ctl.set_endtime(soon + Duration::from_secs(1))?;
    ///     ctl.enable_profile();
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn reset_endtime(&self) {
        self.ev.req_reset_endtime(self.node);
    }

    /// Sets the cleanup hook: it runs exactly once, when the state is dropped,
    /// with the state the request reached ([`ReqState::Dropped`] if the
    /// request was dropped unfinished).
    ///
    /// ```
    /// use tevent::{Context, Progress, Req, ReqState, Request};
    ///
    /// struct Tmp { path: &'static str, removed: std::rc::Rc<std::cell::Cell<bool>> }
    /// impl Request for Tmp {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::new()?;
    /// let removed = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let r = Req::start(&ev, Tmp { path: "/tmp/x", removed: removed.clone() }, |_, ctl| {
    ///     ctl.set_cleanup(|st, reached| {
    ///         assert_eq!(reached, ReqState::Done);
    ///         st.removed.set(!st.path.is_empty()); // e.g. remove the file
    ///     });
    ///     Ok(Progress::Done(()))
    /// });
    /// assert!(removed.get()); // the state is dropped as soon as the request finishes
    /// assert_eq!(r.poll_recv(&ev)?, Ok(()));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_cleanup(&mut self, hook: CleanupFn<T>) {
        self.hooks.cleanup = Some(hook);
    }

    /// Sets the cancel hook run by [`Req::cancel`].
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, Request, StepResult};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn cancel(_: &mut Job, _: &mut Ctl<'_, Job>) -> Option<StepResult<Job>> {
    ///     Some(Err(ReqError::Cancelled))
    /// }
    /// let ev = Context::new()?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     ctl.set_cancel(cancel);
    ///     Ok(Progress::Pending)
    /// });
    /// assert!(r.cancel());
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::Cancelled));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_cancel(&mut self, hook: CancelFn<T>) {
        self.hooks.cancel = Some(step::CancelHook::Step(hook));
    }

    /// Watches `fd` for this request: while the returned watcher is alive
    /// (keep it in the state), each readiness runs `step` as a step of this
    /// request, with the ready flags. Dropping the state drops the watcher.
    ///
    /// The fd must be nonblocking: a step that reads or writes once too
    /// often (readiness is only a hint) would otherwise block the whole loop.
    /// A blocking fd is refused with [`Error::Blocking`]. The check is one
    /// `fcntl(F_GETFL)` when the fd gets its entry in the context's fd table
    /// (or when the first request watcher joins an entry made by a plain
    /// [`Context::add_fd_shared`]), not one per call: the next one-shot
    /// request on the same fd finds the entry and costs nothing. Errors with
    /// [`Error::BadFd`] as [`Context::add_fd`] does.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use tevent::{Context, Ctl, Error, FdEvent, FdFlags, Progress, Req, Request, StepResult};
    ///
    /// /// Finishes when the fd becomes readable.
    /// struct Readable { watch: Option<FdEvent<'static>> }
    /// impl Request for Readable {
    ///     type Output = ();
    ///     type Error = Error;
    /// }
    /// fn ready(_: &mut Readable, _: &mut Ctl<'_, Readable>, _: FdFlags) -> StepResult<Readable> {
    ///     Ok(Progress::Done(()))
    /// }
    /// fn readable_send(ev: &Context, fd: Rc<UnixStream>) -> Req<Readable> {
    ///     Req::start(ev, Readable { watch: None }, |st, ctl| {
    ///         st.watch = Some(ctl.watch_fd(fd, FdFlags::READ, ready)?);
    ///         Ok(Progress::Pending)
    ///     })
    /// }
    ///
    /// let ev = Context::new()?;
    /// let (a, b) = UnixStream::pair().unwrap();
    /// // Left blocking: refused.
    /// let r = readable_send(&ev, Rc::new(a.try_clone().unwrap()));
    /// assert!(matches!(r.recv(), Err(tevent::ReqError::User(Error::Blocking { .. }))));
    /// a.set_nonblocking(true).unwrap();
    /// let r = readable_send(&ev, Rc::new(a));
    /// std::io::Write::write_all(&mut &b, b"x").unwrap();
    /// r.poll(&ev)?;
    /// assert!(r.recv().is_ok());
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn watch_fd<F: std::os::fd::AsFd + 'static>(
        &mut self,
        fd: Rc<F>,
        flags: FdFlags,
        step: fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T>,
    ) -> Result<FdEvent<'static>, Error> {
        self.watch_fd_with(fd, flags, step, Require::Nonblocking)
    }

    /// [`Ctl::watch_fd`] with another requirement on the fd's mode
    /// ([`crate::io`] accepts blocking sockets: its calls never block them).
    ///
    /// `step` is usually a function item (`Foo::ready`), which is zero-sized:
    /// the watcher then costs no allocation.
    pub(crate) fn watch_fd_with<F, S>(
        &mut self,
        fd: Rc<F>,
        flags: FdFlags,
        step: S,
        require: Require,
    ) -> Result<FdEvent<'static>, Error>
    where
        F: std::os::fd::AsFd + 'static,
        S: Fn(&mut T, &mut Ctl<'_, T>, FdFlags) -> StepResult<T> + Copy + 'static,
    {
        let run: crate::fd::ReqFdFn = Box::new(move |ev, node, ready| {
            let name = inspect::step_name_of::<S>;
            ev.run_step_in::<T>(node, Some(name), |st, ctl| step(st, ctl, ready));
        });
        self.ev.add_fd_shared_with(
            fd,
            flags,
            crate::fd::FdHandler::Req(self.node.clone(), run),
            require,
        )
    }

    /// Starts profiling this request (see [`Req::enable_profile`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Progress, Req, ReqError, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let r = Req::start(&ev, Job, |_, ctl| {
    ///     let soon = ctl.ev().now() + Duration::from_secs(1);
    ///     ctl.set_endtime(soon)?;
    ///     ctl.reset_endtime(); // changed its mind
    ///     ctl.set_endtime(soon + Duration::from_secs(1))?;
    ///     ctl.enable_profile();
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(r.poll_recv(&ev)?, Err(ReqError::TimedOut));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn enable_profile(&self) -> bool {
        self.ev.profile_start(self.node.ptr())
    }

    /// Moves this request's queue entry out (queue waits hand it to a guard).
    pub(crate) fn take_queue_link(&mut self) -> Option<crate::queue::QueueLink> {
        self.node
            .hdr()
            .extra
            .borrow_mut()
            .as_mut()
            .and_then(|e| e[0].queue.take())
    }
}

/// A parent waiting for a subrequest of type `C`.
struct WaitFor<P, C, F> {
    f: F,
    _t: PhantomData<fn(P, C)>,
}

impl<P, C, F> Resume for WaitFor<P, C, F>
where
    P: Request,
    C: Request,
    F: FnOnce(&mut P, &mut Ctl<'_, P>, Req<C>) -> StepResult<P> + 'static,
{
    fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        let sub = Req::<C>::adopt(child);
        let Some(parent) = parent else {
            return;
        };
        // SAFETY: the child was on the parent's list until now, so the parent
        // is live; the count keeps it so while its step runs.
        let parent = unsafe { ReqRef::from_ptr(parent) };
        let f = self.f;
        // If the parent cannot run a step, the closure (and `sub`) is dropped.
        ev.run_step_unreported::<P>(&parent, move |st, ctl| f(st, ctl, sub));
    }

    fn step_name(&self) -> &'static str {
        step::step_name::<F>()
    }
}

/// A top-level callback.
struct Callback<T, F> {
    f: F,
    _t: PhantomData<fn(T)>,
}

impl<T: Request, F: FnOnce(&Context, Req<T>) + 'static> Resume for Callback<T, F> {
    fn resume(self, ev: &Context, _parent: Option<NodePtr>, child: ReqRef) {
        let req = Req::<T>::adopt(child);
        (self.f)(ev, req)
    }
}

impl Context {
    /// Arms (or moves) a request's end-time timer.
    fn req_set_endtime(&self, node: &ReqRef, at: Instant) -> Result<(), Failure> {
        let h = node.hdr();
        if h.state.get() != ReqState::InProgress || h.has(Flag::REMOVED) {
            return Ok(());
        }
        let existing = h.endtime.get();
        if existing != Key::NONE {
            // The end-time timer lives as long as its request's entry.
            return self
                .timer_try_restart(existing, at)
                .map(|_| ())
                .map_err(|_| Failure::NoMemory);
        }
        let timer = self
            .timer_try_insert(at, TimerHandler::ReqEndtime(node.ptr()))
            .map_err(|_| Failure::NoMemory)?;
        h.endtime.set(timer);
        Ok(())
    }

    fn req_reset_endtime(&self, node: &ReqRef) {
        let timer = node.hdr().endtime.replace(Key::NONE);
        if timer != Key::NONE {
            self.timer_remove(timer);
        }
    }
}

/// Runs `node`'s cancel hook (`tevent_req_cancel`) as a step of its own:
/// whether cancellation started (a request without a hook, or whose hook
/// declines, goes on). For [`Req::cancel`] and [`CallbackHandle::cancel`].
fn cancel_node<T: Request>(ev: &Context, node: &ReqRef) -> bool {
    let _scope = ev.enter();
    if hooks::reporting(&ev.inner) {
        ev.report_cancel(node.hdr());
    }
    let mut started = false;
    ev.run_step_in::<T>(node, Some(|| "cancel"), |st, ctl| match ctl.hooks.cancel {
        Some(step::CancelHook::Step(hook)) => match hook(st, ctl) {
            Some(r) => {
                started = true;
                r
            }
            None => Ok(Progress::Pending),
        },
        Some(step::CancelHook::Sealed(hook)) => match hook(st) {
            step::Cancel::Declined => Ok(Progress::Pending),
            step::Cancel::Cancelled => {
                started = true;
                Err(ReqError::Cancelled)
            }
        },
        None => Ok(Progress::Pending),
    });
    started
}
