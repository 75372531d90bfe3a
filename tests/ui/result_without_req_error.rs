// A step meant to take its subrequest's whole result writes the error type
// bare (`Result<T, io::Error>`) instead of `Result<T, ReqError<io::Error>>`:
// one error at the subrequest, saying the form.
use std::io;
use std::net::SocketAddr;
use tevent::io::connect_send;
use tevent::{Next, tevent_request};

struct Dial;

#[tevent_request(steps(start => connected => done))]
impl Dial {
    type Output = ();
    type Error = io::Error;

    fn start(to: _, addr: SocketAddr) -> Next<Self> {
        let to = to.create(Dial);
        to.connected(connect_send(to.ev(), addr))
    }

    fn connected(&mut self, to: _, _: Result<std::net::TcpStream, io::Error>) -> Next<Self> {
        to.done(())
    }
}

fn main() {}
