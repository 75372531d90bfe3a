//! Errors of the event loop itself (requests have their own [`crate::ReqError`]).

use std::io;
use std::os::fd::RawFd;

/// What can go wrong when using a [`crate::Context`] or one of its events.
///
/// ```
/// use tevent::{Context, Error};
///
/// let ev = Context::new()?;
/// ev.post(|ev| {
///     // A loop-driving call inside a handler: C tevent aborts, this refuses.
///     assert!(matches!(ev.loop_once(), Err(Error::Nested)));
/// });
/// ev.loop_wait()?;
/// assert!(matches!(ev.add_signal(9, |_, _, _| {}), Err(Error::InvalidSignal(9)))); // SIGKILL
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A loop-driving call (`loop_once`, `loop_wait`, `loop_until`, `Req::poll`)
    /// was made from inside user code that the same context runs: an event
    /// handler, or a request's step, hook, callback or `Drop` run by any
    /// call of the context (also outside the loop: a first step run by
    /// `Req::start`, a cleanup hook run by dropping a request). The loop
    /// cannot run under the runtime's feet. C tevent aborts the process
    /// when the loop nests; this crate refuses the call instead.
    #[error(
        "nested event loop: a loop-driving call was made from inside a handler or other user code run by the same context"
    )]
    Nested,
    /// The file descriptor cannot be watched (closed, never opened, or a kind
    /// that the poller refuses, such as a regular file on Linux's epoll).
    #[error("cannot watch file descriptor {fd}: {source}")]
    BadFd {
        /// The descriptor that was refused.
        fd: RawFd,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The signal number is out of range or reserved (SIGKILL, SIGSTOP and the
    /// synchronous fault signals SIGSEGV, SIGBUS, SIGILL, SIGFPE cannot be handled
    /// from an event loop).
    #[error("signal {0} cannot be handled by an event loop (out of range or reserved)")]
    InvalidSignal(i32),
    /// Installing or restoring a signal disposition failed.
    #[error("signal setup for signal {signum} failed: {source}")]
    Signal {
        /// The signal number.
        signum: i32,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Too many contexts hold signal handlers at once (the process-wide table of
    /// wake-up pipes is full).
    #[error("too many event contexts with signal handlers (limit {0})")]
    TooManySignalContexts(usize),
    /// The handle outlived its context: every `Context` clone has been dropped.
    #[error("the event context this handle belongs to has been dropped")]
    ContextGone,
    /// The event this handle names no longer exists (for example a one-shot
    /// signal handler that already fired).
    #[error("the event has already been removed")]
    EventGone,
    /// The manual clock does not move and only timers that are not yet due remain,
    /// so `loop_wait` could never finish.
    #[error("manual clock stalled: only timers remain and the clock is not advancing")]
    ClockStalled,
    /// `Req::poll` found the request unfinished and no event left in the
    /// context that could finish it (C tevent would wait forever).
    #[error("the request is in progress but no event is left that could finish it")]
    RequestStalled,
    /// `Req::poll` was given a context the request does not belong to: a
    /// request only ever runs on the context it was started on, so polling
    /// another one could never finish it.
    #[error(
        "the request was polled on an event context it does not belong to (poll it on the context it was started on)"
    )]
    WrongContext,
    /// A request's fd watcher ([`crate::Ctl::watch_fd`]) or a [`crate::io`]
    /// request was given an fd in blocking mode, where one read, write or
    /// accept too many (readiness is only a hint) would block the whole loop.
    /// [`crate::io`] reports it as an `std::io::Error` of kind
    /// `InvalidInput` carrying this error. Plain watchers
    /// ([`crate::Context::add_fd`] and friends) accept blocking fds, as
    /// tevent does.
    #[error(
        "file descriptor {fd} is in blocking mode, so a read, write or accept on it could block the whole event loop; make it nonblocking first: call set_nonblocking(true) on it (or set O_NONBLOCK with fcntl)"
    )]
    Blocking {
        /// The descriptor that was refused.
        fd: RawFd,
    },
    /// The operating system's poller failed (epoll on Linux, kqueue on
    /// macOS and FreeBSD).
    #[error("poller failure: {0}")]
    Poller(#[source] io::Error),
}
