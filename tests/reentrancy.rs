//! The re-entrancy model test: random programs of API calls, issued from the
//! test body and from inside every kind of user code the runtime calls, at
//! random depth, checked against the runtime's promises after every call.
//!
//! A program is a seed. The test body draws calls from it (start a request,
//! drop, receive, cancel, set a callback, abort it, set or reset an end
//! time, enable and take a profile, format a request, poll, run the loop,
//! add to a queue, drop a queue, add immediates and timers, drop the context
//! and make a new one); every piece of user code the runtime runs draws more
//! calls from the same seed, at a depth that shrinks their number: first and
//! later steps (which also wait for new or *existing* requests, set end
//! times, hooks and profiles, and finish or fail), cancel and cleanup hooks,
//! the `Drop` of states, outputs, waiters and callbacks, `Request::name`,
//! callbacks, queue triggers, immediate and timer handlers, the loop, event,
//! request and queue trace hooks. Any of them may panic on purpose. Programs
//! also take snapshots of the live request tree from anywhere.
//!
//! Checked as the program runs (the model): a step runs only on a request
//! whose state is alive and that has not finished; a request finishes at
//! most once (its cleanup hook runs at most once); every state, output,
//! waiter and callback is dropped at most once; a callback or a parent's
//! waiter runs at most once, never after its registration was aborted, and
//! a waiter dropped unrun belongs to a parent that has finished or gone; a
//! loop call from inside user code is `Error::Nested`; waiting for oneself
//! or for an ancestor is refused; `recv` agrees with `state()`; a request
//! of a dropped context is refused by another context. At the end of each
//! program (every handle dropped, the loop drained, the context dropped):
//! every waiter and callback whose request finished was run, every state,
//! output, waiter and callback was dropped exactly once, and the memory the
//! program allocated on this thread is back to where it started (a leaked
//! node is found even if nothing else notices it).
//!
//! Under Miri the same programs also check memory safety (use after free,
//! aliasing); CI runs a smaller number of them there (`TEVENT_CASES`).
//! `TEVENT_SEED=N TEVENT_CASES=1` replays the program a failure printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use tevent::{
    CallbackHandle, Context, Ctl, Error, Immediate, JoinAll, Progress, Queue, QueueWait, Req,
    ReqError, ReqState, Request, StepResult, Timer, Wakeup, join_all_send, queue_wait_send,
    wakeup_send,
};

// ---------------------------------------------------------------------------
// Memory: what this thread allocated and freed.

struct Counting;

thread_local! {
    static NET: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = NET.try_with(|n| n.set(n.get() + l.size() as isize));
        // SAFETY: the caller's contract is the same.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = NET.try_with(|n| n.set(n.get() - l.size() as isize));
        // SAFETY: the caller's contract is the same.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = NET.try_with(|n| n.set(n.get() - l.size() as isize + new as isize));
        // SAFETY: the caller's contract is the same.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn net_allocated() -> isize {
    NET.with(Cell::get)
}

// ---------------------------------------------------------------------------
// Randomness and planned panics.

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// The payload of a panic the program raised on purpose.
struct Planned;

fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Planned>() {
                default(info);
            }
        }));
    });
}

thread_local! {
    /// The seed of the program that runs.
    static SEED: Cell<u64> = const { Cell::new(0) };
}

/// Runs a public call of the test body, letting planned panics through
/// (they end the call) and failing on any other: an unplanned panic is a
/// broken promise (an assertion of the runtime, a `RefCell` borrowed
/// twice, ...). The program is reported and the process ends at once,
/// since unwinding further would drop a world in an unknown state.
fn top<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(p) if p.is::<Planned>() => None,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let seed = SEED.with(Cell::get);
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("program TEVENT_SEED={seed} TEVENT_CASES=1 panicked: {msg}\n").as_bytes(),
            );
            std::process::exit(101);
        }
    }
}

// ---------------------------------------------------------------------------
// The model.

/// Where user code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Site {
    Top,
    FirstStep,
    Step,
    CancelHook,
    Cleanup,
    StateDrop,
    OutDrop,
    WaiterDrop,
    Callback,
    CallbackDrop,
    Name,
    Trigger,
    Handler,
    HandlerDrop,
    TraceHook,
    /// The request trace hook (`Context::set_req_trace_hook`).
    ReqTraceHook,
    /// The queue trace hook (`Context::set_queue_trace_hook`).
    QueueTraceHook,
    Remote,
}

#[derive(Default)]
struct ReqRec {
    /// A `Node` (otherwise a `JoinAll`, tracked for the tree's shape only).
    is_node: bool,
    state_drops: u32,
    /// Set by the cleanup hook: the state the request reached.
    reached: Option<ReqState>,
    cleanups: u32,
    outs_made: u32,
    outs_dropped: u32,
}

impl ReqRec {
    fn finished(&self) -> bool {
        matches!(self.reached, Some(r) if r != ReqState::Dropped)
    }

    fn gone(&self) -> bool {
        self.reached.is_some() || self.state_drops > 0
    }
}

/// A registration: a parent's wait for a subrequest, or a top-level callback.
struct RegRec {
    /// The waiting parent (`None`: a callback).
    parent: Option<usize>,
    /// The request waited for, if it is a `Node`.
    child: Option<usize>,
    /// The wait or `set_callback` returned; from now on the closure is the
    /// runtime's.
    armed: bool,
    ran: u32,
    drops: u32,
    /// The test aborted it (`CallbackHandle::abort`).
    aborted: bool,
}

/// What the programs did, summed over a run (printed at the end).
#[derive(Default, Clone, Copy)]
struct Stats {
    requests: u64,
    steps: u64,
    resumed: u64,
    callbacks: u64,
    refused_loops: u64,
    refused_cycles: u64,
    panics: u64,
    contexts: u64,
}

thread_local! {
    static STATS: Cell<Stats> = Cell::new(Stats::default());
}

fn count(f: impl FnOnce(&mut Stats)) {
    STATS.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

#[derive(Default)]
struct Model {
    reqs: Vec<ReqRec>,
    regs: Vec<RegRec>,
    /// The tree as the runtime should see it: who waits for whom (a link
    /// holds until the waiter runs; a subrequest of a `JoinAll` is under it
    /// until it is received there).
    parent_of: std::collections::HashMap<usize, usize>,
    failures: Vec<String>,
    /// A context is being dropped: what it drops is not a lost notification.
    teardown: bool,
    ctx_gen: u32,
}

// ---------------------------------------------------------------------------
// The world: what the program holds.

/// A request handle the program holds.
enum Handle {
    Node(usize, Req<Node>),
    Join(usize, Req<JoinAll<Node>>),
    Wake(Req<Wakeup>),
    QWait(Req<QueueWait>),
}

impl Handle {
    fn node_id(&self) -> Option<usize> {
        match self {
            Handle::Node(id, _) | Handle::Join(id, _) => Some(*id),
            _ => None,
        }
    }
}

/// An event the program holds (to drop it from anywhere).
enum Event {
    Imm(#[expect(dead_code, reason = "held to be dropped")] Immediate),
    Timer(#[expect(dead_code, reason = "held to be dropped")] Timer),
}

struct World {
    rng: Rng,
    ev: Option<Context>,
    handles: Vec<(u32, Handle)>,
    callbacks: Vec<(u32, usize, CallbackHandle<Node>)>,
    queues: Vec<Queue>,
    events: Vec<Event>,
    model: Model,
    depth: u32,
    budget: u32,
    /// The requests whose steps run now, innermost last (to know ancestors).
    running: Vec<usize>,
    log: Vec<String>,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// Runs `f` on the world, in a short borrow (never across a call into
/// tevent, which may run user code that comes back here).
fn w<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|c| f(c.borrow_mut().as_mut().expect("a program is running")))
}

fn fail(msg: String) {
    w(|w| {
        let ctx = w.log.iter().rev().take(12).cloned().collect::<Vec<_>>();
        w.model
            .failures
            .push(format!("{msg}\n  last calls (newest first): {ctx:?}"));
    });
}

fn note(s: impl Into<String>) {
    let s = s.into();
    if std::env::var_os("TEVENT_TRACE").is_some() {
        eprintln!("{s}");
    }
    w(|w| {
        w.log.push(s);
        if w.log.len() > 64 {
            w.log.drain(..32);
        }
    });
}

/// Enters user code at `site`: deeper, with fewer calls to make.
struct Depth;

fn enter() -> Depth {
    w(|w| w.depth += 1);
    Depth
}

impl Drop for Depth {
    fn drop(&mut self) {
        w(|w| w.depth -= 1);
    }
}

thread_local! {
    /// Calls from the program into tevent, now on the stack: user code that
    /// runs while one does runs under the runtime (where loop calls must be
    /// refused).
    static IN_TEVENT: Cell<u32> = const { Cell::new(0) };
}

/// A call into tevent (see `IN_TEVENT`).
fn api<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            IN_TEVENT.with(|c| c.set(c.get() - 1));
        }
    }
    IN_TEVENT.with(|c| c.set(c.get() + 1));
    let _leave = Leave;
    f()
}

fn under_tevent() -> bool {
    IN_TEVENT.with(Cell::get) > 0
}

/// A draw from the program, or `None` once its budget is spent.
fn draw(n: usize) -> Option<usize> {
    w(|w| {
        if w.budget == 0 {
            return None;
        }
        w.budget -= 1;
        Some(w.rng.below(n))
    })
}

fn chance(p: u64) -> bool {
    w(|w| w.budget > 0 && w.rng.percent(p))
}

fn cur_ev() -> Option<Context> {
    w(|w| w.ev.clone())
}

// ---------------------------------------------------------------------------
// The request type of the programs.

struct Node {
    id: usize,
    _probe: StateProbe,
}

struct StateProbe(usize);

impl Drop for StateProbe {
    fn drop(&mut self) {
        let id = self.0;
        let again = w(|w| {
            let r = &mut w.model.reqs[id];
            r.state_drops += 1;
            r.state_drops > 1
        });
        if again {
            fail(format!("state of request {id} dropped twice"));
        }
        ambient(Site::StateDrop);
    }
}

struct Out {
    id: usize,
}

impl Drop for Out {
    fn drop(&mut self) {
        let id = self.id;
        let again = w(|w| {
            let r = &mut w.model.reqs[id];
            r.outs_dropped += 1;
            r.outs_dropped > r.outs_made
        });
        if again {
            fail(format!(
                "output of request {id} dropped more often than made"
            ));
        }
        ambient(Site::OutDrop);
    }
}

#[derive(Debug)]
struct Fail;

impl Request for Node {
    type Output = Out;
    type Error = Fail;

    fn name() -> &'static str {
        // User code too: the runtime may call it at any time.
        if WORLD.with(|c| c.try_borrow().is_ok_and(|w| w.is_some())) {
            let _d = enter();
            ambient(Site::Name);
        }
        "Node"
    }
}

fn node_send(ev: &Context) -> (usize, Req<Node>) {
    let id = w(|w| {
        w.model.reqs.push(ReqRec {
            is_node: true,
            ..ReqRec::default()
        });
        w.model.reqs.len() - 1
    });
    note(format!("start {id}"));
    count(|s| s.requests += 1);
    let state = Node {
        id,
        _probe: StateProbe(id),
    };
    let req = api(|| {
        Req::start(ev, state, |st, ctl| {
            ctl.set_cleanup(cleanup_hook);
            step_body(st, ctl, Site::FirstStep)
        })
    });
    (id, req)
}

fn cleanup_hook(st: &mut Node, reached: ReqState) {
    let id = st.id;
    let again = w(|w| {
        let r = &mut w.model.reqs[id];
        r.cleanups += 1;
        r.reached = Some(reached);
        r.cleanups > 1
    });
    if again {
        fail(format!(
            "request {id} finished twice (cleanup ran again with {reached:?})"
        ));
    }
    let _d = enter();
    ambient(Site::Cleanup);
}

fn cancel_hook(st: &mut Node, ctl: &mut Ctl<'_, Node>) -> Option<StepResult<Node>> {
    if chance(30) {
        return None;
    }
    Some(step_body(st, ctl, Site::CancelHook))
}

/// The body of every step of a `Node`.
fn step_body(st: &mut Node, ctl: &mut Ctl<'_, Node>, site: Site) -> StepResult<Node> {
    let id = st.id;
    let (dropped, finished) = w(|w| {
        let r = &w.model.reqs[id];
        (r.state_drops > 0, r.finished())
    });
    if dropped || finished {
        fail(format!(
            "a step ({site:?}) ran on request {id} after its state was dropped ({dropped}) or it finished ({finished})"
        ));
    }
    count(|s| s.steps += 1);
    w(|w| w.running.push(id));
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            w(|w| w.running.pop());
        }
    }
    let _pop = Pop;
    let _d = enter();
    ambient(site);
    for _ in 0..draw(3).unwrap_or(0) {
        match draw(9) {
            Some(0 | 1) => {
                // A new subrequest.
                let (cid, sub) = node_send(ctl.ev());
                wait_for(ctl, id, Handle::Node(cid, sub))?;
            }
            Some(2 | 3) => {
                // One the program holds: possibly this request itself, an
                // ancestor, or a request of a dropped context.
                let Some((g, h)) = take_handle() else {
                    continue;
                };
                let cur = w(|w| w.model.ctx_gen);
                let child = h.node_id();
                let under = child.is_some_and(|c| runs_under(id, c));
                let r = wait_for(ctl, id, h);
                if under && r.is_ok() {
                    fail(format!(
                        "request {id} was allowed to wait for {child:?}, which it runs under"
                    ));
                }
                if matches!(r, Err(ReqError::WaitCycle)) {
                    count(|s| s.refused_cycles += 1);
                }
                if !under && matches!(r, Err(ReqError::WaitCycle)) {
                    fail(format!(
                        "request {id} was refused a wait for {child:?}, which it does not run under"
                    ));
                }
                if g != cur && !matches!(r, Err(ReqError::WrongContext | ReqError::ContextGone)) {
                    fail(format!(
                        "a request of a dropped context was waited for: {r:?}"
                    ));
                }
                if r.is_err() && chance(50) {
                    r?;
                }
            }
            Some(4) => {
                let at = ctl.ev().now() + Duration::from_millis(1 + draw(20).unwrap_or(0) as u64);
                let wake = api(|| wakeup_send(ctl.ev(), at));
                wait_for(ctl, id, Handle::Wake(wake))?;
            }
            Some(5) => {
                let after = Duration::from_millis(1 + draw(30).unwrap_or(0) as u64);
                api(|| ctl.set_timeout(after))?;
            }
            Some(6) => {
                api(|| ctl.enable_profile());
            }
            Some(7) => ctl.set_cancel(cancel_hook),
            _ => api(|| ctl.reset_endtime()),
        }
    }
    if chance(2) && !std::thread::panicking() {
        note(format!("panic in {site:?} of {id}"));
        count(|s| s.panics += 1);
        std::panic::panic_any(Planned);
    }
    let end = draw(10);
    note(format!("{id} ends its {site:?}: {end:?}"));
    match end {
        Some(0 | 1) => {
            w(|w| w.model.reqs[id].outs_made += 1);
            Ok(Progress::Done(Out { id }))
        }
        Some(2) => Err(ReqError::User(Fail)),
        Some(3) => Err(ReqError::Cancelled),
        // Out of budget: finish, so that the program ends.
        None => {
            w(|w| w.model.reqs[id].outs_made += 1);
            Ok(Progress::Done(Out { id }))
        }
        _ => Ok(Progress::Pending),
    }
}

/// Whether request `id` is `c` or runs under it (in the model's tree).
fn runs_under(id: usize, c: usize) -> bool {
    w(|w| {
        let m = &w.model;
        let mut at = id;
        for _ in 0..=m.reqs.len() {
            if at == c {
                return true;
            }
            match m.parent_of.get(&at) {
                Some(&p) if !(m.reqs[p].is_node && m.reqs[p].gone()) => at = p,
                _ => return false,
            }
        }
        false
    })
}

/// What a waiter or callback closure owns: records its run and its drop.
struct RegProbe {
    reg: usize,
    ran: bool,
}

impl Drop for RegProbe {
    fn drop(&mut self) {
        let reg = self.reg;
        let ran = self.ran;
        let msg = w(|w| {
            let teardown = w.model.teardown;
            let r = &mut w.model.regs[reg];
            r.drops += 1;
            if r.drops > 1 {
                return Some(format!("registration {reg} dropped twice"));
            }
            if ran || !r.armed || teardown || r.aborted {
                return None;
            }
            match r.parent {
                Some(p) if !w.model.reqs[p].gone() => Some(format!(
                    "the waiter of request {p} for {:?} was dropped unrun while {p} is still in progress (a lost notification)",
                    r.child
                )),
                None => Some(format!(
                    "callback registration {reg} (request {:?}) was dropped unrun without being aborted",
                    r.child
                )),
                _ => None,
            }
        });
        if let Some(m) = msg {
            fail(m);
        }
        if ran {
            // Dropped as its closure returns: a panic here would leak the
            // closure's return value (Rust's rule, rust-lang/rust#47949),
            // which is not what this test is about.
            return;
        }
        let _d = enter();
        ambient(if r_is_callback(reg) {
            Site::CallbackDrop
        } else {
            Site::WaiterDrop
        });
    }
}

fn r_is_callback(reg: usize) -> bool {
    w(|w| w.model.regs[reg].parent.is_none())
}

fn new_reg(parent: Option<usize>, child: Option<usize>) -> usize {
    w(|w| {
        w.model.regs.push(RegRec {
            parent,
            child,
            armed: false,
            ran: 0,
            drops: 0,
            aborted: false,
        });
        w.model.regs.len() - 1
    })
}

fn ran_reg(probe: &mut RegProbe) {
    probe.ran = true;
    let reg = probe.reg;
    let msg = w(|w| {
        let r = &mut w.model.regs[reg];
        r.ran += 1;
        if r.ran > 1 {
            Some(format!("registration {reg} ran twice"))
        } else if r.aborted {
            Some(format!("registration {reg} ran after it was aborted"))
        } else {
            None
        }
    });
    if let Some(m) = msg {
        fail(m);
    }
}

/// Makes request `id` (whose step runs) wait for `h`.
fn wait_for(ctl: &mut Ctl<'_, Node>, id: usize, h: Handle) -> Result<(), ReqError<Fail>> {
    let child = h.node_id();
    let reg = new_reg(Some(id), child);
    note(format!("{id} waits for {:?} (reg {reg})", h.node_id()));
    let mut probe = RegProbe { reg, ran: false };
    macro_rules! resume {
        ($sub:ident) => {
            move |st: &mut Node, ctl: &mut Ctl<'_, Node>, $sub| {
                ran_reg(&mut probe);
                count(|s| s.resumed += 1);
                note(format!("reg {} resumes {id}", probe.reg));
                if let Some(c) = child {
                    w(|w| {
                        if w.model.parent_of.get(&c) == Some(&id) {
                            w.model.parent_of.remove(&c);
                        }
                    });
                }
                if st.id != id {
                    fail(format!("the waiter of {id} resumed request {}", st.id));
                }
                keep_or_recv($sub);
                step_body(st, ctl, Site::Step)
            }
        };
    }
    let r = match h {
        Handle::Node(cid, sub) => {
            let mut f = resume!(sub);
            api(|| {
                ctl.wait(sub, move |st, ctl, sub: Req<Node>| {
                    f(st, ctl, Handle::Node(cid, sub))
                })
            })
        }
        Handle::Join(jid, sub) => {
            let mut f = resume!(sub);
            api(|| ctl.wait(sub, move |st, ctl, sub| f(st, ctl, Handle::Join(jid, sub))))
        }
        Handle::Wake(sub) => {
            let mut f = resume!(sub);
            api(|| ctl.wait(sub, move |st, ctl, sub| f(st, ctl, Handle::Wake(sub))))
        }
        Handle::QWait(sub) => {
            let mut f = resume!(sub);
            api(|| ctl.wait(sub, move |st, ctl, sub| f(st, ctl, Handle::QWait(sub))))
        }
    };
    if r.is_ok() {
        w(|w| {
            w.model.regs[reg].armed = true;
            if let Some(c) = child {
                w.model.parent_of.insert(c, id);
            }
        });
    }
    r
}

/// A finished subrequest: received (checked against its state) or kept.
fn keep_or_recv(h: Handle) {
    if chance(70) {
        recv_checked(h);
    } else {
        put_handle(h);
    }
}

fn recv_checked(h: Handle) {
    macro_rules! check {
        ($req:expr) => {{
            let state = $req.state();
            // The output is dropped here, by the program, not by tevent.
            let r = api(|| $req.recv()).map(|_| ()).map_err(|e| e.state());
            let ok = match state {
                ReqState::InProgress => r == Err(ReqState::Error),
                ReqState::Done => r.is_ok(),
                ReqState::Dropped => r.is_err(),
                other => r == Err(other),
            };
            if !ok {
                fail(format!("recv gave {r:?} for a request in state {state:?}"));
            }
        }};
    }
    match h {
        Handle::Node(_, r) => check!(r),
        Handle::Join(_, r) => check!(r),
        Handle::Wake(r) => check!(r),
        Handle::QWait(r) => check!(r),
    }
}

fn take_handle() -> Option<(u32, Handle)> {
    w(|w| {
        if w.handles.is_empty() {
            return None;
        }
        let i = w.rng.below(w.handles.len());
        Some(w.handles.swap_remove(i))
    })
}

fn put_handle(h: Handle) {
    w(|w| {
        let g = w.model.ctx_gen;
        w.handles.push((g, h));
    });
}

// ---------------------------------------------------------------------------
// The calls a program makes from anywhere.

fn ambient(site: Site) {
    let (depth, budget) = w(|w| (w.depth, w.budget));
    if budget == 0 || depth > 4 {
        return;
    }
    let n = if site == Site::Top {
        1
    } else {
        // Fewer the deeper we are.
        match draw(3 + depth as usize * 2) {
            Some(0) => 2,
            Some(1) => 1,
            _ => 0,
        }
    };
    for _ in 0..n {
        one_call(site);
    }
}

fn one_call(site: Site) {
    let _ = site;
    let nested = under_tevent();
    let Some(op) = draw(26) else { return };
    match op {
        0..=3 => {
            let Some(ev) = cur_ev() else { return };
            let (id, req) = node_send(&ev);
            w(|w| {
                let g = w.model.ctx_gen;
                w.handles.push((g, Handle::Node(id, req)));
            });
        }
        4 => {
            let Some(ev) = cur_ev() else { return };
            let mut subs = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..draw(3).unwrap_or(0) {
                match take_handle_kind(true) {
                    Some((g, Handle::Node(id, r))) if g == w(|w| w.model.ctx_gen) => {
                        subs.push(r);
                        ids.push(id);
                    }
                    Some((g, h)) => put_handle_gen(g, h),
                    None => {}
                }
            }
            let jid = w(|w| {
                w.model.reqs.push(ReqRec::default());
                w.model.reqs.len() - 1
            });
            note(format!("join_all_send {jid} over {ids:?}"));
            let j = api(|| join_all_send(&ev, subs));
            w(|w| {
                for c in ids {
                    w.model.parent_of.insert(c, jid);
                }
            });
            put_handle(Handle::Join(jid, j));
        }
        5 => {
            let Some(ev) = cur_ev() else { return };
            let at = ev.now() + Duration::from_millis(draw(10).unwrap_or(0) as u64);
            put_handle(Handle::Wake(api(|| wakeup_send(&ev, at))));
        }
        6 | 7 => {
            if let Some((_, h)) = take_handle() {
                note(format!("drop {:?}", h.node_id()));
                api(|| drop(h));
            }
        }
        8 | 9 => {
            if let Some((_, h)) = take_handle() {
                note(format!("recv {:?}", h.node_id()));
                recv_checked(h);
            }
        }
        10 => with_node(|_, r| {
            note("cancel");
            api(|| r.cancel());
        }),
        11 => {
            let ms = draw(20).unwrap_or(0) as u64;
            with_node(|_, r| {
                if let Some(ev) = cur_ev() {
                    let _ = api(|| r.set_endtime(ev.now() + Duration::from_millis(ms)));
                }
            })
        }
        12 => with_node(|_, r| api(|| r.reset_endtime())),
        13 => with_node(|_, r| {
            api(|| r.enable_profile());
        }),
        14 => with_node(|_, r| {
            // Rendering calls `Request::name` (user code) outside tevent.
            if let Some(p) = api(|| r.take_profile()) {
                let _ = p.render();
            }
        }),
        15 => with_node(|_, r| {
            let _ = format!("{r:?}");
            // The live tree: a snapshot from anywhere; its names are user
            // code, asked for when it is rendered.
            // (The context is let go of first: a name may recreate it.)
            let tree = cur_ev()
                .filter(|_| chance(30))
                .map(|ev| api(|| ev.request_tree()));
            if let Some(tree) = tree {
                let _ = tree.render();
            }
        }),
        16 => set_callback(),
        17 => {
            let cb = w(|w| {
                if w.callbacks.is_empty() {
                    None
                } else {
                    let i = w.rng.below(w.callbacks.len());
                    Some(w.callbacks.swap_remove(i))
                }
            });
            let Some((_, reg, cb)) = cb else { return };
            match draw(3) {
                Some(0) => {
                    let pending = cb.is_pending();
                    w(|w| w.model.regs[reg].aborted = pending);
                    note(format!("abort reg {reg} (pending {pending})"));
                    let aborted = api(|| cb.abort());
                    if aborted != pending {
                        fail(format!(
                            "abort of registration {reg} gave {aborted}, pending was {pending}"
                        ));
                    }
                    if !aborted {
                        w(|w| w.model.regs[reg].aborted = false);
                    }
                }
                Some(1) => {
                    api(|| cb.cancel());
                    w(|w| w.callbacks.push((0, reg, cb)));
                }
                _ => api(|| drop(cb)),
            }
        }
        18 => {
            let Some(ev) = cur_ev() else { return };
            let q = api(|| Queue::new(&ev, "q"));
            w(|w| w.queues.push(q));
        }
        19 => {
            let q = w(|w| {
                if w.queues.is_empty() {
                    None
                } else {
                    let i = w.rng.below(w.queues.len());
                    Some(w.queues.swap_remove(i))
                }
            });
            let Some(q) = q else { return };
            match draw(5) {
                Some(0) => {
                    note("drop queue");
                    api(|| drop(q));
                    return;
                }
                Some(1) => api(|| q.stop()),
                Some(2) => api(|| q.start()),
                Some(3) => {
                    if let Some(ev) = cur_ev() {
                        put_handle(Handle::QWait(api(|| queue_wait_send(&ev, &q))));
                    }
                }
                _ => {
                    if let Some((g, Handle::Node(id, r))) = take_handle_kind(true) {
                        let _ = api(|| {
                            q.add(&r, |st: &mut Node, ctl: &mut Ctl<'_, Node>| {
                                step_body(st, ctl, Site::Trigger)
                            })
                        });
                        w(|w| w.handles.push((g, Handle::Node(id, r))));
                    }
                }
            }
            w(|w| w.queues.push(q));
        }
        20 => {
            let Some(ev) = cur_ev() else { return };
            let imm = api(|| {
                ev.add_immediate(|_, _| {
                    let _d = enter();
                    ambient(Site::Handler);
                })
            });
            let _ = api(|| imm.schedule());
            w(|w| w.events.push(Event::Imm(imm)));
        }
        21 if chance(30) => {
            // A closure sent through the context's `Remote` (from this
            // thread: it runs on the loop like one from another).
            let Some(ev) = cur_ev() else { return };
            let remote = api(|| ev.remote());
            let _ = api(|| {
                remote.send(|_| {
                    let _d = enter();
                    ambient(Site::Remote);
                })
            });
        }
        21 => {
            let Some(ev) = cur_ev() else { return };
            let probe = HandlerProbe;
            let ms = draw(15).unwrap_or(0) as u64;
            let t = api(|| {
                ev.add_timer_after(Duration::from_millis(ms), move |_, _| {
                    let _keep = &probe;
                    let _d = enter();
                    ambient(Site::Handler);
                })
            });
            w(|w| w.events.push(Event::Timer(t)));
        }
        22 if chance(10) => {
            // Trace hooks: user code in the middle of the loop's bookkeeping.
            let Some(ev) = cur_ev() else { return };
            match draw(4) {
                Some(0) => {
                    api(|| {
                        ev.set_event_trace_hook(Some(Box::new(|_| {
                            if chance(20) {
                                let _d = enter();
                                ambient(Site::TraceHook);
                            }
                        })))
                    });
                }
                Some(1) => {
                    api(|| {
                        ev.set_loop_trace_hook(Some(Box::new(|_| {
                            if chance(20) {
                                let _d = enter();
                                ambient(Site::TraceHook);
                            }
                        })))
                    });
                }
                Some(2) => {
                    // Called at every point of every request's life: at a
                    // request's creation, before its steps, at its
                    // cancellation, before its waiter runs, as it goes.
                    api(|| {
                        ev.set_req_trace_hook(Some(Box::new(|t| {
                            let _ = (t.name, t.depth, t.step);
                            if chance(20) {
                                let _d = enter();
                                ambient(Site::ReqTraceHook);
                            }
                        })))
                    });
                }
                _ => {
                    api(|| {
                        ev.set_queue_trace_hook(Some(Box::new(|_| {
                            if chance(20) {
                                let _d = enter();
                                ambient(Site::QueueTraceHook);
                            }
                        })))
                    });
                }
            }
        }
        22 => {
            let e = w(|w| {
                if w.events.is_empty() {
                    None
                } else {
                    let i = w.rng.below(w.events.len());
                    Some(w.events.swap_remove(i))
                }
            });
            api(|| drop(e));
        }
        23 => {
            // Run the loop: an error from inside user code.
            let Some(ev) = cur_ev() else { return };
            let r = if chance(50) {
                api(|| ev.loop_once()).map(|_| ())
            } else {
                match take_handle() {
                    Some((g, h)) => {
                        // A finished request needs no loop: polling it is fine
                        // anywhere.
                        if !handle_in_progress(&h) {
                            put_handle_gen(g, h);
                            return;
                        }
                        let r = api(|| poll_handle(&h, &ev));
                        let cur = w(|w| w.model.ctx_gen);
                        if g != cur && !matches!(r, Err(Error::WrongContext)) {
                            fail(format!(
                                "a request of a dropped context polled on a new one: {r:?}"
                            ));
                        }
                        put_handle_gen(g, h);
                        r
                    }
                    None => return,
                }
            };
            if matches!(r, Err(Error::Nested)) {
                count(|s| s.refused_loops += 1);
            }
            if nested && !matches!(r, Err(Error::Nested | Error::WrongContext)) {
                fail(format!(
                    "a loop call from inside user code ({site:?}) was not refused: {r:?} {}",
                    std::backtrace::Backtrace::force_capture()
                ));
            }
        }
        // (Not while a panic unwinds: a panic from a destructor run by the
        // unwinder aborts, in any Rust program.)
        24 if nested && !std::thread::panicking() => {
            note(format!("panic in {site:?}"));
            count(|s| s.panics += 1);
            std::panic::panic_any(Planned);
        }
        24 => {}
        _ => {
            // (Not while a panic unwinds: the unwinder may be dropping a
            // request, whose drop holds the context.)
            if !nested && !std::thread::panicking() && chance(20) {
                recreate_context();
            }
        }
    }
}

fn handle_in_progress(h: &Handle) -> bool {
    match h {
        Handle::Node(_, r) => r.is_in_progress(),
        Handle::Join(_, r) => r.is_in_progress(),
        Handle::Wake(r) => r.is_in_progress(),
        Handle::QWait(r) => r.is_in_progress(),
    }
}

fn poll_handle(h: &Handle, ev: &Context) -> Result<(), Error> {
    match h {
        Handle::Node(_, r) => r.poll(ev),
        Handle::Join(_, r) => r.poll(ev),
        Handle::Wake(r) => r.poll(ev),
        Handle::QWait(r) => r.poll(ev),
    }
}

fn put_handle_gen(g: u32, h: Handle) {
    w(|w| w.handles.push((g, h)));
}

struct HandlerProbe;

impl Drop for HandlerProbe {
    fn drop(&mut self) {
        let _d = enter();
        ambient(Site::HandlerDrop);
    }
}

fn take_handle_kind(node: bool) -> Option<(u32, Handle)> {
    w(|w| {
        let idx: Vec<usize> = (0..w.handles.len())
            .filter(|i| matches!(w.handles[*i].1, Handle::Node(..)) == node)
            .collect();
        if idx.is_empty() {
            return None;
        }
        let i = idx[w.rng.below(idx.len())];
        Some(w.handles.swap_remove(i))
    })
}

/// Runs `f` on a `Node` handle the program holds (put back afterwards).
fn with_node(f: impl FnOnce(usize, &Req<Node>)) {
    let Some((g, Handle::Node(id, r))) = take_handle_kind(true) else {
        return;
    };
    struct PutBack(Option<(u32, usize, Req<Node>)>);
    impl Drop for PutBack {
        fn drop(&mut self) {
            if let Some((g, id, r)) = self.0.take() {
                put_handle_gen(g, Handle::Node(id, r));
            }
        }
    }
    let back = PutBack(Some((g, id, r)));
    let (_, id, r) = back.0.as_ref().expect("held");
    f(*id, r);
}

fn set_callback() {
    let Some((g, Handle::Node(id, r))) = take_handle_kind(true) else {
        return;
    };
    let reg = new_reg(None, Some(id));
    note(format!("set_callback {id} (reg {reg})"));
    let mut probe = RegProbe { reg, ran: false };
    let callback = move |_: &Context, req| {
        ran_reg(&mut probe);
        count(|s| s.callbacks += 1);
        let _d = enter();
        ambient(Site::Callback);
        if chance(50) {
            recv_checked(Handle::Node(id, req));
        } else {
            put_handle(Handle::Node(id, req));
        }
    };
    // On a request of a dropped context, the callback is dropped at once,
    // outside any call of the current context.
    let cb = if g == w(|w| w.model.ctx_gen) {
        api(|| r.set_callback(callback))
    } else {
        r.set_callback(callback)
    };
    w(|w| {
        w.model.regs[reg].armed = true;
        w.callbacks.push((g, reg, cb));
    });
}

fn recreate_context() {
    note("recreate the context");
    let old = w(|w| w.ev.take());
    // From here until the new context exists, what the old one drops
    // (unrun waiters and callbacks) is its teardown's: also if a hook or a
    // `Drop` panics on the way.
    w(|w| w.model.teardown = true);
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        // A request of the old context, to see that dropping the last
        // handle of a context tears it down at once.
        let sentinel = old
            .as_ref()
            .map(|ev| api(|| wakeup_send(ev, ev.now() + Duration::from_secs(1))));
        api(|| drop(old));
        sentinel
    }));
    match dropped {
        Ok(Some(s)) if s.state() != ReqState::Dropped => {
            fail(format!("the context outlived its drop: {:?}", s.state()));
        }
        Ok(_) => {}
        Err(p) if p.is::<Planned>() => {}
        Err(p) => {
            w(|w| w.model.teardown = false);
            std::panic::resume_unwind(p);
        }
    }
    w(|w| w.model.teardown = false);
    let ev = new_context();
    count(|s| s.contexts += 1);
    w(|w| {
        w.model.ctx_gen += 1;
        w.ev = Some(ev);
    });
}

// ---------------------------------------------------------------------------
// Running a program.

fn run_program(seed: u64, budget: u32) -> Vec<String> {
    let start = net_allocated();
    run_program_once(seed, budget);
    let failures = WORLD
        .with(|c| c.borrow_mut().take())
        .expect("world")
        .model
        .failures;
    let leaked = net_allocated() - start;
    if leaked != 0 && failures.is_empty() {
        // One-time allocations of the runtime (type names it keeps) are not
        // leaks: the same program, run again, must allocate nothing net.
        let again = net_allocated();
        run_program_once(seed, budget);
        let failures = WORLD
            .with(|c| c.borrow_mut().take())
            .expect("world")
            .model
            .failures;
        let leaked = net_allocated() - again;
        if leaked != 0 {
            let mut f = failures;
            f.push(format!("the program leaked {leaked} bytes"));
            return f;
        }
        return failures;
    }
    failures
}

/// A context on the manual clock whose loop never blocks: a program that
/// leaves nothing to do must not sleep.
fn new_context() -> Context {
    let ev = Context::with_manual_clock(true).expect("context");
    ev.set_wait_timeout(Some(Duration::ZERO));
    ev
}

fn run_program_once(seed: u64, budget: u32) {
    let ev = new_context();
    WORLD.with(|c| {
        *c.borrow_mut() = Some(World {
            rng: Rng(seed),
            ev: Some(ev),
            handles: Vec::new(),
            callbacks: Vec::new(),
            queues: Vec::new(),
            events: Vec::new(),
            model: Model::default(),
            depth: 0,
            budget,
            running: Vec::new(),
            log: Vec::new(),
        })
    });
    // The program.
    while w(|w| w.budget > 0) {
        let d = draw(6);
        match d {
            Some(0 | 1) => {
                if let Some(ev) = cur_ev() {
                    let r = top(|| api(|| ev.loop_once()));
                    if let Some(Err(e)) = r
                        && !matches!(e, Error::ClockStalled)
                    {
                        fail(format!("loop_once at the top failed: {e}"));
                    }
                }
            }
            _ => {
                top(|| ambient(Site::Top));
            }
        }
    }
    // The end: everything the program holds goes, the loop drains.
    let (handles, callbacks, queues, events) = w(|w| {
        (
            std::mem::take(&mut w.handles),
            std::mem::take(&mut w.callbacks),
            std::mem::take(&mut w.queues),
            std::mem::take(&mut w.events),
        )
    });
    for h in handles {
        top(|| api(|| drop(h)));
    }
    // Not aborted: a callback must still run if its request finishes.
    for (_, _, cb) in callbacks {
        top(|| api(|| drop(cb)));
    }
    for q in queues {
        top(|| api(|| drop(q)));
    }
    for e in events {
        top(|| api(|| drop(e)));
    }
    if let Some(ev) = cur_ev() {
        for _ in 0..1000 {
            match top(|| api(|| ev.loop_wait())) {
                Some(Ok(())) => break,
                Some(Err(Error::ClockStalled)) => break,
                Some(Err(e)) => {
                    fail(format!("loop_wait at the end failed: {e}"));
                    break;
                }
                None => {}
            }
        }
        // Handles that callbacks stored while draining.
        let handles = w(|w| std::mem::take(&mut w.handles));
        for h in handles {
            top(|| api(|| drop(h)));
        }
        for _ in 0..1000 {
            if let Some(Ok(())) = top(|| api(|| ev.loop_wait())) {
                break;
            }
        }
    }
    // Lost notifications: a registration whose request finished, never run,
    // never aborted, while its parent (if any) is still waiting.
    let lost = w(|w| {
        let m = &w.model;
        m.regs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.armed && r.ran == 0 && !r.aborted && r.drops == 0)
            .filter(|(_, r)| r.child.is_some_and(|c| m.reqs[c].finished()))
            .filter(|(_, r)| r.parent.is_none_or(|p| !m.reqs[p].gone()))
            .map(|(i, r)| {
                format!(
                    "registration {i} ({:?} for {:?}) was never told",
                    r.parent, r.child
                )
            })
            .collect::<Vec<_>>()
    });
    for l in lost {
        fail(l);
    }
    // The context goes, with what is left in it.
    let ev = w(|w| w.ev.take());
    w(|w| w.model.teardown = true);
    top(|| api(|| drop(ev)));
    let handles = w(|w| std::mem::take(&mut w.handles));
    top(|| api(|| drop(handles)));
    // Every state, output and closure dropped exactly once.
    let problems = w(|w| {
        let mut p = Vec::new();
        for (id, r) in w.model.reqs.iter().enumerate().filter(|(_, r)| r.is_node) {
            if r.state_drops != 1 {
                p.push(format!(
                    "request {id}: state dropped {} times",
                    r.state_drops
                ));
            }
            if r.outs_dropped != r.outs_made {
                p.push(format!(
                    "request {id}: {} outputs made, {} dropped",
                    r.outs_made, r.outs_dropped
                ));
            }
        }
        for (i, r) in w.model.regs.iter().enumerate() {
            if r.drops != 1 {
                p.push(format!(
                    "registration {i}: closure dropped {} times",
                    r.drops
                ));
            }
        }
        p
    });
    for p in problems {
        fail(p);
    }
}

/// A program that runs for a minute has hung (a corrupted list walked
/// forever, a loop that never ends): the watchdog ends the test with the
/// program's seed, which a hang would otherwise never report. (Not under
/// Miri, whose time is not the program's.)
fn watchdog() -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let current = std::sync::Arc::new(AtomicU64::new(u64::MAX));
    if cfg!(miri) {
        return current;
    }
    let seen = current.clone();
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        let mut still = 0;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = seen.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
            if still >= 60 && now != u64::MAX {
                // Straight to the fd: the test harness's capture of
                // `eprintln!` would be lost with the process.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!(
                        "program TEVENT_SEED={now} TEVENT_CASES=1 hung (no progress for a minute)\n"
                    )
                    .as_bytes(),
                );
                std::process::exit(101);
            }
        }
    });
    current
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number"))
    })
}

#[test]
fn random_programs_keep_every_promise_under_reentrancy() {
    quiet_planned_panics();
    let default_cases = if cfg!(miri) { 8 } else { 1000 };
    let cases = env_u64("TEVENT_CASES").unwrap_or(default_cases);
    let base = env_u64("TEVENT_SEED").unwrap_or(0x5eed);
    let budget = env_u64("TEVENT_BUDGET").map_or(if cfg!(miri) { 120 } else { 300 }, |b| b as u32);
    let mut bad = Vec::new();
    let watchdog = watchdog();
    for i in 0..cases {
        let seed = base.wrapping_add(i);
        watchdog.store(seed, std::sync::atomic::Ordering::Relaxed);
        SEED.with(|s| s.set(seed));
        if std::env::var_os("TEVENT_SEEDS").is_some() {
            eprintln!("seed {seed}");
        }
        let failures = run_program(seed, budget);
        if !failures.is_empty() {
            bad.push((seed, failures));
            if bad.len() >= 3 {
                break;
            }
        }
    }
    watchdog.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    let s = STATS.with(Cell::get);
    println!(
        "{cases} random re-entrant programs (budget {budget} calls each): {} requests, {} steps, \
         {} waiters and {} callbacks run, {} loop calls and {} wait cycles refused, \
         {} planned panics, {} contexts dropped and made anew",
        s.requests,
        s.steps,
        s.resumed,
        s.callbacks,
        s.refused_loops,
        s.refused_cycles,
        s.panics,
        s.contexts
    );
    if !bad.is_empty() {
        let mut msg = String::new();
        for (seed, f) in &bad {
            msg.push_str(&format!(
                "\nprogram TEVENT_SEED={seed} TEVENT_CASES=1:\n  {}\n",
                f.iter().take(4).cloned().collect::<Vec<_>>().join("\n  ")
            ));
        }
        panic!("{} of the programs broke a promise:{msg}", bad.len());
    }
}
