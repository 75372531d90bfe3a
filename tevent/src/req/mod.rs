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

mod callback;
mod ctl;
mod error;
mod handle;
mod hooks;
mod inspect;
mod join;
mod node;
pub(crate) mod profile;
mod request;
pub(crate) mod step;
mod table;
#[cfg(test)]
mod tests;
mod waiter;
mod wakeup;

#[cfg(doc)]
use crate::Error;

pub use callback::CallbackHandle;
pub use ctl::Ctl;
pub(crate) use error::Failure;
pub use error::ReqError;
use handle::Slot;
pub use handle::{Req, ReqState};
pub use inspect::{LiveRequest, RequestTree, Wait};
pub use join::{
    First, JoinAll, NoRequests, Outcome, first_recv, first_send, join_all_recv, join_all_send,
};
pub(crate) use node::{Flag, NodePool, NodePtr, ReqRef};
pub use profile::Profile;
pub(crate) use request::short_type_name;
#[cfg(test)]
use request::strip_paths;
pub use request::{Progress, Request, StepResult};
pub use step::{Cancel, Next, StartCtl, StepCtl, StepMachine, Then, glue};
pub use table::{CancelFn, CleanupFn};
pub(crate) use table::{ReqTable, extra_mut};
pub use wakeup::{Wakeup, wakeup_recv, wakeup_send};
