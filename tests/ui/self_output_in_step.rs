// `Self::Output` in a step's input: ambiguous in an inherent impl (rustc
// says so on the user's token), and the glue, which copied it as
// `<Echo>::Output`, said it a second time on the whole attribute.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [again], again => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).pending()
    }

    fn again(&mut self, to: EchoAgainStep<'_>, out: Self::Output) -> Next<Self> {
        to.done(out)
    }
}

fn main() {}
