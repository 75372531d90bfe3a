//! A load client for echo servers, built on tevent requests.
//!
//! ```text
//! cargo run --release --example echo_server -- 7777 &
//! cargo run --release --example echo_client -- 127.0.0.1:7777 --conns 50 --msgs 10000
//! ```
//!
//! `echo_client [OPTIONS] <ADDR>` opens `--conns` connections to the echo
//! server at ADDR (`host:port`, loopback only unless `--allow-non-loopback`),
//! and sends `--msgs` messages of `--size` bytes on each, one at a time:
//! each round trip writes a message and reads it back, and every echoed byte
//! is checked against what was sent. The connections are spread over
//! `--threads` independent tevent loops. Each connect and each round trip
//! must finish within `--timeout` seconds.
//!
//! On stdout it prints the round trips per second and the latency
//! percentiles (p50, p99, max, from an HDR histogram); on stderr a progress
//! bar, only when stderr is a terminal. Exit status: 0 when every byte came
//! back right; 1 on a mismatch, a refused or failed connection, a timeout,
//! or a server that closed early; 2 for a bad command line.
//!
//! Per connection, one request (`Conn`, written with `#[tevent_request]`)
//! runs [`connect_send`], then for each message a [`write_all_send`] and a
//! [`read_exact_send`] at the same time (so a message larger than the
//! socket buffers cannot deadlock against a server that echoes as it
//! reads), the read with an end time.

use std::cell::{Cell, RefCell};
use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tevent::io::{Connect, ReadExact, WriteAll, connect_send, read_exact_send, write_all_send};
use tevent::{Context, Next, Req, ReqError, tevent_request};

/// A load client for echo servers, on tevent requests: connects, sends
/// messages, checks every echoed byte, and reports round trips per second
/// and latency percentiles.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "echo_client",
    after_help = "Exit status: 0 when every byte came back right; 1 on a mismatch, a refused \
                  connection, a timeout or an early close; 2 for a bad command line."
)]
struct Args {
    /// The echo server, as host:port (127.0.0.1:7777, [::1]:7777, localhost:7777).
    #[arg(value_name = "ADDR")]
    addr: String,

    /// Connections, all open at once (1 to 100000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    conns: u32,

    /// Timed round trips per connection.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    msgs: u64,

    /// Untimed round trips per connection before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 100)]
    warmup: u64,

    /// Bytes per message (1 to 67108864).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=64 << 20))]
    size: u32,

    /// Seconds each connect and each round trip may take (decimals allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = examples::cli::parse_secs)]
    timeout: Duration,

    /// Independent tevent loops, one per thread, sharing the connections
    /// (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,

    /// Allow a server that is not on a loopback address.
    #[arg(long)]
    allow_non_loopback: bool,
}

/// Byte `i` of message `seq` on connection `conn`: differs between
/// connections and messages, so an echo sent to the wrong connection or
/// replayed from an earlier message is caught too.
fn pattern(conn: u32, seq: u64, i: usize) -> u8 {
    let x = (u64::from(conn) << 40) ^ seq.wrapping_mul(0x9E37_79B9) ^ (i as u64 / 251);
    (x.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8
}

/// What one loop records.
struct Tally {
    /// Round-trip latencies of the timed phase, in nanoseconds.
    hist: Histogram<u64>,
    /// Timed round trips done by every loop (for the progress bar).
    progress: Arc<AtomicU64>,
}

/// One connection's round trips.
struct Conn {
    sock: Rc<TcpStream>,
    conn: u32,
    /// The round trip in flight (numbered from the first warm-up one).
    seq: u64,
    /// The number of the round trip after the last one to run.
    end: u64,
    /// Whether these round trips are timed (recorded) or a warm-up.
    timed: bool,
    size: usize,
    timeout: Duration,
    /// The message's write is done / its echo has been read and checked.
    wrote: bool,
    read: bool,
    /// The written buffer, back from its write, reused for the next message.
    /// State, not a value carried to a step: the write and the read of a
    /// round trip run at once, and whichever ends last starts the next
    /// round, so the buffer waits where both steps reach it.
    spare: Option<Vec<u8>>,
    started: Instant,
    tally: Rc<RefCell<Tally>>,
}

/// What a connection's round trips are: `count` of them from number
/// `first`, timed (their latency recorded) or not.
#[derive(Clone, Copy)]
struct Phase {
    first: u64,
    count: u64,
    timed: bool,
}

#[tevent_request(steps(
    start => [wrote, echoed, done],
    wrote => [wrote, echoed, done],
    echoed => [wrote, echoed, done],
))]
impl Conn {
    type Output = ();
    type Error = io::Error;

    /// Runs the round trips of `phase` on `sock` (connected, nonblocking).
    fn start(
        to: ConnStartStep<'_>,
        sock: &Rc<TcpStream>,
        conn: u32,
        phase: Phase,
        args: &Args,
        tally: &Rc<RefCell<Tally>>,
    ) -> Next<Self> {
        let mut state = Conn {
            sock: sock.clone(),
            conn,
            seq: phase.first,
            end: phase.first + phase.count,
            timed: phase.timed,
            size: args.size as usize,
            timeout: args.timeout,
            wrote: false,
            read: false,
            spare: None,
            started: Instant::now(),
            tally: tally.clone(),
        };
        if phase.count == 0 {
            return to.create(state).done(());
        }
        let (write, read) = state.round(to.ev())?;
        let to = to.create(state);
        to.wrote(write)?;
        to.echoed(read)
    }

    /// The message is written; its buffer comes back for the next one.
    fn wrote(&mut self, to: ConnWroteStep<'_>, buf: Vec<u8>) -> Next<Self> {
        self.wrote = true;
        self.spare = Some(buf);
        if !self.read {
            return to.pending(); // the echo is still on its way
        }
        match self.next(to.ev())? {
            Some((write, read)) => {
                to.wrote(write)?;
                to.echoed(read)
            }
            None => to.done(()),
        }
    }

    /// The echo of the message came back: check every byte.
    fn echoed(&mut self, to: ConnEchoedStep<'_>, got: Vec<u8>) -> Next<Self> {
        if let Some(i) = (0..self.size).find(|&i| got[i] != pattern(self.conn, self.seq, i)) {
            return Err(ReqError::User(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "round trip {}: byte {i} of {} came back as {:#04x}, {:#04x} was sent",
                    self.seq + 1,
                    self.size,
                    got[i],
                    pattern(self.conn, self.seq, i)
                ),
            )));
        }
        self.read = true;
        if !self.wrote {
            return to.pending(); // (the echo cannot beat its write, but the notifications may)
        }
        match self.next(to.ev())? {
            Some((write, read)) => {
                to.wrote(write)?;
                to.echoed(read)
            }
            None => to.done(()),
        }
    }
}

/// The two halves of a round trip.
type Round = (Req<WriteAll<TcpStream>>, Req<ReadExact<TcpStream>>);

impl Conn {
    /// Round trip `self.seq` is complete (written and echoed): records it,
    /// then starts the next one, or returns `None` after the last.
    fn next(&mut self, ev: &Context) -> Result<Option<Round>, ReqError<io::Error>> {
        if self.timed {
            let ns = self.started.elapsed().as_nanos();
            let mut t = self.tally.borrow_mut();
            let _ = t.hist.record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            t.progress.fetch_add(1, Ordering::Relaxed);
        }
        self.seq += 1;
        if self.seq == self.end {
            return Ok(None);
        }
        self.round(ev).map(Some)
    }

    /// Starts round trip `self.seq`: the write of its message and the read
    /// of its echo, the read with an end time.
    fn round(&mut self, ev: &Context) -> Result<Round, ReqError<io::Error>> {
        let mut msg = self.spare.take().unwrap_or_default();
        msg.clear();
        msg.try_reserve_exact(self.size)
            .map_err(|_| ReqError::NoMemory)?;
        msg.extend((0..self.size).map(|i| pattern(self.conn, self.seq, i)));
        self.wrote = false;
        self.read = false;
        self.started = Instant::now();
        let write = write_all_send(ev, &self.sock, msg);
        let read = read_exact_send(ev, &self.sock, self.size);
        read.set_endtime(ev.deadline_after(self.timeout))?;
        Ok((write, read))
    }
}

/// What a loop reports: its histogram, or the first failure.
type LoopResult = Result<Histogram<u64>, String>;

/// A histogram of nanoseconds, 1 ns to an hour, 3 significant digits.
fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// One loop: connects `ids.len()` connections and runs their warm-up round
/// trips, waits at `barrier` until every loop has (the clock starts there),
/// then runs their timed round trips. Stops at the first failure (`failed`
/// tells the other loops to stop too).
fn run_loop(
    addr: SocketAddr,
    ids: std::ops::Range<u32>,
    args: &Args,
    barrier: &Barrier,
    progress: Arc<AtomicU64>,
    failed: &AtomicBool,
) -> LoopResult {
    let ev = Context::new().map_err(|e| format!("tevent_context_init failed: {e}"))?;
    let tally = Rc::new(RefCell::new(Tally {
        hist: new_histogram()?,
        progress,
    }));
    let warmup = Phase {
        first: 0,
        count: args.warmup,
        timed: false,
    };
    let setup = connect_all(&ev, addr, ids, args, failed).and_then(|socks| {
        run_phase(&ev, &socks, warmup, args, &tally, failed)?;
        Ok(socks)
    });
    // Every loop comes to the barrier, failed or not, so none waits forever.
    barrier.wait();
    let socks = setup?;
    let timed = Phase {
        first: args.warmup,
        count: args.msgs,
        timed: true,
    };
    run_phase(&ev, &socks, timed, args, &tally, failed)?;
    let hist = tally.borrow().hist.clone();
    Ok(hist)
}

/// Connects one socket per id, one after the other, each within the
/// timeout.
fn connect_all(
    ev: &Context,
    addr: SocketAddr,
    ids: std::ops::Range<u32>,
    args: &Args,
    failed: &AtomicBool,
) -> Result<Vec<(u32, Rc<TcpStream>)>, String> {
    let mut socks = Vec::with_capacity(ids.len());
    for id in ids {
        if failed.load(Ordering::Relaxed) {
            return Err(String::new()); // another loop failed; it says why
        }
        let req: Req<Connect> = connect_send(ev, addr);
        let outcome = match req.set_endtime(ev.deadline_after(args.timeout)) {
            Ok(()) => req
                .poll_recv(ev)
                .map_err(|e| format!("tevent loop failed: {e}"))?,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                socks.push((id, Rc::new(sock)));
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                return Err(format!(
                    "connection {}: connect to {addr}: {}",
                    id + 1,
                    why(e, args.timeout)
                ));
            }
        }
    }
    Ok(socks)
}

/// Runs `phase` on every connection at once, until all are done or one
/// fails (here or in another loop: `failed`).
fn run_phase(
    ev: &Context,
    socks: &[(u32, Rc<TcpStream>)],
    phase: Phase,
    args: &Args,
    tally: &Rc<RefCell<Tally>>,
    failed: &AtomicBool,
) -> Result<(), String> {
    let left = Rc::new(Cell::new(socks.len()));
    let first_error: Rc<RefCell<Option<String>>> = Rc::default();
    let mut handles = Vec::with_capacity(socks.len());
    for (id, sock) in socks {
        let (id, left, first_error) = (*id, left.clone(), first_error.clone());
        let timeout = args.timeout;
        let req = conn_send(ev, sock, id, phase, args, tally);
        handles.push(req.set_callback(move |_, req| {
            left.set(left.get() - 1);
            if let Err(e) = conn_recv(req) {
                first_error
                    .borrow_mut()
                    .get_or_insert_with(|| format!("connection {}: {}", id + 1, why(e, timeout)));
            }
        }));
    }
    ev.loop_until(|| {
        left.get() == 0 || first_error.borrow().is_some() || failed.load(Ordering::Relaxed)
    })
    .map_err(|e| format!("tevent loop failed: {e}"))?;
    for h in handles {
        h.abort(); // what is left, after a failure
    }
    if let Some(e) = first_error.take() {
        failed.store(true, Ordering::Relaxed);
        return Err(e);
    }
    if left.get() > 0 {
        return Err(String::new()); // another loop failed; it says why
    }
    Ok(())
}

/// A failure, as the message says it (a timeout with its limit).
fn why(e: ReqError<io::Error>, timeout: Duration) -> String {
    match e {
        ReqError::TimedOut => format!("timed out (no answer within {} s)", timeout.as_secs_f64()),
        ReqError::User(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            format!("the server closed the connection early ({e})")
        }
        ReqError::User(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Draws the progress bar on stderr until `done` (only called when stderr
/// is a terminal).
fn show_progress(progress: &AtomicU64, total: u64, done: &AtomicBool) {
    let mut err = io::stderr();
    while !done.load(Ordering::Relaxed) {
        let n = progress.load(Ordering::Relaxed).min(total);
        let width = 40;
        let filled = if total == 0 {
            width
        } else {
            (n as u128 * width as u128 / total as u128) as usize
        };
        let _ = write!(
            err,
            "\r[{}{}] {n}/{total} round trips",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let _ = err.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = write!(err, "\r{}\r", " ".repeat(80));
    let _ = err.flush();
}

fn main() -> ExitCode {
    let args: Args = examples::cli::parse();
    let addr = match args.addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => return usage_error(&format!("'{}' resolves to no address", args.addr)),
        Err(e) => return usage_error(&format!("cannot resolve '{}': {e}", args.addr)),
    };
    if !addr.ip().is_loopback() && !args.allow_non_loopback {
        return usage_error(&format!(
            "{addr} is not a loopback address (pass --allow-non-loopback to insist)"
        ));
    }
    let threads = args.threads.min(args.conns);
    let total = u64::from(args.conns) * args.msgs;
    let progress = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    // The loops, and this thread, which starts the clock.
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let mut loops = Vec::with_capacity(threads as usize);
    let (per, extra) = (args.conns / threads, args.conns % threads);
    let mut next = 0;
    for t in 0..threads {
        let n = per + u32::from(t < extra);
        let ids = next..next + n;
        next += n;
        let (args, barrier) = (args.clone(), barrier.clone());
        let (progress, failed) = (progress.clone(), failed.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("client-loop-{}", t + 1))
            .spawn(move || run_loop(addr, ids, &args, &barrier, progress, &failed));
        match spawned {
            Ok(h) => loops.push(h),
            Err(e) => {
                eprintln!("echo_client: cannot start a thread: {e}");
                std::process::exit(1); // the started loops wait at the barrier
            }
        }
    }
    barrier.wait();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let bar = io::stderr().is_terminal().then(|| {
        let (progress, done) = (progress.clone(), done.clone());
        std::thread::spawn(move || show_progress(&progress, total, &done))
    });
    let results: Vec<LoopResult> = loops
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("a loop panicked".into())))
        .collect();
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        let _ = bar.join();
    }
    let mut hist = match new_histogram() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("echo_client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut errors: Vec<String> = Vec::new();
    for r in results {
        match r {
            Ok(h) => {
                let _ = hist.add(&h);
            }
            Err(e) if e.is_empty() => {}
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() || failed.load(Ordering::Relaxed) {
        for e in &errors {
            eprintln!("echo_client: {e}");
        }
        if errors.is_empty() {
            eprintln!("echo_client: failed");
        }
        return ExitCode::FAILURE;
    }
    let secs = elapsed.as_secs_f64();
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{} round trips of {} bytes over {} connections ({} loop{}) in {:.3} s, every byte checked",
        hist.len(),
        args.size,
        args.conns,
        threads,
        if threads == 1 { "" } else { "s" },
        secs
    );
    println!(
        "round trips per second: {:.0}",
        hist.len() as f64 / secs.max(1e-9)
    );
    println!(
        "latency: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        us(hist.value_at_quantile(0.50)),
        us(hist.value_at_quantile(0.99)),
        us(hist.max())
    );
    ExitCode::SUCCESS
}

/// A bad command line that clap cannot see (an address that does not
/// resolve, or is not loopback): the message, then exit 2 like clap.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("echo_client: {msg}\nUsage: echo_client [OPTIONS] <ADDR> (see --help)");
    ExitCode::from(2)
}
