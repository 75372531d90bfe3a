// A cancel hook of a generated request gets the state only: it cannot
// finish the request or start a wait (the hook used to get the request's
// `Ctl`, which could do both, outside the declared graph).
use tevent::{Cancel, Next, Req, Wakeup, tevent_request, wakeup_send};

struct Nap;

#[tevent_request(steps(start => woke => done))]
impl Nap {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let mut to = to.create(Nap);
        to.set_cancel(|_state, ctl| {
            let _ = ctl;
            Cancel::Cancelled
        });
        to.woke(wakeup_send(to.ev(), to.ev().now()))
    }

    fn woke(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = nap_recv(nap_send(&ev));
}
