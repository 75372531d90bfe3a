//! The waiter of a request: what runs when it finishes (its parent's step,
//! a callback), kept in the request's own node.
//!
//! A waiter is a closure and what it captures: for a step of
//! `#[tevent_request]`, the values its transition carries to the next step.
//! A waiter of up to [`WAITER_WORDS`] words (aligned to at most a word) is
//! stored inline in the node of the request it waits for, so that a wait,
//! and the data it carries, allocates nothing; a larger one is boxed.
//!
//! The slot is type-erased: it holds the waiter's bytes and a table of
//! functions monomorphised for its type ([`WaiterVt`]). A waiter is always
//! moved out of its slot before it runs ([`WaiterSlot::take`]): the code it
//! runs may register a new waiter in the same slot (a callback that sets
//! another callback on the request it was given).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};

use crate::context::Context;
use crate::req::Failure;
use crate::req::node::{NodePtr, ReqRef};

/// Words of a waiter stored inline: eight, 64 bytes on 64-bit targets (a
/// step tag with a `String`, a `Vec` and an `Rc`, say), one cache line.
pub(crate) const WAITER_WORDS: usize = 8;

/// The inline storage: words, so aligned to a word.
type Buf = MaybeUninit<[usize; WAITER_WORDS]>;

/// A waiter too large for the slot, boxed (fallibly: `alloc::try_box`).
type Boxed<R> = Box<[R; 1]>;

/// Resumes a waiter when the request it waits for has finished.
pub(crate) trait Resume: Sized + 'static {
    /// `parent` is the waiting request (`None` for a top-level callback),
    /// `child` the finished one, whose ownership passes to the waiter.
    fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef);

    /// The name of the step this waiter resumes (for `Debug` and
    /// `Req::waiting_in`). Not user code.
    fn step_name(&self) -> &'static str {
        "callback"
    }

    /// The index of the `#[tevent_request]` step this waiter resumes, if it
    /// is one (see `StepMachine`).
    fn step_index(&self) -> Option<usize> {
        None
    }

    /// Writes the step this waiter resumes, with the data it carries there
    /// if there is any. May run user code (the data's `Debug`).
    fn fmt_step(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.step_name())
    }
}

/// What the slot can do with the waiter it holds, without knowing its type.
struct WaiterVt {
    /// Runs the waiter whose bytes are at `p` (moved out of the slot),
    /// consuming it.
    resume: unsafe fn(*mut Buf, &Context, Option<NodePtr>, ReqRef),
    /// Drops the waiter whose bytes are at `p`.
    drop: unsafe fn(*mut Buf),
    step_name: unsafe fn(*const Buf) -> &'static str,
    step_index: unsafe fn(*const Buf) -> Option<usize>,
    fmt: unsafe fn(*const Buf, &mut fmt::Formatter<'_>) -> fmt::Result,
}

struct VtOf<R>(PhantomData<R>);

impl<R: Resume> VtOf<R> {
    /// Whether `R` fits in the slot.
    const INLINE: bool = std::mem::size_of::<R>() <= std::mem::size_of::<Buf>()
        && std::mem::align_of::<R>() <= std::mem::align_of::<Buf>();

    /// For an `R` stored in the slot itself.
    const IN_PLACE: WaiterVt = WaiterVt {
        resume: Self::resume_in_place,
        drop: Self::drop_in_place,
        step_name: |p| {
            // SAFETY: the slot holds an `R` in place (see `WaiterSlot::set`).
            unsafe { &*p.cast::<R>() }.step_name()
        },
        step_index: |p| {
            // SAFETY: as above.
            unsafe { &*p.cast::<R>() }.step_index()
        },
        fmt: |p, f| {
            // SAFETY: as above.
            unsafe { &*p.cast::<R>() }.fmt_step(f)
        },
    };

    /// For an `R` too large for the slot: the slot holds a `Boxed<R>`.
    const BOXED: WaiterVt = WaiterVt {
        resume: Self::resume_boxed,
        drop: Self::drop_boxed,
        step_name: |p| {
            // SAFETY: the slot holds a `Boxed<R>` (see `WaiterSlot::set`).
            let b = unsafe { &*p.cast::<Boxed<R>>() };
            b[0].step_name()
        },
        step_index: |p| {
            // SAFETY: as above.
            let b = unsafe { &*p.cast::<Boxed<R>>() };
            b[0].step_index()
        },
        fmt: |p, f| {
            // SAFETY: as above.
            let b = unsafe { &*p.cast::<Boxed<R>>() };
            b[0].fmt_step(f)
        },
    };

    /// # Safety
    /// `p` holds an `R`, which this moves out (it must not be used again).
    unsafe fn resume_in_place(p: *mut Buf, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        // SAFETY: guaranteed by the caller.
        let r = unsafe { p.cast::<R>().read() };
        r.resume(ev, parent, child);
    }

    /// # Safety
    /// `p` holds an `R`, which this drops.
    unsafe fn drop_in_place(p: *mut Buf) {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::drop_in_place(p.cast::<R>()) }
    }

    /// # Safety
    /// `p` holds a `Boxed<R>`, which this moves out.
    unsafe fn resume_boxed(p: *mut Buf, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        // SAFETY: guaranteed by the caller.
        let b = unsafe { p.cast::<Boxed<R>>().read() };
        let [r] = *b;
        r.resume(ev, parent, child);
    }

    /// # Safety
    /// `p` holds a `Boxed<R>`, which this drops.
    unsafe fn drop_boxed(p: *mut Buf) {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::drop_in_place(p.cast::<Boxed<R>>()) }
    }
}

/// A request's waiter slot (in its node's header): empty, or one waiter.
pub(crate) struct WaiterSlot {
    /// The functions of the waiter the slot holds (`None`: empty).
    vt: Cell<Option<&'static WaiterVt>>,
    buf: UnsafeCell<Buf>,
}

impl WaiterSlot {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        WaiterSlot {
            vt: Cell::new(None),
            buf: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Whether the slot holds a waiter.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.vt.get().is_some()
    }

    /// Stores `r`: in place if it fits, boxed otherwise (`NoMemory` if the
    /// box cannot be allocated; `r` is dropped then). A slot that already
    /// holds a waiter keeps it (the runtime never asks that: a request has
    /// at most one waiter) and `r` is refused.
    #[inline(always)]
    pub(crate) fn set<R: Resume>(&self, r: R) -> Result<(), Failure> {
        if self.is_set() {
            return Err(Failure::WrongContext);
        }
        let p = self.buf.get();
        if VtOf::<R>::INLINE {
            // SAFETY: the slot is empty (nothing to overwrite), `R` fits in
            // it and is no more aligned than it (checked above); nothing
            // else borrows the bytes (the slot is only read through `vt`,
            // which says empty until it is set below).
            unsafe { p.cast::<R>().write(r) };
            self.vt.set(Some(&VtOf::<R>::IN_PLACE));
        } else {
            let b: Boxed<R> = crate::alloc::try_box(r).map_err(|_| Failure::NoMemory)?;
            // SAFETY: as above; a `Box` is one word.
            unsafe { p.cast::<Boxed<R>>().write(b) };
            self.vt.set(Some(&VtOf::<R>::BOXED));
        }
        Ok(())
    }

    /// Moves the waiter out of the slot (which is empty afterwards).
    #[inline(always)]
    pub(crate) fn take(&self) -> Option<Taken> {
        let vt = self.vt.take()?;
        // SAFETY: the slot held a waiter (its `vt` was set), whose bytes
        // are copied out here: a move (the slot is marked empty above, so
        // they are never read or dropped from there again).
        let buf = unsafe { self.buf.get().read() };
        Some(Taken { vt, buf })
    }

    /// Marks the slot empty and hands out its waiter in place, to be run by
    /// [`InPlace::resume`], which moves it out of the slot's bytes before
    /// anything else: unlike [`WaiterSlot::take`], this copies only the
    /// waiter's own bytes (none for a plain function), not the whole slot.
    #[inline(always)]
    pub(crate) fn take_in_place(&self) -> Option<InPlace> {
        let vt = self.vt.take()?;
        Some(InPlace {
            vt,
            buf: self.buf.get(),
        })
    }

    /// Puts a waiter taken out of this slot back, if the slot is still
    /// empty; hands it back otherwise.
    pub(crate) fn put(&self, t: Taken) -> Result<(), Taken> {
        if self.is_set() {
            return Err(t);
        }
        let t = ManuallyDrop::new(t);
        // SAFETY: the slot is empty; the bytes move back into it (`t` is
        // never dropped, so they are not dropped twice).
        unsafe { self.buf.get().write(t.buf) };
        self.vt.set(Some(t.vt));
        Ok(())
    }

    /// Writes the step the waiter resumes, with the data it carries (user
    /// code: the data's `Debug`). The waiter is moved out of the slot while
    /// that runs, so that nothing the `Debug` does can move or drop it from
    /// under the formatting; it goes back afterwards (also if the `Debug`
    /// panics) while `live()` says its request is still there and nothing
    /// took its place, and is dropped otherwise (its request was dropped
    /// meanwhile: the runtime found the slot empty). `None` if the slot is
    /// empty.
    pub(crate) fn fmt_step(
        &self,
        f: &mut fmt::Formatter<'_>,
        live: impl Fn() -> bool,
    ) -> Option<fmt::Result> {
        /// Puts the waiter back, or drops it, on the way out.
        struct PutBack<'s, L: Fn() -> bool> {
            slot: &'s WaiterSlot,
            taken: Option<Taken>,
            live: L,
        }
        impl<L: Fn() -> bool> Drop for PutBack<'_, L> {
            fn drop(&mut self) {
                if let Some(t) = self.taken.take()
                    && (self.live)()
                {
                    // Refused only if something took the slot: drop ours.
                    drop(self.slot.put(t));
                }
            }
        }
        let taken = self.take()?;
        let back = PutBack {
            slot: self,
            taken: Some(taken),
            live,
        };
        let r = back.taken.as_ref().map(|t| t.fmt_step(f));
        drop(back);
        r
    }

    /// The step the waiter resumes, without running user code.
    pub(crate) fn step_name(&self) -> Option<&'static str> {
        let vt = self.vt.get()?;
        // SAFETY: the slot holds the waiter `vt` describes; `step_name` only
        // reads it and runs no user code, so it cannot be moved meanwhile.
        Some(unsafe { (vt.step_name)(self.buf.get()) })
    }

    /// The `#[tevent_request]` step index the waiter resumes.
    pub(crate) fn step_index(&self) -> Option<usize> {
        let vt = self.vt.get()?;
        // SAFETY: as in `step_name`.
        unsafe { (vt.step_index)(self.buf.get()) }
    }
}

impl Drop for WaiterSlot {
    #[inline]
    fn drop(&mut self) {
        // The runtime takes every waiter before a node goes (release,
        // teardown); this only keeps a mistake from leaking one.
        if self.is_set() {
            self.drop_left();
        }
    }
}

impl WaiterSlot {
    #[cold]
    #[inline(never)]
    fn drop_left(&mut self) {
        drop(self.take());
    }
}

/// A waiter moved out of its slot.
pub(crate) struct Taken {
    vt: &'static WaiterVt,
    buf: Buf,
}

impl Taken {
    /// Runs the waiter: `parent` is the waiting request (`None` for a
    /// callback), `child` the finished one, whose ownership passes to it.
    #[inline(always)]
    pub(crate) fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `buf` holds the waiter `vt` describes, moved out of its
        // slot; `resume` consumes it, and `me` is never dropped.
        unsafe { (me.vt.resume)(&raw mut me.buf, ev, parent, child) }
    }

    /// The name of the step the waiter resumes.
    pub(crate) fn step_name(&self) -> &'static str {
        // SAFETY: `buf` holds the waiter `vt` describes.
        unsafe { (self.vt.step_name)(&raw const self.buf) }
    }

    /// Writes the step the waiter resumes and its data (user code: the
    /// data's `Debug`).
    pub(crate) fn fmt_step(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: `buf` holds the waiter `vt` describes.
        unsafe { (self.vt.fmt)(&raw const self.buf, f) }
    }
}

/// A waiter left in its slot's bytes, the slot marked empty (see
/// [`WaiterSlot::take_in_place`]). Dropping it without running it leaks
/// the waiter (the runtime always runs it).
pub(crate) struct InPlace {
    vt: &'static WaiterVt,
    buf: *mut Buf,
}

impl InPlace {
    /// Runs the waiter: `parent` is the waiting request (`None` for a
    /// callback), `child` the finished one, whose ownership passes to it.
    ///
    /// # Safety
    /// The slot's bytes must be as `take_in_place` left them: its node
    /// still allocated and nothing written to the slot since (no user code
    /// ran in between). The waiter is moved out of them before anything
    /// else runs, so the code it runs may free the node or register a new
    /// waiter in the slot.
    #[inline(always)]
    pub(crate) unsafe fn resume(self, ev: &Context, parent: Option<NodePtr>, child: ReqRef) {
        // SAFETY: `buf` holds the waiter `vt` describes (guaranteed by the
        // caller); `resume` moves it out first and consumes it, and the
        // slot, marked empty, never reads or drops those bytes again.
        unsafe { (self.vt.resume)(self.buf, ev, parent, child) }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // SAFETY: `buf` holds the waiter `vt` describes; dropped once, here.
        unsafe { (self.vt.drop)(&raw mut self.buf) }
    }
}
