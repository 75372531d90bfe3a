//! The runtime half of `#[tevent_request]` steps: what a generated step
//! returns ([`Next`]), the part of its handle that every step has
//! ([`StepCtl`]), and the start of a request whose state its first step
//! builds ([`StartCtl`]).
//!
//! A generated step handle (`EchoReadStep<'_>` for step `read` of `Echo`)
//! dereferences to a [`StepCtl`] and adds one method per declared successor
//! (which waits for a subrequest whose end resumes that step) and `done`
//! where the step may finish the request. A step can only return what its
//! handle builds, so it can neither finish nor wait where its declaration
//! does not allow it.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::req::{CancelFn, CleanupFn, Ctl, Progress, Req, ReqError, Request, StepResult};

/// What a step of a `#[tevent_request]` request decided: keep waiting, or
/// the request is done. Only the step's handle builds one
/// ([`StepCtl::pending`], or the generated `done` and successor methods).
/// A step that starts several waits ignores what all but the last successor
/// call returned (`to.lookup(a)?; to.lookup(b)`): each says "keep waiting".
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use tevent::{Context, Next, Req, tevent_request};
///
/// struct Answer;
/// #[tevent_request(steps(start => [done]))]
/// impl Answer {
///     type Output = u32;
///     type Error = std::convert::Infallible;
///
///     fn start(to: AnswerStartStep<'_>) -> Next<Self> {
///         let to = to.create(Answer);
///         let then = to.done(42)?; // a Then: what the step decided
///         assert!(then.is_done());
///         Ok(then)
///     }
/// }
/// let ev = Context::new()?;
/// assert_eq!(answer_send(&ev).poll_recv(&ev)?, Ok(42));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct Then<T: Request>(Progress<T::Output>);

/// What a step of a `#[tevent_request]` request returns: `Ok` with what its
/// handle built, or the error that ends the request (`?` works on any
/// `ReqError` of the request's error type, and on `tevent::alloc` failures).
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use tevent::{Context, Next, tevent_request};
///
/// struct Hello;
/// #[tevent_request(steps(start => [done]))]
/// impl Hello {
///     type Output = &'static str;
///     type Error = std::convert::Infallible;
///
///     fn start(to: HelloStartStep<'_>) -> Next<Self> {
///         to.create(Hello).done("hello")
///     }
/// }
/// let ev = Context::new()?;
/// assert_eq!(hello_send(&ev).poll_recv(&ev)?, Ok("hello"));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type Next<T> = Result<Then<T>, ReqError<<T as Request>::Error>>;

impl<T: Request> Then<T> {
    /// The step result the runtime understands (for generated glue).
    #[doc(hidden)]
    #[inline]
    pub fn __into_step(next: Next<T>) -> StepResult<T> {
        next.map(|then| then.0)
    }

    /// Whether the step finished the request.
    pub fn is_done(&self) -> bool {
        matches!(self.0, Progress::Done(_))
    }
}

impl<T: Request> std::fmt::Debug for Then<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_done() {
            "Then::Done"
        } else {
            "Then::Pending"
        })
    }
}

/// What every step handle of a `#[tevent_request]` request offers, whatever
/// its successors: the context, end times, hooks, and [`StepCtl::pending`].
/// Generated handles dereference to it.
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use tevent::{Context, Next, ReqError, tevent_request, wakeup_recv, Wakeup, Req};
/// use std::time::Duration;
///
/// /// Waits one second, at most two.
/// struct Nap;
///
/// #[tevent_request(steps(start => [woke], woke => [done]))]
/// impl Nap {
///     type Output = bool;
///     type Error = std::convert::Infallible;
///
///     fn start(to: NapStartStep<'_>) -> Next<Self> {
///         let to = to.create(Nap);
///         to.set_timeout(Duration::from_secs(2))?; // a StepCtl method
///         to.woke(tevent::wakeup_send(to.ev(), to.ev().now() + Duration::from_secs(1)))
///     }
///
///     fn woke(&mut self, to: NapWokeStep<'_>, w: Req<Wakeup>) -> Next<Self> {
///         to.done(wakeup_recv(w))
///     }
/// }
///
/// let ev = Context::with_manual_clock(true)?;
/// let req = nap_send(&ev);
/// req.poll(&ev)?;
/// assert_eq!(nap_recv(req), Ok(true));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct StepCtl<'a, T: Request> {
    ctl: Ctl<'a, T>,
}

impl<'a, T: Request> StepCtl<'a, T> {
    /// The step's part of `ctl` (for generated glue).
    #[doc(hidden)]
    #[inline]
    pub fn __new(ctl: &'a mut Ctl<'_, T>) -> Self {
        StepCtl {
            ctl: Ctl::new(ctl.ev, ctl.node, &mut *ctl.hooks),
        }
    }

    /// Waits for `sub`; when it finishes, `then` runs as the next step (for
    /// the generated successor methods, which pass their step's glue).
    #[doc(hidden)]
    #[inline(always)]
    pub fn __wait<C: Request>(
        &self,
        sub: Req<C>,
        then: impl FnOnce(&mut T, &mut Ctl<'_, T>, Req<C>) -> StepResult<T> + 'static,
    ) -> Next<T> {
        self.ctl.wait_inline(sub, then)?;
        Ok(Then(Progress::Pending))
    }

    /// Finishes the request with `out` (for the generated `done` methods,
    /// which exist only where the step may finish).
    #[doc(hidden)]
    #[inline]
    pub fn __done(&self, out: T::Output) -> Next<T> {
        Ok(Then(Progress::Done(out)))
    }

    /// The context the request runs on.
    #[inline]
    pub fn ev(&self) -> &'a Context {
        self.ctl.ev()
    }

    /// Keeps waiting: the step started nothing new (the request still waits
    /// for what earlier steps started). A step that started waits through
    /// its successor methods returns what they returned instead.
    #[inline]
    pub fn pending(&self) -> Next<T> {
        Ok(Then(Progress::Pending))
    }

    /// Sets (or moves) the request's end time (see [`Ctl::set_endtime`]).
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        self.ctl.set_endtime(at)
    }

    /// Sets the request's end time `after` from now (see
    /// [`Ctl::set_timeout`]; clamped to [`crate::FAR_FUTURE`]).
    pub fn set_timeout(&self, after: Duration) -> Result<(), ReqError<T::Error>> {
        self.ctl.set_timeout(after)
    }

    /// Removes the request's end time.
    pub fn reset_endtime(&self) {
        self.ctl.reset_endtime()
    }

    /// Sets the cleanup hook (see [`Ctl::set_cleanup`]).
    pub fn set_cleanup(&mut self, hook: CleanupFn<T>) {
        self.ctl.set_cleanup(hook)
    }

    /// Sets the cancel hook (see [`Ctl::set_cancel`]).
    pub fn set_cancel(&mut self, hook: CancelFn<T>) {
        self.ctl.set_cancel(hook)
    }

    /// Starts profiling the request (see [`Req::enable_profile`]).
    pub fn enable_profile(&self) -> bool {
        self.ctl.enable_profile()
    }
}

/// The first step's handle before the request has its state: the start step
/// of a `#[tevent_request]` request builds the state (typically after
/// starting its first subrequests from the arguments) and hands it over with
/// the generated `create`, which returns the handle of its successors. An
/// error returned before that ends the request without a state (no cleanup
/// hook runs: there is nothing to clean up).
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use tevent::{Context, Next, Req, Wakeup, tevent_request, wakeup_send};
///
/// /// Its state holds nothing until the first step built it.
/// struct Later { started: std::time::Instant }
/// #[tevent_request(steps(start => [woke], woke => [done]))]
/// impl Later {
///     type Output = std::time::Duration;
///     type Error = std::convert::Infallible;
///
///     fn start(to: LaterStartStep<'_>) -> Next<Self> {
///         let now = to.ev().now(); // a StartCtl method, before the state exists
///         let to = to.create(Later { started: now });
///         to.woke(wakeup_send(to.ev(), now + std::time::Duration::from_secs(1)))
///     }
///
///     fn woke(&mut self, to: LaterWokeStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
///         to.done(to.ev().now() - self.started)
///     }
/// }
/// let ev = Context::with_manual_clock(true)?;
/// assert_eq!(later_send(&ev).poll_recv(&ev)?, Ok(std::time::Duration::from_secs(1)));
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct StartCtl<'a, T: Request> {
    ctl: Ctl<'a, T>,
    slot: &'a mut Option<T>,
}

impl<'a, T: Request> StartCtl<'a, T> {
    /// The context the request runs on.
    #[inline]
    pub fn ev(&self) -> &'a Context {
        self.ctl.ev()
    }

    /// Stores the state; returns the handle of the start step's successors
    /// (for the generated `create`).
    #[doc(hidden)]
    #[inline]
    pub fn __create(self, state: T) -> StepCtl<'a, T> {
        *self.slot = Some(state);
        StepCtl { ctl: self.ctl }
    }

    pub(crate) fn new(ctl: Ctl<'a, T>, slot: &'a mut Option<T>) -> Self {
        StartCtl { ctl, slot }
    }
}

/// Starts a request whose first step builds its state (for the generated
/// `<name>_send`): `first` gets a [`StartCtl`].
#[doc(hidden)]
#[track_caller]
#[inline]
pub fn __start<T: Request>(ev: &Context, first: impl FnOnce(StartCtl<'_, T>) -> Next<T>) -> Req<T> {
    Req::start_building(ev, first)
}

impl<T: Request> Req<T> {
    /// Starts a request without a state; `first` builds it.
    #[track_caller]
    pub(crate) fn start_building(
        ev: &Context,
        first: impl FnOnce(StartCtl<'_, T>) -> Next<T>,
    ) -> Req<T> {
        let scope = ev.enter();
        let slot = match ev.req_create_building(std::panic::Location::caller(), first) {
            Some(node) => super::Slot::Live(node),
            None => super::Slot::NoMemory(ev.weak()),
        };
        scope.end(Req {
            slot: std::mem::ManuallyDrop::new(slot),
            _t: PhantomData,
        })
    }
}

/// The name of the step a waiter `F` resumes: the function's name without
/// its path and generic arguments (`Echo::read_done` gives `read_done`; a
/// generated step's glue is named after the step); for a closure, the
/// function it was written in, followed by `::{closure}`.
pub(crate) fn step_name<F>() -> &'static str {
    let full = std::any::type_name::<F>();
    // Generic arguments can hold `::` too: cut them first.
    let path = match full.find('<') {
        Some(i) => &full[..i],
        None => full,
    };
    let mut segs = path.rsplit("::");
    match segs.next() {
        Some("{{closure}}") => {
            let parent = segs.find(|s| *s != "{{closure}}").unwrap_or("?");
            crate::req::short_type_name(leak_closure_name(parent))
        }
        Some(last) => last,
        None => full,
    }
}

/// `parent::{closure}`, kept for the process (one per function with
/// closure steps).
fn leak_closure_name(parent: &'static str) -> &'static str {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static NAMES: Mutex<BTreeMap<&'static str, &'static str>> = Mutex::new(BTreeMap::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry(parent)
        .or_insert_with(|| Box::leak(format!("{parent}::{{closure}}").into_boxed_str()))
}

/// Formats `Name@step`, `Name@[a, b×2]` or `Name`.
pub(crate) struct Waiting<'a>(pub(crate) &'static str, pub(crate) &'a [&'static str]);

impl std::fmt::Display for Waiting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        match self.1 {
            [] => Ok(()),
            [one] => write!(f, "@{one}"),
            many => {
                f.write_str("@[")?;
                let mut first = true;
                let mut i = 0;
                while i < many.len() {
                    let n = many[i..].iter().take_while(|s| **s == many[i]).count();
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    f.write_str(many[i])?;
                    if n > 1 {
                        write!(f, "×{n}")?;
                    }
                    i += n;
                }
                f.write_str("]")
            }
        }
    }
}

impl<T: Request> Req<T> {
    /// The steps this request waits in: for each subrequest it waits for,
    /// the name of the step its end resumes (sorted, so a step waited in
    /// twice appears twice). Empty once the request finished, and for a
    /// request that only waits for its end time or an fd.
    ///
    /// The name of a `#[tevent_request]` step is the step's; for a
    /// hand-written `ctl.wait(sub, Echo::read_done)` it is the function's
    /// name, `read_done`; for a closure, the function it was written in,
    /// followed by `::{closure}`.
    ///
    /// ```
    /// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// struct Nap;
    /// impl Request for Nap {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// impl Nap {
    ///     fn woke(&mut self, _: &mut Ctl<'_, Self>, _: Req<Wakeup>) -> StepResult<Self> {
    ///         Ok(Progress::Done(()))
    ///     }
    /// }
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let req = Req::start(&ev, Nap, |_, ctl| {
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now()), Nap::woke)?;
    ///     Ok(Progress::Pending)
    /// });
    /// assert_eq!(req.waiting_in(), ["woke"]);
    /// assert!(format!("{req:?}").contains(r#"type: "Nap@woke""#));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn waiting_in(&self) -> Vec<&'static str> {
        let Some(node) = self.node() else {
            return Vec::new();
        };
        let h = node.hdr();
        if h.has(crate::req::Flag::REMOVED) {
            return Vec::new();
        }
        let mut names = Vec::new();
        let mut c = h.first_child.get();
        while let Some(p) = c {
            // SAFETY: the subrequests on the list of a request that is not
            // removed are live; nothing here changes the list.
            let child = unsafe { crate::req::node::hdr(p) };
            if let Some(name) = child.waiter.step_name() {
                names.push(name);
            }
            c = child.next.get();
        }
        names.sort_unstable();
        names
    }
}
