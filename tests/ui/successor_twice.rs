// A successor listed twice in one step's list.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [read, read], read => [done]))]
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
}

fn main() {}
