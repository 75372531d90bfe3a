//! Requests written under a strict lint wall (`clippy::pedantic` as
//! errors, `missing_docs`, `unreachable_pub`), on edition 2021, with
//! `tevent` renamed to `tv`: the code `#[tevent_request]` writes must not
//! trip a lint that the same code without the attribute would not.
//!
//! Each request here stands for a class of issue 16: split bounds, a
//! private child request and output type, an 8-argument `start` with the
//! user's `#[allow]`, a `#[cfg]` on a `start` parameter, a step named `gen`,
//! and the renamed dependency (`crate = tv`). `.ci/run`'s clippy runs this
//! crate with and without its feature `with-label`; the tests below run the
//! requests.
#![deny(clippy::pedantic, missing_docs, unreachable_pub)]
#![deny(rust_2018_idioms)]

use std::fmt::Debug;

use tv::{tevent_request, Context, Next, ReqError};

/// The error of every request here.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed;

/// A private child request, with a private output type.
struct Child;

/// The private child's output.
#[derive(Debug)]
struct Hidden(u32);

#[tevent_request(crate = tv, steps(start => done))]
impl Child {
    type Output = Hidden;
    type Error = Failed;

    fn start(to: _, n: u32) -> Next<Self> {
        to.create(Child).done(Hidden(n + 1))
    }
}

/// Waits for the private child, in a step named `gen` (a keyword only from
/// edition 2024 on).
pub struct Generation {
    seen: u32,
}

#[tevent_request(crate = tv, steps(start => gen => done))]
impl Generation {
    type Output = u32;
    type Error = Failed;

    fn start(to: _, n: u32) -> Next<Self> {
        let to = to.create(Generation { seen: 0 });
        to.gen(child_send(to.ev(), n))
    }

    fn gen(&mut self, to: _, got: Hidden) -> Next<Self> {
        self.seen = got.0;
        to.done(self.seen * 2)
    }
}

/// Bounds split between the parameter list and the `where` clause (of the
/// `impl` block, which clippy does not mind there; the generated functions
/// that take the block's generics must not split them either).
pub struct Split<T: Clone>
where
    T: Debug,
{
    value: T,
}

#[tevent_request(crate = tv, steps(start => show => done))]
impl<T: Clone + 'static> Split<T>
where
    T: Debug,
{
    type Output = String;
    type Error = Failed;

    fn start<U>(to: _, value: U) -> Next<Self>
    where
        U: Into<T> + Debug,
    {
        let to = to.create(Split {
            value: value.into(),
        });
        to.show(child_send(to.ev(), 1))
    }

    fn show(&mut self, to: _, _child: Hidden) -> Next<Self> {
        to.done(format!("{:?}", self.value.clone()))
    }
}

/// An 8-argument `start`, allowed by its author; one argument exists only
/// with the feature `with-label`.
pub struct Many;

#[tevent_request(crate = tv, steps(start => done))]
impl Many {
    type Output = u64;
    type Error = Failed;

    /// Sums its arguments.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::many_single_char_names)]
    fn start(
        to: _,
        a: u8,
        b: u16,
        c: u32,
        d: u64,
        e: u8,
        f: u16,
        g: u32,
        #[cfg(feature = "with-label")] label: &str,
    ) -> Next<Self> {
        #[cfg(feature = "with-label")]
        let extra = label.len() as u64;
        #[cfg(not(feature = "with-label"))]
        let extra = 0;
        let sum = u64::from(a) + u64::from(b) + u64::from(c) + d + u64::from(e);
        to.create(Many)
            .done(sum + u64::from(f) + u64::from(g) + extra)
    }
}

/// Runs each request to its end and returns what it gave.
///
/// # Errors
///
/// A request's failure, as [`ReqError`].
///
/// # Panics
///
/// If the loop fails (it does not, on a working `Context`).
pub fn run_all(ev: &Context) -> Result<(u32, String, u64), ReqError<Failed>> {
    let g = generation_send(ev, 20);
    let s = split_send::<String, &str>(ev, "x");
    #[cfg(feature = "with-label")]
    let m = many_send(ev, 1, 2, 3, 4, 5, 6, 7, "abc");
    #[cfg(not(feature = "with-label"))]
    let m = many_send(ev, 1, 2, 3, 4, 5, 6, 7);
    Ok((
        g.poll_recv(ev).expect("loop")?,
        s.poll_recv(ev).expect("loop")?,
        m.poll_recv(ev).expect("loop")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_runs_under_the_lint_wall() {
        let ev = Context::new().expect("context");
        let (g, s, m) = run_all(&ev).expect("requests");
        assert_eq!(g, 42);
        assert_eq!(s, "\"x\"");
        let label = if cfg!(feature = "with-label") { 3 } else { 0 };
        assert_eq!(m, 28 + label);
    }
}
