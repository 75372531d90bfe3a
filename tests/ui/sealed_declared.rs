// The routes a step does not declare exist only to say so: their bound
// cannot be met from outside tevent, so implementing it to reach one (which
// would run no step, but compile) is refused.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Anything;

impl tevent::route::Declared<tevent::route::Done> for Anything {}

struct Tick;

#[tevent_request(steps(start => tick, tick => tick), forever)]
impl Tick {
    type Output = u32;
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Tick);
        to.tick(wakeup_send(to.ev(), to.ev().now()))
    }

    fn tick(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(Anything)
    }
}

fn main() {}
