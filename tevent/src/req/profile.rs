//! Request profiles: a tree of name, start and stop time and outcome for a
//! request and every subrequest it waited for, which outlives the requests.
//!
//! Profiling is opt-in per request ([`crate::Req::enable_profile`]); a
//! profiled request profiles every subrequest it waits for. When a subrequest
//! finishes its profile moves into its parent's; a subrequest that had
//! already finished when the wait began is recorded then; and when a
//! profiled request ends while subrequests still run (its end time passed,
//! a step failed or finished it, it was cancelled), each of them, at any
//! depth, is recorded as cancelled by that end, with the parent's step that
//! waited for it. Profiles never fail a request: if a profile cannot be
//! allocated the request simply runs without one, and a parent that cannot
//! record a subprofile marks itself `truncated`.

use std::panic::Location;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::req::ReqState;
use crate::req::node::{Flag, Header, NodePtr, hdr};
use crate::req::table::{Owner, extra_mut, is_profiled};

/// The profile of one request and its subrequests.
///
/// ```
/// use std::time::Duration;
/// use tevent::{Context, wakeup_send};
///
/// let ev = Context::with_manual_clock(true)?;
/// let nap = wakeup_send(&ev, ev.now() + Duration::from_secs(2));
/// assert!(nap.enable_profile());
/// nap.poll(&ev)?;
/// let profile = nap.take_profile().expect("recorded");
/// assert_eq!(profile.duration(), Some(Duration::from_secs(2)));
/// assert_eq!(profile.name(), "Wakeup");
/// assert!(profile.render().contains("Wakeup"));
/// # Ok::<(), tevent::Error>(())
/// ```
///
/// A profile is a tree as deep as the request tree it describes; every
/// operation on it (dropping, cloning, `len`, `render`, `Debug`) walks it
/// with a heap-allocated stack, so a profile a million requests deep costs
/// memory, not stack.
pub struct Profile {
    /// The request type's [`Request::name`](crate::Request::name), called
    /// when asked for ([`Profile::name`]) and never while the runtime
    /// records the profile: the name is user code.
    name: fn() -> &'static str,
    created: &'static Location<'static>,
    start: Instant,
    stop: Option<Instant>,
    state: ReqState,
    /// The step of the parent that waited for this request (subprofiles).
    waited_in: Option<&'static str>,
    /// The outcome of the parent that cut this request off, if it ended
    /// while this one still ran.
    cut_off_by: Option<ReqState>,
    subprofiles: Vec<Profile>,
    truncated: bool,
}

impl Profile {
    /// The request type's name ([`Request::name`](crate::Request::name)).
    pub fn name(&self) -> &'static str {
        (self.name)()
    }

    /// Where the request was created.
    pub fn created(&self) -> &'static Location<'static> {
        self.created
    }

    /// When profiling started: the request's start for the profiled root, the
    /// moment its parent began waiting for it for a subrequest.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When it finished (`None` while in progress).
    pub fn stop(&self) -> Option<Instant> {
        self.stop
    }

    /// The state it reached ([`ReqState::InProgress`] while in progress;
    /// [`ReqState::Cancelled`] for a subrequest cut off because its parent
    /// ended first, see [`Profile::cut_off_by`]).
    pub fn state(&self) -> ReqState {
        self.state
    }

    /// For a subprofile: the step of its parent that waited for it (the
    /// function the wait resumes, or a `#[tevent_request]` step's name, as
    /// [`Req::waiting_in`](crate::Req::waiting_in) names it). `None` for the
    /// profiled root.
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
    ///     ctl.enable_profile();
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(1)), woke)?;
    ///     Ok(Progress::Pending)
    /// });
    /// nap.poll(&ev)?;
    /// let p = nap.take_profile().expect("profiled");
    /// assert_eq!(p.waited_in(), None);
    /// assert_eq!(p.subprofiles()[0].waited_in(), Some("woke"));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn waited_in(&self) -> Option<&'static str> {
        self.waited_in
    }

    /// For a subrequest that was still running when its parent ended: the
    /// state its parent reached ([`ReqState::TimedOut`] when the parent's
    /// end time passed, [`ReqState::Error`] when a step failed it,
    /// [`ReqState::Cancelled`], [`ReqState::Done`] when the parent finished
    /// without it; deeper subrequests name their own parent, which was cut
    /// off: `Cancelled`). Its [`state`](Profile::state) is then
    /// `Cancelled` and its [`stop`](Profile::stop) the moment its parent
    /// ended. `None` for a request that finished by itself.
    ///
    /// C tevent frees such subrequests with their parent and records
    /// nothing about them; this is where a timed-out request shows what it
    /// was still waiting for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tevent::{Context, Ctl, Progress, Req, ReqError, ReqState, Request, StepResult, Wakeup, wakeup_send};
    ///
    /// struct Attempt;
    /// impl Request for Attempt {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    /// }
    /// fn read(_: &mut Attempt, _: &mut Ctl<'_, Attempt>, _: Req<Wakeup>) -> StepResult<Attempt> {
    ///     Ok(Progress::Done(()))
    /// }
    /// let ev = Context::with_manual_clock(true)?;
    /// let attempt = Req::start(&ev, Attempt, |_, ctl| {
    ///     ctl.enable_profile();
    ///     ctl.set_timeout(Duration::from_secs(1))?;
    ///     ctl.wait(wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_secs(5)), read)?;
    ///     Ok(Progress::Pending)
    /// });
    /// attempt.poll(&ev)?;
    /// let p = attempt.take_profile().expect("profiled");
    /// assert_eq!(attempt.recv(), Err(ReqError::TimedOut));
    /// let stuck = &p.subprofiles()[0];
    /// assert_eq!(stuck.state(), ReqState::Cancelled);
    /// assert_eq!(stuck.cut_off_by(), Some(ReqState::TimedOut));
    /// assert_eq!(stuck.waited_in(), Some("read"));
    /// assert!(p.render().contains("[read] Wakeup Cancelled (parent timed out) 1s"));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn cut_off_by(&self) -> Option<ReqState> {
        self.cut_off_by
    }

    /// Profiles of the subrequests: those that finished, in the order they
    /// finished (one that had already finished when the wait began counts
    /// as finishing then), followed by those cut off when this request
    /// ended, in the order they were waited for.
    pub fn subprofiles(&self) -> &[Profile] {
        &self.subprofiles
    }

    /// Whether a subprofile could not be recorded (allocation failure).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// How long the request took, if it finished.
    pub fn duration(&self) -> Option<Duration> {
        self.stop.map(|s| s.saturating_duration_since(self.start))
    }

    /// Number of requests in this tree (this one included).
    pub fn len(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(p) = stack.pop() {
            n += 1;
            stack.extend(p.subprofiles.iter());
        }
        n
    }

    /// Always false: a profile describes at least its own request.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The tree as indented text, one request per line: for a subrequest
    /// the parent's step that waited for it in brackets (`[read] `), then
    /// name, state reached (for a subrequest cut off by its parent's end,
    /// why: `Cancelled (parent timed out)`), duration (or `running`), and
    /// where it was created. Two spaces of indentation per level, up to
    /// [`Profile::MAX_INDENT`] levels; deeper lines are indented like that
    /// level and start with their depth (`[depth 40] `), so a deep tree
    /// stays readable and its text linear in its size.
    ///
    /// ```text
    /// Attempt TimedOut 5s (src/client.rs:40)
    ///   [connected] Connect Done 1ms (src/client.rs:52)
    ///   [read] ReadSome<TcpStream> Cancelled (parent timed out) 4.999s (src/client.rs:61)
    /// ```
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut stack = vec![(self, 0usize)];
        while let Some((p, depth)) = stack.pop() {
            let took = p
                .duration()
                .map_or_else(|| "running".to_string(), |d| format!("{d:?}"));
            for _ in 0..depth.min(Self::MAX_INDENT) {
                out.push_str("  ");
            }
            if depth > Self::MAX_INDENT {
                let _ = write!(out, "[depth {depth}] ");
            }
            if let Some(step) = p.waited_in {
                let _ = write!(out, "[{step}] ");
            }
            let _ = write!(out, "{} {:?}", p.name(), p.state);
            if let Some(why) = p.cut_off_by {
                let _ = write!(out, " (parent {})", parent_end(why));
            }
            let _ = writeln!(out, " {} ({}:{})", took, p.created.file(), p.created.line(),);
            stack.extend(p.subprofiles.iter().rev().map(|s| (s, depth + 1)));
        }
        out
    }

    /// The deepest level [`Profile::render`] indents.
    pub const MAX_INDENT: usize = 32;

    /// A copy of this node without its subprofiles.
    fn shallow(&self) -> Profile {
        Profile {
            name: self.name,
            created: self.created,
            start: self.start,
            stop: self.stop,
            state: self.state,
            waited_in: self.waited_in,
            cut_off_by: self.cut_off_by,
            subprofiles: Vec::with_capacity(self.subprofiles.len()),
            truncated: self.truncated,
        }
    }
}

impl Clone for Profile {
    fn clone(&self) -> Profile {
        // Depth first: `src` holds the nodes being copied and the next
        // subprofile of each, `built` their copies so far.
        let mut src = vec![(self, 0usize)];
        let mut built = vec![self.shallow()];
        loop {
            let top = src.len() - 1;
            let (p, i) = src[top];
            if let Some(c) = p.subprofiles.get(i) {
                src[top].1 += 1;
                src.push((c, 0));
                built.push(c.shallow());
                continue;
            }
            src.pop();
            let done = built.pop().expect("one copy per node being copied");
            match built.last_mut() {
                Some(parent) => parent.subprofiles.push(done),
                None => return done,
            }
        }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        // Subprofiles are dropped one level at a time: each is emptied
        // before it goes, so no drop recurses.
        let mut stack = std::mem::take(&mut self.subprofiles);
        while let Some(mut p) = stack.pop() {
            stack.append(&mut p.subprofiles);
        }
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name())
            .field("state", &self.state)
            .field("waited_in", &self.waited_in)
            .field("cut_off_by", &self.cut_off_by)
            .field("duration", &self.duration())
            .field(
                "created",
                &format_args!("{}:{}", self.created.file(), self.created.line()),
            )
            .field("requests", &self.len())
            .field("truncated", &self.truncated)
            .field("tree", &format_args!("{}", self.render().trim_end()))
            .finish()
    }
}

/// How [`Profile::render`] names the end of a parent that cut a
/// subrequest off.
fn parent_end(reached: ReqState) -> &'static str {
    match reached {
        ReqState::InProgress => "still running",
        ReqState::Done => "finished",
        ReqState::Error => "failed",
        ReqState::TimedOut => "timed out",
        ReqState::NoMemory => "ran out of memory",
        ReqState::Cancelled => "cancelled",
        ReqState::Dropped => "dropped",
    }
}

/// Gives one request a profile (if it has none); false if the profile cannot
/// be allocated.
fn start_one(h: &Header, now: Instant) -> bool {
    if is_profiled(h) {
        return true;
    }
    let p = Profile {
        name: h.name_fn(),
        created: h.created,
        start: now,
        stop: None,
        state: h.state.get(),
        waited_in: None,
        cut_off_by: None,
        subprofiles: Vec::new(),
        truncated: false,
    };
    match extra_mut(h) {
        Some(mut e) => {
            e.profile = Some(p);
            h.raise(Flag::PROFILED);
            true
        }
        None => false,
    }
}

/// Takes a request's profile out.
pub(crate) fn take(h: &Header) -> Option<Profile> {
    h.extra.borrow_mut().as_mut()?[0].profile.take()
}

impl Context {
    /// Starts profiling request `node` and the subrequests it is already
    /// waiting for (their start is now); false if allocation failed.
    pub(crate) fn profile_start(&self, root: NodePtr) -> bool {
        let now = self.now();
        // SAFETY: the caller holds a reference to the root, or it is on a
        // live parent's list; nothing here runs user code or removes one.
        let root_h = unsafe { hdr(root) };
        if !start_one(root_h, now) {
            return false;
        }
        if root_h.state.get() != ReqState::InProgress {
            // A subrequest that had already finished when its profiled
            // parent began to wait for it (it finished inside its send, or
            // a step kept it and waits for it now): it finished "now" as
            // far as the parent can tell, and is recorded at once (nothing
            // records it later: its end is past). It has no subrequests.
            self.profile_close(root_h, now, root_h.state.get(), None);
            return true;
        }
        // Depth first through the tree links, without a stack: down to the
        // first subrequest, else on to the next sibling, else back up.
        let mut cur = root_h.first_child.get();
        while let Some(p) = cur {
            // SAFETY: subrequests on the list of a live request are live, and
            // nothing here removes one.
            let h = unsafe { hdr(p) };
            // A subrequest that got no profile is not descended into; one
            // that finished (its waiter not run yet) has no subrequests,
            // and is recorded at once, as at the start of a wait.
            cur = if start_one(h, now) {
                if h.state.get() != ReqState::InProgress {
                    self.profile_close(h, now, h.state.get(), None);
                }
                h.first_child.get()
            } else {
                None
            };
            let mut at = h;
            while cur.is_none() {
                cur = at.next.get();
                match at.parent.get() {
                    _ if cur.is_some() => {}
                    // SAFETY: as above; parents up to `root` are live.
                    Some(up) if up != root => at = unsafe { hdr(up) },
                    _ => break,
                }
            }
        }
        true
    }

    /// Closes a finished request's profile and moves it into its parent's.
    pub(crate) fn profile_stop(&self, h: &Header, reached: ReqState) {
        // (A request in a queue has its extra part too: no clock read then.)
        if is_profiled(h) {
            self.profile_close(h, self.now(), reached, None);
        }
    }

    /// Closes `h`'s profile at `now` with the state `reached` (and, for a
    /// subrequest cut off by its parent's end, that end), and moves it into
    /// its parent's profile if a parent waits for it and records one. Runs
    /// no user code.
    fn profile_close(&self, h: &Header, now: Instant, reached: ReqState, cut: Option<ReqState>) {
        let mut extra = h.extra.borrow_mut();
        let Some(p) = extra.as_mut().and_then(|e| e[0].profile.as_mut()) else {
            return;
        };
        p.stop = Some(now);
        p.state = reached;
        p.cut_off_by = cut;
        let parent = match h.owner.get() {
            Owner::Parent => h.parent.get(),
            _ => None,
        };
        // SAFETY: the parent of a subrequest on its list is live.
        let Some(ph) = parent.map(|p| unsafe { hdr(p) }) else {
            return;
        };
        // A parent that records no profile leaves the subrequest its own
        // (taken from its handle once delivered).
        let mut parent_extra = ph.extra.borrow_mut();
        let Some(pp) = parent_extra.as_mut().and_then(|e| e[0].profile.as_mut()) else {
            return;
        };
        p.waited_in = crate::req::inspect::waited_in(h);
        if pp.subprofiles.try_reserve(1).is_ok() {
            pp.subprofiles.push(
                extra
                    .as_mut()
                    .and_then(|e| e[0].profile.take())
                    .expect("checked"),
            );
        } else {
            pp.truncated = true;
        }
    }

    /// A profiled request `root` ended (`reached`) while subrequests still
    /// run under it (`first` is the first of its list, which the caller has
    /// taken from it): before they are dropped, closes the profile of every
    /// one still in progress, at any depth, as [`ReqState::Cancelled`] by
    /// its parent's end (the root's `reached` for its own subrequests,
    /// `Cancelled` below them), and moves each into its parent's profile,
    /// deepest first, so the root's profile ends up holding them all.
    ///
    /// Walks the subtree through its links in post-order, oldest
    /// subrequest first, without a stack: a million levels cost no stack.
    /// Runs no user code.
    pub(crate) fn profile_cut_off(&self, root: &Header, first: NodePtr, reached: ReqState) {
        if !is_profiled(root) {
            return;
        }
        let now = self.now();
        let root_ptr = NodePtr::from(root);
        // The oldest subrequest of `p`'s subtree that has none of its own:
        // down through the last (oldest) subrequest of each level.
        let deepest = |mut p: NodePtr| loop {
            // SAFETY: subrequests on the list of a request that is not
            // removed are live; nothing here removes one.
            let h = unsafe { hdr(p) };
            let Some(mut c) = h.first_child.get() else {
                return p;
            };
            // SAFETY: as above.
            while let Some(n) = unsafe { hdr(c) }.next.get() {
                c = n;
            }
            p = c;
        };
        let mut oldest = first;
        // SAFETY: as above.
        while let Some(n) = unsafe { hdr(oldest) }.next.get() {
            oldest = n;
        }
        let mut cur = Some(deepest(oldest));
        while let Some(p) = cur {
            // SAFETY: as above.
            let h = unsafe { hdr(p) };
            // Where to go next, found before `h` is closed (closing moves
            // only profiles, never links).
            cur = match (h.prev.get(), h.parent.get()) {
                (Some(younger), _) => Some(deepest(younger)),
                (None, Some(up)) if up != root_ptr => Some(up),
                _ => None,
            };
            if h.state.get() == ReqState::InProgress && is_profiled(h) {
                let parent_end = match h.parent.get() {
                    Some(up) if up == root_ptr => reached,
                    _ => ReqState::Cancelled,
                };
                self.profile_close(h, now, ReqState::Cancelled, Some(parent_end));
            }
        }
    }
}
