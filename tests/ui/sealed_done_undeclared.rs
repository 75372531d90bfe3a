// `to.done(..)` from a step whose declaration does not list `done`: the
// handle's `done` exists only to say so.
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

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
        to.done(9)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = tick_recv(tick_send(&ev));
}
