//! Reporting the points of a request's life to the request trace hook
//! ([`crate::trace::ReqPoint`]), and, with the `tracing` feature, as
//! `tracing` events.
//!
//! The runtime checks [`reporting`] (one flag word) where a point happens,
//! and takes the cold paths here only when it is set, so a context without
//! a request hook pays one well-predicted branch per point, and its hot
//! paths are otherwise the ones it had without the hooks. Each report is
//! made where the runtime's tables are consistent; the hook is user code,
//! its panic is kept in the context's [`PanicSlot`](crate::panic), and the
//! callers re-check after it what it could have changed.

use std::panic::Location;

use crate::context::{Context, Inner};
use crate::req::ReqState;
use crate::req::node::{Flag, Header, hdr};
use crate::req::table::Owner;
use crate::trace::{ReqPoint, ReqTrace};

/// The name of a step, asked for only if it is reported.
pub(crate) type StepName = Option<fn() -> &'static str>;

/// Whether request points are reported: a request hook is installed, or
/// the `tracing` feature is on (one flag word; see
/// `trace::Hooks::reporting`).
#[inline(always)]
pub(crate) fn reporting(inner: &Inner) -> bool {
    inner.hooks.reporting()
}

/// What a report says about its request, read from its header before any
/// user code runs (the header may be gone by the time the hook runs).
pub(crate) struct About {
    id: u64,
    name: fn() -> &'static str,
    state: ReqState,
    created: &'static Location<'static>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl About {
    pub(crate) fn of(h: &Header) -> About {
        About {
            id: std::ptr::from_ref(h) as u64,
            name: h.name_fn(),
            state: h.state.get(),
            created: h.created,
            #[cfg(feature = "tracing")]
            span: h.span.clone(),
        }
    }
}

/// Request `h`'s depth in its tree (the requests that wait for it,
/// transitively).
pub(crate) fn tree_depth(h: &Header) -> usize {
    let mut depth = 0;
    let mut at = h;
    while at.owner.get() == Owner::Parent {
        let Some(up) = at.parent.get() else { break };
        depth += 1;
        // SAFETY: the parent of a linked subrequest is live.
        at = unsafe { hdr(up) };
    }
    depth
}

impl Inner {
    /// Reports `point` about the request `about` describes.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_req(
        &self,
        about: About,
        point: ReqPoint,
        depth: usize,
        step: Option<&'static str>,
    ) {
        let state = match (point, about.state) {
            (ReqPoint::Cleanup, ReqState::InProgress) => ReqState::Dropped,
            (_, s) => s,
        };
        #[cfg(feature = "tracing")]
        tracing::trace!(
            target: "tevent::req",
            parent: &about.span,
            point = ?point,
            depth,
            step = step.unwrap_or(""),
            state = ?state,
        );
        if self.hooks.has_req.get() {
            self.hooks.call_req_hook(&self.panic, || ReqTrace {
                point,
                id: about.id,
                depth,
                name: (about.name)(),
                step,
                state,
                created: about.created,
            });
        }
    }

    /// Reports the creation of request `h`, whose first step runs next;
    /// returns the depth of the request whose step ran before (to put back
    /// when the first step returns).
    #[cold]
    #[inline(never)]
    pub(crate) fn report_create(&self, h: &Header) -> Option<usize> {
        let depth = self.hooks.req_depth.get().map_or(0, |d| d + 1);
        self.report_req(About::of(h), ReqPoint::Create, depth, None);
        self.hooks.req_depth.replace(Some(depth))
    }

    /// Reports that a step of request `h` is about to run; returns the
    /// depth to put back when it returns. The caller checks afterwards
    /// that the request can still run a step (the hook may have ended it).
    #[cold]
    #[inline(never)]
    pub(crate) fn report_step(&self, h: &Header, step: StepName) -> Option<usize> {
        self.report_step_named(h, step.map(|s| s()))
    }

    /// [`Inner::report_step`] with the step's name at hand.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_step_named(
        &self,
        h: &Header,
        step: Option<&'static str>,
    ) -> Option<usize> {
        let depth = tree_depth(h);
        self.report_req(About::of(h), ReqPoint::Step, depth, step);
        self.hooks.req_depth.replace(Some(depth))
    }

    /// Reports that the waiter of the finished request `h` is about to run;
    /// returns whether it still may (the hook did not drop the request).
    #[cold]
    #[inline(never)]
    pub(crate) fn report_notify(&self, h: &Header) -> bool {
        let step = crate::req::inspect::waited_in(h);
        self.report_req(About::of(h), ReqPoint::Notify, tree_depth(h), step);
        !h.has(Flag::DOOMED | Flag::REMOVED)
    }
}

impl Context {
    /// Reports that cancellation of request `h` was asked.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_cancel(&self, h: &Header) {
        if h.state.get() == ReqState::InProgress && !h.has(Flag::BUSY) {
            self.inner
                .report_req(About::of(h), ReqPoint::Cancel, tree_depth(h), None);
        }
    }
}
