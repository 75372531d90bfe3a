// A step takes another type than its subrequest gives: one error at the
// subrequest, saying what the step takes (not a type-mismatch of an
// associated type with a long "required by this bound" span).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Nap;

#[tevent_request(steps(start => woke => done))]
impl Nap {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Nap);
        to.woke(wakeup_send(to.ev(), to.ev().now()))
    }

    fn woke(&mut self, to: _, _: String) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
