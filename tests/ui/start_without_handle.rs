// `start` whose first parameter is not its handle: one error at it; the
// caller, which passes the arguments, gets none of its own.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done]))]
impl Echo {
    type Output = u8;
    type Error = std::convert::Infallible;

    fn start(n: u8) -> Next<Self> {
        let _ = n;
        todo!()
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_send(&ev, 1);
}
