//! Micro-benchmarks in the peer harness's format (`../shared/bench/peers`).
//!
//! ```text
//! cargo run --release --example bench -- <workload> <N>
//! ```
//!
//! Prints exactly one line on stdout:
//!
//! ```text
//! workload=<name> impl=tevent-rs n=<N> ns_per_op=<f> ops_per_s=<f> allocs_per_op=<f>
//! ```
//!
//! Diagnostics go to stderr, prefixed `#`. Each workload first runs a warm-up
//! of N/10 operations (at most 200 000), then one timed pass; it exits non-zero
//! if its self-check fails. `allocs_per_op` counts heap allocations (including
//! reallocations) made during the timed pass, by a counting global allocator.
//!
//! Workloads (same definitions as the C tevent and tokio peers):
//! - `immediate`: one immediate event that reschedules itself N times;
//! - `immediate_alloc`: a chain of N immediates, each hop a fresh event, the
//!   old one dropped in its own handler;
//! - `timers`: N one-shot timers with deadlines uniform over the next 50 ms
//!   (splitmix64, the peers' seed), fired in deadline order; ns_per_op is
//!   process CPU time, the wall time goes to stderr.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tevent::{Context, Immediate};

const IMPL: &str = "tevent-rs";
/// Same seed and PRNG as the peers, so every implementation sees the same deadlines.
const SEED: u64 = 0x5eed_5eed_1234_5678;
const TIMER_SPREAD_US: u64 = 50_000;

/// Counts allocations so the result line can report allocations per operation.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Process CPU time (user + system), as the peers measure timers.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a valid, properly aligned timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        die("clock_gettime failed");
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn warmup_n(n: u64) -> u64 {
    (n / 10).clamp(1, 200_000)
}

/// What one timed pass measured.
struct Pass {
    ns: u128,
    allocs: u64,
}

fn measure(f: impl FnOnce() -> u128) -> Pass {
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let ns = f();
    Pass {
        ns,
        allocs: ALLOCS.load(Ordering::Relaxed) - a0,
    }
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn run_immediate(ev: &Context, n: u64) -> u128 {
    let fired = Rc::new(Cell::new(0u64));
    let f = fired.clone();
    let im = ev.add_immediate(move |_, me| {
        f.set(f.get() + 1);
        if f.get() < n {
            me.schedule();
        }
    });
    let t0 = Instant::now();
    im.schedule().unwrap_or_else(|e| die(&e.to_string()));
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if fired.get() != n {
        die(&format!("immediate: fired {} of {n}", fired.get()));
    }
    ns
}

fn run_immediate_alloc(ev: &Context, n: u64) -> u128 {
    struct Chain {
        fired: Cell<u64>,
        target: u64,
        current: RefCell<Option<Immediate>>,
    }
    fn hop(ev: &Context, chain: &Rc<Chain>) {
        let c = chain.clone();
        let im = ev.add_immediate(move |ev, _| {
            c.fired.set(c.fired.get() + 1);
            // Drop our own event (freed in its handler, as the C peer does) and
            // continue with a fresh one.
            let me = c.current.borrow_mut().take();
            if c.fired.get() < c.target {
                hop(ev, &c);
            }
            drop(me);
        });
        im.schedule().unwrap_or_else(|e| die(&e.to_string()));
        *chain.current.borrow_mut() = Some(im);
    }
    let chain = Rc::new(Chain {
        fired: Cell::new(0),
        target: n,
        current: RefCell::new(None),
    });
    let t0 = Instant::now();
    hop(ev, &chain);
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    let ns = t0.elapsed().as_nanos();
    if chain.fired.get() != n {
        die(&format!(
            "immediate_alloc: fired {} of {n}",
            chain.fired.get()
        ));
    }
    ns
}

/// Returns process CPU ns; `wall` gets the wall time.
fn run_timers(ev: &Context, n: u64, wall: &mut Duration) -> u128 {
    struct Check {
        fired: Cell<u64>,
        order_errors: Cell<u64>,
        early: Cell<u64>,
        last: Cell<Option<Instant>>,
    }
    let mut seed = SEED;
    let offs: Vec<u64> = (0..n)
        .map(|_| splitmix64(&mut seed) % TIMER_SPREAD_US)
        .collect();
    let check = Rc::new(Check {
        fired: Cell::new(0),
        order_errors: Cell::new(0),
        early: Cell::new(0),
        last: Cell::new(None),
    });
    let mut timers = Vec::with_capacity(n as usize);
    let c0 = cpu_now();
    let t0 = Instant::now();
    let base = ev.now();
    for off in offs {
        let c = check.clone();
        timers.push(
            ev.add_timer(base + Duration::from_micros(off), move |ev, me| {
                let deadline = me.deadline();
                if c.last.get().is_some_and(|l| deadline < l) {
                    c.order_errors.set(c.order_errors.get() + 1);
                } else {
                    c.last.set(Some(deadline));
                }
                if ev.loop_time() < deadline {
                    c.early.set(c.early.get() + 1);
                }
                c.fired.set(c.fired.get() + 1);
            }),
        );
    }
    ev.loop_wait().unwrap_or_else(|e| die(&e.to_string()));
    *wall = t0.elapsed();
    let cpu = (cpu_now() - c0).as_nanos();
    if check.fired.get() != n {
        die(&format!("timers: fired {} of {n}", check.fired.get()));
    }
    if check.order_errors.get() != 0 {
        die(&format!(
            "timers: {} fired out of deadline order",
            check.order_errors.get()
        ));
    }
    if check.early.get() != 0 {
        die(&format!(
            "timers: {} fired before their deadline",
            check.early.get()
        ));
    }
    drop(timers);
    cpu
}

fn usage() -> ExitCode {
    eprintln!("usage: bench <workload> <N>");
    eprintln!("workloads: immediate immediate_alloc timers");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return usage();
    }
    let workload = args[1].as_str();
    let n: u64 = match args[2].parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("error: bad N '{}' (want a positive integer)", args[2]);
            return ExitCode::from(2);
        }
    };
    let ev = Context::new().unwrap_or_else(|e| die(&e.to_string()));
    let pass = match workload {
        "immediate" => {
            run_immediate(&ev, warmup_n(n));
            measure(|| run_immediate(&ev, n))
        }
        "immediate_alloc" => {
            run_immediate_alloc(&ev, warmup_n(n));
            measure(|| run_immediate_alloc(&ev, n))
        }
        "timers" => {
            let mut wall = Duration::ZERO;
            run_timers(&ev, warmup_n(n), &mut wall);
            let p = measure(|| run_timers(&ev, n, &mut wall));
            eprintln!(
                "# timers: ns_per_op is process CPU time; wall={:.3} ms (deadlines spread over {} ms)",
                wall.as_secs_f64() * 1e3,
                TIMER_SPREAD_US / 1000
            );
            p
        }
        _ => return usage(),
    };
    let ns_per_op = pass.ns as f64 / n as f64;
    let ops_per_s = if ns_per_op > 0.0 {
        1e9 / ns_per_op
    } else {
        0.0
    };
    println!(
        "workload={workload} impl={IMPL} n={n} ns_per_op={ns_per_op:.3} ops_per_s={ops_per_s:.1} allocs_per_op={:.3}",
        pass.allocs as f64 / n as f64
    );
    ExitCode::SUCCESS
}
