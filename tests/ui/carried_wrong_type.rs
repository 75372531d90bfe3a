// A transition passes a value of another type than the step it leads to
// declares: the compiler's type mismatch, at the value.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => woke => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Echo);
        to.woke(wakeup_send(to.ev(), to.ev().now()), "seven")
    }

    fn woke(&mut self, to: _, _: Req<Wakeup>, n: u32) -> Next<Self> {
        let _ = n;
        to.done(())
    }
}

fn main() {}
