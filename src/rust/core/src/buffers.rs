//! Memory: every buffer whose size follows from the architecture or the data is
//! allocated here, fallibly, so that a model too large for the machine is an
//! `Error::OutOfMemory` rather than Rust's "memory allocation failed" abort (which
//! would take the R session with it); and the work buffers kept between steps.
//!
//! Work buffers are sized in two steps: before a pass, `reserve` (fallible) gives each
//! the capacity for the largest batch of the pass; during the pass, `resize` sets its
//! length within that capacity, which allocates nothing.

use crate::error::{Error, Result};

/// Number of values of a `dims[0] x dims[1] x ...` buffer; a product that overflows is
/// an `OutOfMemory` error for `what`.
pub fn elements(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| Error::size_overflow(what))
}

/// An empty vector with room for `n` values.
pub fn with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::out_of_memory::<T>(n, what))?;
    Ok(v)
}

/// `n` values `f(0), f(1), ...`, computed in order.
pub fn from_fn<T>(n: usize, what: &str, f: impl FnMut(usize) -> T) -> Result<Vec<T>> {
    let mut v = with_capacity(n, what)?;
    v.extend((0..n).map(f));
    Ok(v)
}

/// `n` copies of `value`.
pub fn filled<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = with_capacity(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// `n` zeros (the types' defaults).
pub fn zeros<T: Copy + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    filled(n, T::default(), what)
}

/// A copy of `values`.
pub fn copied<T: Copy>(values: &[T], what: &str) -> Result<Vec<T>> {
    let mut v = with_capacity(values.len(), what)?;
    v.extend_from_slice(values);
    Ok(v)
}

/// Gives `v` room for `len` values (its length is kept), so that resizing it up to
/// `len` allocates nothing.
pub(crate) fn reserve<T>(v: &mut Vec<T>, len: usize, what: &str) -> Result<()> {
    if v.capacity() < len {
        v.try_reserve_exact(len - v.len()).map_err(|_| Error::out_of_memory::<T>(len, what))?;
    }
    Ok(())
}

/// Sizes a work buffer to `len` values. Every buffer sized this way is overwritten in
/// full before it is read, so the old contents are kept rather than zeroed: filling
/// megabytes with zeros on one thread each step cost more than a tenth of a step.
/// Allocates nothing when `reserve` gave the buffer room for `len` values.
pub(crate) fn resize(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        v.resize(len, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_oom<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::OutOfMemory { .. }))
    }

    #[test]
    fn impossible_sizes_are_errors() {
        // more bytes than an address space holds: refused before the allocator is asked
        assert!(is_oom(zeros::<f32>(usize::MAX / 4, "a test")));
        // 4 EB: the allocator is asked, and refuses
        assert!(is_oom(zeros::<f64>(1 << 59, "a test")));
        assert!(is_oom(with_capacity::<u8>(1 << 62, "a test")));
        assert!(is_oom(filled(1 << 61, 1.0f32, "a test")));
        let mut v = vec![1.0f32; 3];
        assert!(is_oom(reserve(&mut v, 1 << 62, "a test")));
        assert_eq!(v, [1.0; 3]);
        // a product that overflows
        match elements(&[1 << 40, 1 << 40], "the kernel") {
            Err(Error::OutOfMemory { what, bytes }) => assert_eq!((what.as_str(), bytes), ("the kernel", u64::MAX)),
            other => panic!("{other:?}"),
        }
        assert_eq!(elements(&[3, 4, 5], "x").unwrap(), 60);
        assert_eq!(elements(&[], "x").unwrap(), 1);
        let e = zeros::<f32>(usize::MAX / 4, "the weights").unwrap_err().to_string();
        assert!(e.contains("the weights") && e.contains("memory"), "{e}");
    }

    #[test]
    fn possible_sizes_are_what_they_say() {
        assert_eq!(zeros::<f32>(3, "x").unwrap(), [0.0; 3]);
        assert_eq!(from_fn(4, "x", |i| i * i).unwrap(), [0, 1, 4, 9]);
        assert_eq!(copied(&[1u32, 2], "x").unwrap(), [1, 2]);
        let mut v: Vec<f32> = Vec::new();
        reserve(&mut v, 100, "x").unwrap();
        let (cap, ptr) = (v.capacity(), v.as_ptr());
        assert!(cap >= 100);
        resize(&mut v, 100);
        resize(&mut v, 10);
        resize(&mut v, 100);
        assert_eq!((v.capacity(), v.as_ptr()), (cap, ptr));
    }
}
