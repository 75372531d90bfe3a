/// Echoes one client: read, write back, again, until end of file.
#[tevent_request(steps(start => [read], read => [write, done], write => [read]))]
impl Echo {
    type Output = ();
    type Error = std::io::Error;

    fn start(to: EchoStartStep<'_>, sock: Rc<TcpStream>, bufsize: usize) -> Next<Self> {
        let read = read_some_send(to.ev(), &sock, vec![0; bufsize]);
        to.create(Echo { sock, bufsize }).read(read)
    }

    fn read(&mut self, to: EchoReadStep<'_>, data: Vec<u8>) -> Next<Self> {
        if data.is_empty() {
            return to.done(());
        }
        to.write(write_all_send(to.ev(), &self.sock, data))
    }

    fn write(&mut self, to: EchoWriteStep<'_>, res: Result<Vec<u8>, ReqError<std::io::Error>>) -> Next<Self> {
        let mut buf = res?;
        buf.resize(self.bufsize, 0);
        to.read(read_some_send(to.ev(), &self.sock, buf))
    }
}
