// `start` with a `self`: one error, at the `self`; the handle after it is
// not also reported as an argument, and the caller, which passes the
// arguments after the handle, gets no error (E0061) of its own.
use tevent::{Next, tevent_request};

struct Two;

#[tevent_request(steps(start => [done]))]
impl Two {
    type Output = u8;
    type Error = std::convert::Infallible;

    fn start(&mut self, to: _, n: u8) -> Next<Self> {
        to.create(Two).done(n)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = two_send(&ev, 1);
}
