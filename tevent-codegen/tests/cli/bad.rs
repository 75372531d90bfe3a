use tevent::{Next, tevent_request};

struct Bad;

#[tevent_request(steps(start => [nowhere]))]
impl Bad {
    fn start(to: BadStartStep<'_>) -> Next<Self> {
        to.create(Bad).done(())
    }
}
