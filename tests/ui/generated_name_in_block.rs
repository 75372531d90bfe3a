// Items of the block named like what the attribute generates on the type
// (`STEPS`, `GRAPH_DOT`, `GRAPH_MERMAID`): "duplicate definitions" on the
// whole attribute.
use tevent::{Next, tevent_request};

struct Echo;

#[tevent_request(steps(start => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    const STEPS: usize = 1;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    fn GRAPH_DOT() {}
}

fn main() {
    let _ = (Echo::STEPS, Echo::GRAPH_MERMAID);
}
