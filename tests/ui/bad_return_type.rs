// A step that returns a hand-written request's `StepResult` instead of
// `Next<Self>`, and an `async` step.
use tevent::{Next, Progress, Req, StepResult, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, done], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn read(&mut self, _to: EchoReadStep<'_>, _: Req<Wakeup>) -> StepResult<Self> {
        Ok(Progress::Done(()))
    }
}

struct Other;

#[tevent_request(steps(start => [done]))]
impl Other {
    type Output = ();
    type Error = std::convert::Infallible;

    async fn start(to: OtherStartStep<'_>) -> Next<Self> {
        to.create(Other).done(())
    }
}

fn main() {}
