/// Finishes at once with its argument doubled.
#[tevent_request(steps(start => [done]))]
impl Double {
    type Output = u64;
    type Error = std::convert::Infallible;

    pub fn start(to: DoubleStartStep<'_>, x: u64) -> Next<Self> {
        to.create(Double).done(x * 2)
    }
}
