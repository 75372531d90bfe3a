/// Accepts clients and echoes each until the server is dropped.
#[tevent_request(steps(start => [accepted], accepted => [accepted, client_done], client_done => []), forever)]
impl Server {
    type Output = std::convert::Infallible;
    type Error = std::io::Error;

    fn start(to: ServerStartStep<'_>, listener: TcpListener) -> Next<Self> {
        let listener = Rc::new(listener);
        let accept = accept_send(to.ev(), &listener);
        to.create(Server { listener }).accepted(accept)
    }

    fn accepted(&mut self, to: ServerAcceptedStep<'_>, sock: TcpStream) -> Next<Self> {
        to.client_done(echo_send(to.ev(), Rc::new(sock), 100))?;
        to.accepted(accept_send(to.ev(), &self.listener))
    }

    fn client_done(&mut self, to: ServerClientDoneStep<'_>, _: Result<(), ReqError<std::io::Error>>) -> Next<Self> {
        to.pending()
    }
}
