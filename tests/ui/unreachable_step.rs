// A step that no path from `start` leads to.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done], orphan => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn orphan(&mut self, to: EchoOrphanStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
