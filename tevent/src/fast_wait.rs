//! The loop's wait on Linux: one `epoll_wait` on the poller's epoll fd,
//! used only after this context has checked that `polling` encodes its
//! registrations the way this module decodes them.
//!
//! # Why
//!
//! `polling`'s own wait ([`Poller::wait`]) costs five system calls on
//! Linux: it arms a timerfd for the timeout, waits, then reads and re-arms
//! its notifier. The loop's steady state needs only the `epoll_wait`
//! (`docs/performance.md`: 2.03 system calls per echo round trip instead
//! of about 2.1), so on Linux the loop reads the epoll fd that
//! [`Poller`] exposes (`AsFd`) itself, and decodes each event's data as the
//! key it registered. That encoding (the key as the event's 64-bit data,
//! the notifier under `usize::MAX`) is `polling`'s private business, which
//! a compatible release could change; if it did and nothing checked, every
//! fd event would go to the wrong watcher or to none, silently.
//!
//! # The choice: check once per context, fall back to `polling`'s wait
//!
//! Two designs keep the saving without that risk: owning the epoll instance
//! on Linux (registering through it, with `polling` serving the other
//! platforms), or checking `polling`'s encoding and falling back to its own
//! wait when the check fails. This module does the second: it keeps one
//! registration path on every platform (`polling`'s, which the fd table,
//! the signal pipe, [`crate::Remote`] and the fork handling all use), and
//! the code that depends on `polling`'s internals is this module alone.
//!
//! 1. **When a context is made** ([`FastWait::new`], on the fresh poller,
//!    before anything else is registered), a probe eventfd (readable from
//!    the start) is registered through `polling` under a key shaped like an
//!    fd-table key (every byte different, so a truncated, shifted or tagged
//!    encoding shows), then under the signal pipe's key (whose top bits are
//!    set), and the notifier is woken; after each step one `epoll_wait`
//!    that does not block must report exactly the expected keys, readable,
//!    and after `polling`'s own wait the notifier must be quiet again (that
//!    wait is how the fast path clears it). About fifteen system calls, once
//!    per context. If anything differs, or a call fails, this context's
//!    waits all go through [`Poller::wait`]: four system calls more per
//!    wait, and otherwise the same behaviour (it is the path that waits
//!    with a sub-millisecond end already take, and the only path on the
//!    platforms other than Linux).
//! 2. **On every fast wait**, an event whose key is neither the signal
//!    pipe's, the notifier's nor that of an fd in the table is unexpected:
//!    the batch that wait produced is dropped and the wait is read again
//!    through [`Poller::wait`] with a zero timeout (registrations are
//!    level-triggered, so every ready fd is reported again, decoded by
//!    `polling` itself): no event is lost or delivered twice. Such a key has
//!    rare legitimate causes (an fd that the `AfterWait` trace hook
//!    removed; a registration left behind by an fd closed while watched),
//!    so one does not condemn the fast path, but [`STRAY_LIMIT`] waits in a
//!    row with one switch this context to [`Poller::wait`] for good.
//!
//! A forked child's new poller is not checked again: the encoding belongs to
//! the `polling` code in the process, which the fork does not change.
//!
//! The unit tests below register a known fd under a known key and check
//! what `epoll_wait` reports (so a `polling` release with another encoding
//! fails them), show that the check refuses a poller whose registrations
//! carry another encoding, and run fd events, signals, remote wake-ups and
//! timers through a context on each path.
//!
//! On the other platforms (kqueue on macOS and FreeBSD) [`FastWait`] is an
//! empty type whose [`FastWait::on`] is false: every wait is `polling`'s.

#[cfg(target_os = "linux")]
pub(crate) use linux::FastWait;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::FastWait;

/// What one fast wait reported besides fd readiness.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// `polling`'s notifier fired (a [`crate::Remote`] woke the loop): only
    /// `polling`'s own wait clears and re-arms it.
    pub(crate) notified: bool,
    /// A key that names nothing this context registered: the wait must be
    /// read again through `polling` (see the module documentation).
    pub(crate) unexpected: bool,
}

/// Waits in a row with an unexpected key after which a context stops using
/// the fast wait.
#[cfg(target_os = "linux")]
pub(crate) const STRAY_LIMIT: u32 = 8;

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use polling::{Event, Events, PollMode, Poller};
    use rustix::event::epoll;

    use super::{STRAY_LIMIT, Seen};
    use crate::fd::FdTable;
    use crate::signal::SIGNAL_KEY;

    /// The key `polling` registers its notifier (and its timeout timer)
    /// under.
    pub(super) const NOTIFY_KEY: usize = usize::MAX;

    /// The probe's fd-table-shaped key: a generation in the high half, a
    /// slot index in the low half, every byte different. Never a live key:
    /// the check runs before the table has any entry.
    pub(super) const PROBE_KEY: usize = 0x0102_0304_0506_0708_u64 as usize;

    /// The loop's fast wait (see the [module documentation](super)).
    pub(crate) struct FastWait {
        /// What `epoll_wait` reads.
        events: RefCell<Vec<epoll::Event>>,
        /// Whether waits may read epoll directly: the check passed, and
        /// fewer than [`STRAY_LIMIT`] waits in a row had an unexpected key.
        on: Cell<bool>,
        /// Waits in a row that had an unexpected key.
        strays: Cell<u32>,
    }

    impl FastWait {
        /// Checks `polling`'s encoding on `poller`, which must be fresh
        /// (nothing registered yet); `None` (under Miri) leaves the fast
        /// wait off.
        pub(crate) fn new(poller: Option<&Poller>, capacity: usize) -> FastWait {
            let on = poller.is_some_and(|p| check(p, register_through_polling).is_ok());
            FastWait {
                events: RefCell::new(Vec::with_capacity(capacity)),
                on: Cell::new(on),
                strays: Cell::new(0),
            }
        }

        /// Whether this context's waits read epoll directly.
        #[inline]
        pub(crate) fn on(&self) -> bool {
            self.on.get()
        }

        /// Makes every wait of this context go through `polling` (a
        /// simulated context, whose checks sit on that path only).
        pub(crate) fn turn_off(&self) {
            self.on.set(false);
        }

        /// Runs the check again, with `register` standing for `polling`'s
        /// registration, and turns the fast wait on or off by its result
        /// (`poller` must be as fresh as in [`FastWait::new`]).
        #[cfg(test)]
        pub(super) fn recheck(&self, poller: &Poller, register: Register) -> Result<(), Mismatch> {
            let result = check(poller, register);
            self.on.set(result.is_ok());
            result
        }

        /// One `epoll_wait` on the poller's epoll fd. The timeout is
        /// rounded up to whole milliseconds (so a timer may fire up to 1 ms
        /// after its slack boundary) and capped at `i32::MAX` ms (a spurious
        /// wake-up after 24 days). Returns the number of events; an
        /// interrupted wait returns 0.
        #[inline]
        pub(crate) fn wait(&self, poller: &Poller, timeout: Option<Duration>) -> io::Result<usize> {
            // Whole milliseconds, rounded up: the seconds' are exact, so
            // only the fraction rounds (64-bit arithmetic: no 128-bit
            // division per wait).
            let ms = timeout.map(|t| {
                let frac = u64::from(t.subsec_nanos().div_ceil(1_000_000));
                t.as_secs()
                    .saturating_mul(1000)
                    .saturating_add(frac)
                    .min(i32::MAX as u64)
            });
            let ts = ms.map(|ms| rustix::time::Timespec {
                tv_sec: (ms / 1000) as i64,
                tv_nsec: ((ms % 1000) * 1_000_000) as _,
            });
            let mut events = self.events.borrow_mut();
            events.clear();
            match epoll::wait(
                poller.as_fd(),
                rustix::buffer::spare_capacity(&mut *events),
                ts.as_ref(),
            ) {
                Ok(n) => Ok(n),
                Err(rustix::io::Errno::INTR) => Ok(0),
                Err(e) => Err(e.into()),
            }
        }

        /// Hands the events of the last [`FastWait::wait`] to the fd table
        /// (`signal` runs for the signal pipe's). With an unexpected key,
        /// takes this wait's entries out of the batch again (the caller
        /// reads the wait again through `polling`), and counts it towards
        /// [`STRAY_LIMIT`].
        #[inline]
        pub(crate) fn deliver(&self, fds: &mut FdTable, mut signal: impl FnMut()) -> Seen {
            use epoll::EventFlags as F;
            let mut seen = Seen::default();
            let start = fds.batch_len();
            for ev in self.events.borrow().iter() {
                let key = ev.data.u64();
                let flags = ev.flags;
                if key == SIGNAL_KEY as u64 {
                    signal();
                } else if key == NOTIFY_KEY as u64 {
                    seen.notified = true;
                } else if !fds.push_ready_raw(
                    key,
                    flags.intersects(F::IN | F::HUP | F::ERR | F::PRI),
                    flags.intersects(F::OUT | F::HUP | F::ERR),
                    flags.intersects(F::HUP | F::ERR),
                ) {
                    seen.unexpected = true;
                }
            }
            if seen.unexpected {
                fds.truncate_batch(start);
                let strays = self.strays.get() + 1;
                self.strays.set(strays);
                if strays >= STRAY_LIMIT {
                    self.on.set(false);
                }
            } else {
                self.strays.set(0);
            }
            seen
        }

        /// Puts events into the buffer as if a wait had read them.
        #[cfg(test)]
        pub(crate) fn inject(&self, events: &[(u64, epoll::EventFlags)]) {
            let mut buf = self.events.borrow_mut();
            buf.clear();
            buf.extend(events.iter().map(|&(key, flags)| epoll::Event {
                flags,
                data: epoll::EventData::new_u64(key),
            }));
        }
    }

    /// How the check registers (`add`) or re-registers (`modify`) its probe
    /// fd under a key: through `polling` in real use; the tests pass a
    /// function that writes another encoding straight into epoll.
    pub(super) type Register =
        fn(&Poller, std::os::fd::BorrowedFd<'_>, usize, bool) -> io::Result<()>;

    /// Registers the probe through `polling`, as the fd table does (level
    /// mode, readable interest).
    pub(super) fn register_through_polling(
        poller: &Poller,
        fd: std::os::fd::BorrowedFd<'_>,
        key: usize,
        add: bool,
    ) -> io::Result<()> {
        if add {
            // SAFETY: the probe fd outlives its registration: `check`
            // deletes it from the poller before the fd is dropped.
            unsafe { poller.add_with_mode(fd.as_raw_fd(), Event::readable(key), PollMode::Level) }
        } else {
            poller.modify_with_mode(fd, Event::readable(key), PollMode::Level)
        }
    }

    /// Why the check failed (the fields are for `Debug`: test failures).
    #[derive(Debug)]
    #[allow(dead_code, reason = "the fields are read through Debug only")]
    pub(super) enum Mismatch {
        /// A system call failed (`epoll_wait` on the fd `polling` exposes,
        /// for one, if that is not an epoll fd).
        Io(io::Error),
        /// A wait reported other keys (or flags) than expected.
        Reported {
            /// What the step expected (keys, all readable).
            expected: Vec<u64>,
            /// What `epoll_wait` reported: (key, readable).
            got: Vec<(u64, bool)>,
        },
    }

    impl From<io::Error> for Mismatch {
        fn from(e: io::Error) -> Self {
            Mismatch::Io(e)
        }
    }

    /// Checks, on a fresh `poller`, that an fd registered with `register`
    /// under a key is reported by `epoll_wait` with that key as its data,
    /// and that `polling`'s notifier is reported under [`NOTIFY_KEY`] and
    /// cleared by `polling`'s own wait (see the module documentation).
    pub(super) fn check(poller: &Poller, register: Register) -> Result<(), Mismatch> {
        use rustix::event::{EventfdFlags, eventfd};
        // Its counter starts at 1: readable until read, which nobody does.
        let probe =
            eventfd(1, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(io::Error::from)?;
        register(poller, probe.as_fd(), PROBE_KEY, true)?;
        let steps = || -> Result<(), Mismatch> {
            expect(poller, &[PROBE_KEY])?;
            register(poller, probe.as_fd(), SIGNAL_KEY, false)?;
            expect(poller, &[SIGNAL_KEY])?;
            poller.notify()?;
            expect(poller, &[SIGNAL_KEY, NOTIFY_KEY])?;
            let mut events = Events::with_capacity(std::num::NonZeroUsize::MIN.saturating_add(7));
            poller.wait(&mut events, Some(Duration::ZERO))?;
            expect(poller, &[SIGNAL_KEY])
        };
        let result = steps();
        // Deleted before `probe` closes (the registration's requirement).
        let _ = poller.delete(probe.as_fd());
        result
    }

    /// One `epoll_wait` that does not block must report exactly `keys`, each
    /// once, readable.
    fn expect(poller: &Poller, keys: &[usize]) -> Result<(), Mismatch> {
        let mut buf = Vec::with_capacity(8);
        let n = epoll::wait(
            poller.as_fd(),
            rustix::buffer::spare_capacity(&mut buf),
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        )
        .map_err(io::Error::from)?;
        let mut got: Vec<(u64, bool)> = buf[..n]
            .iter()
            .map(|ev| {
                let flags = ev.flags;
                (ev.data.u64(), flags.contains(epoll::EventFlags::IN))
            })
            .collect();
        got.sort_unstable();
        let mut expected: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
        expected.sort_unstable();
        let want: Vec<(u64, bool)> = expected.iter().map(|&k| (k, true)).collect();
        if got == want {
            Ok(())
        } else {
            Err(Mismatch::Reported { expected, got })
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;
    use std::time::Duration;

    use polling::Poller;

    use super::Seen;
    use crate::fd::FdTable;

    /// No fast wait here: every wait is `polling`'s (see the [module
    /// documentation](super)).
    pub(crate) struct FastWait;

    impl FastWait {
        /// The fast wait is Linux's only.
        pub(crate) fn new(_poller: Option<&Poller>, _capacity: usize) -> FastWait {
            FastWait
        }

        /// Always false here.
        #[inline]
        pub(crate) fn on(&self) -> bool {
            false
        }

        /// Nothing to turn off here.
        pub(crate) fn turn_off(&self) {}

        /// Never called ([`FastWait::on`] is false).
        pub(crate) fn wait(
            &self,
            _poller: &Poller,
            _timeout: Option<Duration>,
        ) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        /// Never called ([`FastWait::on`] is false).
        pub(crate) fn deliver(&self, _fds: &mut FdTable, _signal: impl FnMut()) -> Seen {
            Seen::default()
        }
    }
}

/// The Linux fast wait's checks, on real epoll instances (Miri has none).
#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::io::{Read as _, Write as _};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::time::Duration;

    use polling::{Event, PollMode, Poller};
    use rustix::event::epoll;

    use super::linux::{Mismatch, NOTIFY_KEY, PROBE_KEY, check, register_through_polling};
    use super::{STRAY_LIMIT, Seen};
    use crate::signal::SIGNAL_KEY;
    use crate::{Context, FdEvent, FdFlags};

    /// What one `epoll_wait` that does not block reports on `poller`'s fd:
    /// (data, flags), sorted.
    fn reported(poller: &Poller) -> Vec<(u64, epoll::EventFlags)> {
        let mut buf = Vec::with_capacity(16);
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let n = epoll::wait(
            poller.as_fd(),
            rustix::buffer::spare_capacity(&mut buf),
            Some(&zero),
        )
        .expect("epoll_wait");
        let mut got: Vec<_> = buf[..n]
            .iter()
            .map(|ev| {
                let flags = ev.flags;
                (ev.data.u64(), flags)
            })
            .collect();
        got.sort_unstable_by_key(|(k, _)| *k);
        got
    }

    /// A pipe whose read end is readable (one byte in it).
    fn readable_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        let (rd, wr) = crate::sys::pipe().expect("pipe");
        rustix::io::write(&wr, b"x").expect("write");
        (rd, wr)
    }

    /// The encoding the fast wait decodes, checked on its own: a known fd
    /// registered through `polling` under a known key is reported by
    /// `epoll_wait` on the poller's fd with exactly that key, and
    /// `polling`'s notifier under `usize::MAX`. A `polling` release that
    /// encodes otherwise fails this test (and its contexts take the
    /// fallback, which the tests below show to be correct).
    #[test]
    fn polling_registers_keys_as_the_fast_wait_reads_them() {
        let poller = Poller::new().expect("poller");
        let (rd, _wr) = readable_pipe();
        for key in [PROBE_KEY, 7, (3 << 32) | 5, SIGNAL_KEY] {
            // SAFETY: `rd` outlives the registration (deleted below).
            unsafe { poller.add_with_mode(rd.as_raw_fd(), Event::readable(key), PollMode::Level) }
                .expect("add");
            let got = reported(&poller);
            poller.delete(rd.as_fd()).expect("delete");
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].0, key as u64);
            assert!(got[0].1.contains(epoll::EventFlags::IN));
        }
        poller.notify().expect("notify");
        let got = reported(&poller);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, NOTIFY_KEY as u64);
        // And the whole check passes (on a fresh poller, as in
        // `Context::new`: this one's notifier stays disarmed until
        // `polling`'s own wait re-arms it), so a new context uses the fast
        // wait.
        check(&Poller::new().expect("poller"), register_through_polling).expect("the check passes");
        assert!(Context::new().expect("context").inner.fast.on());
    }

    /// Writes the probe into epoll itself, with `encode` applied to the key:
    /// what a `polling` with another encoding would do.
    fn register_encoded(
        poller: &Poller,
        fd: BorrowedFd<'_>,
        key: usize,
        add: bool,
        encode: fn(u64) -> u64,
    ) -> std::io::Result<()> {
        let data = epoll::EventData::new_u64(encode(key as u64));
        let flags = epoll::EventFlags::IN;
        if add {
            epoll::add(poller.as_fd(), fd, data, flags)?;
        } else {
            epoll::modify(poller.as_fd(), fd, data, flags)?;
        }
        Ok(())
    }

    #[test]
    fn the_check_refuses_an_encoding_other_than_the_key_itself() {
        fn truncated(p: &Poller, fd: BorrowedFd<'_>, key: usize, add: bool) -> std::io::Result<()> {
            register_encoded(p, fd, key, add, |k| k & 0xffff_ffff)
        }
        fn tagged(p: &Poller, fd: BorrowedFd<'_>, key: usize, add: bool) -> std::io::Result<()> {
            register_encoded(p, fd, key, add, |k| k ^ (1 << 63))
        }
        fn shifted(p: &Poller, fd: BorrowedFd<'_>, key: usize, add: bool) -> std::io::Result<()> {
            register_encoded(p, fd, key, add, |k| k.rotate_left(8))
        }
        fn same(p: &Poller, fd: BorrowedFd<'_>, key: usize, add: bool) -> std::io::Result<()> {
            register_encoded(p, fd, key, add, |k| k)
        }
        for register in [truncated, tagged, shifted] {
            let poller = Poller::new().expect("poller");
            match check(&poller, register) {
                Err(Mismatch::Reported { expected, got }) => {
                    assert_eq!(expected, [PROBE_KEY as u64]);
                    assert_eq!(got.len(), 1);
                    assert_ne!(got[0].0, PROBE_KEY as u64);
                }
                other => panic!("{other:?}"),
            }
            // The probe left nothing behind in the poller.
            assert_eq!(reported(&poller), []);
        }
        // The same encoding written by hand passes: the check compares
        // encodings, not who registered.
        check(&Poller::new().expect("poller"), same).expect("identity encoding");
    }

    /// Fd events (several fds, two watchers on one fd, read and write
    /// readiness, a hang-up), a signal, a wake-up through a `Remote` and a
    /// timer, each delivered exactly once, on `ev`.
    fn every_event_is_delivered(ev: &Context, signum: i32) {
        let log: Rc<RefCell<Vec<String>>> = Rc::default();
        let mut keep: Vec<UnixStream> = Vec::new();
        let mut watchers: Vec<FdEvent<'static>> = Vec::new();
        // Three readable sockets; the first with two watchers.
        for i in 0..3 {
            let (a, mut b) = UnixStream::pair().expect("pair");
            b.write_all(&[b'0' + i]).expect("write");
            let a = Rc::new(a);
            let watchers_here = if i == 0 { 2 } else { 1 };
            for w in 0..watchers_here {
                let (l, sock) = (log.clone(), a.clone());
                watchers.push(
                    ev.add_fd_shared(a.clone(), FdFlags::READ, move |_, me, ready| {
                        assert_eq!(ready, FdFlags::READ);
                        if w == 0 {
                            let mut byte = [0];
                            (&*sock).read_exact(&mut byte).expect("read");
                            l.borrow_mut().push(format!("read {}", byte[0] as char));
                        } else {
                            l.borrow_mut().push("second watcher".into());
                        }
                        me.set_flags(FdFlags::empty());
                    })
                    .expect("watch"),
                );
            }
            keep.push(b);
        }
        // A writable socket.
        let (c, _c_peer) = UnixStream::pair().expect("pair");
        let l = log.clone();
        watchers.push(
            ev.add_fd(c.into(), FdFlags::WRITE, move |_, me, ready| {
                assert_eq!(ready, FdFlags::WRITE);
                l.borrow_mut().push("writable".into());
                me.set_flags(FdFlags::empty());
            })
            .expect("watch"),
        );
        // A hung-up socket: READ and ERROR (Linux reports hang-ups).
        let (d, d_peer) = UnixStream::pair().expect("pair");
        drop(d_peer);
        let l = log.clone();
        watchers.push(
            ev.add_fd(
                d.into(),
                FdFlags::READ | FdFlags::ERROR,
                move |_, me, ready| {
                    assert_eq!(ready, FdFlags::READ | FdFlags::ERROR);
                    l.borrow_mut().push("hang-up".into());
                    me.set_flags(FdFlags::empty());
                },
            )
            .expect("watch"),
        );
        let l = log.clone();
        let _signal = ev
            .add_signal(signum, move |_, _, count| {
                l.borrow_mut().push(format!("signal x{count}"))
            })
            .expect("signal");
        crate::signal::raise(signum).expect("raise");
        let remote = ev.remote();
        let posted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = posted.clone();
        std::thread::spawn(move || {
            remote
                .send(move |_| p.store(true, std::sync::atomic::Ordering::SeqCst))
                .expect("send")
        })
        .join()
        .expect("thread");
        let l = log.clone();
        let _timer = ev.add_timer_after(Duration::from_millis(2), move |_, _| {
            l.borrow_mut().push("timer".into())
        });
        let expected = [
            "hang-up",
            "read 0",
            "read 1",
            "read 2",
            "second watcher",
            "signal x1",
            "timer",
            "writable",
        ];
        ev.loop_until(|| {
            log.borrow().len() >= expected.len() && posted.load(std::sync::atomic::Ordering::SeqCst)
        })
        .expect("loop");
        let mut got = log.borrow().clone();
        got.sort();
        assert_eq!(got, expected);
        if ev.inner.fast.on() {
            // The notifier the `Remote` fired is quiet again (the fast wait
            // cleared it through `polling`). (`polling`'s own waits may
            // leave its timeout timer armed, which fires under the same key
            // later, so this holds on the fast wait only.)
            let poller = ev.inner.poller().map(|p| p.clone()).expect("poller");
            let left = reported(&poller);
            assert!(
                left.iter().all(|(k, _)| *k != NOTIFY_KEY as u64),
                "the notifier is still ready: {left:?}"
            );
        }
        // Nothing runs again: every watcher paused itself.
        ev.set_wait_timeout(Some(Duration::ZERO));
        while ev.loop_once().expect("step") {}
        assert_eq!(log.borrow().len(), expected.len(), "nothing ran twice");
    }

    #[test]
    fn the_fast_wait_delivers_every_event() {
        let ev = Context::new().expect("context");
        assert!(ev.inner.fast.on());
        every_event_is_delivered(&ev, crate::signal::SIGUSR1);
        assert!(ev.inner.fast.on(), "nothing unexpected turned it off");
    }

    /// A context whose check finds another encoding (written into its
    /// poller's epoll by hand, as a `polling` with another encoding would)
    /// waits through `Poller::wait`, and delivers every event the same.
    #[test]
    fn a_context_that_finds_another_encoding_waits_through_polling() {
        fn shifted(p: &Poller, fd: BorrowedFd<'_>, key: usize, add: bool) -> std::io::Result<()> {
            register_encoded(p, fd, key, add, |k| k.rotate_left(16))
        }
        let ev = Context::new().expect("context");
        assert!(ev.inner.fast.on());
        let poller = ev.inner.poller().map(|p| p.clone()).expect("poller");
        // The check `Context::new` ran, again, on the same poller (as fresh:
        // the check leaves nothing behind), finding the other encoding.
        let result = ev.inner.fast.recheck(&poller, shifted);
        assert!(
            matches!(result, Err(Mismatch::Reported { .. })),
            "{result:?}"
        );
        assert!(!ev.inner.fast.on());
        every_event_is_delivered(&ev, crate::signal::SIGUSR2);
        assert!(!ev.inner.fast.on());
    }

    /// A registration under a key nobody in the table has (as an fd whose
    /// key `polling` encoded otherwise would show up) stays ready: every
    /// fast wait finds it, reads the wait again through `polling`, and
    /// after `STRAY_LIMIT` such waits the context stops using the fast wait;
    /// meanwhile every real event is delivered exactly once.
    #[test]
    fn an_unexpected_key_is_read_again_through_polling() {
        let ev = Context::new().expect("context");
        assert!(ev.inner.fast.on());
        let poller = ev.inner.poller().map(|p| p.clone()).expect("poller");
        let (stray, _stray_w) = readable_pipe();
        let stray_key = 0x5eed_0000_0000_0001_u64;
        epoll::add(
            poller.as_fd(),
            stray.as_fd(),
            epoll::EventData::new_u64(stray_key),
            epoll::EventFlags::IN,
        )
        .expect("add");
        let waits = Rc::new(Cell::new(0u32));
        let w = waits.clone();
        ev.set_loop_trace_hook(Some(Box::new(move |p| {
            if p == crate::trace::LoopPoint::BeforeWait {
                w.set(w.get() + 1)
            }
        })));
        // One readable socket at a time, for more waits than the limit.
        let hits = Rc::new(Cell::new(0u32));
        for i in 0..STRAY_LIMIT + 2 {
            let before = ev.inner.fast.on();
            let (a, mut b) = UnixStream::pair().expect("pair");
            b.write_all(b"x").expect("write");
            let h = hits.clone();
            let _w = ev
                .add_fd(a.into(), FdFlags::READ, move |_, me, _| {
                    h.set(h.get() + 1);
                    me.set_flags(FdFlags::empty());
                })
                .expect("watch");
            let want = hits.get() + 1;
            ev.loop_until(|| hits.get() == want).expect("loop");
            assert_eq!(hits.get(), i + 1, "delivered exactly once");
            if i + 1 < STRAY_LIMIT {
                assert!(before && ev.inner.fast.on(), "wait {i}");
            }
        }
        assert!(
            !ev.inner.fast.on(),
            "turned off after {STRAY_LIMIT} stray waits"
        );
        assert!(waits.get() >= STRAY_LIMIT + 2);
        epoll::delete(poller.as_fd(), stray.as_fd()).expect("delete");
    }

    /// The legitimate case: the `AfterWait` trace hook drops a watcher
    /// whose fd that very wait reported. Its key is unknown by the time the
    /// events are read; the wait is read again through `polling`, the
    /// other fd is delivered once, the dropped one never, and the context
    /// keeps the fast wait.
    #[test]
    fn a_watcher_dropped_after_the_wait_is_not_delivered() {
        let ev = Context::new().expect("context");
        let hits: Rc<RefCell<Vec<&str>>> = Rc::default();
        let mut peers = Vec::new();
        let mut watch = |name: &'static str| {
            let (a, mut b) = UnixStream::pair().expect("pair");
            b.write_all(b"x").expect("write");
            peers.push(b);
            let h = hits.clone();
            ev.add_fd(a.into(), FdFlags::READ, move |_, me, _| {
                h.borrow_mut().push(name);
                me.set_flags(FdFlags::empty());
            })
            .expect("watch")
        };
        let doomed = Rc::new(RefCell::new(Some(watch("dropped"))));
        let _kept = watch("kept");
        let d = doomed.clone();
        ev.set_loop_trace_hook(Some(Box::new(move |p| {
            if p == crate::trace::LoopPoint::AfterWait {
                d.borrow_mut().take();
            }
        })));
        assert!(ev.loop_once().expect("step"));
        ev.set_loop_trace_hook(None);
        assert_eq!(*hits.borrow(), ["kept"]);
        ev.set_wait_timeout(Some(Duration::ZERO));
        while ev.loop_once().expect("step") {}
        assert_eq!(*hits.borrow(), ["kept"]);
        assert!(ev.inner.fast.on(), "one stray wait keeps the fast wait");
    }

    /// `deliver` itself: an unknown key drops the entries of its wait and
    /// says so; the signal pipe and the notifier are recognised.
    #[test]
    fn deliver_sorts_the_keys() {
        let ev = Context::new().expect("context");
        let (a, mut b) = UnixStream::pair().expect("pair");
        b.write_all(b"x").expect("write");
        let _w = ev
            .add_fd(a.into(), FdFlags::READ, |_, _, _| {})
            .expect("watch");
        // The fd's key, as the wait reports it.
        let poller = ev.inner.poller().map(|p| p.clone()).expect("poller");
        let fkey = match reported(&poller)[..] {
            [(key, _)] => key,
            ref other => panic!("{other:?}"),
        };
        let signals = Cell::new(0);
        let fast = &ev.inner.fast;
        let inn = epoll::EventFlags::IN;
        fast.inject(&[
            (fkey, inn),
            (SIGNAL_KEY as u64, inn),
            (NOTIFY_KEY as u64, inn),
        ]);
        let seen = fast.deliver(&mut ev.inner.fds.borrow_mut(), || {
            signals.set(signals.get() + 1)
        });
        assert_eq!(
            seen,
            Seen {
                notified: true,
                unexpected: false
            }
        );
        assert_eq!((signals.get(), ev.inner.fds.borrow().batch_len()), (1, 1));
        fast.inject(&[(fkey, inn), (fkey ^ (1 << 40), inn)]);
        let seen = fast.deliver(&mut ev.inner.fds.borrow_mut(), || {});
        assert!(seen.unexpected);
        assert_eq!(
            ev.inner.fds.borrow().batch_len(),
            1,
            "the second wait's entry was dropped"
        );
    }
}
