// A steps list without `start`.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(begin => [read], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn begin(&mut self, to: EchoBeginStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
