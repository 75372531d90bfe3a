// A declared step with no method.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, done], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }
}

fn main() {}
