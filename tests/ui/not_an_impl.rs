// The attribute on something other than an impl block, on a trait impl,
// and on an impl of a type without a name: our error alone, not rustc's
// about the block's steps and `type Output` beside it.
use tevent::{Next, tevent_request};

#[tevent_request(steps(start => [done]))]
struct Echo;

struct Other;

#[tevent_request(steps(start => [done]))]
impl Clone for Other {
    type Output = ();

    fn start(to: _) -> Next<Self> {
        to.create(Other).done(())
    }
}

#[tevent_request(steps(start => [done]))]
impl [u8; 4] {
    type Output = ();
    type Error = ();

    fn start(to: _) -> Next<Self> {
        to.done(())
    }
}

fn main() {
    let _ = Echo;
}
