// No `type Output` and no `type Error`.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done]))]
impl Echo {
    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_recv(echo_send(&ev));
}
