//! Ping-pong over a socket pair, driven by fd, timer and signal events.
//!
//! ```text
//! cargo run --release --example ping_pong -- [ROUNDS]
//! ```
//!
//! Two ends of a Unix socket pair live on one loop. The "ping" side writes a
//! numbered message whenever its watcher says the socket is writable and the
//! previous answer came back; the "pong" side answers every message it reads.
//! A one-second timer prints progress, and SIGINT or SIGTERM stops the game
//! early and cleanly (the handlers run from the loop, not in signal context).
//! At the end it prints the number of round trips and the rate.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tevent::{Context, FdFlags};

const DEFAULT_ROUNDS: u64 = 100_000;

fn main() -> ExitCode {
    let rounds = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => DEFAULT_ROUNDS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: ping_pong [ROUNDS]   (ROUNDS: a positive integer)");
            return ExitCode::from(2);
        }
    };
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping_pong failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(rounds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ev = Context::new()?;
    let (ping, pong) = UnixStream::pair()?;
    ping.set_nonblocking(true)?;
    pong.set_nonblocking(true)?;
    let ping = Rc::new(ping);
    let pong = Rc::new(pong);

    let sent = Rc::new(Cell::new(0u64));
    let answered = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let started = Instant::now();

    // Ping: write message N when writable, then wait (paused) for its answer.
    let (s, p) = (sent.clone(), ping.clone());
    let ping_writer = ev.add_fd_shared(ping.clone(), FdFlags::WRITE, move |_, me, _| {
        let msg = s.get().to_le_bytes();
        match (&*p).write(&msg) {
            Ok(8) => {
                s.set(s.get() + 1);
                me.set_flags(FdFlags::empty());
            }
            Ok(_) => unreachable!("8-byte writes on a stream socket with room are whole"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("ping write: {e}"),
        }
    })?;
    let ping_writer = Rc::new(ping_writer);

    // Ping's reader: an answer arrived; check it and arm the writer again.
    let (a, p, w, st) = (
        answered.clone(),
        ping.clone(),
        ping_writer.clone(),
        stop.clone(),
    );
    let _ping_reader = ev.add_fd_shared(ping.clone(), FdFlags::READ, move |_, me, _| {
        let mut buf = [0u8; 8];
        match (&*p).read_exact(&mut buf) {
            Ok(()) => {
                let n = u64::from_le_bytes(buf);
                assert_eq!(n, a.get(), "answers come back in order");
                a.set(n + 1);
                if a.get() == rounds || st.get() {
                    me.set_flags(FdFlags::empty());
                } else {
                    w.set_flags(FdFlags::WRITE).expect("context alive");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("ping read: {e}"),
        }
    })?;

    // Pong: answer every message.
    let q = pong.clone();
    let answered_done = answered.clone();
    let _pong = ev.add_fd_shared(pong.clone(), FdFlags::READ, move |_, me, _| {
        let mut buf = [0u8; 8];
        match (&*q).read_exact(&mut buf) {
            Ok(()) => {
                (&*q).write_all(&buf).expect("pong write");
                if u64::from_le_bytes(buf) + 1 == rounds {
                    me.set_flags(FdFlags::empty());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("pong read: {e}"),
        }
    })?;

    // Progress once a second; stops re-arming when the game is over.
    let (a, st) = (answered_done.clone(), stop.clone());
    let _progress = ev.add_timer_after(Duration::from_secs(1), move |_, me| {
        println!("progress: {} round trips", a.get());
        if a.get() < rounds && !st.get() {
            me.restart_after(Duration::from_secs(1));
        }
    });

    // SIGINT / SIGTERM: finish the round in flight, then stop.
    let signal_stop = |name: &'static str| {
        let st = stop.clone();
        move |_: &Context, _: &tevent::SignalRef<'_>, _| {
            println!("{name}: stopping");
            st.set(true);
        }
    };
    let sigint = ev.add_signal(libc::SIGINT, signal_stop("SIGINT"))?;
    let sigterm = ev.add_signal(libc::SIGTERM, signal_stop("SIGTERM"))?;

    ev.loop_until(|| {
        answered_done.get() == rounds || (stop.get() && answered_done.get() == sent.get())
    })?;
    drop((sigint, sigterm));

    let secs = started.elapsed().as_secs_f64();
    let n = answered_done.get();
    println!(
        "{n} round trips in {secs:.3} s ({:.0} round trips/s){}",
        n as f64 / secs,
        if stop.get() {
            ", stopped by a signal"
        } else {
            ""
        }
    );
    Ok(())
}
