// `start` listed as a successor: it runs once, first, and builds the state,
// so no step can lead back to it. (It was accepted: the graph showed an edge
// no code could take, and `to.start(..)` was "no method named `start`".)
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [read], read => [start, done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        let wake = wakeup_send(to.ev(), to.ev().now());
        to.create(Echo).read(wake)
    }

    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_recv(echo_send(&ev));
}
