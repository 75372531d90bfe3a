//! Request nodes: one heap block per request, holding its untyped bookkeeping
//! (a [`Header`]) followed by its typed part (a [`ReqCell<T>`]).
//!
//! This module owns the `unsafe` of requests. A node is reached through raw
//! pointers (from its handle, its parent, its subrequests, the completion
//! queue), so that none of the hot operations goes through a table. What keeps
//! that sound:
//!
//! - **Counted lifetime.** A node's memory lives while its reference count is
//!   above zero. Counted references are [`ReqRef`]s: the owner's (a `Req<T>`
//!   handle, or the runtime when a parent or a callback owns the request),
//!   one per `Queue` entry and one per fd watcher. The last `ReqRef` to go
//!   frees the node. The pointers of the intrusive lists (parent, siblings,
//!   the completion queue, the doomed list, the context's list of live
//!   requests) are not counted: a node leaves every list and is marked
//!   removed ([`Flag::REMOVED`]) before its owner's reference goes, and a
//!   list is only walked through nodes that are not removed.
//! - **One writer of the typed part.** The typed part sits in an
//!   `UnsafeCell`; a `&mut` to it exists only while [`Flag::RUNNING`] is set
//!   (a step, a failure), while a removed node is cleared, or briefly to move
//!   a finished request's result out; every path that borrows it checks
//!   these flags first.
//! - **Type.** The typed part is only ever viewed as the `T` the node was
//!   created with: typed access goes through a `Req<T>` (whose `T` is the
//!   node's), through functions of the node's own vtable, or through a step
//!   closure captured with the right `T`.
//!
//! Freed blocks are kept in small free lists by size class, one set per
//! context (and freed with it), so a steady stream of requests does not go
//! through the allocator at all. A block is allocated with the global
//! allocator's fallible `alloc`, so a failure becomes a `NoMemory` request
//! instead of an abort.

use std::alloc::Layout;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::context::{Context, Inner};
use crate::panic::PanicSlot;
use crate::req::table::{Extra, Owner, ReqCell};
use crate::req::waiter::WaiterSlot;
use crate::req::{Failure, ReqState, Request};
use crate::slab::Key;

/// An uncounted pointer to a node's header.
pub(crate) type NodePtr = NonNull<Header>;

/// The untyped bookkeeping of one request.
pub(crate) struct Header {
    vt: &'static NodeVt,
    /// The context the request belongs to: uncounted, and only followed
    /// while the request is not removed (see `Header::context`): a request
    /// that is not removed belongs to a live context, since requests are
    /// only created on a live context and the context's teardown marks
    /// every request removed before it runs any other code.
    ctx: *const Inner,
    /// Counted references; sticks at `u32::MAX` (the node is then never
    /// freed) instead of wrapping, see [`ReqRef::from_ptr`].
    refs: Cell<u32>,
    /// Bumped by every registration of a waiter, so that a
    /// [`crate::CallbackHandle`] can tell its own registration from a later
    /// one. 64 bits: it cannot wrap.
    pub(crate) epoch: Cell<u64>,
    /// The waiting parent, while `owner` is `Parent`.
    pub(crate) parent: Cell<Option<NodePtr>>,
    /// First of the subrequests this request waits for.
    pub(crate) first_child: Cell<Option<NodePtr>>,
    /// Next sibling; for a doomed request, the next doomed one.
    pub(crate) next: Cell<Option<NodePtr>>,
    pub(crate) prev: Cell<Option<NodePtr>>,
    /// The context's list of live requests (for teardown).
    pub(crate) live_next: Cell<Option<NodePtr>>,
    pub(crate) live_prev: Cell<Option<NodePtr>>,
    /// Neighbours in the completion queue.
    pub(crate) qnext: Cell<Option<NodePtr>>,
    pub(crate) qprev: Cell<Option<NodePtr>>,
    /// What runs when the request finishes: its parent's step or a
    /// callback (see `req::waiter`).
    pub(crate) waiter: WaiterSlot,
    pub(crate) created: &'static Location<'static>,
    /// The end-time timer, or `Key::NONE`.
    pub(crate) endtime: Cell<Key>,
    /// Dropped by hand in `free_node`, when `Flag::EXTRA` says it was used.
    pub(crate) extra: ManuallyDrop<RefCell<Option<Box<[Extra; 1]>>>>,
    pub(crate) state: Cell<ReqState>,
    pub(crate) owner: Cell<Owner>,
    /// A set of [`Flag`]s.
    flags: Cell<u8>,
    /// [`LIVE`] while the node exists (debug builds): the tests' detector
    /// of a node used after it was freed, in the pooled memory that Miri
    /// does not see and the allocator's checks never reach.
    #[cfg(debug_assertions)]
    live: Cell<u32>,
    /// The request's span; entered while its steps run.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

/// Conditions of a request, kept together in `Header::flags` so that the
/// common checks are one comparison.
pub(crate) struct Flag;

impl Flag {
    /// The typed part is borrowed (a step, a failure or a discard runs).
    pub(crate) const RUNNING: u8 = 1;
    /// Dropped while one of its own steps ran: dropped when the step returns.
    pub(crate) const ZOMBIE: u8 = 2;
    /// On the doomed list, about to be removed.
    pub(crate) const DOOMED: u8 = 4;
    /// Out of every list, its state gone; only counted references remain.
    pub(crate) const REMOVED: u8 = 8;
    /// Records a profile.
    pub(crate) const PROFILED: u8 = 16;
    /// Has `Header::extra` allocated.
    pub(crate) const EXTRA: u8 = 32;
    /// In the completion queue.
    pub(crate) const QUEUED: u8 = 64;
    /// A waiter is registered and the request has not finished (it is
    /// queued when it finishes).
    pub(crate) const WAITING: u8 = 128;
    /// Conditions under which no step may start.
    pub(crate) const BUSY: u8 = Self::RUNNING | Self::DOOMED | Self::REMOVED;
}

/// What the runtime does to a node without knowing its type.
struct NodeVt {
    /// Drops the node in place and returns its memory (to the pool, if given).
    free: unsafe fn(NodePtr, Option<&NodePool>),
    /// Finishes the request with a runtime failure.
    fail: unsafe fn(NodePtr, Failure, &PanicSlot) -> ReqState,
    /// Drops what the typed part holds: the state (its cleanup hook runs
    /// first, with `Dropped`, if it never finished), the result, the hooks.
    clear: unsafe fn(NodePtr, &PanicSlot),
    name: fn() -> &'static str,
}

struct VtOf<T>(PhantomData<T>);

impl<T: Request> VtOf<T> {
    const VT: NodeVt = NodeVt {
        free: free_node::<T>,
        fail: fail_node::<T>,
        clear: clear_node::<T>,
        name: T::name,
    };
}

/// A request's block: the header first, so a pointer to the block is a
/// pointer to its header.
#[repr(C)]
struct Node<T: Request> {
    hdr: Header,
    cell: UnsafeCell<ReqCell<T>>,
}

impl Header {
    /// A fresh header for a request of type `T`, owned by a handle.
    #[inline(always)]
    fn new<T: Request>(
        ctx: *const Inner,
        created: &'static Location<'static>,
        #[cfg(feature = "tracing")] span: tracing::Span,
    ) -> Self {
        Header {
            vt: &VtOf::<T>::VT,
            ctx,
            refs: Cell::new(1),
            epoch: Cell::new(0),
            parent: Cell::new(None),
            first_child: Cell::new(None),
            next: Cell::new(None),
            prev: Cell::new(None),
            live_next: Cell::new(None),
            live_prev: Cell::new(None),
            qnext: Cell::new(None),
            qprev: Cell::new(None),
            waiter: WaiterSlot::new(),
            created,
            endtime: Cell::new(Key::NONE),
            extra: ManuallyDrop::new(RefCell::new(None)),
            state: Cell::new(ReqState::InProgress),
            owner: Cell::new(Owner::Handle),
            flags: Cell::new(0),
            #[cfg(debug_assertions)]
            live: Cell::new(LIVE),
            #[cfg(feature = "tracing")]
            span,
        }
    }

    /// Whether any of the flags `f` is set.
    #[inline]
    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    /// Sets the flags `f`.
    #[inline]
    pub(crate) fn raise(&self, f: u8) {
        self.flags.set(self.flags.get() | f);
    }

    /// Clears the flags `f`.
    #[inline]
    pub(crate) fn lower(&self, f: u8) {
        self.flags.set(self.flags.get() & !f);
    }

    /// The request type's [`Request::name`]: user code, to be called only
    /// where the runtime is consistent (or later, from a profile).
    pub(crate) fn name_fn(&self) -> fn() -> &'static str {
        self.vt.name
    }

    /// Whether the request is live (not removed) and belongs to the context
    /// `inner`. An identity check, not an address comparison that a new
    /// context at a dropped one's address could pass: the address of a
    /// removed request's context may be anybody's, and is never compared;
    /// a request that is not removed belongs to a live context, which no
    /// other context can share an address with.
    #[inline]
    pub(crate) fn belongs_to(&self, inner: &Rc<Inner>) -> bool {
        !self.has(Flag::REMOVED) && std::ptr::eq(self.ctx, Rc::as_ptr(inner))
    }

    /// The request's context, unless the request is removed (for a request
    /// owned by a handle: unless its context was dropped).
    #[inline]
    pub(crate) fn context(&self) -> Option<Context> {
        if self.has(Flag::REMOVED) {
            return None;
        }
        let p = self.ctx;
        // SAFETY: the context is alive (the request is not removed, see
        // `Header::ctx`) and `p` came from `Rc::into_raw` (see
        // `Inner::this`): one more strong count, owned by the returned
        // `Context`.
        unsafe {
            Rc::increment_strong_count(p);
            Some(Context {
                inner: Rc::from_raw(p),
            })
        }
    }
}

/// The header behind an uncounted list pointer.
///
/// # Safety
/// `p` must point to a node that is not freed for as long as the returned
/// reference is used: a node reached through a list of a node that is not
/// removed, or one for which a [`ReqRef`] is held.
#[inline]
pub(crate) unsafe fn hdr<'a>(p: NodePtr) -> &'a Header {
    // SAFETY: the caller guarantees the block is live; the header is only
    // ever accessed through shared references (its fields are cells).
    let h = unsafe { p.as_ref() };
    #[cfg(debug_assertions)]
    assert_eq!(
        h.live.get(),
        LIVE,
        "a request node was used after it was freed"
    );
    h
}

/// What `Header::live` holds while the node exists.
#[cfg(debug_assertions)]
const LIVE: u32 = 0x7e7e_1ab5;

/// A counted reference to a node: the node's memory lives while one exists.
pub(crate) struct ReqRef(NodePtr);

impl ReqRef {
    /// Allocates a node for a request of type `T` with `state`, owned by a
    /// handle, with one reference (the returned one, the owner's). Hands the
    /// state back if the block cannot be allocated. (A request starts without
    /// a state when its first step builds it; see `req::step`.)
    #[inline]
    pub(crate) fn alloc<T: Request>(
        ctx: &Rc<Inner>,
        created: &'static Location<'static>,
        state: Option<T>,
        #[cfg(feature = "tracing")] span: tracing::Span,
    ) -> Result<ReqRef, Option<T>> {
        let raw = ctx.node_pool.alloc_block::<T>();
        let Some(raw) = NonNull::new(raw) else {
            return Err(state);
        };
        let node = raw.cast::<Node<T>>();
        // SAFETY: `raw` is a fresh block with the size and alignment of
        // `Node<T>` (see `block_layout`), not aliased by anything.
        unsafe {
            node.as_ptr().write(Node {
                hdr: Header::new::<T>(
                    ctx.this.get(),
                    created,
                    #[cfg(feature = "tracing")]
                    span,
                ),
                cell: UnsafeCell::new(ReqCell::new(state)),
            })
        };
        Ok(ReqRef(node.cast::<Header>()))
    }

    /// Counts one more reference to the node behind a list pointer.
    ///
    /// # Safety
    /// As for [`hdr`]: the node must not be freed yet.
    #[inline]
    pub(crate) unsafe fn from_ptr(p: NodePtr) -> ReqRef {
        // SAFETY: guaranteed by the caller.
        unsafe { hdr(p) }.count_one_more();
        ReqRef(p)
    }

    /// The pointer (uncounted).
    #[inline]
    pub(crate) fn ptr(&self) -> NodePtr {
        self.0
    }

    /// The node's header.
    #[inline]
    pub(crate) fn hdr(&self) -> &Header {
        // SAFETY: this reference keeps the node alive while `self` is
        // borrowed.
        unsafe { hdr(self.0) }
    }

    /// Gives up the counted reference without releasing it: the count now
    /// belongs to whoever keeps the pointer (a list owner); see
    /// [`ReqRef::from_raw`].
    #[inline]
    pub(crate) fn into_raw(self) -> NodePtr {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// Takes back a counted reference given up with [`ReqRef::into_raw`].
    ///
    /// # Safety
    /// `p` must come from `into_raw`, and its count must be taken back once.
    #[inline]
    pub(crate) unsafe fn from_raw(p: NodePtr) -> ReqRef {
        ReqRef(p)
    }

    /// The typed part, for a step or for moving the result out.
    ///
    /// # Safety
    /// `T` must be the type the node was created with, and no other reference
    /// to the typed part may exist while the returned one is used (the caller
    /// checked `RUNNING` and either sets it for the duration or does not run
    /// user code while holding the reference).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn cell<T: Request>(&self) -> &mut ReqCell<T> {
        let node = self.0.cast::<Node<T>>();
        // SAFETY: the block is a `Node<T>` (guaranteed by the caller) and is
        // live (counted by `self`); the `UnsafeCell` allows the mutable
        // access, which the caller guarantees is unique.
        unsafe { &mut *(*node.as_ptr()).cell.get() }
    }

    /// Finishes the request with a runtime failure through its vtable (a
    /// panic of the cleanup hook or the state's `Drop` is kept in `panics`).
    ///
    /// # Safety
    /// The request must be in progress and its typed part not borrowed
    /// (`RUNNING` false); the caller sets `RUNNING` around the call.
    pub(crate) unsafe fn fail(&self, why: Failure, panics: &PanicSlot) -> ReqState {
        // SAFETY: guaranteed by the caller; the vtable is the node's own.
        unsafe { (self.hdr().vt.fail)(self.0, why, panics) }
    }

    /// Drops what the typed part holds (see `NodeVt::clear`); a panic of
    /// that user code is kept in `panics`.
    ///
    /// # Safety
    /// The typed part must not be borrowed (`RUNNING` false).
    pub(crate) unsafe fn clear(&self, panics: &PanicSlot) {
        // SAFETY: guaranteed by the caller; the vtable is the node's own.
        unsafe { (self.hdr().vt.clear)(self.0, panics) }
    }
}

impl ReqRef {
    /// Gives up this counted reference; true if it was the last one, and the
    /// caller must free the node.
    #[inline(always)]
    fn uncount(self) -> bool {
        let p = self.0;
        std::mem::forget(self);
        // SAFETY: the reference given up here kept the node allocated, and
        // nothing frees it before this returns.
        let h = unsafe { hdr(p) };
        let n = h.refs.get();
        if n == u32::MAX || n == 0 {
            // Saturated: never freed; or already released (see
            // `count_one_more`).
            return false;
        }
        h.refs.set(n - 1);
        // A node still on the runtime's lists is never freed, whatever the
        // count says: a real check, so that a counting mistake is a leak
        // and never a use after free.
        n == 1 && h.has(Flag::REMOVED)
    }

    /// Drops the reference of a request received by its handle (`recv`),
    /// freeing the node into the context's pool at once, without going
    /// through its vtable, if it was the last.
    ///
    /// Not deferred (see [`NodePool::defer`]): a finished request owned by
    /// a handle is on no list of the runtime, and no frame of the runtime
    /// keeps an uncounted pointer to it: the frames that delivered it to the
    /// handle (`run_completions`, a waiter) let go of it before they ran
    /// user code, and a frame that runs a step of it holds a counted
    /// reference. This is the hot path of every request.
    ///
    /// # Safety
    /// The node must be a `Node<T>` owned by the handle giving up `self`.
    #[inline]
    pub(crate) unsafe fn release<T: Request>(self, inner: &Inner) {
        let p = self.0;
        if self.uncount() {
            // SAFETY: the last counted reference is gone (see `free_last`)
            // and no frame keeps the node (above); the caller guarantees the
            // type.
            unsafe { free_node_inline::<T>(p, Some(&inner.node_pool)) }
        }
    }

    /// Drops this reference, freeing the node into the pool of its
    /// context `inner` if it was the last, or, while a call of the context
    /// that runs user code is on the stack, when the outermost one ends
    /// (see [`NodePool::defer`]). For the requests a drop removes.
    #[inline]
    pub(crate) fn release_in(self, inner: &Inner) {
        let p = self.0;
        if !self.uncount() {
            return;
        }
        if inner.entered() {
            inner.node_pool.defer(p);
        } else {
            // SAFETY: the last counted reference is gone, and no call of
            // the context runs.
            unsafe { free_last(p, Some(&inner.node_pool)) }
        }
    }
}

/// Frees a node whose last counted reference is gone, through its vtable.
///
/// # Safety
/// No counted reference to the node may remain. Nothing else reaches it then:
/// list pointers only lead to nodes that are not removed, and a node is
/// removed before its owner's reference goes.
unsafe fn free_last(p: NodePtr, pool: Option<&NodePool>) {
    // SAFETY: the node is still allocated (freeing it is what this does).
    let free = unsafe { hdr(p) }.vt.free;
    // SAFETY: guaranteed by the caller; `free` is the node's own.
    unsafe { free(p, pool) }
}

impl Clone for ReqRef {
    #[inline]
    fn clone(&self) -> Self {
        self.hdr().count_one_more();
        ReqRef(self.0)
    }
}

impl Header {
    /// The reference count (for tests).
    #[cfg(test)]
    pub(crate) fn refs(&self) -> u32 {
        self.refs.get()
    }

    /// Sets the reference count (for tests that cannot take 4 294 967 295
    /// references).
    #[cfg(test)]
    pub(crate) fn set_refs(&self, n: u32) {
        self.refs.set(n)
    }

    /// Counts one more reference. The count cannot wrap: `mem::forget` of
    /// handles is safe, so enough of them could otherwise bring it back to
    /// zero while the node is in use. At `u32::MAX` it sticks, and the node
    /// is never freed (a leak, which is safe).
    #[inline(always)]
    fn count_one_more(&self) {
        let n = self.refs.get();
        // Zero: the node's last reference went and it waits for release
        // (see `NodePool::defer`); a pointer kept from before must not bring
        // it back (it would be released twice). Such a reference counts
        // nothing, and the node it names is removed, so it runs nothing.
        if n != u32::MAX && n != 0 {
            self.refs.set(n + 1);
        }
    }
}

impl Drop for ReqRef {
    #[inline]
    fn drop(&mut self) {
        // `self`'s count, given up once through a copy of the pointer (which
        // `uncount` forgets). Without the context at hand, the memory goes
        // back to the allocator. (A counted reference dropped here is a
        // frame's, a watcher's, a queue entry's or a callback handle's: the
        // runtime's lists hold the owner's reference of every request on
        // them, so none of its frames can be left with a pointer to a node
        // freed here.)
        let p = self.0;
        if ReqRef(p).uncount() {
            // SAFETY: the last counted reference is gone (see `free_last`).
            unsafe { free_last(p, None) }
        }
    }
}

unsafe fn free_node<T: Request>(p: NodePtr, pool: Option<&NodePool>) {
    // SAFETY: the caller's contract is the same.
    unsafe { free_node_inline::<T>(p, pool) }
}

/// `free_node`, inlined where the type is known (`ReqRef::release`).
#[inline(always)]
unsafe fn free_node_inline<T: Request>(p: NodePtr, pool: Option<&NodePool>) {
    let node = p.cast::<Node<T>>().as_ptr();
    // SAFETY: the block holds a live `Node<T>`.
    let used_extra = unsafe { (*node).hdr.has(Flag::EXTRA) };
    if used_extra {
        // SAFETY: `extra` is taken once, here (`drop_in_place` leaves it
        // alone); it only ever holds something once the flag is set.
        drop(unsafe { ManuallyDrop::take(&mut (*node).hdr.extra) });
    }
    #[cfg(debug_assertions)]
    // SAFETY: the block holds a live `Node<T>`, about to be dropped.
    unsafe {
        (*node).hdr.live.set(0xdead_dead)
    };
    // SAFETY: nothing references the node any more (see `ReqRef::drop`), so
    // it can be dropped in place.
    unsafe { std::ptr::drop_in_place(node) };
    // SAFETY: the block came from `alloc_block::<T>` and holds nothing live.
    unsafe { NodePool::free_block::<T>(pool, node.cast::<u8>()) };
}

unsafe fn fail_node<T: Request>(p: NodePtr, why: Failure, panics: &PanicSlot) -> ReqState {
    // SAFETY: the caller of `ReqRef::fail` guarantees exclusive access and the
    // node is a `Node<T>` (its vtable says so).
    let cell = unsafe { &mut *(*p.cast::<Node<T>>().as_ptr()).cell.get() };
    cell.finish(Err(why.to_req()), panics)
}

unsafe fn clear_node<T: Request>(p: NodePtr, panics: &PanicSlot) {
    // SAFETY: as in `fail_node`.
    let cell = unsafe { &mut *(*p.cast::<Node<T>>().as_ptr()).cell.get() };
    cell.drop_state(ReqState::Dropped, panics);
    let result = cell.result.take();
    cell.hooks.cleanup = None;
    cell.hooks.cancel = None;
    // The output or error is the user's: its `Drop` may panic too. Nothing
    // of the node is borrowed while it runs.
    panics.catch(move || drop(result));
}

// ---------------------------------------------------------------------------
// Blocks: per-thread free lists by size class.

/// Size classes are multiples of this many bytes (and blocks are aligned to it).
const CLASS_BYTES: usize = 16;
/// Classes pooled: blocks up to `CLASSES * CLASS_BYTES` bytes.
const CLASSES: usize = 32;
/// Free blocks kept per class. None under Miri: there every freed block goes
/// back to the allocator, so that a use after free is reported as one
/// instead of reading a recycled block.
const KEEP_PER_CLASS: u32 = if cfg!(miri) { 0 } else { 256 };

/// The pooled size class of `Node<T>`, if it has one.
const fn class_of<T: Request>() -> Option<usize> {
    let size = std::mem::size_of::<Node<T>>();
    let align = std::mem::align_of::<Node<T>>();
    if align <= CLASS_BYTES && size <= CLASSES * CLASS_BYTES {
        Some(size.div_ceil(CLASS_BYTES) - 1)
    } else {
        None
    }
}

/// The layout blocks of `Node<T>` are allocated with.
fn block_layout<T: Request>() -> Layout {
    match class_of::<T>() {
        Some(c) => class_layout(c),
        None => Layout::new::<Node<T>>(),
    }
}

fn class_layout(class: usize) -> Layout {
    match Layout::from_size_align((class + 1) * CLASS_BYTES, CLASS_BYTES) {
        Ok(l) => l,
        Err(_) => unreachable!("size classes are small multiples of their alignment"),
    }
}

/// A free block's link.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// Free blocks by size class (one per context), and the nodes whose
/// release waits for the context's calls to end.
pub(crate) struct NodePool {
    heads: [Cell<*mut FreeBlock>; CLASSES],
    counts: [Cell<u32>; CLASSES],
    /// Nodes whose last reference went while a call of the context ran,
    /// linked through `Header::next` (a removed node is on no other list).
    deferred: Cell<Option<NodePtr>>,
}

impl NodePool {
    /// Keeps a node whose last reference went until the context's
    /// outermost call ends ([`NodePool::release_deferred`]).
    ///
    /// This is what makes the runtime's raw pointers easy to argue about: a
    /// frame of the runtime that still holds a pointer to a node (taken
    /// from a list before it ran user code, which may have removed and
    /// released that node) finds the node's memory intact, and a removed
    /// node is recognisable ([`Flag::REMOVED`]): no block is freed or
    /// recycled while any call of its context is on the stack.
    #[inline]
    fn defer(&self, p: NodePtr) {
        // SAFETY: the node is allocated and removed: its list links are free.
        unsafe { hdr(p) }.next.set(self.deferred.replace(Some(p)));
    }

    /// Frees the deferred nodes (when the context's outermost call ends,
    /// and when the context is dropped). Runs no user code: a released
    /// node's state, result and hooks are gone already.
    #[inline]
    pub(crate) fn release_deferred(&self) {
        if self.deferred.get().is_some() {
            self.release_deferred_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_deferred_now(&self) {
        while let Some(p) = self.deferred.take() {
            // SAFETY: deferred nodes are allocated and unreachable but for
            // this list.
            self.deferred.set(unsafe { hdr(p) }.next.take());
            // SAFETY: the last counted reference went before it was deferred.
            unsafe { free_last(p, Some(self)) };
        }
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        self.release_deferred();
        for (class, head) in self.heads.iter().enumerate() {
            let mut b = head.replace(std::ptr::null_mut());
            while !b.is_null() {
                // SAFETY: every block on a free list was allocated with this
                // class's layout and holds a `FreeBlock` written when it was
                // freed.
                unsafe {
                    let next = (*b).next;
                    std::alloc::dealloc(b.cast::<u8>(), class_layout(class));
                    b = next;
                }
            }
        }
    }
}

impl Default for NodePool {
    fn default() -> Self {
        NodePool {
            heads: [const { Cell::new(std::ptr::null_mut()) }; CLASSES],
            counts: [const { Cell::new(0) }; CLASSES],
            deferred: Cell::new(None),
        }
    }
}

impl NodePool {
    /// A block for a `Node<T>` (null if out of memory).
    #[inline]
    fn alloc_block<T: Request>(&self) -> *mut u8 {
        if let Some(class) = class_of::<T>() {
            let b = self.heads[class].get();
            if !b.is_null() {
                // SAFETY: a block on the free list holds its `FreeBlock`.
                self.heads[class].set(unsafe { (*b).next });
                self.counts[class].set(self.counts[class].get() - 1);
                return b.cast::<u8>();
            }
        }
        // SAFETY: the layout's size is not zero (a node holds its header).
        unsafe { std::alloc::alloc(block_layout::<T>()) }
    }

    /// Returns a block of a `Node<T>` to `pool` (or, without one, to the
    /// allocator).
    ///
    /// # Safety
    /// `b` was allocated by `alloc_block::<T>()` and holds nothing live.
    #[inline]
    unsafe fn free_block<T: Request>(pool: Option<&NodePool>, b: *mut u8) {
        if let (Some(class), Some(pool)) = (class_of::<T>(), pool) {
            let n = pool.counts[class].get();
            if n < KEEP_PER_CLASS {
                let fb = b.cast::<FreeBlock>();
                // SAFETY: the block is at least 16 bytes, aligned to 16, and
                // unused: it can hold the link.
                unsafe {
                    fb.write(FreeBlock {
                        next: pool.heads[class].get(),
                    })
                };
                pool.heads[class].set(fb);
                pool.counts[class].set(n + 1);
                return;
            }
        }
        // SAFETY: allocated with this layout (see `alloc_block`).
        unsafe { std::alloc::dealloc(b, block_layout::<T>()) }
    }
}
