//! Allocation failure injected at every allocation point of a nested request
//! tree, one run per point, for a hand-written tree and for the same tree
//! written with `#[tevent_request]` (whose steps carry heap data across
//! their waits). Every run must end `NoMemory` or
//! succeed, with no panic, no abort and nothing leaked.
//!
//! `harness = false`: the allocator counts every allocation in the process, so
//! the test runs on one thread. The global allocator below fails exactly the
//! k-th allocation after it is armed; an infallible allocation on the tested
//! path would abort the process (and fail the test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tevent::{
    Context, Ctl, Next, Progress, Req, ReqError, Request, StepResult, Wakeup, tevent_request,
    wakeup_recv, wakeup_send,
};

struct Failing;

static COUNT: AtomicU64 = AtomicU64::new(0);
static FAIL_AT: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

impl Failing {
    fn should_fail() -> bool {
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        n == FAIL_AT.load(Ordering::SeqCst)
    }
}

// SAFETY: forwards to the system allocator; failing is returning null, which
// the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(1, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: same contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Failing = Failing;

// The tree: Top waits for two Mids; each Mid waits for two Leafs; each Leaf
// waits for a wake-up and then allocates a buffer fallibly.

struct Leaf {
    size: usize,
}
impl Request for Leaf {
    type Output = usize;
    type Error = Infallible;
}
impl Leaf {
    fn woke(&mut self, _: &mut Ctl<'_, Self>, w: Req<Wakeup>) -> StepResult<Self> {
        if !wakeup_recv(w) {
            return Err(ReqError::NoMemory);
        }
        let buf: Vec<u8> = tevent::alloc::try_vec_filled(self.size, 1)?;
        Ok(Progress::Done(buf.iter().map(|b| *b as usize).sum()))
    }
}
fn leaf_send(ev: &Context, size: usize, ms: u64) -> Req<Leaf> {
    Req::start(ev, Leaf { size }, |_, ctl| {
        let w = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(ms));
        ctl.wait(w, Leaf::woke)?;
        Ok(Progress::Pending)
    })
}

struct Sum {
    total: usize,
    left: u32,
}
impl Request for Sum {
    type Output = usize;
    type Error = Infallible;
}
/// Adds a finished subrequest's output to the sum; done after the last one.
fn add<C: Request<Output = usize, Error = Infallible>>(
    st: &mut Sum,
    _: &mut Ctl<'_, Sum>,
    sub: Req<C>,
) -> StepResult<Sum> {
    st.total += sub.recv()?;
    st.left -= 1;
    Ok(if st.left == 0 {
        Progress::Done(st.total)
    } else {
        Progress::Pending
    })
}
fn mid_send(ev: &Context, base: usize) -> Req<Sum> {
    Req::start(ev, Sum { total: 0, left: 2 }, move |_, ctl| {
        ctl.wait(leaf_send(ctl.ev(), base, 1), add::<Leaf>)?;
        ctl.wait(leaf_send(ctl.ev(), base + 1, 2), add::<Leaf>)?;
        Ok(Progress::Pending)
    })
}
fn top_send(ev: &Context) -> Req<Sum> {
    Req::start(ev, Sum { total: 0, left: 2 }, |_, ctl| {
        ctl.wait(mid_send(ctl.ev(), 10), add::<Sum>)?;
        ctl.wait(mid_send(ctl.ev(), 20), add::<Sum>)?;
        Ok(Progress::Pending)
    })
}

// The same tree written with #[tevent_request]: GenTop starts two GenMids at
// once, each GenMid two GenLeafs. The generated nodes carry heap data to
// their steps (a leaf its buffer, a sum each wait's part of the answer), so
// a failure anywhere must also free what waits in a transition: the live
// allocation count below sees it if not.

/// A generated leaf: allocates its buffer (fallibly), waits with it carried
/// to `woke`, then sums it.
struct GenLeaf;

#[tevent_request(steps(start => woke => done))]
impl GenLeaf {
    type Output = usize;
    type Error = Infallible;

    fn start(to: _, size: usize, ms: u64) -> Next<Self> {
        let buf: Vec<u8> = tevent::alloc::try_vec_filled(size, 1)?;
        let w = wakeup_send(to.ev(), to.ev().now() + Duration::from_millis(ms));
        to.create(GenLeaf).woke(w, buf)
    }

    fn woke(&mut self, to: _, w: Req<Wakeup>, buf: Vec<u8>) -> Next<Self> {
        if !wakeup_recv(w) {
            return Err(ReqError::NoMemory);
        }
        to.done(buf.iter().map(|b| *b as usize).sum())
    }
}

struct GenSum {
    total: usize,
    left: u32,
}

#[tevent_request(steps(start => [leaf, mid], leaf => done, mid => done))]
impl GenSum {
    type Output = usize;
    type Error = Infallible;

    /// A top (`base` is `None`: two mids) or a mid (two leaves). Each wait
    /// carries a vector of one element, 0, added to what the kid gives.
    fn start(to: _, base: Option<usize>) -> Next<Self> {
        let to = to.create(GenSum { total: 0, left: 2 });
        let zero = || tevent::alloc::try_vec_filled::<usize, Infallible>(1, 0);
        match base {
            Some(b) => {
                to.leaf(gen_leaf_send(to.ev(), b, 1), zero()?)?;
                to.leaf(gen_leaf_send(to.ev(), b + 1, 2), zero()?)
            }
            None => {
                to.mid(gen_sum_send(to.ev(), Some(10)), zero()?)?;
                to.mid(gen_sum_send(to.ev(), Some(20)), zero()?)
            }
        }
    }

    fn leaf(&mut self, to: _, v: usize, extra: Vec<usize>) -> Next<Self> {
        if self.add(v + extra[0]) {
            to.done(self.total)
        } else {
            to.pending()
        }
    }

    fn mid(&mut self, to: _, v: usize, extra: Vec<usize>) -> Next<Self> {
        if self.add(v + extra[0]) {
            to.done(self.total)
        } else {
            to.pending()
        }
    }

    /// Adds a subrequest's output; whether it was the last one.
    fn add(&mut self, v: usize) -> bool {
        self.total += v;
        self.left -= 1;
        self.left == 0
    }
}

/// What one run gives: the top request's result and the allocations made.
type Run = (Result<usize, ReqError<Infallible>>, u64);

/// One run on a fresh context; returns the outcome and the allocations it made.
fn run(fail_at: u64) -> Run {
    run_tree(fail_at, top_send)
}

/// One run of the generated tree.
fn run_generated(fail_at: u64) -> Run {
    run_tree(fail_at, |ev| gen_sum_send(ev, None))
}

fn run_tree<T: Request<Output = usize, Error = Infallible>>(
    fail_at: u64,
    start: impl Fn(&Context) -> Req<T>,
) -> Run {
    let ev = Context::with_manual_clock(true).expect("context");
    COUNT.store(0, Ordering::SeqCst);
    FAIL_AT.store(fail_at, Ordering::SeqCst);
    let top = start(&ev);
    let polled = top.poll(&ev);
    let result = top.recv();
    FAIL_AT.store(0, Ordering::SeqCst);
    let allocs = COUNT.load(Ordering::SeqCst);
    assert!(polled.is_ok(), "run {fail_at}: poll failed: {polled:?}");
    assert_eq!(
        ev.event_counts().total(),
        0,
        "run {fail_at}: events left behind"
    );
    drop(ev);
    (result, allocs)
}

fn main() {
    nomem_at_every_allocation_point("hand-written", run);
    nomem_at_every_allocation_point("generated", run_generated);
    random_trees();
    println!("test result: ok. 3 passed");
}

// ---------------------------------------------------------------------------
// Random trees (the shapes of tests/random_trees.rs, limited to what
// allocates fallibly: wake-ups, end times, request nodes and waits), every
// node hand-written or generated at random.

/// A random tree, allocated before the allocator is armed and never freed.
#[derive(Debug)]
enum Node {
    /// Waits `ms`, then gives `value`, fails with `fail`, or times out.
    Leaf {
        generated: bool,
        ms: u8,
        end: LeafEnd,
    },
    Inner {
        generated: bool,
        kids: Vec<Node>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LeafEnd {
    Value(u8),
    Fail(u8),
    TimeOut,
    Alloc(u16),
}

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn random_node(rng: &mut Rng, depth: u32) -> Node {
    let generated = rng.below(2) == 0;
    if depth == 0 || rng.below(3) == 0 {
        let end = match rng.below(8) {
            0 => LeafEnd::Fail(rng.below(200) as u8),
            1 => LeafEnd::TimeOut,
            2 => LeafEnd::Alloc(rng.below(4096) as u16),
            _ => LeafEnd::Value(rng.below(200) as u8),
        };
        return Node::Leaf {
            generated,
            ms: 1 + rng.below(20) as u8,
            end,
        };
    }
    let n = 1 + rng.below(4);
    Node::Inner {
        generated,
        kids: (0..n).map(|_| random_node(rng, depth - 1)).collect(),
    }
}

struct RLeaf {
    end: LeafEnd,
}

impl Request for RLeaf {
    type Output = usize;
    type Error = u8;
}

impl RLeaf {
    fn woke(&mut self, _: &mut Ctl<'_, Self>, w: Req<Wakeup>) -> StepResult<Self> {
        if !wakeup_recv(w) {
            return Err(ReqError::NoMemory);
        }
        leaf_end(self.end).map(Progress::Done)
    }
}

/// A leaf's result once it woke (fallible allocations only).
fn leaf_end(end: LeafEnd) -> Result<usize, ReqError<u8>> {
    match end {
        LeafEnd::Value(v) => Ok(usize::from(v)),
        LeafEnd::Fail(e) => Err(ReqError::User(e)),
        LeafEnd::TimeOut => Err(ReqError::User(255)),
        LeafEnd::Alloc(n) => {
            let buf: Vec<u8> = tevent::alloc::try_vec_filled(usize::from(n), 1)?;
            Ok(buf.len())
        }
    }
}

fn r_leaf_send(ev: &Context, ms: u8, end: LeafEnd) -> Req<RLeaf> {
    Req::start(ev, RLeaf { end }, move |_, ctl| {
        let ms = if end == LeafEnd::TimeOut {
            ctl.set_timeout(Duration::from_millis(5))?;
            50
        } else {
            u64::from(ms)
        };
        ctl.wait(
            wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(ms)),
            RLeaf::woke,
        )?;
        Ok(Progress::Pending)
    })
}

/// A generated random leaf: no state; how it ends, and a heap value, are
/// carried to `woke`.
struct GrLeaf;

#[tevent_request(steps(start => woke => done))]
impl GrLeaf {
    type Output = usize;
    type Error = u8;

    fn start(to: _, ms: u8, end: LeafEnd) -> Next<Self> {
        let to = to.create(GrLeaf);
        let ms = if end == LeafEnd::TimeOut {
            to.set_timeout(Duration::from_millis(5))?;
            50
        } else {
            u64::from(ms)
        };
        let held: Vec<u8> = tevent::alloc::try_vec_filled(8, 0)?;
        let w = wakeup_send(to.ev(), to.ev().now() + Duration::from_millis(ms));
        to.woke(w, end, held)
    }

    fn woke(&mut self, to: _, w: Req<Wakeup>, end: LeafEnd, held: Vec<u8>) -> Next<Self> {
        if !wakeup_recv(w) {
            return Err(ReqError::NoMemory);
        }
        to.done(leaf_end(end)? + usize::from(held[0]))
    }
}

struct RInner {
    total: usize,
    left: usize,
}

impl Request for RInner {
    type Output = usize;
    type Error = u8;
}

fn r_inner_add<C: Request<Output = usize, Error = u8>>(
    st: &mut RInner,
    _: &mut Ctl<'_, RInner>,
    sub: Req<C>,
) -> StepResult<RInner> {
    st.total += sub.recv()?;
    st.left -= 1;
    Ok(if st.left == 0 {
        Progress::Done(st.total)
    } else {
        Progress::Pending
    })
}

fn r_inner_send(ev: &Context, kids: &'static [Node]) -> Req<RInner> {
    let state = RInner {
        total: 0,
        left: kids.len(),
    };
    Req::start(ev, state, move |_, ctl| {
        for k in kids {
            match start_random(ctl.ev(), k) {
                Started::R(r) => ctl.wait(r, r_inner_add::<RLeaf>)?,
                Started::G(r) => ctl.wait(r, r_inner_add::<GrLeaf>)?,
                Started::RI(r) => ctl.wait(r, r_inner_add::<RInner>)?,
                Started::GI(r) => ctl.wait(r, r_inner_add::<GrInner>)?,
            }
        }
        Ok(Progress::Pending)
    })
}

struct GrInner {
    total: usize,
    left: usize,
}

#[tevent_request(steps(start => [kid], kid => [done]))]
impl GrInner {
    type Output = usize;
    type Error = u8;

    fn start(to: GrInnerStartStep<'_>, kids: &'static [Node]) -> Next<Self> {
        let ev = to.ev();
        let to = to.create(GrInner {
            total: 0,
            left: kids.len(),
        });
        for k in kids {
            match start_random(ev, k) {
                Started::R(r) => to.kid(r)?,
                Started::G(r) => to.kid(r)?,
                Started::RI(r) => to.kid(r)?,
                Started::GI(r) => to.kid(r)?,
            };
        }
        to.pending()
    }

    fn kid(&mut self, to: GrInnerKidStep<'_>, v: usize) -> Next<Self> {
        self.total += v;
        self.left -= 1;
        if self.left == 0 {
            to.done(self.total)
        } else {
            to.pending()
        }
    }
}

enum Started {
    R(Req<RLeaf>),
    G(Req<GrLeaf>),
    RI(Req<RInner>),
    GI(Req<GrInner>),
}

fn start_random(ev: &Context, n: &'static Node) -> Started {
    match n {
        Node::Leaf {
            generated: false,
            ms,
            end,
        } => Started::R(r_leaf_send(ev, *ms, *end)),
        Node::Leaf {
            generated: true,
            ms,
            end,
        } => Started::G(gr_leaf_send(ev, *ms, *end)),
        Node::Inner {
            generated: false,
            kids,
        } => Started::RI(r_inner_send(ev, kids)),
        Node::Inner {
            generated: true,
            kids,
        } => Started::GI(gr_inner_send(ev, kids)),
    }
}

/// One run of a random tree with the `fail_at`-th allocation failing.
fn run_random(tree: &'static Node, fail_at: u64) -> (Result<usize, ReqError<u8>>, u64) {
    let ev = Context::with_manual_clock(true).expect("context");
    COUNT.store(0, Ordering::SeqCst);
    FAIL_AT.store(fail_at, Ordering::SeqCst);
    let result = match start_random(&ev, tree) {
        Started::R(r) => r.poll_recv(&ev),
        Started::G(r) => r.poll(&ev).map(|()| gr_leaf_recv(r)),
        Started::RI(r) => r.poll_recv(&ev),
        Started::GI(r) => r.poll(&ev).map(|()| gr_inner_recv(r)),
    };
    FAIL_AT.store(0, Ordering::SeqCst);
    let allocs = COUNT.load(Ordering::SeqCst);
    let result = result.unwrap_or_else(|e| panic!("run {fail_at}: the loop failed: {e}"));
    assert_eq!(
        ev.event_counts().total(),
        0,
        "run {fail_at}: events left behind"
    );
    drop(ev);
    (result, allocs)
}

/// Random trees, each run once per allocation point: the top ends as the
/// clean run did, or `NoMemory`; nothing leaks.
fn random_trees() {
    const TREES: u64 = 60;
    let mut rng = Rng(0x006e_06e0_2026);
    let mut points_total = 0;
    let mut nomem = 0;
    for tree_no in 0..TREES {
        let tree: &'static Node = Box::leak(Box::new(random_node(&mut rng, 5)));
        let live_before = LIVE.load(Ordering::SeqCst);
        let (clean, points) = run_random(tree, 0);
        for k in 1..=points {
            let (r, _) = run_random(tree, k);
            if r == Err(ReqError::NoMemory) {
                nomem += 1;
            } else {
                assert_eq!(r, clean, "tree {tree_no}, run {k}: {tree:?}");
            }
            assert_eq!(
                LIVE.load(Ordering::SeqCst),
                live_before,
                "tree {tree_no}, run {k}: memory leaked: {tree:?}"
            );
        }
        points_total += points;
    }
    println!(
        "test nomem_at_every_allocation_point (random trees) ... ok ({TREES} random request trees, \
         {points_total} allocation points, {nomem} runs ended NoMemory)"
    );
}

/// Fails each allocation point of one tree in turn.
fn nomem_at_every_allocation_point(what: &str, run: fn(u64) -> Run) {
    let live_before = LIVE.load(Ordering::SeqCst);
    let (clean, points) = run(0);
    assert_eq!(clean, Ok(10 + 11 + 20 + 21), "the clean run succeeds");
    assert!(points > 0);
    let mut nomem = 0;
    for k in 1..=points {
        let (r, _) = run(k);
        match r {
            Ok(v) => assert_eq!(v, 62, "run {k}: a run that survives gives the right answer"),
            Err(ReqError::NoMemory) => nomem += 1,
            Err(e) => panic!("run {k}: unexpected outcome {e:?}"),
        }
        assert_eq!(
            LIVE.load(Ordering::SeqCst),
            live_before,
            "run {k}: memory leaked"
        );
    }
    println!(
        "test nomem_at_every_allocation_point ({what} tree) ... ok ({points} allocation points, {nomem} ended NoMemory)"
    );
}
