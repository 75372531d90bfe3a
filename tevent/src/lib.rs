//! # tevent for Rust
//!
//! A single-threaded event loop with fd, timer, immediate and signal events, and
//! (built on it) tevent-style asynchronous requests: a Rust re-creation of
//! Samba's [tevent](https://tevent.samba.org/) library.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use tevent::Context;
//!
//! let ev = Context::with_manual_clock(true)?; // time jumps instead of sleeping
//! let order = Rc::new(std::cell::RefCell::new(Vec::new()));
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
//! timers (deadline order, FIFO on ties), then ready fds (round-robin). See
//! [`context`] for the details and `docs/` for the tutorial.
//!
//! Differences from C tevent, on purpose: misuse returns an [`Error`] instead of
//! aborting (a nested loop call is [`Error::Nested`]); timers run on a monotonic
//! clock; a watcher waiting only for `WRITE` is woken by a hang-up instead of
//! being silently disarmed; every event is owned by a handle and removed when
//! the handle drops.

pub mod alloc;
mod clock;
pub mod context;
mod error;
mod fd;
mod fork;
mod immediate;
pub mod io;
mod panic;
pub mod queue;
mod remote;
mod req;
mod signal;
mod slab;
mod timer;
pub mod trace;

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
    CancelFn, CleanupFn, Ctl, Profile, Progress, Req, ReqError, ReqState, Request, StepResult,
    Wakeup, wakeup_recv, wakeup_send,
};
pub use signal::{Signal, SignalRef};
pub use timer::{Timer, TimerRef};
