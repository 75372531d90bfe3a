// What a step handle dereferences to, `StepCtl`, neither finishes a request
// nor starts a wait, and its request control is not reachable.
use tevent::{Next, Req, StepCtl, Wakeup, tevent_request, wakeup_send};

struct Nap;

#[tevent_request(steps(start => woke => done))]
impl Nap {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(Nap);
        to.woke(wakeup_send(to.ev(), to.ev().now()))
    }

    fn woke(&mut self, to: _, w: Req<Wakeup>) -> Next<Self> {
        let ctl: &StepCtl<'_, Self> = &to;
        let _ = &ctl.ctl;
        ctl.wait(w)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = nap_recv(nap_send(&ev));
}
