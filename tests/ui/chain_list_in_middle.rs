// A chain of single successors (`a => b => c`) ends at a bracketed list; a
// list in the middle is reported where the chain goes on.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read, write] => done))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: _) -> Next<Self> {
        to.create(Echo).done(())
    }
}

fn main() {}
