//! Context's fd methods: adding watchers (owned, shared and borrowed fds),
//! changing and removing them, and running the ready ones.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use polling::PollMode;

use crate::Error;
use crate::context::{Context, Inner};
use crate::panic::run_handler;
use crate::slab::Key;
use crate::trace::{EventKind, EventPoint};

use super::handle::{FdEvent, FdRef};
use super::{
    FdFlags, FdHandler, FdTable, FileEntry, Keep, Require, Watcher, check_mode, deregister,
    interest, register,
};

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
        let fkey = match self.fd_entry(&mut t, raw, flags, require) {
            Ok(k) => k,
            Err(e) => {
                drop(t);
                // `keep` (an owned fd) is closed here, as the caller gave it
                // to us; after the table is let go (a shared keeper's `Drop`
                // is the user's).
                drop(keep);
                return Err(e);
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

    /// The table entry of fd `raw` for a new watcher: the existing one (its
    /// mode checked as `require` asks; a stale borrowed entry orphaned
    /// first), or a new one registered with the poller at once, so that a
    /// bad fd is reported here and not at the next wait. For
    /// [`Context::fd_add`], which lets `t` go before it drops anything.
    fn fd_entry(
        &self,
        t: &mut FdTable,
        raw: RawFd,
        flags: FdFlags,
        require: Require,
    ) -> Result<Key, Error> {
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
        Ok(match found {
            Some(k) => {
                let file = t.files.get_mut(k).expect("live");
                check_mode(raw, &mut file.nonblocking, &mut file.socket, require)?;
                k
            }
            None => {
                // The fd's mode is probed once, for its new entry (a checking
                // watcher added later to an entry made by a plain one probes
                // it then).
                let (mut nonblocking, mut socket) = (None, None);
                check_mode(raw, &mut nonblocking, &mut socket, require)?;
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
                    return Err(Error::BadFd { fd: raw, source });
                }
                if !flags.is_empty() {
                    t.files.get_mut(fkey).expect("live").registered = Some(bits);
                }
                t.by_fd.insert(raw, fkey);
                fkey
            }
        })
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

    pub(super) fn fd_info(&self, wkey: Key) -> Option<(FdFlags, RawFd, u64)> {
        let t = self.inner.fds.borrow();
        let w = t.watchers.get(wkey).filter(|w| !w.parked)?;
        let f = t.files.get(w.file)?;
        Some((w.flags, f.fd, w.tag))
    }

    pub(super) fn fd_set_tag(&self, wkey: Key, tag: u64) {
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
