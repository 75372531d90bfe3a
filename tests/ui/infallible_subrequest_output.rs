// A step that takes a subrequest's output, for a subrequest whose error
// type (`Infallible`) the request's error (`io::Error`) cannot be made
// `From`: the step must take the whole result instead.
use tevent::{Next, QueueGuard, tevent_request};

struct Locked;

#[tevent_request(steps(start => [locked], locked => [done]))]
impl Locked {
    type Output = ();
    type Error = std::io::Error;

    fn start(to: LockedStartStep<'_>, q: &tevent::Queue) -> Next<Self> {
        let wait = tevent::queue_wait_send(to.ev(), q);
        to.create(Locked).locked(wait)
    }

    fn locked(&mut self, to: LockedLockedStep<'_>, _guard: QueueGuard) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
