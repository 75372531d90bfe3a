// Two methods for one step, neither with a `#[cfg]`: one error, at the
// second (rustc's own E0592 for the duplicate name is not added).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [read], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Echo);
        to.read(wakeup_send(to.ev(), to.ev().now()))
    }

    fn read(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    fn read(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
