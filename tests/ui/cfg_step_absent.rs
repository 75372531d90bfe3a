// A step whose only method is `#[cfg]`-gated off in this build: the glue
// named it anyway ("no function or associated item named `read`").
use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

struct Echo;

#[tevent_request(steps(start => [read], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        let wake = wakeup_send(to.ev(), to.ev().now());
        to.create(Echo).read(wake)
    }

    #[cfg(any())]
    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = echo_send(&ev);
}
