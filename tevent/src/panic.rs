//! Panics in user code: how the runtime stays consistent when code it calls
//! panics, and where the panic goes.
//!
//! The runtime calls user code in two kinds of places:
//!
//! - **at a consistent point**: event handlers (fd, timer, immediate, signal,
//!   posted and remote closures) and request callbacks. A panic there
//!   propagates at once; a guard puts the handler back into its event on the
//!   way out, so the event stays registered and fires again when due.
//! - **in the middle of its own bookkeeping**: request steps, cancel and
//!   cleanup hooks, the `Drop` of a request's state, result or waiter, and
//!   trace hooks. There the panic is *caught* ([`PanicSlot::catch`]), the
//!   runtime finishes what it was doing (a request whose step panicked is
//!   finished with [`crate::ReqError::Panicked`]), and the panic is raised
//!   again when the public call that ran the code returns
//!   ([`PanicSlot::scope`]).
//!
//! Either way the panic leaves through the public call (`loop_once`,
//! `Req::start`, dropping a `Req`, ...) with the context, its events and its
//! other requests intact. If a second panic is caught while one is kept, the
//! second is dropped: its message was already printed by the panic hook, and
//! Rust has no way to carry two panics (it aborts in the same situation).

#[cfg(test)]
mod tests;

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// What a panic carries.
type Payload = Box<dyn Any + Send + 'static>;

/// A panic caught in user code, kept until the outermost public call of the
/// context returns (one per context).
#[derive(Default)]
pub(crate) struct PanicSlot {
    kept: Cell<Option<Payload>>,
    /// Whether `kept` holds a payload (checked without taking it).
    pending: Cell<bool>,
}

impl PanicSlot {
    /// Runs user code `f`; if it panics, keeps the panic and returns `None`.
    #[inline]
    pub(crate) fn catch<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(p) => {
                self.keep(p);
                None
            }
        }
    }

    #[cold]
    fn keep(&self, p: Payload) {
        if !self.pending.replace(true) {
            self.kept.set(Some(p));
        }
        // Otherwise the first panic wins; `p` is dropped here.
    }

    /// Marks the start of a public call: when the returned guard drops, a
    /// panic kept since is raised, unless one was already kept when the
    /// scope began (an enclosing call raises that one).
    #[inline]
    pub(crate) fn scope(&self) -> PanicScope<'_> {
        PanicScope {
            slot: self,
            outer: !self.pending.get(),
        }
    }

    /// Takes the kept panic, if any.
    pub(crate) fn take(&self) -> Option<Payload> {
        self.pending.set(false);
        self.kept.take()
    }
}

/// Raises, when dropped, a panic kept during the public call it spans (see
/// [`PanicSlot::scope`]).
pub(crate) struct PanicScope<'a> {
    slot: &'a PanicSlot,
    outer: bool,
}

impl Drop for PanicScope<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.outer && self.slot.pending.get() {
            raise(self.slot);
        }
    }
}

#[cold]
#[inline(never)]
fn raise(slot: &PanicSlot) {
    let Some(p) = slot.take() else {
        return;
    };
    if std::thread::panicking() {
        // Another panic is already unwinding through this call: it wins, as
        // it would if the runtime were ordinary Rust code.
        drop(p);
    } else {
        resume_unwind(p);
    }
}

/// Raises a panic kept in `slot`: at the end of a loop step (which never
/// nests) and of the context's `Drop`.
#[inline]
pub(crate) fn raise_kept(slot: &PanicSlot) {
    if slot.pending.get() {
        raise(slot);
    }
}

/// Runs an event handler: `call` gets `handler`, which is then returned to
/// the caller (to store it in its event again). If `call` panics,
/// `on_unwind` gets the handler instead, while the panic unwinds, so the
/// event keeps its handler either way. The normal path costs nothing: the
/// guard only acts on unwinding.
#[inline(always)]
pub(crate) fn run_handler<H, P: FnOnce(H)>(
    handler: H,
    on_unwind: P,
    call: impl FnOnce(&mut H),
) -> H {
    /// Hands the handler to `on_unwind` if `call` unwinds.
    struct OnUnwind<H, P: FnOnce(H)>(Option<(H, P)>);

    impl<H, P: FnOnce(H)> Drop for OnUnwind<H, P> {
        #[cold]
        fn drop(&mut self) {
            if let Some((h, on_unwind)) = self.0.take() {
                on_unwind(h);
            }
        }
    }

    let mut guard = OnUnwind(Some((handler, on_unwind)));
    if let Some((h, _)) = guard.0.as_mut() {
        call(h);
    }
    let taken = guard.0.take();
    std::mem::forget(guard);
    match taken {
        Some((h, _)) => h,
        None => unreachable!("the handler is taken back only here"),
    }
}
