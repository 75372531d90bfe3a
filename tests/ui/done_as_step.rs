// `done` declared as a step: it is where a request finishes.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done], done => [start]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        to.create(Echo).done(())
    }
}

fn main() {}
