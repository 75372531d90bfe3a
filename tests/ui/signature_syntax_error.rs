// A half-typed signature: syn's error at the spot, once; the method is left
// out, and everything else the attribute defines is still there (no error
// on `echo_send`, the handles or `to.woke`).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => woke => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Echo);
        to.woke(wakeup_send(to.ev(), to.ev().now()))
    }

    fn woke(&mut self, to: _, _: Req<Wakeup>,) -> Next<Self {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_recv(echo_send(&ev));
}
