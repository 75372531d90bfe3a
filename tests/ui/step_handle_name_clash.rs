// Two steps whose handle types would have one name: `client_done` and
// `clientDone` (both `EchoClientDoneStep`), and `Start` beside `start`
// (both `EchoStartStep`). They gave "the name ... is defined multiple times"
// and conflicting-impl errors on the whole attribute.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(
    start => [client_done, clientDone],
    client_done => [done],
    clientDone => [done],
))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).pending()
    }

    fn client_done(&mut self, to: EchoClientDoneStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    #[allow(non_snake_case)]
    fn clientDone(&mut self, to: EchoClientDoneStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

struct Twice;

#[tevent_request(steps(start => [Start], Start => [done]))]
impl Twice {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: TwiceStartStep<'_>) -> Next<Self> {
        to.create(Twice).pending()
    }

    #[allow(non_snake_case)]
    fn Start(&mut self, to: TwiceStartStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    let _ = (echo_send(&ev), twice_send(&ev));
}
