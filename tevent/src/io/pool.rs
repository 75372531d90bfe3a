//! The buffer pool: [`BufPool`] and the [`PooledBuf`] it lends out.

use std::rc::Rc;

#[cfg(doc)]
use crate::context::Context;
use crate::req::ReqError;

#[cfg(doc)]
use super::read::{read_pooled_send, read_some_send};
#[cfg(doc)]
use super::write::write_all_send;

/// Read buffers of one size, lent out by [`read_pooled_send`] only once there
/// is something to read, and taken back when the [`PooledBuf`] that holds one
/// is dropped.
///
/// A server that reads with [`read_some_send`] hands every waiting read a
/// buffer of its own, so each idle connection holds a full buffer (16 KiB at
/// a 16 KiB read size) for as long as it stays idle. With a pool, a read
/// request holds no buffer while it waits: it takes one when the fd is
/// readable, reads into it, and hands it out as a [`PooledBuf`]; dropping that
/// (for instance after writing it back with [`write_all_send`], which returns
/// it) gives the buffer back for the next read. A loop that serves one
/// connection at a time therefore cycles through a handful of buffers,
/// whatever the number of connections.
///
/// - `size` is the capacity of each buffer, in bytes: the most one read
///   takes (a size of 0 is taken as 1).
/// - `keep` is how many returned buffers the pool holds for reuse; a buffer
///   returned beyond that is freed, so a burst of activity does not leave
///   memory behind. [`BufPool::new`] keeps [`BufPool::DEFAULT_KEEP`].
/// - Buffers are allocated fallibly (a failed allocation is
///   [`ReqError::NoMemory`]) and never zero-filled: a read fills the
///   buffer's spare capacity, so only the bytes that arrived are ever
///   touched.
///
/// The pool is a cheap handle (`Rc`) tied to one thread, like the
/// [`Context`]; clone it into every request that reads with it. C tevent has
/// no such thing: its echo example allocates a buffer per read with talloc,
/// and Samba's `read_packet_send` allocates its buffer when the request
/// starts. It is a separate object rather than part of the context so that
/// each user chooses the buffer size and how many buffers stay cached, and
/// dropping the last handle frees them.
///
/// ```
/// use tevent::io::BufPool;
///
/// let pool = BufPool::new(16384);
/// assert_eq!((pool.size(), pool.lent(), pool.cached()), (16384, 0, 0));
/// let buf = pool.take::<()>().unwrap(); // empty, with room for 16384 bytes
/// assert!(buf.is_empty() && buf.capacity() >= 16384);
/// assert_eq!(pool.lent(), 1);
/// drop(buf); // back to the pool
/// assert_eq!((pool.lent(), pool.cached()), (0, 1));
/// ```
#[derive(Clone)]
pub struct BufPool {
    shared: Rc<PoolShared>,
}

struct PoolShared {
    size: usize,
    keep: usize,
    /// Returned buffers, empty, with at least `size` bytes of capacity.
    free: std::cell::RefCell<Vec<Vec<u8>>>,
    /// Buffers out in [`PooledBuf`]s.
    lent: std::cell::Cell<usize>,
}

impl BufPool {
    /// How many returned buffers [`BufPool::new`] keeps for reuse.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(64);
    /// let bufs: Vec<_> = (0..20).map(|_| pool.take::<()>().unwrap()).collect();
    /// drop(bufs); // 20 come back, 16 stay
    /// assert_eq!(pool.cached(), BufPool::DEFAULT_KEEP);
    /// assert_eq!(BufPool::DEFAULT_KEEP, 16);
    /// ```
    pub const DEFAULT_KEEP: usize = 16;

    /// A pool of `size`-byte buffers (at least 1) that keeps up to
    /// [`BufPool::DEFAULT_KEEP`] returned buffers. Allocates nothing yet.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16384);
    /// assert_eq!((pool.size(), pool.keep()), (16384, BufPool::DEFAULT_KEEP));
    /// assert_eq!((pool.lent(), pool.cached()), (0, 0)); // no buffer yet
    /// ```
    pub fn new(size: usize) -> BufPool {
        BufPool::with_keep(size, Self::DEFAULT_KEEP)
    }

    /// A pool of `size`-byte buffers (at least 1) that keeps up to `keep`
    /// returned buffers for reuse (0: every buffer is freed when returned).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::with_keep(100, 1);
    /// let (a, b) = (pool.take::<()>().unwrap(), pool.take::<()>().unwrap());
    /// drop((a, b));
    /// assert_eq!(pool.cached(), 1); // the second one was freed
    /// ```
    pub fn with_keep(size: usize, keep: usize) -> BufPool {
        BufPool {
            shared: Rc::new(PoolShared {
                size: size.max(1),
                keep,
                free: std::cell::RefCell::new(Vec::new()),
                lent: std::cell::Cell::new(0),
            }),
        }
    }

    /// The capacity of each buffer, in bytes: the most one
    /// [`read_pooled_send`] reads.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// assert_eq!(BufPool::new(4096).size(), 4096);
    /// assert_eq!(BufPool::new(0).size(), 1); // a size of 0 is taken as 1
    /// ```
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// How many returned buffers the pool keeps at most.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// assert_eq!(BufPool::with_keep(4096, 2).keep(), 2);
    /// assert_eq!(BufPool::new(4096).keep(), BufPool::DEFAULT_KEEP);
    /// ```
    pub fn keep(&self) -> usize {
        self.shared.keep
    }

    /// Buffers lent out right now (held by [`PooledBuf`]s).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(64);
    /// let a = pool.take::<()>().unwrap();
    /// let b = pool.take::<()>().unwrap();
    /// assert_eq!(pool.lent(), 2);
    /// drop(a); // returned
    /// let _bytes = b.into_vec(); // detached: no longer the pool's
    /// assert_eq!(pool.lent(), 0);
    /// ```
    pub fn lent(&self) -> usize {
        self.shared.lent.get()
    }

    /// Returned buffers held for reuse right now (at most
    /// [`BufPool::keep`]).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::with_keep(64, 2);
    /// let bufs: Vec<_> = (0..3).map(|_| pool.take::<()>().unwrap()).collect();
    /// assert_eq!(pool.cached(), 0);
    /// drop(bufs);
    /// assert_eq!(pool.cached(), 2); // the third one was freed
    /// let _again = pool.take::<()>().unwrap(); // reuses a cached one
    /// assert_eq!(pool.cached(), 1);
    /// ```
    pub fn cached(&self) -> usize {
        self.shared.free.borrow().len()
    }

    /// Lends a buffer: empty, with room for at least [`BufPool::size`]
    /// bytes; a cached one if there is one, else a new allocation (without
    /// zero-filling). Fails with [`ReqError::NoMemory`] if the allocation
    /// fails; `E` is the error type of the request asking (as in
    /// [`crate::alloc`]).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(512);
    /// let buf = pool.take::<std::io::Error>().unwrap(); // as an I/O request would
    /// assert!(buf.is_empty() && buf.capacity() >= 512);
    /// let first = buf.as_ptr();
    /// drop(buf);
    /// let again = pool.take::<std::io::Error>().unwrap();
    /// assert_eq!(again.as_ptr(), first); // the same allocation, cached
    /// # assert_eq!(pool.cached(), 0);
    /// ```
    #[inline] // (in `io.rs` it was inlined into the read requests)
    pub fn take<E>(&self) -> Result<PooledBuf, ReqError<E>> {
        let cached = self.shared.free.borrow_mut().pop();
        let buf = match cached {
            Some(buf) => buf,
            None => crate::alloc::try_vec(self.shared.size)?,
        };
        self.shared.lent.set(self.shared.lent.get() + 1);
        Ok(PooledBuf {
            buf,
            pool: self.shared.clone(),
        })
    }
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.size())
            .field("keep", &self.keep())
            .field("lent", &self.lent())
            .field("cached", &self.cached())
            .finish()
    }
}

/// A buffer lent by a [`BufPool`]: derefs to the bytes it holds (the bytes a
/// [`read_pooled_send`] read), and goes back to its pool when dropped.
///
/// Pass it on as it is ([`write_all_send`] takes it and hands it back when
/// the write is done), or keep the bytes with [`PooledBuf::into_vec`], which
/// takes the buffer out of the pool's accounting for good.
///
/// ```
/// use tevent::io::BufPool;
///
/// let pool = BufPool::new(8);
/// let mut buf = pool.take::<()>().unwrap();
/// buf.extend_from_slice(b"abc").unwrap();
/// assert_eq!(&buf[..], b"abc");
/// buf[0] = b'x';
/// let bytes: Vec<u8> = buf.into_vec(); // detached: the pool lends nothing now
/// assert_eq!(bytes, b"xbc");
/// assert_eq!((pool.lent(), pool.cached()), (0, 0));
/// ```
pub struct PooledBuf {
    pub(super) buf: Vec<u8>,
    pool: Rc<PoolShared>,
}

impl PooledBuf {
    /// The room the buffer has, in bytes (at least its pool's size).
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(100);
    /// let mut buf = pool.take::<()>().unwrap();
    /// assert!(buf.capacity() >= 100);
    /// buf.extend_from_slice(b"abc").unwrap();
    /// assert_eq!((buf.len(), buf.capacity() >= 100), (3, true)); // room, not length
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends `data` if it fits in the capacity (the buffer never grows:
    /// it goes back to a pool of fixed-size buffers); otherwise appends
    /// nothing and returns the number of bytes that would not fit.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(8);
    /// let mut buf = pool.take::<()>().unwrap();
    /// let room = buf.capacity();
    /// buf.extend_from_slice(b"hello").unwrap();
    /// let too_much = vec![b'!'; room]; // 5 bytes more than the room left
    /// assert_eq!(buf.extend_from_slice(&too_much), Err(5));
    /// assert_eq!(&buf[..], b"hello"); // nothing was appended
    /// ```
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), usize> {
        let room = self.buf.capacity() - self.buf.len();
        if data.len() > room {
            return Err(data.len() - room);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Empties the buffer (its capacity stays), to fill it again.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16);
    /// let mut buf = pool.take::<()>().unwrap();
    /// buf.extend_from_slice(b"first").unwrap();
    /// let room = buf.capacity();
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), room);
    /// ```
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Takes the bytes out as a plain `Vec`, which the pool no longer
    /// counts or gets back.
    ///
    /// ```
    /// use tevent::io::BufPool;
    ///
    /// let pool = BufPool::new(16);
    /// let mut buf = pool.take::<()>().unwrap();
    /// buf.extend_from_slice(b"keep me").unwrap();
    /// let mut kept: Vec<u8> = buf.into_vec();
    /// assert_eq!((pool.lent(), pool.cached()), (0, 0)); // not returned, not lent
    /// kept.extend_from_slice(b", and grow"); // a plain Vec from now on
    /// assert_eq!(kept, b"keep me, and grow");
    /// ```
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

impl std::ops::Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let pool = &self.pool;
        pool.lent.set(pool.lent.get() - 1);
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() < pool.size {
            return; // taken out by `into_vec`: nothing to give back
        }
        let mut free = pool.free.borrow_mut();
        if free.len() < pool.keep && free.try_reserve(1).is_ok() {
            buf.clear();
            free.push(buf);
        }
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}
