// Mistakes in the values a step declares as carried to it: each is one
// error at the parameter (two of one name is the compiler's to report),
// and the transitions into the step are not reported as well.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [a, b, c], a => done, b => done, c => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Echo);
        to.a(wakeup_send(to.ev(), to.ev().now()), 1)?;
        to.b(wakeup_send(to.ev(), to.ev().now()), 2)?;
        to.c(wakeup_send(to.ev(), to.ev().now()), 3, 4)
    }

    fn a(&mut self, to: _, _: Req<Wakeup>, n: _) -> Next<Self> {
        let _ = n;
        to.done(())
    }

    fn b(&mut self, to: _, _: Req<Wakeup>, n: impl Into<u32>) -> Next<Self> {
        let _ = n.into();
        to.done(())
    }

    fn c(&mut self, to: _, _: Req<Wakeup>, n: u32, n: u64) -> Next<Self> {
        let _ = n;
        to.done(())
    }
}

fn main() {}
