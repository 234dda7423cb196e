//! Host buffers allocated fallibly: a problem whose buffers exceed the memory available gets one
//! [`Error::OutOfHostMemory`] naming the buffer, never an abort.

use crate::error::{Error, Result};

fn failed<T>(what: &str, len: usize) -> Error {
    Error::OutOfHostMemory {
        what: what.to_string(),
        bytes: len as u128 * std::mem::size_of::<T>() as u128,
    }
}

/// An empty vector with room for `len` elements.
pub fn vec_with_capacity<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| failed::<T>(what, len))?;
    Ok(v)
}

/// A vector of `len` copies of `value`.
pub fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = vec_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}
