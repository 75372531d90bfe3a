//! Request profiles: a tree of name, start and stop time and outcome for a
//! request and every subrequest it waited for, which outlives the requests.
//!
//! Profiling is opt-in per request ([`crate::Req::enable_profile`]); a
//! profiled request profiles every subrequest it waits for. When a subrequest
//! finishes its profile moves into its parent's. Profiles never fail a
//! request: if a profile cannot be allocated the request simply runs without
//! one, and a parent that cannot record a subprofile marks itself `truncated`.

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

    /// The state it reached ([`ReqState::InProgress`] while in progress).
    pub fn state(&self) -> ReqState {
        self.state
    }

    /// Profiles of the subrequests, in the order they finished.
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

    /// The tree as indented text, one request per line: name, state reached,
    /// duration (or `running`), and where it was created. Two spaces of
    /// indentation per level, up to [`Profile::MAX_INDENT`] levels; deeper
    /// lines are indented like that level and start with their depth
    /// (`[depth 40] `), so a deep tree stays readable and its text linear
    /// in its size.
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
            let _ = writeln!(
                out,
                "{} {:?} {} ({}:{})",
                p.name(),
                p.state,
                took,
                p.created.file(),
                p.created.line(),
            );
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
        // Depth first through the tree links, without a stack: down to the
        // first subrequest, else on to the next sibling, else back up.
        let mut cur = root_h.first_child.get();
        while let Some(p) = cur {
            // SAFETY: subrequests on the list of a live request are live, and
            // nothing here removes one.
            let h = unsafe { hdr(p) };
            // A subrequest that got no profile is not descended into.
            cur = if start_one(h, now) {
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
        let now = self.now();
        let mut extra = h.extra.borrow_mut();
        let Some(p) = extra.as_mut().and_then(|e| e[0].profile.as_mut()) else {
            return;
        };
        p.stop = Some(now);
        p.state = reached;
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
}
