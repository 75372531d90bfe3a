/// Adds the results of two nested generated requests.
#[tevent_request(steps(start => [left], left => [right], right => [done]))]
impl Sum {
    type Output = u64;
    type Error = std::convert::Infallible;

    fn start(to: SumStartStep<'_>, a: u64, b: u64) -> Next<Self> {
        let left = double_send(to.ev(), a);
        to.create(Sum { b, total: 0 }).left(left)
    }

    fn left(&mut self, to: SumLeftStep<'_>, v: <Double as Request>::Output) -> Next<Self> {
        self.total = v;
        to.right(double_send(to.ev(), self.b))
    }

    fn right(&mut self, to: SumRightStep<'_>, v: u64) -> Next<Self> {
        to.done(self.total + v)
    }
}
