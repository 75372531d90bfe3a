// Steps that can never finish the request (and the request is not declared
// `forever`).
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, done], read => [write], write => [read]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn read(&mut self, to: EchoReadStep<'_>, w: Req<Wakeup>) -> Next<Self> {
        to.write(w)
    }

    fn write(&mut self, to: EchoWriteStep<'_>, w: Req<Wakeup>) -> Next<Self> {
        to.read(w)
    }
}

fn main() {}
