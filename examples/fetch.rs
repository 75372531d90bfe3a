//! A fetcher: asks each of several line servers one question, all at once,
//! and prints one line per server with its answer or why there is none.
//!
//! Each server gets a `Fetch`: an `Attempt` (connect, write the request
//! line, read one reply line, within a per-attempt timeout), and on failure
//! another, up to `--retries` more. The requests are written with
//! `#[tevent_request]`, and their data lives where it is needed: the socket
//! only from `connected` on, the request line only until it is written, the
//! attempts left only while retrying (values carried by the transitions,
//! not fields that every step must keep valid). Chapter 5 sets this program
//! beside the same one written with `async`/`await` on tokio.
//!
//! ```text
//! cargo run --example line_server -- 7878 &
//! cargo run --example fetch -- --timeout 0.5 --retries 1 127.0.0.1:7878 127.0.0.1:1
//! 127.0.0.1:7878 ok HELLO
//! 127.0.0.1:1 failed: Connection refused (os error 111)
//! ```
//!
//! Exit status 0 if every server answered, 1 if any did not, 2 for a bad
//! command line.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use tevent::io::{connect_send, read_until_send, write_all_send};
use tevent::{Context, Next, ReqError, join_all_send, tevent_request};

/// Longest reply line read, in bytes.
const MAX_LINE: usize = 4096;

/// One attempt at a [`Fetch`]: connect, write the line, read one reply line.
pub struct Attempt;

#[tevent_request(steps(start => connected => written => replied => done))]
impl Attempt {
    type Output = String;
    type Error = io::Error;

    fn start(to: _, of: &Fetch) -> Next<Self> {
        let to = to.create(Attempt);
        to.set_timeout(of.timeout)?;
        to.connected(connect_send(to.ev(), of.addr), of.line.clone())
    }

    fn connected(&mut self, to: _, sock: TcpStream, line: String) -> Next<Self> {
        let sock = Rc::new(sock);
        to.written(write_all_send(to.ev(), &sock, line + "\n"), sock)
    }

    fn written(&mut self, to: _, _line: String, sock: Rc<TcpStream>) -> Next<Self> {
        to.replied(read_until_send(to.ev(), &sock, b'\n', MAX_LINE))
    }

    fn replied(&mut self, to: _, reply: Vec<u8>) -> Next<Self> {
        if reply.last() != Some(&b'\n') {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        to.done(String::from_utf8_lossy(&reply).trim_end().to_string())
    }
}

/// What to fetch: one line asked of one server, each attempt within
/// `timeout`; as a request, attempts until one answers or `retries` more
/// have failed.
pub struct Fetch {
    /// The server.
    pub addr: SocketAddr,
    /// The request line, without its newline.
    pub line: String,
    /// The time one attempt may take (connect, write, read the reply).
    pub timeout: Duration,
}

#[tevent_request(steps(start => tried, tried => [tried, done]))]
impl Fetch {
    type Output = String;
    type Error = io::Error;

    /// Starts the first attempt; up to `retries` more follow failures.
    pub fn start(to: _, fetch: Fetch, retries: u32) -> Next<Self> {
        let first = attempt_send(to.ev(), &fetch);
        to.create(fetch).tried(first, retries)
    }

    fn tried(&mut self, to: _, got: Result<String, ReqError<io::Error>>, left: u32) -> Next<Self> {
        match got {
            Err(_) if left > 0 => to.tried(attempt_send(to.ev(), self), left - 1),
            got => to.done(got?),
        }
    }
}

/// Asks each server (`ADDR...`) one line and prints its answer.
#[derive(Parser)]
#[command(name = "fetch", about)]
struct Args {
    /// Time for one attempt (connect, write, read the reply), in seconds.
    #[arg(long, default_value = "1", value_parser = examples::cli::parse_secs)]
    timeout: Duration,
    /// Attempts after a failed one, per server.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// The request line sent to every server.
    #[arg(long, default_value = "hello")]
    line: String,
    /// The servers, as `host:port` addresses.
    #[arg(required = true, value_name = "ADDR")]
    servers: Vec<SocketAddr>,
}

fn main() -> ExitCode {
    let args: Args = examples::cli::parse();
    let ev = match Context::new() {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("fetch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fetches = args
        .servers
        .iter()
        .map(|&addr| {
            let line = args.line.clone();
            fetch_send(
                &ev,
                Fetch {
                    addr,
                    line,
                    timeout: args.timeout,
                },
                args.retries,
            )
        })
        .collect();
    let outcomes = match join_all_send(&ev, fetches).poll_recv(&ev) {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err(e)) => {
            eprintln!("fetch: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("fetch: event loop failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut out = String::new();
    for (addr, outcome) in args.servers.iter().zip(outcomes) {
        match outcome {
            Ok(reply) => out.push_str(&format!("{addr} ok {reply}\n")),
            Err(e) => {
                failed = true;
                out.push_str(&format!("{addr} failed: {e}\n"));
            }
        }
    }
    // One write; a closed stdout is no reason to fail differently.
    let _ = io::Write::write_all(&mut io::stdout(), out.as_bytes());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
