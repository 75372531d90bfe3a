//! Immediate events: FIFO order, rescheduling moves to the tail, cancel,
//! self-rescheduling handlers and posted closures.

use tests::Log;
use tevent::Context;

#[test]
fn immediates_run_fifo_one_per_step() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let ims: Vec<_> = (0..5)
        .map(|i| {
            let l = log.clone();
            ev.add_immediate(move |_, _| l.push(i))
        })
        .collect();
    for im in &ims {
        im.schedule().unwrap();
    }
    assert!(ev.loop_once().unwrap());
    assert_eq!(log.get(), [0]);
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), [0, 1, 2, 3, 4]);
}

#[test]
fn rescheduling_a_queued_immediate_moves_it_to_the_tail() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let ims: Vec<_> = (0..3)
        .map(|i| {
            let l = log.clone();
            ev.add_immediate(move |_, _| l.push(i))
        })
        .collect();
    for im in &ims {
        im.schedule().unwrap();
    }
    ims[0].schedule().unwrap();
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), [1, 2, 0], "moved, and fired once");
}

#[test]
fn cancel_and_drop_remove_a_queued_immediate() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let a = ev.add_immediate(move |_, _| l1.push("a"));
    let b = ev.add_immediate(move |_, _| l2.push("b"));
    a.schedule().unwrap();
    b.schedule().unwrap();
    assert!(a.is_scheduled());
    assert!(a.cancel());
    assert!(!a.cancel());
    drop(b);
    ev.loop_wait().unwrap();
    assert!(log.is_empty());
    assert_eq!(ev.event_counts().immediates, 1);
}

#[test]
fn a_handler_reschedules_itself_behind_those_already_queued() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    let a = ev.add_immediate(move |_, me| {
        l.push("a");
        if l.len() < 3 {
            me.schedule();
        }
    });
    let l = log.clone();
    let b = ev.add_immediate(move |_, _| l.push("b"));
    a.schedule().unwrap();
    b.schedule().unwrap();
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), ["a", "b", "a"]);
}

#[test]
fn posted_closures_run_once_in_order_with_immediates() {
    let ev = Context::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    let im = ev.add_immediate(move |_, _| l.push("im"));
    let l = log.clone();
    ev.post(move |ev| {
        l.push("post1");
        let l2 = l.clone();
        ev.post(move |_| l2.push("post3"));
    });
    im.schedule().unwrap();
    let l = log.clone();
    ev.post(move |_| l.push("post2"));
    ev.loop_wait().unwrap();
    assert_eq!(log.get(), ["post1", "im", "post2", "post3"]);
    assert_eq!(ev.event_counts().immediates, 1, "posted entries are freed");
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn a_million_self_rescheduling_dispatches() {
    let ev = Context::new().unwrap();
    let n = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let c = n.clone();
    let im = ev.add_immediate(move |_, me| {
        c.set(c.get() + 1);
        if c.get() < 1_000_000 {
            me.schedule();
        }
    });
    im.schedule().unwrap();
    ev.loop_wait().unwrap();
    assert_eq!(n.get(), 1_000_000);
}
