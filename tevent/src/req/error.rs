//! [`ReqError`]: how a request can fail, with the user's error type inside.

use std::fmt;

/// Why a request did not produce its output.
///
/// `User(E)` carries the request's own error type; the other variants are the
/// runtime's outcomes and keep their meaning across nesting: a parent that
/// propagates a subrequest's error with `?` (or [`crate::Req::recv_into`]) turns
/// `ReqError<E1>` into `ReqError<E2>` by converting only the `User` payload.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqError, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let slow = wakeup_send(&ev, ev.now() + Duration::from_secs(60));
/// slow.set_endtime(ev.now() + Duration::from_secs(1))?;
/// match slow.poll_recv(&ev)? {
///     Err(ReqError::TimedOut) => {} // a runtime outcome, whatever the request type
///     Err(ReqError::User(never)) => match never {},
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqError<E> {
    /// The request failed with its own error.
    #[error("{0}")]
    User(E),
    /// The request's end time passed before it finished (`set_endtime`).
    #[error("request timed out")]
    TimedOut,
    /// An allocation failed while the request (or one of its subrequests) ran.
    #[error("out of memory")]
    NoMemory,
    /// The request was cancelled and its cancel hook finished it as cancelled.
    #[error("request cancelled")]
    Cancelled,
    /// The queue the request was waiting in was dropped.
    #[error("the queue the request was waiting in was dropped")]
    QueueDropped,
    /// `recv` was called on a request that has not finished.
    #[error("request received before it finished")]
    InProgress,
    /// The request's context was dropped, and the request with it.
    #[error("the event context of this request was dropped")]
    ContextGone,
    /// A request waited for a subrequest (or joined a queue) of another
    /// context: a request tree lives on one context.
    #[error("the subrequest belongs to another event context")]
    WrongContext,
    /// A step (or the cancel hook) of the request panicked. The panic itself
    /// propagated out of the runtime call that ran the step; the request was
    /// finished with this error so that its waiter, if the program goes on,
    /// is told like for any other failure (compare tokio's
    /// `JoinError::Panic`). C tevent has no such outcome.
    #[error("a step of the request panicked")]
    Panicked,
    /// A request was made to wait for itself, or for a request that it runs
    /// under (its parent, its parent's parent, ...): that wait could never
    /// end, and the requests would own each other. The wait is refused
    /// instead ([`crate::Ctl::wait`] returns this error, and the would-be
    /// subrequest is dropped). C tevent has no such check: the same
    /// mistake there is a request that never finishes.
    #[error("a request cannot wait for itself or for a request it runs under")]
    WaitCycle,
}

impl<E> From<E> for ReqError<E> {
    fn from(e: E) -> Self {
        ReqError::User(e)
    }
}

impl<E> ReqError<E> {
    /// Converts the `User` payload, keeping every runtime outcome as it is.
    pub fn convert<E2: From<E>>(self) -> ReqError<E2> {
        self.map_user(E2::from)
    }

    /// Maps the `User` payload with `f`, keeping every runtime outcome.
    pub fn map_user<E2>(self, f: impl FnOnce(E) -> E2) -> ReqError<E2> {
        match self {
            ReqError::User(e) => ReqError::User(f(e)),
            ReqError::TimedOut => ReqError::TimedOut,
            ReqError::NoMemory => ReqError::NoMemory,
            ReqError::Cancelled => ReqError::Cancelled,
            ReqError::QueueDropped => ReqError::QueueDropped,
            ReqError::InProgress => ReqError::InProgress,
            ReqError::ContextGone => ReqError::ContextGone,
            ReqError::WrongContext => ReqError::WrongContext,
            ReqError::Panicked => ReqError::Panicked,
            ReqError::WaitCycle => ReqError::WaitCycle,
        }
    }

    /// The user error, if that is what this is.
    pub fn user(&self) -> Option<&E> {
        match self {
            ReqError::User(e) => Some(e),
            _ => None,
        }
    }

    /// The state a request that failed this way ends in.
    pub fn state(&self) -> crate::ReqState {
        match self {
            ReqError::User(_) => crate::ReqState::Error,
            ReqError::TimedOut => crate::ReqState::TimedOut,
            ReqError::NoMemory => crate::ReqState::NoMemory,
            ReqError::Cancelled => crate::ReqState::Cancelled,
            ReqError::QueueDropped
            | ReqError::InProgress
            | ReqError::ContextGone
            | ReqError::WrongContext
            | ReqError::Panicked
            | ReqError::WaitCycle => crate::ReqState::Error,
        }
    }
}

impl ReqError<std::convert::Infallible> {
    /// The same runtime outcome as an error of any request type: a request
    /// whose error type is `Infallible` (a [`crate::join_all_send`] group, a
    /// wake-up) can only fail with a runtime outcome, and that converts into
    /// any parent's error (`sub.recv().map_err(ReqError::widen)?`).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use tevent::ReqError;
    ///
    /// let e: ReqError<Infallible> = ReqError::TimedOut;
    /// let mine: ReqError<std::io::Error> = e.widen();
    /// assert!(matches!(mine, ReqError::TimedOut));
    /// ```
    pub fn widen<E>(self) -> ReqError<E> {
        self.map_user(|never| match never {})
    }
}

impl ReqError<std::io::Error> {
    /// The errno-style view C tevent callers use (`tevent_req_is_unix_error`):
    /// user errors keep their OS error, timeouts are `ETIMEDOUT`, no memory is
    /// `ENOMEM`, cancellation `ECANCELED`.
    pub fn into_io(self) -> std::io::Error {
        match self {
            ReqError::User(e) => e,
            ReqError::TimedOut => std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
            ReqError::NoMemory => std::io::Error::from_raw_os_error(libc::ENOMEM),
            ReqError::Cancelled => std::io::Error::from_raw_os_error(libc::ECANCELED),
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// The outcomes the runtime imposes on a request of any type (timeouts, queue
/// teardown, allocation failure): the untyped half of [`ReqError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    TimedOut,
    NoMemory,
    Cancelled,
    QueueDropped,
    WrongContext,
    Cycle,
}

impl Failure {
    /// The typed error for this outcome.
    pub(crate) fn to_req<E>(self) -> ReqError<E> {
        match self {
            Failure::TimedOut => ReqError::TimedOut,
            Failure::NoMemory => ReqError::NoMemory,
            Failure::Cancelled => ReqError::Cancelled,
            Failure::QueueDropped => ReqError::QueueDropped,
            Failure::WrongContext => ReqError::WrongContext,
            Failure::Cycle => ReqError::WaitCycle,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_req::<std::convert::Infallible>(), f)
    }
}
