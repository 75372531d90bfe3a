//! The runtime half of `#[tevent_request]` steps: what a generated step
//! returns ([`Next`]), the part of its handle that every step has
//! ([`StepCtl`]), the start of a request whose state its first step builds
//! ([`StartCtl`]), the declared graph as the runtime sees it
//! ([`StepMachine`]), and the glue the expansion calls (`glue`).
//!
//! A generated step handle (`EchoReadStep<'_>` for step `read` of `Echo`)
//! wraps the runtime's handle of that step (`glue::Step<'_, Echo, 1>`),
//! dereferences to a [`StepCtl`] and adds one method per declared successor
//! (which waits for a subrequest whose end resumes that step, with the
//! values the transition carries) and `done` where the step may finish the
//! request. A step can only return what its handle builds, and the glue
//! behind those methods is checked, at compile time, against the graph the
//! attribute declared: a step can neither finish nor wait where its
//! declaration does not allow it, whatever it calls.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::req::{CancelFn, CleanupFn, Ctl, Progress, Req, ReqError, ReqRef, Request, StepResult};

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
    /// The step result the runtime understands.
    #[inline]
    pub(crate) fn __into_step(next: Next<T>) -> StepResult<T> {
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
/// Generated handles dereference to it. Nothing here finishes the request or
/// starts a wait: only a handle's generated methods (its declared successors
/// and, where declared, `done`) do.
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
    /// The step's part of `ctl`.
    #[inline]
    fn new(ctl: &'a mut Ctl<'_, T>) -> Self {
        StepCtl {
            ctl: Ctl::new(ctl.ev, ctl.node, &mut *ctl.hooks),
        }
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
    ///
    /// # Errors
    ///
    /// `NoMemory` if the end time's timer cannot be allocated.
    pub fn set_endtime(&self, at: Instant) -> Result<(), ReqError<T::Error>> {
        self.ctl.set_endtime(at)
    }

    /// Sets the request's end time `after` from now (see
    /// [`Ctl::set_timeout`]; clamped to [`crate::FAR_FUTURE`]).
    ///
    /// # Errors
    ///
    /// As [`StepCtl::set_endtime`].
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

    /// Sets the cancel hook of a `#[tevent_request]` request: what
    /// [`Req::cancel`] does to it. The hook sees the state and answers with
    /// a [`Cancel`]: decline, or finish the request as cancelled. (The hook
    /// of a hand-written request, [`Ctl::set_cancel`], runs as a step with a
    /// `Ctl`; a generated request's hook gets no handle, so it cannot leave
    /// the declared steps.)
    pub fn set_cancel(&mut self, hook: fn(&mut T) -> Cancel) {
        self.ctl.hooks.cancel = Some(CancelHook::Sealed(hook));
    }

    /// Starts profiling the request (see [`Req::enable_profile`]).
    pub fn enable_profile(&self) -> bool {
        self.ctl.enable_profile()
    }
}

/// What the cancel hook of a `#[tevent_request]` request decides (see
/// [`StepCtl::set_cancel`]; C tevent's cancel function returns whether
/// cancellation started).
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use std::time::Duration;
/// use tevent::{Cancel, Context, Next, Req, ReqError, Wakeup, tevent_request, wakeup_send};
///
/// /// A nap that may be cut short.
/// struct Nap;
///
/// #[tevent_request(steps(start => [woke], woke => [done]))]
/// impl Nap {
///     type Output = ();
///     type Error = std::convert::Infallible;
///
///     fn start(to: NapStartStep<'_>) -> Next<Self> {
///         let mut to = to.create(Nap);
///         to.set_cancel(|_| Cancel::Cancelled);
///         to.woke(wakeup_send(to.ev(), to.ev().now() + Duration::from_secs(60)))
///     }
///
///     fn woke(&mut self, to: NapWokeStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
///         to.done(())
///     }
/// }
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap = nap_send(&ev);
/// assert!(nap.cancel());
/// assert_eq!(nap.poll_recv(&ev)?, Err(ReqError::Cancelled));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cancel {
    /// Cancellation cannot start: the request goes on ([`Req::cancel`]
    /// returns false).
    Declined,
    /// The request finishes now with [`ReqError::Cancelled`] (its
    /// subrequests are dropped with it).
    Cancelled,
}

/// A request's cancel hook: a hand-written request's runs as a step; a
/// generated request's only decides.
pub(crate) enum CancelHook<T: Request> {
    /// [`Ctl::set_cancel`]'s.
    Step(CancelFn<T>),
    /// [`StepCtl::set_cancel`]'s.
    Sealed(fn(&mut T) -> Cancel),
}

impl<T: Request> Clone for CancelHook<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Request> Copy for CancelHook<T> {}

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

    pub(crate) fn new(ctl: Ctl<'a, T>, slot: &'a mut Option<T>) -> Self {
        StartCtl { ctl, slot }
    }
}

/// A request written with `#[tevent_request]`: its steps and their graph,
/// as the attribute declared them (the attribute implements this trait;
/// nothing else should). It gives [`Req::step`], and it is what the
/// generated glue is checked against: a transition or a finish that the
/// declaration does not allow does not compile, however it is called.
///
#[cfg_attr(feature = "macros", doc = "```")]
#[cfg_attr(not(feature = "macros"), doc = "```ignore")]
/// use tevent::{Next, StepMachine, tevent_request};
///
/// struct Ping;
/// #[tevent_request(steps(start => [done]))]
/// impl Ping {
///     type Output = ();
///     type Error = std::convert::Infallible;
///     fn start(to: PingStartStep<'_>) -> Next<Self> {
///         to.create(Ping).done(())
///     }
/// }
///
/// assert_eq!(<Ping as StepMachine>::STEP_NAMES, ["start"]);
/// assert_eq!(<Ping as StepMachine>::FINISHES, [true]);
/// assert_eq!(PingStepName::Start.name(), "start");
/// ```
pub trait StepMachine: Request {
    /// The step names as a `Copy` enum (`EchoStepName`), for `match`, tests
    /// and logs.
    type StepName: Copy + Eq + std::hash::Hash + std::fmt::Debug + 'static;
    /// The steps' names, in the order they were declared.
    const STEP_NAMES: &'static [&'static str];
    /// The index of `start` in [`StepMachine::STEP_NAMES`].
    const START: usize;
    /// For each step, the indexes of the steps it may lead to.
    const SUCCESSORS: &'static [&'static [usize]];
    /// For each step, whether it may finish the request (`done`).
    const FINISHES: &'static [bool];

    /// The name of the step with index `index` (an index of
    /// [`StepMachine::STEP_NAMES`]).
    fn step_name(index: usize) -> Self::StepName;
}

/// Whether step `from` of a machine with `successors` may lead to `to`
/// (usable in a `const` block).
const fn leads_to(successors: &[&[usize]], from: usize, to: usize) -> bool {
    if from >= successors.len() {
        return false;
    }
    let list = successors[from];
    let mut i = 0;
    while i < list.len() {
        if list[i] == to {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether step `from` may finish (usable in a `const` block).
const fn finishes(finishes: &[bool], from: usize) -> bool {
    from < finishes.len() && finishes[from]
}

/// The glue between `#[tevent_request]`'s expansion and the runtime. Not an
/// API: its items are named only by the expansion, and everything it does
/// is checked against the request's declared graph ([`StepMachine`]), so
/// that even called by hand it cannot finish a request, or start a wait,
/// where the declaration does not allow it (such a call does not compile).
#[doc(hidden)]
pub mod glue {
    use super::{Next, Progress, StartCtl, StepCtl, StepMachine, Then, finishes, leads_to};
    use crate::context::Context;
    use crate::req::node::{NodePtr, ReqRef};
    use crate::req::waiter::Resume;
    use crate::req::{Ctl, Req, Request};
    use std::marker::PhantomData;

    /// The handle of step `N` of request `T`, as the runtime gives it to the
    /// step (inside the generated handle type). Only the runtime makes one,
    /// for the step it runs.
    pub struct Step<'a, T: Request, const N: usize> {
        ctl: StepCtl<'a, T>,
    }

    impl<'a, T: Request, const N: usize> std::ops::Deref for Step<'a, T, N> {
        type Target = StepCtl<'a, T>;

        #[inline]
        fn deref(&self) -> &Self::Target {
            &self.ctl
        }
    }

    impl<T: Request, const N: usize> std::ops::DerefMut for Step<'_, T, N> {
        #[inline]
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.ctl
        }
    }

    /// The handle of the start step before the state exists.
    pub struct Start<'a, T: Request> {
        ctl: StartCtl<'a, T>,
    }

    impl<'a, T: Request> std::ops::Deref for Start<'a, T> {
        type Target = StartCtl<'a, T>;

        #[inline]
        fn deref(&self) -> &Self::Target {
            &self.ctl
        }
    }

    /// Starts a request whose start step (`first`) builds its state (the
    /// generated `<name>_send`).
    #[track_caller]
    #[inline]
    pub fn start<T: StepMachine>(
        ev: &Context,
        first: impl FnOnce(Start<'_, T>) -> Next<T>,
    ) -> Req<T> {
        Req::start_building(ev, move |ctl| first(Start { ctl }))
    }

    /// Hands the request its state; the handle of the start step (index
    /// `N`) with the state in place.
    #[inline]
    pub fn create<'a, T: StepMachine, const N: usize>(
        start: Start<'a, T>,
        state: T,
    ) -> Step<'a, T, N> {
        const { assert!(N == T::START, "not the start step") };
        let StartCtl { ctl, slot } = start.ctl;
        *slot = Some(state);
        Step {
            ctl: StepCtl { ctl },
        }
    }

    /// Waits for `sub`; when it finishes, `glue` runs step `TO` with the
    /// finished request and `data`, the transition's carried values.
    /// Compiles only where step `FROM` declares `TO` a successor.
    ///
    /// # Errors
    ///
    /// As [`Ctl::wait`]: `NoMemory` if `sub` could not be allocated or the
    /// wait recorded, `WrongContext`, `WaitCycle`.
    #[inline(always)]
    pub fn wait<T, C, G, D, const FROM: usize, const TO: usize>(
        from: &Step<'_, T, FROM>,
        sub: Req<C>,
        glue: G,
        data: D,
    ) -> Next<T>
    where
        T: StepMachine,
        C: Request,
        G: for<'b> FnOnce(&mut T, Step<'b, T, TO>, Req<C>, D) -> Next<T> + 'static,
        D: std::fmt::Debug + 'static,
    {
        const {
            assert!(
                leads_to(T::SUCCESSORS, FROM, TO),
                "the step does not declare this successor"
            )
        };
        from.ctl.ctl.wait_with(
            sub,
            Transition::<T, C, G, D, TO> {
                glue,
                data,
                _t: PhantomData,
            },
        )?;
        Ok(Then(Progress::Pending))
    }

    /// Finishes the request with `out`. Compiles only where step `FROM`
    /// declares `done`.
    #[inline]
    pub fn done<T: StepMachine, const FROM: usize>(
        _from: &Step<'_, T, FROM>,
        out: T::Output,
    ) -> Next<T> {
        const {
            assert!(
                finishes(T::FINISHES, FROM),
                "the step does not declare `done`"
            )
        };
        Ok(Then(Progress::Done(out)))
    }

    /// A transition into step `TO`: what resumes it, and what it carries
    /// (a value of the request's step enum).
    struct Transition<T, C, G, D, const TO: usize> {
        glue: G,
        data: D,
        _t: PhantomData<fn(T, C)>,
    }

    impl<T, C, G, D, const TO: usize> Resume for Transition<T, C, G, D, TO>
    where
        T: StepMachine,
        C: Request,
        G: for<'b> FnOnce(&mut T, Step<'b, T, TO>, Req<C>, D) -> Next<T> + 'static,
        D: std::fmt::Debug + 'static,
    {
        fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
            let sub = Req::<C>::adopt(child);
            let Some(parent) = parent else {
                return;
            };
            // SAFETY: the child was on the parent's list until now, so the
            // parent is live; the count keeps it so while its step runs.
            let parent = unsafe { ReqRef::from_ptr(parent) };
            let Transition { glue, data, .. } = self;
            // If the parent cannot run a step, the glue, `sub` and the data
            // are dropped. Not reported: a delivery that reports reported
            // this step already (see `Context::run_completions`).
            ev.run_step_unreported::<T>(&parent, move |st, ctl: &mut Ctl<'_, T>| {
                let step = Step {
                    ctl: StepCtl::new(ctl),
                };
                Then::__into_step(glue(st, step, sub, data))
            });
        }

        fn step_name(&self) -> &'static str {
            T::STEP_NAMES.get(TO).copied().unwrap_or("?")
        }

        fn step_index(&self) -> Option<usize> {
            Some(TO)
        }

        fn fmt_step(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(&self.data, f)
        }
    }
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

impl<T: StepMachine> Req<T> {
    /// The step the request waits in: the step that runs when what it
    /// waits for finishes (with several waits, the one started last). `None`
    /// once it finished, and while it waits for nothing (it may still wait
    /// for its end time).
    ///
    #[cfg_attr(feature = "macros", doc = "```")]
    #[cfg_attr(not(feature = "macros"), doc = "```ignore")]
    /// use std::time::Duration;
    /// use tevent::{Context, Next, Req, Wakeup, tevent_request, wakeup_send};
    ///
    /// struct Twice;
    /// #[tevent_request(steps(start => [first], first => [second], second => [done]))]
    /// impl Twice {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    ///     fn start(to: TwiceStartStep<'_>) -> Next<Self> {
    ///         let to = to.create(Twice);
    ///         to.first(wakeup_send(to.ev(), to.ev().now() + Duration::from_secs(1)))
    ///     }
    ///     fn first(&mut self, to: TwiceFirstStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
    ///         to.second(wakeup_send(to.ev(), to.ev().now() + Duration::from_secs(1)))
    ///     }
    ///     fn second(&mut self, to: TwiceSecondStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
    ///         to.done(())
    ///     }
    /// }
    ///
    /// let ev = Context::with_manual_clock(true)?;
    /// let req = twice_send(&ev);
    /// assert_eq!(req.step(), Some(TwiceStepName::First));
    /// ev.loop_once()?;
    /// assert_eq!(req.step(), Some(TwiceStepName::Second));
    /// req.poll(&ev)?;
    /// assert_eq!(req.step(), None);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn step(&self) -> Option<T::StepName> {
        let node = self.node()?;
        let h = node.hdr();
        if h.has(crate::req::Flag::REMOVED) {
            return None;
        }
        let mut c = h.first_child.get();
        while let Some(p) = c {
            // SAFETY: the subrequests on the list of a request that is not
            // removed are live; nothing here runs user code.
            let child = unsafe { crate::req::node::hdr(p) };
            if let Some(i) = child.waiter.step_index() {
                return Some(T::step_name(i));
            }
            c = child.next.get();
        }
        None
    }
}

/// `Debug` of the steps a request waits in, each with what its transition
/// carries: one step as itself, several as a list.
pub(crate) struct WaitsOf<'a>(pub(crate) &'a Context, pub(crate) &'a ReqRef);

impl std::fmt::Debug for WaitsOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::req::Flag;
        // The data's `Debug` is user code: under a call of the context (no
        // loop runs, no node is freed under us), on counted references.
        let _entered = self.0.enter();
        let parent = self.1;
        let mut waits = Vec::new();
        let mut c = parent.hdr().first_child.get();
        while let Some(p) = c {
            // SAFETY: the subrequests on the list of a request that is not
            // removed are live (nothing has run user code yet).
            let child = unsafe { ReqRef::from_ptr(p) };
            c = child.hdr().next.get();
            waits.push(child);
        }
        struct One<'b>(&'b ReqRef);
        impl std::fmt::Debug for One<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let h = self.0.hdr();
                match h.waiter.fmt_step(f, || !h.has(Flag::REMOVED)) {
                    Some(r) => r,
                    None => f.write_str("?"),
                }
            }
        }
        match &waits[..] {
            [one] => One(one).fmt(f),
            many => f.debug_list().entries(many.iter().map(One)).finish(),
        }
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
