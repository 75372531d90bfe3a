//! Fallible allocation: the "no memory" half of tevent's `tevent_req_nomem`.
//!
//! Rust's ordinary allocations abort the process when memory runs out. These
//! helpers report the failure instead, as [`ReqError::NoMemory`], so a request
//! step can write `let buf = try_vec(n)?;` and the request (and every parent
//! that propagates with `?`) finishes `NoMemory`. The runtime uses the same
//! helpers for its own per-request allocations.
//!
//! No `unsafe` is involved: a box is allocated through `Vec::try_reserve_exact`
//! (which returns an error where `Box::new` would abort) and converted to a
//! `Box<[T; 1]>`.

use crate::ReqError;

/// Allocates `v` on the heap, or hands it back if allocation fails.
///
/// The box holds a one-element array (same size and layout as `T`).
///
/// ```
/// let b = tevent::alloc::try_box(5u32).unwrap_or_else(|_| panic!("out of memory"));
/// assert_eq!(b[0], 5);
/// ```
pub fn try_box<T>(v: T) -> Result<Box<[T; 1]>, T> {
    let mut vec = Vec::new();
    if vec.try_reserve_exact(1).is_err() {
        return Err(v);
    }
    vec.push(v);
    // Capacity is exactly 1, so this does not reallocate.
    let slice: Box<[T]> = vec.into_boxed_slice();
    match slice.try_into() {
        Ok(b) => Ok(b),
        Err(_) => unreachable!("a one-element slice converts to [T; 1]"),
    }
}

/// A vector with room for `capacity` elements, or `NoMemory`.
///
/// ```
/// use tevent::{ReqError, alloc::try_vec};
/// let buf: Vec<u8> = try_vec::<u8, ()>(4096)?;
/// assert!(buf.capacity() >= 4096);
/// assert_eq!(try_vec::<u64, ()>(usize::MAX / 8), Err(ReqError::NoMemory));
/// # Ok::<(), ReqError<()>>(())
/// ```
pub fn try_vec<T, E>(capacity: usize) -> Result<Vec<T>, ReqError<E>> {
    let mut v = Vec::new();
    v.try_reserve_exact(capacity)
        .map_err(|_| ReqError::NoMemory)?;
    Ok(v)
}

/// A vector of `len` copies of `value`, or `NoMemory`.
///
/// ```
/// let buf = tevent::alloc::try_vec_filled::<u8, ()>(3, 0)?;
/// assert_eq!(buf, [0, 0, 0]);
/// # Ok::<(), tevent::ReqError<()>>(())
/// ```
pub fn try_vec_filled<T: Clone, E>(len: usize, value: T) -> Result<Vec<T>, ReqError<E>> {
    let mut v = try_vec(len)?;
    v.resize(len, value);
    Ok(v)
}

/// Pushes onto `v`, growing it fallibly.
///
/// ```
/// let mut v = Vec::new();
/// tevent::alloc::try_push::<_, ()>(&mut v, 1)?;
/// assert_eq!(v, [1]);
/// # Ok::<(), tevent::ReqError<()>>(())
/// ```
pub fn try_push<T, E>(v: &mut Vec<T>, item: T) -> Result<(), ReqError<E>> {
    v.try_reserve(1).map_err(|_| ReqError::NoMemory)?;
    v.push(item);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_box_holds_the_value() {
        let b = try_box(String::from("x")).unwrap();
        assert_eq!(b[0], "x");
        let z = try_box(()).unwrap();
        assert_eq!(z.len(), 1);
    }

    #[test]
    fn try_vec_helpers() {
        let v: Vec<u8> = try_vec::<u8, ()>(10).unwrap();
        assert!(v.capacity() >= 10 && v.is_empty());
        let f = try_vec_filled::<u8, ()>(4, 7).unwrap();
        assert_eq!(f, [7, 7, 7, 7]);
        let mut p = Vec::new();
        try_push::<_, ()>(&mut p, 1).unwrap();
        assert_eq!(p, [1]);
        assert_eq!(try_vec::<u8, ()>(usize::MAX), Err(ReqError::NoMemory));
    }
}
