// The glue behind a successor method, called by hand to wait into a step
// the current one does not lead to (`last` leads only to `done`): the
// transition is checked against the declared graph at compile time.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Two;

#[tevent_request(steps(start => first => last => done))]
impl Two {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Two);
        to.first(wakeup_send(to.ev(), to.ev().now()))
    }

    fn first(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.last(wakeup_send(to.ev(), to.ev().now()))
    }

    fn last(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        let again = wakeup_send(to.ev(), to.ev().now());
        tevent::route::wait(&to.0, again, |_, _: tevent::route::Step<'_, Self, 1>, _, _| todo!(), TwoStep::First)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = two_recv(two_send(&ev));
}
