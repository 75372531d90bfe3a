//! Fork safety: after `fork()`, a child that uses or drops the context it
//! inherited never disturbs the parent's loop.
//!
//! The child inherits the parent's epoll *instance* (the fd refers to the
//! same kernel object), its signal wake-up pipes and the poller's notifier.
//! Unchanged, a child that deregistered an fd would remove the parent's
//! registration, one that registered an fd would wake the parent with
//! readiness meant for the child, and dropping the inherited poller would
//! remove the parent's notifier and timeout timer from the shared set (the
//! parent's waits would then never time out).
//!
//! So, as C tevent does when it sees its pid change, the child gets its own:
//! a `pthread_atfork` child handler bumps a process-wide fork generation;
//! every use of a context's poller compares it with the generation the
//! poller was made in, and a context in a child first re-creates its poller
//! (re-registering its fds and its signal pipe) and its signal wake-up pipes,
//! and wakes its [`crate::Remote`] through the new notifier. The inherited
//! poller is leaked, never dropped (its drop would touch the shared set):
//! three fds per context stay open in the child. A context dropped in the
//! child without being used deregisters nothing.
//!
//! The sharing described above is epoll's (Linux). A kqueue (macOS,
//! FreeBSD) is not inherited by a child, so there the parent is safe
//! anyway; the child still needs, and gets, a new poller the same way.

use std::cell::Ref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use polling::Poller;

use crate::context::Inner;

/// Forks seen by this process (in a child: the forks that led to it).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Installs the fork handlers once per process; returns the current fork
/// generation.
pub(crate) fn watch() -> u64 {
    #[cfg(not(miri))]
    {
        static HANDLERS: std::sync::Once = std::sync::Once::new();
        HANDLERS.call_once(|| {
            // SAFETY: the handlers only touch atomics and a mutex handed over
            // between `prepare` and `parent`/`child` on the forking thread.
            unsafe {
                libc::pthread_atfork(Some(prepare), Some(in_parent), Some(in_child));
            }
        });
    }
    generation()
}

/// The current fork generation (one relaxed load).
#[inline]
pub(crate) fn generation() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

// Installed with pthread_atfork, which Miri does not run.
#[cfg_attr(miri, allow(dead_code))]
extern "C" fn prepare() {
    crate::signal::sys::before_fork();
}

// Installed with pthread_atfork, which Miri does not run.
#[cfg_attr(miri, allow(dead_code))]
extern "C" fn in_parent() {
    crate::signal::sys::after_fork();
}

// Installed with pthread_atfork, which Miri does not run.
#[cfg_attr(miri, allow(dead_code))]
extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    crate::signal::sys::after_fork();
}

impl Inner {
    /// The poller, made this process's own first if the process forked
    /// since it was made. `None` under Miri, or if a child could not create
    /// one.
    #[inline]
    pub(crate) fn poller(&self) -> Option<Ref<'_, Arc<Poller>>> {
        self.check_fork();
        Ref::filter_map(self.poller.borrow(), Option::as_ref).ok()
    }

    /// Makes the poller this process's own if the process forked. Callers
    /// that go on to borrow the fd or signal table call this first (adopting
    /// borrows both).
    #[inline]
    pub(crate) fn check_fork(&self) {
        if self.fork_gen.get() != generation() {
            self.adopt_after_fork();
        }
    }

    /// In a forked child: replaces the inherited poller with a new one and
    /// registers again, in it, everything this context watches.
    #[cold]
    fn adopt_after_fork(&self) {
        self.fork_gen.set(generation());
        let Some(inherited) = self.poller.borrow_mut().take() else {
            return;
        };
        // Never dropped: its `Drop` would delete the parent's notifier and
        // timer from the epoll set the two processes share.
        std::mem::forget(inherited);
        let Ok(poller) = Poller::new().map(Arc::new) else {
            self.orphan_remote();
            return;
        };
        self.fds.borrow_mut().register_all(&poller);
        self.sig.borrow_mut().adopt_after_fork(&poller);
        if let Some(r) = self.remote.get() {
            // The inherited notifier is leaked the same way.
            std::mem::forget(r.replace_poller(Some(poller.clone())));
        }
        *self.poller.borrow_mut() = Some(poller);
    }

    /// In a forked child that drops this context without using it: lets go
    /// of the inherited poller without touching it. Returns whether the
    /// process forked (then nothing may be deregistered).
    pub(crate) fn forget_inherited_poller(&self) -> bool {
        if self.fork_gen.get() == generation() {
            return false;
        }
        if let Some(inherited) = self.poller.borrow_mut().take() {
            std::mem::forget(inherited);
        }
        self.orphan_remote();
        true
    }

    /// Detaches the remote handles from an inherited notifier (leaked).
    fn orphan_remote(&self) {
        if let Some(r) = self.remote.get() {
            std::mem::forget(r.replace_poller(None));
        }
    }
}
