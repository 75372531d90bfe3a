//! The flagship example: tevent's echo server, on requests.
//!
//! ```text
//! cargo run --release --example echo_server -- 7777
//! ```
//!
//! `echo_server <port>` listens on 0.0.0.0:<port> and echoes every client,
//! 100 bytes at a time, printing `new client fd N`, `Closing client fd N` and
//! `Client done` / `Client failed: <reason>` lines, exactly as tevent's
//! `echo_server.c` does (see `docs/echo-server.md` for the full behaviour and
//! the deliberate differences). It runs until killed.
//!
//! Extra options, not in the C program:
//! - `--bind <ipv4> <port>` listens on that address instead (tests use
//!   127.0.0.1);
//! - `--peer-harness [--bufsize N]` listens on 127.0.0.1 on an ephemeral port
//!   with the peers' backlog (1024, so a burst of clients does not overflow
//!   the accept queue), prints `LISTEN 127.0.0.1:<port> PID=<pid>` and echoes
//!   with `TCP_NODELAY` and an N-byte buffer (default 16384): the mode the
//!   benchmark harness in `../shared/bench/peers` expects.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::rc::Rc;

use examples::echo::{
    HARNESS_BACKLOG, Options, Out, TUTORIAL_BACKLOG, atoi, echo_server_send, listen_on, strerror,
};
use tevent::Context;

/// What the command line asks for.
struct Plan {
    ip: Ipv4Addr,
    port: i32,
    opts: Options,
    harness: bool,
}

fn parse(args: &[String]) -> Option<Plan> {
    let mut plan = Plan {
        ip: Ipv4Addr::UNSPECIFIED,
        port: 0,
        opts: Options::default(),
        harness: false,
    };
    match args {
        [port] if !port.starts_with("--") => plan.port = atoi(port),
        [flag, ip, port] if flag == "--bind" => {
            plan.ip = ip.parse().ok()?;
            plan.port = atoi(port);
        }
        [flag, rest @ ..] if flag == "--peer-harness" => {
            plan.ip = Ipv4Addr::LOCALHOST;
            plan.harness = true;
            plan.opts = Options {
                bufsize: 16384,
                nodelay: true,
            };
            match rest {
                [] => {}
                [b, n] if b == "--bufsize" => {
                    plan.opts.bufsize = n.parse().ok().filter(|n| *n > 0)?;
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    Some(plan)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let argv0 = argv.first().map_or("echo_server", String::as_str);
    let Some(plan) = parse(&argv[1..]) else {
        eprintln!("Usage: {argv0} <port>");
        return ExitCode::FAILURE;
    };
    if !plan.harness {
        println!("listening on port {}", plan.port);
    }
    // As htons() in the C program: the port wraps modulo 65536.
    let backlog = if plan.harness {
        HARNESS_BACKLOG
    } else {
        TUTORIAL_BACKLOG
    };
    let listener = match listen_on(plan.ip, plan.port as u16, backlog) {
        Ok(l) => l,
        Err((what, e)) => {
            eprintln!("{what} failed: {}", strerror(&e));
            return ExitCode::FAILURE;
        }
    };
    if plan.harness {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        println!("LISTEN 127.0.0.1:{port} PID={}", std::process::id());
    }
    let Ok(ev) = Context::new() else {
        eprintln!("tevent_context_init failed");
        return ExitCode::FAILURE;
    };
    let out: Out = Rc::new(RefCell::new(std::io::stdout()));
    let server = echo_server_send(&ev, listener, plan.opts, &out);
    if let Err(e) = server.poll(&ev) {
        eprintln!("tevent_req_poll() failed: {e}");
        return ExitCode::FAILURE;
    }
    match server.recv() {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("echo_server failed: {}", strerror(&e.into_io()));
            ExitCode::FAILURE
        }
    }
}
