// Builds and runs: `to: _` handles and a chained steps list. Being a `pass`
// case, it also makes trybuild build (not only check) every case, so the
// graph checks that run when code is generated are exercised by the
// compile-fail cases too (`sealed_glue_*`).
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Two {
    steps: u32,
}

#[tevent_request(steps(start => first => last => done))]
impl Two {
    type Output = u32;
    type Error = std::convert::Infallible;

    fn start(to: _, steps: u32) -> Next<Self> {
        let to = to.create(Two { steps });
        to.first(wakeup_send(to.ev(), to.ev().now()), 10)
    }

    fn first(&mut self, to: _, _: Req<Wakeup>, carried: u32) -> Next<Self> {
        self.steps += carried;
        to.last(wakeup_send(to.ev(), to.ev().now()))
    }

    fn last(&mut self, to: _, _: Req<Wakeup>) -> Next<Self> {
        to.done(self.steps + 1)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    assert_eq!(two_send(&ev, 1).poll_recv(&ev).unwrap(), Ok(12));
}
