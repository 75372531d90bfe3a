// A step declared twice.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read], read => [done], read => [start]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
