// A request declared `forever` whose step lists `done`.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Server;

#[tevent_request(steps(start => [accepted], accepted => [accepted, done]), forever)]
impl Server {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: ServerStartStep<'_>) -> Next<Self> {
        to.create(Server).pending()
    }

    fn accepted(&mut self, to: ServerAcceptedStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.pending()
    }
}

fn main() {}
