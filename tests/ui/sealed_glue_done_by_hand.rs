// The glue behind `to.done(..)`, called by hand with the handle's inner
// runtime handle (a field the expansion's module can reach): it is checked
// against the declared graph at compile time, so a step that does not
// declare `done` still cannot finish the request.
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
        tevent::route::done(&to.0, 9)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = tick_recv(tick_send(&ev));
}
