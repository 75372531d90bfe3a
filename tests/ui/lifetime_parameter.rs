// A state type with a lifetime parameter: a request is `'static`, and this
// gave a dozen lifetime errors on the attribute (E0478, E0803, E0477).
use tevent::{Next, tevent_request};

struct Echo<'a> {
    text: &'a str,
}

#[tevent_request(steps(start => [done]))]
impl<'a> Echo<'a> {
    type Output = usize;
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_, 'a>, text: &'a str) -> Next<Self> {
        let len = text.len();
        to.create(Echo { text }).done(len)
    }
}

fn main() {
    let ev = tevent::Context::new().unwrap();
    // A borrow of a local: no error of its own (E0597) beside the block's.
    let local = String::from("x");
    let _ = echo_send(&ev, &local);
}
