// `crate = path`: without the path, and with a path that names no crate
// (one error at the path, not one per generated item that uses it).
use tevent::{Next, tevent_request};

struct A;

#[tevent_request(crate, steps(start => done))]
impl A {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        to.create(A).done(())
    }
}

struct B;

#[tevent_request(crate = no_such_crate, steps(start => read => done))]
impl B {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        let to = to.create(B);
        to.read(tevent::wakeup_send(to.ev(), to.ev().now()))
    }

    fn read(&mut self, to: _, _w: tevent::Req<tevent::Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = (a_send(&ev), b_send(&ev));
}
