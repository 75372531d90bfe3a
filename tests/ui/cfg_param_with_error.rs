// A `#[cfg]` on a `start` parameter that is off, in a request with an
// error elsewhere: the stub's send function leaves the parameter out as
// the real one does, so the caller gets no error (E0061) of its own.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [dnoe]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _, n: u8, #[cfg(any())] label: &str) -> Next<Self> {
        let _ = n;
        to.create(Echo).done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_send(&ev, 1);
}
