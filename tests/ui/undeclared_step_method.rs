// A method that takes a step handle for a step that is not in the list,
// and `#[cfg]` alternatives of a step that disagree.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(start => [read], read => [done]))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<Self> {
        to.create(Echo).done(())
    }

    #[cfg(unix)]
    fn read(&mut self, to: EchoReadStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    #[cfg(not(unix))]
    fn read(&mut self, to: EchoReadStep<'_>, _: u32) -> Next<Self> {
        to.done(())
    }

    fn write(&mut self, to: EchoWriteStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
