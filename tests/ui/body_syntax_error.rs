// A syntax error inside a step's body is rustc's to report, once: the
// attribute reads only signatures, so it still emits everything it
// generates (no errors on `type Output`, `Request` or the generated names).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => woke => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let s = 1;
        let _x = s.;
        let to = to.create(Echo);
        to.woke(wakeup_send(to.ev(), to.ev().now()))
    }

    fn woke(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_recv(echo_send(&ev));
}
