// A step calls a successor its declaration does not list: one error at the
// call, saying the step does not lead there and how to fix it.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Two;

#[tevent_request(steps(start => first => last => done))]
impl Two {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Two);
        to.first(wakeup_send(to.ev(), to.ev().now()))
    }

    fn first(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.first(wakeup_send(to.ev(), to.ev().now()))
    }

    fn last(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = two_recv(two_send(&ev));
}
