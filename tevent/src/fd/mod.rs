//! File-descriptor watchers.
//!
//! Several watchers may watch one fd, each with its own [`FdFlags`]; the fd has
//! one level-triggered registration in the poller whose interest is the union
//! of its watchers' flags. Interest changes (a watcher added, dropped, or its
//! flags changed) are applied just before the loop next waits, so a watcher
//! that is replaced by another with the same flags between two waits, the
//! usual shape of one-shot read and write requests, costs no system call.
//!
//! One wait yields a batch of ready fds. The batch is expanded into one entry
//! per interested watcher, rotating the starting watcher of each fd, and the
//! loop then serves one entry per step; every entry is checked against the
//! watcher's current state when its turn comes, so a watcher dropped or paused
//! by an earlier handler of the same batch is never called.
//!
//! Readiness mapping: `READ` is delivered when the fd is readable *or* hung up
//! or in error; `WRITE` when it is writable *or* hung up or in error; `ERROR`
//! when it is hung up or in error. In particular a watcher that asked only for
//! `WRITE` is woken by a hang-up, so its next `write()` reports the error. C
//! tevent silently clears such a watcher's interest instead, which hangs the
//! request that owns it; this is a deliberate fix.
//!
//! `ERROR` is Linux's: epoll reports hang-ups and errors apart
//! (`EPOLLHUP`, `EPOLLERR`). kqueue, on macOS and FreeBSD, reports them as
//! end of file on the read or write filter, which `polling` passes on as
//! readable and writable: there a hang-up wakes `READ` and `WRITE` watchers
//! (whose next call sees it) and never sets `ERROR`.

mod handle;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use polling::{Event, PollMode, Poller};

use crate::Error;
use crate::context::Context;
use crate::slab::{Key, Slab};

pub use handle::{FdEvent, FdRef};

/// Readiness and interest flags of an fd watcher.
///
/// ```
/// use tevent::FdFlags;
/// let both = FdFlags::READ | FdFlags::WRITE;
/// assert!(both.contains(FdFlags::READ) && !both.contains(FdFlags::ERROR));
/// assert!(FdFlags::empty().is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FdFlags(u8);

impl FdFlags {
    /// Readable (or at end of file, hung up or in error).
    pub const READ: FdFlags = FdFlags(1);
    /// Writable (or hung up or in error: the next write reports it).
    pub const WRITE: FdFlags = FdFlags(2);
    /// Hung up or in error. Reported on Linux (epoll); on macOS and FreeBSD
    /// (kqueue) a hang-up comes as `READ` and `WRITE` instead, and `ERROR`
    /// is never set (see the module documentation).
    pub const ERROR: FdFlags = FdFlags(4);

    /// No flags: a watcher with no flags is paused.
    pub const fn empty() -> FdFlags {
        FdFlags(0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: FdFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a flag.
    pub const fn intersects(self, other: FdFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// The raw bits (READ = 1, WRITE = 2, ERROR = 4, as in tevent).
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl std::ops::BitOr for FdFlags {
    type Output = FdFlags;
    fn bitor(self, rhs: FdFlags) -> FdFlags {
        FdFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for FdFlags {
    fn bitor_assign(&mut self, rhs: FdFlags) {
        self.0 |= rhs.0
    }
}

impl std::ops::BitAnd for FdFlags {
    type Output = FdFlags;
    fn bitand(self, rhs: FdFlags) -> FdFlags {
        FdFlags(self.0 & rhs.0)
    }
}

impl std::ops::Sub for FdFlags {
    type Output = FdFlags;
    fn sub(self, rhs: FdFlags) -> FdFlags {
        FdFlags(self.0 & !rhs.0)
    }
}

impl std::fmt::Debug for FdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names = Vec::new();
        for (flag, name) in [
            (Self::READ, "READ"),
            (Self::WRITE, "WRITE"),
            (Self::ERROR, "ERROR"),
        ] {
            if self.contains(flag) {
                names.push(name);
            }
        }
        if names.is_empty() {
            f.write_str("FdFlags(empty)")
        } else {
            write!(f, "FdFlags({})", names.join(" | "))
        }
    }
}

/// The handler of an fd watcher.
pub(crate) type FdFn = Box<dyn FnMut(&Context, &FdRef<'_>, FdFlags)>;

/// The step a request's fd watcher runs on its request (see
/// [`crate::Ctl::watch_fd`]). It captures only the step function, so for a
/// step given as a function item it is zero-sized and boxing it allocates
/// nothing.
pub(crate) type ReqFdFn = Box<dyn FnMut(&Context, &crate::req::ReqRef, FdFlags)>;

/// What an fd watcher runs.
pub(crate) enum FdHandler {
    /// A closure of [`Context::add_fd`] and its siblings.
    Plain(FdFn),
    /// A step of the request `.0` (a request's watcher).
    Req(crate::req::ReqRef, ReqFdFn),
}

/// What keeps a watched fd open while it is registered. The payloads are
/// never read: holding them is the point, and dropping them closes the fd
/// (owned) or releases our share of it.
pub(crate) enum Keep {
    /// The context owns the fd and closes it after deregistration.
    Owned(#[expect(dead_code, reason = "held only to close it on drop")] OwnedFd),
    /// Shared ownership: the fd closes when the last `Rc` goes.
    Shared(#[expect(dead_code, reason = "held only to keep the fd open")] Rc<dyn AsFd>),
}

/// What a watcher requires of its fd's blocking mode. The fd is probed once
/// per entry in the fd table (see [`FileEntry`]), not per watcher.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Require {
    /// Nothing: plain watchers accept blocking fds, as tevent's do.
    Any,
    /// `O_NONBLOCK` ([`crate::Ctl::watch_fd`]: a request's step must never
    /// block the loop).
    Nonblocking,
    /// `O_NONBLOCK`, or a socket in any mode ([`crate::io`], whose `recv` /
    /// `send` pass `MSG_DONTWAIT`).
    NonblockingOrSocket,
}

/// One fd and its poller registration.
struct FileEntry {
    fd: RawFd,
    /// Whether the fd has `O_NONBLOCK`, once a checking watcher asked.
    nonblocking: Option<bool>,
    /// Whether the fd is a socket, once a watcher needed to know.
    socket: Option<bool>,
    keep: Vec<Keep>,
    watchers: Vec<Key>,
    /// Parked watchers of the fd, for the next watcher to take over (see
    /// [`Context::fd_remove`]); not in `watchers`.
    parked: Vec<Key>,
    /// Interest bits currently registered in the poller (READ | WRITE), or
    /// `None` if the fd is not registered.
    registered: Option<u8>,
    /// First watcher to serve in the next batch (round-robin).
    rr: usize,
    dirty: bool,
}

struct Watcher {
    file: Key,
    flags: FdFlags,
    /// `None` while the handler runs, and while parked.
    handler: Option<FdHandler>,
    tag: u64,
    /// Dropped by its handle, but kept (with empty flags, no handler) on an
    /// fd that lingers registered, for the next watcher on the fd to take
    /// over: see [`Context::fd_remove`]. A parked watcher is invisible:
    /// it is not counted, traced, found by key or ever called.
    parked: bool,
}

/// A hasher for fd numbers: one multiplication (an `RawFd` is hashed as
/// one `i32`), instead of SipHash, which cost more than the rest of a
/// lookup. Fds are small integers chosen by the kernel, not by a peer, so
/// no hash flooding is possible.
#[derive(Default, Clone, Copy)]
struct FdHasher(u64);

impl std::hash::Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        // The high bits pick the group in the table: multiply them in.
        self.0 = u64::from(n as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type FdMap = HashMap<RawFd, Key, std::hash::BuildHasherDefault<FdHasher>>;

/// All fds and watchers of a context.
#[derive(Default)]
pub(crate) struct FdTable {
    watchers: Slab<Watcher>,
    files: Slab<FileEntry>,
    by_fd: FdMap,
    dirty: Vec<Key>,
    /// Ready (watcher, readiness) pairs from the last wait, served one per step.
    batch: VecDeque<(Key, FdFlags)>,
    /// Watchers whose flags are not empty (they keep `loop_wait` going).
    active: usize,
    /// Parked watchers (in `watchers`, but not counted as watchers).
    parked: usize,
}

impl FdTable {
    pub(crate) fn active(&self) -> usize {
        self.active
    }

    /// Every request watcher that is not running its step: the request,
    /// the fd number and the flags it waits for (for the live request
    /// tree).
    pub(crate) fn request_waits(&self) -> Vec<(crate::req::NodePtr, RawFd, FdFlags)> {
        self.watchers
            .values()
            .filter(|w| !w.parked)
            .filter_map(|w| match &w.handler {
                Some(FdHandler::Req(node, _)) => {
                    let fd = self.files.get(w.file).map_or(-1, |f| f.fd);
                    Some((node.ptr(), fd, w.flags))
                }
                _ => None,
            })
            .collect()
    }

    pub(crate) fn watchers(&self) -> usize {
        self.watchers.len() - self.parked
    }

    /// Drops the parked watchers of a file that leaves the table.
    fn drop_parked(&mut self, parked: Vec<Key>) {
        for k in parked {
            if self.watchers.remove(k).is_some() {
                self.parked -= 1;
            }
        }
    }

    /// Fds currently registered in the poller (for tests and statistics).
    pub(crate) fn registered_fds(&self) -> usize {
        self.files
            .values()
            .filter(|f| f.registered.is_some())
            .count()
    }

    /// Forgets that fd number `fd` is entry `fkey` (unless the number was
    /// given to a newer entry meanwhile, see [`FdTable::orphan`]).
    fn unmap(&mut self, fd: RawFd, fkey: Key) {
        if self.by_fd.get(&fd) == Some(&fkey) {
            self.by_fd.remove(&fd);
        }
    }

    /// Gives up entry `fkey`, whose fd number now names another file: its
    /// watchers (whose handles were leaked with `mem::forget`, the only way
    /// a borrowed fd can close under them in safe code) never fire again and
    /// no longer keep the loop busy, and the number is free for a new entry.
    /// Nothing is deregistered: the kernel dropped the old registration
    /// with the old file, and the number's registration is the new file's.
    fn orphan(&mut self, fkey: Key) {
        let Some(file) = self.files.get_mut(fkey) else {
            return;
        };
        file.registered = None;
        let (fd, watchers) = (file.fd, file.watchers.clone());
        for w in watchers {
            if let Some(w) = self.watchers.get_mut(w) {
                if !w.flags.is_empty() {
                    self.active -= 1;
                }
                w.flags = FdFlags::empty();
            }
        }
        self.unmap(fd, fkey);
    }

    fn mark_dirty(&mut self, file: Key) {
        if let Some(f) = self.files.get_mut(file)
            && !f.dirty
        {
            f.dirty = true;
            self.dirty.push(file);
        }
    }

    /// Unmarks a dirty file whose registration already matches its
    /// watchers' interest: what a read's watcher taken over by the next
    /// read of the same connection leaves (its park marked the file dirty,
    /// in case nobody took it over). Its entry in `dirty`, if not the last
    /// one, stays there, and `sync` skips it.
    fn clean(watchers: &Slab<Watcher>, dirty: &mut Vec<Key>, file: &mut FileEntry, fkey: Key) {
        if !file.dirty {
            return;
        }
        let mut u = FdFlags::empty();
        for w in &file.watchers {
            if let Some(w) = watchers.get(*w) {
                u |= w.flags;
            }
        }
        let want = u.bits() & (FdFlags::READ.0 | FdFlags::WRITE.0);
        let unchanged = match file.registered {
            Some(bits) => !u.is_empty() && bits == want,
            None => u.is_empty(),
        };
        if unchanged {
            file.dirty = false;
            if dirty.last() == Some(&fkey) {
                dirty.pop();
            }
        }
    }

    fn union(&self, file: &FileEntry) -> FdFlags {
        let mut u = FdFlags::empty();
        for w in &file.watchers {
            if let Some(w) = self.watchers.get(*w) {
                u |= w.flags;
            }
        }
        u
    }

    /// Applies pending interest changes to the poller. Fds without watchers are
    /// deregistered and released (closing owned fds) here.
    #[inline]
    pub(crate) fn sync(&mut self, poller: &Poller) -> Result<Vec<Keep>, Error> {
        if self.dirty.is_empty() {
            return Ok(Vec::new());
        }
        self.sync_dirty(poller)
    }

    /// [`FdTable::sync`] when some file is marked dirty.
    fn sync_dirty(&mut self, poller: &Poller) -> Result<Vec<Keep>, Error> {
        let mut released = Vec::new();
        // The list keeps its capacity from one wait to the next: marking an
        // fd dirty (every read's watcher does) then never allocates.
        let mut dirty = std::mem::take(&mut self.dirty);
        let r = self.sync_list(&dirty, poller, &mut released);
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
        r.map(|()| released)
    }

    /// [`FdTable::sync`] of the files `dirty`.
    fn sync_list(
        &mut self,
        dirty: &[Key],
        poller: &Poller,
        released: &mut Vec<Keep>,
    ) -> Result<(), Error> {
        for &fkey in dirty {
            // A file cleaned since it was marked (see `FdTable::clean`)
            // has nothing to apply.
            let Some(file) = self.files.get(fkey).filter(|f| f.dirty) else {
                continue;
            };
            if file.watchers.is_empty() {
                let mut file = self.files.remove(fkey).expect("live");
                self.drop_parked(std::mem::take(&mut file.parked));
                self.unmap(file.fd, fkey);
                if file.registered.is_some() {
                    deregister(poller, file.fd);
                }
                released.extend(file.keep);
                continue;
            }
            let union = self.union(file);
            let want = union.bits() & (FdFlags::READ.0 | FdFlags::WRITE.0);
            let file = self.files.get_mut(fkey).expect("live");
            file.dirty = false;
            let result = match (union.is_empty(), file.registered) {
                (true, None) => Ok(()),
                (true, Some(_)) => {
                    deregister(poller, file.fd);
                    file.registered = None;
                    Ok(())
                }
                (false, Some(bits)) if bits == want => Ok(()),
                (false, Some(_)) => {
                    // SAFETY: the fd is kept open by `keep` or by the borrow of
                    // the watchers' handles while it is registered.
                    let fd = unsafe { BorrowedFd::borrow_raw(file.fd) };
                    poller
                        .modify_with_mode(fd, interest(fkey, want), PollMode::Level)
                        .map(|()| file.registered = Some(want))
                }
                (false, None) => {
                    register(poller, file.fd, fkey, want).map(|()| file.registered = Some(want))
                }
            };
            result.map_err(|source| Error::BadFd {
                fd: file.fd,
                source,
            })?;
        }
        Ok(())
    }

    /// Expands one poller event into batch entries, rotating the first watcher.
    pub(crate) fn push_ready(&mut self, ev: &Event) {
        let failed = ev.is_interrupt() || ev.is_err() == Some(true);
        self.push_ready_raw(ev.key as u64, ev.readable, ev.writable, failed);
    }

    /// [`FdTable::push_ready`] for an event read from epoll directly:
    /// `key` is the registration's key, `failed` a hang-up or an error.
    /// Returns whether `key` names an fd of the table.
    pub(crate) fn push_ready_raw(
        &mut self,
        key: u64,
        readable: bool,
        writable: bool,
        failed: bool,
    ) -> bool {
        let fkey = Key::from_u64(key);
        let Some(file) = self.files.get_mut(fkey) else {
            return false;
        };
        let mut ready = FdFlags::empty();
        if readable {
            ready |= FdFlags::READ;
        }
        if writable {
            ready |= FdFlags::WRITE;
        }
        if failed {
            ready |= FdFlags::ERROR | FdFlags::READ | FdFlags::WRITE;
        }
        let n = file.watchers.len();
        if n == 1 {
            // The usual case: one watcher, nothing to rotate (the rotation
            // restarts from it, as `% n` would give).
            let w = file.watchers[0];
            file.rr = 0;
            self.batch.push_back((w, ready));
            return true;
        }
        if n == 0 {
            // Reported while waiting for deregistration: deregister now.
            self.mark_dirty(fkey);
            return true;
        }
        let start = file.rr % n;
        file.rr = (start + 1) % n;
        for i in 0..n {
            let w = file.watchers[(start + i) % n];
            self.batch.push_back((w, ready));
        }
        true
    }

    /// Under simulation, after a wait filled the batch: the fds it reported
    /// go in an order drawn from the seed (the entries of one fd stay
    /// together and in their rotation order), and each may be left for the
    /// next wait ([`crate::sim::Faults::delayed_readiness`]).
    #[cold]
    pub(crate) fn sim_reorder(&mut self, sim: &crate::sim::SimState) {
        use crate::sim::Fault;
        // Runs of consecutive entries of one fd.
        let mut groups: Vec<Vec<(Key, FdFlags)>> = Vec::new();
        let mut last = None;
        for (w, ready) in self.batch.drain(..) {
            let file = self.watchers.get(w).map(|x| x.file);
            if file.is_none() || file != last || groups.is_empty() {
                groups.push(Vec::new());
            }
            last = file;
            groups.last_mut().expect("pushed above").push((w, ready));
        }
        // Fisher-Yates.
        for i in (1..groups.len()).rev() {
            let j = sim.below(i + 1);
            groups.swap(i, j);
        }
        for g in groups {
            if sim.inject(Fault::DelayedReadiness) {
                continue;
            }
            sim.note(|| {
                format!(
                    "ready {:?}",
                    g.iter().map(|e| e.0.to_u64()).collect::<Vec<_>>()
                )
            });
            self.batch.extend(g);
        }
    }

    /// Entries in the ready batch (the fast wait's mark, see
    /// [`FdTable::truncate_batch`]).
    #[cfg(target_os = "linux")]
    pub(crate) fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// Drops the batch entries after the first `len` (those of a wait that
    /// the fast wait reads again through the poller).
    #[cfg(target_os = "linux")]
    pub(crate) fn truncate_batch(&mut self, len: usize) {
        self.batch.truncate(len);
    }

    /// Registers every fd that has interest in `poller` (a new poller in a
    /// forked child; see [`crate::fork`]). An fd the new poller refuses is
    /// left unregistered, to be retried at the next sync.
    pub(crate) fn register_all(&mut self, poller: &Poller) {
        let mut failed = Vec::new();
        for fkey in self.files.keys() {
            let file = self.files.get_mut(fkey).expect("live");
            if let Some(bits) = file.registered
                && register(poller, file.fd, fkey, bits).is_err()
            {
                file.registered = None;
                failed.push(fkey);
            }
        }
        for fkey in failed {
            self.mark_dirty(fkey);
        }
    }

    pub(crate) fn take_all(&mut self, poller: Option<&Poller>) -> (Vec<FdHandler>, Vec<Keep>) {
        self.batch.clear();
        self.dirty.clear();
        self.active = 0;
        self.parked = 0;
        let handlers = self
            .watchers
            .drain()
            .into_iter()
            .filter_map(|w| w.handler)
            .collect();
        let mut keep = Vec::new();
        for f in self.files.drain() {
            if f.registered.is_some()
                && let Some(p) = poller
            {
                deregister(p, f.fd);
            }
            keep.extend(f.keep);
        }
        self.by_fd.clear();
        (handlers, keep)
    }
}

fn interest(fkey: Key, bits: u8) -> Event {
    let key = fkey.to_u64() as usize;
    match (bits & FdFlags::READ.0 != 0, bits & FdFlags::WRITE.0 != 0) {
        (true, true) => Event::all(key),
        (true, false) => Event::readable(key),
        (false, true) => Event::writable(key),
        (false, false) => Event::none(key),
    }
}

fn register(poller: &Poller, fd: RawFd, fkey: Key, bits: u8) -> std::io::Result<()> {
    // SAFETY: `polling` requires the fd to be deleted from the poller before it
    // is closed. Owned and shared fds are kept open by the file entry's `keep`
    // until after `deregister`; a borrowed fd is deregistered when its last
    // watcher handle (which carries the borrow's lifetime) is dropped. A handle
    // leaked with `mem::forget` can outlive the borrow; on epoll the kernel then
    // drops the registration when the file closes, which is not memory-unsafe.
    unsafe { poller.add_with_mode(fd, interest(fkey, bits), PollMode::Level) }
}

/// Checks that `raw` meets `require`, probing (and recording in the entry's
/// `nonblocking` / `socket`) only what is not known yet: one `fcntl(F_GETFL)`,
/// plus an `fstat` for a blocking fd that may be a socket.
#[inline]
fn check_mode(
    raw: RawFd,
    nonblocking: &mut Option<bool>,
    socket: &mut Option<bool>,
    require: Require,
) -> Result<(), Error> {
    // The usual answers, inline: nothing required, or an fd already found
    // nonblocking (every request on a connection after its first).
    if require == Require::Any || *nonblocking == Some(true) {
        return Ok(());
    }
    probe_mode(raw, nonblocking, socket, require)
}

/// [`check_mode`] when it must look (or has looked) further.
#[inline(never)]
fn probe_mode(
    raw: RawFd,
    nonblocking: &mut Option<bool>,
    socket: &mut Option<bool>,
    require: Require,
) -> Result<(), Error> {
    // SAFETY: only probes the descriptor, which the caller keeps open (it is
    // being added to the table); the borrow ends with this function.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    let bad = |e: rustix::io::Errno| Error::BadFd {
        fd: raw,
        source: e.into(),
    };
    let nb = match *nonblocking {
        Some(nb) => nb,
        None => {
            let fl = rustix::fs::fcntl_getfl(fd).map_err(bad)?;
            *nonblocking.insert(fl.contains(rustix::fs::OFlags::NONBLOCK))
        }
    };
    if nb {
        return Ok(());
    }
    if require == Require::NonblockingOrSocket {
        let sock = match *socket {
            Some(s) => s,
            None => {
                let st = rustix::fs::fstat(fd).map_err(bad)?;
                let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
                *socket.insert(kind == rustix::fs::FileType::Socket)
            }
        };
        if sock {
            return Ok(());
        }
    }
    Err(Error::Blocking { fd: raw })
}

fn deregister(poller: &Poller, fd: RawFd) {
    // SAFETY: the fd is still open (see `register`); the borrow ends here.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    // ENOENT/EBADF mean the kernel already dropped it; nothing to undo.
    let _ = poller.delete(fd);
}
