// A step takes a subrequest's output, so the subrequest's failure would end
// the request with its error converted by `From`, and the request's error
// has no such `From`: one error saying to add it or take the whole result.
use std::io;
use std::net::SocketAddr;
use tevent::io::connect_send;
use tevent::{Next, tevent_request};

#[derive(Debug)]
struct MyError;

struct Dial;

#[tevent_request(steps(start => connected => done))]
impl Dial {
    type Output = ();
    type Error = MyError;

    fn start(to: _, addr: SocketAddr) -> Next<Self> {
        let to = to.create(Dial);
        to.connected(connect_send(to.ev(), addr))
    }

    fn connected(&mut self, to: _, _: std::net::TcpStream) -> Next<Self> {
        let _ = io::ErrorKind::Other;
        to.done(())
    }
}

fn main() {}
