use tevent::{Next, Req, Wakeup, tevent_request, wakeup_send};

/// Finishes at once.
struct Quick;

#[tevent_request(steps(start => [done]))]
impl Quick {
    type Output = u8;
    type Error = std::convert::Infallible;

    fn start(to: QuickStartStep<'_>) -> Next<Self> {
        to.create(Quick).done(1)
    }
}

mod inner {
    use super::*;

    pub(crate) struct Nap;

    #[tevent_request(steps(start => [woke], woke => [done]))]
    impl Nap {
        type Output = ();
        type Error = std::convert::Infallible;

        pub(crate) fn start(to: NapStartStep<'_>) -> Next<Self> {
            let w = wakeup_send(to.ev(), to.ev().now());
            to.create(Nap).woke(w)
        }

        fn woke(&mut self, to: NapWokeStep<'_>, _: Req<Wakeup>) -> Next<Self> {
            to.done(())
        }
    }
}
