// Steps whose parameters do not fit: the wrong handle type, and no input.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, done], read => [write, done], write => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn read(&mut self, to: EchoWriteStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    fn write(&mut self, to: EchoWriteStep<'_>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
