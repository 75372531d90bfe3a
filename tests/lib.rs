//! Helpers shared by the integration tests: socket pairs, fd probes, recorders;
//! the echo example binaries run as processes ([`echo_proc`]).

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

pub mod echo_proc;

/// A connected pair of nonblocking Unix stream sockets.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A pipe, both ends blocking and close-on-exec: (read end, write end).
/// (macOS has no `pipe2`: there the flag is set right after.)
pub fn pipe_cloexec() -> (OwnedFd, OwnedFd) {
    #[cfg(not(target_vendor = "apple"))]
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    #[cfg(target_vendor = "apple")]
    let (r, w) = {
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).expect("cloexec");
        }
        (r, w)
    };
    (r, w)
}

/// A connected pair as owned fds.
pub fn socketpair_fds() -> (OwnedFd, OwnedFd) {
    let (a, b) = socketpair();
    (OwnedFd::from(a), OwnedFd::from(b))
}

/// Writes all of `bytes` to `s` (the peer must have room).
pub fn send(mut s: &UnixStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
}

/// Whether the peer of `peer` has closed its end: a read returns end of file.
/// (Checking an fd number instead would race with other test threads, which
/// may reuse the number as soon as it is closed.)
pub fn peer_closed(peer: &UnixStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(std::io::Read::read(&mut &*peer, &mut buf), Ok(0))
}

/// Whether `fd` is an open descriptor in this process.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: only probes the descriptor table; the borrow ends immediately.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(b).is_ok()
}

/// A shared, cloneable log of what happened, in order.
#[derive(Clone, Default)]
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone> Log<T> {
    /// An empty log.
    pub fn new() -> Self {
        Log(Rc::new(RefCell::new(Vec::new())))
    }

    /// Appends an entry.
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v)
    }

    /// A copy of the entries so far.
    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// Removes and returns the entries.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

// The tutorial chapters and the README run as doctests of `tevent` itself
// (its `tutorial` module and a `cfg(doctest)` module in tevent/src/lib.rs).

pub mod random;
