// Errors come out in source order, not in the order the checks run: the
// steps list's error (found by the graph checks, which run last) comes
// before the block's, and a second `type Error` (found while reading the
// block, first) comes last.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Loop;

#[tevent_request(steps(start => [spin], spin => [spin]))]
impl Loop {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Loop);
        to.spin(wakeup_send(to.ev(), to.ev().now()))
    }

    fn spin(&mut self, to: _, _w: Req<Wakeup>) -> Next<Self> {
        to.spin(wakeup_send(to.ev(), to.ev().now()))
    }

    fn extra(&mut self, to: LoopExtraStep<'_>, _w: Req<Wakeup>) -> Next<Self> {
        to.spin(wakeup_send(to.ev(), to.ev().now()))
    }

    type Error = ();
}

fn main() {}
