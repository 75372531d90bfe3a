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
use crate::req::node::{Flag, Header, hdr};
use crate::req::table::{Owner, extra_mut, is_profiled};
use crate::req::{ReqRef, ReqState};

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
/// assert!(profile.render().contains("Wakeup"));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Profile {
    /// The request type's name.
    pub name: &'static str,
    /// Where the request was created.
    pub created: &'static Location<'static>,
    /// When profiling started: the request's start for the profiled root, the
    /// moment its parent began waiting for it for a subrequest.
    pub start: Instant,
    /// When it finished (`None` while in progress).
    pub stop: Option<Instant>,
    /// The state it reached.
    pub state: ReqState,
    /// Profiles of the subrequests, in the order they finished.
    pub subprofiles: Vec<Profile>,
    /// A subprofile could not be recorded (allocation failure).
    pub truncated: bool,
}

impl Profile {
    /// How long the request took, if it finished.
    pub fn duration(&self) -> Option<Duration> {
        self.stop.map(|s| s.saturating_duration_since(self.start))
    }

    /// Number of requests in this tree (this one included).
    pub fn len(&self) -> usize {
        1 + self.subprofiles.iter().map(Profile::len).sum::<usize>()
    }

    /// Always false: a profile describes at least its own request.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The tree as indented text, one request per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        use std::fmt::Write;
        let took = self
            .duration()
            .map_or_else(|| "running".to_string(), |d| format!("{d:?}"));
        let _ = writeln!(
            out,
            "{:indent$}{} {:?} {} ({}:{})",
            "",
            self.name,
            self.state,
            took,
            self.created.file(),
            self.created.line(),
            indent = depth * 2
        );
        for s in &self.subprofiles {
            s.render_into(out, depth + 1);
        }
    }
}

/// Gives one request a profile (if it has none); false if the profile cannot
/// be allocated.
fn start_one(h: &Header, now: Instant) -> bool {
    if is_profiled(h) {
        return true;
    }
    let p = Profile {
        name: h.name(),
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
    pub(crate) fn profile_start(&self, node: &ReqRef) -> bool {
        let now = self.now();
        if !start_one(node.hdr(), now) {
            return false;
        }
        // Depth first through the tree links, without a stack: down to the
        // first subrequest, else on to the next sibling, else back up.
        let root = node.ptr();
        let mut cur = node.hdr().first_child.get();
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
