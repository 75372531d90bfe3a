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

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

use polling::{Event, PollMode, Poller};

use crate::Error;
use crate::context::{Context, Inner, upgrade};
use crate::panic::run_handler;
use crate::slab::{Key, Slab};
use crate::trace::{EventKind, EventPoint};

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

impl Context {
    /// Watches an fd the context takes ownership of; it is closed after the
    /// last watcher of this fd is dropped and the fd has left the poller.
    ///
    /// `flags` may be empty (the watcher is paused until [`FdEvent::set_flags`]).
    /// Errors with [`Error::BadFd`] if the fd cannot be watched (on Linux,
    /// epoll refuses regular files, for example).
    ///
    /// The fd may be in blocking mode (as in tevent, the handler decides what
    /// to do with it); request watchers ([`crate::Ctl::watch_fd`]) refuse one.
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// use std::os::unix::net::UnixStream;
    /// use tevent::{Context, FdFlags};
    ///
    /// let ev = Context::new()?;
    /// let (a, b) = UnixStream::pair().unwrap();
    /// std::io::Write::write_all(&mut &b, b"x").unwrap();
    /// let hits = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let h = hits.clone();
    /// // The context owns the fd, and closes it when the watcher is dropped.
    /// let watcher = ev.add_fd(OwnedFd::from(a), FdFlags::READ, move |_, me, ready| {
    ///     assert_eq!(ready, FdFlags::READ);
    ///     h.set(h.get() + 1);
    ///     me.set_flags(FdFlags::empty()); // pause
    /// })?;
    /// ev.loop_once()?;
    /// assert_eq!(hits.get(), 1);
    /// drop(watcher);
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_fd(
        &self,
        fd: OwnedFd,
        flags: FdFlags,
        handler: impl FnMut(&Context, &FdRef<'_>, FdFlags) + 'static,
    ) -> Result<FdEvent<'static>, Error> {
        let raw = fd.as_raw_fd();
        let scope = self.enter();
        let r = self
            .fd_add(
                raw,
                Some(Keep::Owned(fd)),
                flags,
                FdHandler::Plain(Box::new(handler)),
                Require::Any,
            )
            .map(|key| FdEvent::new(self, key));
        scope.end(r)
    }

    /// Watches an fd shared through an `Rc`; the context keeps a clone while
    /// the fd is registered, so it cannot be closed underneath the poller.
    /// Blocking fds are accepted, as by [`Context::add_fd`].
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use tevent::{Context, FdFlags};
    ///
    /// let ev = Context::new()?;
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a); // shared: the handler and the caller use it too
    /// let sock = a.clone();
    /// let _w = ev.add_fd_shared(a.clone(), FdFlags::WRITE, move |_, me, _| {
    ///     std::io::Write::write_all(&mut &*sock, b"hello").unwrap();
    ///     me.set_flags(FdFlags::empty());
    /// })?;
    /// ev.loop_once()?;
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_fd_shared<T: AsFd + 'static>(
        &self,
        fd: Rc<T>,
        flags: FdFlags,
        handler: impl FnMut(&Context, &FdRef<'_>, FdFlags) + 'static,
    ) -> Result<FdEvent<'static>, Error> {
        self.add_fd_shared_with(fd, flags, FdHandler::Plain(Box::new(handler)), Require::Any)
    }

    /// [`Context::add_fd_shared`], with a requirement on the fd's mode.
    pub(crate) fn add_fd_shared_with<T: AsFd + 'static>(
        &self,
        fd: Rc<T>,
        flags: FdFlags,
        handler: FdHandler,
        require: Require,
    ) -> Result<FdEvent<'static>, Error> {
        let raw = fd.as_fd().as_raw_fd();
        let scope = self.enter();
        let r = self
            .fd_add(raw, Some(Keep::Shared(fd)), flags, handler, require)
            .map(|key| FdEvent::new(self, key));
        scope.end(r)
    }

    /// Watches a borrowed fd. The returned handle carries the borrow, so the fd
    /// cannot be closed while it is watched; dropping the handle deregisters it.
    /// Blocking fds are accepted, as by [`Context::add_fd`].
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use std::os::unix::net::UnixStream;
    /// use tevent::{Context, FdFlags};
    ///
    /// let ev = Context::new()?;
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// {
    ///     // The watcher borrows `a`: it cannot outlive it (FdEvent<'fd>).
    ///     let _w = ev.add_fd_borrowed(a.as_fd(), FdFlags::WRITE, |_, me, _| me.set_flags(FdFlags::empty()))?;
    ///     ev.loop_once()?;
    /// }
    /// drop(a); // never closed by the context
    /// # Ok::<(), tevent::Error>(())
    /// ```
    pub fn add_fd_borrowed<'fd>(
        &self,
        fd: BorrowedFd<'fd>,
        flags: FdFlags,
        handler: impl FnMut(&Context, &FdRef<'_>, FdFlags) + 'static,
    ) -> Result<FdEvent<'fd>, Error> {
        let scope = self.enter();
        let r = self
            .fd_add(
                fd.as_raw_fd(),
                None,
                flags,
                FdHandler::Plain(Box::new(handler)),
                Require::Any,
            )
            .map(|key| FdEvent::new(self, key));
        scope.end(r)
    }

    pub(crate) fn fd_add(
        &self,
        raw: RawFd,
        keep: Option<Keep>,
        flags: FdFlags,
        handler: FdHandler,
        require: Require,
    ) -> Result<Key, Error> {
        self.inner.check_fork();
        let mut t = self.inner.fds.borrow_mut();
        let mut found = t.by_fd.get(&raw).copied();
        // An entry whose fd is only borrowed may be stale: its watchers'
        // handles leaked (`mem::forget` ends a borrow without dropping), the
        // fd closed, and its number now names another file, which the
        // entry's registration does not cover. Asking the poller to keep the
        // entry's interest tells (it no longer knows this fd and file).
        if let Some(k) = found
            && let Some(file) = t.files.get(k)
            && file.keep.is_empty()
            && let Some(bits) = file.registered
            && let Some(p) = self.inner.poller()
        {
            // SAFETY: the fd is open: the caller holds it (owned, shared or
            // borrowed) for this call.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            if p.modify_with_mode(fd, interest(k, bits), PollMode::Level)
                .is_err()
            {
                t.orphan(k);
                found = t.by_fd.get(&raw).copied();
            }
        }
        let fkey = match found {
            Some(k) => {
                let file = t.files.get_mut(k).expect("live");
                if let Err(e) = check_mode(raw, &mut file.nonblocking, &mut file.socket, require) {
                    drop(t);
                    drop(keep);
                    return Err(e);
                }
                k
            }
            None => {
                // The fd's mode is probed once, for its new entry (a checking
                // watcher added later to an entry made by a plain one probes
                // it then).
                let (mut nonblocking, mut socket) = (None, None);
                if let Err(e) = check_mode(raw, &mut nonblocking, &mut socket, require) {
                    drop(t);
                    drop(keep);
                    return Err(e);
                }
                // Register at once (with whatever interest we have) so a bad fd
                // is reported here and not at the next wait.
                let fkey = t.files.insert(FileEntry {
                    fd: raw,
                    nonblocking,
                    socket,
                    keep: Vec::new(),
                    watchers: Vec::new(),
                    parked: Vec::new(),
                    registered: None,
                    rr: 0,
                    dirty: false,
                });
                let bits = flags.bits() & (FdFlags::READ.0 | FdFlags::WRITE.0);
                let res = if flags.is_empty() {
                    // SAFETY: only validates the descriptor; nothing is kept.
                    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
                    rustix::io::fcntl_getfd(fd).map(|_| ()).map_err(Into::into)
                } else {
                    match self.inner.poller() {
                        Some(p) => register(&p, raw, fkey, bits),
                        None => Err(std::io::ErrorKind::Unsupported.into()),
                    }
                };
                if let Err(source) = res {
                    t.files.remove(fkey);
                    drop(t);
                    // `keep` (an owned fd) is closed here, as the caller gave it to us.
                    drop(keep);
                    return Err(Error::BadFd { fd: raw, source });
                }
                if !flags.is_empty() {
                    t.files.get_mut(fkey).expect("live").registered = Some(bits);
                }
                t.by_fd.insert(raw, fkey);
                fkey
            }
        };
        if !flags.is_empty() {
            t.active += 1;
        }
        // One look-up of the entry for all that follows.
        let FdTable {
            watchers,
            files,
            dirty,
            parked,
            ..
        } = &mut *t;
        let file = files.get_mut(fkey).expect("live");
        // A watcher parked on the fd (the previous one-shot request's) is
        // taken over, under a new key: no slab insertion.
        let took_over = !file.parked.is_empty();
        let wkey = match file.parked.pop() {
            Some(old) => {
                let new = watchers.rekey(old).expect("parked watchers are live");
                let w = watchers.get_mut(new).expect("live");
                w.flags = flags;
                w.handler = Some(handler);
                w.tag = 0;
                w.parked = false;
                *parked -= 1;
                new
            }
            None => watchers.insert(Watcher {
                file: fkey,
                flags,
                handler: Some(handler),
                tag: 0,
                parked: false,
            }),
        };
        file.watchers.push(wkey);
        // Only an owned fd, or the first keeper, is kept; an extra `Rc` clone of
        // an fd already kept open is redundant.
        let mut extra = None;
        if let Some(k) = keep {
            if file.keep.is_empty() || matches!(k, Keep::Owned(_)) {
                file.keep.push(k);
            } else {
                extra = Some(k);
            }
        }
        if !file.dirty {
            file.dirty = true;
            dirty.push(fkey);
        } else if took_over {
            // No re-sync of an interest that did not change.
            FdTable::clean(watchers, dirty, file, fkey);
        }
        drop(t);
        drop(extra);
        self.inner
            .trace_event(EventKind::Fd, EventPoint::Attach, wkey.to_u64(), 0);
        Ok(wkey)
    }

    /// Removes a watcher (its handle was dropped).
    ///
    /// On a shared fd the fd lingers, registered, until the next wait: a new
    /// watcher on it before then (the next one-shot request) costs no system
    /// call, and the `Rc` the table holds keeps the fd number from being
    /// reused meanwhile. The watcher itself is parked there rather than
    /// removed (it leaves the counts and traces at once, keeps no handler,
    /// and is never called), and that next watcher takes it over: the usual
    /// read-after-read of a connection then costs no slab or list work.
    /// Parked watchers of an fd nobody took over go at the next wait, with
    /// the fd's registration.
    pub(crate) fn fd_remove(&self, wkey: Key) {
        self.inner.check_fork();
        let mut t = self.inner.fds.borrow_mut();
        let FdTable {
            watchers,
            files,
            dirty,
            active,
            parked,
            ..
        } = &mut *t;
        let Some(w) = watchers.get_mut(wkey) else {
            return;
        };
        if w.parked {
            return;
        }
        let fkey = w.file;
        if let Some(file) = files.get_mut(fkey)
            && !file.keep.is_empty()
            && file.keep.iter().all(|k| matches!(k, Keep::Shared(_)))
        {
            // The fd lingers: park the watcher there.
            let (flags, tag, handler) = (w.flags, w.tag, w.handler.take());
            w.flags = FdFlags::empty();
            w.tag = 0;
            w.parked = true;
            *parked += 1;
            // Usually the fd's only watcher: no search, no shifting.
            if file.watchers.last() == Some(&wkey) {
                file.watchers.pop();
            } else if let Some(i) = file.watchers.iter().position(|k| *k == wkey) {
                file.watchers.remove(i);
            }
            file.parked.push(wkey);
            if !flags.is_empty() {
                *active -= 1;
            }
            if !file.dirty {
                file.dirty = true;
                dirty.push(fkey);
            }
            drop(t);
            self.inner
                .trace_event(EventKind::Fd, EventPoint::Detach, wkey.to_u64(), tag);
            self.inner.drop_handler(handler);
            return;
        }
        let w = t.watchers.remove(wkey).expect("live");
        if !w.flags.is_empty() {
            t.active -= 1;
        }
        let mut released = Vec::new();
        if let Some(file) = t.files.get_mut(w.file) {
            file.watchers.retain(|k| *k != wkey);
            if file.watchers.is_empty() {
                // Owned fds close now, after deregistration; borrowed fds leave the
                // poller now because their borrow may end right after this call.
                let mut file = t.files.remove(w.file).expect("live");
                t.drop_parked(std::mem::take(&mut file.parked));
                t.unmap(file.fd, w.file);
                if file.registered.is_some()
                    && let Some(p) = self.inner.poller()
                {
                    deregister(&p, file.fd);
                }
                released = file.keep;
            } else {
                t.mark_dirty(w.file);
            }
        }
        drop(t);
        self.inner
            .trace_event(EventKind::Fd, EventPoint::Detach, wkey.to_u64(), w.tag);
        self.inner.drop_handler((released, w.handler));
    }

    pub(crate) fn fd_set_flags(&self, wkey: Key, flags: FdFlags) -> Result<(), Error> {
        let mut t = self.inner.fds.borrow_mut();
        let Some(w) = t.watchers.get_mut(wkey).filter(|w| !w.parked) else {
            return Err(Error::EventGone);
        };
        let (was, file) = (w.flags, w.file);
        w.flags = flags;
        match (was.is_empty(), flags.is_empty()) {
            (true, false) => t.active += 1,
            (false, true) => t.active -= 1,
            _ => {}
        }
        if was != flags {
            t.mark_dirty(file);
        }
        Ok(())
    }

    fn fd_info(&self, wkey: Key) -> Option<(FdFlags, RawFd, u64)> {
        let t = self.inner.fds.borrow();
        let w = t.watchers.get(wkey).filter(|w| !w.parked)?;
        let f = t.files.get(w.file)?;
        Some((w.flags, f.fd, w.tag))
    }

    fn fd_set_tag(&self, wkey: Key, tag: u64) {
        if let Some(w) = self.inner.fds.borrow_mut().watchers.get_mut(wkey)
            && !w.parked
        {
            w.tag = tag;
        }
    }

    /// Serves the next entry of the ready batch, skipping entries whose watcher
    /// is gone or no longer interested. Returns whether a handler ran.
    pub(crate) fn run_one_fd(&self) -> bool {
        let inner = &*self.inner;
        let (wkey, delivered, handler, tag) = {
            let mut t = inner.fds.borrow_mut();
            loop {
                let Some((wkey, ready)) = t.batch.pop_front() else {
                    return false;
                };
                let Some(w) = t.watchers.get_mut(wkey) else {
                    continue;
                };
                let delivered = ready & w.flags;
                if delivered.is_empty() {
                    continue;
                }
                let Some(h) = w.handler.take() else {
                    continue;
                };
                break (wkey, delivered, h, w.tag);
            }
        };
        if inner.trace_before_handler(EventKind::Fd, wkey.to_u64(), tag)
            && inner
                .fds
                .borrow()
                .watchers
                .get(wkey)
                .is_none_or(|w| w.parked)
        {
            // Removed by the hook: never called.
            drop(handler);
            return true;
        }
        // The handler goes back into its watcher when it returns or panics.
        let handler = run_handler(
            handler,
            |h| self.fd_ran(wkey, h),
            |h| match h {
                FdHandler::Plain(h) => h(
                    self,
                    &FdRef {
                        ctx: self,
                        key: wkey,
                    },
                    delivered,
                ),
                FdHandler::Req(node, step) => step(self, node, delivered),
            },
        );
        self.fd_ran(wkey, handler);
        true
    }

    /// Puts a watcher's handler back after it ran (or drops it, if the
    /// watcher was removed or parked meanwhile).
    fn fd_ran(&self, wkey: Key, handler: FdHandler) {
        let leftover = match self.inner.fds.borrow_mut().watchers.get_mut(wkey) {
            Some(w) if !w.parked => {
                w.handler = Some(handler);
                None
            }
            _ => Some(handler),
        };
        drop(leftover);
    }

    /// Reports every fd watcher as detached (the context is being dropped).
    pub(crate) fn fds_detach_all(inner: &Inner) {
        let t = inner.fds.borrow();
        let attached = t.watchers.iter().filter(|(_, w)| !w.parked);
        let attached = attached.map(|(k, w)| (k.to_u64(), w.tag)).collect();
        drop(t);
        inner.trace_detach_all(EventKind::Fd, attached);
    }
}

/// An fd watcher, owned: dropping it removes the watcher (and, for the last
/// watcher of an fd, deregisters the fd and closes it if the context owns it).
///
/// The lifetime is that of a borrowed fd ([`Context::add_fd_borrowed`]);
/// owned and shared fds give `FdEvent<'static>`.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use tevent::{Context, FdFlags};
///
/// let ev = Context::new()?;
/// let (a, _b) = UnixStream::pair().unwrap();
/// let w = ev.add_fd_shared(Rc::new(a), FdFlags::READ, |_, _, _| {})?;
/// assert_eq!(w.flags(), FdFlags::READ);
/// w.set_flags(FdFlags::empty())?; // paused: registered, but loop_wait does not wait for it
/// assert!(!ev.has_events());
/// # Ok::<(), tevent::Error>(())
/// ```
#[must_use = "dropping an FdEvent removes the watcher"]
pub struct FdEvent<'fd> {
    ctx: Weak<Inner>,
    key: Key,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

/// A borrowed view of an fd watcher, given to its handler.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use tevent::{Context, FdFlags, FdRef};
///
/// let ev = Context::new()?;
/// let (a, _b) = UnixStream::pair().unwrap();
/// let _w = ev.add_fd_shared(Rc::new(a), FdFlags::WRITE, |_, me: &FdRef<'_>, _| {
///     assert!(me.fd() >= 0);
///     me.set_flags(FdFlags::empty()); // the handler reconfigures its own watcher
/// })?;
/// ev.loop_once()?;
/// # Ok::<(), tevent::Error>(())
/// ```
pub struct FdRef<'a> {
    ctx: &'a Context,
    key: Key,
}

impl FdRef<'_> {
    /// The watcher's current flags.
    pub fn flags(&self) -> FdFlags {
        self.ctx
            .fd_info(self.key)
            .map_or(FdFlags::empty(), |(f, _, _)| f)
    }

    /// Changes the flags (empty pauses the watcher).
    pub fn set_flags(&self, flags: FdFlags) {
        let _ = self.ctx.fd_set_flags(self.key, flags);
    }

    /// The watched fd.
    pub fn fd(&self) -> RawFd {
        self.ctx.fd_info(self.key).map_or(-1, |(_, fd, _)| fd)
    }

    /// The watcher's tag.
    pub fn tag(&self) -> u64 {
        self.ctx.fd_info(self.key).map_or(0, |(_, _, t)| t)
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        self.ctx.fd_set_tag(self.key, tag)
    }
}

impl FdEvent<'_> {
    fn new(ctx: &Context, key: Key) -> Self {
        FdEvent {
            ctx: ctx.weak(),
            key,
            _fd: PhantomData,
        }
    }

    /// The watcher's current flags.
    pub fn flags(&self) -> FdFlags {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.fd_info(self.key))
            .map_or(FdFlags::empty(), |(f, _, _)| f)
    }

    /// Changes the flags at any time (empty pauses the watcher: it stays
    /// registered but never fires and does not keep `loop_wait` going).
    pub fn set_flags(&self, flags: FdFlags) -> Result<(), Error> {
        upgrade(&self.ctx)?.fd_set_flags(self.key, flags)
    }

    /// The watched fd.
    pub fn fd(&self) -> RawFd {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.fd_info(self.key))
            .map_or(-1, |(_, fd, _)| fd)
    }

    /// The watcher's tag.
    pub fn tag(&self) -> u64 {
        upgrade(&self.ctx)
            .ok()
            .and_then(|c| c.fd_info(self.key))
            .map_or(0, |(_, _, t)| t)
    }

    /// Sets the tag reported to the event trace hook.
    pub fn set_tag(&self, tag: u64) {
        if let Ok(c) = upgrade(&self.ctx) {
            c.fd_set_tag(self.key, tag)
        }
    }
}

impl Drop for FdEvent<'_> {
    fn drop(&mut self) {
        if let Ok(c) = upgrade(&self.ctx) {
            let _scope = c.enter();
            c.fd_remove(self.key);
        }
    }
}

impl std::fmt::Debug for FdEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdEvent")
            .field("fd", &self.fd())
            .field("flags", &self.flags())
            .finish()
    }
}
