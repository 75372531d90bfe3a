//! The real `echo_server` and `echo_client` programs, run as a user runs
//! them: command line and exit status, the lines on stdout, signals, the idle
//! timeout, `--threads`, fds left open, and the client against the server and
//! against a server that corrupts what it echoes.
//!
//! The binaries are built from the test with `cargo build --example` (same
//! profile as the tests), so `cargo test --workspace` on a fresh clone needs
//! nothing else; that, the waits and the `Server` handle are in
//! `tests/echo_proc.rs`. Every server listens on an ephemeral port of
//! 127.0.0.1. No assertion depends on timing: a test waits for what it
//! expects (a line, an exit, an fd count) and gives up only after a generous
//! hang guard.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use tests::echo_proc::{Server, check_client_lines, count, run};

// ---------------------------------------------------------------------------
// The command line.

#[test]
fn a_bad_command_line_prints_the_usage_and_exits_2() {
    for args in [
        &[][..],
        &["abc"],
        &["-1"],
        &["65536"],
        &["99999999999"],
        &["7x"],
        &["--frob", "7777"],
        &["7777", "8888"],
        &["--bufsize", "0", "7777"],
        &["--threads", "many", "7777"],
        &["--idle-timeout", "-3", "7777"],
        &["--bind", "nowhere", "7777"],
    ] {
        let (status, out, err) = run("echo_server", args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("Usage: echo_server"), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed {out:?}");
    }
}

#[test]
fn help_prints_the_options_and_exits_0() {
    let (status, out, _) = run("echo_server", &["--help"]);
    assert_eq!(status.code(), Some(0));
    for opt in [
        "--bind",
        "--bufsize",
        "--idle-timeout",
        "--threads",
        "--peer-harness",
    ] {
        assert!(out.contains(opt), "{opt} missing from {out}");
    }
    // No path outside the repository (it named the harness's directory).
    assert!(!out.contains("../"), "{out}");
    // The argument as the usage line names it.
    assert!(out.contains("Usage: echo_server [OPTIONS] <PORT>"), "{out}");
    assert!(out.contains("\n  <PORT>  "), "{out}");
}

/// The usage line says `<PORT>`: so does every error about the port (one
/// said `[PORT]`); with `--peer-harness`, where the port may be left out,
/// both say `[PORT]`.
#[test]
fn errors_name_the_port_as_the_usage_line_of_their_mode_does() {
    let (status, _, err) = run("echo_server", &["abc"]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("invalid value 'abc' for '<PORT>'"), "{err}");
    let (_, _, err) = run("echo_server", &[]);
    assert!(
        err.contains("required arguments were not provided:\n  <PORT>"),
        "{err}"
    );
    let (status, _, err) = run("echo_server", &["--peer-harness", "abc"]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("invalid value 'abc' for '[PORT]'"), "{err}");
    assert!(!err.contains("<PORT>'"), "{err}");
}

#[test]
fn a_port_in_use_is_the_os_error_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, out, err) = run("echo_server", &[&port]);
    assert_eq!(status.code(), Some(1), "{err}");
    // Which address: the port, and where (issue 19).
    assert_eq!(
        err.trim(),
        format!("bind() failed on 127.0.0.1:{port}: Address already in use")
    );
    assert!(out.is_empty(), "no listening line: {out:?}");
}

#[test]
fn port_0_prints_the_port_it_really_listens_on() {
    let server = Server::start(&["0"]);
    assert_ne!(server.port, 0);
    let mut c = server.connect();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

#[test]
fn one_client_prints_exactly_the_tutorials_lines() {
    let server = Server::start(&["0"]);
    let mut c = server.connect();
    c.write_all(b"hello, tevent").unwrap();
    let mut got = [0u8; 13];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello, tevent");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        c.read(&mut [0u8; 1]).unwrap(),
        0,
        "closed after end of file"
    );
    let lines = server.wait_for("Client done", |l| l.len() == 4);
    let fd = lines[1]
        .strip_prefix("new client fd ")
        .expect("new client line");
    assert_eq!(
        lines,
        [
            format!("listening on port {}", server.port),
            format!("new client fd {fd}"),
            format!("Closing client fd {fd}"),
            "Client done".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------
// Echo.

/// Byte `i` of client `c`'s message.
fn byte(c: usize, i: usize) -> u8 {
    ((c * 7 + i * 13 + i / 251) % 251) as u8
}

/// 200 clients at once, messages from 1 byte to 1 MiB (each written while
/// its echo is read back, as a real client must for a message larger than
/// the socket buffers), every byte checked; then every client's lines.
#[test]
fn two_hundred_clients_from_1_byte_to_1_mib_are_echoed_byte_exact() {
    let server = Server::start(&["--bufsize", "16384", "0"]);
    let sizes: Vec<usize> = (0..200)
        .map(|c| match c % 8 {
            0 => 1,
            1 => 2,
            2 => 100,
            3 => 101,
            4 => 4096,
            5 => 65_537,
            6 => 300_000,
            _ => 1 << 20,
        })
        .collect();
    std::thread::scope(|s| {
        for (c, &size) in sizes.iter().enumerate() {
            let server = &server;
            s.spawn(move || {
                let sock = server.connect();
                let mut writer = sock.try_clone().unwrap();
                let w = std::thread::spawn(move || {
                    let msg: Vec<u8> = (0..size).map(|i| byte(c, i)).collect();
                    writer.write_all(&msg).unwrap();
                    writer.shutdown(Shutdown::Write).unwrap();
                });
                let mut back = Vec::with_capacity(size);
                (&sock).read_to_end(&mut back).unwrap();
                w.join().unwrap();
                assert_eq!(back.len(), size, "client {c}: length");
                if let Some(i) = (0..size).find(|&i| back[i] != byte(c, i)) {
                    panic!("client {c}: byte {i} of {size} differs");
                }
            });
        }
    });
    let lines = server.wait_for("200 outcomes", |l| count(l, "Client done") == 200);
    let (outcomes, open) = check_client_lines(&lines[1..]);
    assert_eq!(outcomes.len(), 200);
    assert!(outcomes.iter().all(|o| o == "Client done"), "{outcomes:?}");
    assert!(open.is_empty(), "still open: {open:?}");
    assert_eq!(count(&lines, "new client fd "), 200);
}

/// 20 clients send without reading until the server can no longer write
/// their echoes, then reset their connections: every one is reported and
/// closed, and the server is back to the fds it had before.
#[test]
fn clients_that_fill_the_send_side_and_reset_leave_no_fd_open() {
    let server = Server::start(&["--bufsize", "16384", "0"]);
    let before = server.open_fds();
    let chunk = vec![b'q'; 1 << 16];
    let clients: Vec<TcpStream> = (0..20)
        .map(|_| {
            let c = server.connect();
            c.set_nonblocking(true).unwrap();
            // Until the client's send buffer is full: the server has stopped
            // reading, because its own writes of the echo no longer go out.
            let mut sent = 0usize;
            loop {
                match (&c).write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            assert!(sent > chunk.len(), "only {sent} bytes went out");
            c
        })
        .collect();
    server.wait_for("20 clients", |l| count(l, "new client fd ") == 20);
    drop(clients); // unread data: each connection is reset
    let lines = server.wait_for("20 closes", |l| count(l, "Closing client fd ") == 20);
    let (outcomes, open) = check_client_lines(&lines[1..]);
    assert!(open.is_empty(), "{open:?}");
    for o in &outcomes {
        assert!(
            o == "Client failed: Connection reset by peer" || o == "Client done",
            "{o}"
        );
    }
    // Closed sockets leave the table at the loop's next wait, right after.
    server.wait_fds(before);
}

// ---------------------------------------------------------------------------
// Signals, the idle timeout, threads.

fn stop_with_clients_connected(sig: rustix::process::Signal) {
    let server = Server::start(&["0"]);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    server.wait_for("3 clients", |l| count(l, "new client fd ") == 3);
    server.signal(sig);
    let (status, lines, err) = server.exit();
    assert_eq!(status.code(), Some(0), "{err}");
    let opened: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("new client fd "))
        .collect();
    for fd in &opened {
        assert!(
            lines.contains(&format!("Closing client fd {fd}")),
            "fd {fd} not closed: {lines:?}"
        );
    }
    for c in &mut clients {
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "closed by the server");
    }
    assert!(err.contains("shutting down"), "{err}");
}

#[test]
fn sigterm_closes_every_client_and_exits_0() {
    stop_with_clients_connected(rustix::process::Signal::TERM);
}

#[test]
fn sigint_closes_every_client_and_exits_0() {
    stop_with_clients_connected(rustix::process::Signal::INT);
}

#[test]
fn the_idle_timeout_ends_a_client_that_sends_nothing() {
    let server = Server::start(&["--idle-timeout", "1", "0"]);
    let mut c = server.connect();
    // The client sends nothing: the server ends it (about a second later).
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "closed by the server");
    let lines = server.wait_for("the timeout", |l| l.len() == 4);
    let fd = lines[1].strip_prefix("new client fd ").expect("new client");
    assert_eq!(lines[2], format!("Closing client fd {fd}"));
    assert_eq!(lines[3], "Client failed: timed out");
}

#[test]
fn two_threads_serve_clients_from_both_loops() {
    let server = Server::start(&["--threads", "2", "0"]);
    let n = 64;
    for i in 0..n {
        let mut c = server.connect();
        let msg = format!("client {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    server.wait_for("every client", |l| count(l, "new client fd ") == n);
    server.signal(rustix::process::Signal::TERM);
    let (status, lines, err) = server.exit();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        lines.iter().all(|l| l.starts_with("listening on port ")
            || l.starts_with("new client fd ")
            || l.starts_with("Closing client fd ")
            || l == "Client done"),
        "only whole lines: {lines:?}"
    );
    // "echo_server: loop K of 2 served N clients", per loop.
    let served: Vec<usize> = (1..=2)
        .map(|k| {
            let prefix = format!("echo_server: loop {k} of 2 served ");
            let line = err
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no line for loop {k}: {err}"));
            line.trim_end_matches(" clients").parse().unwrap()
        })
        .collect();
    assert_eq!(served.iter().sum::<usize>(), n, "{err}");
    // The kernel spreads connections over the listeners by a hash of their
    // addresses: with 64 of them, both loops get some (all on one would be a
    // 1 in 2^63 chance).
    assert!(served.iter().all(|&s| s > 0), "{served:?}");
}

// ---------------------------------------------------------------------------
// echo_client.

#[test]
fn echo_client_passes_against_the_server() {
    let server = Server::start(&["0"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let (status, out, err) = run(
        "echo_client",
        &[
            &addr,
            "--conns",
            "8",
            "--msgs",
            "40",
            "--warmup",
            "5",
            "--size",
            "3000",
            "--threads",
            "2",
        ],
    );
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        out.contains("320 round trips of 3000 bytes over 8 connections (2 loops)"),
        "{out}"
    );
    assert!(out.contains("round trips per second: "), "{out}");
    assert!(out.contains("latency: p50 "), "{out}");
    assert!(
        err.is_empty(),
        "stderr is not a terminal: no progress bar: {err:?}"
    );
    server.wait_for("8 clients done", |l| count(l, "Client done") == 8);
}

/// An echo server that flips one bit of the 1000th byte it echoes on each
/// connection.
fn corrupting_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            conns.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut at = 0usize;
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if (at..at + n).contains(&999) {
                        buf[999 - at] ^= 0x20;
                    }
                    at += n;
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }));
        }
        for c in conns {
            let _ = c.join();
        }
    });
    (port, t)
}

#[test]
fn echo_client_fails_against_a_corrupting_server() {
    let (port, server) = corrupting_server();
    let addr = format!("127.0.0.1:{port}");
    let (status, out, err) = run(
        "echo_client",
        &[
            &addr, "--conns", "2", "--msgs", "20", "--size", "100", "--warmup", "0",
        ],
    );
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(err.contains("came back as"), "{err}");
    assert!(!out.contains("round trips per second"), "{out}");
    server.join().unwrap();
}

#[test]
fn echo_client_fails_on_a_refused_connection_and_on_a_timeout() {
    // Refused: a port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, _, err) = run(
        "echo_client",
        &[&format!("127.0.0.1:{port}"), "--conns", "1"],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Connection refused"), "{err}");

    // Timed out: the kernel accepts the connection, nobody ever echoes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let (status, _, err) = run(
        "echo_client",
        &[&addr, "--conns", "1", "--msgs", "1", "--timeout", "0.5"],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    drop(silent);
}

#[test]
fn echo_client_usage_errors_exit_2() {
    for args in [
        &[][..],
        &["127.0.0.1:1", "--conns", "0"],
        &["127.0.0.1:1", "--size", "x"],
        &["127.0.0.1:1", "--timeout", "0"],
        &["192.0.2.1:7"],
    ] {
        let (status, _, err) = run("echo_client", args);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("Usage: echo_client"), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// echo_raw: the peer harness's C server design, kept to measure the loop.

/// `echo_raw` echoes byte-exact for several clients at once (each writing
/// more than the socket buffers hold while it reads, so the server's
/// switch to waiting for `WRITE` and back is exercised) and exits 0 on
/// SIGTERM.
#[test]
fn echo_raw_echoes_byte_exact_and_stops_on_sigterm() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tests::echo_proc::binary("echo_raw"))
        .arg("0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn echo_raw");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // LISTEN 127.0.0.1:<port> PID=<pid>
    let port: u16 = first
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    const LEN: usize = 3 << 20;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut writer = sock.try_clone().unwrap();
                let sent: Vec<u8> = (0..LEN).map(|i| byte(c, i)).collect();
                let expect = sent.clone();
                let w = std::thread::spawn(move || writer.write_all(&sent).unwrap());
                let mut back = vec![0; LEN];
                (&sock).read_exact(&mut back).unwrap();
                w.join().unwrap();
                assert!(back == expect, "client {c}: the echo differs");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tests::echo_proc::wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
}

/// The request tree blocks `echo_server` printed on stderr so far: each is
/// its header line (`echo_server: [loop i of n: ]N requests in flight:`)
/// and the N lines right after it.
fn tree_blocks(stderr: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut blocks = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(n) = l
            .strip_prefix("echo_server: ")
            .and_then(|rest| rest.strip_suffix(" requests in flight:"))
            .and_then(|rest| rest.rsplit(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if i + n < lines.len() {
            blocks.push(lines[i + 1..=i + n].iter().map(|s| s.to_string()).collect());
        }
    }
    blocks
}

/// `SIGUSR1` prints the live request tree on stderr, as one block naming
/// each connected client's step and what it waits for, and the clients go
/// on being served (issue 19).
#[test]
fn sigusr1_prints_the_request_tree_and_clients_are_still_served() {
    let server = Server::start(&["0"]);
    // An idle client: its echo request waits in `read`, for its fd.
    let mut idle = server.connect();
    server.wait_count("new client fd ", 1);
    // A client that sends and never reads: once it cannot send more, the
    // server has stopped reading it, so its echo waits in `write`.
    let stuck = server.connect();
    server.wait_count("new client fd ", 2);
    stuck.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let mut blocked_rounds = 0;
    while blocked_rounds < 20 {
        match (&stuck).write(&chunk) {
            Ok(n) => {
                sent += n;
                blocked_rounds = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked_rounds += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    // Ask until the tree shows the writer waiting in `write` (the server
    // may still be catching up with what was sent).
    let mut seen = 0;
    let mut block = Vec::new();
    tests::echo_proc::wait_until("a tree with a client in `write`", || {
        server.signal(rustix::process::Signal::USR1);
        let mut blocks = Vec::new();
        tests::echo_proc::wait_until("the tree block", || {
            blocks = tree_blocks(&server.stderr());
            blocks.len() > seen
        });
        seen = blocks.len();
        block = blocks.pop().unwrap();
        block.iter().any(|l| l.contains("Echo@write"))
    });
    let text = block.join("\n");
    assert!(
        block[0].starts_with("EchoServer@[accepted, client_done×2] ("),
        "{text}"
    );
    let echo_read = block
        .iter()
        .position(|l| l.starts_with("  [client_done] Echo@read ("))
        .unwrap_or_else(|| panic!("the idle client reads: {text}"));
    assert!(
        block[echo_read + 1].starts_with("    [read] ReadPooled<TcpStream>: fd ")
            && block[echo_read + 1].contains(" READ ("),
        "{text}"
    );
    let echo_write = block
        .iter()
        .position(|l| l.starts_with("  [client_done] Echo@write ("))
        .unwrap_or_else(|| panic!("the stuck client writes: {text}"));
    assert!(
        block[echo_write + 1].starts_with("    [write] WriteAll<TcpStream, PooledBuf>: fd ")
            && block[echo_write + 1].contains(" WRITE ("),
        "{text}"
    );
    assert!(
        block
            .iter()
            .any(|l| l.starts_with("  [accepted] Accept<TcpListener>: fd ")),
        "{text}"
    );
    // Nothing but the blocks went to stderr.
    for l in server.stderr().lines() {
        assert!(
            l.starts_with("echo_server: ") && l.ends_with(" requests in flight:")
                || l.starts_with("EchoServer")
                || l.starts_with("  "),
            "{l}"
        );
    }
    // Both clients are served after the dumps: the idle one's ping comes
    // back, and every byte the stuck one sent comes back once it reads.
    idle.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    idle.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    stuck.set_nonblocking(false).unwrap();
    stuck
        .set_read_timeout(Some(tests::echo_proc::HANG_GUARD))
        .unwrap();
    let mut back = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while back < sent {
        let n = (&stuck).read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the stuck client");
        assert!(buf[..n].iter().all(|b| *b == 7));
        back += n;
    }
    assert_eq!(back, sent);
    // And again, with the traffic gone: both read.
    server.signal(rustix::process::Signal::USR1);
    let mut last = Vec::new();
    tests::echo_proc::wait_until("the tree after the traffic", || {
        let blocks = tree_blocks(&server.stderr());
        if blocks.len() > seen {
            last = blocks.last().unwrap().clone();
            true
        } else {
            false
        }
    });
    assert_eq!(
        last.iter().filter(|l| l.contains("Echo@read")).count(),
        2,
        "{last:?}"
    );
    assert_eq!(server.count("new client fd "), 2);
    assert_eq!(server.count("Closing client fd "), 0);
}

#[test]
fn sigusr1_with_several_loops_prints_one_block_per_loop() {
    let server = Server::start(&["--threads", "2", "0"]);
    server.signal(rustix::process::Signal::USR1);
    tests::echo_proc::wait_until("a block from each loop", || {
        let err = server.stderr();
        err.contains("echo_server: loop 1 of 2: 2 requests in flight:\nEchoServer@accepted (")
            && err
                .contains("echo_server: loop 2 of 2: 2 requests in flight:\nEchoServer@accepted (")
    });
}
