// Step signatures that gave a cascade, an error on the whole attribute, or
// one on the wrong token: no `&mut self` (three errors, one of them "the
// handle is ..." on the input), `Next<u32>` (type errors on the attribute),
// a where-clause (on the attribute), `unsafe` (on `fn`), `extern "C"`
// (accepted, with FFI warnings on generated types), `impl Trait` as the
// input ("`impl Trait` is not allowed in bounds"), and the handle after the
// input.
use tevent::{Next, Req, Wakeup, tevent_request};

struct Echo;

#[tevent_request(steps(
    start => [a, b, c, d, e, f],
    a => [done],
    b => [done],
    c => [done],
    d => [done],
    e => [done],
    f => [done],
))]
impl Echo {
    type Output = ();
    type Error = std::convert::Infallible;

    fn start(to: EchoStartStep<'_>) -> Next<u32> {
        to.create(Echo).pending()
    }

    fn a(to: EchoAStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    fn b(&mut self, to: EchoBStep<'_>, _: Req<Wakeup>) -> Next<Self>
    where
        Self: Sized,
    {
        to.done(())
    }

    unsafe fn c(&mut self, to: EchoCStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    extern "C" fn d(&mut self, to: EchoDStep<'_>, _: Req<Wakeup>) -> Next<Self> {
        to.done(())
    }

    fn e(&mut self, to: EchoEStep<'_>, _: impl std::fmt::Debug) -> Next<Self> {
        to.done(())
    }

    fn f(&mut self, _: Req<Wakeup>, to: EchoFStep<'_>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
