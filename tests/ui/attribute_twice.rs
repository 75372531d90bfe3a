// The attribute twice on one block: the second ran on what the first
// emitted (missing `type Output`, and a dozen "defined multiple times").
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done]))]
#[tevent_request(steps(start => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_send(&ev);
}
