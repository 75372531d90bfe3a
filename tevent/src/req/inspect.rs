//! The live request tree: a snapshot of every request in flight on a
//! context, as trees of who waits for whom, with the step each waits in and
//! what else it waits for (an fd, its end time, its turn in a queue).
//!
//! A snapshot costs nothing until it is taken: the tree is read from the
//! links the runtime keeps anyway (a parent's list of subrequests, the
//! context's list of live requests, the fd and timer tables). Taking one
//! walks every live request once, with a heap stack (a million levels cost
//! no stack), and runs no user code: [`Request::name`](crate::Request::name) (user code) is
//! called only when the snapshot is read or rendered, when nothing of the
//! runtime is in progress.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::fd::FdFlags;
use crate::req::ReqState;
use crate::req::node::{Flag, Header, NodePtr, hdr};
use crate::req::table::Owner;

/// The name of the step a waiter or fd watcher of type `F` runs (for the
/// trace hook's `Step` points), as the waiter slot names it.
pub(crate) fn step_name_of<F>() -> &'static str {
    crate::req::step::step_name::<F>()
}

/// The step that a parent (or a callback: `"callback"`) waits for request
/// `h` in, if anything waits for it. Runs no user code.
pub(crate) fn waited_in(h: &Header) -> Option<&'static str> {
    if h.owner.get() == Owner::Handle {
        return None;
    }
    h.waiter.step_name()
}

/// Something a request of a [`RequestTree`] waits for, besides its
/// subrequests (which are its children in the tree).
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, Wait, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let at = ev.now() + Duration::from_secs(3);
/// let _nap = wakeup_send(&ev, at);
/// let tree = ev.request_tree();
/// assert_eq!(tree.requests()[0].waits(), [Wait::EndTime(at)]);
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wait {
    /// An fd to become ready ([`Ctl::watch_fd`](crate::Ctl::watch_fd)).
    Fd {
        /// The fd's number.
        fd: RawFd,
        /// What the request waits for.
        flags: FdFlags,
    },
    /// Its end time ([`Ctl::set_endtime`](crate::Ctl::set_endtime); a
    /// [`wakeup_send`](crate::wakeup_send) request is one).
    EndTime(Instant),
    /// Its turn in a [`Queue`](crate::Queue).
    Queue {
        /// The queue's name.
        name: String,
        /// Its entry's place: 0 at the head (whose trigger ran or is due).
        place: usize,
    },
}

/// One request of a [`RequestTree`].
///
/// ```
/// use tevent::{Context, Progress, Req, ReqState, Request};
///
/// struct Idle;
/// impl Request for Idle {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// let ev = Context::new()?;
/// let _idle = Req::start(&ev, Idle, |_, _| Ok(Progress::Pending));
/// let tree = ev.request_tree();
/// let r = &tree.requests()[0];
/// assert_eq!((r.name(), r.state(), r.depth()), ("Idle", ReqState::InProgress, 0));
/// assert!(r.created().file().ends_with(".rs"));
/// assert!(r.waits().is_empty() && r.children().is_empty());
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct LiveRequest {
    /// The type's `Request::name`: user code, called when read.
    name: fn() -> &'static str,
    created: &'static Location<'static>,
    state: ReqState,
    running: bool,
    depth: usize,
    parent: Option<usize>,
    children: Vec<usize>,
    waited_in: Option<&'static str>,
    waiting_in: Vec<&'static str>,
    waits: Vec<Wait>,
    age: Option<Duration>,
}

impl LiveRequest {
    /// The request type's name ([`Request::name`](crate::Request::name)).
    pub fn name(&self) -> &'static str {
        (self.name)()
    }

    /// Where the request was created (the caller of its send function).
    pub fn created(&self) -> &'static Location<'static> {
        self.created
    }

    /// [`ReqState::InProgress`], or the state a finished request reached
    /// whose waiter has not run yet (it runs at the loop's next step).
    pub fn state(&self) -> ReqState {
        self.state
    }

    /// Whether one of its steps is running now (the snapshot was taken
    /// from inside it, or from code it called).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Its depth in its tree: 0 for a request no other request waits for.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The index (in [`RequestTree::requests`]) of the request that waits
    /// for it, if one does.
    pub fn parent(&self) -> Option<usize> {
        self.parent
    }

    /// The indexes of its subrequests (the requests it waits for), oldest
    /// wait first.
    pub fn children(&self) -> &[usize] {
        &self.children
    }

    /// The step its parent waits for it in (as [`waiting_in`] names
    /// steps); `"callback"` for a request handed to
    /// [`Req::set_callback`](crate::Req::set_callback); `None` if nothing
    /// waits for it but its handle.
    ///
    /// [`waiting_in`]: LiveRequest::waiting_in
    pub fn waited_in(&self) -> Option<&'static str> {
        self.waited_in
    }

    /// The steps it waits in, one per subrequest, sorted
    /// ([`Req::waiting_in`](crate::Req::waiting_in)'s names).
    pub fn waiting_in(&self) -> &[&'static str] {
        &self.waiting_in
    }

    /// What it waits for besides its subrequests: fds, its end time, its
    /// turn in a queue.
    pub fn waits(&self) -> &[Wait] {
        &self.waits
    }

    /// How long ago it was created, when the snapshot was taken, on its
    /// context's clock; `None` unless the context recorded it
    /// ([`Context::set_request_ages`]).
    pub fn age(&self) -> Option<Duration> {
        self.age
    }
}

impl std::fmt::Debug for LiveRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRequest")
            .field("name", &self.name())
            .field("state", &self.state)
            .field("running", &self.running)
            .field("depth", &self.depth)
            .field("parent", &self.parent)
            .field("children", &self.children)
            .field("waited_in", &self.waited_in)
            .field("waiting_in", &self.waiting_in)
            .field("waits", &self.waits)
            .field("age", &self.age)
            .field(
                "created",
                &format_args!(
                    "{}:{}:{}",
                    self.created.file(),
                    self.created.line(),
                    self.created.column()
                ),
            )
            .finish()
    }
}

/// A snapshot of the requests in flight on a context, as trees: each
/// request no other request waits for is a root, and the subrequests a
/// request waits for are its children. From [`Context::request_tree`].
///
/// The requests are in depth-first order (a request before its
/// subrequests, the oldest root and the oldest wait first), so the tree is
/// data a program can walk ([`RequestTree::requests`], with each request's
/// [`parent`](LiveRequest::parent) and [`children`](LiveRequest::children)
/// as indexes into it) and text a person can read
/// ([`RequestTree::render`], also its `Display`). It holds no reference to
/// the requests: it stays as it was taken.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, Ctl, Progress, Req, Request, StepResult, Wakeup, wakeup_send};
///
/// struct Nap;
/// impl Request for Nap {
///     type Output = ();
///     type Error = std::convert::Infallible;
/// }
/// fn woke(_: &mut Nap, _: &mut Ctl<'_, Nap>, _: Req<Wakeup>) -> StepResult<Nap> {
///     Ok(Progress::Done(()))
/// }
/// let ev = Context::with_manual_clock(true)?;
/// let nap = Req::start(&ev, Nap, |_, ctl| {
///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1)), woke)?;
///     Ok(Progress::Pending)
/// });
/// let tree = ev.request_tree();
/// assert_eq!(tree.len(), 2);
/// let [top, sub] = tree.requests() else { unreachable!() };
/// assert_eq!((top.name(), top.waiting_in()), ("Nap", &["woke"][..]));
/// assert_eq!((sub.name(), sub.waited_in(), sub.parent()), ("Wakeup", Some("woke"), Some(0)));
/// let text = tree.render();
/// assert!(text.starts_with("Nap@woke ("), "{text}");
/// assert!(text.contains("\n  [woke] Wakeup: end time in 1s ("), "{text}");
/// nap.poll(&ev)?;
/// assert!(ev.request_tree().is_empty()); // nothing in flight
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct RequestTree {
    requests: Vec<LiveRequest>,
    roots: Vec<usize>,
    taken: Instant,
}

impl RequestTree {
    /// Every request of the snapshot, in depth-first order.
    pub fn requests(&self) -> &[LiveRequest] {
        &self.requests
    }

    /// The indexes of the roots (the requests no other request waits
    /// for), oldest first.
    pub fn roots(&self) -> &[usize] {
        &self.roots
    }

    /// The number of requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request was in flight.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// When the snapshot was taken, on its context's clock.
    pub fn taken(&self) -> Instant {
        self.taken
    }

    /// The trees as indented text, one request per line, like a
    /// [`Profile`](crate::Profile): the parent's step that waits for it in
    /// brackets (`[read] `), its name and the steps it waits in
    /// (`Echo@read`, `EchoServer@[accepted, client_done×2]`), its state if
    /// it finished (its waiter not run yet) and `(running)` if a step of
    /// it runs, then after a colon what else it waits for (`fd 5 READ`,
    /// `end time in 25s`, `queue "writes" place 2`), its age if recorded,
    /// and where it was created. Two spaces of indentation per level, up to
    /// [`Profile::MAX_INDENT`](crate::Profile::MAX_INDENT) levels, deeper
    /// lines start with their depth (`[depth 40] `). Empty if no request
    /// was in flight.
    ///
    /// ```text
    /// EchoServer@[accepted, client_done×2], age 12.5s (examples/echo.rs:331:5)
    ///   [accepted] Accept<TcpListener>: fd 3 READ, age 2.1s (examples/echo.rs:372:25)
    ///   [client_done] Echo@read, age 9.8s (examples/echo.rs:369:20)
    ///     [read] ReadPooled<TcpStream>: fd 5 READ, age 1.2s (examples/echo.rs:248:16)
    ///   [client_done] Echo@write, age 2.1s (examples/echo.rs:369:20)
    ///     [write] WriteAll<TcpStream>: fd 6 WRITE, age 0ns (examples/echo.rs:224:18)
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in &self.requests {
            indent(&mut out, r.depth);
            if let Some(step) = r.waited_in {
                let _ = write!(out, "[{step}] ");
            }
            label(&mut out, r, self.taken);
            if let Some(age) = r.age {
                let _ = write!(out, ", age {age:?}");
            }
            let _ = writeln!(
                out,
                " ({}:{}:{})",
                r.created.file(),
                r.created.line(),
                r.created.column()
            );
        }
        out
    }
}

impl std::fmt::Display for RequestTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::fmt::Debug for RequestTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTree")
            .field("requests", &self.requests.len())
            .field("roots", &self.roots.len())
            .field("tree", &format_args!("{}", self.render().trim_end()))
            .finish()
    }
}

/// Two spaces per level, as a profile does.
fn indent(out: &mut String, depth: usize) {
    let max = crate::Profile::MAX_INDENT;
    for _ in 0..depth.min(max) {
        out.push_str("  ");
    }
    if depth > max {
        let _ = write!(out, "[depth {depth}] ");
    }
}

/// `Name@steps`, its state if finished or running, and `: what it waits for`.
fn label(out: &mut String, r: &LiveRequest, taken: Instant) {
    let _ = write!(
        out,
        "{}",
        crate::req::step::Waiting(r.name(), &r.waiting_in)
    );
    if r.state != ReqState::InProgress {
        let _ = write!(out, " {:?}", r.state);
    }
    if r.running {
        out.push_str(" (running)");
    }
    for (i, w) in r.waits.iter().enumerate() {
        out.push_str(if i == 0 { ": " } else { ", " });
        wait_text(out, w, taken);
    }
}

fn wait_text(out: &mut String, w: &Wait, taken: Instant) {
    match w {
        Wait::Fd { fd, flags } => {
            let _ = write!(out, "fd {fd} ");
            let mut first = true;
            for (f, name) in [
                (FdFlags::READ, "READ"),
                (FdFlags::WRITE, "WRITE"),
                (FdFlags::ERROR, "ERROR"),
            ] {
                if flags.contains(f) {
                    if !first {
                        out.push('|');
                    }
                    first = false;
                    out.push_str(name);
                }
            }
            if first {
                out.push_str("(paused)");
            }
        }
        Wait::EndTime(at) => {
            if *at >= taken {
                let _ = write!(out, "end time in {:?}", *at - taken);
            } else {
                let _ = write!(out, "end time {:?} ago", taken - *at);
            }
        }
        Wait::Queue { name, place } => {
            let _ = write!(out, "queue {name:?} place {place}");
        }
    }
}

impl Context {
    /// A snapshot of every request in flight on this context, as trees
    /// (see [`RequestTree`]): each request's type, the steps it waits in,
    /// what it waits for (subrequests, fds and flags, end time, a queue),
    /// its age (if recorded, see [`Context::set_request_ages`]) and where
    /// it was created. "In flight": in progress, or finished with its
    /// waiter (a parent's step, a callback) still to run; a finished
    /// request whose result waits in its handle is not.
    ///
    /// Costs nothing until called; then one walk over the live requests,
    /// the fd watchers and the end times, without recursion. It runs no
    /// user code, so it may be called from anywhere: a handler, a step, a
    /// hook, a signal handler of the loop (as the echo server does on
    /// `SIGUSR1`). There is no C tevent equivalent: C keeps no list of its
    /// requests (talloc parentage is their only registry).
    ///
    /// ```
    /// use tevent::{Context, Progress, Req, Request};
    ///
    /// struct Job;
    /// impl Request for Job {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// let ev = Context::new()?;
    /// let a = Req::start(&ev, Job, |_, _| Ok(Progress::Pending));
    /// let b = Req::start(&ev, Job, |_, _| Ok(Progress::Pending));
    /// let tree = ev.request_tree();
    /// assert_eq!(tree.roots(), [0, 1]); // the oldest first
    /// eprint!("{tree}"); // one line per request
    /// # drop((a, b));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn request_tree(&self) -> RequestTree {
        let t = &self.inner.reqs;
        let mut roots = Vec::new();
        let mut c = t.live_head();
        while let Some(p) = c {
            // SAFETY: requests on the live list are live; nothing here
            // runs user code or changes the list.
            let h = unsafe { hdr(p) };
            c = h.live_next.get();
            if in_flight(h) && h.owner.get() != Owner::Parent {
                roots.push(p);
            }
        }
        // The list holds the newest first.
        roots.reverse();
        self.snapshot(roots)
    }

    /// Starts (`true`) or stops recording when each request of this
    /// context is created, for [`LiveRequest::age`]; returns the previous
    /// setting. Off by default: recording costs one reading of the clock
    /// and the allocation of the request's rarely used part (where
    /// profiles live too) per request created, so a context records ages
    /// only when asked to. Requests created while it is off have no age.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, wakeup_send};
    ///
    /// let ev = Context::with_manual_clock(false)?;
    /// assert!(!ev.set_request_ages(true));
    /// let _nap = wakeup_send(&ev, ev.now() + Duration::from_secs(60));
    /// ev.advance(Duration::from_secs(5));
    /// assert_eq!(ev.request_tree().requests()[0].age(), Some(Duration::from_secs(5)));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn set_request_ages(&self, on: bool) -> bool {
        let hooks = &self.inner.hooks;
        let was = hooks.req_watch.get() & crate::trace::WATCH_AGES != 0;
        hooks.set_watch(crate::trace::WATCH_AGES, on);
        was
    }

    /// Records the creation time of a new request (the context records
    /// ages).
    #[cold]
    pub(crate) fn record_birth(&self, h: &Header) {
        if let Some(mut e) = crate::req::extra_mut(h) {
            e.born = Some(self.now());
        }
    }

    /// The snapshot of the trees under `roots`.
    fn snapshot(&self, roots: Vec<NodePtr>) -> RequestTree {
        let taken = self.now();
        let mut fds: HashMap<NodePtr, Vec<Wait>> = HashMap::new();
        if let Ok(table) = self.inner.fds.try_borrow() {
            for (p, fd, flags) in table.request_waits() {
                fds.entry(p).or_default().push(Wait::Fd { fd, flags });
            }
        }
        let timers = self.inner.timers.try_borrow().ok();
        let mut requests: Vec<LiveRequest> = Vec::new();
        let mut top = Vec::with_capacity(roots.len());
        let mut stack: Vec<(NodePtr, Option<usize>, usize)> =
            roots.into_iter().rev().map(|p| (p, None, 0)).collect();
        while let Some((p, parent, depth)) = stack.pop() {
            // SAFETY: a root is on the live list and not removed; the
            // others are subrequests on the list of a request that is not
            // removed. Nothing here runs user code or removes a request.
            let h = unsafe { hdr(p) };
            let idx = requests.len();
            let mut steps = Vec::new();
            let mut c = h.first_child.get();
            while let Some(k) = c {
                // SAFETY: as above.
                let kh = unsafe { hdr(k) };
                c = kh.next.get();
                if let Some(step) = waited_in(kh) {
                    steps.push(step);
                }
                // The list holds the newest first: the oldest is popped
                // first.
                stack.push((k, Some(idx), depth + 1));
            }
            steps.sort_unstable();
            let mut waits = fds.remove(&p).unwrap_or_default();
            let endtime = h.endtime.get();
            if let Some(at) = timers.as_ref().and_then(|t| t.deadline_of(endtime)) {
                waits.push(Wait::EndTime(at));
            }
            let mut born = None;
            if h.has(Flag::EXTRA)
                && let Ok(extra) = h.extra.try_borrow()
                && let Some(e) = extra.as_ref()
            {
                born = e[0].born;
                if let Some((name, place)) = e[0].queue.as_ref().and_then(|q| q.place()) {
                    waits.push(Wait::Queue { name, place });
                }
            }
            requests.push(LiveRequest {
                name: h.name_fn(),
                created: h.created,
                state: h.state.get(),
                running: h.has(Flag::RUNNING),
                depth,
                parent,
                children: Vec::new(),
                waited_in: waited_in(h),
                waiting_in: steps,
                waits,
                age: born.map(|b| taken.saturating_duration_since(b)),
            });
            match parent {
                Some(up) => requests[up].children.push(idx),
                None => top.push(idx),
            }
        }
        RequestTree {
            requests,
            roots: top,
            taken,
        }
    }

    /// The tree under one request (for `Debug` of a request).
    pub(crate) fn subtree(&self, root: NodePtr) -> RequestTree {
        self.snapshot(vec![root])
    }
}

/// Whether a request is in flight: in progress, or finished with its
/// waiter still to run (and not being dropped).
fn in_flight(h: &Header) -> bool {
    !h.has(Flag::REMOVED | Flag::DOOMED | Flag::ZOMBIE)
        && (h.state.get() == ReqState::InProgress || h.has(Flag::QUEUED))
}

/// What request `root` (the first of `tree`) waits for, on one line: its
/// own waits, then the chain of its subrequests (`[step] Name@steps (fd 5
/// READ)`, a subrequest's own subrequests after ` → `, several in `[a |
/// b]`). `None` if it waits for nothing the runtime sees. Iterative: a
/// chain a million deep costs no stack.
pub(crate) fn waits_text(tree: &RequestTree) -> Option<String> {
    let root = tree.requests.first()?;
    let mut out = String::new();
    for (i, w) in root.waits.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        wait_text(&mut out, w, tree.taken);
    }
    if root.children.is_empty() {
        return (!out.is_empty()).then_some(out);
    }
    if !out.is_empty() {
        out.push_str("; ");
    }
    enum Item {
        Node(usize),
        Text(&'static str),
    }
    fn push_children(stack: &mut Vec<Item>, children: &[usize]) {
        if let [one] = children {
            stack.push(Item::Node(*one));
            return;
        }
        stack.push(Item::Text("]"));
        for (k, c) in children.iter().rev().enumerate() {
            if k > 0 {
                stack.push(Item::Text(" | "));
            }
            stack.push(Item::Node(*c));
        }
        stack.push(Item::Text("["));
    }
    let mut stack = Vec::new();
    push_children(&mut stack, &root.children);
    while let Some(item) = stack.pop() {
        match item {
            Item::Text(t) => out.push_str(t),
            Item::Node(i) => {
                let r = &tree.requests[i];
                if let Some(step) = r.waited_in {
                    let _ = write!(out, "[{step}] ");
                }
                label(&mut out, r, tree.taken);
                if !r.children.is_empty() {
                    out.push_str(" → ");
                    push_children(&mut stack, &r.children);
                }
            }
        }
    }
    Some(out)
}
