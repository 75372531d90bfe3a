//! Process-global signal state. Everything the OS handler touches is a
//! static atomic.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Mutex, MutexGuard};

use super::SigInfo;

/// Signal numbers are below this (1..=64: Linux's whole range; macOS
/// stops at 31; FreeBSD's real-time signals, 65 to 126, are beyond it).
pub(crate) const NSIG: usize = 65;
/// Contexts that may hold signal handlers at the same time.
pub(crate) const SLOTS: usize = 64;
/// Entries of each signal's ring of sender details.
pub(crate) const RING: usize = super::SIGINFO_RING;

/// Per signal, two wrapping 32-bit counters in one word, so that a
/// reader sees both at the same instant: deliveries (low half) and
/// deliveries whose details went into the ring (high half). Only the
/// OS handler changes them.
static COUNTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// One delivery's details. `stamp` is a sequence lock: `2 * pos + 1`
/// while the entry for ring position `pos` is written, `2 * pos + 2`
/// once it is complete.
struct Entry {
    stamp: AtomicU64,
    pid: AtomicI32,
    uid: AtomicU32,
    code: AtomicI32,
}

static RINGS: [[Entry; RING]; NSIG] = [const {
    [const {
        Entry {
            stamp: AtomicU64::new(0),
            pid: AtomicI32::new(0),
            uid: AtomicU32::new(0),
            code: AtomicI32::new(0),
        }
    }; RING]
}; NSIG];

/// Held by the OS handler that writes a signal's ring: a second thread
/// taking the same signal at the same instant waits for it (see
/// `record`).
static WRITING: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// The deliveries counter (low half of a `COUNTS` word).
#[inline]
pub(crate) fn total(word: u64) -> u32 {
    word as u32
}

/// The ring counter (high half of a `COUNTS` word).
#[inline]
pub(crate) fn ringed(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Adds one delivery (and one ring entry if `ring`), each half wrapping
/// on its own. Lock-free, so async-signal-safe.
fn count_delivery(s: usize, ring: bool) {
    let _ = COUNTS[s].fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
        let t = total(w).wrapping_add(1);
        let r = ringed(w).wrapping_add(u32::from(ring));
        Some((u64::from(r) << 32) | u64::from(t))
    });
}

/// Spins an OS handler waits, at most, for another thread's OS handler
/// to finish writing the same signal's ring.
const WAIT_SPINS: u32 = 1 << 20;

/// Records one delivery of `s` with its details (from the OS handler).
fn record(s: usize, pid: i32, uid: u32, code: i32) {
    // Another thread's OS handler may be writing this signal's ring (a
    // handler never interrupts itself for the same signal: the signal
    // is blocked while its handler runs). Its write is a few dozen
    // instructions: wait for it, rather than lose these details.
    let mut spins = 0;
    while WRITING[s].swap(true, Ordering::Acquire) {
        spins += 1;
        if spins == WAIT_SPINS {
            count_delivery(s, false);
            return;
        }
        std::hint::spin_loop();
    }
    // Only the holder of `WRITING[s]` changes the ring half.
    let pos = ringed(COUNTS[s].load(Ordering::SeqCst));
    let e = &RINGS[s][pos as usize % RING];
    e.stamp.store(2 * u64::from(pos) + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    e.pid.store(pid, Ordering::Relaxed);
    e.uid.store(uid, Ordering::Relaxed);
    e.code.store(code, Ordering::Relaxed);
    e.stamp.store(2 * u64::from(pos) + 2, Ordering::Release);
    count_delivery(s, true);
    WRITING[s].store(false, Ordering::Release);
}

/// The details at ring position `pos` of signal `s`, if they are still
/// there (not overwritten since, nor being overwritten).
pub(crate) fn read_entry(s: usize, pos: u32) -> Option<SigInfo> {
    let e = &RINGS[s][pos as usize % RING];
    let want = 2 * u64::from(pos) + 2;
    if e.stamp.load(Ordering::Acquire) != want {
        return None;
    }
    let info = SigInfo {
        pid: e.pid.load(Ordering::Relaxed),
        uid: e.uid.load(Ordering::Relaxed),
        code: e.code.load(Ordering::Relaxed),
    };
    fence(Ordering::Acquire);
    (e.stamp.load(Ordering::Relaxed) == want).then_some(info)
}

struct WakeSlot {
    /// Write end of the slot's pipe, or -1 before the pipe exists.
    fd: AtomicI32,
    /// Bit `signum - 1` is set while the slot's context handles `signum`.
    mask: AtomicU64,
}

static WAKE: [WakeSlot; SLOTS] = [const {
    WakeSlot {
        fd: AtomicI32::new(-1),
        mask: AtomicU64::new(0),
    }
}; SLOTS];

struct Registry {
    users: [usize; NSIG],
    prev: [Option<libc::sigaction>; NSIG],
    /// (read end, write end) per slot, created on first use, never closed.
    pipes: Vec<Option<(OwnedFd, OwnedFd)>>,
    used: [bool; SLOTS],
    /// The fork generation the pipes were made in (see `crate::fork`).
    pipes_gen: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    users: [0; NSIG],
    prev: [None; NSIG],
    pipes: Vec::new(),
    used: [false; SLOTS],
    pipes_gen: 0,
});

thread_local! {
    /// The registry, held by the forking thread across `fork()` so that
    /// the child never inherits it locked by a thread it does not have.
    static HELD_ACROSS_FORK: std::cell::RefCell<Option<MutexGuard<'static, Registry>>> =
        const { std::cell::RefCell::new(None) };
}

/// `pthread_atfork` prepare handler: takes the registry lock.
// Installed with pthread_atfork, which Miri does not run.
#[cfg_attr(miri, allow(dead_code))]
pub(crate) fn before_fork() {
    let guard = registry();
    HELD_ACROSS_FORK.with(|h| *h.borrow_mut() = Some(guard));
}

/// `pthread_atfork` parent and child handler: gives the lock back.
// Installed with pthread_atfork, which Miri does not run.
#[cfg_attr(miri, allow(dead_code))]
pub(crate) fn after_fork() {
    HELD_ACROSS_FORK.with(|h| drop(h.borrow_mut().take()));
}

/// In a forked child, replaces every wake-up pipe by a new one: the
/// inherited pipes are the parent's too, so a byte written for one
/// process could be read by the other. The inherited fds stay open
/// (leaked), so a signal handler racing with this never writes to a
/// reused fd number.
fn renew_pipes_if_forked(r: &mut Registry) -> io::Result<()> {
    let generation = crate::fork::generation();
    if r.pipes_gen == generation {
        return Ok(());
    }
    for (slot, p) in r.pipes.iter_mut().enumerate() {
        if p.is_none() {
            continue;
        }
        let (rd, wr) = crate::sys::pipe()?;
        WAKE[slot].fd.store(wr.as_raw_fd(), Ordering::SeqCst);
        std::mem::forget(p.replace((rd, wr)));
    }
    r.pipes_gen = generation;
    Ok(())
}

/// The read end of `slot`'s pipe, renewed first in a forked child.
pub(crate) fn slot_read_end(slot: usize) -> io::Result<RawFd> {
    let mut r = registry();
    renew_pipes_if_forked(&mut r)?;
    match r.pipes.get(slot) {
        Some(Some((rd, _))) => Ok(rd.as_raw_fd()),
        _ => Err(io::ErrorKind::NotFound.into()),
    }
}

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves consistent data (every update
    // is a single assignment), so poisoning can be ignored.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__error() }
}

/// The OS-level handler (`SA_SIGINFO` form). Only async-signal-safe
/// operations: atomics and `write(2)`; errno is preserved for the
/// interrupted code.
extern "C" fn on_signal(signum: libc::c_int, info: *mut libc::siginfo_t, _uctx: *mut libc::c_void) {
    let errno = errno_location();
    // SAFETY: errno_location() points at this thread's errno.
    let saved = unsafe { *errno };
    if let Ok(s) = usize::try_from(signum)
        && (1..NSIG).contains(&s)
    {
        let (pid, uid, code) = if info.is_null() {
            (0, 0, 0)
        } else {
            // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo
            // for this delivery; reading its fields is a plain load.
            unsafe { ((*info).si_pid(), (*info).si_uid(), (*info).si_code) }
        };
        record(s, pid, uid, code);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        let bit = 1u64 << (s - 1);
        for slot in &WAKE {
            if slot.mask.load(Ordering::SeqCst) & bit != 0 {
                let fd = slot.fd.load(Ordering::SeqCst);
                if fd >= 0 {
                    let byte = 1u8;
                    // SAFETY: `fd` is the write end of a pipe that is never
                    // closed; a full pipe just fails with EAGAIN, which is
                    // fine because one pending byte is enough to wake.
                    unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
                }
            }
        }
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// Both counters of `signum` (see `COUNTS`): compare two readings with
/// [`total`] and [`ringed`] and wrapping subtraction.
pub(crate) fn counts(signum: usize) -> u64 {
    COUNTS[signum].load(Ordering::SeqCst)
}

/// Changes whenever any handled signal arrives.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Whether `signum` may be handled from an event loop.
pub(crate) fn valid(signum: i32) -> bool {
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ];
    usize::try_from(signum).is_ok_and(|s| (1..NSIG).contains(&s))
        && signum <= max_signum()
        && !forbidden.contains(&signum)
}

/// The highest signal number this platform's loop can handle.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn max_signum() -> i32 {
    // The real-time signals run up to SIGRTMAX (64), inside the table.
    libc::SIGRTMAX()
}

/// The highest signal number this platform's loop can handle.
#[cfg(target_vendor = "apple")]
fn max_signum() -> i32 {
    // <sys/signal.h>: NSIG is 32, counting 0; no real-time signals.
    31
}

/// The highest signal number this platform's loop can handle.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn max_signum() -> i32 {
    // The table's end. FreeBSD's real-time signals (65 to 126) are
    // beyond it, so they are refused as out of range.
    NSIG as i32 - 1
}

/// One more user of `signum`: installs the handler for the first one.
pub(crate) fn acquire(signum: i32) -> io::Result<()> {
    let mut r = registry();
    let s = signum as usize;
    if r.users[s] == 0 {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
        // SAFETY: sa is a valid sigaction; the mask pointer is into it.
        unsafe { libc::sigemptyset(&raw mut sa.sa_mask) };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; `on_signal` is
        // async-signal-safe.
        if unsafe { libc::sigaction(signum, &raw const sa, &raw mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        r.prev[s] = Some(old);
    }
    r.users[s] += 1;
    Ok(())
}

/// One user of `signum` fewer: restores the previous disposition after the last.
pub(crate) fn release(signum: i32) {
    let mut r = registry();
    let s = signum as usize;
    if r.users[s] == 0 {
        return;
    }
    r.users[s] -= 1;
    if r.users[s] == 0
        && let Some(prev) = r.prev[s].take()
    {
        // SAFETY: `prev` is the disposition sigaction returned earlier.
        unsafe { libc::sigaction(signum, &raw const prev, std::ptr::null_mut()) };
    }
}

/// Takes a free wake-up slot; returns its index and the pipe's read end.
pub(crate) fn take_slot() -> io::Result<Option<(usize, RawFd)>> {
    let mut r = registry();
    renew_pipes_if_forked(&mut r)?;
    let Some(slot) = (0..SLOTS).find(|i| !r.used[*i]) else {
        return Ok(None);
    };
    if r.pipes.len() <= slot {
        r.pipes.resize_with(slot + 1, || None);
    }
    if r.pipes[slot].is_none() {
        let (rd, wr) = crate::sys::pipe()?;
        WAKE[slot].fd.store(wr.as_raw_fd(), Ordering::SeqCst);
        r.pipes[slot] = Some((rd, wr));
    }
    r.used[slot] = true;
    let rd = r.pipes[slot].as_ref().expect("created").0.as_raw_fd();
    drop(r);
    drain(rd);
    Ok(Some((slot, rd)))
}

/// Gives a slot back to the pool (its pipe stays open for the next user).
pub(crate) fn release_slot(slot: usize) {
    WAKE[slot].mask.store(0, Ordering::SeqCst);
    registry().used[slot] = false;
}

/// Starts or stops waking `slot` for `signum`.
pub(crate) fn set_wake(slot: usize, signum: i32, on: bool) {
    let bit = 1u64 << (signum - 1);
    if on {
        WAKE[slot].mask.fetch_or(bit, Ordering::SeqCst);
    } else {
        WAKE[slot].mask.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Empties a wake-up pipe.
pub(crate) fn drain(rd: RawFd) {
    // SAFETY: `rd` is the read end of a pool pipe, which is never closed.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(rd) };
    let mut buf = [0u8; 64];
    while matches!(rustix::io::read(fd, &mut buf), Ok(n) if n > 0) {}
}
