// A value carried to a step lives in the request until that step runs, so
// it cannot borrow: one error at the borrowed type (not "missing lifetime
// specifier" on the generated step enum).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => woke => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Echo);
        to.woke(wakeup_send(to.ev(), to.ev().now()), "hello")
    }

    fn woke(&mut self, to: _, _: Req<Wakeup>, greeting: &str) -> Next<Self> {
        let _ = greeting;
        to.done(())
    }
}

fn main() {}
