//! # tevent for Rust
//!
//! A single-threaded event loop with fd, timer, immediate and signal events,
//! and (built on it) tevent-style asynchronous **requests**: a Rust
//! re-creation of Samba's [tevent](https://tevent.samba.org/) library.
//!
//! New here? The [`tutorial`] chapters (rendered from `docs/*.md`, and run
//! as this crate's doctests) walk through all of it in order, from [the
//! overview](tutorial::ch0_overview). Know `async`/`await` but not C
//! tevent? [Chapter 7](tutorial::ch7_coming_from_async) maps one onto the
//! other.
//!
//! ## Where to start
//!
//! | you want to | start at |
//! |---|---|
//! | run a loop, react to fds, timers, immediates, signals | [`Context`] ([`Context::loop_once`], [`Context::loop_wait`], [`Context::add_fd`], [`Context::add_timer`], [`Context::add_immediate`], [`Context::add_signal`]); the [`context`] module for the dispatch order |
//! | reach the loop from another thread | [`Context::remote`] and [`Remote`] |
//! | write an asynchronous computation as `foo_send` / `foo_recv` | the [`req`] module's overview, [`Request`], [`Req::start`], [`Ctl`] |
//! | get a result at the top level | [`Req::poll_recv`] (or [`Req::poll`], then [`Req::recv`]); [`Req::set_callback`] for a callback |
//! | wait for several requests | [`join_all_send`], [`first_send`] |
//! | declare a request's steps and have them checked | the [`tevent_request`] attribute ([chapter 5](tutorial::ch5_tevent_request_macro); [chapter 6](tutorial::ch6_inspecting) shows how to look inside requests) |
//! | read, write, accept, connect | [`io`]: `read_exact_send`, `read_until_send`, `write_all_send`, `accept_send`, ... |
//! | run blocking work, or finish a request from another thread | [`pool`]: [`pool::job_send`], [`pool::completion_send`] |
//! | let requests take turns | [`Queue`], [`queue_wait_send`] |
//! | handle signals, with the sender's details | [`signal`]: [`Context::add_signal`], [`Context::add_signal_with_info`], `signal::SIGTERM`, ... |
//! | test requests under faults, many seeds at a time, and replay a failure | [`sim`]: [`Context::simulated`], [`sim::run`], [`sim::check_determinism`] ([chapter 8](tutorial::ch8_simulation)) |
//! | observe the loop and requests | [`trace`] (loop, event, request and queue hooks), [`Context::request_tree`], [`Req::enable_profile`], [`Req::waiting_in`] ([chapter 6](tutorial::ch6_inspecting)) |
//!
//! ## Events
//!
//! ```
//! use std::time::Duration;
//! use tevent::Context;
//!
//! let ev = Context::with_manual_clock(true)?; // time jumps instead of sleeping
//! let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
//!
//! let o = order.clone();
//! let _timer = ev.add_timer_after(Duration::from_millis(50), move |_, _| o.borrow_mut().push("timer"));
//! let o = order.clone();
//! let imm = ev.add_immediate(move |_, _| o.borrow_mut().push("immediate"));
//! imm.schedule()?;
//!
//! ev.loop_wait()?; // immediates run before timers
//! assert_eq!(*order.borrow(), ["immediate", "timer"]);
//! # Ok::<(), tevent::Error>(())
//! ```
//!
//! The loop keeps tevent's dispatch discipline: one handler per
//! [`Context::loop_once`], signals first, then immediates (FIFO), then due
//! timers (deadline order, FIFO on ties), then ready fds (round-robin). Every
//! event is owned by a handle ([`Timer`], [`Immediate`], [`FdEvent`],
//! [`Signal`]) and removed when the handle drops.
//!
//! ## Requests
//!
//! A request is tevent's unit of asynchronous work: a state type
//! implementing [`Request`], started by a `foo_send` function that returns a
//! [`Req<Foo>`](Req), finished by its steps, and received with `foo_recv`.
//! A request waits for subrequests ([`Ctl::wait`]), fds ([`Ctl::watch_fd`])
//! and its end time ([`Ctl::set_endtime`]); a parent owns its subrequests,
//! and dropping a request drops its whole subtree. See the [`req`] module
//! for when waiters run and who owns what.
//!
//! ```
//! use std::io;
//! use std::os::unix::net::UnixStream;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use tevent::io::{ReadUntil, read_until_send};
//! use tevent::{Context, Ctl, Progress, Req, Request, StepResult};
//!
//! /// Reads one line, within five seconds, and answers its length.
//! struct LineLen;
//!
//! impl Request for LineLen {
//!     type Output = usize;
//!     type Error = io::Error;
//! }
//!
//! impl LineLen {
//!     fn got_line(&mut self, _: &mut Ctl<'_, Self>, sub: Req<ReadUntil<UnixStream>>) -> StepResult<Self> {
//!         let line = sub.recv()?; // a failure of the subrequest ends this request too
//!         Ok(Progress::Done(line.len()))
//!     }
//! }
//!
//! fn line_len_send(ev: &Context, sock: &Rc<UnixStream>) -> Req<LineLen> {
//!     Req::start(ev, LineLen, |_, ctl| {
//!         ctl.set_timeout(Duration::from_secs(5))?;
//!         ctl.wait(read_until_send(ctl.ev(), sock, b'\n', 1024), LineLen::got_line)?;
//!         Ok(Progress::Pending)
//!     })
//! }
//!
//! let ev = Context::new()?;
//! let (a, b) = UnixStream::pair().unwrap();
//! std::io::Write::write_all(&mut &b, b"hello\n").unwrap();
//! let req = line_len_send(&ev, &Rc::new(a));
//! assert_eq!(req.poll_recv(&ev)?.unwrap(), 6);
//! # Ok::<(), tevent::Error>(())
//! ```
//!
//! The [`tevent_request`] attribute writes the `foo_send` / `foo_recv` pair
//! and the glue from a declared list of steps, and checks at compile time
//! that each step only waits where its declaration allows (tutorial
//! [chapter 5](tutorial::ch5_tevent_request_macro), and
//! [chapter 6](tutorial::ch6_inspecting) for the step graph, the expansion and
//! live inspection).
//!
//! ## Differences from C tevent, on purpose
//!
//! Misuse returns an [`Error`] instead of aborting (a nested loop call is
//! [`Error::Nested`]); a request finishes exactly once by construction and
//! its caller is always notified from the loop (no `tevent_req_post`);
//! allocation failure in a request ends it `NoMemory` instead of aborting;
//! timers run on a monotonic clock; a watcher waiting only for `WRITE` is
//! woken by a hang-up instead of being silently disarmed; every event and
//! request is owned by a handle and removed when the handle drops.

#![cfg_attr(
    not(feature = "macros"),
    doc = "\n\n[`tevent_request`]: tutorial::ch5_tevent_request_macro"
)]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

// Lets the tutorial chapters' links (and code generated by
// `#[tevent_request]`) name this crate `tevent` from inside it; only
// rustdoc's link resolution uses it, which the lint does not see.
#[allow(unused_extern_crates)]
extern crate self as tevent;

pub mod alloc;
mod clock;
pub mod context;
mod error;
mod fast_wait;
mod fd;
mod fork;
mod immediate;
pub mod io;
mod panic;
pub mod pool;
pub mod queue;
mod remote;
pub mod req;
pub mod signal;
pub mod sim;
mod slab;
mod sys;
mod timer;
pub mod trace;

/// The tutorial: the chapters of `docs/`, rendered here and run as this
/// crate's doctests (`cargo test -p tevent --doc`). The chapters are
/// numbered (`ch1_...`) so that rustdoc lists them in reading order.
///
/// 0. [Overview](tutorial::ch0_overview): what tevent is, the chapters, the
///    echo server they build up to;
/// 1. [The event context](tutorial::ch1_context): the loop, its dispatch
///    order, waiting, panics, `fork()`;
/// 2. [Events](tutorial::ch2_events): fds, timers, immediates, signals,
///    [`Remote`];
/// 3. [Requests](tutorial::ch3_requests): [`Request`], [`Req`], steps,
///    subrequests, end times, cancellation;
/// 4. [Queues](tutorial::ch4_queues): [`Queue`], requests that take turns;
/// 5. [Requests with `#[tevent_request]`](tutorial::ch5_tevent_request_macro):
///    the steps declared once and checked by the compiler;
/// 6. [Inspecting requests](tutorial::ch6_inspecting): the step graph,
///    `tevent-expand`, where a request waits, the live request tree,
///    profiles, trace hooks;
/// 7. [Coming from `async`/`await`](tutorial::ch7_coming_from_async): what
///    maps to what, and when to choose which; start here if you know Rust's
///    futures but not C tevent;
/// 8. [Testing requests under simulation](tutorial::ch8_simulation): a
///    seeded context with virtual time and injected faults, many seeds per
///    test, replaying a failure from its seed.
pub mod tutorial {
    #[doc = include_str!("../docs/00-overview.md")]
    pub mod ch0_overview {}
    #[doc = include_str!("../docs/01-context.md")]
    pub mod ch1_context {}
    #[doc = include_str!("../docs/02-events.md")]
    pub mod ch2_events {}
    #[doc = include_str!("../docs/03-requests.md")]
    pub mod ch3_requests {}
    #[doc = include_str!("../docs/04-queues.md")]
    pub mod ch4_queues {}
    // Chapters 5 and 6 compile their examples with the attribute: without
    // the `macros` feature they are a pointer to it.
    #[cfg_attr(
        feature = "macros",
        doc = include_str!("../docs/05-tevent-request-macro.md")
    )]
    #[cfg_attr(
        not(feature = "macros"),
        doc = "Requests with `#[tevent_request]`: needs the `macros` feature (on by default)."
    )]
    pub mod ch5_tevent_request_macro {}
    #[cfg_attr(feature = "macros", doc = include_str!("../docs/06-inspecting.md"))]
    #[cfg_attr(
        not(feature = "macros"),
        doc = "Inspecting requests: needs the `macros` feature (on by default)."
    )]
    pub mod ch6_inspecting {}
    #[doc = include_str!("../docs/07-coming-from-async.md")]
    pub mod ch7_coming_from_async {}
    // Chapter 8 tests a request written with the attribute.
    #[cfg_attr(feature = "macros", doc = include_str!("../docs/08-simulation.md"))]
    #[cfg_attr(
        not(feature = "macros"),
        doc = "Testing requests under simulation: needs the `macros` feature (on by default); see the [`sim`](crate::sim) module."
    )]
    pub mod ch8_simulation {}

    // The chapters' names before they were numbered: links written with
    // them still lead to the chapters.
    #[doc(hidden)]
    pub use {
        ch0_overview as overview, ch1_context as context, ch2_events as events,
        ch3_requests as requests, ch4_queues as queues,
        ch5_tevent_request_macro as tevent_request_macro, ch6_inspecting as inspecting,
    };
}

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

pub use clock::FAR_FUTURE;
pub use context::{
    Context, DEFAULT_TIMER_SLACK, DEFAULT_WAIT_TIMEOUT, EventCounts, FAIR_STEPS,
    MAX_NOTIFICATIONS_PER_STEP,
};
pub use error::Error;
pub use fd::{FdEvent, FdFlags, FdRef};
pub use immediate::{Immediate, ImmediateRef};
pub use queue::{Queue, QueueGuard, QueueWait, queue_wait_recv, queue_wait_send};
pub use remote::{Remote, RemoteError, RemoteFn};
pub use req::{
    CallbackHandle, Cancel, CancelFn, CleanupFn, Ctl, First, JoinAll, LiveRequest, Next,
    NoRequests, Outcome, Profile, Progress, Req, ReqError, ReqState, Request, RequestTree,
    StartCtl, StepCtl, StepMachine, StepResult, Then, Wait, Wakeup, first_recv, first_send,
    join_all_recv, join_all_send, wakeup_recv, wakeup_send,
};
/// The tutorial's chapters about it: [chapter 3](tutorial::ch3_requests)
/// (requests: what the attribute writes for you), [chapter
/// 5](tutorial::ch5_tevent_request_macro) (the attribute: every rule, every
/// error, the mapping to C tevent's conventions) and [chapter
/// 6](tutorial::ch6_inspecting) (`tevent-expand`, the step graph, where a
/// request waits, the live request tree, profiles).
#[cfg(feature = "macros")]
pub use tevent_macros::tevent_request;

/// The traits behind the compile errors of a step that calls a successor
/// its declaration does not list, or that calls one before `create`. Code
/// generated by `#[tevent_request]` refers to them so that those errors
/// name them in the user's terms; not an API (nothing implements them, and
/// nothing outside `tevent` can).
#[doc(hidden)]
pub mod route {
    // The glue the expansion calls: here rather than in `__private`, so
    // that an error about one of them (such as a call by hand outside the
    // declared graph) names `tevent::route`, not a hidden path.
    pub use crate::req::glue::{Start, Step, create, done, start, wait};

    /// Implemented by nothing: the generated routes of a step handle (a
    /// method for every step its declaration does not list, and for `done`
    /// where it may not finish) require it of the handle, so calling one
    /// fails to compile with this message instead of "no method named
    /// ...". `Route` is the handle type of the step it tried to go to, or
    /// [`Done`].
    #[diagnostic::on_unimplemented(
        message = "this step does not lead to `{Route}`",
        label = "not among the successors this step declares",
        note = "`{Self}` has a method for each successor its step lists in `#[tevent_request(steps(...))]`, and `done` if the step may finish: add the step to this step's list, or call one it lists"
    )]
    pub trait Declared<Route>: sealed::Sealed {}

    /// The `Route` of `done` in [`Declared`].
    pub struct Done;

    /// Implemented by nothing: `start`'s handle, before `create`, has the
    /// successor methods of `start` only under this bound, so calling one
    /// says what to do.
    #[diagnostic::on_unimplemented(
        message = "call `to.create(state)` first: `start` waits and finishes through the handle `create` returns",
        label = "the state does not exist yet",
        note = "write `let to = to.create(state);`, then `to.next_step(sub)` (start subrequests before `create` if you need them first)"
    )]
    pub trait Created: sealed::Sealed {}

    /// What a step that takes a subrequest's output requires of the
    /// subrequest: `Output = T` (every request that has it implements
    /// this), so that a mismatch says what the step takes.
    #[diagnostic::on_unimplemented(
        message = "the subrequest `{Self}` does not give what the step takes, `{T}`",
        label = "its output is not `{T}`",
        note = "a step receives its subrequest's output (`T` for a request whose `Output` is `T`), its whole result (`Result<T, ReqError<E>>`, with `ReqError`: the runtime's outcomes are in it too), or the finished `Req<_>`"
    )]
    pub trait Gives<T>: crate::Request {
        /// The output as the step's input (the identity).
        fn input(out: Self::Output) -> T;
    }

    #[diagnostic::do_not_recommend]
    impl<C: crate::Request<Output = T>, T> Gives<T> for C {
        #[inline(always)]
        fn input(out: T) -> T {
            out
        }
    }

    /// What a step that takes a subrequest's whole result requires of the
    /// subrequest: `Output = O` and `Error = E`.
    #[diagnostic::on_unimplemented(
        message = "the subrequest `{Self}` does not give what the step takes, `Result<{O}, ReqError<{E}>>`",
        label = "its output is not `{O}`, or its error is not `{E}`",
        note = "a step that takes a subrequest's whole result names its output and error types as they are: `Result<Output, ReqError<Error>>`"
    )]
    pub trait GivesResult<O, E>: crate::Request {
        /// The result as the step's input (the identity).
        fn input(
            r: Result<Self::Output, crate::ReqError<Self::Error>>,
        ) -> Result<O, crate::ReqError<E>>;
    }

    #[diagnostic::do_not_recommend]
    impl<C: crate::Request<Output = O, Error = E>, O, E> GivesResult<O, E> for C {
        #[inline(always)]
        fn input(r: Result<O, crate::ReqError<E>>) -> Result<O, crate::ReqError<E>> {
            r
        }
    }

    /// A subrequest whose error the request's error `T` is made from
    /// (`From`), where a step takes the subrequest's output and its failure
    /// ends the request. Bounded on the subrequest, whose type is known at
    /// the call, so that a missing `From` says what to do (a bound on the
    /// request's error made rustc report a type mismatch instead, when the
    /// error type had no `From` impl but the reflexive one).
    #[diagnostic::on_unimplemented(
        message = "the request's error `{T}` cannot be made from the error of the subrequest `{Self}`",
        label = "if this subrequest fails, the request ends with its error converted by `From`",
        note = "add `impl From<..> for {T}` for the subrequest's `Error` type, or let the step take the subrequest's whole result, `Result<_, ReqError<_>>`, and decide"
    )]
    pub trait ErrorInto<T>: crate::Request {
        /// `From::from` of the subrequest's error.
        fn error_into(e: Self::Error) -> T;
    }

    #[diagnostic::do_not_recommend]
    impl<C: crate::Request, T: From<C::Error>> ErrorInto<T> for C {
        #[inline]
        fn error_into(e: C::Error) -> T {
            T::from(e)
        }
    }

    mod sealed {
        /// Not nameable outside `tevent`: [`super::Declared`] and
        /// [`super::Created`] have no implementation, and none can be
        /// written.
        pub trait Sealed {}
    }
}

/// What code generated by `#[tevent_request]` refers to; not a public API
/// (it may change in any release).
#[doc(hidden)]
pub mod __private {

    /// A field of a generated step enum, for its `Debug`: shown with the
    /// field's own `Debug` where it has one ([`ShowDebug`]), as `..`
    /// otherwise ([`ShowOpaque`]); the method call picks (autoref).
    pub struct DebugField<'a, T>(pub &'a T);

    /// See [`DebugField`].
    pub trait ShowDebug {
        /// The field's `Debug`.
        fn shown(&self) -> &dyn core::fmt::Debug;
    }

    impl<T: core::fmt::Debug> ShowDebug for DebugField<'_, T> {
        fn shown(&self) -> &dyn core::fmt::Debug {
            self.0
        }
    }

    /// See [`DebugField`].
    pub trait ShowOpaque {
        /// `..`.
        fn shown(&self) -> &dyn core::fmt::Debug;
    }

    impl<T> ShowOpaque for &DebugField<'_, T> {
        fn shown(&self) -> &dyn core::fmt::Debug {
            &Opaque
        }
    }

    /// What a field without `Debug` shows.
    struct Opaque;

    impl core::fmt::Debug for Opaque {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("..")
        }
    }
}
pub use signal::{Signal, SignalRef};
pub use timer::{Timer, TimerRef};
