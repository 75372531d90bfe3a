/// Reads one line from any readable fd.
#[tevent_request(steps(start => [line], line => [done]))]
impl<S> ReadLine<S>
where
    S: AsFd + 'static,
{
    type Output = String;
    type Error = std::io::Error;

    pub(crate) fn start(to: ReadLineStartStep<'_, S>, fd: Rc<S>, max: usize) -> Next<Self> {
        let read = read_until_send(to.ev(), &fd, b'\n', max);
        to.create(ReadLine { fd }).line(read)
    }

    fn line(&mut self, to: ReadLineLineStep<'_, S>, bytes: Vec<u8>) -> Next<Self> {
        to.done(String::from_utf8_lossy(&bytes).into_owned())
    }
}
