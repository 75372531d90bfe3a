// Attributes that do not parse: a missing `=>`, an unknown argument, and
// no steps list at all.
use tevent::{Next, tevent_request};

struct A;

#[tevent_request(steps(start [done]))]
impl A {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: AStartStep<'_>) -> Next<Self> {
        to.create(A).done(())
    }
}

struct B;

#[tevent_request(steps(start => [done]), forevr)]
impl B {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: BStartStep<'_>) -> Next<Self> {
        to.create(B).done(())
    }
}

struct C;

#[tevent_request]
impl C {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: CStartStep<'_>) -> Next<Self> {
        to.create(C).done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = (a_send(&ev), b_send(&ev), c_send(&ev));
}
