// A step that goes where its declaration does not allow: to a step it does
// not list, and to `done`, which it does not list either.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [read], read => [write], write => [read, done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        let to = to.create(Echo);
        to.read(wakeup_send(to.ev(), to.ev().now()))
    }

    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        if true {
            return to.done(());
        }
        to.read(wakeup_send(to.ev(), to.ev().now()))
    }

    fn write(&mut self, to: EchoWriteStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
