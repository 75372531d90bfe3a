// A step that takes `&self` (it must take `&mut self`), and a start that
// takes `self`.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, done], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(&mut self, to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn read(&self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
