//! The fetcher example (`examples/fetch.rs`), run as a program against real
//! local servers: one that answers, one that never answers (its attempts
//! time out), one that refuses connections, and one that fails the first
//! attempt of each client (it closes the connection without a reply) and
//! answers the next. No outcome depends on timing: the slow server holds
//! its connections open without ever replying.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tests::echo_proc::run;

/// What a test server does with a connection.
#[derive(Clone, Copy)]
enum Kind {
    /// Replies to the request line with it upper-cased.
    Good,
    /// Reads the request line and never replies.
    Slow,
    /// Closes its first connection without a reply; replies to the others.
    FlakyFirst,
}

/// Starts a server of `kind` on a free port; it serves until the process
/// ends.
fn server(kind: Kind) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicU32::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(kind, n, conn));
        }
    });
    addr
}

fn serve(kind: Kind, n: u32, conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    match kind {
        Kind::FlakyFirst if n == 0 => drop(conn),
        Kind::Good | Kind::FlakyFirst => {
            let mut conn = conn;
            let _ = conn.write_all(line.to_uppercase().as_bytes());
        }
        Kind::Slow => {
            // Holds the connection: the client's timeout ends the attempt.
            let mut rest = String::new();
            let _ = reader.read_line(&mut rest);
        }
    }
}

/// An address where nothing listens (a port just freed).
fn refusing() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[test]
fn each_server_gets_its_own_outcome_and_a_failure_exits_1() {
    let good = server(Kind::Good);
    let slow = server(Kind::Slow);
    let refused = refusing();
    let flaky = server(Kind::FlakyFirst);
    let args: Vec<String> = ["--timeout", "0.3", "--retries", "1", "--line", "ping"]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [good, slow, refused, flaky]
                .iter()
                .map(SocketAddr::to_string),
        )
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, out, err) = run("fetch", &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "one line per server: {out}{err}");
    assert_eq!(lines[0], format!("{good} ok PING"));
    assert_eq!(lines[1], format!("{slow} failed: request timed out"));
    assert!(
        lines[2].starts_with(&format!("{refused} failed: Connection refused")),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], format!("{flaky} ok PING"), "the retry answered");
    assert_eq!(status.code(), Some(1), "{err}");
}

#[test]
fn without_retries_the_flaky_server_fails_and_answering_servers_exit_0() {
    let flaky = server(Kind::FlakyFirst);
    let (status, out, _) = run("fetch", &["--retries", "0", &flaky.to_string()]);
    assert!(out.starts_with(&format!("{flaky} failed: ")), "{out}");
    assert_eq!(status.code(), Some(1));

    let good = server(Kind::Good);
    let (status, out, _) = run("fetch", &[&good.to_string(), &good.to_string()]);
    assert_eq!(out, format!("{good} ok HELLO\n{good} ok HELLO\n"));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_command_line_prints_the_usage_and_exits_2() {
    for args in [
        &[][..],
        &["--timeout", "0", "127.0.0.1:1"],
        &["not-an-address"],
    ] {
        let (status, out, err) = run("fetch", args);
        assert_eq!(status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains("Usage: fetch"), "{err}");
    }
}
