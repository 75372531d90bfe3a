/// Asks three servers at once; done when all answered.
#[tevent_request(steps(start => [answer], answer => [done]))]
impl Three {
    type Output = Vec<u32>;
    type Error = std::io::Error;

    fn start(to: ThreeStartStep<'_>, servers: [SocketAddr; 3]) -> Next<Self> {
        let to = to.create(Three { answers: Vec::new() });
        for s in servers {
            to.answer(query_send(to.ev(), s))?;
        }
        to.pending()
    }

    fn answer(&mut self, to: ThreeAnswerStep<'_>, v: u32) -> Next<Self> {
        self.answers.push(v);
        if self.answers.len() == 3 {
            to.done(std::mem::take(&mut self.answers))
        } else {
            to.pending()
        }
    }
}
