// `start` waits before handing over its state: the handle of `start` has
// its successors only after `to.create(state)`, and says so (not "no method
// named `woke`", nor a suggestion to implement a hidden trait).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Nap;

#[tevent_request(steps(start => woke => done))]
impl Nap {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
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
