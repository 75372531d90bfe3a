//! Waiting for several requests together: [`join_all_send`] (every one of
//! them) and [`first_send`] (the first to finish), each a request of its own.
//!
//! C tevent has no such helper: a caller keeps a counter in its state and
//! sets the same callback on every subrequest. These requests do that once,
//! so that a step can wait for a group with one `ctl.wait` and the top level
//! with one [`Req::poll_recv`]. The requests in a group share one type `T`;
//! for requests of different types, wait for each with its own
//! [`Ctl::wait`](crate::Ctl::wait) in a request of your own.

use std::convert::Infallible;

use crate::context::Context;
use crate::req::{Ctl, Progress, Req, ReqError, Request, StepResult};

/// The result of one request of a group: what its `recv` returned.
///
/// ```
/// use tevent::{Outcome, ReqError, Wakeup};
/// let woke: Outcome<Wakeup> = Err(ReqError::TimedOut); // how a wake-up ends
/// assert!(woke.is_err());
/// ```
pub type Outcome<T> = Result<<T as Request>::Output, ReqError<<T as Request>::Error>>;

/// The state of a [`join_all_send`] request: the results gathered so far.
///
/// ```
/// use tevent::{Context, JoinAll, Req, wakeup_send};
/// let ev = Context::with_manual_clock(true)?;
/// let all: Req<JoinAll<tevent::Wakeup>> = tevent::join_all_send(&ev, vec![wakeup_send(&ev, ev.now())]);
/// assert_eq!(all.poll_recv(&ev)?.unwrap().len(), 1);
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct JoinAll<T: Request> {
    results: Vec<Option<Outcome<T>>>,
    left: usize,
}

impl<T: Request> Request for JoinAll<T> {
    /// Each request's result, in the order the requests were given.
    type Output = Vec<Outcome<T>>;
    /// Never a failure of the group's own: every request's failure is in its
    /// own result. The group itself ends with a runtime outcome only
    /// (`NoMemory`, `WrongContext` for a request of another context,
    /// `TimedOut` for an end time set on the group).
    type Error = Infallible;
}

impl<T: Request> JoinAll<T> {
    fn one_done(&mut self, i: usize, sub: Req<T>) -> StepResult<Self> {
        self.results[i] = Some(sub.recv());
        self.left -= 1;
        if self.left > 0 {
            return Ok(Progress::Pending);
        }
        let all = std::mem::take(&mut self.results)
            .into_iter()
            .map(|r| r.unwrap_or(Err(ReqError::InProgress)))
            .collect();
        Ok(Progress::Done(all))
    }
}

/// A request that finishes when every request of `reqs` has finished, with
/// each one's result in the order given; an empty `reqs` finishes with an
/// empty list (at the next loop step, as every request is delivered).
///
/// The group owns the requests: dropping it (or its end time passing)
/// drops those still running. A failed request does not stop the others;
/// its error is in its place in the list.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, ReqError, join_all_recv, join_all_send, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let t0 = ev.now();
/// let naps = vec![
///     wakeup_send(&ev, t0 + Duration::from_secs(3)),
///     wakeup_send(&ev, t0 + Duration::from_secs(1)),
/// ];
/// let all = join_all_send(&ev, naps);
/// all.poll(&ev)?;
/// assert_eq!(ev.now(), t0 + Duration::from_secs(3)); // waited for the slower one
/// let results = join_all_recv(all).unwrap();
/// assert_eq!(results, [Err(ReqError::TimedOut), Err(ReqError::TimedOut)]);
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn join_all_send<T: Request>(ev: &Context, reqs: Vec<Req<T>>) -> Req<JoinAll<T>> {
    let state = JoinAll {
        results: Vec::new(),
        left: reqs.len(),
    };
    Req::start(ev, state, move |st, ctl| {
        if reqs.is_empty() {
            return Ok(Progress::Done(Vec::new()));
        }
        st.results = crate::alloc::try_vec(reqs.len())?;
        st.results.resize_with(reqs.len(), || None);
        for (i, sub) in reqs.into_iter().enumerate() {
            ctl.wait(sub, move |st: &mut JoinAll<T>, _: &mut Ctl<'_, _>, sub| {
                st.one_done(i, sub)
            })?;
        }
        Ok(Progress::Pending)
    })
}

/// Takes the results of a [`join_all_send`] request: `Ok` with one result per
/// request, or the group's own runtime failure.
pub fn join_all_recv<T: Request>(
    req: Req<JoinAll<T>>,
) -> Result<Vec<Outcome<T>>, ReqError<Infallible>> {
    req.recv()
}

/// The state of a [`first_send`] request.
///
/// ```
/// use tevent::{Context, First, Req, wakeup_send};
/// let ev = Context::with_manual_clock(true)?;
/// let race: Req<First<tevent::Wakeup>> = tevent::first_send(&ev, vec![wakeup_send(&ev, ev.now())]);
/// assert_eq!(race.poll_recv(&ev)?.unwrap().0, 0);
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct First<T: Request> {
    _t: std::marker::PhantomData<fn() -> T>,
}

/// [`first_send`] was given no request, so none could finish first.
///
/// ```
/// use tevent::{Context, NoRequests, ReqError, Wakeup, first_send};
/// let ev = Context::new()?;
/// let race = first_send::<Wakeup>(&ev, Vec::new());
/// assert_eq!(race.poll_recv(&ev)?, Err(ReqError::User(NoRequests)));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("first_send was given no request to wait for")]
pub struct NoRequests;

impl<T: Request> Request for First<T> {
    /// The index (in the list given) of the request that finished first, and
    /// its result.
    type Output = (usize, Outcome<T>);
    /// [`NoRequests`] for an empty list.
    type Error = NoRequests;
}

/// A request that finishes as soon as one request of `reqs` finishes, with
/// its index and result, and drops the others (their subtrees, events and
/// cleanup hooks go as with any dropped request; no callback runs). A
/// request that fails finishes first like any other. If several finish in
/// the same loop step, the first one delivered wins (the one that finished
/// first). An empty `reqs` fails with [`NoRequests`].
///
/// A race with a timeout, for example:
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, first_recv, first_send, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let t0 = ev.now();
/// let race = first_send(&ev, vec![
///     wakeup_send(&ev, t0 + Duration::from_secs(60)),
///     wakeup_send(&ev, t0 + Duration::from_secs(2)),
/// ]);
/// let (winner, _result) = race.poll_recv(&ev)?.unwrap();
/// assert_eq!(winner, 1);
/// assert_eq!(ev.now(), t0 + Duration::from_secs(2));
/// assert!(!ev.has_events()); // the 60 s wake-up was dropped
/// # Ok::<(), tevent::Error>(())
/// ```
#[track_caller]
pub fn first_send<T: Request>(ev: &Context, reqs: Vec<Req<T>>) -> Req<First<T>> {
    let state = First {
        _t: std::marker::PhantomData,
    };
    Req::start(ev, state, move |_, ctl| {
        if reqs.is_empty() {
            return Err(ReqError::User(NoRequests));
        }
        for (i, sub) in reqs.into_iter().enumerate() {
            ctl.wait(
                sub,
                move |_: &mut First<T>, _: &mut Ctl<'_, _>, sub: Req<T>| {
                    Ok(Progress::Done((i, sub.recv())))
                },
            )?;
        }
        Ok(Progress::Pending)
    })
}

/// Takes the result of a [`first_send`] request: the winner's index and
/// result.
pub fn first_recv<T: Request>(
    req: Req<First<T>>,
) -> Result<(usize, Outcome<T>), ReqError<NoRequests>> {
    req.recv()
}
