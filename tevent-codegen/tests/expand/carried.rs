/// Connects, writes, reads: the socket is carried from `connected` on, the
/// line only until it is written; `to: _` handles and a chained list.
#[tevent_request(steps(start => connected => written => replied => done))]
impl Attempt {
    type Output = Vec<u8>;
    type Error = std::io::Error;

    fn start(to: _, addr: SocketAddr, line: String) -> Next<Self> {
        let to = to.create(Attempt);
        to.connected(connect_send(to.ev(), addr), line)
    }

    fn connected(&mut self, to: _, sock: TcpStream, line: String) -> Next<Self> {
        let sock = Rc::new(sock);
        to.written(write_all_send(to.ev(), &sock, line), sock)
    }

    fn written(&mut self, to: _, _line: String, sock: Rc<TcpStream>) -> Next<Self> {
        to.replied(read_until_send(to.ev(), &sock, b'\n', 4096))
    }

    fn replied(&mut self, to: _, reply: Vec<u8>) -> Next<Self> {
        to.done(reply)
    }
}
