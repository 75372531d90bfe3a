//! Signal events: handlers for POSIX signals that run from the loop, never in
//! signal context ([`Context::add_signal`], C tevent's `tevent_add_signal`),
//! the signal numbers as constants ([`SIGINT`], [`SIGTERM`], ...: no `libc`
//! needed), [`raise`], and the sender's details ([`SigInfo`]) for handlers
//! that ask for them ([`Context::add_signal_with_info`], C tevent's
//! `SA_SIGINFO` handlers).
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use tevent::Context;
//! use tevent::signal::{SIGUSR2, raise};
//!
//! let ev = Context::new()?;
//! let seen = Rc::new(Cell::new(0));
//! let s = seen.clone();
//! let _usr2 = ev.add_signal(SIGUSR2, move |_ev, _me, count| s.set(s.get() + count))?;
//! raise(SIGUSR2)?;
//! ev.loop_once()?;
//! assert_eq!(seen.get(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The signal numbers are plain `i32` constants with the platform's values
//! (the ones `libc` has): any other number works too, as in C.
//!
//! ## How delivery works
//!
//! The process-wide part (`sys`) installs one `sigaction` (with `SA_SIGINFO`
//! and `SA_RESTART`) per signal number when the first handler for it appears
//! anywhere in the process, remembering the previous disposition, and
//! restores that disposition when the last handler goes. The installed OS
//! handler only does async-signal-safe work, with atomics on static memory:
//! it records the sender's details in a fixed-size ring per signal
//! ([`SIGINFO_RING`] entries), bumps a per-signal counter and a global
//! generation, and writes one byte into the wake-up pipe of every context
//! that handles the signal. Each context compares the counters with what it
//! last saw at the start of every loop step, so the count a handler receives
//! is exactly the number of signals since the previous dispatch (coalesced,
//! never lost).
//!
//! A burst of up to [`SIGINFO_RING`] (256, C tevent's bound) deliveries of
//! one signal before a context's loop reads them keeps every sender's
//! details, whatever the loop is doing meanwhile. Two threads taking the
//! same signal at the same instant write the ring in turn: the second
//! waits for the first (a few dozen instructions).
//!
//! **When the ring overflows** (more than [`SIGINFO_RING`] deliveries of one
//! signal before a context's loop reads them), the count stays exact but the
//! details of the oldest deliveries are lost; the handler is told how many
//! in [`Deliveries::lost`], so `infos.len() + lost == count` always holds.
//! (The same happens to a delivery whose OS handler waited for another
//! thread's write of the ring for too long, about a million spins: that
//! thread was descheduled in the middle of it.) C tevent instead blocks the
//! signal while its ring is full, so the kernel holds further deliveries
//! (queuing real-time signals, merging standard ones into one): there the
//! details survive and the count does not; here the count survives and
//! the details past 256 do not. Blocking would also only hold back the
//! thread the OS handler ran on, not the process.
//!
//! Wake-up pipes come from a fixed pool and are never closed (a closed fd could
//! be reused while a signal handler on another thread is about to write to it);
//! a context returns its pipe to the pool when it is dropped.

mod handle;
pub(crate) mod sys;

use std::os::fd::RawFd;

use polling::{Event, PollMode};

use crate::Error;
use crate::context::{Context, Inner};
use crate::panic::run_handler;
use crate::slab::{Key, Slab};
use crate::trace::{EventKind, EventPoint};

pub use handle::{Signal, SignalRef};

/// Poller key of a context's signal wake-up pipe.
pub(crate) const SIGNAL_KEY: usize = usize::MAX - 1;

/// The handler of a signal event: `(context, view, deliveries)` (a handler
/// added without details gets `deliveries.count`).
pub(crate) type SignalFn = Box<dyn FnMut(&Context, &SignalRef<'_>, &Deliveries<'_>)>;

/// Entries in each signal's ring of sender details: the details of up to
/// this many deliveries of one signal between two dispatches are kept, as
/// C tevent keeps `tevent_sa_info_queue_count()` (256) per signal (see the
/// [module documentation](self) for what happens beyond). The rings are
/// static memory: 24 bytes per entry, per signal number (about 390 KiB
/// of address space, touched only for the signals a process handles:
/// 6 KiB each).
pub const SIGINFO_RING: usize = 256;

/// Hangup (`SIGHUP`): often "reload the configuration".
pub const SIGHUP: i32 = libc::SIGHUP;
/// Interrupt from the keyboard (`SIGINT`, Ctrl-C).
pub const SIGINT: i32 = libc::SIGINT;
/// Quit from the keyboard (`SIGQUIT`).
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// Abort (`SIGABRT`).
pub const SIGABRT: i32 = libc::SIGABRT;
/// User-defined signal 1 (`SIGUSR1`).
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2 (`SIGUSR2`).
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// Write to a pipe or socket with no reader (`SIGPIPE`).
pub const SIGPIPE: i32 = libc::SIGPIPE;
/// Timer signal from `alarm` (`SIGALRM`).
pub const SIGALRM: i32 = libc::SIGALRM;
/// Termination request (`SIGTERM`): the polite "please exit".
pub const SIGTERM: i32 = libc::SIGTERM;
/// A child process stopped or exited (`SIGCHLD`).
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// Continue if stopped (`SIGCONT`).
pub const SIGCONT: i32 = libc::SIGCONT;
/// Stop request from the terminal (`SIGTSTP`, Ctrl-Z).
pub const SIGTSTP: i32 = libc::SIGTSTP;
/// Terminal window size changed (`SIGWINCH`).
pub const SIGWINCH: i32 = libc::SIGWINCH;
/// I/O is possible on a descriptor (`SIGIO`).
pub const SIGIO: i32 = libc::SIGIO;

/// [`SigInfo::code`] of a signal sent by `kill(2)` (Linux, FreeBSD; macOS
/// reports 0 instead, so it has no such constant here).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const SI_USER: i32 = libc::SI_USER;
/// [`SigInfo::code`] of a signal sent by `sigqueue(3)` (Linux, FreeBSD;
/// macOS has no `sigqueue`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const SI_QUEUE: i32 = libc::SI_QUEUE;
/// [`SigInfo::code`] of a signal sent to one thread by `tkill`/`tgkill`
/// (what [`raise`] does on Linux). Linux only.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const SI_TKILL: i32 = libc::SI_TKILL;
/// [`SigInfo::code`] of a signal sent by the kernel (Linux, FreeBSD).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const SI_KERNEL: i32 = libc::SI_KERNEL;

// FreeBSD's values, from its <sys/signal.h> (the `libc` crate lacks them
// there).
/// [`SigInfo::code`] of a signal sent by `kill(2)` (Linux, FreeBSD; macOS
/// reports 0 instead, so it has no such constant here).
#[cfg(target_os = "freebsd")]
pub const SI_USER: i32 = 0x10001;
/// [`SigInfo::code`] of a signal sent by `sigqueue(3)` (Linux, FreeBSD;
/// macOS has no `sigqueue`).
#[cfg(target_os = "freebsd")]
pub const SI_QUEUE: i32 = 0x10002;
/// [`SigInfo::code`] of a signal sent by the kernel (Linux, FreeBSD).
#[cfg(target_os = "freebsd")]
pub const SI_KERNEL: i32 = 0x10006;
/// [`SigInfo::code`] of a signal sent to one thread by `thr_kill(2)`.
/// FreeBSD only.
#[cfg(target_os = "freebsd")]
pub const SI_LWP: i32 = 0x10007;

/// Sends `signum` to the calling thread (`raise(3)`): for tests, and for a
/// program that signals itself. Fails with the OS error (`EINVAL` for a
/// number that is not a signal).
///
/// ```
/// use tevent::Context;
/// use tevent::signal::{SIGUSR1, raise};
///
/// let ev = Context::new()?;
/// let got = std::rc::Rc::new(std::cell::Cell::new(0));
/// let g = got.clone();
/// let _h = ev.add_signal(SIGUSR1, move |_, _, n| g.set(g.get() + n))?;
/// raise(SIGUSR1)?;
/// ev.loop_once()?;
/// assert_eq!(got.get(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn raise(signum: i32) -> std::io::Result<()> {
    // SAFETY: raise(3) has no memory preconditions; an invalid number is
    // reported through its return value.
    if unsafe { libc::raise(signum) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Who sent one delivery of a signal: the fields of the kernel's
/// `siginfo_t` that a handler usually wants (C tevent hands the whole
/// `siginfo_t` to its `SA_SIGINFO` handlers). The values are the kernel's,
/// unchanged, and what the kernel fills in differs by platform:
///
/// - **Linux**: `pid` and `uid` are the sender's process id and real user
///   id when a process sent the signal (`code` is `SI_USER`, `SI_QUEUE` or
///   `SI_TKILL`); for `SIGCHLD` they are the child's; for a signal the
///   kernel raised they are 0.
/// - **FreeBSD**: the same, with `code` `SI_USER`, `SI_QUEUE` or `SI_LWP`
///   (`thr_kill`) for a signal a process sent.
/// - **macOS**: `pid` and `uid` are the sender's, but `code` is 0 for every
///   signal a process sent (`kill`, `raise`, `pthread_kill`; macOS has no
///   `sigqueue`), and the kernel keeps the sender's details once per
///   process, not per delivery: of several deliveries pending at the same
///   time, only one carries them, the others have 0 in all three fields.
///
/// The `SI_*` constants of this module exist only where the kernel reports
/// them (`SI_USER`, `SI_QUEUE`, `SI_KERNEL` on Linux and FreeBSD,
/// `SI_TKILL` on Linux, `SI_LWP` on FreeBSD).
///
/// ```
/// use tevent::signal::{SIGUSR1, SigInfo, raise};
/// let ev = tevent::Context::new()?;
/// let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::<SigInfo>::new()));
/// let g = got.clone();
/// let _h = ev.add_signal_with_info(SIGUSR1, move |_, _, d| g.borrow_mut().extend_from_slice(d.infos))?;
/// raise(SIGUSR1)?;
/// ev.loop_once()?;
/// assert_eq!(got.borrow()[0].pid, std::process::id() as i32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SigInfo {
    /// The sending process (`si_pid`).
    pub pid: i32,
    /// The sender's real user id (`si_uid`).
    pub uid: u32,
    /// Why the signal was sent (`si_code`): `SI_USER`, `SI_QUEUE`, a
    /// `CLD_*` code for `SIGCHLD`, ... (0 on macOS for a signal a process
    /// sent; see above).
    pub code: i32,
}

/// What a handler added with [`Context::add_signal_with_info`] receives:
/// the deliveries of its signal since its previous run.
///
/// `count` is exact (as for [`Context::add_signal`]); `infos` has the
/// sender's details of each delivery whose details were kept, oldest first;
/// `lost` counts the others (ring overflow; see the [module
/// documentation](self)). `infos.len() + lost == count` always.
///
/// ```
/// use tevent::signal::{SIGINFO_RING, SIGUSR2, raise};
/// let ev = tevent::Context::new()?;
/// let seen = std::rc::Rc::new(std::cell::Cell::new((0, 0, 0)));
/// let s = seen.clone();
/// let _h = ev.add_signal_with_info(SIGUSR2, move |_, _, d| {
///     s.set((d.count, d.infos.len() as u32, d.lost))
/// })?;
/// for _ in 0..SIGINFO_RING + 2 {
///     raise(SIGUSR2)?; // more than the ring holds before the loop looks
/// }
/// ev.loop_once()?;
/// let n = SIGINFO_RING as u32;
/// assert_eq!(seen.get(), (n + 2, n, 2)); // exact count, newest details, 2 lost
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Deliveries<'a> {
    /// Deliveries since the handler's previous run (signals coalesce).
    pub count: u32,
    /// The details of the deliveries that were kept, oldest first.
    pub infos: &'a [SigInfo],
    /// Deliveries whose details were lost (the ring overflowed).
    pub lost: u32,
}

impl Deliveries<'_> {
    /// Whether the details of some deliveries were lost.
    ///
    /// ```
    /// use tevent::signal::{SIGINFO_RING, SIGUSR1, raise};
    /// let ev = tevent::Context::new()?;
    /// let over = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let o = over.clone();
    /// let _h = ev.add_signal_with_info(SIGUSR1, move |_, _, d| o.set(d.overflowed()))?;
    /// for _ in 0..=SIGINFO_RING {
    ///     raise(SIGUSR1)?;
    /// }
    /// ev.loop_once()?;
    /// assert!(over.get());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn overflowed(&self) -> bool {
        self.lost > 0
    }
}

pub(crate) struct SigEntry {
    signum: i32,
    one_shot: bool,
    /// `None` while the handler runs.
    handler: Option<SignalFn>,
    tag: u64,
    /// Registration order, so handlers of one signal run in the order added.
    seq: u64,
    /// Deliveries counted for this handler and not yet handed to it.
    pending: u32,
    /// Whether the handler wants the senders' details.
    wants_info: bool,
    /// Details of the pending deliveries (at most `SIGINFO_RING`, the
    /// newest), and how many were lost.
    infos: Vec<SigInfo>,
    lost: u32,
}

impl SigEntry {
    /// Adds the details of new deliveries to those still pending (a handler
    /// runs late only after another handler of its dispatch panicked),
    /// keeping the newest `SIGINFO_RING`.
    fn add_infos(&mut self, infos: &[SigInfo], lost: u32) {
        self.lost = self.lost.saturating_add(lost);
        self.infos.extend_from_slice(infos);
        let over = self.infos.len().saturating_sub(SIGINFO_RING);
        if over > 0 {
            self.infos.drain(..over);
            self.lost = self
                .lost
                .saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
        }
    }
}

/// The details of the `count` deliveries of signal `s` between the counter
/// readings `last` and `now`, and how many were lost: those whose OS handler
/// could not write the ring, and those overwritten before this read.
fn read_infos(s: usize, last: u64, now: u64, count: u32) -> (Vec<SigInfo>, u32) {
    let (from, to) = (sys::ringed(last), sys::ringed(now));
    let ringed = to.wrapping_sub(from);
    // Only the newest `RING` positions can still hold their details.
    let keep = ringed.min(sys::RING as u32);
    let start = to.wrapping_sub(keep);
    let mut infos = Vec::with_capacity(keep as usize);
    for i in 0..keep {
        if let Some(info) = sys::read_entry(s, start.wrapping_add(i)) {
            infos.push(info);
        }
    }
    let found = u32::try_from(infos.len()).unwrap_or(u32::MAX);
    (infos, count.saturating_sub(found))
}

/// The signal handlers of one context.
pub(crate) struct SignalTable {
    slab: Slab<SigEntry>,
    /// Per signal, the `sys::counts` word at the previous dispatch.
    last_seen: [u64; sys::NSIG],
    per_signal: [u32; sys::NSIG],
    last_gen: u64,
    wake: Option<(usize, RawFd)>,
    next_seq: u64,
    /// Handlers with `pending` deliveries (left over when a handler of the
    /// same dispatch panicked).
    unrun: usize,
}

impl Default for SignalTable {
    fn default() -> Self {
        SignalTable {
            slab: Slab::default(),
            last_seen: [0; sys::NSIG],
            per_signal: [0; sys::NSIG],
            last_gen: 0,
            wake: None,
            next_seq: 0,
            unrun: 0,
        }
    }
}

impl SignalTable {
    pub(crate) fn handlers(&self) -> usize {
        self.slab.len()
    }

    /// The wake-up slot and the read end of its pipe, if this context has one.
    pub(crate) fn wake(&self) -> Option<(usize, RawFd)> {
        self.wake
    }

    /// In a forked child: registers this context's wake-up pipe (renewed)
    /// in its new poller (see [`crate::fork`]).
    pub(crate) fn adopt_after_fork(&mut self, poller: &polling::Poller) {
        let Some((slot, _)) = self.wake else {
            return;
        };
        let Ok(rd) = sys::slot_read_end(slot) else {
            return;
        };
        // SAFETY: as in `signal_add`: pool pipes are never closed.
        let added =
            unsafe { poller.add_with_mode(rd, Event::readable(SIGNAL_KEY), PollMode::Level) };
        if added.is_ok() {
            self.wake = Some((slot, rd));
        }
    }

    /// Releases every registration and the wake-up slot (context teardown).
    pub(crate) fn take_all(&mut self) -> Vec<SignalFn> {
        for s in 1..sys::NSIG {
            for _ in 0..self.per_signal[s] {
                sys::release(s as i32);
            }
            self.per_signal[s] = 0;
        }
        if let Some((slot, _)) = self.wake.take() {
            sys::release_slot(slot);
        }
        self.slab
            .drain()
            .into_iter()
            .filter_map(|e| e.handler)
            .collect()
    }
}

impl Context {
    /// Runs `handler` from the loop each time `signum` arrives; `count` is the
    /// number of deliveries since the previous dispatch (signals coalesce).
    /// C tevent's `tevent_add_signal` without `SA_INFO`; `signum` is a
    /// number such as [`SIGTERM`] (from this module) or any other signal
    /// number.
    ///
    /// The first handler for a signal in the process installs the OS handler;
    /// when the last one is dropped the previous disposition is restored.
    /// Signals are delivered to whichever thread the OS picks; the handler
    /// still runs on this context's loop. Fails with
    /// [`Error::InvalidSignal`] for a number out of range (Linux: 1 to
    /// `SIGRTMAX`, 64, real-time signals included; macOS: 1 to 31, it has
    /// no real-time signals; FreeBSD: 1 to 64, so its real-time signals, 65
    /// to 126, are refused) and for SIGKILL,
    /// SIGSTOP, SIGSEGV, SIGBUS, SIGILL and SIGFPE, with
    /// [`Error::TooManySignalContexts`] past 64 contexts with signal
    /// handlers, and with [`Error::Signal`] if `sigaction` fails.
    ///
    /// ```
    /// use tevent::Context;
    /// use tevent::signal::{SIGHUP, raise};
    ///
    /// let ev = Context::new()?;
    /// let reloads = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let r = reloads.clone();
    /// let hup = ev.add_signal(SIGHUP, move |_ev, me, count| {
    ///     assert_eq!(me.signum(), SIGHUP);
    ///     r.set(r.get() + count);
    /// })?;
    /// raise(SIGHUP)?;
    /// raise(SIGHUP)?;
    /// ev.loop_once()?; // both deliveries, in one run
    /// assert_eq!(reloads.get(), 2);
    /// drop(hup); // SIGHUP's previous disposition is back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal(
        &self,
        signum: i32,
        mut handler: impl FnMut(&Context, &SignalRef<'_>, u32) + 'static,
    ) -> Result<Signal, Error> {
        self.signal_add(
            signum,
            false,
            false,
            Box::new(move |ev, me, d| handler(ev, me, d.count)),
        )
    }

    /// Like [`Context::add_signal`], but the handler is removed after its first
    /// run (the handle then reports [`Signal::is_active`] false).
    ///
    /// ```
    /// use tevent::signal::{SIGUSR1, raise};
    /// let ev = tevent::Context::new()?;
    /// let once = ev.add_signal_oneshot(SIGUSR1, |_, _, _| {})?;
    /// raise(SIGUSR1)?;
    /// ev.loop_once()?;
    /// assert!(!once.is_active());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_oneshot(
        &self,
        signum: i32,
        mut handler: impl FnMut(&Context, &SignalRef<'_>, u32) + 'static,
    ) -> Result<Signal, Error> {
        self.signal_add(
            signum,
            true,
            false,
            Box::new(move |ev, me, d| handler(ev, me, d.count)),
        )
    }

    /// Like [`Context::add_signal`], and the handler also gets the sender's
    /// details of each delivery ([`SigInfo`]: pid, uid, code), as C tevent's
    /// handlers added with `SA_INFO` get the `siginfo_t`. A handler that
    /// runs for `count` deliveries gets `count` details, unless more than
    /// [`SIGINFO_RING`] arrived before the loop read them: then the oldest
    /// details are lost and [`Deliveries::lost`] says how many (the count
    /// stays exact).
    ///
    /// ```
    /// use tevent::Context;
    /// use tevent::signal::{SIGUSR1, raise};
    ///
    /// let ev = Context::new()?;
    /// let senders = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// let s = senders.clone();
    /// let _usr1 = ev.add_signal_with_info(SIGUSR1, move |_ev, _me, d| {
    ///     assert_eq!(d.infos.len() as u32 + d.lost, d.count);
    ///     s.borrow_mut().extend(d.infos.iter().map(|i| i.pid));
    /// })?;
    /// raise(SIGUSR1)?;
    /// ev.loop_once()?;
    /// assert_eq!(*senders.borrow(), [std::process::id() as i32]); // we sent it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_with_info(
        &self,
        signum: i32,
        handler: impl FnMut(&Context, &SignalRef<'_>, &Deliveries<'_>) + 'static,
    ) -> Result<Signal, Error> {
        self.signal_add(signum, false, true, Box::new(handler))
    }

    /// Like [`Context::add_signal_with_info`], but the handler is removed
    /// after its first run.
    ///
    /// ```
    /// use tevent::signal::{SIGUSR2, raise};
    /// let ev = tevent::Context::new()?;
    /// let once = ev.add_signal_with_info_oneshot(SIGUSR2, |_, _, d| assert_eq!(d.count, 1))?;
    /// raise(SIGUSR2)?;
    /// ev.loop_once()?;
    /// assert!(!once.is_active());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_with_info_oneshot(
        &self,
        signum: i32,
        handler: impl FnMut(&Context, &SignalRef<'_>, &Deliveries<'_>) + 'static,
    ) -> Result<Signal, Error> {
        self.signal_add(signum, true, true, Box::new(handler))
    }

    fn signal_add(
        &self,
        signum: i32,
        one_shot: bool,
        wants_info: bool,
        handler: SignalFn,
    ) -> Result<Signal, Error> {
        if !sys::valid(signum) {
            return Err(Error::InvalidSignal(signum));
        }
        let s = signum as usize;
        self.inner.check_fork();
        let mut t = self.inner.sig.borrow_mut();
        if t.wake.is_none() {
            let (slot, rd) = sys::take_slot()
                .map_err(|source| Error::Signal { signum, source })?
                .ok_or(Error::TooManySignalContexts(sys::SLOTS))?;
            let res = match self.inner.poller() {
                // SAFETY: the pool pipe is never closed, so it outlives the
                // poller's registration (deleted when the context drops).
                Some(p) => unsafe {
                    p.add_with_mode(rd, Event::readable(SIGNAL_KEY), PollMode::Level)
                },
                None => Err(std::io::ErrorKind::Unsupported.into()),
            };
            if let Err(source) = res {
                sys::release_slot(slot);
                return Err(Error::Signal { signum, source });
            }
            t.wake = Some((slot, rd));
            t.last_gen = sys::generation();
        }
        sys::acquire(signum).map_err(|source| Error::Signal { signum, source })?;
        if t.per_signal[s] == 0 {
            t.last_seen[s] = sys::counts(s);
            sys::set_wake(t.wake.expect("set above").0, signum, true);
        }
        t.per_signal[s] += 1;
        let seq = t.next_seq;
        t.next_seq += 1;
        let key = t.slab.insert(SigEntry {
            signum,
            one_shot,
            handler: Some(handler),
            tag: 0,
            seq,
            pending: 0,
            wants_info,
            infos: Vec::new(),
            lost: 0,
        });
        drop(t);
        self.inner
            .sig_handlers
            .set(self.inner.sig_handlers.get() + 1);
        let signal = Signal {
            ctx: self.weak(),
            key,
        };
        let scope = self.enter();
        self.inner
            .trace_event(EventKind::Signal, EventPoint::Attach, key.to_u64(), 0);
        Ok(scope.end(signal))
    }

    fn signal_remove(&self, key: Key) {
        let mut t = self.inner.sig.borrow_mut();
        let Some(e) = t.slab.remove(key) else {
            return;
        };
        let s = e.signum as usize;
        t.per_signal[s] -= 1;
        if e.pending > 0 {
            t.unrun -= 1;
        }
        if t.per_signal[s] == 0
            && let Some((slot, _)) = t.wake
        {
            sys::set_wake(slot, e.signum, false);
        }
        drop(t);
        sys::release(e.signum);
        self.inner
            .sig_handlers
            .set(self.inner.sig_handlers.get() - 1);
        self.inner
            .trace_event(EventKind::Signal, EventPoint::Detach, key.to_u64(), e.tag);
        self.inner.drop_handler(e.handler);
    }

    /// Whether a signal arrived since the last check, or a handler still has
    /// deliveries to run (cheap: one atomic load in the common case).
    #[inline]
    pub(crate) fn signals_pending(&self) -> bool {
        self.inner.sig_handlers.get() > 0 && {
            let t = self.inner.sig.borrow();
            sys::generation() != t.last_gen || t.unrun > 0
        }
    }

    /// Runs the handlers of every signal that arrived since the last dispatch.
    /// Returns whether any handler ran.
    ///
    /// The deliveries are first counted into each handler's entry, so if a
    /// handler panics, the handlers after it keep theirs and run at the next
    /// step.
    pub(crate) fn run_signals(&self) -> bool {
        let due: Vec<Key> = {
            let mut t = self.inner.sig.borrow_mut();
            let t = &mut *t;
            let generation = sys::generation();
            if generation != t.last_gen {
                t.last_gen = generation;
                if let Some((_, rd)) = t.wake {
                    sys::drain(rd);
                }
                for s in 1..sys::NSIG {
                    if t.per_signal[s] == 0 {
                        continue;
                    }
                    let now = sys::counts(s);
                    let last = std::mem::replace(&mut t.last_seen[s], now);
                    let count = sys::total(now).wrapping_sub(sys::total(last));
                    if count == 0 {
                        continue;
                    }
                    let wanted = t.slab.keys().into_iter().any(|k| {
                        t.slab
                            .get(k)
                            .is_some_and(|e| e.signum as usize == s && e.wants_info)
                    });
                    let (infos, lost) = if wanted {
                        read_infos(s, last, now, count)
                    } else {
                        (Vec::new(), 0)
                    };
                    for k in t.slab.keys() {
                        let e = t.slab.get_mut(k).expect("live");
                        if e.signum as usize == s {
                            if e.pending == 0 {
                                t.unrun += 1;
                            }
                            e.pending = e.pending.saturating_add(count);
                            if e.wants_info {
                                e.add_infos(&infos, lost);
                            }
                        }
                    }
                }
            }
            if t.unrun == 0 {
                return false;
            }
            let mut due: Vec<(u64, Key)> = t
                .slab
                .keys()
                .into_iter()
                .filter_map(|k| t.slab.get(k).filter(|e| e.pending > 0).map(|e| (e.seq, k)))
                .collect();
            due.sort_unstable_by_key(|(seq, _)| *seq);
            due.into_iter().map(|(_, k)| k).collect()
        };
        let mut ran = false;
        for key in due {
            let taken = {
                let mut t = self.inner.sig.borrow_mut();
                let t = &mut *t;
                let taken = t.slab.get_mut(key).and_then(|e| {
                    let count = std::mem::take(&mut e.pending);
                    let infos = std::mem::take(&mut e.infos);
                    let lost = std::mem::take(&mut e.lost);
                    (count > 0)
                        .then(|| {
                            e.handler
                                .take()
                                .map(|h| (h, (count, infos, lost), e.one_shot, e.tag))
                        })
                        .flatten()
                });
                if taken.is_some() {
                    t.unrun -= 1;
                }
                taken
            };
            // Removed by an earlier handler of this dispatch: never called.
            let Some((h, count, one_shot, tag)) = taken else {
                continue;
            };
            if self
                .inner
                .trace_before_handler(EventKind::Signal, key.to_u64(), tag)
                && self.inner.sig.borrow().slab.get(key).is_none()
            {
                // Removed by the hook: never called.
                drop(h);
                continue;
            }
            // The handler goes back into its event (a one-shot is removed)
            // when it returns or panics.
            let (count, infos, lost) = count;
            let d = Deliveries {
                count,
                infos: &infos,
                lost,
            };
            let h = run_handler(
                h,
                |h| self.signal_ran(key, one_shot, h),
                |h| h(self, &SignalRef { ctx: self, key }, &d),
            );
            self.signal_ran(key, one_shot, h);
            ran = true;
        }
        ran
    }

    /// Ends a run of a signal handler.
    fn signal_ran(&self, key: Key, one_shot: bool, handler: SignalFn) {
        let leftover = match self.inner.sig.borrow_mut().slab.get_mut(key) {
            Some(e) if !one_shot => {
                e.handler = Some(handler);
                None
            }
            _ => Some(handler),
        };
        if one_shot {
            self.signal_remove(key);
        }
        drop(leftover);
    }

    /// Reports every signal handler as detached (the context is being
    /// dropped).
    pub(crate) fn signals_detach_all(inner: &Inner) {
        let t = inner.sig.borrow();
        let attached = t.slab.iter().map(|(k, e)| (k.to_u64(), e.tag)).collect();
        drop(t);
        inner.trace_detach_all(EventKind::Signal, attached);
    }

    fn signal_info(&self, key: Key) -> Option<(i32, u64)> {
        self.inner
            .sig
            .borrow()
            .slab
            .get(key)
            .map(|e| (e.signum, e.tag))
    }

    fn signal_set_tag(&self, key: Key, tag: u64) {
        if let Some(e) = self.inner.sig.borrow_mut().slab.get_mut(key) {
            e.tag = tag;
        }
    }
}
