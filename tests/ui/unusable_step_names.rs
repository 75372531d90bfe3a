// Step names the generated code cannot use: `ev` and `pending` (every
// handle has those methods already: a successor method `ev` hid `to.ev()`,
// so the step's own `to.ev()` failed with "this method takes 1 argument"),
// and `self` (a keyword with no raw form: the message said to write
// `r#self`, which is not Rust, and then "add `fn self(...)`").
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [ev, pending, self], ev => [done], pending => [done], self => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        let _ = to.ev();
        to.create(Echo).pending()
    }

    fn ev(&mut self, to: EchoEvStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        let _ = to.ev().now();
        to.done(())
    }

    fn pending(&mut self, to: EchoPendingStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.pending()
    }
}

fn main() {}
