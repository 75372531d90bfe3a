//! The handles of an fd watcher: [`FdEvent`], owned, and [`FdRef`], borrowed
//! by the handler while it runs.

use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Weak;

use crate::Error;
use crate::context::{Context, Inner, upgrade};
use crate::slab::Key;

use super::FdFlags;

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
    pub(super) ctx: &'a Context,
    pub(super) key: Key,
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
    pub(super) fn new(ctx: &Context, key: Key) -> Self {
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
