//! A small line-based server on `tevent::io`: every line a client sends comes
//! back upper-cased; `QUIT` ends the connection (see `examples/line.rs` for
//! the protocol and the requests).
//!
//! ```text
//! cargo run --example line_server -- 7878            # 127.0.0.1:7878
//! cargo run --example line_server -- 0.0.0.0:7878    # any address
//! printf 'hello\nQUIT\n' | nc localhost 7878          # HELLO, BYE
//! ```
//!
//! It prints `LISTEN <address>` once listening (port 0 picks a free port),
//! then runs until killed. Bad arguments print the usage on stderr and exit
//! with status 2.

use std::process::ExitCode;

use examples::line::{line_server_send, listen, parse_args};
use tevent::Context;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match parse_args(&args) {
        Ok(addr) => addr,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let listener = match listen(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("line_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("LISTEN {a}"),
        Err(e) => {
            eprintln!("line_server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let ev = match Context::new() {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("line_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = line_server_send(&ev, listener);
    if let Err(e) = server.poll(&ev) {
        eprintln!("line_server: event loop failed: {e}");
        return ExitCode::FAILURE;
    }
    match server.recv() {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("line_server: accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
