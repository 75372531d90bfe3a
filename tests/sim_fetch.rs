//! The requests of `examples/fetch.rs` (the fetcher's `Fetch` and
//! `Attempt`, written with `#[tevent_request]`) under simulation, against
//! the line server of `examples/line.rs` on the same simulated context: a
//! real TCP connection on the loopback interface, read and written by
//! `tevent::io` with faults injected from the seed. Over 1 000 seeds
//! every fetch finishes exactly once, with the server's answer or with
//! one of the documented errors after its retries, and leaves nothing
//! behind; without faults every fetch gets the answer.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use examples::line::{line_server_send, listen};
use tevent::sim::{self, Fault, Faults, Seeds};
use tevent::{Context, ReqError};

// The example program itself, requests and all (its `main` goes unused).
#[path = "../examples/fetch.rs"]
#[allow(dead_code, unreachable_pub)]
mod fetch;

use fetch::{Fetch, fetch_recv, fetch_send};

/// One fetch of `hello` from a line server on `ev`, with two retries; its
/// result. Checks that nothing is left once the server is dropped.
fn fetch_once(ev: &Context) -> Result<String, ReqError<std::io::Error>> {
    let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let server = line_server_send(ev, listener);
    let req = fetch_send(
        ev,
        Fetch {
            addr,
            line: "hello".to_string(),
            timeout: Duration::from_secs(1),
        },
        2,
    );
    req.poll(ev)
        .expect("the loop runs until the fetch finished");
    assert!(!req.is_in_progress());
    let out = fetch_recv(req);
    drop(server);
    let left = ev.event_counts();
    assert_eq!(left.total(), 0, "left behind: {left:?}");
    out
}

#[test]
fn without_faults_every_seed_fetches_the_answer() {
    sim::run(Seeds::from_env(200), Faults::NONE, |ev| {
        assert_eq!(fetch_once(ev).expect("the answer"), "HELLO");
    });
}

#[test]
fn under_faults_the_fetcher_answers_or_fails_as_documented_over_1000_seeds() {
    let faults = Faults {
        short_read: 0.3,
        short_write: 0.3,
        interrupted: 0.1,
        would_block: 0.1,
        reset: 0.03,
        early_eof: 0.03,
        delayed_readiness: 0.1,
        late_timer: 0.2,
        late_timer_max: Duration::from_millis(50),
        no_memory: 0.01,
    };
    let (mut answered, mut recovered, mut failed) = (0, 0, 0);
    let seeds = Seeds::from_env(1000);
    sim::run(seeds, faults, |ev| {
        let out = fetch_once(ev);
        let faults: Vec<(Fault, u64)> = Fault::ALL
            .iter()
            .map(|k| (*k, sim::injected(ev, *k)))
            .filter(|(_, n)| *n > 0)
            .collect();
        match out {
            Ok(answer) => {
                // An early end of file injected into the server's read of
                // the request line ends the line there: the server answers
                // what it got, as its protocol says (examples/line.rs).
                let early_eof = sim::injected(ev, Fault::EarlyEof) > 0;
                assert!(
                    answer == "HELLO" || (early_eof && "HELLO".starts_with(&answer)),
                    "{answer:?} {faults:?}"
                );
                answered += 1;
                if sim::injected(ev, Fault::Reset) + sim::injected(ev, Fault::EarlyEof) > 0 {
                    recovered += 1;
                }
            }
            Err(ReqError::User(e)) => {
                // A reset reaches the fetcher as the reset, or as the end
                // of file its peer's shutdown makes; an early end of file
                // as an unexpected one; a reset on the server's side as a
                // broken pipe or a reset on the client's; a server session
                // that ran out of memory closes its connection (an early
                // end of file); a server that could not be allocated (or
                // its accept) refuses the connection.
                if e.kind() == ErrorKind::ConnectionRefused {
                    assert!(sim::injected(ev, Fault::NoMemory) > 0, "{faults:?}");
                    failed += 1;
                    return;
                }
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::UnexpectedEof
                            | ErrorKind::BrokenPipe
                            | ErrorKind::ConnectionAborted
                    ),
                    "{e:?} {faults:?}"
                );
                let fatal = [Fault::Reset, Fault::EarlyEof, Fault::NoMemory];
                assert!(
                    fatal.iter().any(|k| sim::injected(ev, *k) > 0),
                    "{e:?} {faults:?}"
                );
                failed += 1;
            }
            Err(ReqError::NoMemory) => {
                assert!(sim::injected(ev, Fault::NoMemory) > 0);
                failed += 1;
            }
            Err(ReqError::TimedOut) => {
                panic!("an attempt timed out: nothing here takes a second")
            }
            Err(other) => panic!("{other:?}"),
        }
    });
    println!(
        "{} seeds: {answered} answered ({recovered} after a reset or an early end of file), {failed} failed",
        seeds.runs
    );
    if seeds.runs >= 1000 {
        assert!(recovered > 0, "no retry recovered from a fault");
        assert!(failed > 0, "no fault was fatal");
    }
}
