// `steps()` with nothing in it (it gave "method `start` takes the handle
// `EchoStartStep`, but `start` is not in the steps list"), and `steps`
// without its parentheses (an "unexpected end of input" on the whole
// attribute).
use tevent::{Next, tevent_request};

struct Empty;

#[tevent_request(steps())]
impl Empty {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EmptyStartStep<'_>) -> Next<Self> {
        to.create(Empty).done(())
    }
}

struct Bare;

#[tevent_request(steps)]
impl Bare {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: BareStartStep<'_>) -> Next<Self> {
        to.create(Bare).done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = (empty_send(&ev), bare_send(&ev));
}
