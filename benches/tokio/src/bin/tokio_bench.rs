//! tokio_bench: the workloads of `examples/bench.rs` on tokio's
//! current-thread runtime, as close as they map.
//!
//! ```text
//! tokio_bench <workload> <N>
//! ```
//!
//! Prints one line on stdout,
//! `workload=W impl=tokio n=N ns_per_op=F ops_per_s=F`, and `#` diagnostics
//! on stderr. Each workload first runs a warm-up of N/10 ops (at most
//! 200 000), as `examples/bench.rs` does. Exit status: 0; 1 when a
//! self-check fails; 2 for a bad command line.
//!
//! What one op is here (tevent's counterpart in brackets):
//! - `immediate`: one `yield_now` of a task (an immediate rescheduling itself);
//! - `immediate_alloc`: one hop of a chain where each task spawns the next (a
//!   fresh immediate per hop);
//! - `timers`: one task spawned that sleeps until its deadline (a timer added
//!   and fired); the deadlines are the same as tevent's; tokio's timer wheel
//!   has 1 ms slots, so fire order is checked at that granularity (and not
//!   for timers already due when their task first runs); ns_per_op is
//!   process CPU time;
//! - `fd`: one wake-up of a task reading a byte from its end of a Unix socket
//!   pair and writing the next one back (a read fd event on each end);
//! - `req_lifecycle`: one task spawned that finishes at once, joined through
//!   its `JoinHandle` (a request done in its send, posted, received);
//! - `req_lifecycle_batch`: the same, 1000 chains at once;
//! - `nested`: one level of a 16-deep chain of boxed futures (`Box::pin` per
//!   level, like a request's allocation) whose innermost yields once; odd
//!   reps fail there with EPROTO, which `?` propagates out;
//! - `nested_inline` (tokio only): the same chain as 16 distinct `async fn`s
//!   the compiler fuses into one state machine, no allocation per level.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::task::yield_now;

const IMPL: &str = "tokio";
/// The seed and generator of `examples/bench.rs`.
const SEED: u64 = 0x5eed_5eed_1234_5678;
const SPREAD_US: u64 = 50_000;
const DEPTH: u32 = 16;
const BATCH: u64 = 1000;
const MAGIC: u64 = 0xa5a5_a5a5_a5a5_a5a5;

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn warmup_of(n: u64) -> u64 {
    (n / 10).clamp(1, 200_000)
}

/// Process CPU time (user + system).
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        die("clock_gettime failed");
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

async fn immediate(n: u64) -> u128 {
    let t0 = Instant::now();
    let task = tokio::spawn(async move {
        let mut done = 0u64;
        while done < n {
            done += 1;
            if done < n {
                yield_now().await;
            }
        }
        done
    });
    let done = task.await.unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if done != n {
        die(&format!("immediate: {done} of {n}"));
    }
    ns
}

/// One hop: counts itself, spawns the next, and the last reports the count.
fn hop(done: u64, want: u64, report: Arc<AtomicU64>, end: tokio::sync::oneshot::Sender<()>) {
    tokio::spawn(async move {
        let done = done + 1;
        if done < want {
            hop(done, want, report, end);
        } else {
            report.store(done, Ordering::Relaxed);
            let _ = end.send(());
        }
    });
}

async fn immediate_alloc(n: u64) -> u128 {
    let count = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let t0 = Instant::now();
    hop(0, n, count.clone(), tx);
    rx.await
        .unwrap_or_else(|_| die("immediate_alloc: chain broken"));
    let ns = t0.elapsed().as_nanos();
    if count.load(Ordering::Relaxed) != n {
        die("immediate_alloc: wrong count");
    }
    ns
}

/// Returns process CPU ns; `wall` gets the wall time.
async fn timers(n: u64, wall: &mut Duration) -> u128 {
    let mut seed = SEED;
    let offs: Vec<u64> = (0..n).map(|_| splitmix64(&mut seed) % SPREAD_US).collect();
    // None fires early, and fire order holds up to the wheel's 1 ms slots:
    // a timer fired after one due more than 1 ms later is out of order. A
    // task's sleep is registered when the task first runs, after the spawn
    // loop: a timer already due then completes in spawn order, so those
    // ("late") are left out of the order check and counted.
    let latest_us = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let c0 = cpu_now();
    let t0 = Instant::now();
    let base = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for off in offs {
        let (latest_us, bad, late) = (latest_us.clone(), bad.clone(), late.clone());
        let due = base + Duration::from_micros(off);
        tasks.push(tokio::spawn(async move {
            if tokio::time::Instant::now() >= due {
                late.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep_until(due).await;
                return;
            }
            tokio::time::sleep_until(due).await;
            if tokio::time::Instant::now() < due {
                bad.fetch_add(1, Ordering::Relaxed);
            }
            if off + 1000 < latest_us.fetch_max(off, Ordering::Relaxed) {
                bad.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| die(&e.to_string()));
    }
    *wall = t0.elapsed();
    let cpu = (cpu_now() - c0).as_nanos();
    eprintln!(
        "# timers: {} of {n} already due when their task first ran (not order-checked)",
        late.load(Ordering::Relaxed)
    );
    if bad.load(Ordering::Relaxed) != 0 {
        die(&format!(
            "timers: {} fired early or out of order",
            bad.load(Ordering::Relaxed)
        ));
    }
    cpu
}

/// One end of the socket pair: handles ops `first`, `first + 2`, ... of `n`.
async fn bounce(mut sock: UnixStream, first: u64, n: u64) -> u64 {
    let mut bad = 0;
    let mut byte = [0u8];
    let mut i = first;
    while i < n {
        match sock.read(&mut byte).await {
            Ok(1) => {}
            other => die(&format!("fd: read: {other:?}")),
        }
        if byte[0] != i as u8 {
            bad += 1;
        }
        if i + 1 < n {
            let next = [(i + 1) as u8];
            if let Err(e) = sock.write_all(&next).await {
                die(&format!("fd: write: {e}"));
            }
        }
        i += 2;
    }
    bad
}

async fn fd(n: u64) -> u128 {
    let (a, mut b) = UnixStream::pair().unwrap_or_else(|e| die(&e.to_string()));
    let t0 = Instant::now();
    // The first byte goes in at end b, so end a reads it first.
    if let Err(e) = b.write_all(&[0]).await {
        die(&format!("fd: write: {e}"));
    }
    let ta = tokio::spawn(bounce(a, 0, n));
    let tb = tokio::spawn(bounce(b, 1, n));
    let bad = ta.await.unwrap_or_else(|e| die(&e.to_string()))
        + tb.await.unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if bad != 0 {
        die(&format!("fd: {bad} bytes out of sequence"));
    }
    ns
}

/// `width` chains of `per_chain` sequential spawned tasks, each joined.
async fn req_lifecycle(width: u64, per_chain: u64) -> u128 {
    let t0 = Instant::now();
    let chains: Vec<_> = (0..width)
        .map(|chain| {
            tokio::spawn(async move {
                let mut wrong = 0u64;
                for i in 0..per_chain {
                    let id = (chain << 32) | i;
                    let req = tokio::spawn(async move { id ^ MAGIC });
                    match req.await {
                        Ok(out) if out ^ MAGIC == id => {}
                        _ => wrong += 1,
                    }
                }
                wrong
            })
        })
        .collect();
    let mut wrong = 0;
    for c in chains {
        wrong += c.await.unwrap_or_else(|e| die(&e.to_string()));
    }
    let ns = t0.elapsed().as_nanos();
    if wrong != 0 {
        die(&format!("req_lifecycle: {wrong} wrong results"));
    }
    ns
}

fn nest(depth: u32, fail: bool) -> Pin<Box<dyn Future<Output = Result<(), i32>> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            yield_now().await;
            return if fail { Err(libc::EPROTO) } else { Ok(()) };
        }
        nest(depth - 1, fail).await?;
        Ok(())
    })
}

async fn leaf(fail: bool) -> Result<(), i32> {
    yield_now().await;
    if fail { Err(libc::EPROTO) } else { Ok(()) }
}

/// Defines `$name`, an `async fn` awaiting `$inner` (no box in between).
macro_rules! level {
    ($name:ident, $inner:ident) => {
        async fn $name(fail: bool) -> Result<(), i32> {
            $inner(fail).await?;
            Ok(())
        }
    };
}
level!(l1, leaf);
level!(l2, l1);
level!(l3, l2);
level!(l4, l3);
level!(l5, l4);
level!(l6, l5);
level!(l7, l6);
level!(l8, l7);
level!(l9, l8);
level!(l10, l9);
level!(l11, l10);
level!(l12, l11);
level!(l13, l12);
level!(l14, l13);
level!(l15, l14);

async fn nested(reps: u64, inline: bool) -> u128 {
    let t0 = Instant::now();
    let driver = tokio::spawn(async move {
        let mut wrong = 0u64;
        for rep in 0..reps {
            let fail = rep % 2 == 1;
            let got = if inline {
                l15(fail).await
            } else {
                nest(DEPTH - 1, fail).await
            };
            if got != if fail { Err(libc::EPROTO) } else { Ok(()) } {
                wrong += 1;
            }
        }
        wrong
    });
    let wrong = driver.await.unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if wrong != 0 {
        die(&format!("nested: {wrong} wrong outcomes"));
    }
    ns
}

fn usage() -> ExitCode {
    eprintln!("usage: tokio_bench <workload> <N>");
    eprintln!(
        "workloads: immediate immediate_alloc timers fd req_lifecycle req_lifecycle_batch \
         nested nested_inline"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return usage();
    }
    let mut n: u64 = match args[2].parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("error: bad N '{}' (want a positive integer)", args[2]);
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&e.to_string()));
    let w = args[1].as_str();
    let ns = match w {
        "immediate" => rt.block_on(async {
            immediate(warmup_of(n)).await;
            immediate(n).await
        }),
        "immediate_alloc" => rt.block_on(async {
            immediate_alloc(warmup_of(n)).await;
            immediate_alloc(n).await
        }),
        "timers" => rt.block_on(async {
            let mut wall = Duration::ZERO;
            timers(warmup_of(n), &mut wall).await;
            let ns = timers(n, &mut wall).await;
            eprintln!(
                "# timers: ns_per_op is process CPU time; wall={:.3} ms",
                wall.as_secs_f64() * 1e3
            );
            ns
        }),
        "fd" => rt.block_on(async {
            fd(warmup_of(n)).await;
            fd(n).await
        }),
        "req_lifecycle" => rt.block_on(async {
            req_lifecycle(1, warmup_of(n)).await;
            req_lifecycle(1, n).await
        }),
        "req_lifecycle_batch" => {
            let per_chain = n.div_ceil(BATCH);
            n = per_chain * BATCH;
            rt.block_on(async {
                req_lifecycle(BATCH, (per_chain / 10).max(1)).await;
                req_lifecycle(BATCH, per_chain).await
            })
        }
        "nested" | "nested_inline" => {
            let reps = (n / u64::from(DEPTH)).max(1);
            n = reps * u64::from(DEPTH);
            let inline = w == "nested_inline";
            rt.block_on(async {
                nested(warmup_of(reps), inline).await;
                nested(reps, inline).await
            })
        }
        _ => return usage(),
    };
    let per_op = ns as f64 / n as f64;
    let ops = if per_op > 0.0 { 1e9 / per_op } else { 0.0 };
    println!("workload={w} impl={IMPL} n={n} ns_per_op={per_op:.3} ops_per_s={ops:.1}");
    ExitCode::SUCCESS
}
