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
use crate::req::{Extra, ReqState};
use crate::slab::Key;

/// The profile of one request and its subrequests.
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

/// Gives one request a profile (if it has none); false if it is gone or the
/// profile cannot be allocated.
fn start_one(t: &mut crate::req::ReqTable, key: Key, now: Instant) -> bool {
    let Some(m) = t.slab.get_mut(key) else {
        return false;
    };
    if m.extra.as_ref().is_some_and(|e| e.profile.is_some()) {
        return true;
    }
    let p = Profile {
        name: (m.name)(),
        created: m.created,
        start: now,
        stop: None,
        state: m.state,
        subprofiles: Vec::new(),
        truncated: false,
    };
    if m.extra.is_none() {
        match crate::alloc::try_box(Extra::default()) {
            Ok(b) => m.extra = Some(Box::new(b.into_iter().next().expect("one"))),
            Err(_) => return false,
        }
    }
    m.extra.as_mut().expect("set above").profile = Some(p);
    true
}

impl Context {
    /// Starts profiling request `key` and the subrequests it is already
    /// waiting for (their start is now); false if it is gone or allocation
    /// failed.
    pub(crate) fn profile_start(&self, key: Key) -> bool {
        let now = self.now();
        let mut t = self.inner.reqs.borrow_mut();
        if !start_one(&mut t, key, now) {
            return false;
        }
        let mut todo = Vec::new();
        t.children_of(key, &mut todo);
        while let Some(k) = todo.pop() {
            if start_one(&mut t, k, now) {
                t.children_of(k, &mut todo);
            }
        }
        true
    }

    /// Closes a finished request's profile and moves it into its parent's.
    pub(crate) fn profile_stop(&self, key: Key, reached: ReqState) {
        let now = self.now();
        let mut t = self.inner.reqs.borrow_mut();
        let Some(m) = t.slab.get_mut(key) else {
            return;
        };
        let parent = match m.owner {
            crate::req::table::Owner::Parent => m.parent,
            _ => Key::NONE,
        };
        let Some(p) = m.extra.as_mut().and_then(|e| e.profile.as_mut()) else {
            return;
        };
        p.stop = Some(now);
        p.state = reached;
        if parent == Key::NONE {
            return;
        }
        let mine = m
            .extra
            .as_mut()
            .and_then(|e| e.profile.take())
            .expect("checked");
        if let Some(pp) = t
            .slab
            .get_mut(parent)
            .and_then(|pm| pm.extra.as_mut())
            .and_then(|e| e.profile.as_mut())
        {
            if pp.subprofiles.try_reserve(1).is_ok() {
                pp.subprofiles.push(mine);
            } else {
                pp.truncated = true;
            }
        }
    }

    /// Takes a request's profile out.
    pub(crate) fn profile_take(&self, key: Key) -> Option<Profile> {
        let mut t = self.inner.reqs.borrow_mut();
        t.slab.get_mut(key)?.extra.as_mut()?.profile.take()
    }
}
