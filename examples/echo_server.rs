//! The flagship example: tevent's echo server, on requests.
//!
//! ```text
//! cargo run --release --example echo_server -- 7777
//! cargo run --release --example echo_server -- --help
//! ```
//!
//! `echo_server [OPTIONS] <PORT>` listens on 127.0.0.1:<PORT> and echoes
//! every client, 100 bytes at a time, printing `listening on port N`, then
//! `new client fd N`, `Closing client fd N` and `Client done` /
//! `Client failed: <reason>` lines, as tevent's `echo_server.c` does (see
//! `docs/echo-server.md` for the full behaviour and the deliberate
//! differences). `SIGINT` (Ctrl-C) or `SIGTERM` stops it: it stops
//! accepting, ends every client (each prints its `Closing client fd N`
//! line) and exits 0; a second signal during that ends it at once.
//!
//! `SIGUSR1` prints the live request tree (every request in flight, the
//! step it waits in and what it waits for) to stderr, as one block, and the
//! server goes on serving.
//!
//! Options: `--bind ADDR` (IPv4 or IPv6, default 127.0.0.1), `--bufsize N`
//! (bytes read at a time, default 100), `--idle-timeout SECS` (end a client
//! that sends nothing for that long: `Client failed: timed out`),
//! `--threads N` (N independent loops, one per thread, each with its own
//! listener on the same port: `SO_REUSEPORT` on Linux, `SO_REUSEPORT_LB` on
//! FreeBSD, where the kernel spreads connections among them; macOS shares
//! the port without spreading, see `examples::echo::listen_on`),
//! `--peer-harness` (the mode of the comparison benchmarks,
//! `benches/run.sh`: an ephemeral port on 127.0.0.1 unless one is given,
//! `LISTEN 127.0.0.1:<port> PID=<pid>` instead of the tutorial's line,
//! 16384-byte reads unless `--bufsize` says otherwise). Every mode sets `TCP_NODELAY` on clients and listens with a
//! backlog of 1024 (the tutorial's 5 overflows under a burst of clients).
//!
//! Exit status: 0 after a signal; 1 if the server cannot start (`bind()
//! failed on 127.0.0.1:7777: Address already in use`...) or fails; 2 for a
//! bad command line (usage on stderr).
//!
//! The argument parser is `clap` (derive), a dependency of the examples
//! package only: the `tevent` crate itself depends on no parser.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use examples::echo::{
    HARNESS_BACKLOG, Options, Out, echo_server_send, listen_on, strerror, warn, write_line,
};
use tevent::{Context, Remote, Signal};

/// tevent's echo server: echoes every byte each client sends, printing a
/// line per client event (`new client fd N`, `Closing client fd N`,
/// `Client done` / `Client failed: <reason>`).
#[derive(Parser, Debug)]
#[command(
    name = "echo_server",
    override_usage = "echo_server [OPTIONS] <PORT>\n       echo_server --peer-harness [OPTIONS] [PORT]",
    after_help = "SIGINT or SIGTERM: stop accepting, end every client (each prints its \
                  'Closing client fd N' line), exit 0; a second signal during that exits at once.\n\
                  SIGUSR1: print the requests in flight (each client's step, what it waits for) \
                  on stderr, and go on.\n\
                  Exit status: 0 after a signal, 1 if the server cannot start or fails, \
                  2 for a bad command line."
)]
struct Args {
    /// TCP port to listen on, 0 to 65535 (0: a free port, printed in
    /// `listening on port N`). Optional with --peer-harness.
    // Required but with --peer-harness: see `main`, which says so, so that
    // every message names it as the usage line of its mode does (`<PORT>`,
    // `[PORT]` with --peer-harness).
    #[arg(value_name = "PORT", value_parser = parse_port, allow_negative_numbers = true)]
    port: Option<u16>,

    /// Address to listen on: IPv4 or IPv6 (`::1`, `::` for every interface).
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,

    /// Bytes read at a time per client, 1 to 16777216 [default: 100, or
    /// 16384 with --peer-harness].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16 << 20))]
    bufsize: Option<u32>,

    /// End a client that sends nothing for SECS seconds (decimals allowed):
    /// it is reported as `Client failed: timed out`.
    #[arg(long, value_name = "SECS", value_parser = examples::cli::parse_secs)]
    idle_timeout: Option<Duration>,

    /// Run N independent loops, one per thread, each with its own
    /// listener on the port (Linux's SO_REUSEPORT, FreeBSD's
    /// SO_REUSEPORT_LB: the kernel spreads the connections; macOS does not
    /// spread them), 1 to 256.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,

    /// Benchmark harness mode (the repository's benches/run.sh): a free
    /// port unless one is given, prints `LISTEN <addr>:<port> PID=<pid>`
    /// instead of the tutorial's line, reads 16384 bytes at a time unless
    /// --bufsize says otherwise.
    #[arg(long)]
    peer_harness: bool,
}

/// A port number, strictly: digits only, 0 to 65535.
fn parse_port(s: &str) -> Result<u16, String> {
    let bad = || format!("a port is a number from 0 to 65535, not '{s}'");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// The signals that stop the server.
const STOP_SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// Handlers for [`STOP_SIGNALS`] on `ev` that record the first signal in
/// `got`. Dropping them restores the default dispositions, so that a second
/// signal, during the shutdown, ends the process at once.
fn on_stop_signals(ev: &Context, got: &Rc<Cell<Option<i32>>>) -> Result<Vec<Signal>, String> {
    STOP_SIGNALS
        .iter()
        .map(|&signum| {
            let got = got.clone();
            ev.add_signal(signum, move |_, _, _| {
                if got.get().is_none() {
                    got.set(Some(signum));
                }
            })
            .map_err(|e| format!("cannot handle signal {signum}: {e}"))
        })
        .collect()
}

/// The live request tree of `ev`, as one block on stderr (one `write`):
/// a header line naming the loop and the number of requests, then one line
/// per request (see `tevent::RequestTree::render`). For `SIGUSR1`.
fn print_request_tree(ev: &Context, which: &str) {
    let tree = ev.request_tree();
    let mut block = format!("echo_server: {which}{} requests in flight:\n", tree.len());
    block.push_str(&tree.render());
    // Whole, in one write, and never a reason to stop (as `warn`).
    let _ = std::io::Write::write_all(&mut std::io::stderr(), block.as_bytes());
}

/// A handler of `SIGUSR1` on `ev` that prints the request tree of `ev`
/// itself and, with several loops, asks each of them (through its
/// [`Remote`]) to print its own.
fn on_sigusr1(ev: &Context, loops: Rc<RefCell<Vec<Remote>>>) -> Result<Signal, String> {
    ev.add_signal(libc::SIGUSR1, move |ev, _, _| {
        let loops = loops.borrow();
        if loops.is_empty() {
            print_request_tree(ev, "");
        }
        let n = loops.len();
        for (i, r) in loops.iter().enumerate() {
            let which = format!("loop {} of {n}: ", i + 1);
            let _ = r.send(move |ev| print_request_tree(ev, &which));
        }
    })
    .map_err(|e| format!("cannot handle signal SIGUSR1: {e}"))
}

fn signal_name(signum: i32) -> &'static str {
    match signum {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn main() -> ExitCode {
    // A bad command line prints the error and the usage on stderr and
    // exits 2 (`--help` prints on stdout and exits 0).
    let harness = std::env::args_os()
        .take_while(|a| a != "--")
        .any(|a| a == "--peer-harness");
    let args: Args =
        examples::cli::parse_adjusted(|cmd| cmd.mut_arg("port", |port| port.required(!harness)));
    let harness = args.peer_harness;
    let opts = Options {
        bufsize: args
            .bufsize
            .map_or(if harness { 16384 } else { 100 }, |n| n as usize),
        nodelay: true,
        idle_timeout: args.idle_timeout,
    };
    // The peers' backlog in every mode: with the tutorial's 5, a burst of
    // clients overflows the accept queue and the kernel drops or resets
    // their connections (see docs/echo-server.md).
    let backlog = HARNESS_BACKLOG;
    let threads = usize::from(args.threads);

    // Every listener first, so that the port printed is served by every loop.
    let port = args.port.unwrap_or(0);
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(threads);
    let mut addr = SocketAddr::new(args.bind, port);
    for _ in 0..threads {
        match listen_on(addr, backlog, threads > 1) {
            Ok(l) => {
                if let Ok(a) = l.local_addr() {
                    addr = a; // port 0: the others join the port the first got
                }
                listeners.push(l);
            }
            Err((what, e)) => {
                // `perror`'s form, with the address a bind or listen was for
                // (which port is in use, on which address).
                match what {
                    "bind()" | "listen()" => {
                        warn(format_args!("{what} failed on {addr}: {}", strerror(&e)))
                    }
                    _ => warn(format_args!("{what} failed: {}", strerror(&e))),
                }
                return ExitCode::FAILURE;
            }
        }
    }
    // Printed once every loop is ready (its context, its signal handlers):
    // from then on the process holds all the fds it holds when idle.
    let ready = || {
        if harness {
            let pid = std::process::id();
            write_line(
                &mut std::io::stdout(),
                format_args!("LISTEN {addr} PID={pid}"),
            );
        } else {
            let port = addr.port();
            write_line(
                &mut std::io::stdout(),
                format_args!("listening on port {port}"),
            );
        }
    };
    let result = if threads == 1 {
        let listener = listeners.pop().expect("one listener");
        run_single(listener, opts, &ready)
    } else {
        run_threads(listeners, opts, &ready)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            warn(format_args!("{msg}"));
            ExitCode::FAILURE
        }
    }
}

/// The lines of one loop, on stdout (each line one `write`, so the lines of
/// several loops never mix).
fn stdout_out() -> Out {
    Rc::new(RefCell::new(std::io::stdout()))
}

/// One loop on this thread, which handles the stop signals itself.
fn run_single(listener: TcpListener, opts: Options, ready: &dyn Fn()) -> Result<(), String> {
    let ev = Context::new().map_err(|e| format!("tevent_context_init failed: {e}"))?;
    let got = Rc::new(Cell::new(None));
    let signals = on_stop_signals(&ev, &got)?;
    let _usr1 = on_sigusr1(&ev, Rc::default())?;
    let out = stdout_out();
    let accepted = Rc::new(Cell::new(0));
    let server = echo_server_send(&ev, listener, opts, &out, &accepted);
    ready();
    ev.loop_until(|| got.get().is_some() || !server.is_in_progress())
        .map_err(|e| format!("tevent_req_poll() failed: {e}"))?;
    // From here a second signal takes its default action: the process ends.
    drop(signals);
    match got.get() {
        Some(signum) => {
            warn(format_args!(
                "echo_server: {}: shutting down",
                signal_name(signum)
            ));
            drop(server); // ends every client: their `Closing client fd N` lines
            Ok(())
        }
        None => match server.recv() {
            Ok(never) => match never {},
            Err(e) => Err(format!("echo_server failed: {}", strerror(&e.into_io()))),
        },
    }
}

/// What a worker loop tells the main thread when it is done.
type WorkerResult = Result<u64, String>;

/// `listeners.len()` loops, one per thread; this thread handles the stop
/// signals and tells every loop to stop through its [`Remote`].
fn run_threads(listeners: Vec<TcpListener>, opts: Options, ready: &dyn Fn()) -> Result<(), String> {
    let ev = Context::new().map_err(|e| format!("tevent_context_init failed: {e}"))?;
    let got = Rc::new(Cell::new(None));
    let signals = on_stop_signals(&ev, &got)?;
    let loops: Rc<RefCell<Vec<Remote>>> = Rc::default();
    let _usr1 = on_sigusr1(&ev, loops.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let n = listeners.len();
    let (remote_tx, remote_rx) = std::sync::mpsc::channel::<Result<Remote, String>>();
    let mut workers = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (stop, finished, main) = (stop.clone(), finished.clone(), ev.remote());
        let remote_tx = remote_tx.clone();
        let worker = std::thread::Builder::new()
            .name(format!("echo-loop-{}", i + 1))
            .spawn(move || {
                let r = run_worker(listener, opts, &stop, &remote_tx);
                finished.fetch_add(1, Ordering::SeqCst);
                let _ = main.send(|_| {}); // wake the main loop
                r
            })
            .map_err(|e| format!("cannot start loop {}: {e}", i + 1))?;
        workers.push(worker);
    }
    drop(remote_tx);
    // Every loop says whether it is ready (each sends exactly one message).
    let mut remotes = Vec::with_capacity(n);
    let mut failure = None;
    for _ in 0..n {
        match remote_rx.recv() {
            Ok(Ok(r)) => remotes.push(r),
            Ok(Err(msg)) => failure = Some(msg),
            Err(_) => failure = Some("a loop ended before it was ready".to_string()),
        }
    }
    if failure.is_none() {
        loops.borrow_mut().extend(remotes.iter().cloned());
        ready();
    } else {
        finished.fetch_add(1, Ordering::SeqCst); // stop at once
    }
    ev.loop_until(|| got.get().is_some() || finished.load(Ordering::SeqCst) > 0)
        .map_err(|e| format!("tevent_loop_wait() failed: {e}"))?;
    drop(signals); // a second signal now ends the process at once
    if let Some(signum) = got.get() {
        warn(format_args!(
            "echo_server: {}: shutting down",
            signal_name(signum)
        ));
    }
    // Every loop is ready, so each either waits (woken here) or checks
    // `stop` before its next step.
    stop.store(true, Ordering::SeqCst);
    for r in &remotes {
        let _ = r.send(|_| {});
    }
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok(Ok(accepted)) => warn(format_args!(
                "echo_server: loop {} of {n} served {accepted} clients",
                i + 1
            )),
            Ok(Err(msg)) => failure = Some(format!("loop {}: {msg}", i + 1)),
            Err(_) => failure = Some(format!("loop {} panicked", i + 1)),
        }
    }
    match (got.get(), failure) {
        (_, Some(msg)) => Err(msg),
        (Some(_), None) => Ok(()),
        (None, None) => Err("a loop ended by itself".to_string()),
    }
}

/// One worker loop: serves `listener` until `stop` is set (and the loop is
/// woken through the [`Remote`] it sent) or the server fails. Returns the
/// number of clients it accepted.
fn run_worker(
    listener: TcpListener,
    opts: Options,
    stop: &AtomicBool,
    remote_tx: &std::sync::mpsc::Sender<Result<Remote, String>>,
) -> WorkerResult {
    let ev = match Context::new() {
        Ok(ev) => ev,
        Err(e) => {
            let msg = format!("tevent_context_init failed: {e}");
            let _ = remote_tx.send(Err(msg.clone()));
            return Err(msg);
        }
    };
    let _ = remote_tx.send(Ok(ev.remote()));
    let out = stdout_out();
    let accepted = Rc::new(Cell::new(0));
    let server = echo_server_send(&ev, listener, opts, &out, &accepted);
    ev.loop_until(|| stop.load(Ordering::SeqCst) || !server.is_in_progress())
        .map_err(|e| format!("tevent_req_poll() failed: {e}"))?;
    if server.is_in_progress() {
        drop(server); // ends every client of this loop
        return Ok(accepted.get());
    }
    match server.recv() {
        Ok(never) => match never {},
        Err(e) => Err(format!("echo_server failed: {}", strerror(&e.into_io()))),
    }
}
