//! With the `tracing` feature, every request has a span named "request" whose
//! parent is the span of the request whose step created it, and the points
//! of the request and queue trace hooks are `tracing` events (targets
//! `tevent::req` and `tevent::queue`), with or without a hook.
//!
//! Run with `cargo test -p tests --features tracing --test tracing_spans`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tevent::{Context, Progress, Req, Request, wakeup_recv, wakeup_send};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every span's request name and parent.
#[derive(Default)]
struct Recorder {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    stack: Vec<u64>,
    /// (id, request name, parent id)
    spans: Vec<(u64, String, Option<u64>)>,
    /// (target, point, explicit parent span id) of every event.
    events: Vec<(String, String, Option<u64>)>,
}

struct NameVisitor(String);

/// The `point` field of an event.
struct PointVisitor(String);

impl Visit for PointVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "point" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Visit for NameVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut st = self.state.lock().unwrap();
        st.next += 1;
        let id = st.next;
        let parent = match attrs.parent() {
            Some(p) => Some(p.into_u64()),
            None if attrs.is_contextual() => st.stack.last().copied(),
            None => None,
        };
        let mut v = NameVisitor(String::new());
        attrs.record(&mut v);
        st.spans.push((id, v.0, parent));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut v = PointVisitor(String::new());
        event.record(&mut v);
        let parent = event.parent().map(|p| p.into_u64());
        self.state.lock().unwrap().events.push((
            event.metadata().target().to_string(),
            v.0,
            parent,
        ));
    }
    fn enter(&self, span: &Id) {
        self.state.lock().unwrap().stack.push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.state.lock().unwrap().stack.pop();
    }
}

struct Outer;
impl Request for Outer {
    type Output = ();
    type Error = std::convert::Infallible;
}
struct Middle;
impl Request for Middle {
    type Output = ();
    type Error = std::convert::Infallible;
}

#[test]
fn request_spans_nest_like_the_requests() {
    let rec = Arc::new(Recorder::default());
    let dispatch = tracing::Dispatch::from(rec.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let ev = Context::with_manual_clock(true).unwrap();
        let outer = Req::start(&ev, Outer, |_, ctl| {
            let mid = Req::start(ctl.ev(), Middle, |_, ctl| {
                let w = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(1));
                ctl.wait(w, |_, _, w| {
                    assert!(wakeup_recv(w));
                    Ok(Progress::Done(()))
                })?;
                Ok(Progress::Pending)
            });
            ctl.wait(mid, |_, _, m| {
                m.recv()?;
                Ok(Progress::Done(()))
            })?;
            Ok(Progress::Pending)
        });
        outer.poll(&ev).unwrap();
        outer.recv().unwrap();
    });
    let st = rec.state.lock().unwrap();
    let by_name = |n: &str| st.spans.iter().find(|s| s.1 == n).cloned().unwrap();
    let (outer_id, _, outer_parent) = by_name("Outer");
    let (mid_id, _, mid_parent) = by_name("Middle");
    let (_, _, wake_parent) = by_name("Wakeup");
    assert_eq!(outer_parent, None);
    assert_eq!(mid_parent, Some(outer_id), "{:?}", st.spans);
    assert_eq!(wake_parent, Some(mid_id), "{:?}", st.spans);
}

#[test]
fn request_and_queue_points_are_events_inside_the_request_span() {
    let rec = Arc::new(Recorder::default());
    let dispatch = tracing::Dispatch::from(rec.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let ev = Context::with_manual_clock(true).unwrap();
        let q = tevent::Queue::new(&ev, "q");
        let w = tevent::queue_wait_send(&ev, &q);
        w.poll(&ev).unwrap();
        drop(w.recv().unwrap()); // the guard: the entry leaves
    });
    let st = rec.state.lock().unwrap();
    let (wait_span, _, _) = st
        .spans
        .iter()
        .find(|s| s.1 == "QueueWait")
        .cloned()
        .unwrap();
    let req: Vec<(String, Option<u64>)> = st
        .events
        .iter()
        .filter(|e| e.0 == "tevent::req")
        .map(|e| (e.1.clone(), e.2))
        .collect();
    assert_eq!(
        req,
        [
            ("Create".to_string(), Some(wait_span)),
            ("Step".to_string(), Some(wait_span)),
            ("Cleanup".to_string(), Some(wait_span)),
        ]
    );
    let queue: Vec<&str> = st
        .events
        .iter()
        .filter(|e| e.0 == "tevent::queue")
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(queue, ["Attach", "BeforeHandler", "Detach"]);
}
