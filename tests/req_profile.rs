//! Request profiles: a tree of name, times and outcome that outlives the requests.

use std::time::Duration;

use tevent::{
    Context, Ctl, Progress, Req, ReqError, ReqState, Request, StepResult, wakeup_recv, wakeup_send,
};

struct Top {
    left: u32,
}
impl Request for Top {
    type Output = u32;
    type Error = &'static str;
}
struct Child {
    fail: bool,
}
impl Request for Child {
    type Output = ();
    type Error = &'static str;
}

fn child_send(ev: &Context, ms: u64, fail: bool) -> Req<Child> {
    Req::start(ev, Child { fail }, move |_, ctl| {
        let w = wakeup_send(ctl.ev(), ctl.ev().now() + Duration::from_millis(ms));
        ctl.wait(w, |st, _, w| {
            assert!(wakeup_recv(w));
            if st.fail {
                Err(ReqError::User("child failed"))
            } else {
                Ok(Progress::Done(()))
            }
        })?;
        Ok(Progress::Pending)
    })
}

fn child_done(st: &mut Top, _: &mut Ctl<'_, Top>, sub: Req<Child>) -> StepResult<Top> {
    let _ = sub.recv(); // the failure is recorded in the profile; the parent carries on
    st.left -= 1;
    Ok(if st.left == 0 {
        Progress::Done(2)
    } else {
        Progress::Pending
    })
}

fn top_send(ev: &Context) -> Req<Top> {
    Req::start(ev, Top { left: 2 }, |_, ctl| {
        ctl.wait(child_send(ctl.ev(), 10, false), child_done)?;
        ctl.wait(child_send(ctl.ev(), 20, true), child_done)?;
        Ok(Progress::Pending)
    })
}

#[test]
fn a_profile_records_the_tree_and_outlives_it() {
    let ev = Context::with_manual_clock(true).unwrap();
    let top = top_send(&ev);
    assert!(
        top.enable_profile(),
        "also covers the subrequests already waited for"
    );
    top.poll(&ev).unwrap();
    let profile = top.take_profile().expect("profiled");
    assert_eq!(top.recv(), Ok(2));
    drop(ev); // the profile outlives the requests and the context

    assert_eq!(profile.name(), "Top");
    assert_eq!(profile.state(), ReqState::Done);
    assert_eq!(profile.duration(), Some(Duration::from_millis(20)));
    assert_eq!(profile.len(), 5, "top, two children, two wake-ups");
    let kids: Vec<_> = profile
        .subprofiles()
        .iter()
        .map(|p| (p.name(), p.state(), p.duration().unwrap().as_millis()))
        .collect();
    assert_eq!(
        kids,
        [
            ("Child", ReqState::Done, 10),
            ("Child", ReqState::Error, 20)
        ]
    );
    for k in profile.subprofiles() {
        assert_eq!(k.subprofiles().len(), 1);
        assert_eq!(k.subprofiles()[0].name(), "Wakeup");
        assert_eq!(k.subprofiles()[0].state(), ReqState::TimedOut);
        assert!(k.created().file().ends_with("req_profile.rs"));
    }
    let text = profile.render();
    assert!(text.starts_with("Top Done 20ms"), "{text}");
    // Each subrequest under the step of its parent that waited for it.
    assert!(text.contains("\n  [child_done] Child Error 20ms"), "{text}");
    // (A closure step: `Req::waiting_in`'s name for it.)
    assert!(text.contains("] Wakeup TimedOut 10ms"), "{text}");
}

#[test]
fn unprofiled_requests_have_no_profile() {
    let ev = Context::with_manual_clock(true).unwrap();
    let top = top_send(&ev);
    top.poll(&ev).unwrap();
    assert!(top.take_profile().is_none());
}

#[test]
fn a_request_can_profile_itself_from_its_first_step() {
    let ev = Context::with_manual_clock(true).unwrap();
    let top = Req::start(&ev, Top { left: 1 }, |_, ctl| {
        assert!(ctl.enable_profile());
        ctl.wait(child_send(ctl.ev(), 5, false), child_done)?;
        Ok(Progress::Pending)
    });
    top.poll(&ev).unwrap();
    let p = top.take_profile().unwrap();
    assert_eq!(p.len(), 3);
}

#[test]
fn a_profiled_subrequest_of_an_unprofiled_parent_keeps_its_profile() {
    struct Parent {
        got: Option<tevent::Profile>,
    }
    impl Request for Parent {
        type Output = Option<tevent::Profile>;
        type Error = &'static str;
    }
    let ev = Context::with_manual_clock(true).unwrap();
    let parent = Req::start(&ev, Parent { got: None }, |_, ctl| {
        let child = child_send(ctl.ev(), 5, false);
        assert!(child.enable_profile());
        ctl.wait(child, |st, _, sub: Req<Child>| {
            st.got = sub.take_profile();
            sub.recv()?;
            Ok(Progress::Done(st.got.take()))
        })?;
        Ok(Progress::Pending)
    });
    parent.poll(&ev).unwrap();
    let p = parent.recv().unwrap().expect("the child's own profile");
    assert_eq!((p.name(), p.state(), p.len()), ("Child", ReqState::Done, 2));
}
